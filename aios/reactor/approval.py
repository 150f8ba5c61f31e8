"""The approval port: who says yes before a risky remediation runs.

``TerminalApprover`` asks the person at the terminal (and denies when there is none: no
interactive stdin), with the approver's name and one-time code when approvers are configured
(see ``aios.approvers``); ``PolicyApprover`` grants or denies everything (tests, demos, CI),
and says so in the record. The Prefect pause/resume gate is another adapter of the same port.
"""

from __future__ import annotations

import select
import sys
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TextIO

if TYPE_CHECKING:
    from aios.approvers import ApprovalGuard, Subject


@dataclass
class ApprovalRequest:
    """What an approver is asked: what fired, what would be done, and what is known."""

    remediation_id: str
    playbook: str
    risk: str
    description: str
    trigger: dict[str, Any]
    plan: list[dict[str, Any]]
    breaker: dict[str, Any]
    history: dict[str, Any] = field(default_factory=dict)
    timeout_s: float = 3600.0
    # What the approval is for: the playbook as loaded and the plan's actions and targets.
    digest: str = ""

    def subject(self, via: str, flow_run_id: str = "") -> Subject:
        """What an answer to this request is about, for ``aios.approvers``."""
        from aios.approvers import Subject

        trigger_id = str(self.trigger.get("id") or "") or None
        return Subject(self.remediation_id, self.playbook, self.risk, trigger_id, via, flow_run_id)


@dataclass
class ApprovalDecision:
    approved: bool
    approver: str
    reason: str
    expired: bool = False
    by_person: bool = True  # False for a policy answering on its own
    # True when a configured approver's one-time code proved the answer theirs; False when
    # nobody is configured (anyone may answer, the name is taken as given) or no person did.
    verified: bool = False
    code_step: int | None = None  # the TOTP time step the code was for: spent


class Approver(Protocol):
    def request(self, request: ApprovalRequest) -> ApprovalDecision: ...


class PolicyApprover:
    """Answers every request the same way, and records that it was a policy, not a person."""

    def __init__(self, approve: bool, name: str = "policy") -> None:
        self.approve = approve
        self.name = name
        self.requests: list[ApprovalRequest] = []

    def request(self, request: ApprovalRequest) -> ApprovalDecision:
        self.requests.append(request)
        verdict = "approved" if self.approve else "denied"
        return ApprovalDecision(
            self.approve, self.name, f"{verdict} automatically by {self.name}", by_person=False
        )


class TerminalApprover:
    """Prompts on the terminal; with no interactive stdin, denies and says why.

    With approvers configured, a yes or a no counts only with an approver's name and current
    code (``aios.approvers``); a refused answer is recorded and asked again until the timeout.
    """

    def __init__(
        self,
        stdin: TextIO | None = None,
        stdout: TextIO | None = None,
        guard: ApprovalGuard | None = None,
    ) -> None:
        self.stdin = stdin or sys.stdin
        self.stdout = stdout or sys.stderr
        self.guard = guard

    def request(self, request: ApprovalRequest) -> ApprovalDecision:
        if not (hasattr(self.stdin, "isatty") and self.stdin.isatty()):
            return ApprovalDecision(False, "nobody", "no person at a terminal to approve it")
        from aios.approvers import Answer, ApprovalGuard, who_may_approve
        from aios.errors import ConfigError
        from aios.home import HomePaths

        guard = self.guard or ApprovalGuard(HomePaths.current())
        out = self.stdout
        out.write("\n" + request.description + "\n")
        try:
            approvers = guard.approvers()
        except ConfigError as exc:  # fail closed: nobody can prove who they are
            out.write(f"approvals are refused: {exc}\n")
            return ApprovalDecision(False, "nobody", f"approvals are refused: {exc}")
        if approvers:
            names = ", ".join(who_may_approve(approvers, request.risk)) or "nobody"
            out.write(f"May approve {request.risk} risk: {names} (name and code required)\n")
        deadline = time.monotonic() + request.timeout_s
        subject = request.subject("terminal")
        while True:
            answer = self._ask(f"Approve remediation {request.remediation_id}? [y/N] ", deadline)
            if answer is None:
                return self._expired()
            answer = answer.lower()
            approved = answer in ("y", "yes")
            reason = f"answered {answer or 'nothing'!r} at the terminal"
            if not approvers:
                return ApprovalDecision(approved, "terminal", reason)
            name = self._ask("Approver: ", deadline)
            if name is None:
                return self._expired()
            code = self._ask("Code: ", deadline) if name else ""  # no name: refused at once
            if code is None:
                return self._expired()
            verdict = guard.judge(subject, Answer(name, code, approved))
            if verdict.allowed:
                return ApprovalDecision(
                    approved, verdict.approver, reason, verified=True, code_step=verdict.step
                )
            out.write(f"refused: {verdict.reason}; answer again\n")

    def _ask(self, prompt: str, deadline: float) -> str | None:
        """One line from the terminal, stripped; None when the time ran out."""
        self.stdout.write(prompt)
        self.stdout.flush()
        ready, _, _ = select.select([self.stdin], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            return None
        return self.stdin.readline().strip()

    def _expired(self) -> ApprovalDecision:
        self.stdout.write("\n(no answer in time: denied)\n")
        return ApprovalDecision(False, "nobody", "no answer before the timeout", expired=True)
