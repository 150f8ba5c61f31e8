"""Score weight learning (simple version): which weights make the score track real incidents.

Over the last ``days``, each hour gets its components (from the per-minute buckets, as the
score computes them) and a label: an incident hour is one in which AIOS ran a remediation
(``remediation.started``: a playbook's conditions held, and a person approved it where one
had to), escalated one, or a person recorded ``incident.confirmed``. A good score is lower in
incident hours than in the others; how often it is (the area under the ROC curve, 0.5 is
chance) is measured for the current weights and for every weighting on a grid over the
simplex, and the best is suggested. Nothing changes until a person accepts it
(``aios score --accept-weights``), which writes ``[score.weights.<preset>]`` in config.toml.
"""

from __future__ import annotations

import itertools
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import numpy.typing as npt

from aios.bus import EventBus
from aios.errors import InputError
from aios.home import HomePaths
from aios.score.engine import PRESETS, compute

INCIDENT_TYPES = ("remediation.started", "remediation.escalated", "incident.confirmed")
MIN_HOURS = 5  # of each kind, or there is nothing to learn from
MIN_GAIN = 0.05  # a suggestion must beat the current weights by this much (AUC)


@dataclass
class WeightSuggestion:
    preset: str
    current: dict[str, float]
    suggested: dict[str, float] | None
    current_auc: float | None
    suggested_auc: float | None
    incident_hours: int
    other_hours: int
    reason: str
    hours: list[dict[str, Any]] = field(default_factory=list)

    @property
    def worth_it(self) -> bool:
        return self.suggested is not None

    def to_dict(self) -> dict[str, Any]:
        found = asdict(self)
        found.pop("hours")
        found["worth_it"] = self.worth_it
        return found


def _incident_hours(con: duckdb.DuckDBPyConnection, since: datetime, until: datetime) -> set[Any]:
    rows = con.execute(
        """
        SELECT DISTINCT date_trunc('hour', time) FROM events
        WHERE time >= ? AND time < ? AND type IN (SELECT unnest(?::VARCHAR[]))
          AND (type = 'incident.confirmed' OR source = 'aios.reactor')
        """,
        [since, until, list(INCIDENT_TYPES)],
    ).fetchall()
    return {row[0] for row in rows}


def _scores(matrix: npt.NDArray[np.float64], weights: npt.NDArray[np.float64]) -> Any:
    """Each hour's score, the engine's way: the weighted mean of the components with data."""
    present = ~np.isnan(matrix)
    total = (present * weights).sum(axis=1)
    summed = np.where(present, matrix, 0.0) @ weights
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, summed / total, np.nan)


def _auc(incident: npt.NDArray[np.float64], other: npt.NDArray[np.float64]) -> float:
    """How often an ordinary hour scores above an incident hour (ties count half): the
    Mann-Whitney statistic, from ranks."""
    both = np.concatenate([incident, other])
    order = both.argsort(kind="mergesort")
    ranks = np.empty(len(both))
    ranks[order] = np.arange(1, len(both) + 1)
    _, inverse, counts = np.unique(both, return_inverse=True, return_counts=True)
    sums = np.bincount(inverse, weights=ranks)
    ranks = (sums / counts)[inverse]  # ties share their mean rank
    other_ranks = ranks[len(incident) :].sum()
    n_other, n_bad = len(other), len(incident)
    return float((other_ranks - n_other * (n_other + 1) / 2) / (n_bad * n_other))


def _number(value: float | None) -> float:
    return float("nan") if value is None else float(value)


def _grid(names: list[str], step: float) -> list[dict[str, float]]:
    units = round(1 / step)
    found = []
    for split in itertools.product(range(units + 1), repeat=len(names) - 1):
        if sum(split) > units:
            continue
        parts = [*split, units - sum(split)]
        found.append({n: round(p * step, 4) for n, p in zip(names, parts, strict=True)})
    return found


def suggest_weights(
    con: duckdb.DuckDBPyConnection,
    *,
    preset: str,
    now: datetime,
    current: dict[str, float] | None = None,
    days: int = 30,
    step: float = 0.05,
    latency_budget_ms: float = 5000.0,
) -> WeightSuggestion:
    """The weights of ``preset`` under which the score best separates incident hours."""
    weights = {**PRESETS[preset], **(current or {})}
    end = now.replace(minute=0, second=0, microsecond=0)
    since = end - timedelta(days=days)
    incidents = _incident_hours(con, since, end)
    hours: list[tuple[bool, dict[str, float | None]]] = []
    at = since
    while at < end:
        score = compute(
            con,
            preset=preset,
            window=timedelta(hours=1),
            until=at + timedelta(hours=1),
            weights=weights,
            latency_budget_ms=latency_budget_ms,
        )
        values = {c.name: c.value for c in score.components}
        if any(v is not None for v in values.values()):
            hours.append((at in incidents, values))
        at += timedelta(hours=1)
    bad = [v for hit, v in hours if hit]
    good = [v for hit, v in hours if not hit]
    table = [{"incident": hit, **v} for hit, v in hours]
    if len(bad) < MIN_HOURS or len(good) < MIN_HOURS:
        return WeightSuggestion(
            preset,
            weights,
            None,
            None,
            None,
            len(bad),
            len(good),
            f"not enough history: {len(bad)} incident and {len(good)} other hours with data "
            f"(at least {MIN_HOURS} of each)",
            table,
        )

    names = list(weights)

    def matrix(rows: list[dict[str, float | None]]) -> npt.NDArray[np.float64]:
        return np.array([[_number(r[n]) for n in names] for r in rows], dtype=np.float64)

    bad_m, good_m = matrix(bad), matrix(good)

    def auc_of(candidate: dict[str, float]) -> float:
        w = np.array([candidate[n] for n in names])
        bad_scores, good_scores = _scores(bad_m, w), _scores(good_m, w)
        bad_scores, good_scores = (
            bad_scores[~np.isnan(bad_scores)],
            good_scores[~np.isnan(good_scores)],
        )
        if not len(bad_scores) or not len(good_scores):
            return 0.5
        return _auc(bad_scores, good_scores)

    now_auc = auc_of(weights)
    best, best_auc = weights, now_auc
    for candidate in _grid(names, step):
        found = auc_of(candidate)
        if found > best_auc + 1e-9:
            best, best_auc = candidate, found
    gain = best_auc - now_auc
    if gain < MIN_GAIN:
        return WeightSuggestion(
            preset,
            weights,
            None,
            round(now_auc, 4),
            round(best_auc, 4),
            len(bad),
            len(good),
            f"the current weights are as good as any (AUC {now_auc:.2f}; the best found "
            f"{best_auc:.2f}, less than {MIN_GAIN} better)",
            table,
        )
    return WeightSuggestion(
        preset,
        weights,
        best,
        round(now_auc, 4),
        round(best_auc, 4),
        len(bad),
        len(good),
        f"these weights separate incident hours better: AUC {best_auc:.2f} against "
        f"{now_auc:.2f} now, over {len(bad)} incident and {len(good)} other hours",
        table,
    )


def accept_weights(bus: EventBus, found: WeightSuggestion, paths: HomePaths | None = None) -> Path:
    """Write ``found.suggested`` as ``[score.weights.<preset>]`` in config.toml (comments and
    layout kept; checked before the file is replaced) and record ``score.weights_accepted``.
    Returns the file's path."""
    import tomlkit

    from aios.atomic import write_atomic
    from aios.config import load_config

    if found.suggested is None:
        raise InputError("there is no suggestion to accept")
    paths = paths or HomePaths.current()
    path = paths.config
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    document = tomlkit.parse(text)
    score = document.setdefault("score", tomlkit.table())
    weights = score.setdefault("weights", tomlkit.table())
    table = tomlkit.table()
    for name, value in found.suggested.items():
        table[name] = value
    weights[found.preset] = table
    new_text = tomlkit.dumps(document)
    with tempfile.TemporaryDirectory() as scratch:  # the new file must load before it replaces
        trial = HomePaths(Path(scratch))
        trial.config.write_text(new_text, encoding="utf-8")
        load_config(trial)
    write_atomic(path, new_text.encode())
    bus.emit(
        "score.weights_accepted",
        {
            "preset": found.preset,
            "before": found.current,
            "after": found.suggested,
            "auc_before": found.current_auc,
            "auc_after": found.suggested_auc,
        },
        source="aios.score",
    )
    return path
