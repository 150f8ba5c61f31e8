"""The Validator (Verify): did the fixes hold, and what was left half done?

``validate`` first rolls back remediations whose runner died part way (started, never
finished, nobody holding them, older than ``interrupted_after``), then gives each remediation
that finished in the window and has no verdict yet a ``validation.verdict``: whether the
problem came back on the same target after the fix (recurrences), and the before/after effect
(matching events in equal spans before the trigger and after the fix).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

import duckdb

from aios.bus import EventBus
from aios.durations import format_duration
from aios.event import Event, Severity
from aios.home import HomePaths
from aios.playbooks.matcher import PlaybookIndex
from aios.reactor.approval import PolicyApprover
from aios.reactor.engine import Outcome, Reactor, ReactorSettings
from aios.reactor.state import REACTOR_SOURCE, target_key
from aios.store import open_store
from aios.store.consumers import EVENT_COLUMNS, event_from_row, events_with_ids

SOURCE = "aios.validator"
MAX_SPAN = timedelta(hours=24)


@dataclass
class Verdict:
    remediation_id: str
    playbook: str
    target: str
    outcome: str
    verdict: str  # held recurred unverified quiet rolled_back failed escalated unknown
    recurrences: int | None = None
    before: int | None = None
    after: int | None = None
    span_s: float | None = None
    detail: str = ""


@dataclass
class ValidationReport:
    interrupted: list[Outcome] = field(default_factory=list)
    verdicts: list[Verdict] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "interrupted": [o.to_dict() for o in self.interrupted],
            "verdicts": [asdict(v) for v in self.verdicts],
        }


@dataclass
class _Finished:
    rid: str
    playbook: str
    target: str
    outcome: str
    trigger_id: str | None
    started: datetime | None
    ended: datetime
    escalated: bool


def validate(
    bus: EventBus,
    paths: HomePaths,
    index: PlaybookIndex,
    settings: ReactorSettings,
    *,
    now: datetime,
    window: timedelta = timedelta(hours=24),
    interrupted_after: timedelta = timedelta(hours=1),
) -> ValidationReport:
    """Roll back interrupted remediations, then record a verdict on each finished one."""
    report = ValidationReport()
    with open_store(paths) as con:
        stale = _unfinished(con, now - interrupted_after, now - window - interrupted_after)
        triggers = {e.id: e for _, e in events_with_ids(con, [t for _, t in stale if t])}
    if stale:
        reactor = Reactor(index, bus, settings, PolicyApprover(False, "unused"))
        for rid, trigger_id in stale:
            trigger = triggers.get(trigger_id or "")
            if trigger is None:
                continue
            outcome = reactor.roll_back_interrupted(
                trigger, rid, f"no runner since more than {format_duration(interrupted_after)}"
            )
            if outcome.status != "skipped":
                report.interrupted.append(outcome)
    with open_store(paths) as con:
        for finished in _finished_without_verdict(con, now - window, now):
            report.verdicts.append(_verdict(con, index, finished, now))
    for verdict in report.verdicts:
        bad = verdict.verdict in ("recurred", "escalated", "failed")
        bus.emit(
            "validation.verdict",
            asdict(verdict),
            source=SOURCE,
            severity=Severity.MEDIUM if bad else Severity.INFO,
            labels={"playbook": verdict.playbook, "remediation": verdict.remediation_id},
        )
    return report


def _unfinished(
    con: duckdb.DuckDBPyConnection, before: datetime, since: datetime
) -> list[tuple[str, str | None]]:
    """(remediation id, trigger id) of remediations started in [since, before), unfinished."""
    rows = con.execute(
        """
        SELECT s.payload->>'remediation_id', s.payload->>'trigger_id' FROM events s
        WHERE s.type = 'remediation.started' AND s.source = ? AND s.time < ? AND s.time >= ?
          AND NOT EXISTS (
            SELECT 1 FROM events f WHERE f.type = 'remediation.finished' AND f.source = ?
              AND f.payload->>'remediation_id' = s.payload->>'remediation_id')
        ORDER BY s.seq
        """,
        [REACTOR_SOURCE, before, since, REACTOR_SOURCE],
    ).fetchall()
    return [(str(rid), trigger) for rid, trigger in rows]


def _finished_without_verdict(
    con: duckdb.DuckDBPyConnection, since: datetime, until: datetime
) -> list[_Finished]:
    rows = con.execute(
        """
        SELECT f.payload->>'remediation_id', f.payload->>'playbook', f.payload->>'target',
               f.payload->>'outcome', s.payload->>'trigger_id', s.time, f.time,
               EXISTS (SELECT 1 FROM events x WHERE x.type = 'remediation.escalated'
                       AND x.source = ? AND x.payload->>'remediation_id' =
                       f.payload->>'remediation_id')
        FROM events f
        LEFT JOIN events s ON s.type = 'remediation.started' AND s.source = ?
             AND s.payload->>'remediation_id' = f.payload->>'remediation_id'
        WHERE f.type = 'remediation.finished' AND f.source = ? AND f.time >= ? AND f.time < ?
          AND NOT EXISTS (
            SELECT 1 FROM events v WHERE v.type = 'validation.verdict' AND v.source = ?
              AND v.payload->>'remediation_id' = f.payload->>'remediation_id')
        ORDER BY f.seq
        """,
        [REACTOR_SOURCE, REACTOR_SOURCE, REACTOR_SOURCE, since, until, SOURCE],
    ).fetchall()
    return [
        _Finished(str(r[0]), str(r[1]), str(r[2]), str(r[3]), r[4], r[5], r[6], bool(r[7]))
        for r in rows
    ]


def _verdict(
    con: duckdb.DuckDBPyConnection, index: PlaybookIndex, item: _Finished, now: datetime
) -> Verdict:
    verdict = Verdict(item.rid, item.playbook, item.target, item.outcome, "unknown")
    if item.escalated:
        verdict.verdict = "escalated"
        verdict.detail = "some actions could not be undone"
        return verdict
    if item.outcome in ("rolled_back", "failed"):
        verdict.verdict = item.outcome
        verdict.detail = "the reactor already undid what it could"
        return verdict
    playbook = index.playbooks.get(item.playbook)
    if playbook is None or item.started is None:
        verdict.detail = "the playbook is no longer loaded" if playbook is None else ""
        return verdict
    span = min(max(now - item.ended, timedelta(seconds=1)), MAX_SPAN)
    kind = playbook.trigger.type

    def count(start: datetime, end: datetime, exclude: str | None) -> int:
        rows = con.execute(
            f"SELECT {EVENT_COLUMNS} FROM events WHERE type GLOB ? AND time >= ? AND time < ? "
            "AND source NOT IN (?, 'aios.playbook') ORDER BY seq LIMIT 10000",
            [kind, start, end, REACTOR_SOURCE],
        ).fetchall()
        hits = 0
        for row in rows:
            _, event = event_from_row(row)
            if event.id == exclude:
                continue
            if _matches(index, playbook.id, event) and target_key(event, playbook) == item.target:
                hits += 1
        return hits

    verdict.before = count(item.started - span, item.started, item.trigger_id)
    verdict.after = count(item.ended, item.ended + span, None)
    verdict.recurrences = verdict.after
    verdict.span_s = span.total_seconds()
    if item.outcome == "succeeded":
        verdict.verdict = "recurred" if verdict.after else "held"
    elif item.outcome == "unverified":
        verdict.verdict = "recurred" if verdict.after else "quiet"
        verdict.detail = "no verify: only the absence of the problem since can be said"
    else:
        verdict.verdict = item.outcome
    return verdict


def _matches(index: PlaybookIndex, playbook_id: str, event: Event) -> bool:
    return any(p.id == playbook_id for p in index.match(event))
