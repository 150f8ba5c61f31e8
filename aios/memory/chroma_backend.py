"""The Chroma backend: embedded (``PersistentClient`` under ``$AIOS_HOME/chroma``) or a Chroma
server (``HttpClient``, the one ``aios up`` starts).

AIOS's embeddings are registered with Chroma (``aios-hash``, ``aios-minilm``), so any process
that imports ``aios.memory`` can open a collection and query it by text. An embedded client
does not see vectors another process added to an index it already loaded, so every call takes
an inter-process lock and reopens the client when the files changed since this process last
touched them; a server has no such problem. A ``where`` filter (an agent's view always has one)
is applied to a generous nearest-neighbour answer first (Chroma's own filtered search reads every
matching row), and asked of Chroma when that answer had too few: no match is lost either way.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np
import numpy.typing as npt

from aios.errors import AIOSError
from aios.locking import file_lock
from aios.memory.embedding import HASH_NAME, SENTENCE_NAME, by_registered_name
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

OVERFETCH = 8  # a filtered query first asks for this many times top_k neighbours
MIN_FETCH = 64
# Then for this many times top_k (at least WIDE_MIN), before Chroma's own filtered search: a
# quarter of a thousand answers cost little more to read than 64, a thousand already as much
# as the filtered search (measured at 2x10^4 lessons, a view that sees a tenth).
WIDE_FETCH = 32
WIDE_MIN = 256
# Collection metadata: every memory in it has an owner (the filters of agents' views need one).
OWNERS_MARK = "aios-owners"
PAGE = 1000


class ChromaError(AIOSError):
    """Chroma could not be reached or refused a request; the message says which and where."""


def _register() -> None:
    """Register AIOS's embeddings with Chroma (once per process)."""
    from chromadb.api.types import Documents, EmbeddingFunction, Embeddings
    from chromadb.utils.embedding_functions import (
        known_embedding_functions,
        register_embedding_function,
    )

    if HASH_NAME in known_embedding_functions:
        return

    def make(registered: str) -> type[EmbeddingFunction[Documents]]:
        class AIOSEmbeddingFunction(EmbeddingFunction[Documents]):
            def __init__(self) -> None:
                self._embedder = by_registered_name(registered)

            def __call__(self, input: Documents) -> Embeddings:
                return list(self._embedder.embed(list(input)))

            @staticmethod
            def name() -> str:
                return registered

            def default_space(self) -> Any:
                return "cosine"

            def supported_spaces(self) -> Any:
                return ["cosine"]

            @staticmethod
            def build_from_config(config: dict[str, Any]) -> EmbeddingFunction[Documents]:
                return AIOSEmbeddingFunction()

            def get_config(self) -> dict[str, Any]:
                return {}

        AIOSEmbeddingFunction.__name__ = f"AIOS_{registered.replace('-', '_')}"
        return AIOSEmbeddingFunction

    for registered in (HASH_NAME, SENTENCE_NAME):
        register_embedding_function(make(registered))  # type: ignore[no-untyped-call]


def _forget(client: Any) -> None:
    """Stop an embedded client's system and drop it from Chroma's per-process cache, so the
    next client for that path reads the files again (other paths' clients are untouched)."""
    from chromadb.api.shared_system_client import SharedSystemClient

    identifier = client._identifier
    system = SharedSystemClient._identifier_to_system.pop(identifier, None)
    SharedSystemClient._identifier_to_refcount.pop(identifier, None)
    if system is not None:
        with contextlib.suppress(Exception):  # already stopped: nothing to free
            system.stop()


def collection_name(collection: str, embedding: str) -> str:
    """Chroma's name for ``collection`` embedded with ``embedding`` (one per embedding: their
    vectors cannot be mixed)."""
    return f"{collection}.{embedding}"


class ChromaBackend:
    """Memories in Chroma: embedded at ``path``, or the server at ``url``."""

    name = "chroma"

    def __init__(self, *, path: Path | None = None, url: str | None = None) -> None:
        if (path is None) == (url is None):
            raise ValueError("ChromaBackend takes a path or a url")
        _register()
        self.path, self.url = path, url
        self._client: Any = None
        self._stamp: tuple[tuple[int, int], ...] | None = None
        self._lock = file_lock(path / ".aios.lock") if path is not None else None
        self._embeddings: dict[str, str] = {}  # collection -> embedding, once known
        self._owned: set[str] = set()  # Chroma collections known to have owners throughout

    @property
    def where(self) -> str:
        return self.url or str(self.path)

    # ------------------------------------------------------------------ clients
    def _files_stamp(self) -> tuple[tuple[int, int], ...]:
        assert self.path is not None
        stamps = []
        for name in ("chroma.sqlite3", "chroma.sqlite3-wal"):
            try:
                info = os.stat(self.path / name)
                stamps.append((info.st_mtime_ns, info.st_size))
            except FileNotFoundError:
                stamps.append((0, 0))
        return tuple(stamps)

    def _open(self) -> Any:
        import chromadb
        from chromadb.config import Settings

        settings = Settings(anonymized_telemetry=False, allow_reset=False)
        if self.url is not None:
            parsed = urlparse(self.url)
            if parsed.scheme not in ("http", "https") or not parsed.hostname:
                raise MemoryInputError(f"{self.url!r}: a Chroma server is http(s)://HOST:PORT")
            return chromadb.HttpClient(
                host=parsed.hostname,
                port=parsed.port or (443 if parsed.scheme == "https" else 8000),
                ssl=parsed.scheme == "https",
                settings=settings,
            )
        assert self.path is not None
        self.path.mkdir(parents=True, exist_ok=True)
        return chromadb.PersistentClient(path=str(self.path), settings=settings)

    @contextmanager
    def _session(self, *, write: bool) -> Iterator[Any]:
        """The client, fresh if another process changed the files; errors become ChromaError."""
        try:
            if self._lock is None:
                if self._client is None:
                    self._client = self._open()
                yield self._client
                return
            with self._lock:
                stamp = self._files_stamp()
                if self._client is None or stamp != self._stamp:
                    if self._client is not None:
                        _forget(self._client)  # its index is stale: load it all again
                    self._client = self._open()
                try:
                    yield self._client
                finally:
                    self._stamp = self._files_stamp()
        except (MemoryInputError, ChromaError):
            raise
        except Exception as exc:
            if type(exc).__module__.startswith(("chromadb", "httpx", "httpcore")) or isinstance(
                exc, (ConnectionError, OSError, ValueError)
            ):
                raise ChromaError(f"Chroma at {self.where}: {type(exc).__name__}: {exc}") from exc
            raise

    def _collection(self, client: Any, collection: str, embedding: str | None) -> Any:
        """The Chroma collection (created with ``embedding`` when given), else None."""
        from chromadb.errors import NotFoundError

        if embedding is None:
            embedding = self._embeddings.get(collection)
        if embedding is not None:
            name = collection_name(collection, embedding)
            from chromadb.utils.embedding_functions import known_embedding_functions

            function = known_embedding_functions[embedding]()
            found = client.get_or_create_collection(
                name,
                embedding_function=function,
                configuration={"hnsw": {"space": "cosine", "ef_search": 400}},
            )
            self._embeddings[collection] = embedding
            return self._with_owners(found)
        for candidate in (HASH_NAME, SENTENCE_NAME):  # whichever exists
            try:
                found = client.get_collection(collection_name(collection, candidate))
            except (NotFoundError, ValueError):
                continue
            self._embeddings[collection] = candidate
            return self._with_owners(found)
        return None

    def _with_owners(self, found: Any) -> Any:
        """``found``, once every memory in it has an owner: those stored before owners get
        ``shared`` (what they were), once per collection, so agents' filters see them."""
        if found.name in self._owned:
            return found
        if (found.metadata or {}).get(OWNERS_MARK) != 1:
            offset = 0
            while True:
                page = found.get(include=["metadatas"], limit=PAGE, offset=offset)
                ownerless = [
                    key
                    for key, meta in zip(page["ids"], page["metadatas"], strict=True)
                    if OWNER_KEY not in (meta or {})
                ]
                if ownerless:
                    found.update(ids=ownerless, metadatas=[{OWNER_KEY: SHARED}] * len(ownerless))
                if len(page["ids"]) < PAGE:
                    break
                offset += PAGE
            found.modify(metadata={**(found.metadata or {}), OWNERS_MARK: 1})
        self._owned.add(found.name)
        return found

    # ------------------------------------------------------------------ the port
    def upsert(self, collection: str, embedding: str, items: Sequence[Item]) -> None:
        if not items:
            return
        with self._session(write=True) as client:
            found = self._collection(client, collection, embedding)
            found.upsert(
                ids=[item.key for item in items],
                embeddings=np.stack([item.vector for item in items]),
                documents=[item.text for item in items],
                metadatas=[item.metadata for item in items],
            )

    def get(self, collection: str, keys: Sequence[str]) -> list[Memory]:
        with self._session(write=False) as client:
            found = self._collection(client, collection, None)
            if found is None or not keys:
                return []
            got = found.get(ids=list(keys), include=["documents", "metadatas"])
        by_key = {
            key: to_memory(key, text or "", meta, None)
            for key, text, meta in zip(got["ids"], got["documents"], got["metadatas"], strict=True)
        }
        return [by_key[key] for key in keys if key in by_key]

    def update_metadata(
        self, collection: str, key: str, changes: Mapping[str, Scalar | None]
    ) -> bool:
        with self._session(write=True) as client:
            found = self._collection(client, collection, None)
            if found is None or not found.get(ids=[key], include=[])["ids"]:
                return False
            found.update(ids=[key], metadatas=[dict(changes)])  # None removes a key
            return True

    def delete(self, collection: str, keys: Sequence[str]) -> int:
        with self._session(write=True) as client:
            found = self._collection(client, collection, None)
            if found is None or not keys:
                return 0
            present = found.get(ids=list(keys), include=[])["ids"]
            if present:
                found.delete(ids=present)
            return len(present)

    def query(
        self,
        collection: str,
        vector: npt.NDArray[np.float32],
        top_k: int,
        where: Where | None,
    ) -> list[Memory]:
        with self._session(write=False) as client:
            found = self._collection(client, collection, None)
            if found is None:
                return []
            if where is None:
                return [memory for memory, _ in self._ask(found, vector, top_k, None)]
            # Chroma compares the query with every record its filter lets through, so a
            # filter that lets thousands through (an agent's view of a large collection) is
            # slow; the nearest neighbours without a filter, filtered here, are cheap. Wider
            # and wider, and Chroma's own filtered search only when those hold too few.
            for fetch in (max(top_k * OVERFETCH, MIN_FETCH), max(top_k * WIDE_FETCH, WIDE_MIN)):
                answer = self._ask(found, vector, fetch, None)
                hits = [memory for memory, meta in answer if matches(meta, where)]
                if len(hits) >= top_k or len(answer) < fetch:
                    return hits[:top_k]
            return [memory for memory, _ in self._ask(found, vector, top_k, dict(where))]

    @staticmethod
    def _ask(
        found: Any, vector: npt.NDArray[np.float32], n: int, where: dict[str, Any] | None
    ) -> list[tuple[Memory, dict[str, Any]]]:
        """The ``n`` nearest (meeting ``where``), each with the metadata as stored."""
        answer = found.query(
            query_embeddings=[vector],
            n_results=n,
            where=where,
            include=["documents", "metadatas", "distances"],
        )
        return [
            (to_memory(key, text or "", meta, 1.0 - float(distance)), meta or {})
            for key, text, meta, distance in zip(
                answer["ids"][0],
                answer["documents"][0],
                answer["metadatas"][0],
                answer["distances"][0],
                strict=True,
            )
        ]

    def count(self, collection: str, where: Where | None = None) -> int:
        with self._session(write=False) as client:
            found = self._collection(client, collection, None)
            if found is None:
                return 0
            if where is None:
                return int(found.count())
            return len(found.get(where=dict(where), include=[])["ids"])

    def drop(self, collection: str) -> None:
        with self._session(write=True) as client:
            for candidate in (HASH_NAME, SENTENCE_NAME):
                try:
                    client.delete_collection(collection_name(collection, candidate))
                except Exception as exc:
                    if "not" not in str(exc).lower():  # absent is fine
                        raise
            self._embeddings.pop(collection, None)
