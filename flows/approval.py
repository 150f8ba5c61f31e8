"""The approval gate: a risky remediation waits for a person in the Prefect UI.

``wait_for_approval`` pauses the flow run with ``pause_flow_run(wait_for_input=...)``: the UI
shows a Resume form (approve, reason, approver) under a description of the trigger, the
playbook, the planned actions (dry run), the breaker and past outcomes. An approval without an
approver's name is asked again. When nobody answers within the timeout, the run resumes itself
with a denial marked expired: the run then ends cleanly instead of Prefect failing it.
"""

from __future__ import annotations

import threading
import uuid
from typing import Any

from prefect.context import FlowRunContext
from prefect.flow_runs import pause_flow_run, resume_flow_run
from prefect.input import RunInput
from prefect.logging import get_run_logger
from pydantic import Field

from aios.durations import format_duration
from aios.reactor.approval import ApprovalDecision, ApprovalRequest

EXPIRED_APPROVER = "aios (timeout)"
WAITING_SOURCE = "aios.approvals"
GRACE_S = 300  # Prefect's own pause timeout lies this far beyond ours, so ours always wins


class RemediationApproval(RunInput):
    """The Resume form."""

    approve: bool = Field(
        default=False, description="Tick to run the remediation; leave it off to reject it."
    )
    reason: str = Field(default="", description="Why: recorded with the decision.")
    approver: str = Field(min_length=1, description="Your name: who decides.")


def announce_waiting(request: ApprovalRequest, flow_run_id: str, timeout_s: float) -> None:
    """``approval.waiting``: which flow run to resume for which remediation, until when."""
    from datetime import UTC, datetime, timedelta

    from aios.runtime import default_bus

    default_bus().emit(
        "approval.waiting",
        {
            "remediation_id": request.remediation_id,
            "playbook": request.playbook,
            "risk": request.risk,
            "flow_run_id": flow_run_id,
            "deadline": (datetime.now(UTC) + timedelta(seconds=timeout_s)).isoformat(),
        },
        source=WAITING_SOURCE,
        labels={"playbook": request.playbook, "remediation": request.remediation_id},
    )


def describe(request: ApprovalRequest, timeout_s: float, note: str = "") -> str:
    """The form's description: markdown a person can decide on."""
    lines = [f"## Approve remediation `{request.remediation_id}`?", ""]
    if note:
        lines += [f"**{note}**", ""]
    for line in request.description.splitlines():  # one line each, wrapped by the UI
        text = line.strip()
        if text:
            lines.append(
                f"- {_escape(text)}" if not line.startswith("  ") else f"    - {_escape(text)}"
            )
    lines.append("")
    lines.append(
        f"Risk: **{request.risk}**. Unanswered after {format_duration_s(timeout_s)}, it is "
        "denied. Tick *approve* to run it; leave it off to reject it."
    )
    return "\n".join(lines)


def _escape(text: str) -> str:
    """Plain text inside markdown: characters that would format are escaped."""
    for char in "\\`*_[]<>#|":
        text = text.replace(char, "\\" + char)
    return text


def format_duration_s(seconds: float) -> str:
    from datetime import timedelta

    return format_duration(timedelta(seconds=seconds))


def wait_for_approval(
    request: ApprovalRequest, *, timeout_s: float, poll_s: float = 2.0
) -> ApprovalDecision:
    """Pause this flow run until a person answers (or the timeout denies it)."""
    context = FlowRunContext.get()
    if context is None or context.flow_run is None:
        raise RuntimeError("approvals wait inside a flow run")
    flow_run_id = context.flow_run.id
    logger = get_run_logger()
    answered = threading.Event()
    expired = threading.Event()

    def expire() -> None:
        if answered.wait(timeout_s):
            return
        expired.set()
        try:
            resume_flow_run(
                flow_run_id,
                run_input={
                    "approve": False,
                    "reason": f"no answer within {format_duration_s(timeout_s)}",
                    "approver": EXPIRED_APPROVER,
                },
            )
        except Exception as exc:  # a person answered at the same moment
            logger.info("the approval timeout found the run already resumed: %s", exc)

    timer = threading.Thread(target=expire, name="aios-approval-timeout", daemon=True)
    timer.start()
    announce_waiting(request, str(flow_run_id), timeout_s)
    note = ""
    try:
        while True:
            if expired.is_set():  # the timeout came between two questions
                reason = f"no answer within {format_duration_s(timeout_s)}"
                return ApprovalDecision(False, "nobody", reason, expired=True)
            form = RemediationApproval.with_initial_data(
                description=describe(request, timeout_s, note), approve=False, reason=""
            )
            answer: Any = pause_flow_run(
                wait_for_input=form,
                timeout=int(timeout_s + GRACE_S),
                poll_interval=max(1, round(poll_s)),
                key=f"approval-{request.remediation_id}-{uuid.uuid4().hex[:8]}",
            )
            if expired.is_set() and answer.approver == EXPIRED_APPROVER:
                return ApprovalDecision(False, "nobody", answer.reason, expired=True)
            approver = str(answer.approver).strip()
            if not approver:
                note = "An approver's name is required: please answer again."
                logger.warning("approval answered without a name; asking again")
                continue
            verdict = "approved" if answer.approve else "rejected"
            reason = str(answer.reason).strip() or f"{verdict} in the Prefect UI"
            return ApprovalDecision(bool(answer.approve), approver, reason)
    finally:
        answered.set()
