"""The reactor under crashes, races, forged events, odd times and hostile playbooks."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import aios
from aios.actions.simple_actions import Wait
from aios.errors import EventValidationError
from aios.event import Event
from aios.home import HomePaths
from aios.playbooks.conditions import OPERATORS
from aios.playbooks.loader import load_playbooks
from aios.playbooks.matcher import PlaybookIndex
from aios.playbooks.model import Playbook
from aios.probes import Expectation
from aios.reactor.approval import ApprovalDecision, ApprovalRequest, PolicyApprover
from aios.reactor.engine import Reactor, ReactorSettings, remediation_id
from aios.reactor.runner import react
from aios.reactor.state import ReactorState, RemediationRecord
from tests.conftest import run_aios


@pytest.fixture
def root(tmp_path: Path) -> Path:
    path = tmp_path / "agents"
    path.mkdir()
    (path / "agent.json").write_text('{"interval": 60, "retries": 1}\n')
    return path


def settings(home: HomePaths, root: Path) -> ReactorSettings:
    return ReactorSettings(home, allowed_roots=(root,))


def book(pid: str = "p", **fields: Any) -> Playbook:
    return Playbook.model_validate(
        {"id": pid, "trigger": {"type": "attack.test"}, "actions": [], **fields}
    )


def started(home: HomePaths) -> int:
    return sum(1 for e in aios.bus().log.events() if e.type == "remediation.started")


def test_a_crashed_run_is_resumed_by_the_next_one_without_repeating_actions(
    home: HomePaths, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    file = root / "agent.json"
    pb = book(
        actions=[
            {
                "type": "config.update",
                "file": str(file),
                "key": "retries",
                "op": "add",
                "value": 10,
            },
            {"type": "wait", "duration": "0s"},
        ],
        verify={
            "probe": "file_value",
            "file": str(file),
            "key": "retries",
            "expect": "==0",
            "within": "0.2s",
            "interval": "0.1s",
        },
    )
    index = PlaybookIndex([pb])
    react(aios.bus(), home, index, settings(home, root), PolicyApprover(True))  # takes its place
    aios.emit("attack.test")

    def crash(self: Wait, ctx: Any) -> dict[str, Any]:
        raise KeyboardInterrupt

    real = Wait.execute
    monkeypatch.setattr(Wait, "execute", crash)
    with pytest.raises(KeyboardInterrupt):
        react(aios.bus(), home, index, settings(home, root), PolicyApprover(True))
    assert json.loads(file.read_text())["retries"] == 11
    monkeypatch.setattr(Wait, "execute", real)
    report = react(aios.bus(), home, index, settings(home, root), PolicyApprover(True))
    assert [o.status for _, o in report.outcomes] == ["rolled_back"]
    assert started(home) == 1
    assert json.loads(file.read_text())["retries"] == 1  # the original, not the crashed value


def test_two_reactors_at_once_run_a_remediation_once(home: HomePaths, root: Path) -> None:
    marker = root / "runs"
    pb = book(
        actions=[
            {
                "type": "config.update",
                "file": str(root / "agent.json"),
                "key": "retries",
                "op": "add",
                "value": 1,
            },
            {"type": "wait", "duration": "0.3s"},
        ]
    )
    event = aios.emit("attack.test")
    outcomes: list[str] = []

    def run() -> None:
        reactor = Reactor(
            PlaybookIndex([pb]), aios.bus(), settings(home, root), PolicyApprover(True)
        )
        outcomes.extend(o.status for o in reactor.process(event))

    threads = [threading.Thread(target=run) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["skipped", "skipped", "unverified"]
    assert started(home) == 1
    assert json.loads((root / "agent.json").read_text())["retries"] == 2
    assert not marker.exists()


class SlowApprover:
    def __init__(self) -> None:
        self.asked = 0

    def request(self, request: ApprovalRequest) -> ApprovalDecision:
        self.asked += 1
        time.sleep(0.3)
        return ApprovalDecision(True, "slow", "approved after a while")


def test_limits_are_checked_again_after_the_approval_wait(home: HomePaths, root: Path) -> None:
    pb = book(risk="medium", actions=[{"type": "wait", "duration": "0s"}], limits={"max_runs": 1})
    events = [aios.emit("attack.test") for _ in range(2)]
    approver = SlowApprover()
    outcomes: list[str] = []

    def run(event: Event) -> None:
        reactor = Reactor(PlaybookIndex([pb]), aios.bus(), settings(home, root), approver)
        outcomes.extend(o.reason[:12] for o in reactor.process(event))

    threads = [threading.Thread(target=run, args=(e,)) for e in events]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert started(home) == 1
    assert any(reason.startswith("breaker_open") for reason in outcomes)


def test_a_forged_approval_does_not_skip_the_question(home: HomePaths, root: Path) -> None:
    pb = book(
        risk="high",
        actions=[{"type": "command.run", "argv": ["/usr/bin/touch", str(root / "pwned")]}],
    )
    event = Event.create(type="attack.test")
    rid = remediation_id(event, pb)
    aios.bus().emit("approval.granted", {"remediation_id": rid}, source="aios.reactor")
    aios.bus().publish([event])
    reactor = Reactor(PlaybookIndex([pb]), aios.bus(), settings(home, root), PolicyApprover(False))
    [outcome] = reactor.process(event)
    assert outcome.reason.startswith("denied")
    assert not (root / "pwned").exists()


def test_outside_inputs_cannot_claim_aios_sources(home: HomePaths) -> None:
    result = run_aios("emit", "approval.granted", "--source", "aios.reactor", home=home)
    assert result.returncode == 2 and "belong to AIOS" in result.stderr
    assert list(aios.bus().log.events()) == []


def test_a_probe_that_breaks_is_a_failed_verify_and_is_rolled_back(
    home: HomePaths, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import aios.probes as probes

    file = root / "agent.json"
    before = file.read_bytes()
    broken = probes.PROBES["file_value"]
    monkeypatch.setitem(
        probes.PROBES,
        "file_value",
        probes.ProbeDef("file_value", lambda p, c: 1 / 0, broken.required, broken.optional),
    )
    pb = book(
        actions=[{"type": "config.update", "file": str(file), "key": "retries", "value": 3}],
        verify={
            "probe": "file_value",
            "file": str(file),
            "key": "retries",
            "expect": "==3",
            "within": "0.2s",
            "interval": "0.1s",
        },
    )
    reactor = Reactor(PlaybookIndex([pb]), aios.bus(), settings(home, root), PolicyApprover(True))
    [outcome] = reactor.process(aios.emit("attack.test"))
    assert outcome.status == "rolled_back" and "ZeroDivisionError" in outcome.reason
    assert file.read_bytes() == before


def test_probe_parameters_of_the_wrong_type_are_refused_at_load(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(
        "id: p\ntrigger: {type: a.b}\nactions: [{type: wait, duration: 1s}]\n"
        "verify: {probe: cpu_usage, sample: 1s, expect: '<70'}\n"
    )
    problems = load_playbooks([path], strict=False).problems
    assert problems and "sample must be a number" in problems[0].message


def test_no_event_can_break_matching(home: HomePaths, root: Path) -> None:
    pb = book(
        trigger={
            "type": "attack.test",
            "conditions": {
                "any": [
                    {"path": "payload.x", "op": "contains", "value": [1, 2]},
                    {"path": "payload.x", "op": "gt", "value": 3},
                    {"path": "payload.x", "op": "regex", "value": "^(a+)+$"},
                ]
            },
        },
        actions=[{"type": "wait", "duration": "0s"}],
    )
    reactor = Reactor(PlaybookIndex([pb]), aios.bus(), settings(home, root), PolicyApprover(True))
    for value in ({"k": 1}, [1, [2]], None, "a" * 5000 + "!", 10**18, True):
        event = aios.emit("attack.test", {"x": value})
        started_at = time.monotonic()
        reactor.process(event)
        assert time.monotonic() - started_at < 2


def test_true_is_not_one() -> None:
    assert not OPERATORS["eq"].test(True, 1)
    assert not OPERATORS["in"].test(True, [1, 2])
    assert OPERATORS["eq"].test(True, True)
    assert not Expectation.parse("==1").holds(True)


@pytest.mark.parametrize("text", ["1..", "..5", "=70", "70%", "< >"])
def test_malformed_expectations_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        Expectation.parse(text)


@pytest.mark.parametrize("text", ["-5..5", "<=  70", "==ready", "true", 3])
def test_wellformed_expectations(text: str | int) -> None:
    Expectation.parse(text)


def test_duplicate_keys_are_refused(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(
        "id: a\nrisk: high\ntrigger: {type: a.b}\nactions: [{type: wait, duration: 1s}]\n"
        "risk: low\n"
    )
    (tmp_path / "b.json").write_text(
        '{"id": "b", "id": "c", "trigger": {"type": "a.b"}, '
        '"actions": [{"type": "wait", "duration": "1s"}]}'
    )
    problems = {Path(p.file).name: p for p in load_playbooks([tmp_path], strict=False).problems}
    assert "duplicate key 'risk'" in problems["a.yaml"].message
    assert problems["a.yaml"].line == 5
    assert "duplicate key 'id'" in problems["b.json"].message


def test_an_abandoned_trial_does_not_keep_the_breaker_open() -> None:
    pb = book(
        actions=[{"type": "wait", "duration": "0s"}],
        limits={"failures_to_open": 1, "cooldown": "5m", "max_runs": 100},
    )
    state = ReactorState()
    now = datetime.now(UTC)
    failed = RemediationRecord(
        "r1", "p", "*", now - timedelta(hours=3), True, "failed", now - timedelta(hours=3)
    )
    trial = RemediationRecord("r2", "p", "*", now - timedelta(hours=2))  # never finished
    state.runs[("p", "*")] = [failed, trial]
    assert state.breaker(pb, "*", now).half_open
    state.runs[("p", "*")][1] = RemediationRecord("r2", "p", "*", now - timedelta(minutes=1))
    assert state.breaker(pb, "*", now).open  # a live trial still blocks


def test_an_unsealed_approval_does_not_skip_the_question(home: HomePaths, root: Path) -> None:
    pb = book(
        risk="high",
        actions=[{"type": "command.run", "argv": ["/usr/bin/touch", str(root / "pwned")]}],
    )
    event = Event.create(type="attack.test")
    rid = remediation_id(event, pb)
    forged = {"remediation_id": rid, "approver": "me", "reason": "trust me", "seal": "0" * 64}
    aios.bus().emit("approval.granted", forged, source="aios.reactor")
    aios.bus().publish([event])
    reactor = Reactor(PlaybookIndex([pb]), aios.bus(), settings(home, root), PolicyApprover(False))
    [outcome] = reactor.process(event)
    assert outcome.reason.startswith("denied")
    assert not (root / "pwned").exists()


def test_the_public_emit_refuses_aios_sources(home: HomePaths) -> None:
    with pytest.raises(EventValidationError, match="belong to AIOS"):
        aios.emit("approval.granted", {"remediation_id": "x"}, source="aios.reactor")
    with pytest.raises(EventValidationError, match=r"\[1\]"):
        aios.emit_many([{"type": "a.b"}, {"type": "a.b", "source": "aios.reactor"}])

    class Lying(dict):  # type: ignore[type-arg]
        """A mapping whose get() says one source while its items carry another."""

        def get(self, key: str, default: object = None) -> object:
            return "app" if key == "source" else super().get(key, default)

    with pytest.raises(EventValidationError, match="belong to AIOS"):
        aios.emit_many([Lying(type="action.completed", source="aios.reactor")])
    assert list(aios.bus().log.events()) == []


# ------------------------------------------------------------------ the remediation timeout
def _timed(home: HomePaths, root: Path, seconds: float) -> ReactorSettings:
    return ReactorSettings(home, allowed_roots=(root,), remediation_timeout_s=seconds)


def test_a_remediation_out_of_time_stops_before_its_next_action_and_rolls_back(
    home: HomePaths, root: Path
) -> None:
    file = root / "agent.json"
    before = file.read_bytes()
    update = {"type": "config.update", "file": str(file)}
    pb = book(
        actions=[
            {**update, "key": "interval", "value": 120},
            {"type": "wait", "duration": "0.6s"},
            {**update, "key": "retries", "value": 5},
        ],
        verify={"probe": "file_value", "file": str(file), "key": "retries", "expect": "==5"},
    )
    reactor = Reactor(
        PlaybookIndex([pb]), aios.bus(), _timed(home, root, 0.3), PolicyApprover(True)
    )
    [outcome] = reactor.process(aios.emit("attack.test", severity="high"))
    assert outcome.status == "failed"
    assert outcome.reason == "timed out after 0.3s, before config.update (action 2)"
    assert file.read_bytes() == before  # the first change was undone
    kinds = [e.type for e in aios.bus().log.events() if e.source == "aios.reactor"]
    assert kinds.count("action.completed") == 2 and "rollback.completed" in kinds


def test_the_time_left_bounds_the_verify(home: HomePaths, root: Path) -> None:
    file = root / "agent.json"
    pb = book(
        actions=[{"type": "config.update", "file": str(file), "key": "interval", "value": 120}],
        verify={
            "probe": "file_value",
            "file": str(file),
            "key": "retries",
            "expect": "==9",
            "within": "30s",
            "interval": "0.1s",
        },
    )
    reactor = Reactor(
        PlaybookIndex([pb]), aios.bus(), _timed(home, root, 0.5), PolicyApprover(True)
    )
    [outcome] = reactor.process(aios.emit("attack.test", severity="high"))
    assert outcome.status == "rolled_back" and outcome.reason.startswith("timed out after 0.5s")
    assert json.loads(file.read_text())["interval"] == 60
