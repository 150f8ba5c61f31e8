"""The agent lifecycle (the seed's state machine), derived from events.

States: idle, running, blocked, degraded, archived. Transitions:

    idle -> running        task assigned (task.started)
    running -> idle        task completed (task.completed), or a failed task below the limit
    running -> blocked     resource exhausted (agent.memory_high, or resource.high for it)
    running -> degraded    3 consecutive failures (task.failed)
    blocked -> degraded    repeated failures (agent.degraded)
    idle/running -> degraded   a failure burst (agent.degraded)
    blocked -> idle        cooldown passed (since the latest sign of exhaustion)
    degraded -> archived   unrecoverable (agent.unrecoverable)
    any -> idle            reset (agent.reset)

Anything else is refused with a reason (``agent.transition_refused``), for example a task
started on an archived agent. Every transition is an ``agent.state_changed`` event; the
current state of an agent is its latest one, so it survives restarts.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from aios.event import Event

STATES = ("idle", "running", "blocked", "degraded", "archived")
EXHAUSTION = ("agent.memory_high", "agent.resource_exhausted")
FAILURES_TO_DEGRADE = 3
SOURCE = "aios.lifecycle"

ALLOWED: dict[tuple[str, str], str] = {
    ("idle", "running"): "task assigned",
    ("running", "idle"): "task completed",
    ("running", "blocked"): "resource exhausted",
    ("idle", "blocked"): "resource exhausted",
    ("running", "degraded"): f"{FAILURES_TO_DEGRADE} consecutive failures",
    ("idle", "degraded"): "repeated failures",
    ("blocked", "degraded"): "repeated failures",
    ("blocked", "idle"): "cooldown passed",
    ("degraded", "archived"): "unrecoverable",
}


@dataclass
class AgentState:
    agent: str
    state: str = "idle"
    since: datetime | None = None
    consecutive_failures: int = 0
    refused: set[tuple[str, str]] = field(default_factory=set)


@dataclass
class Transition:
    agent: str
    from_state: str
    to_state: str
    reason: str
    cause: Event | None
    allowed: bool = True

    def event(self) -> dict[str, Any]:
        """The ``emit`` keywords for this transition (or its refusal)."""
        payload = {
            "agent": self.agent,
            "from": self.from_state,
            "to": self.to_state,
            "reason": self.reason,
            "cause_type": self.cause.type if self.cause else None,
        }
        return {
            "type": "agent.state_changed" if self.allowed else "agent.transition_refused",
            "severity": "medium"
            if self.to_state in ("degraded", "archived") and self.allowed
            else "info",
            "labels": {"agent": self.agent},
            "payload": payload,
            "causation_id": self.cause.id if self.cause else None,
        }


def agent_of(event: Event) -> str | None:
    """The agent an event is about: the ``agent`` label, or the source of a task event."""
    agent = event.labels.get("agent")
    if agent:
        return agent
    if event.type.startswith("task."):
        return event.source
    return None


class Lifecycle:
    """Feeds events in log order; yields the transitions they cause."""

    def __init__(self, cooldown: timedelta = timedelta(minutes=5)) -> None:
        self.cooldown = cooldown
        self.agents: dict[str, AgentState] = {}

    def state(self, agent: str) -> AgentState:
        return self.agents.setdefault(agent, AgentState(agent))

    def restore(self, events: Iterable[Event]) -> None:
        """Take the states recorded in ``agent.state_changed`` events (oldest first)."""
        for event in events:
            if event.type == "agent.state_changed":
                current = self.state(str(event.payload.get("agent")))
                current.state = str(event.payload.get("to"))
                current.since = event.time
                current.refused.clear()

    def _move(
        self,
        current: AgentState,
        to: str,
        reason: str,
        cause: Event | None,
        *,
        forced: bool = False,
    ) -> Transition | None:
        if current.state == to:
            return None
        key = (current.state, to)
        if forced or key in ALLOWED:
            transition = Transition(
                current.agent, current.state, to, reason or ALLOWED.get(key, ""), cause
            )
            current.state, current.since = to, cause.time if cause else current.since
            current.refused.clear()
            return transition
        if key in current.refused:
            return None  # said once already for this state
        current.refused.add(key)
        why = f"{current.state} -> {to} is not a transition of the lifecycle"
        if current.state == "archived":
            why = "the agent is archived (unrecoverable); reset it first"
        elif current.state == "blocked":
            why = "the agent is blocked until its cooldown passes"
        elif current.state == "degraded":
            why = "the agent is degraded; reset it or archive it"
        return Transition(current.agent, current.state, to, why, cause, allowed=False)

    def feed(self, event: Event) -> list[Transition]:
        if event.source == SOURCE:
            return []
        agent = agent_of(event)
        if agent is None:
            return []
        current = self.state(agent)
        kind = event.type
        moved: Transition | None = None
        if kind == "agent.reset":
            current.consecutive_failures = 0
            moved = self._move(current, "idle", "reset", event, forced=True)
        elif kind == "task.started":
            moved = self._move(current, "running", "task assigned", event)
        elif kind == "task.completed":
            current.consecutive_failures = 0
            if current.state == "running":
                moved = self._move(current, "idle", "task completed", event)
        elif kind == "task.failed":
            current.consecutive_failures += 1
            if current.state == "running":
                if current.consecutive_failures >= FAILURES_TO_DEGRADE:
                    moved = self._move(
                        current,
                        "degraded",
                        f"{current.consecutive_failures} consecutive failures",
                        event,
                    )
                else:
                    moved = self._move(current, "idle", "task failed", event)
        elif kind in EXHAUSTION or (kind == "resource.high" and "agent" in event.labels):
            if current.state == "blocked":  # still starved: the cooldown starts again
                current.since = max(current.since or event.time, event.time)
            else:
                moved = self._move(current, "blocked", "resource exhausted", event)
        elif kind == "agent.degraded":
            moved = self._move(current, "degraded", "repeated failures", event)
        elif kind == "agent.unrecoverable":
            moved = self._move(current, "archived", "unrecoverable", event)
        return [moved] if moved else []

    def tick(self, now: datetime) -> list[Transition]:
        """Transitions due to time: blocked agents whose cooldown has passed go idle."""
        due = []
        for current in self.agents.values():
            if (
                current.state == "blocked"
                and current.since
                and now - current.since >= self.cooldown
            ):
                moved = self._move(current, "idle", "cooldown passed", None)
                if moved:
                    current.since = now
                    due.append(moved)
        return due
