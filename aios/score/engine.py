"""The score: components computed in DuckDB over a window, weighted by a preset, graded.

Presets (weights configurable in ``[score.weights.<preset>]``):

- ``evolution``: 0.4 task success rate + 0.3 correction rate + 0.2 uptime + 0.1 learning;
  grades >= 0.8 excellent, >= 0.6 good, >= 0.4 degraded, else critical.
- ``ops``: 0.4 health + 0.25 efficiency + 0.25 stability + 0.1 headroom; grades >= 0.7
  healthy, >= 0.5 ok, >= 0.3 degraded, else critical.

Components (each with the counts it came from):

- task_success_rate: task.completed / (task.completed + task.failed)
- correction_rate: remediations that ended ``succeeded`` (fixed and verified) / all that ended
- uptime: whole minutes with a ``system.heartbeat`` / whole minutes since the first heartbeat in
  the window (the minute in progress is left out)
- learning: lessons promoted (verified or hardened) / lessons created in the window
- health: success rate of tool calls (tasks with a ``tool`` label)
- efficiency: 1 - p95 task latency / latency budget (clamped to 0..1)
- stability: 1 - share of events of severity high or critical
- headroom: mean of 1 - max(cpu, memory, disk) / 100 over the ``host.metrics`` readings

A component with no data is ``None`` ("no data"), never 0 or 1; the score is the weighted mean
of the components that have data, their weights scaled to sum to 1. With no component at all,
the score itself is ``None``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import duckdb

from aios.score.projections import COLUMNS, bin_value

PRESETS: dict[str, dict[str, float]] = {
    "evolution": {
        "task_success_rate": 0.4,
        "correction_rate": 0.3,
        "uptime": 0.2,
        "learning": 0.1,
    },
    "ops": {"health": 0.4, "efficiency": 0.25, "stability": 0.25, "headroom": 0.1},
}
GRADES: dict[str, list[tuple[float, str]]] = {
    "evolution": [(0.8, "excellent"), (0.6, "good"), (0.4, "degraded"), (0.0, "critical")],
    "ops": [(0.7, "healthy"), (0.5, "ok"), (0.3, "degraded"), (0.0, "critical")],
}


@dataclass
class Component:
    name: str
    value: float | None
    weight: float
    counts: dict[str, float] = field(default_factory=dict)
    explanation: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "value": None if self.value is None else round(self.value, 4),
            "weight": self.weight,
            "counts": self.counts,
            "explanation": self.explanation,
        }


@dataclass
class Score:
    preset: str
    value: float | None
    grade: str | None
    window_s: float
    components: list[Component]
    since: datetime
    until: datetime

    def component(self, name: str) -> Component | None:
        return next((c for c in self.components if c.name == name), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "preset": self.preset,
            "score": None if self.value is None else round(self.value, 4),
            "grade": self.grade,
            "window_s": self.window_s,
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
            "components": [c.to_dict() for c in self.components],
        }


def grade_of(preset: str, value: float | None) -> str | None:
    if value is None:
        return None
    for floor, name in GRADES[preset]:
        if value >= floor:
            return name
    return GRADES[preset][-1][1]


def _ratio(good: float, total: float) -> float | None:
    return good / total if total > 0 else None


def _sums(con: duckdb.DuckDBPyConnection, since: datetime, until: datetime) -> dict[str, float]:
    select = ", ".join(f"coalesce(sum({c}), 0)" for c in COLUMNS)
    # Uptime counts whole minutes only: the minute in progress may not have had its beat yet.
    current_minute = until.replace(second=0, microsecond=0)
    row = con.execute(
        f"SELECT {select}, count(*) FILTER (WHERE heartbeats > 0 AND bucket < ?), "
        "min(bucket) FILTER (WHERE heartbeats > 0) "
        "FROM score_buckets WHERE bucket >= ? AND bucket < ?",
        [current_minute, since, until],
    ).fetchall()[0]
    sums = {name: float(value) for name, value in zip(COLUMNS, row[: len(COLUMNS)], strict=True)}
    sums["minutes_with_heartbeat"] = float(row[len(COLUMNS)])
    first = row[len(COLUMNS) + 1]
    sums["minutes_since_first_heartbeat"] = (
        (current_minute - first).total_seconds() / 60.0 if first is not None else 0.0
    )
    return sums


def _p95(con: duckdb.DuckDBPyConnection, since: datetime, until: datetime) -> tuple[float, int]:
    rows = con.execute(
        "SELECT bin, sum(n) FROM score_latency WHERE bucket >= ? AND bucket < ? "
        "GROUP BY bin ORDER BY bin",
        [since, until],
    ).fetchall()
    total = sum(int(n) for _, n in rows)
    if total == 0:
        return 0.0, 0
    needed, seen = 0.95 * total, 0
    for index, count in rows:
        seen += int(count)
        if seen >= needed:
            return bin_value(int(index)), total
    return bin_value(int(rows[-1][0])), total


def compute(
    con: duckdb.DuckDBPyConnection,
    *,
    preset: str = "evolution",
    window: timedelta = timedelta(hours=24),
    until: datetime,
    weights: dict[str, float] | None = None,
    latency_budget_ms: float = 5000.0,
) -> Score:
    """The score of ``preset`` over ``window`` ending at ``until`` (reads the buckets only)."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r} (known: {', '.join(PRESETS)})")
    chosen = {**PRESETS[preset], **(weights or {})}
    since = until - window
    s = _sums(con, since, until)
    values: dict[str, tuple[float | None, dict[str, float], str]] = {}
    done, failed = s["tasks_completed"], s["tasks_failed"]
    values["task_success_rate"] = (
        _ratio(done, done + failed),
        {"completed": done, "failed": failed},
        f"{done:.0f} completed of {done + failed:.0f} tasks",
    )
    fixed, finished = s["remediations_succeeded"], s["remediations_finished"]
    values["correction_rate"] = (
        _ratio(fixed, finished),
        {"succeeded": fixed, "finished": finished},
        f"{fixed:.0f} of {finished:.0f} remediations fixed and verified",
    )
    beats, expected = s["minutes_with_heartbeat"], s["minutes_since_first_heartbeat"]
    values["uptime"] = (
        min(1.0, beats / expected) if expected >= 1 else None,
        {"minutes_with_heartbeat": beats, "minutes_expected": round(expected, 1)},
        f"heartbeats in {beats:.0f} of {expected:.0f} minutes",
    )
    created, promoted = s["lessons_created"], s["lessons_promoted"]
    values["learning"] = (
        min(1.0, promoted / created) if created else None,
        {"lessons_created": created, "lessons_promoted": promoted},
        f"{promoted:.0f} lessons verified or hardened, {created:.0f} created",
    )
    tools_ok, tools_bad = s["tools_completed"], s["tools_failed"]
    values["health"] = (
        _ratio(tools_ok, tools_ok + tools_bad),
        {"tool_calls_completed": tools_ok, "tool_calls_failed": tools_bad},
        f"{tools_ok:.0f} of {tools_ok + tools_bad:.0f} tool calls succeeded",
    )
    p95, latencies = _p95(con, since, until)
    values["efficiency"] = (
        max(0.0, 1.0 - p95 / latency_budget_ms) if latencies else None,
        {"p95_latency_ms": round(p95, 1), "tasks_timed": latencies, "budget_ms": latency_budget_ms},
        f"p95 latency {p95:.0f} ms against a budget of {latency_budget_ms:.0f} ms",
    )
    severe, total = s["events_severe"], s["events_total"]
    values["stability"] = (
        1.0 - severe / total if total else None,
        {"events_severe": severe, "events_total": total},
        f"{severe:.0f} of {total:.0f} events high or critical",
    )
    readings, headroom = s["headroom_n"], s["headroom_sum"]
    values["headroom"] = (
        max(0.0, min(1.0, headroom / readings)) if readings else None,
        {"host_readings": readings},
        f"mean headroom over {readings:.0f} host readings",
    )
    unknown = sorted(set(chosen) - set(values))
    if unknown:
        raise ValueError(f"unknown score component(s): {', '.join(unknown)}")
    components = []
    for name, weight in chosen.items():
        value, counts, text = values[name]
        counts = {k: int(v) if float(v).is_integer() else v for k, v in counts.items()}
        components.append(
            Component(
                name, value, weight, counts, text if value is not None else f"no data ({text})"
            )
        )
    present = [c for c in components if c.value is not None and c.weight > 0]
    total_weight = sum(c.weight for c in present)
    score = (
        sum(c.weight * (c.value or 0.0) for c in present) / total_weight if total_weight else None
    )
    return Score(
        preset, score, grade_of(preset, score), window.total_seconds(), components, since, until
    )
