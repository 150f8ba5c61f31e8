"""Turning events into work: priority, routing, dedupe and the breaker check.

P0/P1 events go to the reactor at once, P2 wait for the next executor run, P3 are left to the
analyst's report. The reactor's own steps are routed nowhere. Before an urgent event starts a
reactor run, ``Scheduler.decide`` drops exact duplicates (a producer that sent the same event
twice within the dedupe window; never for a playbook that counts occurrences) and events whose
every matching playbook has its circuit breaker open; the breaker state is derived from the
reactor's events it is fed, like the reactor's own.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import orjson

from aios.durations import format_duration
from aios.event import Event, Priority
from aios.home import HomePaths
from aios.playbooks.matcher import PlaybookIndex
from aios.reactor.seal import sealed
from aios.reactor.state import REACTOR_SOURCE, ReactorState, target_key

SOURCE = "aios.scheduler"
# The scheduler runs as long as ``aios up``: every so many decisions it forgets the reactor's
# steps older than anything a breaker reads (at least KEEP, as the reactor does).
PRUNE_EVERY = 1000
KEEP = timedelta(days=2)
# The reactor's and the scheduler's own steps are never work for anyone.
OWN_SOURCES = frozenset({REACTOR_SOURCE, "aios.playbook", SOURCE})


class Route(StrEnum):
    REACTOR = "reactor"
    EXECUTOR = "executor"
    ANALYST = "analyst"


ROUTE_OF: dict[Priority, Route] = {
    Priority.P0: Route.REACTOR,
    Priority.P1: Route.REACTOR,
    Priority.P2: Route.EXECUTOR,
    Priority.P3: Route.ANALYST,
}


def route_of(event: Event) -> Route | None:
    """Where ``event`` goes by its priority; None for AIOS's own remediation steps."""
    if event.source in OWN_SOURCES:
        return None
    return ROUTE_OF[event.priority]


def fingerprint(event: Event) -> bytes:
    """What makes two events the same report: everything but the id and the time."""
    return orjson.dumps(
        [
            event.type,
            event.source,
            event.severity.value,
            event.labels,
            event.payload,
            event.correlation_id,
        ],
        option=orjson.OPT_SORT_KEYS,
    )


@dataclass
class Decision:
    """What to do with one event, and why."""

    event_id: str
    route: Route | None
    dispatch: bool
    reason: str
    playbooks: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "route": self.route.value if self.route else None,
            "dispatch": self.dispatch,
            "reason": self.reason,
            "playbooks": self.playbooks,
        }


# Event ids remembered so that none is counted twice (far more than a breaker window holds).
MAX_OBSERVED = 200_000


class Scheduler:
    """Decides, event by event in log order, which urgent events start a reactor run."""

    def __init__(
        self,
        index: PlaybookIndex,
        paths: HomePaths,
        *,
        dedupe_window: timedelta = timedelta(seconds=30),
        max_age: timedelta = timedelta(hours=1),
    ) -> None:
        self.index = index
        self.dedupe_window = dedupe_window
        self.max_age = max_age
        self.state = ReactorState(seal_check=lambda verdict, p: sealed(paths, verdict, p))
        self._recent: OrderedDict[bytes, tuple[str, datetime]] = OrderedDict()
        self._decided = 0
        self._observed: OrderedDict[str, None] = OrderedDict()

    def observe(self, event: Event) -> None:
        """Take in one of the reactor's steps (breakers are derived from them); each event
        once, however often it is read again (a retried dispatch, a warm-up that overlaps)."""
        if event.id in self._observed:
            return
        self._observed[event.id] = None
        if len(self._observed) > MAX_OBSERVED:
            self._observed.popitem(last=False)
        self.state.observe(event)

    def decide(self, event: Event, now: datetime) -> Decision:
        """Whether ``event`` starts a reactor run now, and why (or why not)."""
        self.observe(event)
        self._decided += 1
        if self._decided % PRUNE_EVERY == 0:
            self.state.prune(now, self._keep())
        route = route_of(event)
        if route is not Route.REACTOR:
            why = "AIOS's own step" if route is None else f"{event.priority.value}: {route.value}"
            return Decision(event.id, route, False, why)
        if now - event.time > self.max_age:
            return Decision(
                event.id,
                route,
                False,
                f"older than {format_duration(self.max_age)}: too late for the urgent path",
            )
        playbooks = self.index.match(event)
        # Every occurrence counts toward a threshold: those events are never deduplicated.
        if not any(p.trigger.threshold for p in playbooks):
            duplicate = self._duplicate(event)
            if duplicate is not None:
                return Decision(event.id, route, False, f"duplicate of {duplicate}")
        if not playbooks:
            if event.priority is Priority.P0:
                return Decision(event.id, route, True, "critical: the reactor alerts on it")
            return Decision(event.id, route, False, "no playbook matches it")
        closed = []
        reasons = []
        for playbook in playbooks:
            status = self.state.breaker(playbook, target_key(event, playbook), now)
            if status.open:
                reasons.append(f"{playbook.id}: {status.reason}")
            else:
                closed.append(playbook.id)
        if not closed:
            return Decision(
                event.id,
                route,
                False,
                "breaker open for every matching playbook (" + "; ".join(reasons) + ")",
                [p.id for p in playbooks],
            )
        return Decision(event.id, route, True, f"{event.priority.value}: urgent", closed)

    def _keep(self) -> timedelta:
        spans = [KEEP]
        for playbook in self.index.playbooks.values():
            limits = playbook.limits
            spans += [limits.window, limits.cooldown, limits.flap_window]
        return max(spans)

    def _duplicate(self, event: Event) -> str | None:
        key = fingerprint(event)
        while self._recent:
            oldest_key, (_, seen_at) = next(iter(self._recent.items()))
            if event.time - seen_at <= self.dedupe_window:
                break
            del self._recent[oldest_key]
        seen = self._recent.get(key)
        if seen is not None and seen[0] == event.id:
            return None  # the same event decided again (a dispatch that is being retried)
        if seen is not None and abs(event.time - seen[1]) <= self.dedupe_window:
            return seen[0]
        self._recent[key] = (event.id, event.time)
        self._recent.move_to_end(key)
        return None
