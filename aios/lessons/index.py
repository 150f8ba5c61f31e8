"""The lesson index: lessons in the memory palace (collection ``lessons``), found by meaning.

The ``lessons`` table (from the log) is the truth; the index follows it. ``sync`` adds or
refreshes the lessons that changed since it last ran (all of them when the index is empty, as
after switching embedding or losing the Chroma directory); ``rebuild`` starts it over.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aios.config import AIOSConfig
from aios.home import HomePaths
from aios.lessons.model import COLLECTION, Lesson
from aios.lessons.projection import read_lessons
from aios.memory.palace import MemoryPalace
from aios.store import open_store
from aios.store.consumers import get_position, set_position

INDEX_CONSUMER = "lessons.index"
PROVEN = ("verified", "hardened")


@dataclass(frozen=True)
class LessonHit:
    lesson_id: str
    similarity: float
    state: str
    signature: str
    fix: dict[str, Any] | None


class LessonIndex:
    """Lessons in ``palace`` (whose collection must be ``lessons``)."""

    def __init__(self, palace: MemoryPalace) -> None:
        if palace.collection != COLLECTION:
            raise ValueError(f"the lesson index lives in the {COLLECTION!r} collection")
        self.palace = palace

    @classmethod
    def open(cls, paths: HomePaths | None = None, config: AIOSConfig | None = None) -> LessonIndex:
        return cls(MemoryPalace.open(COLLECTION, paths=paths, config=config))

    def put(self, lessons: list[Lesson]) -> int:
        return self.palace.store_many(
            (
                lesson.lesson_id,
                {
                    "text": lesson.text,
                    "lesson_id": lesson.lesson_id,
                    "fix": lesson.fix,
                    "state": lesson.state,
                },
                lesson.index_metadata(),
            )
            for lesson in lessons
        )

    def similar(self, text: str, top_k: int = 5, *, proven_only: bool = False) -> list[LessonHit]:
        """The lessons most like ``text`` (only verified and hardened ones, when asked)."""
        where = {"state": {"$in": list(PROVEN)}} if proven_only else None
        hits = []
        for memory in self.palace.query(text, top_k, where):
            value = memory.value if isinstance(memory.value, dict) else {}
            hits.append(
                LessonHit(
                    memory.key,
                    float(memory.similarity or 0.0),
                    str(memory.metadata.get("state", value.get("state", ""))),
                    str(memory.metadata.get("signature", "")),
                    value.get("fix"),
                )
            )
        return hits

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
