"""Acting: run remediations for given events (approvals deferred to the flow), record a
person's decision, keep the executor's place, and make sure the concurrency limit exists."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import asdict
from typing import Any

from prefect.concurrency.sync import concurrency
from prefect.logging import get_run_logger

from aios.config import AIOSConfig
from aios.event import Event
from aios.lessons.apply import current_fix
from aios.playbooks.matcher import PlaybookIndex
from aios.prefect_api import HttpPrefectAPI
from aios.reactor.approval import ApprovalDecision, ApprovalRequest, PolicyApprover
from aios.reactor.engine import Outcome
from aios.reactor.runner import load_index, react_to, record_decision, settings_from
from aios.scheduler import Route, route_of
from aios.store import open_store
from aios.store.consumers import EVENT_COLUMNS, event_from_row, get_position, set_position
from tasks.policy import aios_task, run_context

REMEDIATION_LIMIT = "aios-remediations"


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


def loaded_playbooks(config: AIOSConfig) -> PlaybookIndex:
    """The playbooks that load; a broken file is left out and logged, never fatal (one
    half-saved file must not stop every remediation and lose a person's answer)."""
    from aios.evolution_runs import evolution_index
    from aios.home import HomePaths

    index, result = load_index(config, strict=False)
    for problem in result.problems:
        get_run_logger().warning("playbook problem (left out): %s", problem)
    # The changes agent evolution proposed are playbooks too, until they are judged.
    return evolution_index(HomePaths.current(), config, index)


@aios_task("react-to-events", retries=2)
def react_to_events(
    event_ids: list[str],
    only: list[str] | None = None,
    lesson: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Match, decide and run remediations for these events; medium/high risk ones come back
    as ``awaiting_approval`` with the request for a person. ``lesson`` (``lesson_id``,
    ``similarity``) applies a proven lesson's fix, as the lesson stands now."""
    ctx = run_context()
    index = loaded_playbooks(ctx.config)
    guard: Callable[[], AbstractContextManager[object]] = remediation_slot
    fix = None
    if lesson is not None:
        fix = current_fix(ctx.paths, str(lesson["lesson_id"]), float(lesson["similarity"]))
        if fix is None:
            return [
                {
                    "event_id": event_id,
                    "event_type": "",
                    "playbook": (only or ["?"])[0],
                    "status": "skipped",
                    "reason": f"lesson {lesson['lesson_id']} is no longer proven",
                    "remediation_id": None,
                    "risk": None,
                    "plan": [],
                    "request": None,
                }
                for event_id in event_ids
            ]
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
        lesson=fix,
    )
    return [outcome_record(event, outcome) for event, outcome in results]


@aios_task("record-approval")
def record_approval(
    trigger_id: str, request: dict[str, Any], decision: dict[str, Any]
) -> dict[str, Any] | None:
    """Record the answer (sealed); the skip outcome when it was no, None when yes."""
    ctx = run_context()
    index = loaded_playbooks(ctx.config)
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
    """Urgent (P0/P1) events of the last ``[orchestration] urgent_max_age`` that neither the
    event watcher dispatched nor the reactor has taken up yet, oldest first."""
    from datetime import UTC, datetime

    import orjson

    ctx = run_context()
    since = datetime.now(UTC) - ctx.config.orchestration.urgent_max_age
    with open_store(ctx.paths) as con:
        rows = [
            event_from_row(row)
            for row in con.execute(
                f"SELECT {EVENT_COLUMNS} FROM events WHERE time >= ? "
                "AND priority IN ('P0', 'P1') ORDER BY seq",
                [since],
            ).fetchall()
        ]
        taken: set[str] = set()
        for payload, correlation in con.execute(
            "SELECT payload, correlation_id FROM events WHERE time >= ? AND "
            "(type = 'scheduler.dispatched' OR source = 'aios.reactor')",
            [since],
        ).fetchall():
            if correlation:
                taken.add(str(correlation))
            taken.update(str(i) for i in orjson.loads(payload).get("event_ids") or [])
    pending = [
        event.id for _, event in rows if route_of(event) is Route.REACTOR and event.id not in taken
    ]
    return pending[:limit]


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
