"""The JSON backend: each collection one JSON file, no dependencies beyond AIOS's own.

``$AIOS_HOME/memory/<collection>.json`` holds every memory with its vector (float32, base64).
Writes take an inter-process lock and replace the file atomically; readers reload it when it
changed on disk, so every process sees what another added. A query compares the vector with
every memory (numpy), which is fine for thousands of memories; use Chroma beyond that.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

from aios.atomic import write_atomic
from aios.locking import FileLock, file_lock
from aios.memory.records import (
    OWNER_KEY,
    SHARED,
    Item,
    Memory,
    MemoryInputError,
    Scalar,
    Where,
    matches,
    to_memory,
)

FORMAT = 1


@dataclass
class _Loaded:
    stamp: tuple[int, int]
    embedding: str
    items: dict[str, dict[str, Any]]
    keys: list[str]
    matrix: npt.NDArray[np.float32]


class JsonBackend:
    """Memories in JSON files under ``root``."""

    name = "json"

    def __init__(self, root: Path) -> None:
        self.root = root
        self._cache: dict[str, _Loaded] = {}
        self._locks: dict[str, FileLock] = {}

    def _path(self, collection: str) -> Path:
        return self.root / f"{collection}.json"

    def _lock(self, collection: str) -> FileLock:
        if collection not in self._locks:
            self._locks[collection] = file_lock(self.root / f".{collection}.lock")
        return self._locks[collection]

    def _load(self, collection: str) -> _Loaded | None:
        path = self._path(collection)
        try:
            info = os.stat(path)
        except FileNotFoundError:
            self._cache.pop(collection, None)
            return None
        stamp = (info.st_mtime_ns, info.st_size)
        cached = self._cache.get(collection)
        if cached is not None and cached.stamp == stamp:
            return cached
        try:
            data = orjson.loads(path.read_bytes())
            items: dict[str, dict[str, Any]] = data["items"]
            keys = list(items)
            for entry in items.values():  # stored before owners: every agent's
                entry["metadata"].setdefault(OWNER_KEY, SHARED)
            vectors = [
                np.frombuffer(base64.b64decode(items[key]["vector"]), dtype=np.float32)
                for key in keys
            ]
            width = int(data["dimensions"])
        except (OSError, orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise MemoryInputError(
                f"{path}: not a memory collection AIOS can read ({exc})"
            ) from None
        matrix = np.stack(vectors) if vectors else np.zeros((0, width), dtype=np.float32)
        loaded = _Loaded(stamp, str(data["embedding"]), items, keys, matrix)
        self._cache[collection] = loaded
        return loaded

    def _write(self, collection: str, embedding: str, items: dict[str, dict[str, Any]]) -> None:
        dimensions = 0
        for entry in items.values():
            dimensions = len(base64.b64decode(entry["vector"])) // 4
            break
        document = {"format": FORMAT, "embedding": embedding, "dimensions": dimensions}
        write_atomic(self._path(collection), orjson.dumps({**document, "items": items}))

    def upsert(self, collection: str, embedding: str, items: Sequence[Item]) -> None:
        with self._lock(collection):
            loaded = self._load(collection)
            if loaded is not None and loaded.embedding != embedding:
                raise MemoryInputError(
                    f"collection {collection!r} was made with the {loaded.embedding} embedding, "
                    f"not {embedding}"
                )
            current = dict(loaded.items) if loaded is not None else {}
            for item in items:
                current[item.key] = {
                    "text": item.text,
                    "metadata": item.metadata,
                    "vector": base64.b64encode(item.vector.astype(np.float32).tobytes()).decode(),
                }
            self._write(collection, embedding, current)

    def get(self, collection: str, keys: Sequence[str]) -> list[Memory]:
        loaded = self._load(collection)
        if loaded is None:
            return []
        return [
            to_memory(key, loaded.items[key]["text"], loaded.items[key]["metadata"], None)
            for key in keys
            if key in loaded.items
        ]

    def update_metadata(
        self, collection: str, key: str, changes: Mapping[str, Scalar | None]
    ) -> bool:
        with self._lock(collection):
            loaded = self._load(collection)
            if loaded is None or key not in loaded.items:
                return False
            current = dict(loaded.items)
            metadata = dict(current[key]["metadata"])
            for name, value in changes.items():
                if value is None:
                    metadata.pop(name, None)
                else:
                    metadata[name] = value
            current[key] = {**current[key], "metadata": metadata}
            self._write(collection, loaded.embedding, current)
            return True

    def delete(self, collection: str, keys: Sequence[str]) -> int:
        with self._lock(collection):
            loaded = self._load(collection)
            if loaded is None:
                return 0
            current = dict(loaded.items)
            gone = [key for key in keys if current.pop(key, None) is not None]
            if gone:
                self._write(collection, loaded.embedding, current)
            return len(gone)

    def query(
        self,
        collection: str,
        vector: npt.NDArray[np.float32],
        top_k: int,
        where: Where | None,
    ) -> list[Memory]:
        loaded = self._load(collection)
        if loaded is None or not loaded.keys:
            return []
        similarities = loaded.matrix @ vector.astype(np.float32)
        found: list[Memory] = []
        for index in np.argsort(-similarities, kind="stable"):
            key = loaded.keys[int(index)]
            entry = loaded.items[key]
            if not matches(entry["metadata"], where):
                continue
            found.append(
                to_memory(key, entry["text"], entry["metadata"], float(similarities[index]))
            )
            if len(found) == top_k:
                break
        return found

    def count(self, collection: str, where: Where | None = None) -> int:
        loaded = self._load(collection)
        if loaded is None:
            return 0
        if where is None:
            return len(loaded.keys)
        return sum(1 for entry in loaded.items.values() if matches(entry["metadata"], where))

    def drop(self, collection: str) -> None:
        with self._lock(collection):
            self._path(collection).unlink(missing_ok=True)
            self._cache.pop(collection, None)
