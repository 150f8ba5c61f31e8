"""Heartbeat: records only. The score's uptime counts the minutes that had one."""

from __future__ import annotations

from typing import Any

from prefect import flow

from tasks.upkeep import record_heartbeat


@flow(name="aios-heartbeat", log_prints=False)
def heartbeat_flow() -> dict[str, Any]:
    """One ``system.heartbeat``."""
    return record_heartbeat()
