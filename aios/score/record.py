"""Recording scores: ``score.updated``, the trend, grade changes and alerts, all as events.

- Trend: the least-squares line through the last ``trend_points`` scores of the preset (this
  one included) and the change it predicts across them; ``improving`` or ``degrading`` when
  that change is at least 0.05 and at least twice the scatter of the scores around the line
  (so noise without a direction stays ``stable``), else ``stable`` (also with fewer than
  three scores).
- ``score.degraded`` / ``score.recovered`` when the grade moves down / up a band.
- Alerts (``alert.raised`` when a rule starts to hold, ``alert.cleared`` when it stops): score
  below 0.4 (critical), task success below 70% (warning), correction rate below 50%
  (investigate).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import duckdb
import orjson

from aios.bus import EventBus
from aios.event import Event, Severity
from aios.score.engine import GRADES, Score

SOURCE = "aios.score"
MIN_CHANGE = 0.05
NOISE_FACTOR = 2.0


@dataclass(frozen=True)
class AlertRule:
    name: str
    level: str
    severity: Severity
    component: str | None  # None: the score itself
    below: float


ALERTS = (
    AlertRule("score_critical", "critical", Severity.CRITICAL, None, 0.4),
    AlertRule("task_success_low", "warning", Severity.MEDIUM, "task_success_rate", 0.7),
    AlertRule("correction_rate_low", "investigate", Severity.LOW, "correction_rate", 0.5),
)


def trend_of(values: Sequence[float]) -> tuple[str, float | None]:
    """(trend, predicted change) for scores oldest first."""
    if len(values) < 3:
        return "stable", None
    n = len(values)
    mean_x, mean_y = (n - 1) / 2, sum(values) / n
    denominator = sum((x - mean_x) ** 2 for x in range(n))
    slope = sum((x - mean_x) * (y - mean_y) for x, y in enumerate(values)) / denominator
    change = slope * (n - 1)
    intercept = mean_y - slope * mean_x
    residual = (
        sum((y - (intercept + slope * x)) ** 2 for x, y in enumerate(values)) / (n - 2)
    ) ** 0.5
    # The change must stand out from the scatter around the line, not just be large.
    needed = max(MIN_CHANGE, NOISE_FACTOR * residual)
    if change >= needed:
        return "improving", change
    if change <= -needed:
        return "degrading", change
    return "stable", change


def previous_scores(
    con: duckdb.DuckDBPyConnection, preset: str, limit: int, window_s: float | None = None
) -> list[tuple[float | None, str | None, dict[str, Any]]]:
    """The last ``limit`` recorded scores of ``preset`` (over ``window_s``) with data, oldest
    first."""
    rows = con.execute(
        "SELECT score, grade, components FROM scores WHERE preset = ? AND score IS NOT NULL "
        "AND (? IS NULL OR window_s = ?) ORDER BY seq DESC LIMIT ?",
        [preset, window_s, window_s, limit],
    ).fetchall()
    out = []
    for value, grade, components in reversed(rows):
        parsed = orjson.loads(components) if components else []
        out.append(
            (value, grade, {c["name"]: c.get("value") for c in parsed if isinstance(c, dict)})
        )
    return out


def _rank(preset: str, grade: str | None) -> int | None:
    names = [name for _, name in GRADES[preset]]
    return len(names) - names.index(grade) if grade in names else None


def _alerting(rule: AlertRule, score: float | None, components: dict[str, Any]) -> bool:
    value = score if rule.component is None else components.get(rule.component)
    return isinstance(value, int | float) and value < rule.below


def record(
    bus: EventBus,
    con: duckdb.DuckDBPyConnection,
    score: Score,
    *,
    trend_points: int = 6,
) -> list[Event]:
    """Emit ``score.updated`` and whatever grade changes and alerts it brings."""
    history = previous_scores(con, score.preset, trend_points - 1, score.window_s)
    values = [v for v, _, _ in history if v is not None]
    if score.value is not None:
        values.append(score.value)
    trend, change = trend_of(values)
    components_now = {c.name: c.value for c in score.components}
    emitted = [
        bus.emit(
            "score.updated",
            {
                **score.to_dict(),
                "trend": trend,
                "trend_change": None if change is None else round(change, 4),
            },
            source=SOURCE,
            labels={"preset": score.preset},
        )
    ]
    cause = emitted[0].id
    previous = history[-1] if history else None
    before_rank = _rank(score.preset, previous[1]) if previous else None
    now_rank = _rank(score.preset, score.grade)
    if before_rank is not None and now_rank is not None and now_rank != before_rank:
        kind = "score.degraded" if now_rank < before_rank else "score.recovered"
        emitted.append(
            bus.emit(
                kind,
                {
                    "preset": score.preset,
                    "from": previous[1] if previous else None,
                    "to": score.grade,
                    "score": score.value,
                },
                source=SOURCE,
                severity=Severity.HIGH if kind == "score.degraded" else Severity.INFO,
                labels={"preset": score.preset},
                causation_id=cause,
            )
        )
    for rule in ALERTS:
        value = score.value if rule.component is None else components_now.get(rule.component)
        if value is None:
            continue  # no data says nothing either way: an alert stays as it was
        was = previous is not None and _alerting(rule, previous[0], previous[2])
        now = _alerting(rule, score.value, components_now)
        if now == was:
            continue
        emitted.append(
            bus.emit(
                "alert.raised" if now else "alert.cleared",
                {
                    "alert": rule.name,
                    "level": rule.level,
                    "preset": score.preset,
                    "value": value,
                    "threshold": rule.below,
                    "component": rule.component or "score",
                },
                source=SOURCE,
                severity=rule.severity if now else Severity.INFO,
                labels={"alert": rule.name, "preset": score.preset},
                causation_id=cause,
            )
        )
    return emitted
