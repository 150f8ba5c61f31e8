"""Verifying: roll back what was left half done and judge what finished."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from aios.loop.validator import validate
from aios.reactor.runner import load_index, settings_from
from tasks.policy import aios_task, run_context


@aios_task("validate-outcomes")
def validate_outcomes(window_hours: float = 24.0) -> dict[str, Any]:
    """Verdicts on the remediations that finished in the window (``validation.verdict``)."""
    ctx = run_context()
    index, _ = load_index(ctx.config, strict=False)
    report = validate(
        ctx.bus,
        ctx.paths,
        index,
        settings_from(ctx.config, ctx.paths),
        now=datetime.now(UTC),
        window=timedelta(hours=window_hours),
        interrupted_after=ctx.config.orchestration.interrupted_after,
    )
    return report.to_dict()
