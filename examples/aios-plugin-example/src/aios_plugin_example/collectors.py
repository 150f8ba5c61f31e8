"""``example.heartbeat``: one event per monitor cycle, saying the collector ran."""

from __future__ import annotations

from typing import Any

from aios.plugins import CollectorContext


def heartbeat(ctx: CollectorContext) -> list[dict[str, Any]]:
    return [
        {
            "type": "example.heartbeat",
            "labels": {"host": ctx.host},
            "payload": {"cycle_at": ctx.now.isoformat()},
        }
    ]
