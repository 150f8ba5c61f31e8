"""Observing: one monitor cycle, and the health of the operator's Prefect flow runs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from aios.observe.flow_runs import report_flow_runs
from aios.observe.monitor import run_cycle
from aios.prefect_api import HttpPrefectAPI
from tasks.policy import aios_task, run_context


@aios_task("monitor-cycle")
def monitor_cycle() -> dict[str, Any]:
    """Collect, detect and record (``run_cycle``); returns what was measured and emitted."""
    ctx = run_context()
    return run_cycle(ctx.bus, ctx.paths, ctx.config).to_dict()


@aios_task("flow-run-health")
def flow_run_health(api_url: str, lookback_s: float = 3600.0) -> list[dict[str, Any]]:
    """Turn failed, crashed, late and completed runs of other deployments into events."""
    ctx = run_context()
    since = datetime.now(UTC) - timedelta(seconds=lookback_s)
    with HttpPrefectAPI(api_url) as api:
        events = report_flow_runs(ctx.bus, ctx.paths, api, since)
    return [{"type": e.type, "labels": e.labels, "payload": e.payload} for e in events]
