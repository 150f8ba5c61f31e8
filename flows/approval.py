"""The approval gate: a risky remediation waits for a person in the Prefect UI.

``wait_for_approval`` pauses the flow run with ``pause_flow_run(wait_for_input=...)``: the UI
shows a Resume form (approve, reason, approver, code, and the remediation it is about) under a
description of the trigger, the playbook, the planned actions (dry run), the breaker, past
outcomes and who may approve. Every answer, through the form, ``aios approvals`` or Prefect's
resume API alike, must pass ``aios.approvers``: with approvers configured, a configured name
whose max_risk covers the risk and that approver's current one-time code, unused. An answer
that does not count (no name, not an approver, risk above theirs, a wrong or spent code, about
another remediation, a run resumed without a valid answer) is recorded as ``approval.refused``
and asked again until the deadline.

A watchdog thread beside the pause:
- at the deadline, resumes the run with a denial marked expired (retrying until the run is no
  longer paused), so the run ends cleanly instead of Prefect failing it; an answer that
  arrives after the deadline is recorded as late (``approval.late``) and counts as expired;
- when the decision about this remediation is recorded elsewhere (another run asked about the
  same remediation and was answered), resumes this run with that decision.

Only one run asks about a remediation at a time: a run that finds another one already paused
for it waits for that run's answer in the log instead of showing a second form.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from prefect.context import FlowRunContext
from prefect.exceptions import FlowPauseTimeout
from prefect.flow_runs import pause_flow_run, resume_flow_run
from prefect.input import RunInput
from prefect.logging import get_run_logger
from pydantic import Field, ValidationError

from aios.approvers import MAX_NAME_RECORDED, Answer, ApprovalGuard, Verdict, who_may_approve
from aios.approvers import SOURCE as WAITING_SOURCE
from aios.durations import format_duration
from aios.errors import ConfigError
from aios.home import HomePaths
from aios.reactor.approval import ApprovalDecision, ApprovalRequest

EXPIRED_APPROVER = "aios (timeout)"
ELSEWHERE_APPROVER = "aios (decided in another run)"
GRACE_S = 300  # Prefect's own pause timeout lies this far beyond ours, so ours always wins
RESUME_RETRY_S = 2.0
logger = logging.getLogger("aios.approvals")  # the watchdog thread has no run context

# What the log says was decided about a remediation (None: nothing yet).
Decided = Callable[[], ApprovalDecision | None]


class RemediationApproval(RunInput):
    """The Resume form."""

    approve: bool = Field(
        default=False, description="Tick to run the remediation; leave it off to reject it."
    )
    reason: str = Field(default="", description="Why: recorded with the decision.")
    approver: str = Field(min_length=1, description="Your name: who decides.")
    code: str = Field(
        default="",
        description="Your 6-digit approval code, when approvers are configured.",
    )
    remediation_id: str = Field(
        default="", description="The remediation this answer is about (filled in; keep it)."
    )


def announce_waiting(request: ApprovalRequest, flow_run_id: str, timeout_s: float) -> None:
    """``approval.waiting``: which flow run to resume for which remediation, until when."""
    from aios.runtime import default_bus

    default_bus().emit(
        "approval.waiting",
        {
            "remediation_id": request.remediation_id,
            "playbook": request.playbook,
            "risk": request.risk,
            "flow_run_id": flow_run_id,
            "digest": request.digest,
            "deadline": (datetime.now(UTC) + timedelta(seconds=timeout_s)).isoformat(),
        },
        source=WAITING_SOURCE,
        labels={"playbook": request.playbook, "remediation": request.remediation_id},
    )


def record_late(
    guard: ApprovalGuard, request: ApprovalRequest, given: Answer, reason: str, flow_run_id: str
) -> Verdict:
    """``approval.late``: a person answered after the deadline; the answer does not count. Its
    code is checked all the same, under the guard's lock: a valid one is spent (``code_step``),
    a wrong one counts toward the lockout (``code_wrong``). The name recorded is the one the
    check went by (stripped), so the spent code is found again under it."""
    with guard.lock:
        late = guard.check(request.risk, given, ("late", "after the deadline"))
        payload: dict[str, Any] = {
            "remediation_id": request.remediation_id,
            "playbook": request.playbook,
            "flow_run_id": flow_run_id,
            "approver": late.approver[:MAX_NAME_RECORDED],
            "approve": given.approve,
            "reason": reason[:2000],
        }
        if late.step is not None:
            payload["code_step"] = late.step
        if late.wrong_code:
            payload["code_wrong"] = True
        guard.emit(
            "approval.late",
            payload,
            source=WAITING_SOURCE,
            labels={"playbook": request.playbook, "remediation": request.remediation_id},
        )
    return late


def invalid_input(exc: Exception) -> str:
    """Why a run input was not a valid answer, naming only the fields and the kinds of error:
    never a value given (pydantic's own message quotes the input, code included)."""
    if not isinstance(exc, ValidationError):
        return f"not an answer the form accepts ({type(exc).__name__})"
    known = set(RemediationApproval.model_fields)
    problems = []
    for error in exc.errors(include_url=False, include_context=False, include_input=False):
        loc = [str(part) for part in error.get("loc", ())]
        field = loc[0] if loc and loc[0] in known else "an unknown field" if loc else "the input"
        problems.append(f"{field}: {error.get('type', 'invalid')}")
    return "; ".join(dict.fromkeys(problems))


def who_may_answer(guard: ApprovalGuard, risk: str) -> str:
    """The form's line on who may answer (empty when anyone may)."""
    try:
        approvers = guard.approvers()
    except ConfigError as exc:
        return f"Every answer is refused until the configuration is fixed: {exc}"
    if not approvers:
        return ""
    names = ", ".join(who_may_approve(approvers, risk)) or "no configured approver"
    return (
        f"May approve {risk} risk: {names}. Give your approver name and your current 6-digit "
        "code, to approve or to reject."
    )


def describe(request: ApprovalRequest, timeout_s: float, note: str = "", who: str = "") -> str:
    """The form's description: markdown a person can decide on."""
    lines = [f"## Approve remediation `{request.remediation_id}`?", ""]
    if note:
        lines += [f"**{_escape(note)}**", ""]  # it may quote what an answer said
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
    if who:
        lines += ["", _escape(who)]
    return "\n".join(lines)


def _escape(text: str) -> str:
    """Plain text inside markdown: characters that would format are escaped."""
    for char in "\\`*_[]<>#|":
        text = text.replace(char, "\\" + char)
    return text


def format_duration_s(seconds: float) -> str:
    return format_duration(timedelta(seconds=seconds))


def _expired(timeout_s: float, detail: str = "") -> ApprovalDecision:
    reason = f"no answer within {format_duration_s(timeout_s)}" + (f" ({detail})" if detail else "")
    return ApprovalDecision(False, "nobody", reason, expired=True)


class _Watchdog(threading.Thread):
    """Resumes the paused run at the deadline (expired), or when the decision was recorded
    elsewhere; retries until the run is no longer paused."""

    def __init__(
        self,
        flow_run_id: Any,
        request: ApprovalRequest,
        deadline: float,
        decided: Decided | None,
        poll_s: float,
    ) -> None:
        super().__init__(name="aios-approval-watchdog", daemon=True)
        self.flow_run_id, self.request = flow_run_id, request
        self.deadline, self.decided, self.poll_s = deadline, decided, poll_s
        self.answered = threading.Event()  # the flow took an answer: stop
        self.paused = threading.Event()  # the flow is (about to be) paused: resuming makes sense
        self.fired: str | None = None  # "expired" or "elsewhere", once the watchdog resumed it
        self.elsewhere: ApprovalDecision | None = None

    def run(self) -> None:
        while not self.answered.wait(self.poll_s):
            if not self.paused.is_set():
                continue
            if time.monotonic() >= self.deadline:
                self._resume(
                    "expired",
                    {
                        "approve": False,
                        "reason": "no answer in time",
                        "approver": EXPIRED_APPROVER,
                    },
                )
                return
            found = self.decided() if self.decided is not None else None
            if found is not None:
                self.elsewhere = found
                self._resume(
                    "elsewhere",
                    {
                        "approve": found.approved,
                        "reason": found.reason,
                        "approver": ELSEWHERE_APPROVER,
                    },
                )
                return

    def _resume(self, why: str, body: dict[str, Any]) -> None:
        self.fired = why
        body = {**body, "remediation_id": self.request.remediation_id}
        give_up = time.monotonic() + GRACE_S
        while not self.answered.is_set() and time.monotonic() < give_up:
            try:
                resume_flow_run(self.flow_run_id, run_input=body)
                return
            except Exception as exc:  # not paused yet or any more, server busy: look again
                if self.answered.wait(RESUME_RETRY_S):
                    return
                logger.info("resuming for %s failed (%s); trying again", why, exc)


def wait_for_approval(
    request: ApprovalRequest,
    *,
    timeout_s: float,
    poll_s: float = 2.0,
    decided: Decided | None = None,
    other_waiting: Callable[[], bool] | None = None,
    guard: ApprovalGuard | None = None,
) -> ApprovalDecision:
    """Pause this flow run until a person answers (or the timeout denies it).

    ``decided`` reads the decision recorded about this remediation, if any (another run may
    have asked and been answered); ``other_waiting`` says whether another run is paused for
    it right now, in which case this run waits for that answer instead of asking again.
    ``guard`` checks each answer (default: this home's approvers).
    """
    context = FlowRunContext.get()
    if context is None or context.flow_run is None:
        raise RuntimeError("approvals wait inside a flow run")
    flow_run_id = context.flow_run.id
    run_logger = get_run_logger()
    deadline = time.monotonic() + timeout_s
    if other_waiting is not None and decided is not None and other_waiting():
        run_logger.info(
            "another run already asks about %s: waiting for its answer", request.remediation_id
        )
        found = _wait_in_log(deadline, decided, other_waiting, poll_s)
        if found is not None:
            return found
        if time.monotonic() >= deadline:
            return _expired(timeout_s)
    guard = guard or ApprovalGuard(HomePaths.current())
    subject = request.subject("prefect", str(flow_run_id))
    watchdog = _Watchdog(flow_run_id, request, deadline, decided, poll_s)
    watchdog.start()
    announce_waiting(request, str(flow_run_id), max(0.0, deadline - time.monotonic()))
    note = ""
    try:
        while True:
            if time.monotonic() >= deadline:
                return _expired(timeout_s)
            form = RemediationApproval.with_initial_data(
                description=describe(request, timeout_s, note, who_may_answer(guard, request.risk)),
                approve=False,
                reason="",
                code="",
                remediation_id=request.remediation_id,
            )
            watchdog.paused.set()
            try:
                answer: Any = pause_flow_run(
                    wait_for_input=form,
                    timeout=int(max(1.0, deadline - time.monotonic()) + GRACE_S),
                    poll_interval=max(1, round(poll_s)),
                    key=f"approval-{request.remediation_id}-{uuid.uuid4().hex[:8]}",
                )
            except FlowPauseTimeout:  # the watchdog could not resume it: still a clean denial
                return _expired(timeout_s, "the run could not be resumed in time")
            except (ValueError, TypeError) as exc:
                # Running again without an input the form's schema accepts: the state was set
                # by hand, or an input written around the resume API. Nobody answered.
                refused = guard.judge(
                    subject,
                    Answer("", "", False),
                    (
                        "no_answer",
                        f"the run was resumed without a valid answer ({invalid_input(exc)})"[:500],
                    ),
                )
                note = f"That answer was refused: {refused.reason}. Please answer again."
                run_logger.warning("resumed without a valid answer; asking again")
                continue
            finally:
                watchdog.paused.clear()
            approver = str(answer.approver).strip()
            if approver == EXPIRED_APPROVER and watchdog.fired == "expired":
                return _expired(timeout_s)
            if approver == ELSEWHERE_APPROVER and watchdog.elsewhere is not None:
                return watchdog.elsewhere
            given = Answer(approver, str(answer.code), bool(answer.approve))
            if time.monotonic() >= deadline:  # a person, but too late: recorded, not counted
                record_late(guard, request, given, str(answer.reason), str(flow_run_id))
                return _expired(timeout_s, f"{approver or 'someone'} answered after the deadline")
            problem = None
            if str(answer.remediation_id) != request.remediation_id:
                problem = (
                    "other_remediation",
                    f"it was about {_remediation_named(str(answer.remediation_id))}, not "
                    f"{request.remediation_id}",
                )
            elif approver in (EXPIRED_APPROVER, ELSEWHERE_APPROVER):
                problem = ("reserved_name", f"{approver!r} is AIOS's own name, not a person's")
            checked = guard.judge(subject, given, problem)
            if not checked.allowed:
                note = f"That answer was refused: {checked.reason}. Please answer again."
                run_logger.warning("approval answer refused (%s); asking again", checked.refusal)
                continue
            verdict = "approved" if answer.approve else "rejected"
            reason = str(answer.reason).strip() or f"{verdict} in the Prefect UI"
            return ApprovalDecision(
                bool(answer.approve),
                checked.approver,
                reason,
                verified=checked.verified,
                code_step=checked.step,
            )
    finally:
        watchdog.answered.set()


def _remediation_named(value: str) -> str:
    """The remediation an answer names, quoted only when it is a remediation id: a code typed
    into the wrong field must not be repeated in the log or the next form."""
    try:
        return f"remediation {uuid.UUID(value)}"
    except ValueError:
        return "no remediation id" if not value.strip() else "something not a remediation id"


def _wait_in_log(
    deadline: float, decided: Decided, other_waiting: Callable[[], bool], poll_s: float
) -> ApprovalDecision | None:
    """Wait for the decision another run asked for; None when that run stopped waiting."""
    checked = time.monotonic()
    while time.monotonic() < deadline:
        found = decided()
        if found is not None:
            return found
        if time.monotonic() - checked >= 10 * poll_s:
            checked = time.monotonic()
            if not other_waiting():
                return None  # it went away (cancelled, crashed): ask here instead
        time.sleep(poll_s)
    return None
