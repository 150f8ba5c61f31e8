"""Analyst (Orient): failure patterns, trends and top issues from the history in DuckDB."""

from __future__ import annotations

from typing import Any

from prefect import flow

from flows import artifacts
from tasks.analyse import analyse_history


@flow(name="aios-analyst", log_prints=False)
def analyst_flow(window_hours: float = 24.0) -> dict[str, Any]:
    """The report over the last ``window_hours``; returns its findings and totals."""
    report = analyse_history(window_hours)
    artifacts.markdown(
        "aios-analyst-report", report["markdown"], "Failure patterns, top issues and trends."
    )
    return {
        "since": report["since"],
        "until": report["until"],
        "totals": report["totals"],
        "findings": report["findings"],
    }
