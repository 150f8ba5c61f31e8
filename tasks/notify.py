"""Telling people: critical alerts and approvals waiting, through Prefect notification blocks."""

from __future__ import annotations

from blocks.notifications import notify
from tasks.policy import aios_task, run_context


@aios_task("notify-people", retries=0)
def notify_people(subject: str, body: str) -> list[str]:
    """Send through every block in ``notify_blocks``; returns the names that were notified.
    A block that fails is recorded as ``notification.failed`` and the others still send."""
    ctx = run_context()
    return notify(ctx.bus, ctx.config.orchestration.notify_blocks, subject, body)
