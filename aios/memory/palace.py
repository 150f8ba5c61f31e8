"""``MemoryPalace``: what AIOS remembers, found again by meaning.

    palace = MemoryPalace.open(collection="notes")
    palace.store("pg-refused", "postgres refused connections after the upgrade")
    palace.query("database connection refused", top_k=3)
    palace.link("pg-refused", "restart-pg", "fixed_by")
    palace.neighbors("pg-refused", "fixed_by")

Memories live in a backend (Chroma by default, or JSON files), embedded by an offline
embedding (or the sentence model when installed); links live in DuckDB as events
(``memory.linked``), so they survive restarts, agree across processes and can be walked with
a recursive query. Deleting a memory removes its links.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from aios.bus import EventBus
from aios.config import AIOSConfig, load_config
from aios.home import HomePaths
from aios.memory.embedding import Embedder, embedder
from aios.memory.links import DELETED, LINKED, MAX_DEPTH, SOURCE, UNLINKED, Neighbor, neighbors
from aios.memory.records import (
    SHARED,
    Item,
    Memory,
    MemoryBackend,
    MemoryInputError,
    Where,
    check_where,
    pack,
)
from aios.prefect_api import read_up
from aios.store import open_store

_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@/+=-]{0,255}$")
_RELATION = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
MAX_TOP_K = 1000
CHROMA_URL_ENV = "AIOS_CHROMA_URL"


def check_key(key: str, what: str = "key") -> str:
    if not isinstance(key, str) or not _KEY.match(key):
        raise MemoryInputError(
            f"{what} {key!r}: 1-256 characters, letters, digits and . _ : @ / + = - "
            "(starting with a letter or digit)"
        )
    return key


def chroma_url(paths: HomePaths, config: AIOSConfig) -> str | None:
    """The Chroma server to use: AIOS_CHROMA_URL, else ``[memory] chroma_url``, else the one a
    running ``aios up`` started for this home; None means embedded."""
    url = os.environ.get(CHROMA_URL_ENV, "").strip() or (config.memory.chroma_url or "")
    if url:
        return url.rstrip("/")
    info = read_up(paths) or {}
    found = info.get("chroma_url")
    pid = info.get("pid")
    if isinstance(found, str) and isinstance(pid, int):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None  # left behind by an aios up that is gone
        except PermissionError:
            pass
        return found
    return None


def make_backend(paths: HomePaths, config: AIOSConfig) -> MemoryBackend:
    """The backend ``[memory] backend`` names, where this home keeps it."""
    if config.memory.backend == "json":
        from aios.memory.json_backend import JsonBackend

        return JsonBackend(paths.root / "memory")
    from aios.memory.chroma_backend import ChromaBackend

    url = chroma_url(paths, config)
    if url:
        return ChromaBackend(url=url)
    return ChromaBackend(path=paths.root / "chroma")


class MemoryPalace:
    """Store, find by meaning, link and walk memories of one collection."""

    def __init__(
        self,
        backend: MemoryBackend,
        embedding: Embedder,
        *,
        bus: EventBus,
        paths: HomePaths,
        collection: str = "memories",
    ) -> None:
        self.backend, self.embedding = backend, embedding
        self.bus, self.paths = bus, paths
        if not re.match(r"^[a-z][a-z0-9_-]{2,62}$", collection):
            raise MemoryInputError(
                f"collection {collection!r}: 3-63 lowercase letters, digits, - and _"
            )
        self.collection = collection

    @classmethod
    def open(
        cls,
        collection: str = "memories",
        *,
        paths: HomePaths | None = None,
        config: AIOSConfig | None = None,
        bus: EventBus | None = None,
    ) -> MemoryPalace:
        """The palace of this ``AIOS_HOME`` as ``[memory]`` configures it."""
        from aios.runtime import default_bus

        paths = paths or HomePaths.current()
        config = config or load_config(paths)
        return cls(
            make_backend(paths, config),
            embedder(config.memory.embedding),
            bus=bus or default_bus(),
            paths=paths,
            collection=collection,
        )

    # ------------------------------------------------------------------ memories
    def store(
        self,
        key: str,
        value: str | Mapping[str, Any],
        *,
        metadata: Mapping[str, Any] | None = None,
        owner: str = SHARED,
    ) -> Memory:
        """Remember ``value`` under ``key`` (replacing what was there); returns it."""
        self.store_many([(key, value, metadata)], owner=owner)
        found = self.get(key)
        assert found is not None
        return found

    def store_many(
        self,
        entries: Iterable[tuple[str, str | Mapping[str, Any], Mapping[str, Any] | None]],
        *,
        owner: str = SHARED,
        batch: int = 1000,
    ) -> int:
        """Remember many ``(key, value, metadata)`` at once; returns how many."""
        check_key(owner, "owner")
        count = 0
        pending: list[tuple[str, str, dict[str, Any]]] = []
        for key, value, metadata in entries:
            text, meta = pack(value, metadata, owner)
            pending.append((check_key(key), text, meta))
            if len(pending) >= batch:
                count += self._write(pending)
                pending = []
        if pending:
            count += self._write(pending)
        return count

    def _write(self, pending: Sequence[tuple[str, str, dict[str, Any]]]) -> int:
        vectors = self.embedding.embed([text for _, text, _ in pending])
        items = [Item(key, text, vectors[i], meta) for i, (key, text, meta) in enumerate(pending)]
        self.backend.upsert(self.collection, self.embedding.name, items)
        return len(items)

    def get(self, key: str) -> Memory | None:
        found = self.backend.get(self.collection, [check_key(key)])
        return found[0] if found else None

    def delete(self, key: str) -> bool:
        """Forget ``key`` and its links; False if there was nothing to forget."""
        gone = self.backend.delete(self.collection, [check_key(key)]) > 0
        if gone:
            self.bus.emit(DELETED, {"collection": self.collection, "key": key}, source=SOURCE)
        return gone

    def query(self, text: str, top_k: int = 5, where: Where | None = None) -> list[Memory]:
        """The ``top_k`` memories most similar to ``text`` (meeting ``where``), best first."""
        if not isinstance(text, str) or not text.strip():
            raise MemoryInputError("query: some text to look for")
        if not 1 <= top_k <= MAX_TOP_K:
            raise MemoryInputError(f"top_k: from 1 to {MAX_TOP_K}")
        check_where(where)
        [vector] = self.embedding.embed([text])
        return self.backend.query(self.collection, vector, top_k, where)

    def count(self) -> int:
        return self.backend.count(self.collection)

    # ------------------------------------------------------------------ links
    def link(self, a: str, b: str, relation: str) -> None:
        """Record ``a`` -relation-> ``b`` (both may be in any collection)."""
        self._check_link(a, b, relation)
        self.bus.emit(LINKED, {"a": a, "b": b, "relation": relation}, source=SOURCE)

    def unlink(self, a: str, b: str, relation: str) -> None:
        self._check_link(a, b, relation)
        self.bus.emit(UNLINKED, {"a": a, "b": b, "relation": relation}, source=SOURCE)

    @staticmethod
    def _check_link(a: str, b: str, relation: str) -> None:
        check_key(a, "a")
        check_key(b, "b")
        if a == b:
            raise MemoryInputError("a memory is not linked to itself")
        if not isinstance(relation, str) or not _RELATION.match(relation):
            raise MemoryInputError(
                f"relation {relation!r}: lowercase letters, digits and _, e.g. fixed_by"
            )

    def neighbors(self, key: str, relation: str | None = None, depth: int = 1) -> list[Neighbor]:
        """What ``key`` is linked to (both ways), up to ``depth`` links away, nearest first."""
        check_key(key)
        if not 1 <= depth <= MAX_DEPTH:
            raise MemoryInputError(f"depth: from 1 to {MAX_DEPTH}")
        with open_store(self.paths) as con:
            return neighbors(con, key, relation, depth)
