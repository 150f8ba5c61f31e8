"""The reactor: the urgent path. Match -> approval gate -> act -> verify -> roll back.

Started by ``aios up``'s event watcher with the ids of urgent events; without ids it takes
the urgent events no reactor run has taken yet. Critical events are announced to people.
"""

from __future__ import annotations

from typing import Any

from prefect import flow

from flows import artifacts
from flows.executor import result_rows
from flows.remediation import remediate
from flows.runtime import ui_url
from tasks.notify import notify_people
from tasks.policy import run_context
from tasks.remediate import critical_events, pending_urgent_events


@flow(name="aios-reactor", log_prints=False)
def reactor_flow(event_ids: list[str] | None = None) -> dict[str, Any]:
    """Remediate ``event_ids`` (default: the urgent events not taken yet)."""
    ids = event_ids if event_ids is not None else pending_urgent_events()
    config = run_context().config
    for event in critical_events(ids):
        notify_people(
            f"AIOS: critical {event['type']}",
            f"{event['type']} from {event['source']} at {event['time']}\n"
            f"labels: {event['labels']}\npayload: {event['payload']}",
        )
    outcomes = remediate(ids, config, ui_url=ui_url()) if ids else []
    artifacts.table(
        "aios-reactor-results",
        result_rows(outcomes),
        f"{len(ids)} urgent event(s), {len(outcomes)} outcome(s).",
    )
    return {"events": ids, "outcomes": outcomes}
