"""What the reactor remembers, derived only from events so it survives restarts.

Threshold windows, throttles, circuit breakers, flapping and which actions of a remediation are
already done are all rebuilt by replaying the events of the relevant window through
``observe`` and ``count_match``: the same code path as live processing, so a restarted reactor,
or one in another process, comes to the same state.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from aios.event import Event
from aios.event_paths import MISSING, resolve, split_path
from aios.playbooks.model import Playbook

REACTOR_SOURCE = "aios.reactor"
# The reactor's own event types its state is rebuilt from.
REACTOR_TYPES = [
    "remediation.*",
    "action.completed",
    "approval.*",
    "playbook.matched",
    "breaker.flapping",
]
SUCCESS = "succeeded"
FAILURES = ("failed", "rolled_back")


def group_key(event: Event, paths: list[str]) -> str:
    """``labels.host=web1,payload.agent=x`` for ``paths``; ``*`` when there are none."""
    if not paths:
        return "*"
    parts = []
    for path in paths:
        value = resolve(event, split_path(path))
        parts.append(f"{path}={'' if value is MISSING else value}")
    return ",".join(parts)


def target_key(event: Event, playbook: Playbook) -> str:
    """What the remediation acts on, for breakers: ``limits.target_by`` or all labels."""
    if playbook.limits.target_by:
        return group_key(event, playbook.limits.target_by)
    if not event.labels:
        return "*"
    return ",".join(f"labels.{k}={v}" for k, v in sorted(event.labels.items()))


@dataclass
class RemediationRecord:
    """One remediation as the events tell it."""

    remediation_id: str
    playbook: str
    target: str
    started: datetime
    finished: bool = False
    outcome: str | None = None
    ended: datetime | None = None
    completed_actions: dict[int, dict[str, Any]] = field(default_factory=dict)


@dataclass
class BreakerStatus:
    """Whether a playbook may run on a target now, and why not."""

    open: bool
    reason: str = ""
    runs_in_window: int = 0
    consecutive_failures: int = 0
    half_open: bool = False
    flapping: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "open": self.open,
            "reason": self.reason,
            "runs_in_window": self.runs_in_window,
            "consecutive_failures": self.consecutive_failures,
            "half_open": self.half_open,
            "flapping": self.flapping,
        }


@dataclass
class ReactorState:
    """The reactor's memory; feed it every event in log order."""

    thresholds: dict[tuple[str, str], deque[datetime]] = field(default_factory=dict)
    fired: dict[tuple[str, str], datetime] = field(default_factory=dict)
    remediations: dict[str, RemediationRecord] = field(default_factory=dict)
    runs: dict[tuple[str, str], list[RemediationRecord]] = field(default_factory=dict)
    actions: dict[tuple[str, str], deque[datetime]] = field(default_factory=dict)
    flapping_alerted: dict[tuple[str, str], datetime] = field(default_factory=dict)
    # remediation id -> the digest of the plan a person approved (an approval is for that plan)
    approved: dict[str, str] = field(default_factory=dict)
    # remediation id -> (who denied it and why, when); requested / matched: id -> when
    denied: dict[str, tuple[str, datetime]] = field(default_factory=dict)
    requested: dict[str, datetime] = field(default_factory=dict)
    requested_digest: dict[str, str] = field(default_factory=dict)
    matched: dict[str, datetime] = field(default_factory=dict)
    # Checks an approval decision's seal: (verdict, payload) -> believed. None believes all.
    seal_check: Callable[[str, dict[str, Any]], bool] | None = field(default=None, repr=False)

    # ------------------------------------------------------------- observing
    def observe(self, event: Event) -> None:
        """Update from one of the reactor's own events (others are ignored here).

        Times come from the ``decided_at`` the reactor recorded (the clock of its decision),
        falling back to the event's own time.
        """
        if event.source != REACTOR_SOURCE:
            return
        payload = event.payload
        rid = payload.get("remediation_id")
        at = _decided_at(event)
        if event.type == "remediation.started" and isinstance(rid, str):
            record = RemediationRecord(
                rid, str(payload.get("playbook")), str(payload.get("target")), at
            )
            self.remediations[rid] = record
            self.runs.setdefault((record.playbook, record.target), []).append(record)
            throttle_key = payload.get("throttle_key")
            if isinstance(throttle_key, str):
                self.fired[(record.playbook, throttle_key)] = at
        elif event.type == "remediation.finished" and isinstance(rid, str):
            finished = self.remediations.get(rid)
            if finished is not None:
                finished.finished = True
                finished.outcome = str(payload.get("outcome"))
                finished.ended = at
        elif event.type == "action.completed" and isinstance(rid, str):
            running = self.remediations.get(rid)
            if running is not None:
                running.completed_actions[int(payload.get("index", -1))] = dict(
                    payload.get("undo") or {}
                )
            key = (str(payload.get("action")), str(payload.get("target")))
            self.actions.setdefault(key, deque()).append(at)
        elif event.type == "approval.granted" and isinstance(rid, str):
            if self._believed("granted", payload):
                self.approved[rid] = str(payload.get("digest") or "")
        elif event.type in ("approval.denied", "approval.expired") and isinstance(rid, str):
            if self._believed(event.type.split(".")[1], payload):
                self.denied[rid] = (f"{payload.get('approver')}: {payload.get('reason')}", at)
        elif event.type == "approval.requested" and isinstance(rid, str):
            self.requested[rid] = at
            self.requested_digest[rid] = str(payload.get("digest") or "")
        elif event.type == "playbook.matched" and isinstance(rid, str):
            self.matched[rid] = at
        elif event.type == "breaker.flapping":
            key = (str(payload.get("action")), str(payload.get("target")))
            self.flapping_alerted[key] = at

    def _believed(self, verdict: str, payload: dict[str, Any]) -> bool:
        return self.seal_check is None or self.seal_check(verdict, payload)

    def count_match(
        self, playbook: Playbook, event: Event, now: datetime | None = None
    ) -> tuple[bool, int, str]:
        """Count a matching event toward the threshold; (reached, count, group).

        An event dated after ``now`` counts as happening now.
        """
        threshold = playbook.trigger.threshold
        if threshold is None:
            return True, 1, "*"
        group = group_key(event, threshold.group_by)
        window = self.thresholds.setdefault((playbook.id, group), deque())
        at = min(event.time, now) if now is not None else event.time
        window.append(at)
        if len(window) > 1 and window[-2] > at:  # arrived out of order: keep the window sorted
            window = self.thresholds[(playbook.id, group)] = deque(sorted(window))
        latest = window[-1]
        while window and window[0] < latest - threshold.within:
            window.popleft()
        inside = sum(1 for t in window if at - threshold.within <= t <= at)
        return inside >= threshold.count, inside, group

    # --------------------------------------------------------------- asking
    def throttled(
        self, playbook: Playbook, event: Event, now: datetime | None = None
    ) -> tuple[bool, str, datetime | None]:
        throttle = playbook.trigger.throttle
        if throttle is None:
            return False, "*", None
        group = group_key(event, throttle.group_by)
        last = self.fired.get((playbook.id, group))
        at = now or event.time
        if last is not None and timedelta(0) <= at - last < throttle.once_within:
            return True, group, last
        return False, group, last

    def breaker(self, playbook: Playbook, target: str, now: datetime) -> BreakerStatus:
        """Open or closed, and why. The run limit is a hard cap; after ``failures_to_open``
        consecutive failures the breaker stays open for ``cooldown``, then lets one trial
        through (if the run limit allows); a success closes it, anything else starts another
        cooldown. A trial that never finished is given up on after ``trial_timeout``."""
        limits = playbook.limits
        history = self.runs.get((playbook.id, target), [])
        # Runs decided "after" now count too: decision times follow trigger times, and a
        # trigger older than one already acted on may be decided later (another thread).
        recent = [r for r in history if abs(now - r.started) < limits.window]
        status = BreakerStatus(False, runs_in_window=len(recent))
        streak, last_failure = 0, None
        for record in reversed(history):
            if not record.finished or record.outcome not in (SUCCESS, *FAILURES):
                continue  # running, unverified or skipped: not counted in the streak
            if record.outcome == SUCCESS:
                break
            streak += 1
            last_failure = last_failure or record.started
        status.consecutive_failures = streak
        if streak >= limits.failures_to_open and last_failure is not None:
            trials = [r for r in history if r.started > last_failure]
            abandoned = self.trial_timeout(playbook)
            running = [r for r in trials if not r.finished and now - r.started < abandoned]
            since = max([last_failure, *(r.ended or r.started for r in trials if r.finished)])
            if running:
                status.open = True
                status.reason = "a trial run after the cooldown is still in progress"
                return status
            if now - since < limits.cooldown:
                status.open = True
                status.reason = (
                    f"{streak} consecutive failures; cooling down for "
                    f"{_short(limits.cooldown - (now - since))}"
                )
                return status
            status.half_open = True
        if len(recent) >= limits.max_runs:
            status.open = True
            status.reason = (
                f"{len(recent)} runs on this target within {_short(limits.window)} "
                f"(limit {limits.max_runs})"
            )
        return status

    @staticmethod
    def trial_timeout(playbook: Playbook) -> timedelta:
        verify = playbook.verify.within if playbook.verify else timedelta(0)
        return max(timedelta(minutes=30), 2 * verify + timedelta(minutes=10))

    def prune(self, now: datetime, keep: timedelta) -> None:
        """Forget what is older than ``keep`` (longer than any window that reads it)."""
        horizon = now - keep
        for key in [k for k, w in self.thresholds.items() if not w or w[-1] < horizon]:
            del self.thresholds[key]
        for key in [k for k, t in self.fired.items() if t < horizon]:
            del self.fired[key]
        for key, records in list(self.runs.items()):
            kept = [r for r in records if not r.finished or r.started >= horizon]
            if kept:
                self.runs[key] = kept
            else:
                del self.runs[key]
        for rid in [
            r for r, rec in self.remediations.items() if rec.finished and rec.started < horizon
        ]:
            del self.remediations[rid]
            self.approved.pop(rid, None)
        for table in (self.requested, self.matched):
            for rid in [r for r, at in table.items() if at < horizon]:
                del table[rid]
                if table is self.requested:
                    self.requested_digest.pop(rid, None)
        for rid in [r for r, (_, at) in self.denied.items() if at < horizon]:
            del self.denied[rid]
        for key, times in list(self.actions.items()):
            while times and times[0] < horizon:
                times.popleft()
            if not times:
                del self.actions[key]

    def flapping(self, action: str, target: str, window: timedelta, now: datetime) -> int:
        """How often ``action`` completed on ``target`` within ``window`` before ``now``."""
        times = self.actions.get((action, target))
        if not times:
            return 0
        while times and now - times[0] > window:
            times.popleft()
        return len(times)

    def record(self, remediation_id: str) -> RemediationRecord | None:
        return self.remediations.get(remediation_id)


def _decided_at(event: Event) -> datetime:
    raw = event.payload.get("decided_at")
    if isinstance(raw, str):
        try:
            return datetime.fromisoformat(raw)
        except ValueError:
            pass
    return event.time


def _short(delta: timedelta) -> str:
    from aios.durations import format_duration

    return format_duration(max(delta, timedelta(0)))
