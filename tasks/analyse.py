"""Orienting: the analyst's report over the history in the store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from aios.loop.analyst import analyse, record
from aios.store import open_store
from tasks.policy import aios_task, run_context


@aios_task("analyse-history")
def analyse_history(window_hours: float = 24.0) -> dict[str, Any]:
    """The report (as plain data plus its markdown), recorded as ``analysis.reported``."""
    ctx = run_context()
    with open_store(ctx.paths) as con:
        report = analyse(
            con,
            datetime.now(UTC),
            timedelta(hours=window_hours),
            preset=ctx.config.score.preset,
        )
    record(ctx.bus, report)
    return {**report.to_dict(), "markdown": report.to_markdown()}


@aios_task("score-report")
def score_report() -> dict[str, Any]:
    """Both presets over the configured window, with the trend, as data and markdown."""
    from aios.score.engine import PRESETS, compute
    from aios.score.record import previous_scores, trend_of

    ctx = run_context()
    config = ctx.config.score
    scores = []
    with open_store(ctx.paths) as con:
        for preset in PRESETS:
            result = compute(
                con,
                preset=preset,
                window=config.window,
                until=datetime.now(UTC),
                weights=config.weights.get(preset),
                latency_budget_ms=config.latency_budget_ms,
            )
            past = previous_scores(
                con, preset, config.trend_points - 1, config.window.total_seconds()
            )
            values = [v for v, _, _ in past if v is not None]
            trend, _ = trend_of(values + ([result.value] if result.value is not None else []))
            scores.append({**result.to_dict(), "trend": trend})
    lines = ["# Score report", ""]
    for entry in scores:
        shown = "no data" if entry["score"] is None else f"{entry['score']:.3f}"
        marker = " (configured)" if entry["preset"] == config.preset else ""
        lines += [
            f"## {entry['preset']}{marker}: {shown} {entry['grade'] or ''}, {entry['trend']}",
            "",
            "| component | value | weight | from |",
            "|---|---:|---:|---|",
        ]
        for c in entry["components"]:
            value = "no data" if c["value"] is None else f"{c['value']:.3f}"
            lines.append(f"| {c['name']} | {value} | {c['weight']:g} | {c['explanation']} |")
        lines.append("")
    return {"scores": scores, "markdown": "\n".join(lines)}
