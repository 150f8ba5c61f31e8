"""The Learner (Learn): how well each playbook works.

``learn`` derives each playbook's effectiveness over the window (runs, outcomes, approvals
denied, fixes that did not hold) and records ``playbook.effectiveness`` when it changed since
the last record. Lessons (failures that keep coming back) are ``aios.lessons``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

import duckdb
import orjson

from aios.bus import EventBus

SOURCE = "aios.learner"
# What a record says; a change in any of them is recorded (denials and unverified runs too).
COUNTS = ("runs", "succeeded", "failed", "rolled_back", "unverified", "denied", "recurred")


@dataclass
class Effectiveness:
    playbook: str
    runs: int
    succeeded: int
    failed: int
    rolled_back: int
    unverified: int
    denied: int
    recurred: int
    success_rate: float | None

    def key(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in COUNTS)


@dataclass
class LearnerReport:
    effectiveness: list[Effectiveness] = field(default_factory=list)
    changed: list[tuple[Effectiveness, dict[str, Any] | None]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "effectiveness": [asdict(e) for e in self.effectiveness],
            "changed": [{"now": asdict(now), "before": before} for now, before in self.changed],
        }

    def to_markdown(self) -> str:
        lines = ["# Learner changes", ""]
        if self.changed:
            lines += ["| playbook | success rate | before | runs | did not hold |"]
            lines += ["|---|---:|---:|---:|---:|"]
            for now, before in self.changed:
                old = before.get("success_rate") if before else None
                lines.append(
                    f"| {now.playbook} | {_rate(now.success_rate)} | {_rate(old)} | "
                    f"{now.runs} | {now.recurred} |"
                )
        else:
            lines.append("No playbook's effectiveness changed.")
        return "\n".join(lines) + "\n"


def _rate(value: Any) -> str:
    return f"{value:.0%}" if isinstance(value, int | float) else "n/a"


def effectiveness(
    con: duckdb.DuckDBPyConnection, since: datetime, until: datetime
) -> list[Effectiveness]:
    rows = con.execute(
        """
        SELECT payload->>'playbook' AS playbook,
               count(*) FILTER (WHERE type = 'remediation.finished'),
               count(*) FILTER (WHERE type = 'remediation.finished'
                                AND payload->>'outcome' = 'succeeded'),
               count(*) FILTER (WHERE type = 'remediation.finished'
                                AND payload->>'outcome' = 'failed'),
               count(*) FILTER (WHERE type = 'remediation.finished'
                                AND payload->>'outcome' = 'rolled_back'),
               count(*) FILTER (WHERE type = 'remediation.finished'
                                AND payload->>'outcome' = 'unverified'),
               count(*) FILTER (WHERE type IN ('approval.denied', 'approval.expired')),
               count(*) FILTER (WHERE type = 'validation.verdict'
                                AND payload->>'verdict' = 'recurred'),
               count(*) FILTER (WHERE type = 'validation.verdict'
                                AND payload->>'verdict' = 'recurred'
                                AND payload->>'outcome' = 'succeeded')
        FROM events
        WHERE time >= ? AND time < ? AND source IN ('aios.reactor', 'aios.validator')
          AND type IN ('remediation.finished', 'approval.denied', 'approval.expired',
                       'validation.verdict')
        GROUP BY 1 ORDER BY 1
        """,
        [since, until],
    ).fetchall()
    found = []
    for playbook, runs, ok, failed, rolled, unverified, denied, recurred, undone in rows:
        judged = ok + failed + rolled
        # Only a verified success that came back lowers the rate: an unverified run that
        # recurred was never counted as a success.
        held = ok - min(undone, ok)
        found.append(
            Effectiveness(
                str(playbook),
                runs,
                ok,
                failed,
                rolled,
                unverified,
                denied,
                recurred,
                round(held / judged, 4) if judged else None,
            )
        )
    return found


def _last_recorded(con: duckdb.DuckDBPyConnection) -> dict[str, dict[str, Any]]:
    rows = con.execute(
        "SELECT payload->>'playbook', arg_max(payload, seq) FROM events "
        "WHERE type = 'playbook.effectiveness' AND source = ? GROUP BY 1",
        [SOURCE],
    ).fetchall()
    return {str(p): orjson.loads(payload) for p, payload in rows}


def learn(
    bus: EventBus,
    con: duckdb.DuckDBPyConnection,
    *,
    now: datetime,
    window: timedelta = timedelta(days=30),
) -> LearnerReport:
    """Derive, compare with what was last recorded, and record what changed."""
    report = LearnerReport(effectiveness=effectiveness(con, now - window, now))
    before = _last_recorded(con)
    for item in report.effectiveness:
        last = before.get(item.playbook)
        if last is None or _key(last) != item.key():
            report.changed.append((item, last))
    events: list[dict[str, Any]] = [
        {
            "type": "playbook.effectiveness",
            "source": SOURCE,
            "labels": {"playbook": item.playbook},
            "payload": {**asdict(item), "window_s": window.total_seconds()},
        }
        for item, _ in report.changed
    ]
    if events:
        bus.emit_many(events)
    return report


def _key(payload: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(payload.get(name) for name in COUNTS)
