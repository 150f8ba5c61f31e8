"""The Optimizer (Decide): a plan of remediations for the executor, and what else to do.

``make_plan`` takes the P2 events the executor has not handled yet, runs each through the
playbooks as a preview (threshold, throttle, breaker and a dry run of every action, with the
reactor's real state; nothing is written or executed) and proposes the remediations that would
run, with their risk and whether they need a person; each proposal is taken as run for the
events after it, so one plan never proposes more than a throttle or a run limit lets through.
A failure no playbook matches is offered the fix of a proven lesson like it (see
``aios.lessons.apply``). The analyst's findings become recommendations: failures no playbook
covers, playbooks that keep failing, escalations.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

import duckdb

from aios.bus import EventBus, make_event
from aios.event import Event
from aios.home import HomePaths
from aios.loop.analyst import Finding
from aios.playbooks.matcher import PlaybookIndex
from aios.playbooks.model import Playbook
from aios.reactor.approval import PolicyApprover
from aios.reactor.engine import LessonFix, Reactor, ReactorSettings
from aios.reactor.runner import warm_up
from aios.reactor.state import REACTOR_SOURCE, ReactorState, target_key
from aios.scheduler import Route, route_of
from aios.store import open_store
from aios.store.consumers import events_after, events_with_ids, get_position, seq_at

SOURCE = "aios.optimizer"
EXECUTOR = "executor"  # the consumer whose position the plan starts from
FIRST_LOOKBACK = timedelta(hours=1)  # a first executor run looks this far back
MAX_EVENTS = 5000


@dataclass
class ProposedRemediation:
    """One remediation the executor would run (``proposed``) or why it would not."""

    event_id: str
    event_type: str
    playbook: str
    remediation_id: str | None
    risk: str | None
    needs_approval: bool
    status: str  # proposed, or the reason it is held back
    actions: list[str] = field(default_factory=list)
    # A lesson's fix, for a failure no playbook names: which lesson, and how alike.
    lesson_id: str | None = None
    similarity: float | None = None


@dataclass
class Recommendation:
    kind: str
    title: str
    severity: str
    detail: str = ""


@dataclass
class Plan:
    plan_id: str
    made_at: datetime
    after_seq: int
    upto_seq: int
    events: int = 0
    below_threshold: int = 0
    items: list[ProposedRemediation] = field(default_factory=list)
    recommendations: list[Recommendation] = field(default_factory=list)

    @property
    def proposed(self) -> list[ProposedRemediation]:
        return [item for item in self.items if item.status == "proposed"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "plan_id": self.plan_id,
            "made_at": self.made_at.isoformat(),
            "after_seq": self.after_seq,
            "upto_seq": self.upto_seq,
            "events": self.events,
            "below_threshold": self.below_threshold,
            "items": [asdict(item) for item in self.items],
            "recommendations": [asdict(r) for r in self.recommendations],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Plan:
        return cls(
            plan_id=str(data["plan_id"]),
            made_at=datetime.fromisoformat(str(data["made_at"])),
            after_seq=int(data["after_seq"]),
            upto_seq=int(data["upto_seq"]),
            events=int(data.get("events", 0)),
            below_threshold=int(data.get("below_threshold", 0)),
            items=[ProposedRemediation(**item) for item in data.get("items", [])],
            recommendations=[Recommendation(**r) for r in data.get("recommendations", [])],
        )


def executor_start(con: duckdb.DuckDBPyConnection, now: datetime) -> int:
    """Where the executor's next plan starts: its position, or an hour back on a first run."""
    position = get_position(con, EXECUTOR)
    return position if position is not None else seq_at(con, now - FIRST_LOOKBACK)


def pending(
    con: duckdb.DuckDBPyConnection, after_seq: int, limit: int = MAX_EVENTS
) -> tuple[list[Event], int]:
    """The executor's events after ``after_seq`` (P2, not AIOS's own steps) and the last seq
    looked at."""
    rows = events_after(con, after_seq, limit=limit)
    upto = rows[-1][0] if rows else after_seq
    return [event for _, event in rows if route_of(event) is Route.EXECUTOR], upto


def make_plan(
    bus: EventBus,
    paths: HomePaths,
    index: PlaybookIndex,
    settings: ReactorSettings,
    findings: list[Finding] | None = None,
    *,
    now: datetime,
    after_seq: int | None = None,
    lessons: Callable[[Event], LessonFix | None] | None = None,
) -> Plan:
    """The plan for the events after ``after_seq`` (default: the executor's position). A
    failure no playbook matches is offered the fix of a proven lesson ``lessons`` finds."""
    with open_store(paths) as con:
        start = after_seq if after_seq is not None else executor_start(con, now)
        events, upto = pending(con, start)
        samples = _samples(con, findings or [])
    plan = Plan(str(uuid.uuid4()), now, start, upto, events=len(events))
    preview = Reactor(index, bus, settings, PolicyApprover(False), dry_run=True, record=False)
    preview.start_following(bus.log.end())
    warm_up(preview, paths, start, now)
    for event in events:
        outcomes = preview.process(event)
        lesson = lessons(event) if lessons is not None and not outcomes else None
        if lesson is not None:
            outcomes = preview.process(event, only=[lesson.playbook], lesson=lesson)
        for outcome in outcomes:
            if outcome.status == "waiting":
                plan.below_threshold += 1
                continue
            playbook = index.playbooks.get(outcome.playbook)
            if playbook is None:  # a lesson's playbook that is not loaded
                continue
            proposed = outcome.status == "dry_run"
            by_lesson = lesson is not None and lesson.playbook == playbook.id
            plan.items.append(
                ProposedRemediation(
                    event.id,
                    event.type,
                    outcome.playbook,
                    outcome.remediation_id,
                    outcome.risk,
                    playbook.needs_approval(settings.approve_from)
                    or (by_lesson and lesson is not None and not lesson.trusted),
                    "proposed" if proposed else outcome.reason,
                    [str(step.get("summary", "")) for step in outcome.plan],
                    lesson.lesson_id if by_lesson and lesson is not None else None,
                    round(lesson.similarity, 4) if by_lesson and lesson is not None else None,
                )
            )
            if proposed and outcome.remediation_id:
                _assume_run(preview.state, playbook, event, outcome.remediation_id, now)
    plan.recommendations = recommend(index, findings or [], samples)
    return plan


_OWN: dict[str, Any] = {"source": REACTOR_SOURCE}  # the preview's own steps, as the reactor's


def _assume_run(
    state: ReactorState, playbook: Playbook, trigger: Event, rid: str, now: datetime
) -> None:
    """Let the preview take a proposed remediation as run, so that the later events of the
    plan meet its throttle, run limit and flapping as the executor will (its outcome is
    unknown: it counts toward no failure streak)."""
    at = min(trigger.time, now)
    base = {
        "remediation_id": rid,
        "playbook": playbook.id,
        "target": target_key(trigger, playbook),
        "decided_at": at.isoformat(),
    }
    throttle_key = state.throttled(playbook, trigger, at)[1] if playbook.trigger.throttle else None
    steps = [make_event("remediation.started", {**base, "throttle_key": throttle_key}, **_OWN)]
    steps += [
        make_event("action.completed", {**base, "index": i, "action": a.type, "undo": {}}, **_OWN)
        for i, a in enumerate(playbook.actions)
    ]
    steps.append(make_event("remediation.finished", {**base, "outcome": "proposed"}, **_OWN))
    for step in steps:
        state.observe(step)


def _samples(con: duckdb.DuckDBPyConnection, findings: list[Finding]) -> dict[str, Event]:
    ids = [f.sample_event_id for f in findings if f.sample_event_id]
    return {event.id: event for _, event in events_with_ids(con, ids)}


def recommend(
    index: PlaybookIndex, findings: list[Finding], samples: dict[str, Event]
) -> list[Recommendation]:
    """What the findings ask of a person: a playbook to write, one to review, a look."""
    found = []
    for finding in findings:
        sample = samples.get(finding.sample_event_id or "")
        if finding.kind in ("failure_pattern", "recurring_issue") and sample is not None:
            if not index.match(sample):
                found.append(
                    Recommendation(
                        "uncovered",
                        f"no playbook handles {sample.type}: {finding.title}",
                        finding.severity,
                        "write a playbook for it, or raise its severity if it is urgent",
                    )
                )
        elif finding.kind == "playbook_failing":
            found.append(
                Recommendation(
                    "review_playbook",
                    finding.title,
                    "high",
                    f"{finding.detail}; check its actions and verify, or disable it",
                )
            )
        elif finding.kind == "escalated":
            found.append(
                Recommendation(
                    "escalated",
                    finding.title,
                    "high",
                    "some actions could not be undone: a person must look",
                )
            )
        elif finding.kind in ("score", "failures_rising"):
            found.append(Recommendation(finding.kind, finding.title, finding.severity))
    return found


def record_plan(bus: EventBus, plan: Plan) -> Event:
    """``plan.proposed`` with the whole plan (the executor runs the proposed items)."""
    return bus.emit("plan.proposed", plan.to_dict(), source=SOURCE)
