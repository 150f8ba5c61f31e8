"""The reactor: match an event to playbooks, decide, act, verify, roll back; every step an event.

For each playbook whose trigger matches (type, conditions, threshold), the reactor checks that
it is enabled, not throttled and that its circuit breaker is closed; plans every action (the
dry run); asks for approval when the effective risk is medium or high or ``auto_execute`` is
off; claims the remediation (``remediation.started``, under an inter-process lock so two
reactors never run the same one); runs the actions in order; polls the verify probe; and rolls
back in reverse order when an action fails or the verify fails. A remediation without verify
ends ``unverified``, never ``succeeded``.

Every call into an action's or a probe's code (plan, execute, rollback, floor, is_reversible,
a verify reading) is guarded against any exception, SystemExit included: a plugin that fails or
exits fails its remediation, never the reactor. Other BaseExceptions go through: Ctrl-C
(KeyboardInterrupt), and the signals Prefect cancels and pauses runs with; a remediation they
interrupt is rolled back by ``roll_back_interrupted``.

A remediation's id follows from the triggering event and the playbook, so running the same
trigger again (a retried flow run) finds the actions already completed in the log and does not
repeat them; an approval decision recorded in the log is not asked for again.

With ``defer_approvals`` the reactor does not ask: it records ``approval.requested`` and returns
an ``awaiting_approval`` outcome carrying the request, so that a caller (the Prefect flow) can
wait for a person outside any timeout, record the answer with ``record_decision`` and process
the trigger again.
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from collections.abc import Callable, Collection, Iterable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from aios.actions.base import (
    ActionContext,
    ActionPlan,
    ActionSpec,
    IrreversibleError,
    Risk,
    guarded_floor,
    guarded_reversible,
)
from aios.autonomy import Autonomy, AutonomyPolicy
from aios.bus import EventBus, make_event
from aios.errors import EventValidationError, InputError
from aios.event import Event, Severity
from aios.home import HomePaths
from aios.locking import FileLock, file_lock, forget_lock
from aios.log import Cursor
from aios.playbooks.matcher import PlaybookIndex
from aios.playbooks.model import Playbook
from aios.probes import ProbeContext, VerifyResult, poll, probe_definition
from aios.reactor.approval import ApprovalDecision, ApprovalRequest, Approver
from aios.reactor.seal import seal, sealed
from aios.reactor.state import REACTOR_SOURCE, REACTOR_TYPES, ReactorState, target_key

logger = logging.getLogger("aios.reactor")
_NAMESPACE = uuid.UUID("8f6c2a52-5b7e-4c3e-9a61-0d3f1f6a2b10")


def longest_window(playbook: Playbook) -> timedelta:
    """How far back what this playbook's decisions depend on reaches."""
    spans = [playbook.limits.window, playbook.limits.cooldown, playbook.limits.flap_window]
    if playbook.trigger.threshold:
        spans.append(playbook.trigger.threshold.within)
    if playbook.trigger.throttle:
        spans.append(playbook.trigger.throttle.once_within)
    return max(spans)


def remediation_id(trigger: Event, playbook: Playbook) -> str:
    """The id of the remediation ``playbook`` makes of ``trigger``: stable across reruns."""
    return remediation_id_of(trigger.id, playbook.id)


def remediation_id_of(trigger_id: str, playbook_id: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"{trigger_id}/{playbook_id}"))


def plan_digest(playbook: Playbook, plans: list[dict[str, Any]]) -> str:
    """What an approval is for: the playbook as loaded, and each planned action with the
    things it would touch (processes by pid and start time). A different playbook or other
    targets is another plan."""
    stable = [
        {
            **{k: plan.get(k) for k in ("action", "targets", "reversible", "risk")},
            # A process is its pid and when it started: a pid reused meanwhile is another plan.
            "processes": sorted(  # the order (most memory first) may change meanwhile
                (str(proc.get("pid")), str(proc.get("start_ticks")))
                for proc in (plan.get("details") or {}).get("processes") or []
                if isinstance(proc, dict)
            ),
        }
        for plan in plans
    ]
    document = {"playbook": playbook.model_dump(mode="json"), "plan": stable}
    return hashlib.sha256(orjson.dumps(document, option=orjson.OPT_SORT_KEYS)).hexdigest()[:32]


@dataclass
class ReactorSettings:
    """What the reactor needs from the configuration."""

    paths: HomePaths
    allowed_roots: tuple[Path, ...] = ()
    agent_patterns: tuple[str, ...] = ()
    protected_patterns: tuple[str, ...] = ()
    approval_timeout_s: float = 3600.0
    approve_from: str = "medium"  # risk policy: "low" asks a person for everything
    # A remediation (its actions and verify) that runs longer is stopped and rolled back.
    remediation_timeout_s: float | None = None
    autonomy: AutonomyPolicy = field(default_factory=AutonomyPolicy)


@dataclass(frozen=True)
class LessonFix:
    """A proven lesson's fix, offered for an event its playbook was not written for (the
    lesson's failure and this one are alike). It runs without a person only when the lesson
    is hardened and the playbook itself would (low risk, ``auto_execute``)."""

    lesson_id: str
    playbook: str
    state: str  # verified or hardened
    similarity: float
    symptom: str = ""
    successes: int = 0
    failures: int = 0

    @property
    def trusted(self) -> bool:
        return self.state == "hardened"

    def describe(self) -> str:
        return (
            f"Suggested by lesson {self.lesson_id} ({self.state}: {self.successes} verified, "
            f"{self.failures} failed), similarity {self.similarity:.2f} to: {self.symptom}"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "lesson_id": self.lesson_id,
            "state": self.state,
            "similarity": round(self.similarity, 4),
        }


@dataclass
class Outcome:
    """What happened to one playbook for one event."""

    playbook: str
    # succeeded failed rolled_back unverified skipped waiting dry_run awaiting_approval
    status: str
    reason: str = ""
    remediation_id: str | None = None
    risk: str | None = None
    plan: list[dict[str, Any]] = field(default_factory=list)
    request: ApprovalRequest | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "playbook": self.playbook,
            "status": self.status,
            "reason": self.reason,
            "remediation_id": self.remediation_id,
            "risk": self.risk,
            "plan": self.plan,
        }


class _Chain:
    """Emits a remediation's events, each caused by the one before."""

    def __init__(
        self, bus: EventBus, trigger: Event, labels: dict[str, str], *, record: bool = True
    ) -> None:
        self.bus = bus
        self.trigger = trigger
        self.labels = labels
        self.last = trigger.id
        self.record = record

    def emit(
        self, event_type: str, payload: dict[str, Any], severity: Severity = Severity.INFO
    ) -> Event:
        fields: dict[str, Any] = {
            "source": REACTOR_SOURCE,
            "severity": severity,
            "labels": self.labels,
            "correlation_id": self.trigger.id,
            "causation_id": self.last,
        }
        if self.record:
            event = self.bus.emit(event_type, payload, **fields)
        else:  # a preview: validated like the real thing, written nowhere
            event = make_event(event_type, payload, **fields)
        self.last = event.id
        return event


@dataclass
class _Step:
    """One playbook's remediation of one trigger, while it is being decided and run."""

    playbook: Playbook
    trigger: Event
    rid: str
    target: str
    chain: _Chain
    base: dict[str, Any]
    risk: Risk
    decided_at: datetime
    lesson: LessonFix | None = None
    autonomy: Autonomy | None = None

    def needs_approval(self, approve_from: str) -> bool:
        """The playbook's own rule, as its record moved it (earned autonomy); a lesson that is
        not hardened always asks a person."""
        if self.lesson is not None and not self.lesson.trusted:
            return True
        if self.autonomy is not None:
            return self.autonomy.needs_approval(self.playbook, approve_from)
        return self.playbook.needs_approval(approve_from)

    def skipped(self, reason: str, detail: str, **extra: Any) -> Outcome:
        self.chain.emit(
            "playbook.skipped", {**self.base, "reason": reason, "detail": detail, **extra}
        )
        return Outcome(
            self.playbook.id,
            "skipped" if reason != "dry_run" else "dry_run",
            f"{reason}: {detail}",
            self.rid,
            self.risk.value,
            extra.get("plan", []),
        )


def remediation_lock(paths: HomePaths, rid: str) -> FileLock:
    return file_lock(paths.root / "remediations" / f"{rid}.lock")


class Reactor:
    """Processes events in log order against a set of playbooks."""

    def __init__(
        self,
        index: PlaybookIndex,
        bus: EventBus,
        settings: ReactorSettings,
        approver: Approver,
        *,
        dry_run: bool = False,
        state: ReactorState | None = None,
        sleep: Callable[[float], None] = time.sleep,
        plan_actions: bool = True,
        clock: Callable[[], datetime] | None = lambda: datetime.now(UTC),
        keep: timedelta = timedelta(days=2),
        defer_approvals: bool = False,
        run_guard: Callable[[], AbstractContextManager[object]] | None = None,
        record: bool = True,
    ) -> None:
        """``run_guard`` is entered around each remediation that executes (a concurrency
        slot, say); ``record=False`` (with ``dry_run``) decides without writing any event."""
        self.index = index
        self.bus = bus
        self.settings = settings
        self.approver = approver
        self.dry_run = dry_run or not record
        self.record = record
        self.defer_approvals = defer_approvals
        self.run_guard = run_guard
        self.state = state or ReactorState()
        if self.state.seal_check is None:
            paths = settings.paths
            self.state.seal_check = lambda verdict, payload: sealed(paths, verdict, payload)
        self.sleep = sleep
        self.plan_actions = plan_actions
        self.clock = clock
        self.keep = max([keep, *(longest_window(p) for p in index.playbooks.values())])
        self._handled = 0
        self.lock = file_lock(settings.paths.root / "reactor.lock")
        # Each playbook's earned autonomy (see aios.autonomy), read when the state warms up.
        self.autonomy: dict[str, Autonomy] = {}
        self._seen: set[str] = set()
        self._cursor: Cursor | None = None

    # --------------------------------------------------------------- state
    def warm_up(self, events: Iterable[Event]) -> None:
        """Rebuild state from history (the window before the first event to process)."""
        for event in events:
            self._observe(event)
            if event.source == REACTOR_SOURCE:
                continue
            for playbook in self.index.match(event):
                if playbook.trigger.threshold is not None:
                    self.state.count_match(playbook, event, self._now(event))

    def _observe(self, event: Event) -> None:
        if event.source == REACTOR_SOURCE and event.id not in self._seen:
            self._seen.add(event.id)
            self.state.observe(event)

    def _refresh(self) -> None:
        """Take in reactor events other processes appended since we last looked.

        The first time, the reactor's steps of the recent past come from the store, so a
        reactor made just now still knows what others started before it.
        """
        if self._cursor is None:
            self._cursor = self.bus.log.end()
            self._bootstrap()
        for event, after in self.bus.log.read(cursor=self._cursor):
            self._observe(event)
            self._cursor = after

    def _bootstrap(self) -> None:
        from aios.store import open_store
        from aios.store.consumers import events_between, last_seq

        since = (self.clock() if self.clock else datetime.now(UTC)) - self.keep
        with open_store(self.settings.paths) as con:
            history = list(events_between(con, since, last_seq(con), REACTOR_TYPES))
        for _, event in history:
            self._observe(event)

    def start_following(self, cursor: Cursor) -> None:
        """Observe the log's reactor events from ``cursor`` on before each decision."""
        self._cursor = cursor

    # ------------------------------------------------------------ processing
    def process(
        self,
        event: Event,
        *,
        only: Collection[str] | None = None,
        lesson: LessonFix | None = None,
    ) -> list[Outcome]:
        """Handle one event; returns what happened for each matching playbook (of ``only``,
        when given). With ``lesson``, its fix's playbook is handled too, matched or not.

        Nothing an event holds, and nothing a playbook does, stops the reactor: a failure
        becomes a ``failed`` outcome and the next event is handled.
        """
        self._observe(event)
        if event.source == REACTOR_SOURCE:
            return []  # the reactor never reacts to its own steps
        self._handled += 1
        if self._handled % 1000 == 0:
            self.state.prune(self._now(event), self.keep)
        matched = self.index.match(event)
        chosen: list[tuple[Playbook, bool]] = [(p, True) for p in matched]
        if lesson is not None:
            fix = self.index.playbooks.get(lesson.playbook)
            if fix is None:
                return [Outcome(lesson.playbook, "skipped", "the lesson's playbook is not loaded")]
            if fix not in matched:
                chosen.append((fix, False))
        outcomes = []
        for playbook, by_trigger in chosen:
            if only is not None and playbook.id not in only:
                continue
            applied = lesson if lesson is not None and playbook.id == lesson.playbook else None
            try:
                outcomes.append(self._handle(playbook, event, applied, by_trigger))
            # The remediation fails; the reactor goes on (a plugin's sys.exit() included).
            except (Exception, SystemExit) as exc:
                logger.exception("playbook %s on %s", playbook.id, event.id)
                outcomes.append(Outcome(playbook.id, "failed", f"{type(exc).__name__}: {exc}"))
        return outcomes

    def _now(self, trigger: Event) -> datetime:
        """When a decision about ``trigger`` is made: the wall clock (a trigger dated later is
        taken as now); without a clock (a simulation of history), the trigger's own time."""
        if self.clock is None:
            return trigger.time
        return min(trigger.time, self.clock())

    def _handle(
        self,
        playbook: Playbook,
        trigger: Event,
        lesson: LessonFix | None = None,
        by_trigger: bool = True,
    ) -> Outcome:
        decided_at = self._now(trigger)
        # A lesson's fix answers this one failure: the playbook's own threshold is not asked.
        reached, count, group = (
            self.state.count_match(playbook, trigger, decided_at) if by_trigger else (True, 1, "")
        )
        if not reached:
            threshold = playbook.trigger.threshold
            assert threshold is not None
            return Outcome(
                playbook.id,
                "waiting",
                f"{count} of {threshold.count} events within {threshold.within} ({group})",
            )
        step = self._step(playbook, trigger, decided_at, lesson)
        rid = step.rid
        if not playbook.enabled:
            return step.skipped("disabled", "the playbook is disabled")
        if self.dry_run:  # nothing will run: no claim to make, no lock file to leave
            return self._decide_and_run(step)
        # One runner per remediation, across threads and processes, for its whole run; a
        # crashed runner releases it (the lock is an flock), so a retry can resume.
        run_lock = remediation_lock(self.settings.paths, rid)
        if not run_lock.try_acquire():
            return Outcome(playbook.id, "skipped", "running in another process or thread", rid)
        try:
            return self._decide_and_run(step)
        finally:
            run_lock.release()
            record = self.state.record(rid)
            if record is not None and record.finished:  # nobody will take it again
                run_lock.path.unlink(missing_ok=True)
                forget_lock(run_lock.path)

    def _step(
        self,
        playbook: Playbook,
        trigger: Event,
        decided_at: datetime,
        lesson: LessonFix | None = None,
    ) -> _Step:
        rid = remediation_id(trigger, playbook)
        target = target_key(trigger, playbook)
        labels = {**trigger.labels, "playbook": playbook.id, "remediation": rid}
        chain = _Chain(self.bus, trigger, labels, record=self.record)
        base = {
            "remediation_id": rid,
            "playbook": playbook.id,
            "target": target,
            "decided_at": decided_at.isoformat(),
        }
        if lesson is not None:
            base["lesson_id"] = lesson.lesson_id
        return _Step(
            playbook,
            trigger,
            rid,
            target,
            chain,
            base,
            playbook.effective_risk(),
            decided_at,
            lesson,
            self.autonomy.get(playbook.id),
        )

    def _decide_and_run(self, step: _Step) -> Outcome:
        playbook, trigger, rid = step.playbook, step.trigger, step.rid
        with self.lock:
            self._refresh()
            record = self.state.record(rid)
            if record is not None and record.finished:
                return Outcome(playbook.id, "skipped", f"already done ({record.outcome})", rid)
            resuming = record is not None
            if not resuming:
                blocked = self._blocked(step)
                if blocked is not None:
                    return blocked
            breaker = self.state.breaker(playbook, step.target, step.decided_at)
        contexts = [self._context(trigger, rid, i) for i in range(len(playbook.actions))]
        try:
            plans = (
                [a.plan(ctx) for a, ctx in zip(playbook.actions, contexts, strict=True)]
                if self.plan_actions
                else [unplanned(a) for a in playbook.actions]
            )
        except (Exception, SystemExit) as exc:  # a plan that cannot be made runs nothing
            why = f"could not plan the actions: {_said(exc)}"
            return step.skipped("plan_failed", why[:2000])
        plan_dicts = [p.to_dict() for p in plans]
        if rid not in self.state.matched or self.dry_run:  # announced once per remediation
            explanation = self.index.explain(playbook.id, trigger)
            matched: dict[str, Any] = {
                **step.base,
                "risk": playbook.risk.value,
                "effective_risk": step.risk.value,
                "needs_approval": step.needs_approval(self.settings.approve_from),
                "plan": plan_dicts,
                "explanation": explanation.to_dict(),
                "trigger_type": trigger.type,
                "resuming": resuming,
            }
            risk_problems = playbook.risk_problems()
            if risk_problems:  # why the risk is high whatever the actions declare
                matched["risk_problems"] = risk_problems
            if step.lesson is not None:
                matched["lesson"] = step.lesson.to_dict()
            step.chain.emit("playbook.matched", matched)
            self._refresh()
        if self.dry_run:
            return step.skipped("dry_run", "dry run: nothing was executed", plan=plan_dicts)
        # A decision in the log stands: a retried run neither asks again nor runs a denial. An
        # approval is for the plan that was shown: another plan (the playbook was edited, other
        # targets) is asked about again.
        digest = plan_digest(playbook, plan_dicts)
        granted = self.state.approved.get(rid)
        # Once a person was asked about this remediation it waits for a person, even if its
        # playbook came to say low risk meanwhile: a playbook cannot lower itself out of the
        # question it raised.
        asked = rid in self.state.requested or granted is not None
        needs_person = step.needs_approval(self.settings.approve_from) or asked
        if needs_person and granted != digest:
            denied = self.state.denied.get(rid)
            if denied is not None:
                return Outcome(
                    playbook.id, "skipped", f"denied: {denied[0]}", rid, step.risk.value, plan_dicts
                )
            if granted is not None:
                step.chain.emit(
                    "approval.stale",
                    {
                        "remediation_id": rid,
                        "playbook": playbook.id,
                        "approved_digest": granted,
                        "digest": digest,
                        "detail": "the plan changed since it was approved: asking again",
                    },
                    Severity.MEDIUM,
                )
            request = self._request(step, plans, breaker.to_dict(), digest)
            if self.defer_approvals:
                return Outcome(
                    playbook.id,
                    "awaiting_approval",
                    "waiting for a person to approve or reject it",
                    rid,
                    step.risk.value,
                    plan_dicts,
                    request,
                )
            decision = self._record_decision(step, self.approver.request(request), digest)
            if decision is not None:
                return decision
        with self.run_guard() if self.run_guard is not None else nullcontext():
            with self.lock:
                self._refresh()
                record = self.state.record(rid)
                if record is not None and record.finished:
                    return Outcome(playbook.id, "skipped", f"already done ({record.outcome})", rid)
                if record is None:
                    blocked = self._blocked(step)  # throttle and breaker again, after the wait
                    if blocked is not None:
                        return blocked
                    step.chain.emit(
                        "remediation.started",
                        {
                            **step.base,
                            "trigger_id": trigger.id,
                            "throttle_key": self.state.throttled(
                                playbook, trigger, step.decided_at
                            )[1]
                            if playbook.trigger.throttle
                            else None,
                            "risk": step.risk.value,
                            "actions": [a.type for a in playbook.actions],
                        },
                    )
                    self._refresh()
            return self._run(
                playbook,
                trigger,
                rid,
                step.target,
                contexts,
                plans,
                step.chain,
                step.base,
                step.risk,
            )

    def roll_back_interrupted(self, trigger: Event, rid: str, reason: str) -> Outcome:
        """Undo what a remediation that never finished (its runner died) had done, and end it.

        Skipped when it finished meanwhile or its runner is still alive (holds its lock).
        When its playbook is no longer loaded, nothing can be undone: it is escalated.
        """
        self._refresh()
        record = self.state.record(rid)
        if record is None:
            return Outcome("?", "skipped", f"no remediation {rid} in the log", rid)
        run_lock = remediation_lock(self.settings.paths, rid)
        if not run_lock.try_acquire():
            return Outcome(record.playbook, "skipped", "still running", rid)
        try:
            with self.lock:
                self._refresh()
                if record.finished:
                    return Outcome(
                        record.playbook, "skipped", f"already done ({record.outcome})", rid
                    )
            playbook = self.index.playbooks.get(record.playbook)
            labels = {**trigger.labels, "playbook": record.playbook, "remediation": rid}
            chain = _Chain(self.bus, trigger, labels)
            base = {
                "remediation_id": rid,
                "playbook": record.playbook,
                "target": record.target,
                "decided_at": (self.clock() if self.clock else trigger.time).isoformat(),
            }
            if playbook is None:
                chain.emit(
                    "remediation.escalated",
                    {
                        **base,
                        "not_restored": [f"action {i}" for i in sorted(record.completed_actions)],
                        "detail": f"interrupted ({reason}) and its playbook is no longer "
                        "loaded: a person must undo its actions",
                    },
                    Severity.HIGH,
                )
                chain.emit(
                    "remediation.finished",
                    {**base, "outcome": "failed", "reason": f"interrupted: {reason}"},
                    Severity.HIGH,
                )
                self._refresh()
                return Outcome(record.playbook, "failed", "interrupted; escalated", rid)
            count = len(playbook.actions)
            contexts = [self._context(trigger, rid, i) for i in range(count)]
            executed: list[tuple[int, ActionSpec, dict[str, Any]]] = [
                (i, playbook.actions[i], undo)
                for i, undo in sorted(record.completed_actions.items())
                if 0 <= i < count
            ]
            restored = self._rollback(executed, contexts, chain, base)
            chain.emit(
                "remediation.finished",
                {
                    **base,
                    "outcome": "rolled_back",
                    "reason": f"interrupted: {reason}",
                    "rolled_back": restored,
                },
                Severity.MEDIUM,
            )
            self._refresh()
            return Outcome(record.playbook, "rolled_back", f"interrupted: {reason}", rid)
        finally:
            run_lock.release()
            if record.finished:  # nobody will take it again
                run_lock.path.unlink(missing_ok=True)
                forget_lock(run_lock.path)

    def revert(
        self,
        playbook: Playbook,
        trigger: Event,
        rid: str,
        undos: list[tuple[int, dict[str, Any]]],
        reason: str,
    ) -> list[str]:
        """Undo a finished remediation's actions (``undos``: index and undo record, as its
        ``action.completed`` events hold them), in reverse; ``remediation.reverted`` says why
        and what was restored. Irreversible ones are escalated, as in any rollback."""
        labels = {**trigger.labels, "playbook": playbook.id, "remediation": rid}
        chain = _Chain(self.bus, trigger, labels, record=self.record)
        base = {
            "remediation_id": rid,
            "playbook": playbook.id,
            "target": target_key(trigger, playbook),
            "decided_at": (self.clock() if self.clock else trigger.time).isoformat(),
        }
        count = len(playbook.actions)
        contexts = [self._context(trigger, rid, i) for i in range(count)]
        executed: list[tuple[int, ActionSpec, dict[str, Any]]] = [
            (i, playbook.actions[i], undo)
            for i, undo in sorted(undos, key=lambda u: u[0])
            if 0 <= i < count
        ]
        restored = self._rollback(executed, contexts, chain, base)
        chain.emit("remediation.reverted", {**base, "reason": reason, "rolled_back": restored})
        self._refresh()
        return restored

    def _blocked(self, step: _Step) -> Outcome | None:
        """A skip (recorded) if the throttle, the breaker or flapping stops this run now."""
        playbook, trigger = step.playbook, step.trigger
        throttled, group, last = self.state.throttled(playbook, trigger, step.decided_at)
        if throttled and last is not None:
            return step.skipped("throttled", f"fired for {group} at {last:%Y-%m-%d %H:%M:%S}Z")
        breaker = self.state.breaker(playbook, step.target, step.decided_at)
        if breaker.open:
            return step.skipped("breaker_open", breaker.reason, breaker=breaker.to_dict())
        flapping = self._flapping(playbook, step.target, step.decided_at, step.chain)
        if flapping:
            return step.skipped("breaker_open", flapping, breaker={"flapping": True})
        return None

    # -------------------------------------------------------------- pieces
    def _context(self, trigger: Event, rid: str, index: int) -> ActionContext:
        def emit(event_type: str, payload: dict[str, Any], **fields: Any) -> Event:
            return self.bus.emit(
                event_type,
                payload,
                source="aios.playbook",
                correlation_id=trigger.id,
                causation_id=trigger.id,
                **fields,
            )

        return action_context(self.settings, trigger, rid, index, emit)

    def _flapping(self, playbook: Playbook, target: str, at: datetime, chain: _Chain) -> str:
        limits = playbook.limits
        for action in playbook.actions:
            runs = self.state.flapping(action.type, target, limits.flap_window, at)
            if runs >= limits.flap_count:
                key = (action.type, target)
                alerted = self.state.flapping_alerted.get(key)
                if alerted is None or at - alerted > limits.flap_window:
                    chain.emit(
                        "breaker.flapping",
                        {
                            "playbook": playbook.id,
                            "action": action.type,
                            "target": target,
                            "runs": runs,
                            "window": str(limits.flap_window),
                            "decided_at": at.isoformat(),
                        },
                        Severity.HIGH,
                    )
                    self._refresh()
                return (
                    f"flapping: {action.type} ran {runs} times on {target} within "
                    f"{limits.flap_window}"
                )
        return ""

    def _request(
        self, step: _Step, plans: list[ActionPlan], breaker: dict[str, Any], digest: str
    ) -> ApprovalRequest:
        """What to ask; ``approval.requested`` is recorded once per remediation and plan."""
        playbook, trigger, risk = step.playbook, step.trigger, step.risk
        history = self._history(playbook)
        demoted = step.autonomy is not None and step.autonomy.demoted
        why = (
            f"demoted: {step.autonomy.failures_in_a_row if step.autonomy else 0} failed "
            "verifications in a row"
            if demoted
            else f"effective risk {risk.value}"
            if risk is not Risk.LOW
            else "auto_execute is off"
            if not playbook.auto_execute
            else f"lesson {step.lesson.lesson_id} is {step.lesson.state}, not hardened"
            if step.lesson is not None and not step.lesson.trusted
            else "the risk policy asks a person for every remediation"
        )
        description = describe_request(playbook, trigger, plans, breaker, history, why)
        if step.autonomy is not None:
            description += "\n" + step.autonomy.describe(
                playbook, self.settings.approve_from, self.settings.autonomy
            )
        if step.lesson is not None:
            description = f"{step.lesson.describe()}\n{description}"
        request = ApprovalRequest(
            step.rid,
            playbook.id,
            risk.value,
            description,
            trigger.model_dump(mode="json"),
            [p.to_dict() for p in plans],
            breaker,
            history,
            self.settings.approval_timeout_s,
            digest,
        )
        with self.lock:
            self._refresh()
            if self.state.requested_digest.get(step.rid) != digest:
                step.chain.emit(
                    "approval.requested",
                    {
                        "remediation_id": step.rid,
                        "playbook": playbook.id,
                        "risk": risk.value,
                        "why": why,
                        "description": description,
                        "timeout_s": self.settings.approval_timeout_s,
                        "digest": digest,
                    },
                )
                self._refresh()
        return request

    def record_decision(
        self, trigger: Event, request: ApprovalRequest, decision: ApprovalDecision
    ) -> Outcome | None:
        """Record a person's answer to a deferred request; the skip outcome when denied.

        The first answer recorded for a remediation stands: a later one is ignored (and None
        or the earlier denial is returned accordingly).
        """
        playbook = self.index.playbooks.get(request.playbook)
        if playbook is None:
            return self._decision_without_playbook(trigger, request, decision)
        step = self._step(playbook, trigger, self._now(trigger))
        if step.rid != request.remediation_id:
            raise InputError(
                f"remediation {request.remediation_id} is not {playbook.id} on {trigger.id}"
            )
        with self.lock:
            self._refresh()
            if self.state.approved.get(step.rid) == request.digest:
                return None  # this plan was approved already: the first answer stands
            earlier = self.state.denied.get(step.rid)
            if earlier is not None:
                return Outcome(
                    playbook.id, "skipped", f"denied: {earlier[0]}", step.rid, step.risk.value
                )
            outcome = self._record_decision(step, decision, request.digest)
            self._refresh()
            return outcome

    def _decision_without_playbook(
        self, trigger: Event, request: ApprovalRequest, decision: ApprovalDecision
    ) -> Outcome:
        """The person's answer is recorded even when the playbook can no longer be loaded (a
        file broken or removed meanwhile); nothing runs."""
        rid = request.remediation_id
        if rid != remediation_id_of(trigger.id, request.playbook):
            raise InputError(f"remediation {rid} is not {request.playbook} on {trigger.id}")
        verdict = "granted" if decision.approved else "expired" if decision.expired else "denied"
        labels = {**trigger.labels, "playbook": request.playbook, "remediation": rid}
        chain = _Chain(self.bus, trigger, labels, record=self.record)
        chain.emit(
            f"approval.{verdict}",
            {
                "remediation_id": rid,
                "playbook": request.playbook,
                "approver": decision.approver,
                "reason": decision.reason,
                **_identity(decision),
                "digest": request.digest,
                "seal": seal(self.settings.paths, rid, verdict, decision.approver, request.digest),
            },
        )
        detail = f"the playbook {request.playbook!r} is no longer loaded: nothing was run"
        chain.emit(
            "playbook.skipped",
            {
                "remediation_id": rid,
                "playbook": request.playbook,
                "reason": "unloaded",
                "detail": detail,
            },
            Severity.MEDIUM,
        )
        self._refresh()
        return Outcome(request.playbook, "skipped", detail, rid, request.risk)

    def _record_decision(
        self, step: _Step, decision: ApprovalDecision, digest: str
    ) -> Outcome | None:
        verdict = "granted" if decision.approved else "expired" if decision.expired else "denied"
        payload = {
            "remediation_id": step.rid,
            "playbook": step.playbook.id,
            "approver": decision.approver,
            "reason": decision.reason,
            "by_person": decision.by_person,
            **_identity(decision),
            "digest": digest,
            "seal": seal(self.settings.paths, step.rid, verdict, decision.approver, digest),
        }
        step.chain.emit(f"approval.{verdict}", payload)
        if decision.approved:
            return None
        step.chain.emit(
            "playbook.skipped",
            {
                "remediation_id": step.rid,
                "playbook": step.playbook.id,
                "reason": "denied",
                "detail": decision.reason,
            },
        )
        return Outcome(
            step.playbook.id, "skipped", f"denied: {decision.reason}", step.rid, step.risk.value
        )

    def _history(self, playbook: Playbook) -> dict[str, Any]:
        outcomes: dict[str, int] = {}
        for (pid, _target), records in self.state.runs.items():
            if pid != playbook.id:
                continue
            for record in records:
                key = record.outcome or ("running" if not record.finished else "unknown")
                outcomes[key] = outcomes.get(key, 0) + 1
        return {"past_outcomes": outcomes}

    def _run(
        self,
        playbook: Playbook,
        trigger: Event,
        rid: str,
        target: str,
        contexts: list[ActionContext],
        plans: list[ActionPlan],
        chain: _Chain,
        base: dict[str, Any],
        risk: Risk,
    ) -> Outcome:
        record = self.state.record(rid)
        done: dict[int, dict[str, Any]] = dict(record.completed_actions) if record else {}
        executed: list[tuple[int, ActionSpec, dict[str, Any]]] = [
            (i, playbook.actions[i], undo) for i, undo in sorted(done.items())
        ]
        limit = self.settings.remediation_timeout_s
        deadline = time.monotonic() + limit if limit else None
        for index, (action, ctx) in enumerate(zip(playbook.actions, contexts, strict=True)):
            if index in done:
                continue  # completed before this run (a retried remediation)
            if deadline is not None and time.monotonic() >= deadline:
                why = f"timed out after {limit:g}s, before {action.type} (action {index})"
                return self._give_up(playbook, rid, risk, executed, contexts, chain, base, why)
            step = {**base, "index": index, "action": action.type}
            # Asked before it runs: afterwards, a failure here would leave it unrecorded.
            reversible, unknown = guarded_reversible(action)
            chain.emit("action.started", {**step, "plan": plans[index].summary})
            try:
                undo = action.execute(ctx)
            # Whatever went wrong (a plugin's sys.exit() included), undo what ran before it.
            except (Exception, SystemExit) as exc:
                chain.emit("action.failed", {**step, "error": _said(exc)[:2000]}, Severity.MEDIUM)
                restored = self._rollback(executed, contexts, chain, base)
                outcome = "failed"
                chain.emit(
                    "remediation.finished",
                    {
                        **base,
                        "outcome": outcome,
                        "reason": f"{action.type} failed: {_said(exc)}",
                        "rolled_back": restored,
                    },
                    Severity.MEDIUM,
                )
                self._refresh()
                return Outcome(
                    playbook.id, outcome, f"{action.type} failed: {_said(exc)}", rid, risk.value
                )
            executed.append((index, action, undo))
            completed = {**step, "reversible": reversible, "target": target}
            if unknown is not None:
                completed["reversible_error"] = unknown
            try:
                chain.emit("action.completed", {**completed, "undo": undo})
            except EventValidationError as exc:  # keep going; the undo lives in memory only
                chain.emit("action.completed", {**completed, "undo": {}, "undo_error": str(exc)})
        if playbook.verify is None:
            chain.emit(
                "remediation.finished",
                {**base, "outcome": "unverified", "reason": "the playbook has no verify"},
            )
            self._refresh()
            return Outcome(
                playbook.id, "unverified", "no verify: not counted as a success", rid, risk.value
            )
        remaining = None if deadline is None else deadline - time.monotonic()
        try:
            result = self._verify(playbook, trigger, remaining, limit)
        except (Exception, SystemExit) as exc:  # a probe that breaks is a verify that failed
            result = VerifyResult(
                False,
                playbook.verify.probe,
                playbook.verify.expect,
                reason=f"the probe failed: {type(exc).__name__}: {exc}",
            )
        if result.passed:
            chain.emit("verify.passed", {**base, **result.to_dict()})
            chain.emit(
                "remediation.finished", {**base, "outcome": "succeeded", "reason": result.reason}
            )
            self._refresh()
            return Outcome(playbook.id, "succeeded", result.reason, rid, risk.value)
        chain.emit("verify.failed", {**base, **result.to_dict()}, Severity.MEDIUM)
        restored = self._rollback(executed, contexts, chain, base)
        chain.emit(
            "remediation.finished",
            {**base, "outcome": "rolled_back", "reason": result.reason, "rolled_back": restored},
            Severity.MEDIUM,
        )
        self._refresh()
        return Outcome(playbook.id, "rolled_back", result.reason, rid, risk.value)

    def _give_up(
        self,
        playbook: Playbook,
        rid: str,
        risk: Risk,
        executed: list[tuple[int, ActionSpec, dict[str, Any]]],
        contexts: list[ActionContext],
        chain: _Chain,
        base: dict[str, Any],
        why: str,
    ) -> Outcome:
        """Stop a remediation that ran out of time: undo what it did, and say so."""
        restored = self._rollback(executed, contexts, chain, base)
        chain.emit(
            "remediation.finished",
            {**base, "outcome": "failed", "reason": why, "rolled_back": restored},
            Severity.MEDIUM,
        )
        self._refresh()
        return Outcome(playbook.id, "failed", why, rid, risk.value)

    def _verify(
        self,
        playbook: Playbook,
        trigger: Event,
        remaining: float | None = None,
        limit: float | None = None,
    ) -> VerifyResult:
        spec = playbook.verify
        assert spec is not None
        within, after = spec.within.total_seconds(), spec.after.total_seconds()
        if remaining is not None:
            # What is left of the remediation's time bounds the verify; a sustained verify
            # that cannot run its whole window does not pass.
            if remaining <= after or (spec.sustained() and remaining < within):
                return VerifyResult(
                    False,
                    spec.probe,
                    spec.expect,
                    reason=f"timed out after {limit:g}s: no time left to verify",
                )
            within = min(within, remaining)
        since = self.bus.log.end()

        def events_since() -> list[Event]:
            return [
                e
                for e in self.bus.log.events(cursor=since)
                if e.source not in (REACTOR_SOURCE, "aios.playbook")
            ]

        definition = probe_definition(spec.probe)
        globs = definition.globs if definition is not None else ()
        params = {k: _render_param(v, trigger, glob=k in globs) for k, v in spec.params.items()}
        result = poll(
            spec.probe,
            params,
            spec.expectation(),
            after=after,
            within=within,
            interval=spec.interval.total_seconds(),
            ctx=ProbeContext(self.settings.allowed_roots, events_since),
            sustained=spec.sustained(),
            sleep=self.sleep,
        )
        if not result.passed and within < spec.within.total_seconds():
            result.reason = f"timed out after {limit:g}s: {result.reason}"
        return result

    def _rollback(
        self,
        executed: list[tuple[int, ActionSpec, dict[str, Any]]],
        contexts: list[ActionContext],
        chain: _Chain,
        base: dict[str, Any],
    ) -> list[str]:
        """Undo ``executed`` in reverse; irreversible ones are escalated, not pretended."""
        restored: list[str] = []
        stuck: list[str] = []
        for index, action, undo in reversed(executed):
            step = {**base, "index": index, "action": action.type}
            try:
                what = action.rollback(undo, contexts[index])
            except IrreversibleError as exc:
                stuck.append(f"{action.type}: {exc}")
                chain.emit(
                    "rollback.failed",
                    {**step, "irreversible": True, "error": str(exc)},
                    Severity.HIGH,
                )
                continue
            except (Exception, SystemExit) as exc:  # a failed undo is escalated with the others
                stuck.append(f"{action.type}: {_said(exc)}")
                chain.emit(
                    "rollback.failed",
                    {**step, "irreversible": False, "error": _said(exc)[:2000]},
                    Severity.HIGH,
                )
                continue
            what = what if isinstance(what, str) else repr(what)  # a plugin's may be anything
            restored.append(what)
            chain.emit("rollback.completed", {**step, "restored": what[:2000]})
        if stuck:
            chain.emit(
                "remediation.escalated",
                {
                    **base,
                    "not_restored": stuck,
                    "detail": "these actions could not be undone; a person must look",
                },
                Severity.HIGH,
            )
        return restored


def _said(exc: BaseException) -> str:
    """What an error says; a SystemExit (a plugin calling sys.exit) is named as one."""
    return str(exc) if isinstance(exc, Exception) else f"{type(exc).__name__}: {exc}"


def _identity(decision: ApprovalDecision) -> dict[str, Any]:
    """Whether an approver's one-time code proved who decided, and the code's time step (so
    it is spent: ``aios.approvers``)."""
    found: dict[str, Any] = {"verified": decision.verified}
    if decision.code_step is not None:
        found["code_step"] = decision.code_step
    return found


def action_context(
    settings: ReactorSettings,
    trigger: Event,
    rid: str,
    index: int,
    emit: Callable[..., Event] | None = None,
) -> ActionContext:
    """What action number ``index`` of remediation ``rid`` may use."""
    return ActionContext(
        event=trigger,
        paths=settings.paths,
        remediation_id=rid,
        allowed_roots=settings.allowed_roots,
        agent_patterns=settings.agent_patterns,
        protected_patterns=settings.protected_patterns,
        emit=emit,
        index=index,
    )


def unplanned(action: ActionSpec) -> ActionPlan:
    """A plan that only names the action (when the machine must not be looked at)."""
    return ActionPlan(
        action.type,
        f"{action.type} (not planned)",
        [],
        guarded_reversible(action)[0],
        guarded_floor(action)[0],
    )


def _render_param(value: Any, trigger: Event, *, glob: bool = False) -> Any:
    from aios.actions.base import ActionError, render
    from aios.actions.process_actions import render_glob
    from aios.actions.process_select import escape_glob

    try:
        if glob and isinstance(value, str):
            return render_glob(value, trigger, "verify")
        return render(value, trigger)
    except ActionError:  # an empty value: the template itself, which matches no process
        return escape_glob(value) if isinstance(value, str) else value
    except InputError:
        return value


def describe_request(
    playbook: Playbook,
    trigger: Event,
    plans: list[ActionPlan],
    breaker: dict[str, Any],
    history: dict[str, Any],
    why: str,
) -> str:
    """What an approver reads: the trigger, the playbook, the plan, the breaker, the past."""
    lines = [
        f"Playbook {playbook.id} wants to run ({why}).",
        f"{playbook.description}".strip(),
        f"Trigger: {trigger.type} from {trigger.source} at {trigger.time:%Y-%m-%d %H:%M:%S}Z, "
        f"severity {trigger.severity.value}, labels {trigger.labels}, payload {trigger.payload}",
        "Planned actions (dry run):",
    ]
    for number, plan in enumerate(plans, start=1):
        note = "" if plan.reversible else " [cannot be undone]"
        lines.append(f"  {number}. {plan.summary}{note}")
    for problem in playbook.risk_problems():
        lines.append(f"Counted as high risk: {problem}")
    lines.append(
        f"Breaker: {'open' if breaker.get('open') else 'closed'}; "
        f"{breaker.get('runs_in_window', 0)} run(s) on this target in the window, "
        f"{breaker.get('consecutive_failures', 0)} consecutive failure(s)."
    )
    past = history.get("past_outcomes") or {}
    lines.append(
        "Past outcomes of this playbook: "
        + (", ".join(f"{k} {v}" for k, v in sorted(past.items())) or "none yet")
    )
    if playbook.verify is not None:
        lines.append(f"Verify: {playbook.verify.probe} expected {playbook.verify.expect}.")
    else:
        lines.append("No verify: the outcome will be recorded as unverified.")
    return "\n".join(line for line in lines if line)
