"""Maintenance: log retention, DuckDB checkpoint, a snapshot, backup and trash cleanup."""

from __future__ import annotations

from typing import Any

from prefect import flow

from flows import artifacts
from tasks.upkeep import maintain


@flow(name="aios-maintenance", log_prints=False)
def maintenance_flow() -> dict[str, Any]:
    """What each step did (``maintenance.completed``)."""
    report = maintain()
    artifacts.table(
        "aios-maintenance",
        [{"step": s, "result": r, "detail": d} for s, r, d in report.pop("rows")],
        "What maintenance did.",
    )
    return report
