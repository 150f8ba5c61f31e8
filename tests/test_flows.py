"""Every AIOS flow end to end on a real Prefect server and a temporary AIOS_HOME."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pytest

import aios
from aios.home import HomePaths
from tests.orchestration_helpers import (
    Background,
    Workspace,
    aios_cli,
    artifacts_of,
    events_of,
    flow_run,
    run_flow,
    wait_for,
)

pytestmark = pytest.mark.usefixtures("prefect_server")


def test_heartbeat_flow_records_a_heartbeat(ws: Workspace, home: HomePaths) -> None:
    from flows.heartbeat import heartbeat_flow

    result, run_id = run_flow(heartbeat_flow)
    beats = events_of(home, "type = 'system.heartbeat'")
    assert [b[2]["pid"] for b in beats] == [result["pid"]]
    assert flow_run(run_id).state.is_completed()


def test_monitor_flow_measures_and_publishes_a_snapshot(ws: Workspace, home: HomePaths) -> None:
    from flows.monitor import monitor_flow

    result, run_id = run_flow(monitor_flow)
    assert 0 <= result["cpu"] <= 100 and result["flow_run_health"] == "ok"
    [(_, source, payload, _)] = events_of(home, "type = 'host.metrics'")
    assert source == "aios.monitor" and payload["cpu"] == result["cpu"]
    snapshot = artifacts_of(run_id)["aios-monitor-snapshot"]
    rows = json.loads(snapshot.data)
    assert {"kind": "host", "name": "cpu %", "value": result["cpu"]} in rows


def test_monitor_flow_reports_the_operators_failed_runs(ws: Workspace, home: HomePaths) -> None:
    from prefect.client.orchestration import get_client
    from prefect.states import Failed

    from flows.monitor import monitor_flow

    flow_name = f"etl-{uuid.uuid4().hex[:6]}"
    with get_client(sync_client=True) as client:
        flow_id = client.create_flow_from_name(flow_name)
        deployment_id = client.create_deployment(flow_id=flow_id, name="nightly")
        run = client.create_flow_run_from_deployment(deployment_id)
        client.set_flow_run_state(run.id, Failed(message="the warehouse is down"), force=True)
    try:
        result, _ = run_flow(monitor_flow)
        assert result["flow_runs_reported"] >= 1
        failed = events_of(home, "type = 'task.failed' AND source = 'aios.prefect'")
        mine = [p for _, _, p, _ in failed if p["flow_run_id"] == str(run.id)]
        assert mine and mine[0]["error"] == "the warehouse is down"
        run_flow(monitor_flow)  # reported once
        again = events_of(home, "type = 'task.failed' AND source = 'aios.prefect'")
        assert len([p for _, _, p, _ in again if p["flow_run_id"] == str(run.id)]) == 1
    finally:
        with get_client(sync_client=True) as client:
            client.delete_deployment(deployment_id)


def test_analyst_flow_reports_failure_patterns(ws: Workspace, home: HomePaths) -> None:
    from flows.analyst import analyst_flow

    for seconds in (30, 45, 61):
        aios.emit(
            "task.failed",
            {"error": f"tool search timed out after {seconds}s", "error_type": "TimeoutError"},
            severity="medium",
            labels={"agent": "writer"},
        )
    result, run_id = run_flow(analyst_flow, 24.0)
    titles = [f["title"] for f in result["findings"]]
    assert "TimeoutError: tool search timed out after <n>s (x3)" in titles
    report = artifacts_of(run_id)["aios-analyst-report"].data
    assert "| 3 | TimeoutError: tool search timed out after <n>s | writer |" in report
    assert events_of(home, "type = 'analysis.reported'")


def _p2(ws: Workspace, pid: str) -> str:
    ws.playbook(pid)
    return aios.emit(f"test.{pid}", severity="medium").id


def test_optimizer_plans_and_executor_runs_the_plan_once(ws: Workspace, home: HomePaths) -> None:
    from flows.executor import executor_flow
    from flows.optimizer import optimizer_flow

    event_id = _p2(ws, "raise_level")
    plan, plan_run = run_flow(optimizer_flow, [])
    [item] = plan["items"]
    assert (item["event_id"], item["playbook"], item["status"]) == (
        event_id,
        "raise_level",
        "proposed",
    )
    assert ws.level() == 1, "a plan changes nothing"
    assert "raise_level" in json.dumps(
        json.loads(artifacts_of(plan_run)["aios-optimizer-plan"].data)
    )
    executed, run_id = run_flow(executor_flow, plan)
    [outcome] = executed["outcomes"]
    assert outcome["status"] == "succeeded" and ws.level() == 2
    assert executed["position"] == plan["upto_seq"]
    table = json.loads(artifacts_of(run_id)["aios-executor-results"].data)
    assert table[0]["status"] == "succeeded"
    ws.reset()
    again, _ = run_flow(executor_flow)  # its own plan: nothing pending any more
    assert again["outcomes"] == [] and ws.level() == 1


def test_the_orchestrator_passes_each_stage_on(ws: Workspace, home: HomePaths) -> None:
    from flows.orchestrator import orchestrator_flow

    event_id = _p2(ws, "dag_level")
    result, run_id = run_flow(orchestrator_flow, 24.0)
    assert result["optimizer"]["proposed"] == 1
    assert result["executor"]["plan_id"] == result["optimizer"]["plan_id"]
    [outcome] = result["executor"]["outcomes"]
    assert outcome["event_id"] == event_id and outcome["status"] == "succeeded"
    verdicts = {v["remediation_id"]: v for v in result["validator"]["verdicts"]}
    assert verdicts[outcome["remediation_id"]]["verdict"] == "held"
    changed = [c["now"]["playbook"] for c in result["learner"]["changed"]]
    assert "dag_level" in changed
    assert {s["preset"] for s in result["score"]} == {"evolution", "ops"}
    assert "aios-score-report" in artifacts_of(run_id)
    parent = flow_run(run_id)
    assert parent.state.is_completed()
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterParentFlowRunId

    with get_client(sync_client=True) as client:
        children = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[parent.id])
            )
        )
    names = {client_run.name for client_run in children}
    assert len(children) == 6 and all("aios" in r.tags for r in children), names


def test_reactor_flow_runs_a_low_risk_remediation(ws: Workspace, home: HomePaths) -> None:
    from flows.reactor import reactor_flow

    ws.playbook("urgent_level")
    event = aios.emit("test.urgent_level", severity="high")
    result, _ = run_flow(reactor_flow, [event.id])
    [outcome] = result["outcomes"]
    assert outcome["status"] == "succeeded" and ws.level() == 2
    types = [t for t, _, _, c in events_of(home) if c == event.id]
    assert types[:3] == ["playbook.matched", "remediation.started", "action.started"]
    assert types[-1] == "remediation.finished"
    again, _ = run_flow(reactor_flow, [event.id])  # the same event again: nothing repeated
    assert again["outcomes"][0]["status"] == "skipped"
    assert [t for t, _, _, c in events_of(home) if c == event.id].count("action.completed") == 1


def _waiting(home: HomePaths, api_url: str) -> list[dict[str, Any]]:
    result = aios_cli("approvals", "list", "--json", home=home, api_url=api_url)
    assert result.returncode == 0, result.stderr
    return list(json.loads(result.stdout))


@pytest.mark.parametrize("answer", ["approve", "reject"])
def test_a_risky_remediation_waits_for_a_person_at_the_terminal(
    ws: Workspace, home: HomePaths, prefect_server: str, answer: str
) -> None:
    from flows.reactor import reactor_flow

    ws.playbook("risky_level", risk="medium")
    event = aios.emit("test.risky_level", severity="high")
    running = Background(lambda: run_flow(reactor_flow, [event.id]))
    [waiting] = wait_for(lambda: _waiting(home, prefect_server), 60, "the approval to wait")
    assert waiting["playbook"] == "risky_level" and waiting["risk"] == "medium"
    assert "Planned actions (dry run)" in waiting["description"]
    assert flow_run(waiting["flow_run_id"]).state.is_paused()
    assert ws.level() == 1, "nothing runs before the answer"
    result = aios_cli(answer, "approvals", home=home, api_url=prefect_server)  # usage error
    assert result.returncode == 2
    result = aios_cli(
        "approvals",
        answer,
        waiting["flow_run_id"][:8],
        "--reason",
        "checked",
        home=home,
        api_url=prefect_server,
    )
    assert result.returncode == 0, result.stderr
    outcome_result, run_id = running.join(120)
    [outcome] = outcome_result["outcomes"]
    decision = events_of(home, "type LIKE 'approval.%' AND type != 'approval.waiting'")
    if answer == "approve":
        assert outcome["status"] == "succeeded" and ws.level() == 2
        assert decision[-1][0] == "approval.granted"
    else:
        assert outcome["status"] == "skipped" and ws.level() == 1
        assert decision[-1][0] == "approval.denied"
    assert decision[-1][2]["reason"] == "checked"
    assert decision[-1][2]["approver"].endswith("(terminal)")
    assert flow_run(run_id).state.is_completed()
    assert _waiting(home, prefect_server) == []


def test_an_unanswered_approval_is_denied_and_the_run_ends_cleanly(
    ws: Workspace, home: HomePaths, monkeypatch: pytest.MonkeyPatch
) -> None:
    from blocks.aios_settings import forget_cached
    from flows.reactor import reactor_flow

    monkeypatch.setenv("AIOS_REACTOR__APPROVAL_TIMEOUT", "3s")
    forget_cached()
    ws.playbook("ignored_level", risk="high")
    event = aios.emit("test.ignored_level", severity="high")
    started = time.monotonic()
    result, run_id = run_flow(reactor_flow, [event.id])
    assert time.monotonic() - started < 60
    [outcome] = result["outcomes"]
    assert outcome["status"] == "skipped" and "no answer within 3s" in outcome["reason"]
    [(_, _, payload, _)] = events_of(home, "type = 'approval.expired'")
    assert payload["approver"] == "nobody"
    assert ws.level() == 1
    assert flow_run(run_id).state.is_completed()


def test_validator_learner_and_maintenance_flows(ws: Workspace, home: HomePaths) -> None:
    from flows.learner import learner_flow
    from flows.maintenance import maintenance_flow
    from flows.reactor import reactor_flow
    from flows.validator import validator_flow

    ws.playbook("check_level")
    event = aios.emit("test.check_level", severity="high")
    run_flow(reactor_flow, [event.id])
    verdicts, run_id = run_flow(validator_flow, 1.0)
    [verdict] = verdicts["verdicts"]
    assert verdict["playbook"] == "check_level" and verdict["verdict"] == "held"
    assert "aios-validator-verdicts" in artifacts_of(run_id)
    for n in range(3):  # a failure that keeps coming back: a lesson
        aios.emit(
            "task.failed",
            {"error_type": "TimeoutError", "error": f"tool search timed out after {n}s"},
            labels={"agent": "writer"},
        )
    learned, run_id = run_flow(learner_flow)
    assert [e["playbook"] for e in learned["effectiveness"]] == ["check_level"]
    [lesson] = learned["lessons"]["created"]
    assert lesson["signature"] == "TimeoutError: tool search timed out after <n>s"
    changes = artifacts_of(run_id)["aios-learner-changes"].data
    assert "check_level" in changes and "tool search timed out" in changes
    report, run_id = run_flow(maintenance_flow)
    assert report["failed_steps"] == []
    assert events_of(home, "type = 'maintenance.completed'")
    assert "aios-maintenance" in artifacts_of(run_id)


def test_the_learner_tunes_an_agent_that_keeps_failing(
    ws: Workspace, home: HomePaths, monkeypatch: pytest.MonkeyPatch
) -> None:
    from blocks.aios_settings import forget_cached
    from flows.learner import learner_flow

    agent_file = ws.root / "writer.json"
    agent_file.write_text('{"timeout_s": 30}\n')
    monkeypatch.setenv(
        "AIOS_EVOLUTION__AGENTS",
        json.dumps({"writer": {"file": str(agent_file), "timeout": "timeout_s"}}),
    )
    forget_cached()
    for n in range(3):
        aios.emit(
            "task.failed",
            {"error_type": "TimeoutError", "error": f"tool search timed out after {n}s"},
            labels={"agent": "writer"},
        )
    learned, run_id = run_flow(learner_flow)
    [proposed] = learned["evolution"]["proposed"]
    assert proposed["agent"] == "writer" and proposed["rule"] == "timeout"
    assert [o["status"] for o in learned["evolution"]["outcomes"]] == ["unverified"]
    assert json.loads(agent_file.read_text())["timeout_s"] == 60
    changes = artifacts_of(run_id)["aios-learner-changes"].data
    assert "proposed for writer: timeout (timeout_s)" in changes
    assert "evolve-writer-timeout: unverified" in changes
