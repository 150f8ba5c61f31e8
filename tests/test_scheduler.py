"""The scheduler: which events go where, and which urgent ones start a reactor run (and why not)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import aios
from aios.event import Event, Priority, Severity
from aios.home import HomePaths
from aios.playbooks.matcher import PlaybookIndex
from aios.playbooks.model import Playbook
from aios.reactor.approval import PolicyApprover
from aios.reactor.engine import Reactor, ReactorSettings
from aios.reactor.state import REACTOR_SOURCE, REACTOR_TYPES
from aios.scheduler import PRUNE_EVERY, Route, Scheduler, fingerprint, route_of
from aios.store import open_store
from aios.store.consumers import events_between, last_seq

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


def book(pid: str = "restart_worker", **fields: Any) -> Playbook:
    data: dict[str, Any] = {
        "id": pid,
        "trigger": {"type": "agent.down"},
        "actions": [{"type": "wait", "duration": "0s"}],
    }
    data.update(fields)
    return Playbook.model_validate(data)


def event(
    type: str = "agent.down",
    severity: str = "high",
    *,
    at: datetime = NOW,
    source: str = "monitor",
    labels: dict[str, str] | None = None,
    payload: dict[str, Any] | None = None,
) -> Event:
    return Event.create(
        type=type,
        severity=severity,
        time=at,
        source=source,
        labels={"host": "web1"} if labels is None else labels,
        payload={"agent": "worker"} if payload is None else payload,
    )


def scheduler(home: HomePaths, *playbooks: Playbook, **kw: Any) -> Scheduler:
    return Scheduler(PlaybookIndex(playbooks), home, **kw)


def reactor_step(
    kind: str, rid: str, playbook: str, target: str, at: datetime, **payload: Any
) -> Event:
    return Event.create(
        type=kind,
        source=REACTOR_SOURCE,
        time=at,
        payload={
            "remediation_id": rid,
            "playbook": playbook,
            "target": target,
            "decided_at": at.isoformat(),
            **payload,
        },
    )


def runs(
    sched: Scheduler, playbook: str, target: str, outcomes: list[str], start: datetime
) -> None:
    """Feed the scheduler one started/finished pair per outcome, a minute apart."""
    for number, outcome in enumerate(outcomes):
        at = start + timedelta(minutes=number)
        rid = f"{playbook}-{number}"
        sched.observe(reactor_step("remediation.started", rid, playbook, target, at))
        sched.observe(
            reactor_step(
                "remediation.finished",
                rid,
                playbook,
                target,
                at + timedelta(seconds=5),
                outcome=outcome,
            )
        )


# ------------------------------------------------------------------ routing
@pytest.mark.parametrize(
    ("severity", "priority", "route"),
    [
        ("critical", Priority.P0, Route.REACTOR),
        ("high", Priority.P1, Route.REACTOR),
        ("medium", Priority.P2, Route.EXECUTOR),
        ("low", Priority.P3, Route.ANALYST),
        ("info", Priority.P3, Route.ANALYST),
    ],
)
def test_the_priority_decides_the_route(severity: str, priority: Priority, route: Route) -> None:
    item = event(severity=severity)
    assert item.priority is priority
    assert route_of(item) is route


@pytest.mark.parametrize("source", ["aios.reactor", "aios.playbook", "aios.scheduler"])
@pytest.mark.parametrize("severity", ["critical", "high", "medium", "info"])
def test_aios_own_remediation_steps_are_routed_nowhere(source: str, severity: str) -> None:
    assert route_of(event(severity=severity, source=source)) is None


def test_other_aios_components_are_routed_like_anyone_else() -> None:
    assert route_of(event(severity="critical", source="aios.monitor")) is Route.REACTOR
    assert route_of(event(severity="medium", source="aios.validator")) is Route.EXECUTOR


def test_the_fingerprint_ignores_id_and_time_only() -> None:
    first = event(at=NOW)
    later = event(at=NOW + timedelta(seconds=3))
    assert first.id != later.id
    assert fingerprint(first) == fingerprint(later)
    for other in (
        event(type="agent.stuck"),
        event(severity="critical"),
        event(source="other"),
        event(labels={"host": "web2"}),
        event(payload={"agent": "reader"}),
    ):
        assert fingerprint(other) != fingerprint(first)


# ------------------------------------------------------------------ deciding
def test_an_urgent_event_a_playbook_matches_is_dispatched(home: HomePaths) -> None:
    decision = scheduler(home, book()).decide(event(), NOW)
    assert decision.dispatch
    assert decision.route is Route.REACTOR
    assert decision.reason == "P1: urgent"
    assert decision.playbooks == ["restart_worker"]
    assert decision.to_dict() == {
        "event_id": decision.event_id,
        "route": "reactor",
        "dispatch": True,
        "reason": "P1: urgent",
        "playbooks": ["restart_worker"],
    }


def test_a_critical_event_without_playbook_is_dispatched_so_the_reactor_alerts(
    home: HomePaths,
) -> None:
    decision = scheduler(home, book()).decide(event("disk.full", "critical"), NOW)
    assert decision.dispatch
    assert decision.reason == "critical: the reactor alerts on it"
    assert decision.playbooks == []


def test_a_high_event_without_playbook_is_not_dispatched(home: HomePaths) -> None:
    decision = scheduler(home, book()).decide(event("disk.full", "high"), NOW)
    assert not decision.dispatch
    assert decision.route is Route.REACTOR
    assert decision.reason == "no playbook matches it"


@pytest.mark.parametrize(
    ("severity", "source", "route", "reason"),
    [
        ("medium", "monitor", Route.EXECUTOR, "P2: executor"),
        ("low", "monitor", Route.ANALYST, "P3: analyst"),
        ("critical", "aios.reactor", None, "AIOS's own step"),
    ],
)
def test_events_not_for_the_reactor_are_never_dispatched_even_when_a_playbook_matches(
    home: HomePaths, severity: str, source: str, route: Route | None, reason: str
) -> None:
    decision = scheduler(home, book()).decide(event(severity=severity, source=source), NOW)
    assert not decision.dispatch
    assert decision.route is route
    assert decision.reason == reason


def test_an_event_older_than_the_maximum_age_is_too_late(home: HomePaths) -> None:
    sched = scheduler(home, book(), max_age=timedelta(hours=1))
    old = sched.decide(event(at=NOW - timedelta(hours=1, seconds=1)), NOW)
    assert not old.dispatch
    assert old.reason == "older than 1h: too late for the urgent path"
    recent = sched.decide(event(at=NOW - timedelta(minutes=59)), NOW)
    assert recent.dispatch


def test_an_exact_duplicate_within_the_window_is_not_dispatched(home: HomePaths) -> None:
    sched = scheduler(home, book(), dedupe_window=timedelta(seconds=30))
    first = event(at=NOW)
    again = event(at=NOW + timedelta(seconds=20))
    assert sched.decide(first, NOW).dispatch
    duplicate = sched.decide(again, NOW + timedelta(seconds=20))
    assert not duplicate.dispatch
    assert duplicate.reason == f"duplicate of {first.id}"


def test_a_repeat_outside_the_window_or_with_any_difference_is_dispatched(
    home: HomePaths,
) -> None:
    sched = scheduler(home, book(), dedupe_window=timedelta(seconds=30))
    assert sched.decide(event(at=NOW), NOW).dispatch
    assert sched.decide(event(at=NOW + timedelta(seconds=31)), NOW).dispatch
    other_host = event(at=NOW + timedelta(seconds=32), labels={"host": "web2"})
    assert sched.decide(other_host, NOW).dispatch
    other_payload = event(at=NOW + timedelta(seconds=33), payload={"agent": "reader"})
    assert sched.decide(other_payload, NOW).dispatch


def test_the_same_event_decided_twice_is_not_its_own_duplicate(home: HomePaths) -> None:
    """A dispatch that failed is retried: the same events are decided again."""
    sched = scheduler(home, book())
    first = event(at=NOW)
    copy = event(at=NOW + timedelta(seconds=1))
    assert sched.decide(first, NOW).dispatch
    assert not sched.decide(copy, NOW).dispatch
    assert sched.decide(first, NOW).dispatch  # the retry
    assert sched.decide(copy, NOW).reason == f"duplicate of {first.id}"


def test_events_counting_toward_a_threshold_are_never_deduplicated(home: HomePaths) -> None:
    counted = book(
        "restart_after_three",
        trigger={"type": "agent.down", "threshold": {"count": 3, "within": "5m"}},
    )
    sched = scheduler(home, counted)
    decisions = [sched.decide(event(at=NOW + timedelta(seconds=s)), NOW) for s in (0, 1, 2)]
    assert [d.dispatch for d in decisions] == [True, True, True]


def test_critical_duplicates_without_playbook_are_dropped_too(home: HomePaths) -> None:
    sched = scheduler(home)
    first = sched.decide(event("disk.full", "critical"), NOW)
    second = sched.decide(event("disk.full", "critical", at=NOW + timedelta(seconds=2)), NOW)
    assert first.dispatch and not second.dispatch
    assert second.reason.startswith("duplicate of")


# ------------------------------------------------------------------ breakers
def test_consecutive_failures_open_the_breaker_and_the_event_is_not_dispatched(
    home: HomePaths,
) -> None:
    pb = book(limits={"failures_to_open": 3, "cooldown": "10m", "max_runs": 10})
    sched = scheduler(home, pb)
    runs(sched, pb.id, "labels.host=web1", ["failed", "rolled_back", "failed"], NOW)
    later = NOW + timedelta(minutes=5)
    decision = sched.decide(event(at=later), later)
    assert not decision.dispatch
    assert decision.reason.startswith("breaker open for every matching playbook")
    assert "restart_worker: 3 consecutive failures; cooling down for" in decision.reason
    assert decision.playbooks == ["restart_worker"]
    # Another target has its own breaker.
    other = sched.decide(event(at=later, labels={"host": "web2"}), later)
    assert other.dispatch
    # After the cooldown one trial goes through.
    after = NOW + timedelta(minutes=13)
    assert sched.decide(event(at=after, payload={"agent": "w2"}), after).dispatch


def test_a_success_between_failures_keeps_the_breaker_closed(home: HomePaths) -> None:
    pb = book(limits={"failures_to_open": 2, "max_runs": 10})
    sched = scheduler(home, pb)
    runs(sched, pb.id, "labels.host=web1", ["failed", "succeeded", "failed"], NOW)
    later = NOW + timedelta(minutes=4)
    assert sched.decide(event(at=later), later).dispatch


def test_the_run_limit_opens_the_breaker(home: HomePaths) -> None:
    pb = book(limits={"max_runs": 2, "window": "24h"})
    sched = scheduler(home, pb)
    runs(sched, pb.id, "labels.host=web1", ["succeeded", "unverified"], NOW)
    later = NOW + timedelta(hours=1)
    decision = sched.decide(event(at=later), later)
    assert not decision.dispatch
    assert "2 runs on this target within 1d (limit 2)" in decision.reason
    next_day = NOW + timedelta(hours=25)
    assert sched.decide(event(at=next_day), next_day).dispatch


def test_reactor_steps_decided_like_any_event_feed_the_breaker(home: HomePaths) -> None:
    """The watcher decides every event of the log, the reactor's own steps among them."""
    pb = book(limits={"max_runs": 1})
    sched = scheduler(home, pb)
    start = reactor_step("remediation.started", "r1", pb.id, "labels.host=web1", NOW)
    assert sched.decide(start, NOW).reason == "AIOS's own step"
    later = NOW + timedelta(minutes=1)
    assert not sched.decide(event(at=later), later).dispatch


def test_one_closed_breaker_among_the_matching_playbooks_is_enough(home: HomePaths) -> None:
    tired = book("restart_worker", limits={"max_runs": 1})
    fresh = book("page_oncall")
    sched = scheduler(home, tired, fresh)
    runs(sched, tired.id, "labels.host=web1", ["succeeded"], NOW)
    later = NOW + timedelta(minutes=10)
    decision = sched.decide(event(at=later), later)
    assert decision.dispatch
    assert decision.playbooks == ["page_oncall"]


def test_the_breaker_follows_the_playbooks_target_by(home: HomePaths) -> None:
    pb = book(limits={"max_runs": 1, "target_by": ["payload.agent"]})
    sched = scheduler(home, pb)
    runs(sched, pb.id, "payload.agent=worker", ["succeeded"], NOW)
    later = NOW + timedelta(minutes=10)
    on_other_host = event(at=later, labels={"host": "web9"})
    assert not sched.decide(on_other_host, later).dispatch
    other_agent = event(at=later, payload={"agent": "reader"})
    assert sched.decide(other_agent, later).dispatch


def test_a_long_running_scheduler_forgets_old_runs_but_not_the_ones_breakers_read(
    home: HomePaths,
) -> None:
    pb = book(limits={"max_runs": 2, "window": "24h"})
    sched = scheduler(home, pb)
    long_ago = NOW - timedelta(days=5)
    runs(sched, pb.id, "labels.host=old", ["succeeded"] * 50, long_ago)
    runs(sched, pb.id, "labels.host=web1", ["succeeded", "succeeded"], NOW - timedelta(hours=3))
    for number in range(PRUNE_EVERY):
        sched.decide(event(severity="info", payload={"n": number}), NOW)
    assert len(sched.state.remediations) == 2  # the old ones are gone from memory
    held = sched.decide(event(), NOW)
    assert not held.dispatch and "2 runs on this target within 1d" in held.reason


# ------------------------------------------------------- composed: real reactor runs
def test_breakers_come_from_real_reactor_runs_in_the_store(home: HomePaths, tmp_path: Path) -> None:
    """Three real failed remediations in the log; a scheduler warmed up from the store, as the
    event watcher is, holds the next trigger back."""
    root = tmp_path / "agents"
    root.mkdir()
    config = root / "worker.json"
    config.write_text(json.dumps({"retries": 1}))
    failing = book(
        actions=[{"type": "config.update", "file": str(config), "key": "retries", "value": 5}],
        verify={
            "probe": "file_value",
            "file": str(config),
            "key": "retries",
            "expect": "==0",
            "within": "0.2s",
            "interval": "0.1s",
        },
        limits={"failures_to_open": 3, "cooldown": "10m", "max_runs": 10},
    )
    reactor = Reactor(
        PlaybookIndex([failing]),
        aios.bus(),
        ReactorSettings(home, allowed_roots=(root,)),
        PolicyApprover(True),
    )
    for _ in range(3):
        trigger = aios.emit(
            "agent.down", {"agent": "worker"}, severity=Severity.HIGH, labels={"host": "web1"}
        )
        assert [o.status for o in reactor.process(trigger)] == ["rolled_back"]
    assert json.loads(config.read_text())["retries"] == 1

    sched = scheduler(home, failing)
    an_hour_ago = datetime.now(UTC) - timedelta(hours=1)
    with open_store(home) as con:
        for _, step in events_between(con, an_hour_ago, last_seq(con), REACTOR_TYPES):
            sched.observe(step)
    now = datetime.now(UTC)
    held = sched.decide(event(at=now), now)
    assert not held.dispatch
    assert "3 consecutive failures" in held.reason
    assert sched.decide(event(at=now, labels={"host": "web2"}), now).dispatch


def test_a_step_read_again_is_counted_once(home: HomePaths) -> None:
    """A dispatch retried while the server is down, or a warm-up that overlaps the saved place,
    reads the same reactor steps again: they must not look like more runs."""
    pb = book(limits={"max_runs": 2, "window": "24h"})
    sched = scheduler(home, pb)
    started = reactor_step("remediation.started", "r-1", pb.id, "labels.host=web1", NOW)
    finished = reactor_step(
        "remediation.finished", "r-1", pb.id, "labels.host=web1", NOW, outcome="succeeded"
    )
    for _ in range(4):
        sched.decide(started, NOW)
        sched.observe(finished)
    later = NOW + timedelta(minutes=5)
    decision = sched.decide(event(at=later), later)
    assert decision.dispatch, decision.reason
