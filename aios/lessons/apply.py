"""Applying lessons: a new failure like a proven lesson's is offered that lesson's fix.

``ProvenFixes`` looks a failure up in the lesson index (verified and hardened lessons only) and
returns the fix of the most similar one at or above the similarity threshold, as a
``LessonFix`` the reactor can run: automatically when the lesson is hardened and the playbook
is low risk with ``auto_execute``, otherwise after a person approves it with the lesson in
front of them. ``current_fix`` re-reads the lesson when the fix is about to run, so a lesson
demoted meanwhile is not applied.
"""

from __future__ import annotations

from aios.event import Event
from aios.home import HomePaths
from aios.lessons.index import LessonIndex
from aios.lessons.projection import read_lessons
from aios.loop.signatures import signature
from aios.playbooks.matcher import PlaybookIndex
from aios.reactor.engine import LessonFix
from aios.store import open_store

PROVEN = ("verified", "hardened")
FAILURES = ("task.failed",)


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
    """Finds the proven lesson whose fix fits a failure."""

    def __init__(self, index: LessonIndex, playbooks: PlaybookIndex, threshold: float) -> None:
        self.index, self.playbooks, self.threshold = index, playbooks, threshold

    def __call__(self, event: Event) -> LessonFix | None:
        text = failure_text(event)
        if text is None:
            return None
        for hit in self.index.similar(text, 3, proven_only=True):
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
