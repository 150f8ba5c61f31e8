"""Applying lessons: a failure like a proven lesson its agent sees (its own, a shared one, or
one shared with it) is offered that lesson's fix (``ProvenFixes``); ``current_fix`` reads the
lesson again before the fix runs, so a lesson demoted meanwhile is not applied."""

from __future__ import annotations

from aios.event import Event
from aios.home import HomePaths
from aios.lessons.index import LessonIndex
from aios.lessons.model import owner_of
from aios.lessons.projection import read_lessons
from aios.loop.signatures import signature
from aios.playbooks.matcher import PlaybookIndex
from aios.reactor.engine import LessonFix
from aios.store import open_store

PROVEN = ("verified", "hardened")
FAILURES = ("task.failed",)


def agent_of(event: Event) -> str:
    """The agent a failure is of, as the analyst groups failures (and so lessons): its
    ``agent`` label, else its source; ``shared`` (it sees the shared lessons only) when that
    cannot name an agent (``shared`` itself included), as a lesson of such failures is shared."""
    agent = event.labels.get("agent")
    return owner_of(agent if agent is not None else event.source)


def failure_text(event: Event) -> str | None:
    """What a failure looks like to the lesson index: its signature and its message; None
    for an event that is not a failure."""
    if event.type not in FAILURES:
        return None
    kind = event.payload.get("error_type")
    message = event.payload.get("error")
    kind = kind if isinstance(kind, str) else None
    message = message if isinstance(message, str) else None
    if not kind and not message:
        return None
    return f"{signature(kind, message)}\n{message or kind}"


class ProvenFixes:
    """Finds the proven lesson whose fix fits a failure, in the failing agent's view of the
    lesson index: the fix of the most similar one at or above ``threshold``, as a ``LessonFix``
    the reactor runs by itself when the lesson is hardened and the playbook low risk with
    ``auto_execute``, and otherwise after a person approves it."""

    def __init__(self, index: LessonIndex, playbooks: PlaybookIndex, threshold: float) -> None:
        self.index, self.playbooks, self.threshold = index, playbooks, threshold

    def __call__(self, event: Event) -> LessonFix | None:
        text = failure_text(event)
        if text is None:
            return None
        agent = agent_of(event)
        for hit in self.index.similar(text, 3, proven_only=True, agent=agent):
            playbook = (hit.fix or {}).get("playbook")
            if hit.similarity < self.threshold:
                break  # best first: the rest are less alike
            if hit.state in PROVEN and playbook in self.playbooks.playbooks:
                return LessonFix(
                    hit.lesson_id,
                    str(playbook),
                    hit.state,
                    hit.similarity,
                    symptom=hit.signature,
                )
        return None


def current_fix(paths: HomePaths, lesson_id: str, similarity: float) -> LessonFix | None:
    """The lesson's fix as the lessons table says now; None if it is no longer proven or has
    no fix."""
    with open_store(paths) as con:
        found = read_lessons(con, ids=[lesson_id])
    if not found:
        return None
    lesson = found[0]
    playbook = (lesson.fix or {}).get("playbook")
    if lesson.state not in PROVEN or not playbook:
        return None
    return LessonFix(
        lesson.lesson_id,
        str(playbook),
        lesson.state,
        similarity,
        symptom=lesson.signature,
        successes=lesson.successes,
        failures=lesson.failures,
    )
