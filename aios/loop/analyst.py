"""The Analyst (Orient): what the history in DuckDB says about the last window.

``analyse`` reads the store and returns failure patterns (task failures grouped by normalised
error signature), the top issues (medium and worse events by type and subject), remediation
outcomes per playbook, the score and its trend, the low-priority (P3) events routed here, a
comparison with the window before, and the findings a person should look at first.
``record`` turns the report into an ``analysis.reported`` event.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

import duckdb

from aios.bus import EventBus
from aios.event import Event
from aios.lessons.model import owner_of
from aios.loop.signatures import signature
from aios.memory.records import SHARED
from aios.scheduler import OWN_SOURCES

SOURCE = "aios.analyst"
AGENT_OF = "coalesce(labels->>'agent', source)"
SUBJECT_OF = (
    "coalesce(labels->>'agent', labels->>'deployment', payload->>'resource', labels->>'host', "
    "source)"
)
_SEVERITY_RANK = (
    "CASE severity WHEN 'critical' THEN 4 WHEN 'high' THEN 3 WHEN 'medium' THEN 2 ELSE 1 END"
)
_RANKED = ("low", "medium", "high", "critical")
# Measurements and AIOS's bookkeeping: not issues in themselves.
NOT_ISSUES = ("host.metrics", "agent.metrics", "system.heartbeat", "score.updated")
_OWN = tuple(sorted(OWN_SOURCES))
_NOT_RUNS = ("denied", "escalated")  # counted beside the runs, not as runs
MAX_FAILURES_READ = 50_000


@dataclass
class FailurePattern:
    """Task failures with one signature: how often, whose, when, and the latest as a sample.
    ``owner`` is set when grouped by owner (``by_owner``): the one agent they all came from, or
    ``shared`` for failures that name no usable agent."""

    signature: str
    count: int
    agents: list[str]
    first: datetime
    last: datetime
    sample: str
    sample_event_id: str
    owner: str | None = None


@dataclass
class Issue:
    type: str
    subject: str
    severity: str
    count: int
    last: datetime
    sample_event_id: str


@dataclass
class PlaybookStats:
    playbook: str
    runs: int
    outcomes: dict[str, int]

    @property
    def failures(self) -> int:
        return self.outcomes.get("failed", 0) + self.outcomes.get("rolled_back", 0)


@dataclass
class Finding:
    """Something a person should look at, with the evidence."""

    kind: str
    title: str
    severity: str
    count: int
    detail: str = ""
    sample_event_id: str | None = None


@dataclass
class AnalystReport:
    since: datetime
    until: datetime
    totals: dict[str, Any] = field(default_factory=dict)
    previous: dict[str, Any] = field(default_factory=dict)
    failure_patterns: list[FailurePattern] = field(default_factory=list)
    top_issues: list[Issue] = field(default_factory=list)
    playbooks: list[PlaybookStats] = field(default_factory=list)
    score: dict[str, Any] | None = None
    low_priority: dict[str, int] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = _jsonable(asdict(self))
        return data

    def to_markdown(self) -> str:
        return render_markdown(self)


def analyse(
    con: duckdb.DuckDBPyConnection,
    until: datetime,
    window: timedelta = timedelta(hours=24),
    *,
    preset: str = "evolution",
) -> AnalystReport:
    """The report over ``[until - window, until)``, compared with the window before it."""
    since = until - window
    report = AnalystReport(since, until)
    report.totals = _totals(con, since, until)
    report.previous = _totals(con, since - window, since)
    report.failure_patterns = failure_patterns(con, since, until)
    report.top_issues = top_issues(con, since, until)
    report.playbooks = playbook_stats(con, since, until)
    report.score = _score(con, preset, until)
    report.low_priority = _low_priority(con, since, until)
    report.findings = _findings(report)
    return report


def record(bus: EventBus, report: AnalystReport, *, top: int = 20) -> Event:
    """``analysis.reported``: the window, the totals and the first findings."""
    return bus.emit(
        "analysis.reported",
        {
            "since": report.since.isoformat(),
            "until": report.until.isoformat(),
            "totals": report.totals,
            "findings": [_jsonable(asdict(f)) for f in report.findings[:top]],
            "failure_patterns": len(report.failure_patterns),
            "issues": len(report.top_issues),
        },
        source=SOURCE,
    )


def _totals(con: duckdb.DuckDBPyConnection, since: datetime, until: datetime) -> dict[str, Any]:
    row = con.execute(
        f"""
        SELECT count(*),
               count(*) FILTER (WHERE priority = 'P0'), count(*) FILTER (WHERE priority = 'P1'),
               count(*) FILTER (WHERE priority = 'P2'), count(*) FILTER (WHERE priority = 'P3'),
               count(*) FILTER (WHERE type = 'task.completed' AND {AGENT_OF} NOT LIKE 'aios.%'),
               count(*) FILTER (WHERE type = 'task.failed' AND {AGENT_OF} NOT LIKE 'aios.%'),
               count(*) FILTER (WHERE type = 'remediation.finished' AND source = 'aios.reactor'),
               count(*) FILTER (WHERE type = 'remediation.finished' AND source = 'aios.reactor'
                                AND payload->>'outcome' = 'succeeded'),
               count(*) FILTER (WHERE type = 'approval.requested' AND source = 'aios.reactor')
        FROM events WHERE time >= ? AND time < ?
        """,
        [since, until],
    ).fetchall()[0]
    keys = (
        "events",
        "p0",
        "p1",
        "p2",
        "p3",
        "tasks_completed",
        "tasks_failed",
        "remediations",
        "remediations_succeeded",
        "approvals_requested",
    )
    return {key: int(value) for key, value in zip(keys, row, strict=True)}


def failure_patterns(
    con: duckdb.DuckDBPyConnection,
    since: datetime,
    until: datetime,
    *,
    limit: int | None = 20,
    by_owner: bool = False,
) -> list[FailurePattern]:
    """Task failures in ``[since, until)`` grouped by error signature, most frequent first
    (the first ``limit``, or all); each with its first and last time and its latest failure
    as the sample. ``by_owner`` groups each agent's apart (``aios.lessons.model.owner_of``), so
    a pattern's sample and agents are of its owner's failures only: what its lesson may keep."""
    # By time, not by log order: failures ingested late carry their own (earlier) times.
    rows = con.execute(
        f"""
        SELECT {AGENT_OF}, payload->>'error_type', payload->>'error', time, id
        FROM events WHERE type = 'task.failed' AND time >= ? AND time < ?
        ORDER BY time DESC, seq DESC LIMIT ?
        """,
        [since, until, MAX_FAILURES_READ],
    ).fetchall()
    patterns: dict[tuple[str, str | None], FailurePattern] = {}
    for agent, error_type, error, time, eid in rows:  # newest first
        sig = signature(error_type, error)
        owner = owner_of(agent) if by_owner else None
        found = patterns.get((sig, owner))
        if found is None:
            sample = (error or error_type or "")[:300]
            agents = [] if owner == SHARED else [agent]  # a shared one names no agent
            patterns[sig, owner] = FailurePattern(
                sig, 1, agents, time, time, sample, str(eid), owner
            )
            continue
        found.count += 1
        found.first = min(found.first, time)
        if agent not in found.agents and owner != SHARED:
            found.agents.append(agent)
    ordered = sorted(patterns.values(), key=lambda p: (-p.count, p.signature, p.owner or ""))
    return ordered if limit is None else ordered[:limit]


def top_issues(con: duckdb.DuckDBPyConnection, since: datetime, until: datetime) -> list[Issue]:
    """The ten most frequent medium-or-worse events in ``[since, until)`` by type and subject
    (measurements and AIOS's own bookkeeping left out)."""
    rows = con.execute(
        f"""
        SELECT type, {SUBJECT_OF} AS subject, max({_SEVERITY_RANK}), count(*), max(time),
               arg_max(id, seq)
        FROM events
        WHERE time >= ? AND time < ? AND severity IN ('medium', 'high', 'critical')
          AND source NOT IN (SELECT unnest(?::VARCHAR[]))
          AND type NOT IN (SELECT unnest(?::VARCHAR[]))
        GROUP BY 1, 2 ORDER BY 4 DESC, 3 DESC, 1 LIMIT 10
        """,
        [since, until, list(_OWN), list(NOT_ISSUES)],
    ).fetchall()
    return [
        Issue(kind, str(subject), _RANKED[rank - 1], int(count), last, str(eid))
        for kind, subject, rank, count, last, eid in rows
    ]


def playbook_stats(
    con: duckdb.DuckDBPyConnection, since: datetime, until: datetime
) -> list[PlaybookStats]:
    """Remediation outcomes per playbook in ``[since, until)``, most runs first; denials and
    escalations are counted beside the runs."""
    rows = con.execute(
        """
        SELECT payload->>'playbook', payload->>'outcome', count(*) FROM events
        WHERE type = 'remediation.finished' AND source = 'aios.reactor'
          AND time >= ? AND time < ?
        GROUP BY 1, 2
        UNION ALL
        SELECT payload->>'playbook', 'denied', count(*) FROM events
        WHERE type IN ('approval.denied', 'approval.expired') AND source = 'aios.reactor'
          AND time >= ? AND time < ?
        GROUP BY 1
        UNION ALL
        SELECT payload->>'playbook', 'escalated', count(*) FROM events
        WHERE type = 'remediation.escalated' AND source = 'aios.reactor'
          AND time >= ? AND time < ?
        GROUP BY 1
        """,
        [since, until, since, until, since, until],
    ).fetchall()
    stats: dict[str, PlaybookStats] = {}
    for playbook, outcome, count in rows:
        entry = stats.setdefault(str(playbook), PlaybookStats(str(playbook), 0, {}))
        entry.outcomes[str(outcome)] = entry.outcomes.get(str(outcome), 0) + int(count)
        if outcome not in _NOT_RUNS:
            entry.runs += int(count)
    return sorted(stats.values(), key=lambda s: (-s.runs, s.playbook))


def _score(con: duckdb.DuckDBPyConnection, preset: str, until: datetime) -> dict[str, Any] | None:
    try:
        rows = con.execute(
            "SELECT time, score, grade, trend FROM scores WHERE preset = ? AND time < ? "
            "ORDER BY seq DESC LIMIT 2",
            [preset, until],
        ).fetchall()
    except duckdb.CatalogException:
        return None
    if not rows:
        return None
    latest = rows[0]
    return {
        "preset": preset,
        "time": latest[0],
        "score": latest[1],
        "grade": latest[2],
        "trend": latest[3],
        "previous": rows[1][1] if len(rows) > 1 else None,
    }


def _low_priority(
    con: duckdb.DuckDBPyConnection, since: datetime, until: datetime
) -> dict[str, int]:
    rows = con.execute(
        """
        SELECT type, count(*) FROM events
        WHERE time >= ? AND time < ? AND priority = 'P3'
          AND source NOT IN (SELECT unnest(?::VARCHAR[]))
          AND type NOT IN (SELECT unnest(?::VARCHAR[]))
          AND type NOT IN ('task.started', 'task.completed')
        GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 15
        """,
        [since, until, list(_OWN), list(NOT_ISSUES)],
    ).fetchall()
    return {kind: int(count) for kind, count in rows}


def _findings(report: AnalystReport) -> list[Finding]:
    found: list[Finding] = []
    for pattern in report.failure_patterns:
        if pattern.count >= 3:
            found.append(
                Finding(
                    "failure_pattern",
                    f"{pattern.signature} (x{pattern.count})",
                    "high" if pattern.count >= 10 else "medium",
                    pattern.count,
                    f"agents: {', '.join(pattern.agents)}; latest: {pattern.sample}",
                    pattern.sample_event_id,
                )
            )
    for stats in report.playbooks:
        if stats.failures >= 2 and stats.failures * 2 >= stats.runs:
            found.append(
                Finding(
                    "playbook_failing",
                    f"playbook {stats.playbook}: {stats.failures} of {stats.runs} runs failed",
                    "high",
                    stats.failures,
                    ", ".join(f"{k} {v}" for k, v in sorted(stats.outcomes.items())),
                )
            )
        escalated = stats.outcomes.get("escalated", 0)
        if escalated:
            found.append(
                Finding("escalated", f"playbook {stats.playbook} escalated", "high", escalated)
            )
    for issue in report.top_issues:
        if issue.count >= 5 or issue.severity in ("high", "critical"):
            found.append(
                Finding(
                    "recurring_issue",
                    f"{issue.type} on {issue.subject} (x{issue.count})",
                    issue.severity if issue.severity != "critical" else "high",
                    issue.count,
                    f"last at {issue.last:%Y-%m-%d %H:%M}Z",
                    issue.sample_event_id,
                )
            )
    now_failed = report.totals.get("tasks_failed", 0)
    before_failed = report.previous.get("tasks_failed", 0)
    if now_failed >= 5 and now_failed >= 2 * max(before_failed, 1):
        found.append(
            Finding(
                "failures_rising",
                f"task failures rose from {before_failed} to {now_failed}",
                "medium",
                now_failed,
            )
        )
    score = report.score
    if score and (score.get("trend") == "degrading" or score.get("grade") in _BAD_GRADES):
        found.append(
            Finding(
                "score",
                f"{score['preset']} score {_number(score['score'])} ({score['grade']}, "
                f"{score['trend']})",
                "high" if score.get("grade") == "critical" else "medium",
                1,
            )
        )
    rank = {"high": 0, "medium": 1, "low": 2, "info": 3}
    return sorted(found, key=lambda f: (rank.get(f.severity, 3), -f.count, f.title))


_BAD_GRADES = ("degraded", "critical")


def render_markdown(report: AnalystReport) -> str:
    """The report as a person reads it (the analyst flow's artifact)."""
    t, p = report.totals, report.previous
    lines = [
        f"# Analyst report: {report.since:%Y-%m-%d %H:%M} to {report.until:%Y-%m-%d %H:%M} UTC",
        "",
        f"- events: {t['events']} (P0 {t['p0']}, P1 {t['p1']}, P2 {t['p2']}, P3 {t['p3']}); "
        f"window before: {p.get('events', 0)}",
        f"- tasks: {t['tasks_completed']} completed, {t['tasks_failed']} failed "
        f"(window before: {p.get('tasks_failed', 0)} failed)",
        f"- remediations: {t['remediations']} finished, {t['remediations_succeeded']} "
        f"succeeded; approvals requested: {t['approvals_requested']}",
    ]
    if report.score:
        s = report.score
        lines.append(
            f"- score ({s['preset']}): {_number(s['score'])}"
            + (f" {s['grade']}" if s["grade"] else "")
            + f", {s['trend']}"
        )
    else:
        lines.append("- score: no data yet")
    lines += ["", "## Findings", ""]
    if report.findings:
        lines += [
            f"- **{f.severity}** {f.title}" + (f": {f.detail}" if f.detail else "")
            for f in report.findings
        ]
    else:
        lines.append("Nothing needs attention.")
    lines += ["", "## Failure patterns", ""]
    if report.failure_patterns:
        lines += ["| count | signature | agents | last |", "|---:|---|---|---|"]
        lines += [
            f"| {fp.count} | {_cell(fp.signature)} | {_cell(', '.join(fp.agents))} | "
            f"{fp.last:%Y-%m-%d %H:%M} |"
            for fp in report.failure_patterns
        ]
    else:
        lines.append("No task failures.")
    lines += ["", "## Top issues", ""]
    if report.top_issues:
        lines += ["| count | type | subject | severity |", "|---:|---|---|---|"]
        lines += [
            f"| {i.count} | {i.type} | {_cell(i.subject)} | {i.severity} |"
            for i in report.top_issues
        ]
    else:
        lines.append("No medium or worse events.")
    lines += ["", "## Playbooks", ""]
    if report.playbooks:
        lines += ["| playbook | runs | outcomes |", "|---|---:|---|"]
        lines += [
            f"| {s.playbook} | {s.runs} | "
            f"{', '.join(f'{k} {v}' for k, v in sorted(s.outcomes.items()))} |"
            for s in report.playbooks
        ]
    else:
        lines.append("No remediation finished in this window.")
    if report.low_priority:
        lines += ["", "## Low priority (P3)", ""]
        lines += [f"- {kind}: {count}" for kind, count in report.low_priority.items()]
    return "\n".join(lines) + "\n"


def _number(value: Any) -> str:
    return "no data" if value is None else f"{value:.2f}"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")[:160]


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value
