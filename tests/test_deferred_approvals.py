"""Deferred approvals: the reactor asks, a person answers later, a retried run acts on the
answer; sealed decisions, the run guard, ``react_to`` and rolling back interrupted runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import aios
from aios.errors import InputError
from aios.event import Event, Severity
from aios.home import HomePaths
from aios.playbooks.matcher import PlaybookIndex
from aios.playbooks.model import Playbook
from aios.reactor import runner
from aios.reactor.approval import ApprovalDecision, ApprovalRequest, PolicyApprover
from aios.reactor.engine import (
    Outcome,
    Reactor,
    ReactorSettings,
    action_context,
    remediation_id,
)
from aios.reactor.seal import key_path, seal, sealed
from aios.reactor.state import REACTOR_SOURCE


def interval(file: Path) -> int:
    return int(json.loads(file.read_text())["heartbeat"]["interval"])


def risky(config_file: Path, pid: str = "slow_heartbeat", **fields: Any) -> Playbook:
    """A medium-risk playbook: it waits for a person."""
    data: dict[str, Any] = {
        "id": pid,
        "description": "slows the heartbeat of an overloaded writer",
        "risk": "medium",
        "trigger": {"type": "writer.overloaded"},
        "actions": [
            {
                "type": "config.update",
                "file": str(config_file),
                "key": "heartbeat.interval",
                "value": 120,
            }
        ],
        "verify": {
            "probe": "file_value",
            "file": str(config_file),
            "key": "heartbeat.interval",
            "expect": "==120",
            "within": "0.3s",
            "interval": "0.1s",
        },
    }
    data.update(fields)
    return Playbook.model_validate(data)


def settings(home: HomePaths, root: Path, **kw: Any) -> ReactorSettings:
    return ReactorSettings(home, allowed_roots=(root,), **kw)


def deferring(
    home: HomePaths, root: Path, playbooks: list[Playbook], **kw: Any
) -> tuple[Reactor, PolicyApprover]:
    """A reactor that defers approvals; its approver must never be asked."""
    approver = PolicyApprover(True, "should-not-be-asked")
    reactor = Reactor(
        PlaybookIndex(playbooks),
        aios.bus(),
        settings(home, root, **kw.pop("reactor_settings", {})),
        approver,
        defer_approvals=True,
        **kw,
    )
    return reactor, approver


def trigger(host: str = "web1") -> Event:
    return aios.emit("writer.overloaded", {"queue": 900}, severity="high", labels={"host": host})


def steps(of: Event) -> list[Event]:
    return [e for e in aios.bus().log.events() if e.correlation_id == of.id]


def count(of: Event, event_type: str) -> int:
    return sum(1 for e in steps(of) if e.type == event_type)


def awaiting(reactor: Reactor, event: Event) -> Outcome:
    [outcome] = reactor.process(event)
    assert outcome.status == "awaiting_approval", outcome
    assert outcome.request is not None
    return outcome


def request_of(outcome: Outcome) -> ApprovalRequest:
    assert outcome.request is not None
    return outcome.request


def grant(approver: str = "alice") -> ApprovalDecision:
    return ApprovalDecision(True, approver, "checked the writer's load")


def deny(approver: str = "bob") -> ApprovalDecision:
    return ApprovalDecision(False, approver, "not during the release")


def react_deferred(
    home: HomePaths, root: Path, index: PlaybookIndex, event: Event
) -> list[tuple[Event, Outcome]]:
    """``react_to`` as the flows call it: approvals deferred to the caller."""
    return runner.react_to(
        aios.bus(),
        home,
        index,
        settings(home, root),
        PolicyApprover(False),
        [event.id],
        defer_approvals=True,
    )


# ------------------------------------------------------------------ asking
def test_a_medium_risk_remediation_waits_for_a_person_and_changes_nothing(
    home: HomePaths, root: Path, config_file: Path
) -> None:
    before = config_file.read_bytes()
    reactor, approver = deferring(home, root, [risky(config_file)])
    event = trigger()
    outcome = awaiting(reactor, event)
    request = request_of(outcome)
    assert outcome.reason == "waiting for a person to approve or reject it"
    assert outcome.risk == "medium"
    assert request.remediation_id == outcome.remediation_id
    assert request.playbook == "slow_heartbeat" and request.risk == "medium"
    assert request.trigger["id"] == event.id
    assert request.plan[0]["details"]["new"] == 120
    assert request.breaker["open"] is False
    for needle in ("slow_heartbeat", "effective risk medium", "writer.overloaded", "60 -> 120"):
        assert needle in request.description
    assert config_file.read_bytes() == before
    assert approver.requests == []  # deferred: nobody was asked in-process
    assert [e.type for e in steps(event)] == ["playbook.matched", "approval.requested"]
    requested = steps(event)[1]
    assert requested.payload["remediation_id"] == outcome.remediation_id
    assert requested.payload["description"] == request.description


def test_processing_the_same_trigger_again_does_not_ask_twice(
    home: HomePaths, root: Path, config_file: Path
) -> None:
    reactor, _ = deferring(home, root, [risky(config_file)])
    event = trigger()
    first = awaiting(reactor, event)
    second = awaiting(reactor, event)
    assert request_of(second).remediation_id == request_of(first).remediation_id
    # A retried run: a fresh reactor, its state from the log.
    third = runner.react_to(
        aios.bus(),
        home,
        reactor.index,
        settings(home, root),
        PolicyApprover(False),
        [event.id],
        defer_approvals=True,
    )
    assert [o.status for _, o in third] == ["awaiting_approval"]
    assert count(event, "approval.requested") == 1
    assert count(event, "playbook.matched") == 1
    assert interval(config_file) == 60


# ------------------------------------------------------------------ answers
def test_a_granted_decision_lets_the_next_run_act_verify_and_never_ask_again(
    home: HomePaths, root: Path, config_file: Path
) -> None:
    reactor, approver = deferring(home, root, [risky(config_file)])
    event = trigger()
    request = request_of(awaiting(reactor, event))
    assert reactor.record_decision(event, request, grant()) is None
    assert interval(config_file) == 60  # recording the answer runs nothing
    [granted] = [e for e in steps(event) if e.type == "approval.granted"]
    assert granted.payload["approver"] == "alice"
    assert granted.payload["reason"] == "checked the writer's load"
    [outcome] = reactor.process(event)
    assert outcome.status == "succeeded"
    assert interval(config_file) == 120
    assert [e.type for e in steps(event)] == [
        "playbook.matched",
        "approval.requested",
        "approval.granted",
        "remediation.started",
        "action.started",
        "action.completed",
        "verify.passed",
        "remediation.finished",
    ]
    again = reactor.process(event)
    assert [o.status for o in again] == ["skipped"]
    assert again[0].reason == "already done (succeeded)"
    assert count(event, "approval.requested") == 1
    assert count(event, "action.started") == 1
    assert approver.requests == []


def test_a_retried_run_acts_on_a_grant_recorded_by_another_process(
    home: HomePaths, root: Path, config_file: Path
) -> None:
    pb = risky(config_file)
    index = PlaybookIndex([pb])
    event = trigger()
    bus = aios.bus()
    [(_, first)] = react_deferred(home, root, index, event)
    assert first.status == "awaiting_approval"
    answer = runner.record_decision(
        bus, index, settings(home, root), event.id, request_of(first), grant()
    )
    assert answer is None
    [(_, second)] = react_deferred(home, root, index, event)
    assert second.status == "succeeded"
    assert interval(config_file) == 120
    [(_, third)] = react_deferred(home, root, index, event)
    assert third.status == "skipped" and third.reason.startswith("already done")
    assert count(event, "approval.requested") == 1
    assert count(event, "remediation.started") == 1


def test_a_denied_decision_is_recorded_and_later_runs_skip_without_asking_or_acting(
    home: HomePaths, root: Path, config_file: Path
) -> None:
    before = config_file.read_bytes()
    reactor, _ = deferring(home, root, [risky(config_file)])
    event = trigger()
    request = request_of(awaiting(reactor, event))
    skipped = reactor.record_decision(event, request, deny())
    assert skipped is not None
    assert skipped.status == "skipped"
    assert skipped.reason == "denied: not during the release"
    assert [e.type for e in steps(event)][-2:] == ["approval.denied", "playbook.skipped"]
    assert steps(event)[-1].payload["reason"] == "denied"
    for again in (reactor, deferring(home, root, [risky(config_file)])[0]):
        [outcome] = again.process(event)
        assert outcome.status == "skipped"
        assert outcome.reason == "denied: bob: not during the release"
    assert config_file.read_bytes() == before
    assert count(event, "approval.requested") == 1
    assert count(event, "remediation.started") == 0


@pytest.fixture
def window_passed(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Makes the reactor's state window (5 minutes at least) a few milliseconds, so that what
    happened a moment ago is, for the window, as long ago as it would be after hours."""

    def passed() -> None:
        monkeypatch.setattr(runner, "state_window", lambda playbooks: timedelta(milliseconds=5))
        time.sleep(0.05)

    return passed


@pytest.mark.parametrize("answer", ["none yet", "denied", "granted and done"])
def test_what_a_person_was_asked_holds_beyond_the_state_window(
    home: HomePaths, root: Path, config_file: Path, window_passed: Any, answer: str
) -> None:
    """A trigger handled again long after it was first asked about (a retried run, orphan
    recovery) neither runs without the person, nor forgets their denial, nor runs twice."""
    index = PlaybookIndex([risky(config_file)])
    event = trigger()
    [(_, first)] = react_deferred(home, root, index, event)
    if answer == "denied":
        runner.record_decision(
            aios.bus(), index, settings(home, root), event.id, request_of(first), deny()
        )
    elif answer == "granted and done":
        runner.record_decision(
            aios.bus(), index, settings(home, root), event.id, request_of(first), grant()
        )
        assert [o.status for _, o in react_deferred(home, root, index, event)] == ["succeeded"]
        config_file.write_text(json.dumps({"heartbeat": {"interval": 60}, "retries": 1}))
    window_passed()
    # Meanwhile the playbook came to say low risk and automatic.
    lowered = PlaybookIndex([risky(config_file, risk="low", auto_execute=True)])
    [(_, again)] = react_deferred(home, root, lowered, event)
    expected = {
        "none yet": ("awaiting_approval", "waiting for a person"),
        "denied": ("skipped", "denied: bob"),
        "granted and done": ("skipped", "already done"),
    }[answer]
    assert (again.status, again.reason[: len(expected[1])]) == expected
    assert interval(config_file) == 60
    asked = 2 if answer == "none yet" else 1  # the edited playbook is a new plan to ask about
    assert count(event, "approval.requested") == asked
    assert count(event, "remediation.started") == (1 if answer == "granted and done" else 0)


@pytest.mark.parametrize("source", ["aios.approvals", "mallory", "aios.reactor"])
def test_only_the_gates_own_waiting_says_which_runs_ask(
    home: HomePaths, root: Path, config_file: Path, source: str
) -> None:
    """``approval.waiting`` counts only from the gate itself: the same event from anyone else
    neither makes a run wait for another that is not asking, nor hides a request nobody can
    answer any more from orphan recovery."""
    from aios.prefect_api import MemoryPrefectAPI
    from aios.reactor.decisions import orphaned_requests, other_paused_runs

    reactor, _ = deferring(home, root, [risky(config_file)])
    event = trigger()
    request = request_of(awaiting(reactor, event))
    api = MemoryPrefectAPI()
    paused = api.add_flow_run("PAUSED", state_name="Paused")["id"]  # paused for anything
    aios.bus().emit(
        "approval.waiting",
        {"remediation_id": request.remediation_id, "playbook": request.playbook,
         "risk": request.risk, "flow_run_id": paused},
        source=source,
    )  # fmt: skip
    believed = source == "aios.approvals"
    assert other_paused_runs(home, api, request.remediation_id, "mine") == (
        [paused] if believed else []
    )
    orphans = [o.remediation_id for o in orphaned_requests(home, api)]
    assert orphans == ([] if believed else [request.remediation_id])


def test_the_first_decision_stands_a_later_grant_is_ignored(
    home: HomePaths, root: Path, config_file: Path
) -> None:
    reactor, _ = deferring(home, root, [risky(config_file)])
    event = trigger()
    request = request_of(awaiting(reactor, event))
    reactor.record_decision(event, request, deny())
    late = reactor.record_decision(event, request, grant("mallory"))
    assert late is not None and late.status == "skipped"
    assert late.reason.startswith("denied: bob")
    assert count(event, "approval.granted") == 0
    assert reactor.process(event)[0].status == "skipped"
    assert interval(config_file) == 60


def test_the_first_decision_stands_a_later_denial_is_ignored(
    home: HomePaths, root: Path, config_file: Path
) -> None:
    pb = risky(config_file)
    reactor, _ = deferring(home, root, [pb])
    event = trigger()
    request = request_of(awaiting(reactor, event))
    assert reactor.record_decision(event, request, grant()) is None
    # The later answer comes through another process.
    later = runner.record_decision(
        aios.bus(), PlaybookIndex([pb]), settings(home, root), event.id, request, deny()
    )
    assert later is None
    assert count(event, "approval.denied") == 0
    assert reactor.process(event)[0].status == "succeeded"


def test_an_expired_request_is_recorded_as_expired_and_never_runs(
    home: HomePaths, root: Path, config_file: Path
) -> None:
    reactor, _ = deferring(home, root, [risky(config_file)])
    event = trigger()
    request = request_of(awaiting(reactor, event))
    timeout = ApprovalDecision(False, "nobody", "no answer before the timeout", expired=True)
    skipped = reactor.record_decision(event, request, timeout)
    assert skipped is not None and skipped.status == "skipped"
    types = [e.type for e in steps(event)]
    assert "approval.expired" in types and "approval.denied" not in types
    [expired] = [e for e in steps(event) if e.type == "approval.expired"]
    assert sealed(home, "expired", expired.payload)
    [outcome] = reactor.process(event)
    assert outcome.status == "skipped" and "no answer before the timeout" in outcome.reason
    assert interval(config_file) == 60


def test_a_decision_for_another_trigger_or_an_unknown_playbook_is_refused(
    home: HomePaths, root: Path, config_file: Path
) -> None:
    reactor, _ = deferring(home, root, [risky(config_file)])
    first, second = trigger("a"), trigger("b")
    request = request_of(awaiting(reactor, first))
    with pytest.raises(InputError, match="is not slow_heartbeat on"):
        reactor.record_decision(second, request, grant())
    stranger = ApprovalRequest(**{**request.__dict__, "playbook": "gone"})
    with pytest.raises(InputError, match="is not gone on"):
        reactor.record_decision(first, stranger, grant())
    with pytest.raises(InputError, match="no event with id"):
        runner.record_decision(
            aios.bus(), reactor.index, settings(home, root), "0" * 32, request, grant()
        )
    assert count(first, "approval.granted") == 0 and count(second, "approval.granted") == 0


def test_an_answer_for_a_playbook_no_longer_loaded_is_recorded_and_runs_nothing(
    home: HomePaths, root: Path, config_file: Path
) -> None:
    reactor, _ = deferring(home, root, [risky(config_file)])
    event = trigger()
    request = request_of(awaiting(reactor, event))
    # The playbook's file broke (or went) while the person was deciding.
    after, _ = deferring(home, root, [])
    outcome = after.record_decision(event, request, grant())
    assert outcome is not None and outcome.status == "skipped"
    assert "no longer loaded" in outcome.reason
    [granted] = [e for e in steps(event) if e.type == "approval.granted"]
    assert sealed(home, "granted", granted.payload) and granted.payload["approver"] == "alice"
    assert count(event, "remediation.started") == 0 and interval(config_file) == 60


# ------------------------------------------------------------------ seals
def test_recorded_decisions_carry_a_seal_only_this_home_can_make(
    home: HomePaths, root: Path, config_file: Path
) -> None:
    reactor, _ = deferring(home, root, [risky(config_file)])
    event = trigger()
    request = request_of(awaiting(reactor, event))
    reactor.record_decision(event, request, grant())
    [granted] = [e for e in steps(event) if e.type == "approval.granted"]
    rid = request.remediation_id
    assert granted.payload["digest"] == request.digest != ""
    assert granted.payload["seal"] == seal(home, rid, "granted", "alice", request.digest)
    assert granted.payload["seal"] != seal(home, rid, "granted", "alice")  # bound to the plan
    assert sealed(home, "granted", granted.payload)
    assert not sealed(home, "denied", granted.payload)
    assert oct(key_path(home).stat().st_mode & 0o777) == "0o600"


@pytest.mark.parametrize("change", ["playbook edited", "other target"])
def test_an_approval_is_for_the_plan_that_was_shown(
    home: HomePaths, root: Path, config_file: Path, change: str
) -> None:
    reactor, _ = deferring(home, root, [risky(config_file)])
    event = trigger()
    request = request_of(awaiting(reactor, event))
    assert "heartbeat.interval" in request.description
    assert reactor.record_decision(event, request, grant()) is None
    # Before it runs, what it would do changes: the approval does not cover that.
    if change == "playbook edited":
        action = {"type": "config.update", "file": str(config_file), "key": "retries"}
        edited = risky(config_file, actions=[{**action, "value": 99}])
        reactor, _ = deferring(home, root, [edited])
    else:
        other = root / "other.json"
        other.write_text(config_file.read_text())
        reactor, _ = deferring(home, root, [risky(other)])
    again = request_of(awaiting(reactor, event))
    assert again.remediation_id == request.remediation_id and again.digest != request.digest
    assert interval(config_file) == 60 and count(event, "remediation.started") == 0
    [stale] = [e for e in steps(event) if e.type == "approval.stale"]
    assert stale.payload["approved_digest"] == request.digest
    assert count(event, "approval.requested") == 2  # the new plan is asked about
    assert reactor.record_decision(event, again, grant("bob")) is None
    reactor.process(event)
    assert count(event, "remediation.started") == 1  # what bob approved, and only that
    assert count(event, "approval.granted") == 2


def test_a_playbook_that_lowers_its_own_risk_is_asked_about_again(
    home: HomePaths, root: Path, config_file: Path
) -> None:
    reactor, _ = deferring(home, root, [risky(config_file, risk="high")])
    event = trigger()
    request = request_of(awaiting(reactor, event))
    assert request.risk == "high"
    assert reactor.record_decision(event, request, grant()) is None
    # Between the question and the answer the file came to say medium, actions unchanged: an
    # approver allowed only medium risk must not inherit an approval given for high.
    reactor, _ = deferring(home, root, [risky(config_file, risk="medium")])
    again = request_of(awaiting(reactor, event))
    assert again.risk == "medium" and again.digest != request.digest
    assert count(event, "approval.stale") == 1 and count(event, "remediation.started") == 0
    assert interval(config_file) == 60


def test_a_playbook_that_lowers_itself_to_automatic_still_waits_for_the_person(
    home: HomePaths, root: Path, config_file: Path
) -> None:
    reactor, _ = deferring(home, root, [risky(config_file)])
    event = trigger()
    request = request_of(awaiting(reactor, event))
    # While the question waits, the file comes to say low risk and automatic.
    lowered = risky(config_file, risk="low", auto_execute=True)
    reactor, _ = deferring(home, root, [lowered])
    again = awaiting(reactor, event)
    assert again.remediation_id == request.remediation_id
    assert count(event, "remediation.started") == 0 and interval(config_file) == 60
    # A fresh event for the lowered playbook runs on its own, as low risk does.
    assert reactor.process(trigger("other"))[0].status == "succeeded"


def test_a_decision_records_who_and_whether_a_code_proved_it(
    home: HomePaths, root: Path, config_file: Path
) -> None:
    reactor, _ = deferring(home, root, [risky(config_file)])
    first, second = trigger("a"), trigger("b")
    proved = ApprovalDecision(True, "ana", "checked", verified=True, code_step=59_000_000)
    assert reactor.record_decision(first, request_of(awaiting(reactor, first)), proved) is None
    assert (
        reactor.record_decision(second, request_of(awaiting(reactor, second)), deny()) is not None
    )
    decided = [e.payload for e in steps(first) + steps(second) if e.type.startswith("approval.")]
    decided = [p for p in decided if "verified" in p]
    assert [(p["approver"], p["verified"], p.get("code_step")) for p in decided] == [
        ("ana", True, 59_000_000),
        ("bob", False, None),
    ]


@pytest.mark.parametrize("forgery", ["no seal", "wrong seal", "another remediation", "other key"])
def test_a_forged_grant_lets_nothing_run(
    home: HomePaths, root: Path, config_file: Path, tmp_path: Path, forgery: str
) -> None:
    pb = risky(config_file)
    reactor, _ = deferring(home, root, [pb])
    event, other = trigger("a"), trigger("b")
    rid = request_of(awaiting(reactor, event)).remediation_id
    other_request = request_of(awaiting(reactor, other))
    payload: dict[str, Any] = {"remediation_id": rid, "playbook": pb.id, "approver": "alice"}
    if forgery == "wrong seal":
        payload["seal"] = "0" * 64
    elif forgery == "another remediation":
        # A real grant of another remediation, its seal copied onto this one.
        reactor.record_decision(other, other_request, grant())
        [real] = [e for e in steps(other) if e.type == "approval.granted"]
        payload["seal"] = real.payload["seal"]
    elif forgery == "other key":
        payload["seal"] = seal(HomePaths(tmp_path / "elsewhere"), rid, "granted", "alice")
    aios.bus().emit(
        "approval.granted",
        {**payload, "reason": "forged"},
        source=REACTOR_SOURCE,
        correlation_id=event.id,
    )
    assert reactor.process(event)[0].status == "awaiting_approval"
    retried = runner.react_to(
        aios.bus(),
        home,
        PlaybookIndex([pb]),
        settings(home, root),
        PolicyApprover(False),
        [event.id],
        defer_approvals=True,
    )
    assert [o.status for _, o in retried] == ["awaiting_approval"]
    assert count(event, "remediation.started") == 0
    assert interval(config_file) == 60
    # The real answer is still taken: the forgery did not count as the first decision.
    assert reactor.record_decision(event, request_of(retried[0][1]), grant()) is None
    assert reactor.process(event)[0].status == "succeeded"


def test_a_forged_denial_does_not_block_a_real_approval(
    home: HomePaths, root: Path, config_file: Path
) -> None:
    pb = risky(config_file)
    reactor, _ = deferring(home, root, [pb])
    event = trigger()
    request = request_of(awaiting(reactor, event))
    aios.bus().emit(
        "approval.denied",
        {"remediation_id": request.remediation_id, "playbook": pb.id, "approver": "mallory"},
        source=REACTOR_SOURCE,
        correlation_id=event.id,
    )
    assert reactor.process(event)[0].status == "awaiting_approval"
    assert reactor.record_decision(event, request, grant()) is None
    assert reactor.process(event)[0].status == "succeeded"


# ------------------------------------------------------------------ policy
def test_approve_from_low_makes_even_a_low_risk_automatic_playbook_wait(
    home: HomePaths, root: Path, config_file: Path
) -> None:
    low = risky(config_file, risk="low")
    assert not low.needs_approval()
    reactor, _ = deferring(home, root, [low], reactor_settings={"approve_from": "low"})
    event = trigger()
    outcome = awaiting(reactor, event)
    assert outcome.risk == "low"
    assert "the risk policy asks a person for every remediation" in request_of(outcome).description
    assert interval(config_file) == 60
    # With the default policy the same playbook runs at once.
    default, _ = deferring(home, root, [low])
    assert default.process(trigger("other"))[0].status == "succeeded"


def test_auto_execute_off_waits_even_at_low_risk(
    home: HomePaths, root: Path, config_file: Path
) -> None:
    manual = risky(config_file, risk="low", auto_execute=False)
    reactor, _ = deferring(home, root, [manual])
    outcome = awaiting(reactor, trigger())
    assert "auto_execute is off" in request_of(outcome).description


# ------------------------------------------------------------------ run guard
class Guard:
    """A real context manager that counts how often a remediation ran inside it."""

    def __init__(self, watched: Path) -> None:
        self.watched = watched
        self.entries = 0
        self.exits = 0
        self.changed_inside: list[bool] = []

    def __call__(self) -> AbstractContextManager[object]:
        return self._slot()

    @contextmanager
    def _slot(self) -> Iterator[object]:
        self.entries += 1
        before = self.watched.read_bytes()
        try:
            yield self
        finally:
            self.exits += 1
            self.changed_inside.append(self.watched.read_bytes() != before)


def test_the_run_guard_is_entered_only_around_executions(
    home: HomePaths, root: Path, config_file: Path
) -> None:
    guard = Guard(config_file)
    pb = risky(config_file)
    reactor, _ = deferring(home, root, [pb], run_guard=guard)
    event = trigger()
    request = request_of(awaiting(reactor, event))
    awaiting(reactor, event)
    assert guard.entries == 0  # awaiting approval
    reactor.record_decision(event, request, grant())
    assert reactor.process(event)[0].status == "succeeded"
    assert (guard.entries, guard.exits, guard.changed_inside) == (1, 1, [True])
    assert reactor.process(event)[0].status == "skipped"  # already done
    denied = trigger("db1")
    reactor.record_decision(denied, request_of(awaiting(reactor, denied)), deny())
    assert reactor.process(denied)[0].status == "skipped"
    assert guard.entries == 1


def test_the_run_guard_is_not_entered_for_dry_runs_thresholds_or_throttles(
    home: HomePaths, root: Path, config_file: Path
) -> None:
    guard = Guard(config_file)
    dry, _ = deferring(home, root, [risky(config_file, risk="low")], run_guard=guard, dry_run=True)
    assert dry.process(trigger())[0].status == "dry_run"
    assert guard.entries == 0

    counted = risky(
        config_file,
        risk="low",
        trigger={
            "type": "writer.overloaded",
            "threshold": {"count": 2, "within": "1m"},
            "throttle": {"once_within": "1h"},
        },
    )
    reactor, _ = deferring(home, root, [counted], run_guard=guard)
    assert reactor.process(trigger())[0].status == "waiting"
    assert guard.entries == 0
    assert reactor.process(trigger())[0].status == "succeeded"
    assert guard.entries == 1
    throttled = reactor.process(trigger())[0]
    assert throttled.status == "skipped" and throttled.reason.startswith("throttled")
    assert (guard.entries, guard.exits, guard.changed_inside) == (1, 1, [True])


def test_react_to_passes_the_run_guard_on(home: HomePaths, root: Path, config_file: Path) -> None:
    guard = Guard(config_file)
    low = risky(config_file, risk="low")
    event = trigger()
    results = runner.react_to(
        aios.bus(),
        home,
        PlaybookIndex([low]),
        settings(home, root),
        PolicyApprover(False),
        [event.id],
        run_guard=guard,
    )
    assert [o.status for _, o in results] == ["succeeded"]
    assert guard.changed_inside == [True]


# ------------------------------------------------------------------ react_to
def run_to(
    home: HomePaths, root: Path, playbooks: list[Playbook], ids: list[str], **kw: Any
) -> list[tuple[Event, Outcome]]:
    return runner.react_to(
        aios.bus(),
        home,
        PlaybookIndex(playbooks),
        settings(home, root),
        PolicyApprover(True),
        ids,
        **kw,
    )


def test_react_to_names_an_unknown_event_id(home: HomePaths, root: Path, config_file: Path) -> None:
    known = trigger()
    missing = "01a1fe04-27e7-7559-bd22-d79fe572102a"
    with pytest.raises(InputError, match=missing):
        run_to(home, root, [risky(config_file, risk="low")], [known.id, missing])
    assert interval(config_file) == 60  # nothing was handled


def test_react_to_handles_several_ids_in_log_order(
    home: HomePaths, root: Path, config_file: Path
) -> None:
    add = {
        "type": "config.update",
        "file": str(config_file),
        "key": "retries",
        "op": "add",
        "value": 1,
    }
    bump = risky(config_file, risk="low", actions=[add], verify=None)
    events = [trigger(h) for h in ("a", "b", "c")]
    results = run_to(home, root, [bump], [e.id for e in reversed(events)] + [events[0].id])
    assert [e.id for e, _ in results] == [e.id for e in events]
    assert [o.status for _, o in results] == ["unverified"] * 3
    assert json.loads(config_file.read_text())["retries"] == 4
    started = [e for e in aios.bus().log.events() if e.type == "remediation.started"]
    assert [e.correlation_id for e in started] == [e.id for e in events]


def test_react_to_runs_only_the_playbooks_asked_for(
    home: HomePaths, root: Path, config_file: Path
) -> None:
    slow = risky(config_file, "slow_heartbeat", risk="low")
    other = risky(
        config_file,
        "note_it",
        risk="low",
        actions=[{"type": "wait", "duration": "0s"}],
        verify=None,
    )
    event = trigger()
    results = run_to(home, root, [slow, other], [event.id], only=["note_it"])
    assert [(o.playbook, o.status) for _, o in results] == [("note_it", "unverified")]
    assert interval(config_file) == 60
    assert run_to(home, root, [slow, other], [event.id], only=[]) == []


def test_react_to_counts_thresholds_from_the_history_before_the_first_event(
    home: HomePaths, root: Path, config_file: Path
) -> None:
    counted = risky(
        config_file,
        risk="low",
        trigger={"type": "writer.overloaded", "threshold": {"count": 3, "within": "10m"}},
    )
    first, second, third = trigger(), trigger(), trigger()
    [(_, alone)] = run_to(home, root, [counted], [first.id])
    assert alone.status == "waiting" and alone.reason.startswith("1 of 3 events")
    for _ in range(2):  # a retried run does not count the event itself twice
        [(_, waiting)] = run_to(home, root, [counted], [second.id])
        assert waiting.status == "waiting" and waiting.reason.startswith("2 of 3 events")
    assert interval(config_file) == 60
    assert [o.status for _, o in run_to(home, root, [counted], [third.id])] == ["succeeded"]
    assert interval(config_file) == 120


# ------------------------------------------------------------ interrupted runs
def start_by_hand(
    home: HomePaths, root: Path, pb: Playbook, event: Event, actions_done: int
) -> str:
    """What a runner that died leaves in the log: started, some actions completed (for real),
    never finished."""
    rid = remediation_id(event, pb)
    base = {"remediation_id": rid, "playbook": pb.id, "target": "labels.host=web1"}
    bus = aios.bus()
    bus.emit(
        "remediation.started",
        {**base, "trigger_id": event.id, "actions": [a.type for a in pb.actions]},
        source=REACTOR_SOURCE,
        correlation_id=event.id,
    )
    for index in range(actions_done):
        action = pb.actions[index]
        undo = action.execute(action_context(settings(home, root), event, rid, index))
        bus.emit(
            "action.completed",
            {**base, "index": index, "action": action.type, "undo": undo},
            source=REACTOR_SOURCE,
            correlation_id=event.id,
        )
    return rid


def two_updates(config_file: Path) -> Playbook:
    return risky(
        config_file,
        "retune_writer",
        risk="low",
        actions=[
            {
                "type": "config.update",
                "file": str(config_file),
                "key": "heartbeat.interval",
                "value": 120,
            },
            {"type": "config.update", "file": str(config_file), "key": "retries", "value": 5},
        ],
    )


def test_an_interrupted_remediation_is_rolled_back_and_finished(
    home: HomePaths, root: Path, config_file: Path
) -> None:
    before = config_file.read_bytes()
    pb = two_updates(config_file)
    event = trigger()
    rid = start_by_hand(home, root, pb, event, actions_done=1)
    assert interval(config_file) == 120
    reactor, _ = deferring(home, root, [pb])
    outcome = reactor.roll_back_interrupted(event, rid, "the runner died")
    assert outcome.status == "rolled_back"
    assert outcome.reason == "interrupted: the runner died"
    assert config_file.read_bytes() == before
    rolled = [e for e in steps(event) if e.type == "rollback.completed"]
    assert [e.payload["index"] for e in rolled] == [0]
    finished = steps(event)[-1]
    assert finished.type == "remediation.finished"
    assert finished.payload["outcome"] == "rolled_back"
    assert finished.payload["rolled_back"] == [rolled[0].payload["restored"]]
    again = reactor.roll_back_interrupted(event, rid, "the runner died")
    assert again.status == "skipped" and again.reason == "already done (rolled_back)"
    # Nothing runs it again afterwards either.
    assert reactor.process(event)[0].reason == "already done (rolled_back)"
    assert config_file.read_bytes() == before


def test_an_interrupted_remediation_whose_playbook_is_gone_is_escalated(
    home: HomePaths, root: Path, config_file: Path
) -> None:
    pb = two_updates(config_file)
    event = trigger()
    rid = start_by_hand(home, root, pb, event, actions_done=1)
    reactor, _ = deferring(home, root, [])  # the playbook is no longer loaded
    outcome = reactor.roll_back_interrupted(event, rid, "the runner died")
    assert outcome.status == "failed" and "escalated" in outcome.reason
    [escalated] = [e for e in steps(event) if e.type == "remediation.escalated"]
    assert escalated.severity is Severity.HIGH
    assert escalated.payload["not_restored"] == ["action 0"]
    assert "a person must undo" in escalated.payload["detail"]
    assert steps(event)[-1].payload["outcome"] == "failed"
    assert interval(config_file) == 120  # nothing could be undone


def test_rolling_back_an_unknown_remediation_does_nothing(
    home: HomePaths, root: Path, config_file: Path
) -> None:
    reactor, _ = deferring(home, root, [two_updates(config_file)])
    event = trigger()
    outcome = reactor.roll_back_interrupted(event, "no-such-remediation", "why not")
    assert outcome.status == "skipped" and "no remediation" in outcome.reason
    assert steps(event) == []


RUNNER = """
import json, sys
from pathlib import Path
import aios
from aios.home import HomePaths
from aios.playbooks.matcher import PlaybookIndex
from aios.playbooks.model import Playbook
from aios.reactor.approval import PolicyApprover
from aios.reactor.engine import Reactor, ReactorSettings

playbook = Playbook.model_validate(json.loads(sys.argv[1]))
settings = ReactorSettings(HomePaths.current(), allowed_roots=(Path(sys.argv[2]),))
reactor = Reactor(PlaybookIndex([playbook]), aios.bus(), settings, PolicyApprover(True))
[trigger] = [e for e in aios.bus().log.events() if e.id == sys.argv[3]]
reactor.process(trigger)
"""


def test_a_runner_killed_mid_remediation_is_rolled_back_once_it_is_dead(
    home: HomePaths, root: Path, config_file: Path
) -> None:
    before = config_file.read_bytes()
    pb = risky(
        config_file,
        "retune_then_settle",
        risk="low",
        actions=[
            {
                "type": "config.update",
                "file": str(config_file),
                "key": "heartbeat.interval",
                "value": 120,
            },
            {"type": "wait", "duration": "60s"},
        ],
    )
    event = trigger()
    rid = remediation_id(event, pb)
    child = subprocess.Popen(
        [sys.executable, "-c", RUNNER, pb.model_dump_json(), str(root), event.id],
        env={**os.environ, "AIOS_HOME": str(home.root)},
    )
    try:
        deadline = time.monotonic() + 30
        while count(event, "action.started") < 2:  # the first action done, the wait begun
            assert child.poll() is None, "the runner ended early"
            assert time.monotonic() < deadline, "the runner never got to its second action"
            time.sleep(0.05)
        assert interval(config_file) == 120
        reactor, _ = deferring(home, root, [pb])
        alive = reactor.roll_back_interrupted(event, rid, "looked stuck")
        assert alive.status == "skipped" and alive.reason == "still running"
        assert interval(config_file) == 120
    finally:
        child.kill()
        child.wait(timeout=30)
    outcome = reactor.roll_back_interrupted(event, rid, "its runner was killed")
    assert outcome.status == "rolled_back"
    assert config_file.read_bytes() == before
    finished = [e for e in steps(event) if e.type == "remediation.finished"]
    assert len(finished) == 1 and finished[0].payload["outcome"] == "rolled_back"


def test_react_to_counts_the_events_between_the_ids_it_is_given(
    home: HomePaths, root: Path, config_file: Path
) -> None:
    """The executor hands over every proposed firing of a playbook at once: events between
    them count toward the threshold as they did when the plan was made."""
    counted = risky(
        config_file,
        risk="low",
        trigger={"type": "writer.overloaded", "threshold": {"count": 3, "within": "10m"}},
        actions=[{"type": "wait", "duration": "0s"}],
        verify=None,
    )
    start = datetime.now(UTC) - timedelta(minutes=30)
    events = [
        aios.bus().emit(
            "writer.overloaded",
            {"queue": 900},
            labels={"host": "web1"},
            time=start + timedelta(minutes=minute),
        )
        for minute in (0, 1, 2, 15, 16, 17)
    ]
    results = run_to(home, root, [counted], [events[2].id, events[5].id])
    assert [(e.id, o.status) for e, o in results] == [
        (events[2].id, "unverified"),
        (events[5].id, "unverified"),
    ]
