"""The orchestrator: the six agents in order as one DAG, each stage's result passed on.

monitor -> analyst (findings) -> optimizer (plan) -> executor (outcomes) -> validator
(verdicts) -> learner (changes), then the score report.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, tags

from flows import artifacts
from flows.analyst import analyst_flow
from flows.executor import executor_flow
from flows.learner import learner_flow
from flows.monitor import monitor_flow
from flows.optimizer import optimizer_flow
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
        "score": report["scores"],
    }
