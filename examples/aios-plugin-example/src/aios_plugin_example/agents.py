"""``example_auditor``: counts the last hour's events by type and says what it saw.

It runs in the orchestrator's DAG after the built-in stages (``in_dag``) and hourly as its own
deployment (``schedule``); its result is a plain dict, as every agent's is.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from aios.plugins import AgentContext, PluginAgent, Schedule
from aios.store import open_store


class Auditor(PluginAgent):
    name = "example_auditor"
    description = "Counts the last hour's events by type."
    schedule = Schedule(interval_s=3600)
    in_dag = True

    def run(self, context: AgentContext) -> dict[str, Any]:
        since = datetime.now(UTC) - timedelta(hours=1)
        with open_store(context.paths) as con:
            rows = con.execute(
                "SELECT type, count(*) FROM events WHERE time >= ? GROUP BY 1 ORDER BY 1",
                [since],
            ).fetchall()
        by_type = {str(kind): int(count) for kind, count in rows}
        context.bus.emit(
            "example.audited",
            {"events": sum(by_type.values()), "types": len(by_type)},
            source="example.auditor",
        )
        return {
            "events": sum(by_type.values()),
            "by_type": by_type,
            "previous": sorted(context.previous),
        }
