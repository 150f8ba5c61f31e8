"""Remediating a batch of events, the part the reactor and executor flows share.

The remediate task runs what needs nobody; each remediation waiting for a person is announced
(notification), gated (the flow pauses for the Prefect UI's Resume form), its answer recorded,
and, when approved, run. The flow itself waits, never a task, so task timeouts bound only the
remediations themselves.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from prefect.logging import get_run_logger

from aios.config import AIOSConfig
from aios.reactor.approval import ApprovalRequest
from flows.approval import wait_for_approval
from flows.runtime import api_url
from tasks.notify import notify_people
from tasks.remediate import ensure_remediation_limit, react_to_events, record_approval


def remediate(
    event_ids: list[str],
    config: AIOSConfig,
    *,
    only: list[str] | None = None,
    ui_url: str | None = None,
) -> list[dict[str, Any]]:
    """Every outcome for ``event_ids`` (through the playbooks in ``only``, when given),
    approvals asked and answered on the way."""
    logger = get_run_logger()
    ensure_remediation_limit(api_url(), config.orchestration.max_concurrent_remediations)
    timeout = config.orchestration.remediation_timeout.total_seconds()
    run = react_to_events.with_options(timeout_seconds=timeout)
    outcomes: list[dict[str, Any]] = []
    for result in run(event_ids, only=only):
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
        )
        skipped = record_approval(result["event_id"], result["request"], asdict(decision))
        if skipped is not None:
            outcomes.append({**skipped, "event_type": result["event_type"]})
            continue
        outcomes += run([result["event_id"]], only=[request.playbook])
    return outcomes
