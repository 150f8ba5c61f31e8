"""The approval port: who says yes before a risky remediation runs.

``TerminalApprover`` asks the person at the terminal (and denies when there is none: no
interactive stdin); ``PolicyApprover`` grants or denies everything (tests, demos, CI), and says
so in the record. The Prefect pause/resume gate is another adapter of the same port.
"""

from __future__ import annotations

import select
import sys
from dataclasses import dataclass, field
from typing import Any, Protocol, TextIO


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


@dataclass
class ApprovalDecision:
    approved: bool
    approver: str
    reason: str
    expired: bool = False
    by_person: bool = True  # False for a policy answering on its own


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
    """Prompts on the terminal; with no interactive stdin, denies and says why."""

    def __init__(self, stdin: TextIO | None = None, stdout: TextIO | None = None) -> None:
        self.stdin = stdin or sys.stdin
        self.stdout = stdout or sys.stderr

    def request(self, request: ApprovalRequest) -> ApprovalDecision:
        if not (hasattr(self.stdin, "isatty") and self.stdin.isatty()):
            return ApprovalDecision(False, "nobody", "no person at a terminal to approve it")
        out = self.stdout
        out.write("\n" + request.description + "\n")
        out.write(f"Approve remediation {request.remediation_id}? [y/N] ")
        out.flush()
        ready, _, _ = select.select([self.stdin], [], [], request.timeout_s)
        if not ready:
            out.write("\n(no answer in time: denied)\n")
            return ApprovalDecision(False, "nobody", "no answer before the timeout", expired=True)
        answer = self.stdin.readline().strip().lower()
        approved = answer in ("y", "yes")
        return ApprovalDecision(
            approved, "terminal", f"answered {answer or 'nothing'!r} at the terminal"
        )
