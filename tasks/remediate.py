"""Acting: run remediations for given events (approvals deferred to the flow), record a
person's decision, keep the executor's place, and make sure the concurrency limit exists."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import asdict
from typing import Any

from prefect.concurrency.sync import concurrency

from aios.event import Event
from aios.prefect_api import HttpPrefectAPI
from aios.reactor.approval import ApprovalDecision, ApprovalRequest, PolicyApprover
from aios.reactor.engine import Outcome
from aios.reactor.runner import load_index, react_to, record_decision, settings_from
from aios.scheduler import Route, route_of
from aios.store import open_store
from aios.store.consumers import events_after, get_position, last_seq, set_position
from tasks.policy import aios_task, run_context

REMEDIATION_LIMIT = "aios-remediations"
REACTOR_FLOW_CONSUMER = "reactor-flow"


def remediation_slot() -> AbstractContextManager[object]:
    """One of the global concurrency limit's slots, held while a remediation executes."""
    return concurrency(REMEDIATION_LIMIT, occupy=1, strict=False)


def outcome_record(event: Event, outcome: Outcome) -> dict[str, Any]:
    return {
        "event_id": event.id,
        "event_type": event.type,
        **outcome.to_dict(),
        "request": asdict(outcome.request) if outcome.request else None,
    }


@aios_task("react-to-events", retries=2)
def react_to_events(event_ids: list[str], only: list[str] | None = None) -> list[dict[str, Any]]:
    """Match, decide and run remediations for these events; medium/high risk ones come back
    as ``awaiting_approval`` with the request for a person."""
    ctx = run_context()
    index, _ = load_index(ctx.config)
    guard: Callable[[], AbstractContextManager[object]] = remediation_slot
    results = react_to(
        ctx.bus,
        ctx.paths,
        index,
        settings_from(ctx.config, ctx.paths),
        PolicyApprover(False, "unused"),
        event_ids,
        only=only,
        defer_approvals=True,
        run_guard=guard,
    )
    return [outcome_record(event, outcome) for event, outcome in results]


@aios_task("record-approval")
def record_approval(
    trigger_id: str, request: dict[str, Any], decision: dict[str, Any]
) -> dict[str, Any] | None:
    """Record the answer (sealed); the skip outcome when it was no, None when yes."""
    ctx = run_context()
    index, _ = load_index(ctx.config)
    outcome = record_decision(
        ctx.bus,
        index,
        settings_from(ctx.config, ctx.paths),
        trigger_id,
        ApprovalRequest(**request),
        ApprovalDecision(**decision),
    )
    return None if outcome is None else {"event_id": trigger_id, **outcome.to_dict()}


@aios_task("pending-urgent-events")
def pending_urgent_events(limit: int = 500) -> list[str]:
    """Urgent (P0/P1) events no reactor flow has taken yet; takes them (moves the place)."""
    ctx = run_context()
    with open_store(ctx.paths) as con:
        position = get_position(con, REACTOR_FLOW_CONSUMER)
        if position is None:
            set_position(con, REACTOR_FLOW_CONSUMER, last_seq(con))
            return []
        rows = events_after(con, position, limit=limit)
        if rows:
            set_position(con, REACTOR_FLOW_CONSUMER, rows[-1][0])
    return [event.id for _, event in rows if route_of(event) is Route.REACTOR]


@aios_task("advance-executor")
def advance_executor(upto_seq: int) -> int:
    """Move the executor's place to ``upto_seq`` (never backwards); returns the place."""
    from aios.loop.optimizer import EXECUTOR

    ctx = run_context()
    with open_store(ctx.paths) as con:
        current = get_position(con, EXECUTOR) or 0
        if upto_seq > current:
            set_position(con, EXECUTOR, upto_seq)
        return max(current, upto_seq)


@aios_task("ensure-remediation-limit")
def ensure_remediation_limit(api_url: str, limit: int) -> int:
    """Create the global concurrency limit when it is missing; returns its limit (a value a
    person set in the UI is kept)."""
    with HttpPrefectAPI(api_url) as api:
        found = api.read_concurrency_limit(REMEDIATION_LIMIT)
        if found is None:
            found = api.upsert_concurrency_limit(REMEDIATION_LIMIT, limit)
        return int(found["limit"])


@aios_task("critical-events")
def critical_events(event_ids: list[str]) -> list[dict[str, Any]]:
    """The critical (P0) ones among ``event_ids``, as plain data."""
    from aios.event import Priority
    from aios.store.consumers import events_with_ids

    ctx = run_context()
    with open_store(ctx.paths) as con:
        found = events_with_ids(con, event_ids)
    return [event.model_dump(mode="json") for _, event in found if event.priority is Priority.P0]
