"""A lesson: a failure that keeps coming back, what it looks like, and the fix that works.

A lesson is one owner's: the agent whose failures made it (its id is derived from the owner and
the signature, so two agents with the same failure have two lessons), or ``shared`` for failures
that name no usable agent. Other agents see an agent's lesson only when it is shared with them
(``lesson.shared``, taken back by ``lesson.unshared``).

Lifecycle: ``draft`` (seen often enough), ``verified`` (its fix was applied and verified),
``hardened`` (``[lessons] hardened_after`` verified successes in a row). A fix that fails
demotes the lesson one step (hardened -> verified -> draft). Every change is an event
(``lesson.created``, ``lesson.updated``, ``lesson.verified``, ``lesson.hardened``,
``lesson.confirmed``, ``lesson.demoted``, ``lesson.fix_failed``, ``lesson.shared``,
``lesson.unshared``); the ``lessons`` table in DuckDB is derived from them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aios.memory.access import is_agent_name
from aios.memory.records import SHARED

SOURCE = "aios.lessons"
STATES = ("draft", "verified", "hardened")
CREATED = "lesson.created"
UPDATED = "lesson.updated"
VERIFIED = "lesson.verified"  # draft -> verified
HARDENED = "lesson.hardened"  # -> hardened
CONFIRMED = "lesson.confirmed"  # another success, the state stays
DEMOTED = "lesson.demoted"  # one step down after a failed fix
FIX_FAILED = "lesson.fix_failed"  # a failed fix of a draft: nothing lower to go to
SHARED_WITH = "lesson.shared"  # {lesson_id, agent}: the agent sees it too
UNSHARED_WITH = "lesson.unshared"
JUDGEMENTS = (VERIFIED, HARDENED, CONFIRMED, DEMOTED, FIX_FAILED)
LESSON_TYPES = (CREATED, UPDATED, *JUDGEMENTS, SHARED_WITH, UNSHARED_WITH)
COLLECTION = "lessons"


def owner_of(agent: object) -> str:
    """Whose lesson a failure of ``agent`` (its ``agent`` label, else its source) makes: that
    agent's, or ``shared`` when it names no usable agent (``shared`` itself included)."""
    return agent if isinstance(agent, str) and is_agent_name(agent) else SHARED


def lesson_owner(agents: list[str]) -> str:
    """The owner of a lesson recorded before lessons named theirs: the one agent whose failures
    made it, else ``shared``."""
    return agents[0] if len(agents) == 1 and is_agent_name(agents[0]) else SHARED


def lesson_id(signature: str, owner: str) -> str:
    """The id of ``owner``'s lesson about ``signature``: the same in every process, and
    different for every owner (an agent's name holds no line break, nor is it ``shared``)."""
    return "lesson-" + hashlib.sha256(f"{owner}\n{signature}".encode()).hexdigest()[:12]


@dataclass
class Fix:
    """What to do about it: a playbook (with its risk), and why AIOS believes it works."""

    playbook: str
    risk: str
    evidence: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "playbook",
            "playbook": self.playbook,
            "risk": self.risk,
            "evidence": self.evidence,
        }


@dataclass
class Lesson:
    lesson_id: str
    signature: str
    symptom: str
    state: str
    count: int
    agents: list[str]
    first_seen: datetime
    last_seen: datetime
    fix: dict[str, Any] | None
    owner: str = SHARED
    shared_with: list[str] = field(default_factory=list)  # agents it was shared with
    successes: int = 0
    failures: int = 0
    streak: int = 0  # verified successes since the last failure
    sample_event_id: str | None = None
    created: datetime | None = None
    updated: datetime | None = None
    history: list[dict[str, Any]] = field(default_factory=list)

    @property
    def text(self) -> str:
        """What is embedded: the signature and a real occurrence, so both wordings match."""
        return f"{self.signature}\n{self.symptom}" if self.symptom else self.signature

    def to_dict(self) -> dict[str, Any]:
        found: dict[str, Any] = {
            "lesson_id": self.lesson_id,
            "state": self.state,
            "signature": self.signature,
            "symptom": self.symptom,
            "count": self.count,
            "agents": self.agents,
            "owner": self.owner,
            "shared_with": self.shared_with,
            "first_seen": self.first_seen.isoformat(),
            "last_seen": self.last_seen.isoformat(),
            "fix": self.fix,
            "successes": self.successes,
            "failures": self.failures,
            "streak": self.streak,
            "sample_event_id": self.sample_event_id,
            "created": self.created.isoformat() if self.created else None,
            "updated": self.updated.isoformat() if self.updated else None,
        }
        if self.history:
            found["history"] = self.history
        return found

    def index_metadata(self) -> dict[str, str | int | float | bool]:
        """What the lesson index keeps beside the text (for filters and display)."""
        return {
            "state": self.state,
            "signature": self.signature[:500],
            "count": self.count,
            "fix_playbook": (self.fix or {}).get("playbook") or "",
            "successes": self.successes,
        }
