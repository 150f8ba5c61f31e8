"""Upkeep: the heartbeat, and maintenance of the log, the store and the backups."""

from __future__ import annotations

from typing import Any

from aios.loop.heartbeat import beat
from tasks.policy import aios_task, run_context


@aios_task("heartbeat", retries=1)
def record_heartbeat() -> dict[str, Any]:
    """One ``system.heartbeat``."""
    event = beat(run_context().bus)
    return {"id": event.id, "time": event.time.isoformat(), **event.payload}


@aios_task("maintain")
def maintain() -> dict[str, Any]:
    """Retention, checkpoint, snapshot, backup and trash cleanup (``maintenance.completed``)."""
    from aios.loop.maintenance import run_maintenance

    ctx = run_context()
    report = run_maintenance(ctx.bus, ctx.paths, ctx.config)
    return {**report.to_dict(), "rows": [list(row) for row in report.rows()]}
