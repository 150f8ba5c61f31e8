"""Remediating a batch of events, the part the reactor and executor flows share.

Each event is remediated by a task of its own (so a slow one cannot eat another's time). What
needs nobody runs at once; each remediation waiting for a person is announced (notification),
gated (the flow pauses for the Prefect UI's Resume form, unless another run already asks about
it), its answer recorded, and, when approved, run; if its plan changed meanwhile, it is asked
about again. The flow itself waits, never a task, so task timeouts bound only the
remediations themselves.
"""

from __future__ import annotations

from dataclasses import asdict
from functools import partial
from typing import Any

from prefect.context import FlowRunContext
from prefect.logging import get_run_logger

from aios.config import AIOSConfig
from aios.home import HomePaths
from aios.prefect_api import HttpPrefectAPI
from aios.reactor.approval import ApprovalRequest
from aios.reactor.decisions import DecisionWatch, other_paused_runs
from aios.runtime import default_bus
from flows.approval import wait_for_approval
from flows.runtime import api_url
from tasks.notify import notify_people
from tasks.remediate import ensure_remediation_limit, react_to_events, record_approval

# A remediation stops itself at [orchestration] remediation_timeout; the task around it is
# stopped only if it hangs well beyond that (waiting for a concurrency slot is not its fault).
TASK_TIMEOUT_FACTOR = 3
TASK_TIMEOUT_EXTRA_S = 60


def remediate(
    event_ids: list[str],
    config: AIOSConfig,
    *,
    only: list[str] | None = None,
    ui_url: str | None = None,
    lesson: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Every outcome for ``event_ids`` (through the playbooks in ``only``, when given; a
    proven lesson's fix with ``lesson``), approvals asked and answered on the way."""
    logger = get_run_logger()
    url = api_url()
    ensure_remediation_limit(url, config.orchestration.max_concurrent_remediations)
    limit = config.orchestration.remediation_timeout.total_seconds()
    run = react_to_events.with_options(
        timeout_seconds=limit * TASK_TIMEOUT_FACTOR + TASK_TIMEOUT_EXTRA_S
    )
    paths = HomePaths.current()
    start = default_bus().log.end()  # decisions made from here on are looked for
    outcomes: list[dict[str, Any]] = []
    queue: list[dict[str, Any]] = []
    for event_id in event_ids:
        queue += run([event_id], only=only, lesson=lesson)
    while queue:
        result = queue.pop(0)
        if result["status"] != "awaiting_approval":
            outcomes.append(result)
            continue
        request = ApprovalRequest(**result["request"])
        where = f" in the Prefect UI ({ui_url})" if ui_url else " in the Prefect UI"
        notify_people(
            f"AIOS: approval waiting for {request.playbook} ({request.risk} risk)",
            f"{request.description}\n\nApprove or reject it{where}, or with "
            f"`aios approvals approve|reject` at a terminal.",
        )
        logger.info("remediation %s waits for a person", request.remediation_id)
        decision = wait_for_approval(
            request,
            timeout_s=config.reactor.approval_timeout.total_seconds(),
            poll_s=config.orchestration.approval_poll.total_seconds(),
            decided=DecisionWatch(paths, request.remediation_id, request.digest, start),
            other_waiting=partial(_others_wait, paths, url, request.remediation_id),
        )
        skipped = record_approval(result["event_id"], result["request"], asdict(decision))
        if skipped is not None:
            outcomes.append({**skipped, "event_type": result["event_type"]})
            continue
        queue += run([result["event_id"]], only=[request.playbook], lesson=lesson)
    return outcomes


def _others_wait(paths: HomePaths, url: str, rid: str) -> bool:
    context = FlowRunContext.get()
    mine = str(context.flow_run.id) if context and context.flow_run else ""
    with HttpPrefectAPI(url) as api:
        return bool(other_paused_runs(paths, api, rid, mine))
