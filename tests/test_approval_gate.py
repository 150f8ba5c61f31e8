"""The approval gate under pressure, on a real Prefect server: a timeout that cannot resume at
first, an answer for another remediation, two runs asking about one remediation, and a
playbook edited while the approval waits."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

import aios
from aios.home import HomePaths
from tests.orchestration_helpers import (
    Background,
    Workspace,
    aios_cli,
    events_of,
    flow_run,
    run_flow,
    wait_for,
)

pytestmark = [pytest.mark.usefixtures("prefect_server"), pytest.mark.slow]


def waiting(home: HomePaths, api_url: str, playbook: str) -> list[dict[str, Any]]:
    result = aios_cli("approvals", "list", "--json", home=home, api_url=api_url)
    assert result.returncode == 0, result.stderr
    return [w for w in json.loads(result.stdout) if w["playbook"] == playbook]


def started(home: HomePaths) -> int:
    return len(events_of(home, "type = 'remediation.started'"))


def test_a_timeout_that_cannot_resume_at_first_still_ends_the_run_cleanly(
    ws: Workspace, home: HomePaths, monkeypatch: pytest.MonkeyPatch
) -> None:
    import flows.approval as gate
    from blocks.aios_settings import forget_cached
    from flows.reactor import reactor_flow

    real = gate.resume_flow_run  # type: ignore[attr-defined]
    failures = {"left": 2}

    def flaky_resume(*args: Any, **kwargs: Any) -> Any:
        if failures["left"]:  # the server refuses the first tries (busy, say)
            failures["left"] -= 1
            raise RuntimeError("the server is busy")
        return real(*args, **kwargs)

    monkeypatch.setattr(gate, "resume_flow_run", flaky_resume)
    monkeypatch.setenv("AIOS_REACTOR__APPROVAL_TIMEOUT", "3s")
    forget_cached()
    ws.playbook("stubborn", risk="high")
    event = aios.emit("test.stubborn", severity="high")
    result, run_id = run_flow(reactor_flow, [event.id])
    [outcome] = result["outcomes"]
    assert failures["left"] == 0, "the timeout had to try again"
    assert outcome["status"] == "skipped" and "no answer within 3s" in outcome["reason"]
    assert [t for t, *_ in events_of(home, "type = 'approval.expired'")] == ["approval.expired"]
    assert flow_run(run_id).state.is_completed() and ws.level() == 1


def test_an_answer_about_another_remediation_is_asked_again(
    ws: Workspace, home: HomePaths, prefect_server: str
) -> None:
    from prefect.flow_runs import resume_flow_run

    from flows.reactor import reactor_flow

    ws.playbook("careful", risk="medium")
    event = aios.emit("test.careful", severity="high")
    running = Background(lambda: run_flow(reactor_flow, [event.id]))
    [first] = wait_for(lambda: waiting(home, prefect_server, "careful"), 60, "the approval")
    # A form left open on another remediation, submitted to this run.
    resume_flow_run(
        first["flow_run_id"],
        run_input={"approve": True, "reason": "", "approver": "eve", "remediation_id": "other"},
    )
    again = wait_for(
        lambda: (
            flow_run(first["flow_run_id"]).state.is_paused()
            and events_of(home, "type = 'approval.waiting'")
            and waiting(home, prefect_server, "careful")
        ),
        60,
        "the run to ask again",
    )
    assert again[0]["flow_run_id"] == first["flow_run_id"]
    assert (
        ws.level() == 1 and started(home) == 0 and not events_of(home, "type = 'approval.granted'")
    )
    [(_, _, other, _)] = events_of(home, "type = 'approval.refused'")
    assert (other["refusal"], other["approver"]) == ("other_remediation", "eve")
    answered = aios_cli(
        "approvals",
        "approve",
        first["remediation_id"],
        "--approver",
        "ops",
        home=home,
        api_url=prefect_server,
    )
    assert answered.returncode == 0, answered.stderr
    assert "recorded" in answered.stdout
    result, _ = running.join(120)
    assert [o["status"] for o in result["outcomes"]] == ["succeeded"] and ws.level() == 2
    [(_, _, granted, _)] = events_of(home, "type = 'approval.granted'")
    assert granted["approver"] == "ops"
    assert granted["verified"] is False  # no approvers configured: the name is taken as given


def test_two_runs_about_one_remediation_ask_once_and_act_once(
    ws: Workspace, home: HomePaths, prefect_server: str
) -> None:
    from flows.reactor import reactor_flow

    ws.playbook("shared", risk="medium")
    event = aios.emit("test.shared", severity="high")
    first = Background(lambda: run_flow(reactor_flow, [event.id]))
    [asking] = wait_for(lambda: waiting(home, prefect_server, "shared"), 60, "the approval")
    second = Background(lambda: run_flow(reactor_flow, [event.id]))
    time.sleep(8)  # the second run has reached the gate by now, and must not ask again
    assert [w["flow_run_id"] for w in waiting(home, prefect_server, "shared")] == [
        asking["flow_run_id"]
    ]
    answered = aios_cli(
        "approvals", "approve", asking["flow_run_id"], home=home, api_url=prefect_server
    )
    assert answered.returncode == 0, answered.stderr
    one, _ = first.join(120)
    two, second_run = second.join(120)
    statuses = sorted(o["status"] for o in one["outcomes"] + two["outcomes"])
    assert statuses[-1] == "succeeded" and "succeeded" not in statuses[:-1]
    assert started(home) == 1 and ws.level() == 2
    assert len(events_of(home, "type = 'approval.granted'")) == 1
    assert flow_run(second_run).state.is_completed()


def test_a_playbook_edited_while_it_waits_is_asked_about_again(
    ws: Workspace, home: HomePaths, prefect_server: str
) -> None:
    from flows.reactor import reactor_flow

    ws.playbook("edited", risk="medium")
    event = aios.emit("test.edited", severity="high")
    running = Background(lambda: run_flow(reactor_flow, [event.id]))
    [shown] = wait_for(lambda: waiting(home, prefect_server, "edited"), 60, "the approval")
    # What the approver saw sets level 2; the file now says something else.
    ws.playbook(
        "edited",
        risk="medium",
        actions=[
            {"type": "config.update", "file": str(ws.config), "key": "limits.level", "value": 7}
        ],
        verify=None,
    )
    assert (
        aios_cli(
            "approvals", "approve", shown["flow_run_id"], home=home, api_url=prefect_server
        ).returncode
        == 0
    )
    [again] = wait_for(
        lambda: (
            events_of(home, "type = 'approval.stale'") and waiting(home, prefect_server, "edited")
        ),
        90,
        "the new plan to be asked about",
    )
    assert ws.level() == 1 and started(home) == 0, "the old approval ran nothing"
    assert (
        aios_cli(
            "approvals", "approve", again["flow_run_id"], home=home, api_url=prefect_server
        ).returncode
        == 0
    )
    result, _ = running.join(120)
    assert [o["status"] for o in result["outcomes"]] == ["unverified"]
    assert ws.level() == 7 and started(home) == 1


def test_an_approval_is_for_the_processes_planned_not_a_pid_reused_since() -> None:
    from aios.playbooks.model import Playbook
    from aios.reactor.engine import plan_digest

    playbook = Playbook.model_validate(
        {
            "id": "stop_idle",
            "trigger": {"type": "resource.high"},
            "actions": [{"type": "process.signal", "target": "idle_agents", "signal": "SIGSTOP"}],
        }
    )

    def plan(start_ticks: int) -> dict[str, Any]:
        return {
            "action": "process.signal",
            "targets": ["pid 4242"],
            "reversible": True,
            "risk": "low",
            "details": {"processes": [{"pid": 4242, "start_ticks": start_ticks}]},
        }

    assert plan_digest(playbook, [plan(100)]) == plan_digest(playbook, [plan(100)])
    assert plan_digest(playbook, [plan(100)]) != plan_digest(playbook, [plan(101)])
    both = plan(100)
    both["details"]["processes"].append({"pid": 4343, "start_ticks": 7})
    swapped = {**both, "details": {"processes": both["details"]["processes"][::-1]}}
    assert plan_digest(playbook, [both]) == plan_digest(playbook, [swapped])  # order aside
