"""The orchestrator: the six agents in order as one DAG, each stage's result passed on.

monitor -> analyst (findings) -> optimizer (plan) -> executor (outcomes) -> validator
(verdicts) -> learner (changes) -> plugin agents with ``in_dag`` (each given the result before
it), then the score report.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, tags

from aios.agents.registry import AgentRegistry
from flows import artifacts
from flows.analyst import analyst_flow
from flows.executor import executor_flow
from flows.learner import learner_flow
from flows.monitor import monitor_flow
from flows.optimizer import optimizer_flow
from flows.plugin_agent import agent_flow
from flows.validator import validator_flow
from tasks.analyse import score_report

TAG = "aios"


@flow(name="aios-orchestrator", log_prints=False)
def orchestrator_flow(window_hours: float = 24.0) -> dict[str, Any]:
    """One pass of the loop; returns each stage's result."""
    with tags(TAG):  # AIOS's own runs: the flow-run health check leaves them out
        observed = monitor_flow()
        analysis = analyst_flow(window_hours)
        plan = optimizer_flow(analysis["findings"])
        executed = executor_flow(plan)
        verdicts = validator_flow(window_hours)
        learned = learner_flow()
        plugins = _plugin_agents(learned)
        report = score_report()
    artifacts.markdown("aios-score-report", report["markdown"], "Scores after this pass.")
    return {
        "monitor": observed,
        "analyst": analysis,
        "optimizer": {
            "plan_id": plan["plan_id"],
            "items": len(plan["items"]),
            "proposed": sum(1 for i in plan["items"] if i["status"] == "proposed"),
            "recommendations": len(plan["recommendations"]),
        },
        "executor": executed,
        "validator": verdicts,
        "learner": learned,
        "plugins": plugins,
        "score": report["scores"],
    }


def _plugin_agents(previous: dict[str, Any]) -> dict[str, Any]:
    """Run each plugin agent of the DAG after the one before; name -> result, or the failure
    (a plugin that fails shows as a failed run and does not stop the pass)."""
    results: dict[str, Any] = {}
    for name in AgentRegistry.in_dag():
        state: Any = agent_flow(name)(previous=previous, return_state=True)
        if state.is_completed():
            previous = results[name] = state.result()
        else:
            results[name] = {"failed": state.message or state.name}
    return results
