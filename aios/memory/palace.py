"""``MemoryPalace``: what AIOS remembers, found again by meaning and linked. ``open(...)`` is the
operator's palace and sees everything; ``palace.for_agent("writer")`` is one agent's view: its
own memories, the shared ones, and those shared or linked with it (the class says exactly);
``palace.shared_only()`` reads the shared ones only."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from aios.bus import EventBus
from aios.config import AIOSConfig, load_config
from aios.home import HomePaths
from aios.locking import FileLock, file_lock
from aios.memory.access import (
    as_seen_by,
    can_see,
    check_agent,
    grant_changes,
    grant_metadata,
    link_key,
    restrict,
    share_key,
    visible_where,
)
from aios.memory.embedding import Embedder, embedder
from aios.memory.links import (
    DELETED,
    LINKED,
    MAX_DEPTH,
    SHARED_WITH,
    SOURCE,
    UNLINKED,
    UNSHARED_WITH,
    Neighbor,
    edges_within,
    granted,
    linked_into,
    walk,
)
from aios.memory.records import (
    OWNER_KEY,
    SHARED,
    Item,
    Memory,
    MemoryAccessError,
    MemoryBackend,
    MemoryInputError,
    Where,
    check_where,
    matches,
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
    if "." in config.memory.backend:  # a plugin's (an aios.memory_backends entry point)
        from aios.plugins.memory import plugin_backend

        return plugin_backend(config.memory.backend, paths, config)
    if config.memory.backend == "json":
        from aios.memory.json_backend import JsonBackend

        return JsonBackend(paths.root / "memory")
    from aios.memory.chroma_backend import ChromaBackend

    url = chroma_url(paths, config)
    if url:
        return ChromaBackend(url=url)
    return ChromaBackend(path=paths.root / "chroma")


class MemoryPalace:
    """Store, find by meaning, link and walk memories of one collection, as the operator
    (``agent`` None) or as one agent (``for_agent``).

    Every memory has an owner: an agent, or ``shared`` (memories stored before owners count as
    shared). An agent's view sees a memory when, and only when:

    - its owner is ``shared`` or the agent itself;
    - its owner (or the operator) shared it with the agent: ``share(key, agent)``; or
    - its owner (or the operator) linked it into a memory of the agent: ``link(a, b, ...)``
      with ``a`` private and ``b`` owned by the agent lets that agent see ``a`` while the link
      stands (a link into a ``shared`` memory shares nothing: use ``share``).

    The rule is part of the filter the backend searches with, so ``query`` finds the ``top_k``
    the agent may see, and no ``where`` (an ``owner``, an ``$or``) reaches past it; the palace
    checks every answer against the rule again (and against ``where``), so a backend that
    filters loosely shows no more. ``get`` and ``neighbors`` give nothing for a memory the view
    does not see, as for one that does not exist; a walk never passes through one, and follows
    only the links of this collection. A view writes as its agent: ``store`` makes the agent's
    own memories and refuses a key it does not own; it deletes, shares and unshares only its
    own; it links two memories it sees when ``a`` is its own, or ``a`` is shared and ``b`` its
    own, and unlinks them when either is its own. ``shared`` names no agent: there is no view
    of that name, and ``shared_only()`` reads the shared memories without changing any. The
    operator's palace sees and may change everything (the CLI and the learner use it).
    """

    def __init__(
        self,
        backend: MemoryBackend,
        embedding: Embedder,
        *,
        bus: EventBus,
        paths: HomePaths,
        collection: str = "memories",
        agent: str | None = None,
    ) -> None:
        self.backend, self.embedding = backend, embedding
        self.bus, self.paths = bus, paths
        if not re.match(r"^[a-z][a-z0-9_-]{2,62}$", collection):
            raise MemoryInputError(
                f"collection {collection!r}: 3-63 lowercase letters, digits, - and _"
            )
        self.collection = collection
        self.agent = None if agent is None else check_agent(agent)

    def _view(self, agent: str) -> MemoryPalace:
        view = MemoryPalace(
            self.backend, self.embedding, bus=self.bus, paths=self.paths, collection=self.collection
        )
        view.agent = agent
        return view

    @classmethod
    def open(
        cls,
        collection: str = "memories",
        *,
        paths: HomePaths | None = None,
        config: AIOSConfig | None = None,
        bus: EventBus | None = None,
        agent: str | None = None,
    ) -> MemoryPalace:
        """The palace of this ``AIOS_HOME`` as ``[memory]`` configures it (``agent``'s view of
        it, when given)."""
        from aios.runtime import default_bus

        paths = paths or HomePaths.current()
        config = config or load_config(paths)
        return cls(
            make_backend(paths, config),
            embedder(config.memory.embedding),
            bus=bus or default_bus(),
            paths=paths,
            collection=collection,
            agent=agent,
        )

    def for_agent(self, agent: str) -> MemoryPalace:
        """``agent``'s view of this palace (same backend). An agent's view is no way into
        another's. MemoryInputError for ``shared``, which names no agent (``shared_only``)."""
        check_agent(agent)
        if self.agent is not None and agent != self.agent:
            whose = "the shared" if self.agent == SHARED else f"{self.agent}'s"
            raise MemoryAccessError(f"{whose} view of the memories cannot become {agent}'s")
        return self._view(agent)

    def shared_only(self) -> MemoryPalace:
        """The view every agent has in common: the shared memories only, to read (it stores,
        deletes, shares and links nothing)."""
        if self.agent not in (None, SHARED):
            raise MemoryAccessError(f"{self.agent}'s view of the memories cannot become another")
        return self._view(SHARED)

    @property
    def _as(self) -> str:
        if self.agent == SHARED:
            return " among the shared ones"
        return "" if self.agent is None else f" for {self.agent}"

    def _writable(self, doing: str) -> None:
        """MemoryAccessError for the shared view, which only reads."""
        if self.agent == SHARED:
            raise MemoryAccessError(
                f"{doing}: the view of the shared memories only reads (the operator's palace "
                "changes them)"
            )

    # ------------------------------------------------------------------ memories
    def store(
        self,
        key: str,
        value: str | Mapping[str, Any],
        *,
        metadata: Mapping[str, Any] | None = None,
        owner: str | None = None,
    ) -> Memory:
        """Remember ``value`` under ``key`` (replacing what was there); returns it. See
        ``store_many`` for ``owner``."""
        self.store_many([(key, value, metadata)], owner=owner)
        found = self.get(key)
        assert found is not None
        return found

    def store_many(
        self,
        entries: Iterable[tuple[str, str | Mapping[str, Any], Mapping[str, Any] | None]],
        *,
        owner: str | None = None,
        batch: int = 1000,
    ) -> int:
        """Remember many ``(key, value, metadata)`` at once; returns how many. ``owner``: an
        agent or ``shared`` (the operator's default); an agent's view stores as its agent and
        takes no other. Replacing a memory keeps whom it was shared with. Raises
        MemoryAccessError, before writing its batch, for a key the view does not own."""
        self._writable("store")
        if self.agent is None:
            owner = SHARED if owner in (None, SHARED) else check_agent(owner, "owner")
        elif owner not in (None, self.agent):
            raise MemoryAccessError(
                f"owner {owner!r}: {self.agent}'s view stores {self.agent}'s memories only"
            )
        else:
            owner = self.agent
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
        keys = [key for key, _, _ in pending]
        before = {memory.key: memory for memory in self.backend.get(self.collection, keys)}
        if self.agent is not None:
            for key in keys:
                if key in before and before[key].owner != self.agent:
                    # Says the key is taken, never by whom nor what it holds.
                    raise MemoryAccessError(
                        f"key {key!r}: taken by a memory {self.agent} does not own"
                    )
        vectors = self.embedding.embed([text for _, text, _ in pending])
        # A key stored again by its owner keeps its shares and link grants; a key taken over by
        # another owner (only the operator can) is another memory: the old one's shares, links
        # and grants go, as when it is deleted, so nobody keeps seeing what the key now holds.
        replaced = {
            key
            for key, _, meta in pending
            if key in before and before[key].owner != meta.get(OWNER_KEY)
        }
        items = [
            Item(
                key,
                text,
                vectors[i],
                meta if key in replaced else meta | grant_metadata(before.get(key)),
            )
            for i, (key, text, meta) in enumerate(pending)
        ]
        if not replaced:
            self.backend.upsert(self.collection, self.embedding.name, items)
            return len(items)
        with self._grants_lock():
            with open_store(self.paths) as con:
                into = sorted(
                    {k for key in replaced for k in linked_into(con, self.collection, key)}
                )
            for key in sorted(replaced):  # its links end with it
                self.bus.emit(DELETED, {"collection": self.collection, "key": key}, source=SOURCE)
            # Gone first: a backend's upsert may merge metadata (Chroma's does), grants too.
            self.backend.delete(self.collection, sorted(replaced))
            self.backend.upsert(self.collection, self.embedding.name, items)
            self._refresh_link_grants(into)
        return len(items)

    def _read(self, key: str) -> Memory | None:
        """The memory at ``key`` if this palace sees it."""
        found = self.backend.get(self.collection, [check_key(key)])
        return found[0] if found and can_see(found[0], self.agent) else None

    def get(self, key: str) -> Memory | None:
        """The memory at ``key``; None if there is none, or this view does not see it."""
        found = self._read(key)
        return None if found is None else as_seen_by(found, self.agent)

    def _mine(self, key: str, doing: str) -> Memory:
        """The memory at ``key`` that this palace may change (an agent: its own)."""
        found = self._read(key)
        if found is None:
            raise MemoryAccessError(f"{doing} {key!r}: no such memory{self._as}")
        return self._owned(found, doing)

    def _owned(self, found: Memory, doing: str) -> Memory:
        if self.agent is not None and found.owner != self.agent:
            whose = "every agent's (shared)" if found.owner == SHARED else f"{found.owner}'s"
            raise MemoryAccessError(
                f"{doing} {found.key!r}: {whose}, not {self.agent}'s; its owner or the operator may"
            )
        return found

    def delete(self, key: str) -> bool:
        """Forget ``key`` and its links; False if there was nothing to forget (or nothing this
        view sees). MemoryAccessError for a memory the view sees but does not own."""
        self._writable("delete")
        found = self._read(key)
        if found is None:
            return False
        self._owned(found, "delete")
        with self._grants_lock():
            with open_store(self.paths) as con:
                into = linked_into(con, self.collection, key)
            gone = self.backend.delete(self.collection, [key]) > 0
            if gone:
                self.bus.emit(DELETED, {"collection": self.collection, "key": key}, source=SOURCE)
                self._refresh_link_grants(into)
        return gone

    def query(self, text: str, top_k: int = 5, where: Where | None = None) -> list[Memory]:
        """The ``top_k`` memories most similar to ``text`` (meeting ``where``) that this palace
        sees, best first."""
        if not isinstance(text, str) or not text.strip():
            raise MemoryInputError("query: some text to look for")
        if not 1 <= top_k <= MAX_TOP_K:
            raise MemoryInputError(f"top_k: from 1 to {MAX_TOP_K}")
        check_where(where)
        [vector] = self.embedding.embed([text])
        return [as_seen_by(memory, self.agent) for memory in self._search(vector, top_k, where)]

    def _search(self, vector: Any, top_k: int, where: Where | None) -> list[Memory]:
        """The ``top_k`` nearest that this palace sees and that meet ``where``. The backend is
        asked with the filter, and each answer is checked again: one that filters loosely (a
        plugin's) is asked for more until ``top_k`` are kept or it has no more."""
        scope = restrict(where, self.agent)
        ask, total = top_k, None
        while True:
            found = self.backend.query(self.collection, vector, ask, scope)
            kept = [memory for memory in found if self._admits(memory, where)]
            if len(kept) >= top_k or len(found) < ask:
                return kept[:top_k]
            total = self.backend.count(self.collection) if total is None else total
            if ask >= total:
                return kept
            ask = min(max(ask * 4, 64), total)

    def _admits(self, memory: Memory, where: Where | None) -> bool:
        return can_see(memory, self.agent) and matches(
            {**memory.metadata, OWNER_KEY: memory.owner}, where
        )

    def count(self) -> int:
        """How many memories this palace sees. An agent's view counts what it is shown (every
        candidate checked against the rule), which reads every memory it may see."""
        total = self.backend.count(self.collection)
        if self.agent is None or total == 0:
            return total
        [vector] = self.embedding.embed([self.collection])
        found = self.backend.query(self.collection, vector, total, visible_where(self.agent))
        return sum(1 for memory in found if can_see(memory, self.agent))

    # ------------------------------------------------------------------ sharing
    def share(self, key: str, agent: str) -> None:
        """Let ``agent`` see the private memory ``key`` (its owner's view or the operator may);
        a ``memory.shared`` event records it. MemoryAccessError if this view may not."""
        self._writable("share")
        memory = self._mine(key, "share")
        if memory.owner == SHARED:
            raise MemoryInputError(f"share {key!r}: it is shared, every agent sees it")
        if agent in (memory.owner, SHARED):
            raise MemoryInputError(
                f"share {key!r} with {agent!r}: name an agent other than its owner (for every "
                "agent, the operator stores it with owner shared)"
            )
        agent = check_agent(agent)
        self.backend.update_metadata(self.collection, key, {share_key(agent): True})
        self._record(SHARED_WITH, key, agent)

    def unshare(self, key: str, agent: str) -> None:
        """Take back ``share(key, agent)`` (a link into ``agent``'s memories still shows it)."""
        self._writable("unshare")
        agent = check_agent(agent)
        self._mine(key, "unshare")
        self.backend.update_metadata(self.collection, key, {share_key(agent): None})
        self._record(UNSHARED_WITH, key, agent)

    def _record(self, kind: str, key: str, agent: str) -> None:
        payload = {"collection": self.collection, "key": key, "agent": agent}
        self.bus.emit(kind, payload | {"by": self.agent or "operator"}, source=SOURCE)

    # ------------------------------------------------------------------ links
    def link(self, a: str, b: str, relation: str) -> None:
        """Record ``a`` -relation-> ``b``. The operator may link any keys (of any collection);
        an agent's view, two memories it sees, ``a`` its own (or shared, and ``b`` its own). A
        private ``a`` linked into another agent's memory is visible to that agent until
        unlinked. MemoryAccessError if this view may not."""
        self._writable("link")
        self._check_link(a, b, relation)
        found = self._ends(a, b, "link")
        if self.agent is not None and found[a].owner != self.agent:
            # Only a's owner puts it into others' memories; a shared a, only into the view's own
            # b (a link between memories of others would change what they see).
            self._owned(found[a] if found[a].owner != SHARED else found[b], "link")
        source, target = found.get(a), found.get(b)
        grant = None
        if source and target and source.owner != SHARED and target.owner != SHARED:
            grant = target.owner if target.owner != source.owner else None
        payload = {"a": a, "b": b, "relation": relation, "collection": self.collection}
        with self._grants_lock():
            self.bus.emit(LINKED, payload | ({"grant": grant} if grant else {}), source=SOURCE)
            if source is not None and source.owner != SHARED:
                self._refresh_link_grants([a])

    def unlink(self, a: str, b: str, relation: str) -> None:
        """Remove ``a`` -relation-> ``b`` (an agent's view: of two memories it sees, one its
        own). MemoryAccessError if this view may not."""
        self._writable("unlink")
        self._check_link(a, b, relation)
        found = self._ends(a, b, "unlink")
        if self.agent is not None and self.agent not in (found[a].owner, found[b].owner):
            self._owned(found[a], "unlink")
        payload = {"a": a, "b": b, "relation": relation, "collection": self.collection}
        with self._grants_lock():
            self.bus.emit(UNLINKED, payload, source=SOURCE)
            self._refresh_link_grants([a])

    def _ends(self, a: str, b: str, doing: str) -> dict[str, Memory]:
        """The memories at ``a`` and ``b`` that exist; for an agent's view, both must and it
        must see them."""
        found = {m.key: m for m in self.backend.get(self.collection, [a, b])}
        if self.agent is not None:
            for key in (a, b):
                if key not in found or not can_see(found[key], self.agent):
                    raise MemoryAccessError(f"{doing} {key!r}: no such memory{self._as}")
        return found

    def _grants_lock(self) -> FileLock:
        """Held while a link changes and the grants it implies are written, so two processes
        cannot leave a memory with the grants of a link state that no longer stands."""
        return file_lock(self.paths.root / "memory-grants.lock")

    def _refresh_link_grants(self, keys: list[str]) -> None:
        """Bring the link grants stored on ``keys`` level with the links that stand."""
        if not keys:
            return
        with open_store(self.paths) as con:
            wanted = granted(con, self.collection, keys)
        for memory in self.backend.get(self.collection, keys):
            changes = grant_changes(memory.linked_for, wanted.get(memory.key, ()), link_key)
            if changes:
                self.backend.update_metadata(self.collection, memory.key, changes)

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
        """What ``key`` is linked to (both ways), up to ``depth`` links away, nearest first;
        for an agent's view, only memories it sees (none if it does not see ``key``)."""
        check_key(key)
        if not 1 <= depth <= MAX_DEPTH:
            raise MemoryInputError(f"depth: from 1 to {MAX_DEPTH}")
        if self.agent is not None and self._read(key) is None:
            return []
        with open_store(self.paths) as con:
            edges = edges_within(con, self.collection, key, relation, depth)
        return walk(edges, key, depth, None if self.agent is None else self._visible)

    def _visible(self, keys: list[str]) -> set[str]:
        return {m.key for m in self.backend.get(self.collection, keys) if can_see(m, self.agent)}
