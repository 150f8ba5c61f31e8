"""Sharing a lesson: the operator shows one agent's lesson to another agent too
(``lesson.shared``) or takes that back (``lesson.unshared``). The lessons table records it and
the lesson index follows, so the agent's lookups, ``lessons list/search/show --agent`` and the
optimizer's offers include the lesson until it is unshared."""

from __future__ import annotations

from aios.bus import EventBus
from aios.errors import InputError
from aios.home import HomePaths
from aios.lessons.model import SHARED_WITH, SOURCE, UNSHARED_WITH, Lesson
from aios.lessons.projection import find_lesson
from aios.memory.access import check_agent
from aios.memory.records import SHARED
from aios.store import open_store


def share_lesson(bus: EventBus, paths: HomePaths, lesson_id: str, agent: str) -> Lesson:
    """Let ``agent`` see the lesson ``lesson_id`` (or a unique prefix of it); returns the
    lesson as it was. InputError for a lesson that is shared already, or its own owner."""
    agent = check_agent(agent, "agent")
    lesson = _lesson(paths, lesson_id)
    if lesson.owner == SHARED:
        raise InputError(f"{lesson.lesson_id} is shared: every agent sees it")
    if agent == lesson.owner:
        raise InputError(f"{lesson.lesson_id} is {agent}'s own: name another agent")
    _record(bus, SHARED_WITH, lesson, agent)
    return lesson


def unshare_lesson(bus: EventBus, paths: HomePaths, lesson_id: str, agent: str) -> Lesson:
    """Take back ``share_lesson``; InputError if the lesson is not shared with ``agent``."""
    agent = check_agent(agent, "agent")
    lesson = _lesson(paths, lesson_id)
    if agent not in lesson.shared_with:
        raise InputError(f"{lesson.lesson_id} is not shared with {agent!r}")
    _record(bus, UNSHARED_WITH, lesson, agent)
    return lesson


def _lesson(paths: HomePaths, lesson_id: str) -> Lesson:
    with open_store(paths) as con:
        return find_lesson(con, lesson_id)


def _record(bus: EventBus, kind: str, lesson: Lesson, agent: str) -> None:
    bus.emit(
        kind,
        {"lesson_id": lesson.lesson_id, "agent": agent},
        source=SOURCE,
        labels={"lesson": lesson.lesson_id},
    )
