"""The lesson index: lessons in the memory palace (collection ``lessons``), each owned as
``Lesson.owner`` says and shared with the agents ``Lesson.shared_with`` names, found by meaning
as the operator or as one agent. The ``lessons`` table (from the log) is the truth; ``sync``
brings the index level with it, ``rebuild`` starts over."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aios.config import AIOSConfig
from aios.home import HomePaths
from aios.lessons.model import COLLECTION, Lesson
from aios.lessons.projection import read_lessons
from aios.memory.access import grant_changes, share_key
from aios.memory.palace import MemoryPalace
from aios.memory.records import SHARED
from aios.store import open_store
from aios.store.consumers import get_position, set_position

# Renamed when what the index keeps changes (owners came with .2, one lesson per owner and
# shares with .3): a new name starts at 0, so the next sync stores every lesson again, as it is.
INDEX_CONSUMER = "lessons.index.3"
PROVEN = ("verified", "hardened")


@dataclass(frozen=True)
class LessonHit:
    lesson_id: str
    similarity: float
    state: str
    signature: str
    fix: dict[str, Any] | None
    owner: str


def _entry(lesson: Lesson) -> tuple[str, dict[str, Any], dict[str, str | int | float | bool]]:
    """What the index stores of ``lesson``: key, value and metadata."""
    value = {
        "text": lesson.text,
        "lesson_id": lesson.lesson_id,
        "fix": lesson.fix,
        "state": lesson.state,
    }
    return lesson.lesson_id, value, lesson.index_metadata()


class LessonIndex:
    """Lessons in ``palace`` (whose collection must be ``lessons``)."""

    def __init__(self, palace: MemoryPalace) -> None:
        if palace.collection != COLLECTION:
            raise ValueError(f"the lesson index lives in the {COLLECTION!r} collection")
        self.palace = palace
        self._seen_by: dict[str, tuple[str, set[str]]] | None = None

    @classmethod
    def open(cls, paths: HomePaths | None = None, config: AIOSConfig | None = None) -> LessonIndex:
        return cls(MemoryPalace.open(COLLECTION, paths=paths, config=config))

    def put(self, lessons: list[Lesson]) -> int:
        """Store ``lessons`` (again), each owned by its ``owner`` and shared with the agents
        its ``shared_with`` names (no others); returns how many."""
        self._seen_by = None  # what the table says may have changed too
        by_owner: dict[str, list[Lesson]] = {}
        for lesson in lessons:
            by_owner.setdefault(lesson.owner, []).append(lesson)
        done = sum(
            self.palace.store_many(map(_entry, group), owner=owner)
            for owner, group in by_owner.items()
        )
        wanted = {lesson.lesson_id: lesson.shared_with for lesson in lessons}
        backend, collection = self.palace.backend, self.palace.collection
        for memory in backend.get(collection, list(wanted)):
            changes = grant_changes(memory.shared_with, wanted[memory.key], share_key)
            if changes:
                backend.update_metadata(collection, memory.key, changes)
        return done

    def similar(
        self, text: str, top_k: int = 5, *, proven_only: bool = False, agent: str | None = None
    ) -> list[LessonHit]:
        """The lessons most like ``text`` (only verified and hardened ones, when asked); with
        ``agent``, among those it sees only (its own, the shared ones and those shared with it;
        ``shared``: the shared ones only)."""
        where = {"state": {"$in": list(PROVEN)}} if proven_only else None
        if agent is None:
            palace = self.palace
        else:
            palace = self.palace.shared_only() if agent == SHARED else self.palace.for_agent(agent)
        hits = []
        for memory in palace.query(text, top_k, where):
            if agent is not None and not self._sees(memory.key, agent):
                continue  # the index has not caught up with the table yet (see _sees)
            value = memory.value if isinstance(memory.value, dict) else {}
            hits.append(
                LessonHit(
                    memory.key,
                    float(memory.similarity or 0.0),
                    str(memory.metadata.get("state", value.get("state", ""))),
                    str(memory.metadata.get("signature", "")),
                    value.get("fix"),
                    memory.owner,
                )
            )
        return hits

    def _sees(self, lid: str, agent: str) -> bool:
        """Whether the lessons table gives lesson ``lid`` to ``agent`` (read once). The index
        follows the table and may lag it (until the next sync after an upgrade it may hold a
        lesson as it was): an agent is shown no lesson the table does not give it."""
        if self._seen_by is None:
            with open_store(self.palace.paths) as con:  # whose each is, not whole lessons
                rows = con.execute("SELECT lesson_id, owner, shared_with FROM lessons").fetchall()
            self._seen_by = {lid: (owner, set(shared)) for lid, owner, shared in rows}
        owner, shared_with = self._seen_by.get(lid, (None, set()))
        return owner in (agent, SHARED) or agent in shared_with

    def sync(self, paths: HomePaths) -> int:
        """Index the lessons that changed since the last sync; returns how many."""
        with open_store(paths) as con:
            position = get_position(con, INDEX_CONSUMER) or 0
            total = con.execute("SELECT count(*), coalesce(max(seq), 0) FROM lessons").fetchone()
            assert total is not None
            count, newest = int(total[0]), int(total[1])
            if count and self.palace.count() == 0:
                position = 0  # an empty index (new, or another embedding): everything again
            changed_ids = [
                str(row[0])
                for row in con.execute(
                    "SELECT lesson_id FROM lessons WHERE seq > ?", [position]
                ).fetchall()
            ]
            changed = read_lessons(con, ids=changed_ids) if changed_ids else []
        done = self.put(changed) if changed else 0
        if newest > position:
            with open_store(paths) as con:
                set_position(con, INDEX_CONSUMER, newest)
        return done

    def rebuild(self, paths: HomePaths) -> int:
        """Drop the index and index every lesson again; returns how many."""
        self.palace.backend.drop(self.palace.collection)
        with open_store(paths) as con:
            set_position(con, INDEX_CONSUMER, 0)
        return self.sync(paths)
