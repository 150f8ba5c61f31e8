"""Who may answer an approval: the configured approvers, the highest risk each may approve, and
the one-time codes that prove an answer is theirs.

A typed name is not an identity. With approvers in ``[approvals.approvers]``, an answer names
one of them and carries the current 6-digit code of their authenticator app (TOTP, RFC 6238:
30 s steps, one step either side accepted). A code is good once: the time step it was made for
is recorded with the answer, and a later answer by the same approver with a code of that step
or an earlier one is refused, as the log says, so this holds across processes and restarts.
The stored run input of an answer is then worth nothing to whoever reads it afterwards. With
no approver configured anyone may answer, and the name given is recorded, not checked.

``check_answer`` is the rule, a plain function. ``ApprovalGuard`` applies it for one home: it
reads the configuration afresh (and refuses approvers whose secrets others could read), finds
the codes already spent in the log, and records what became of each answer
(``approval.verified`` or ``approval.refused``) under one inter-process lock, so that two
answers can never spend the same code.
"""

from __future__ import annotations

import hmac
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyotp

from aios.actions.base import Risk
from aios.config import ApproverSettings, load_config, require_private
from aios.errors import ConfigError, StoreError
from aios.home import HomePaths
from aios.locking import FileLock, file_lock

DIGITS = 6
STEP_S = 30
SOURCE = "aios.approvals"
ISSUER = "AIOS"
# Wrong codes for one approver within the window after which their answers are refused
# until it has passed: six digits must not be guessable by answering again and again.
MAX_WRONG_CODES = 5
WRONG_CODE_WINDOW = timedelta(minutes=5)
# How far back spent codes are looked for: far more than the codes' own life, so a clock
# set back a little does not make a spent code good again.
SPENT_LOOKBACK = timedelta(days=1)
# The events that spend a code (each carries ``code_step`` when a valid code came with it).
SPENDING_TYPES = (
    "approval.verified",
    "approval.refused",
    "approval.late",
    "approval.granted",
    "approval.denied",
)
MAX_NAME_RECORDED = 200


@dataclass(frozen=True)
class Answer:
    """What someone answered: the name given, the code given, and yes or no."""

    approver: str
    code: str
    approve: bool


@dataclass(frozen=True)
class Subject:
    """The remediation an answer is about."""

    remediation_id: str
    playbook: str
    risk: str
    trigger_id: str | None = None
    via: str = "prefect"  # prefect (the Resume form or its API) or terminal
    flow_run_id: str = ""


@dataclass(frozen=True)
class Verdict:
    """Whether an answer counts. ``refusal`` is a stable word for why not (``reason`` says it
    for people); ``step`` is the time step of a valid code, spent whatever the verdict;
    ``wrong_code`` says a wrong code came with it, counted toward the lockout whatever refusal
    is shown."""

    allowed: bool
    approver: str
    reason: str = ""
    refusal: str = ""
    verified: bool = False
    step: int | None = None
    wrong_code: bool = False


def risk_rank(risk: str) -> int:
    """``Risk(risk).rank``; anything unknown counts as high."""
    try:
        return Risk(risk).rank
    except ValueError:
        return Risk.HIGH.rank


def may_approve(settings: ApproverSettings, risk: str) -> bool:
    return risk_rank(risk) <= risk_rank(settings.max_risk)


def who_may_approve(approvers: Mapping[str, ApproverSettings], risk: str) -> list[str]:
    """The names of the approvers whose max_risk covers ``risk``, sorted."""
    return sorted(name for name, entry in approvers.items() if may_approve(entry, risk))


def new_secret() -> str:
    """A fresh base32 TOTP secret (160 bits)."""
    return pyotp.random_base32()


def provisioning_uri(name: str, secret: str) -> str:
    """The ``otpauth://`` URI an authenticator app takes (as text or a QR code)."""
    return pyotp.TOTP(secret, digits=DIGITS, interval=STEP_S).provisioning_uri(
        name=f"{name}@{socket.gethostname()}", issuer_name=ISSUER
    )


def code_at(secret: str, at: datetime, offset: int = 0) -> str:
    """The code of ``secret`` for the time step of ``at`` (plus ``offset`` steps)."""
    totp = pyotp.TOTP(secret, digits=DIGITS, interval=STEP_S)
    return totp.generate_otp(totp.timecode(at) + offset)


def step_of(at: datetime) -> int:
    """The TOTP time step ``at`` falls in."""
    return int(at.timestamp()) // STEP_S


def matching_step(secret: str, code: str, at: datetime) -> int | None:
    """The time step (of the current one and one either side) whose code ``code`` is, else
    None. Every candidate is compared, in constant time, so timing tells nothing."""
    totp = pyotp.TOTP(secret, digits=DIGITS, interval=STEP_S)
    now = totp.timecode(at)
    found = None
    for step in (now - 1, now, now + 1):
        if hmac.compare_digest(totp.generate_otp(step), code):
            found = step
    return found


def check_answer(
    approvers: Mapping[str, ApproverSettings],
    *,
    risk: str,
    approver: str,
    code: str,
    at: datetime,
    last_spent: Mapping[str, int] | None = None,
    wrong_codes: Mapping[str, int] | None = None,
) -> Verdict:
    """Whether an answer by ``approver`` with ``code`` at ``at`` may decide a remediation of
    ``risk``. ``last_spent`` is each approver's latest spent time step, ``wrong_codes`` how
    many wrong codes each gave lately (both from the log).

    With no approvers configured, any non-empty name is allowed (not verified).
    """
    name = approver.strip()
    if not name:
        return Verdict(False, name, "an approver's name is required", "no_name")
    if not approvers:
        return Verdict(True, name)
    entry = approvers.get(name)
    if entry is None:
        return Verdict(
            False,
            name,
            f"{name!r} is not an approver (aios approvals approvers)",
            "unknown_approver",
        )
    if (wrong_codes or {}).get(name, 0) >= MAX_WRONG_CODES:
        minutes = int(WRONG_CODE_WINDOW.total_seconds() // 60)
        return Verdict(
            False,
            name,
            f"{MAX_WRONG_CODES} wrong codes for {name} within {minutes} min: refused until "
            "that many minutes pass without one",
            "too_many_wrong_codes",
        )
    digits = "".join(code.split())
    if not digits:
        return Verdict(False, name, f"{name}'s {DIGITS}-digit code is required", "code_missing")
    step = None
    if len(digits) == DIGITS and digits.isascii() and digits.isdigit():
        step = matching_step(entry.totp_secret.get_secret_value(), digits, at)
    if step is None:
        return Verdict(
            False, name, f"wrong or expired code for {name}", "code_wrong", wrong_code=True
        )
    spent = (last_spent or {}).get(name)
    if spent is not None and step <= spent:
        return Verdict(
            False,
            name,
            f"{name}'s code was used already: wait for the next one",
            "code_used",
        )
    if not may_approve(entry, risk):
        return Verdict(
            False,
            name,
            f"{name} may approve up to {entry.max_risk} risk, not {risk}",
            "risk_above_max",
            step=step,
        )
    return Verdict(True, name, verified=True, step=step)


def check_private(path: Path) -> None:
    """Raise ConfigError when ``path`` (holding approvers' secrets) is not its owner's alone:
    readable or writable by group or others, or owned by another user. A missing file
    (approvers from the environment) passes."""
    require_private(
        path, "the approvers' secrets", "every approval is refused until it is the owner's alone"
    )


class ApprovalGuard:
    """``check_answer`` for one home, with what the log says, each answer's fate recorded."""

    def __init__(
        self,
        paths: HomePaths,
        emit: Callable[..., Any] | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        """``emit`` is ``EventBus.emit`` (default: the process's bus for ``paths``)."""
        self.paths = paths
        self._emit = emit
        self.clock = clock
        self.lock: FileLock = file_lock(paths.root / "approval-codes.lock")

    def emit(self, event_type: str, payload: dict[str, Any], **fields: Any) -> Any:
        if self._emit is None:
            from aios.runtime import default_bus

            self._emit = default_bus().emit
        return self._emit(event_type, payload, **fields)

    def approvers(self) -> dict[str, ApproverSettings]:
        """The configured approvers, read afresh (an approver removed is removed at once).

        Raises ConfigError when the configuration does not load, or when approvers are
        configured and config.toml is not its owner's alone: approvals then fail closed.
        """
        found = self._configured()
        if found:
            check_private(self.paths.config)
        return found

    def _configured(self) -> dict[str, ApproverSettings]:
        """The approvers config.toml (and AIOS_* variables) name; ConfigError when it does not
        load."""
        return dict(load_config(self.paths).approvals.approvers)

    def spent(self, names: list[str]) -> tuple[dict[str, int], dict[str, int]]:
        """Each approver's latest spent time step, and how many wrong codes each gave within
        the last ``WRONG_CODE_WINDOW`` (refused as ``code_wrong``, or marked ``code_wrong``
        where another refusal was shown: about another remediation, late, ...)."""
        if not names:
            return {}, {}
        from aios.store import open_store

        now = datetime.now(UTC)  # the events' own clock, whatever the guard's says
        kinds = ", ".join(f"'{t}'" for t in SPENDING_TYPES)  # constants, not input
        with open_store(self.paths) as con:
            rows = con.execute(
                f"""
                SELECT payload->>'approver',
                       max(TRY_CAST(payload->>'code_step' AS BIGINT)),
                       count(*) FILTER (WHERE time >= ? AND (
                                            (type = 'approval.refused'
                                             AND payload->>'refusal' = 'code_wrong')
                                            OR payload->>'code_wrong' = 'true'))
                FROM events
                WHERE type IN ({kinds}) AND source IN (?, 'aios.reactor') AND time >= ?
                  AND payload->>'approver' IN (SELECT unnest(?::VARCHAR[]))
                GROUP BY 1
                """,
                [now - WRONG_CODE_WINDOW, SOURCE, now - SPENT_LOOKBACK, names],
            ).fetchall()
        last = {str(n): int(s) for n, s, _ in rows if s is not None}
        wrong = {str(n): int(w) for n, _, w in rows if w}
        return last, wrong

    def check(self, risk: str, answer: Answer, problem: tuple[str, str] | None = None) -> Verdict:
        """The verdict on ``answer`` for a remediation of ``risk``; ``problem`` (refusal, reason)
        refuses it whatever else holds, its code still spent when valid and counted toward the
        lockout when wrong. Records nothing: hold ``self.lock`` until what it decided is
        recorded (``judge`` does)."""
        name = answer.approver.strip()
        try:
            approvers = self._configured()
        except ConfigError as exc:
            return Verdict(False, name, f"approvals are refused: {exc}", "config")
        if approvers:
            try:
                check_private(self.paths.config)
            except ConfigError as exc:
                # Refused, but the code is still checked: a valid one is spent, so the stored
                # answer cannot be replayed once the file is put right.
                problem = ("config", f"approvals are refused: {exc}")
        try:
            last, wrong = self.spent([name] if name in approvers else [])
        except StoreError as exc:  # which codes are spent is unknown: none is taken
            return Verdict(False, name, f"cannot check the code now ({exc})", "store")
        verdict = check_answer(
            approvers,
            risk=risk,
            approver=name,
            code=answer.code,
            at=self.clock(),
            last_spent=last,
            wrong_codes=wrong,
        )
        if problem is not None:
            refusal, reason = problem
            verdict = replace(verdict, allowed=False, refusal=refusal, reason=reason)
        return verdict

    def judge(
        self, subject: Subject, answer: Answer, problem: tuple[str, str] | None = None
    ) -> Verdict:
        """Check ``answer`` and record its fate: ``approval.verified`` when an approver's code
        proved it, ``approval.refused`` when it does not count (never with the code)."""
        with self.lock:
            verdict = self.check(subject.risk, answer, problem)
            self.record(subject, answer, verdict)
        return verdict

    def record(self, subject: Subject, answer: Answer, verdict: Verdict) -> None:
        if verdict.allowed and not verdict.verified:
            return  # nobody is configured: the decision itself says who, unverified
        payload: dict[str, Any] = {
            "remediation_id": subject.remediation_id,
            "playbook": subject.playbook,
            "risk": subject.risk,
            "approver": verdict.approver[:MAX_NAME_RECORDED],
            "approve": answer.approve,
            "via": subject.via,
        }
        if subject.flow_run_id:
            payload["flow_run_id"] = subject.flow_run_id
        if verdict.step is not None:
            payload["code_step"] = verdict.step
        if verdict.wrong_code:
            payload["code_wrong"] = True
        if not verdict.allowed:
            payload.update(reason=verdict.reason, refusal=verdict.refusal)
        self.emit(
            "approval.verified" if verdict.allowed else "approval.refused",
            payload,
            source=SOURCE,
            correlation_id=subject.trigger_id,
            labels={"playbook": subject.playbook, "remediation": subject.remediation_id},
        )
