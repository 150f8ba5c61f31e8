"""``example.memory``: memories kept in this process's memory, one store per AIOS home.

Gone when the process ends, and not shared between processes: for tests and demos. It shows
everything a backend must do (``aios.memory.records.MemoryBackend``) in a few lines.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from aios.config import AIOSConfig
from aios.home import HomePaths
from aios.memory.records import (
    Item,
    Memory,
    MemoryInputError,
    Scalar,
    Where,
    matches,
    to_memory,
)


@dataclass
class _Collection:
    embedding: str
    items: dict[str, Item] = field(default_factory=dict)


class InMemoryBackend:
    """Collections in a dict; a query compares the vector with every memory."""

    name = "example.memory"

    def __init__(self) -> None:
        self._collections: dict[str, _Collection] = {}

    def upsert(self, collection: str, embedding: str, items: Sequence[Item]) -> None:
        found = self._collections.setdefault(collection, _Collection(embedding))
        if found.embedding != embedding:
            raise MemoryInputError(
                f"collection {collection!r} was made with the {found.embedding} embedding"
            )
        for item in items:
            found.items[item.key] = item

    def get(self, collection: str, keys: Sequence[str]) -> list[Memory]:
        items = self._items(collection)
        return [_memory(items[key], None) for key in keys if key in items]

    def update_metadata(
        self, collection: str, key: str, changes: Mapping[str, Scalar | None]
    ) -> bool:
        items = self._items(collection)
        if key not in items:
            return False
        metadata = dict(items[key].metadata)
        for name, value in changes.items():
            if value is None:
                metadata.pop(name, None)
            else:
                metadata[name] = value
        old = items[key]
        items[key] = Item(old.key, old.text, old.vector, metadata)
        return True

    def delete(self, collection: str, keys: Sequence[str]) -> int:
        items = self._items(collection)
        return sum(1 for key in keys if items.pop(key, None) is not None)

    def query(
        self,
        collection: str,
        vector: npt.NDArray[np.float32],
        top_k: int,
        where: Where | None,
    ) -> list[Memory]:
        candidates = [
            item for item in self._items(collection).values() if matches(item.metadata, where)
        ]
        scored = [(float(item.vector @ vector), item) for item in candidates]
        scored.sort(key=lambda pair: -pair[0])
        return [_memory(item, similarity) for similarity, item in scored[:top_k]]

    def count(self, collection: str, where: Where | None = None) -> int:
        return sum(1 for item in self._items(collection).values() if matches(item.metadata, where))

    def drop(self, collection: str) -> None:
        self._collections.pop(collection, None)

    def _items(self, collection: str) -> dict[str, Item]:
        found = self._collections.get(collection)
        return found.items if found is not None else {}


def _memory(item: Item, similarity: float | None) -> Memory:
    return to_memory(item.key, item.text, item.metadata, similarity)


_BACKENDS: dict[str, InMemoryBackend] = {}


def in_memory_backend(paths: HomePaths, config: AIOSConfig) -> Any:
    """The backend of this AIOS home in this process (the same one each time it is asked)."""
    return _BACKENDS.setdefault(str(paths.root), InMemoryBackend())
