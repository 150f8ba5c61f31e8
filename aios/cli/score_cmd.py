"""``aios score``: the health score over a window, each component with its counts."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.text import Text

from aios.cli.output import console, print_json, rows_table
from aios.errors import InputError


def score(
    window: Annotated[
        str | None, typer.Option(help="How far back, e.g. 24h or 7d (default: \\[score] window).")
    ] = None,
    preset: Annotated[
        str | None, typer.Option(help="evolution or ops (default: \\[score] preset).")
    ] = None,
    record: Annotated[
        bool,
        typer.Option("--record", help="Also emit score.updated (and any grade change and alerts)."),
    ] = False,
    suggest_weights: Annotated[
        bool,
        typer.Option(
            "--suggest-weights",
            help="Suggest the preset's weights that best track incident hours (changes nothing).",
        ),
    ] = False,
    accept_weights: Annotated[
        bool,
        typer.Option(
            "--accept-weights", help="Suggest, and write the suggestion into config.toml."
        ),
    ] = False,
    days: Annotated[int, typer.Option(min=1, max=365, help="History the weights learn from.")] = 30,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """The score, its grade and trend, and each component with the counts it came from."""
    if suggest_weights or accept_weights:
        _weights(preset, days, accept_weights, as_json)
        return
    from aios.config import load_config
    from aios.durations import format_duration, parse_duration
    from aios.runtime import default_bus
    from aios.score.engine import PRESETS, compute
    from aios.score.record import previous_scores, trend_of
    from aios.score.record import record as record_score
    from aios.store import open_store

    config = load_config()
    chosen = preset or config.score.preset
    if chosen not in PRESETS:
        raise InputError(f"--preset {chosen!r}: use one of {', '.join(PRESETS)}")
    span = parse_duration(window) if window else config.score.window
    with open_store() as con:
        result = compute(
            con,
            preset=chosen,
            window=span,
            until=datetime.now(UTC),
            weights=config.score.weights.get(chosen),
            latency_budget_ms=config.score.latency_budget_ms,
        )
        history = previous_scores(con, chosen, config.score.trend_points - 1, span.total_seconds())
        values = [v for v, _, _ in history if v is not None]
        trend, change = trend_of(values + ([result.value] if result.value is not None else []))
        emitted: list[Any] = []
        if record:
            emitted = record_score(
                default_bus(), con, result, trend_points=config.score.trend_points
            )
    data = {
        **result.to_dict(),
        "trend": trend,
        "trend_change": change,
        "recorded": [e.type for e in emitted],
    }
    if as_json:
        print_json(data)
        return
    shown = "no data" if result.value is None else f"{result.value:.3f}"
    console.print(
        Text(
            f"{chosen} score {shown} ({result.grade or 'no grade'}), trend {trend}, "
            f"over {format_duration(span)}",
            style="bold",
        )
    )
    console.print(
        rows_table(
            ["component", "value", "weight", "from"],
            [
                (
                    c.name,
                    "no data" if c.value is None else f"{c.value:.3f}",
                    f"{c.weight:g}",
                    c.explanation,
                )
                for c in result.components
            ],
        )
    )
    if emitted:
        console.print("recorded: " + ", ".join(e.type for e in emitted))


def _weights(preset: str | None, days: int, accept: bool, as_json: bool) -> None:
    from aios.config import load_config
    from aios.runtime import default_bus
    from aios.score.engine import PRESETS
    from aios.score.weights import accept_weights, suggest_weights
    from aios.store import open_store

    config = load_config()
    chosen = preset or config.score.preset
    if chosen not in PRESETS:
        raise InputError(f"--preset {chosen!r}: use one of {', '.join(PRESETS)}")
    with open_store() as con:
        found = suggest_weights(
            con,
            preset=chosen,
            now=datetime.now(UTC),
            current=config.score.weights.get(chosen),
            days=days,
            latency_budget_ms=config.score.latency_budget_ms,
        )
    written = None
    if accept and found.suggested is not None:
        written = accept_weights(default_bus(), found)
    if as_json:
        print_json({**found.to_dict(), "accepted": written is not None})
        return
    console.print(Text(f"{chosen}: {found.reason}", style="bold"))
    rows = [
        (name, f"{weight:g}", "" if found.suggested is None else f"{found.suggested[name]:g}")
        for name, weight in found.current.items()
    ]
    console.print(rows_table(["component", "now", "suggested"], rows))
    if written is not None:
        console.print(f"written to {written}: [score.weights.{chosen}]")
    elif accept:
        console.print("nothing written: there is no better weighting to accept")
    elif found.suggested is not None:
        console.print("to use it: aios score --accept-weights")
