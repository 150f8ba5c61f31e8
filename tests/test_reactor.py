"""The reactor end to end on real files, a real log and store: decide, act, verify, roll back."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import aios
from aios.actions.simple_actions import Wait
from aios.event import Event
from aios.home import HomePaths
from aios.playbooks.matcher import PlaybookIndex
from aios.playbooks.model import Playbook
from aios.reactor.approval import PolicyApprover, TerminalApprover
from aios.reactor.engine import Reactor, ReactorSettings
from aios.reactor.runner import warm_up
from aios.reactor.simulate import simulate
from aios.store import open_store
from aios.store.consumers import last_seq


def playbook(pid: str = "slow_heartbeat", **fields: Any) -> Playbook:
    data: dict[str, Any] = {
        "id": pid,
        "trigger": {"type": "resource.high"},
        "actions": [],
    }
    data.update(fields)
    return Playbook.model_validate(data)


def update(file: Path, key: str, value: Any) -> dict[str, Any]:
    return {"type": "config.update", "file": str(file), "key": key, "value": value}


def verify_value(file: Path, key: str, expect: str) -> dict[str, Any]:
    return {
        "probe": "file_value",
        "file": str(file),
        "key": key,
        "expect": expect,
        "within": "0.3s",
        "interval": "0.1s",
    }


class Clock:
    """The real time, moved forward by the test."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, **delta: float) -> None:
        self.offset += timedelta(**delta)


def make_reactor(
    home: HomePaths, root: Path, playbooks: list[Playbook], approve: bool = True, **kw: Any
) -> Reactor:
    settings = ReactorSettings(home, allowed_roots=(root,))
    return Reactor(PlaybookIndex(playbooks), aios.bus(), settings, PolicyApprover(approve), **kw)


def steps(trigger: Event) -> list[Event]:
    return [e for e in aios.bus().log.events() if e.correlation_id == trigger.id]


def types(trigger: Event) -> list[str]:
    return [e.type for e in steps(trigger)]


def trigger(**labels: str) -> Event:
    return aios.emit("resource.high", {"resource": "cpu", "value": 91}, labels=labels or None)


# ------------------------------------------------------------------ outcomes
def test_a_verified_fix_succeeds_and_every_step_is_an_event(
    home: HomePaths, root: Path, config_file: Path
) -> None:
    reactor = make_reactor(
        home,
        root,
        [
            playbook(
                actions=[update(config_file, "heartbeat.interval", 120)],
                verify=verify_value(config_file, "heartbeat.interval", "==120"),
            )
        ],
    )
    event = trigger(host="web1")
    [outcome] = reactor.process(event)
    assert outcome.status == "succeeded"
    assert json.loads(config_file.read_text())["heartbeat"]["interval"] == 120
    assert types(event) == [
        "playbook.matched",
        "remediation.started",
        "action.started",
        "action.completed",
        "verify.passed",
        "remediation.finished",
    ]
    chain = steps(event)
    assert chain[0].causation_id == event.id
    assert all(b.causation_id == a.id for a, b in itertools.pairwise(chain))
    assert all(e.labels["playbook"] == "slow_heartbeat" for e in chain)
    assert chain[-1].payload["outcome"] == "succeeded"


def test_a_failed_verify_rolls_back_in_reverse_byte_for_byte(
    home: HomePaths, root: Path, config_file: Path
) -> None:
    other = root / "reader.toml"
    other.write_text("# reader settings\n[tools]\ntimeout_s = 30  # seconds\n")
    before = {config_file: config_file.read_bytes(), other: other.read_bytes()}
    reactor = make_reactor(
        home,
        root,
        [
            playbook(
                actions=[
                    update(config_file, "heartbeat.interval", 120),
                    update(other, "tools.timeout_s", 60),
                ],
                verify=verify_value(config_file, "heartbeat.interval", "==999"),
            )
        ],
    )
    event = trigger()
    [outcome] = reactor.process(event)
    assert outcome.status == "rolled_back"
    assert {path: path.read_bytes() for path in before} == before
    rollbacks = [e for e in steps(event) if e.type == "rollback.completed"]
    assert [e.payload["index"] for e in rollbacks] == [1, 0]
    assert "byte for byte" in rollbacks[0].payload["restored"]
    assert types(event)[-1] == "remediation.finished"
    assert steps(event)[-1].payload["outcome"] == "rolled_back"


def test_a_failing_action_undoes_the_ones_before_it(
    home: HomePaths, root: Path, config_file: Path
) -> None:
    before = config_file.read_bytes()
    reactor = make_reactor(
        home,
        root,
        [
            playbook(
                actions=[
                    update(config_file, "heartbeat.interval", 120),
                    update(config_file, "no.such.key", 1),
                ],
                verify=verify_value(config_file, "heartbeat.interval", "==120"),
            )
        ],
        plan_actions=False,
    )
    event = trigger()
    [outcome] = reactor.process(event)
    assert outcome.status == "failed"
    assert "no.such.key" in outcome.reason
    assert config_file.read_bytes() == before
    assert "action.failed" in types(event) and "rollback.completed" in types(event)


def test_without_verify_the_outcome_is_unverified_never_success(
    home: HomePaths, root: Path, config_file: Path
) -> None:
    reactor = make_reactor(
        home, root, [playbook(actions=[update(config_file, "heartbeat.interval", 90)])]
    )
    event = trigger()
    [outcome] = reactor.process(event)
    assert outcome.status == "unverified"
    assert steps(event)[-1].payload["outcome"] == "unverified"


def test_what_cannot_be_undone_is_escalated_not_pretended(
    home: HomePaths, root: Path, config_file: Path
) -> None:
    reactor = make_reactor(
        home,
        root,
        [
            playbook(
                actions=[
                    update(config_file, "heartbeat.interval", 120),
                    {"type": "command.run", "argv": ["/bin/true"]},
                ],
                verify=verify_value(config_file, "heartbeat.interval", "==1"),
            )
        ],
    )
    event = trigger()
    [outcome] = reactor.process(event)
    assert outcome.status == "rolled_back"
    failed = [e for e in steps(event) if e.type == "rollback.failed"]
    assert failed and failed[0].payload["irreversible"] is True
    escalated = [e for e in steps(event) if e.type == "remediation.escalated"]
    assert escalated and escalated[0].severity.value == "high"
    assert json.loads(config_file.read_text())["heartbeat"]["interval"] == 60  # the rest undone


# ------------------------------------------------------------------ approval
def test_risky_remediations_wait_for_approval_and_a_denial_runs_nothing(
    home: HomePaths, root: Path, config_file: Path
) -> None:
    before = config_file.read_bytes()
    risky = playbook(
        risk="medium",
        description="slows the heartbeat",
        actions=[update(config_file, "heartbeat.interval", 120)],
        verify=verify_value(config_file, "heartbeat.interval", "==120"),
    )
    approver = PolicyApprover(False)
    reactor = Reactor(
        PlaybookIndex([risky]), aios.bus(), ReactorSettings(home, allowed_roots=(root,)), approver
    )
    event = trigger(host="db1")
    [outcome] = reactor.process(event)
    assert outcome.status == "skipped" and outcome.reason.startswith("denied")
    assert config_file.read_bytes() == before
    assert types(event) == [
        "playbook.matched",
        "approval.requested",
        "approval.denied",
        "playbook.skipped",
    ]
    request = approver.requests[0]
    for needle in ("slow_heartbeat", "resource.high", "heartbeat.interval", "Breaker", "Past"):
        assert needle in request.description
    assert request.plan[0]["details"]["new"] == 120


def test_an_approved_remediation_runs(home: HomePaths, root: Path, config_file: Path) -> None:
    reactor = make_reactor(
        home,
        root,
        [
            playbook(
                auto_execute=False,
                actions=[update(config_file, "heartbeat.interval", 120)],
                verify=verify_value(config_file, "heartbeat.interval", "==120"),
            )
        ],
        approve=True,
    )
    event = trigger()
    [outcome] = reactor.process(event)
    assert outcome.status == "succeeded"
    granted = [e for e in steps(event) if e.type == "approval.granted"]
    assert granted and granted[0].payload["approver"] == "policy"


def test_with_nobody_at_a_terminal_the_answer_is_no(
    home: HomePaths, root: Path, config_file: Path, tmp_path: Path
) -> None:
    reactor = Reactor(
        PlaybookIndex([playbook(risk="high", actions=[update(config_file, "retries", 3)])]),
        aios.bus(),
        ReactorSettings(home, allowed_roots=(root,)),
        TerminalApprover(stdin=(tmp_path / "empty").open("w+")),
    )
    event = trigger()
    [outcome] = reactor.process(event)
    assert outcome.status == "skipped"
    assert "no person at a terminal" in outcome.reason
    assert json.loads(config_file.read_text())["retries"] == 1


# ------------------------------------------------------------ skips and limits
def test_dry_run_plans_and_records_but_changes_nothing(
    home: HomePaths, root: Path, config_file: Path
) -> None:
    before = config_file.read_bytes()
    reactor = make_reactor(
        home,
        root,
        [playbook(actions=[update(config_file, "heartbeat.interval", 120)])],
        dry_run=True,
    )
    event = trigger()
    [outcome] = reactor.process(event)
    assert outcome.status == "dry_run"
    assert config_file.read_bytes() == before
    skipped = steps(event)[-1]
    assert skipped.type == "playbook.skipped" and skipped.payload["reason"] == "dry_run"
    assert "60 -> 120" in skipped.payload["plan"][0]["summary"]


def test_a_disabled_playbook_is_skipped(home: HomePaths, root: Path, config_file: Path) -> None:
    reactor = make_reactor(
        home, root, [playbook(enabled=False, actions=[update(config_file, "retries", 2)])]
    )
    event = trigger()
    [outcome] = reactor.process(event)
    assert outcome.status == "skipped" and outcome.reason.startswith("disabled")
    assert steps(event)[-1].payload["reason"] == "disabled"


def test_threshold_counts_per_group_within_the_window(
    home: HomePaths, root: Path, config_file: Path
) -> None:
    reactor = make_reactor(
        home,
        root,
        [
            playbook(
                trigger={
                    "type": "resource.high",
                    "threshold": {"count": 3, "within": "1m", "group_by": ["labels.host"]},
                },
                actions=[{"type": "wait", "duration": "0s"}],
            )
        ],
    )
    statuses = []
    for host in ("a", "a", "b", "a"):
        statuses.append((host, reactor.process(trigger(host=host))[0].status))
    assert statuses == [("a", "waiting"), ("a", "waiting"), ("b", "waiting"), ("a", "unverified")]


def test_a_throttled_playbook_stays_quiet_then_fires_again(
    home: HomePaths, root: Path, config_file: Path
) -> None:
    pb = playbook(
        trigger={"type": "resource.high", "throttle": {"once_within": "10m"}},
        actions=[{"type": "wait", "duration": "0s"}],
    )
    clock = Clock()
    reactor = make_reactor(home, root, [pb], clock=clock)
    first = trigger()
    assert reactor.process(first)[0].status == "unverified"
    assert reactor.process(trigger())[0].reason.startswith("throttled")
    clock.advance(minutes=11)
    later = aios.bus().emit("resource.high", {"resource": "cpu"}, time=clock())
    assert reactor.process(later)[0].status == "unverified"


def test_a_trigger_dated_in_the_future_is_taken_as_now(
    home: HomePaths, root: Path, config_file: Path
) -> None:
    pb = playbook(
        trigger={"type": "resource.high", "throttle": {"once_within": "1h"}},
        actions=[{"type": "wait", "duration": "0s"}],
        limits={"max_runs": 1},
    )
    reactor = make_reactor(home, root, [pb])
    assert reactor.process(trigger())[0].status == "unverified"
    ahead = aios.bus().emit("resource.high", {"x": 1}, time=datetime.now(UTC) + timedelta(days=2))
    outcome = reactor.process(ahead)[0]
    assert outcome.status == "skipped" and "throttled" in outcome.reason


def test_the_breaker_limits_runs_per_target_and_holds_across_restarts(
    home: HomePaths, root: Path, config_file: Path
) -> None:
    pb = playbook(
        actions=[{"type": "wait", "duration": "0s"}],
        limits={"max_runs": 2, "window": "24h"},
    )
    clock = Clock()
    reactor = make_reactor(home, root, [pb], clock=clock)
    results = [reactor.process(trigger(host="web1"))[0] for _ in range(3)]
    assert [r.status for r in results] == ["unverified", "unverified", "skipped"]
    assert "breaker_open" in results[2].reason and "2 runs" in results[2].reason
    assert reactor.process(trigger(host="web2"))[0].status == "unverified"
    # A new reactor (a restart, another process) derives the same state from the log.
    clock.advance(minutes=30)
    fresh = make_reactor(home, root, [pb], clock=clock)
    with open_store(home) as con:
        upto = last_seq(con)
    warm_up(fresh, home, upto, clock())
    again = aios.bus().emit("resource.high", {"x": 1}, labels={"host": "web1"}, time=clock())
    assert fresh.process(again)[0].reason.startswith("breaker_open")


def test_consecutive_failures_open_the_breaker_then_a_trial_after_cooldown(
    home: HomePaths, root: Path, config_file: Path
) -> None:
    failing = playbook(
        actions=[update(config_file, "retries", 5)],
        verify=verify_value(config_file, "retries", "==0"),
        limits={"failures_to_open": 2, "cooldown": "5m", "max_runs": 10},
    )
    clock = Clock()
    reactor = make_reactor(home, root, [failing], clock=clock)
    assert reactor.process(trigger())[0].status == "rolled_back"
    assert reactor.process(trigger())[0].status == "rolled_back"
    blocked = reactor.process(trigger())[0]
    assert blocked.status == "skipped" and "consecutive failures" in blocked.reason
    clock.advance(minutes=6)
    later = aios.bus().emit("resource.high", {"x": 1}, time=clock())
    assert reactor.process(later)[0].status == "rolled_back"  # the one trial went through
    right_after = aios.bus().emit("resource.high", {"x": 1}, time=clock())
    assert "consecutive failures" in reactor.process(right_after)[0].reason  # cooling again


def test_the_same_action_on_the_same_target_again_and_again_is_flapping(
    home: HomePaths, root: Path, config_file: Path
) -> None:
    limits = {"flap_count": 2, "flap_window": "1h", "max_runs": 10}
    a = playbook("raise_retries", actions=[update(config_file, "retries", 2)], limits=limits)
    b = playbook(
        "lower_retries",
        trigger={"type": "resource.low"},
        actions=[update(config_file, "retries", 1)],
        limits=limits,
    )
    reactor = make_reactor(home, root, [a, b])
    assert reactor.process(trigger(agent="w"))[0].status == "unverified"
    low = aios.emit("resource.low", {"x": 1}, labels={"agent": "w"})
    assert reactor.process(low)[0].status == "unverified"
    third = trigger(agent="w")
    outcome = reactor.process(third)[0]
    assert outcome.status == "skipped" and "flapping" in outcome.reason
    alerts = [e for e in steps(third) if e.type == "breaker.flapping"]
    assert alerts and alerts[0].severity.value == "high"


# --------------------------------------------------------------- idempotency
def test_running_the_same_trigger_again_never_repeats_completed_actions(
    home: HomePaths, root: Path, config_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pb = playbook(
        actions=[
            {
                "type": "config.update",
                "file": str(config_file),
                "key": "retries",
                "op": "add",
                "value": 10,
            },
            {"type": "wait", "duration": "0s"},
        ],
        verify=verify_value(config_file, "retries", "==11"),
    )
    real_execute = Wait.execute

    def crash(self: Wait, ctx: Any) -> dict[str, Any]:
        raise KeyboardInterrupt  # the process dies in the middle of the remediation

    monkeypatch.setattr(Wait, "execute", crash)
    event = trigger()
    with pytest.raises(KeyboardInterrupt):
        make_reactor(home, root, [pb]).process(event)
    assert json.loads(config_file.read_text())["retries"] == 11
    monkeypatch.setattr(Wait, "execute", real_execute)
    # A retried run: a new reactor, its state from the log.
    again = make_reactor(home, root, [pb])
    with open_store(home) as con:
        upto = last_seq(con)
    warm_up(again, home, upto, event.time)
    [outcome] = again.process(event)
    assert outcome.status == "succeeded"
    assert json.loads(config_file.read_text())["retries"] == 11  # not 21
    started = [e for e in steps(event) if e.type == "action.started"]
    assert [e.payload["index"] for e in started] == [0, 1, 1]
    assert again.process(event)[0].reason.startswith("already done")


def test_the_reactor_never_reacts_to_its_own_events(
    home: HomePaths, root: Path, config_file: Path
) -> None:
    catch_all = playbook(trigger={"type": "*"}, actions=[{"type": "wait", "duration": "0s"}])
    reactor = make_reactor(home, root, [catch_all])
    event = trigger()
    assert [o.status for o in reactor.process(event)] == ["unverified"]
    for step in steps(event):
        assert reactor.process(step) == []


# ----------------------------------------------------------------- simulate
def test_simulating_history_counts_fires_targets_approvals_and_breakers(
    home: HomePaths, root: Path, config_file: Path
) -> None:
    auto = playbook(
        "auto_fix",
        actions=[update(config_file, "retries", 2)],
        trigger={
            "type": "resource.high",
            "throttle": {"once_within": "1h", "group_by": ["labels.host"]},
        },
    )
    manual = playbook(
        "manual_fix",
        risk="high",
        actions=[{"type": "wait", "duration": "0s"}],
        limits={"max_runs": 2},
    )
    history = [trigger(host=h) for h in ("a", "a", "b", "a")]
    before = config_file.read_bytes()
    report = simulate(
        PlaybookIndex([auto, manual]), history, ReactorSettings(home, allowed_roots=(root,))
    )
    assert config_file.read_bytes() == before  # nothing executed
    auto_sim, manual_sim = report.playbooks["auto_fix"], report.playbooks["manual_fix"]
    assert auto_sim.fires == 2 and auto_sim.skipped == {"throttled": 2}
    assert auto_sim.targets == {"labels.host=a": 1, "labels.host=b": 1}
    assert manual_sim.fires == 3 and manual_sim.approvals_needed == 3
    assert manual_sim.skipped == {"breaker_open": 1}
    assert not [e for e in aios.bus().log.events() if e.source == "aios.reactor"]
