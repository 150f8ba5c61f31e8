"""What a memory is, what a backend must do with it, and the ``where`` filters both backends
understand.

A memory is a key, the text that was embedded, the value that was stored (text or a JSON
object), flat metadata (strings, numbers, booleans), an owner and whom else it is shown to
(``aios.memory.access``). ``where`` uses Chroma's syntax: ``{"state": "verified"}``,
``{"count": {"$gte": 3}}``, ``{"state": {"$in": [...]}}``, ``{"$and": [...]}``,
``{"$or": [...]}``; operators ``$eq $ne $gt $gte $lt $lte $in $nin``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from aios.errors import InputError

Scalar = str | int | float | bool
Metadata = dict[str, Scalar]
Where = Mapping[str, Any]
# Metadata keys AIOS keeps for itself: every key starting with "_", and the owner.
VALUE_KEY = "_value"
OWNER_KEY = "owner"
SHARE_PREFIX = "_share:"  # + agent: True when the owner shared the memory with that agent
LINK_PREFIX = "_link:"  # + agent: True while a link puts it into that agent's memories
SHARED = "shared"


class MemoryInputError(InputError):
    """A memory, key, filter or value that cannot be stored or asked for."""


class MemoryAccessError(MemoryInputError):
    """An agent's view asked for a memory it cannot see, or to change one it does not own."""


@dataclass(frozen=True)
class Memory:
    """One stored memory; ``similarity`` (cosine, 1 is identical) when it answers a query.

    ``owner`` is an agent or ``shared``; ``shared_with`` the agents its owner shared it with,
    ``linked_for`` those it was linked into the memories of (empty when an agent's view shows
    a memory it does not own: who else sees it is the owner's business)."""

    key: str
    text: str
    value: Any
    metadata: Metadata = field(default_factory=dict)
    owner: str = SHARED
    similarity: float | None = None
    shared_with: tuple[str, ...] = ()
    linked_for: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        found: dict[str, Any] = {
            "key": self.key,
            "text": self.text,
            "value": self.value,
            "metadata": self.metadata,
            "owner": self.owner,
        }
        if self.shared_with:
            found["shared_with"] = list(self.shared_with)
        if self.linked_for:
            found["linked_for"] = list(self.linked_for)
        if self.similarity is not None:
            found["similarity"] = round(self.similarity, 4)
        return found


@dataclass(frozen=True)
class Item:
    """What a backend stores: the key, the text, its vector and the metadata (value inside)."""

    key: str
    text: str
    vector: npt.NDArray[np.float32]
    metadata: Metadata


class MemoryBackend(Protocol):
    """Where memories live. Collections are created on first use with their embedding's name;
    every call is safe across processes."""

    name: str

    def upsert(self, collection: str, embedding: str, items: Sequence[Item]) -> None: ...
    def get(self, collection: str, keys: Sequence[str]) -> list[Memory]: ...
    def update_metadata(
        self, collection: str, key: str, changes: Mapping[str, Scalar | None]
    ) -> bool:
        """Set (None: remove) metadata keys of ``key``; False if there is no such memory."""
        ...

    def delete(self, collection: str, keys: Sequence[str]) -> int: ...
    def query(
        self,
        collection: str,
        vector: npt.NDArray[np.float32],
        top_k: int,
        where: Where | None,
    ) -> list[Memory]: ...
    def count(self, collection: str, where: Where | None = None) -> int: ...
    def drop(self, collection: str) -> None: ...


def pack(value: Any, metadata: Mapping[str, Any] | None, owner: str) -> tuple[str, Metadata]:
    """The text to embed and the metadata to store for ``value``: a string is its own text; an
    object is embedded by its ``text`` field (else its JSON) and kept whole as JSON."""
    import orjson

    meta: Metadata = {}
    for key, item in (metadata or {}).items():
        if key == OWNER_KEY or key.startswith("_"):
            raise MemoryInputError(f"metadata.{key}: reserved by AIOS")
        if not isinstance(item, Scalar) or (isinstance(item, float) and item != item):
            raise MemoryInputError(f"metadata.{key}: a string, number or boolean")
        meta[key] = item
    if isinstance(value, str):
        text = value
    elif isinstance(value, Mapping):
        try:
            encoded = orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
        except TypeError as exc:
            raise MemoryInputError(f"value: not JSON ({exc})") from None
        meta[VALUE_KEY] = encoded
        text = str(value["text"]) if isinstance(value.get("text"), str) else encoded
    else:
        raise MemoryInputError("value: a string or a JSON object")
    if not text.strip():
        raise MemoryInputError("value: nothing to remember (empty text)")
    meta[OWNER_KEY] = owner
    return text, meta


def to_memory(
    key: str, text: str, metadata: Mapping[str, Any] | None, similarity: float | None
) -> Memory:
    """A Memory from what a backend stored (the inverse of ``pack``)."""
    import orjson

    meta = dict(metadata or {})
    owner = str(meta.pop(OWNER_KEY, SHARED))  # none: made before owners, seen by every agent
    raw = meta.pop(VALUE_KEY, None)
    value = orjson.loads(raw) if isinstance(raw, str) else text
    granted: dict[str, list[str]] = {SHARE_PREFIX: [], LINK_PREFIX: []}
    for name in [name for name in meta if name.startswith("_")]:
        flag = meta.pop(name)
        for prefix, agents in granted.items():
            if name.startswith(prefix) and flag is True:
                agents.append(name[len(prefix) :])
    return Memory(
        key,
        text,
        value,
        meta,
        owner,
        similarity,
        tuple(sorted(granted[SHARE_PREFIX])),
        tuple(sorted(granted[LINK_PREFIX])),
    )


_OPERATORS = frozenset({"$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin"})


def check_where(where: Where | None) -> None:
    """Raise MemoryInputError naming the part of ``where`` that is not a valid filter."""
    if where is None:
        return
    if not isinstance(where, Mapping) or not where:
        raise MemoryInputError('where: a non-empty object, e.g. {"state": "verified"}')
    for key, condition in where.items():
        if key in ("$and", "$or"):
            if not isinstance(condition, list) or len(condition) < 2:
                raise MemoryInputError(f"where.{key}: a list of at least two filters")
            for part in condition:
                check_where(part)
            continue
        if key.startswith("$"):
            raise MemoryInputError(f"where: unknown operator {key!r} (use $and or $or at the top)")
        if key.startswith("_"):
            raise MemoryInputError(f"where.{key}: reserved by AIOS")
        if isinstance(condition, Mapping):
            if len(condition) != 1:
                raise MemoryInputError(f'where.{key}: one operator, e.g. {{"$gte": 3}}')
            [(op, value)] = condition.items()
            if op not in _OPERATORS:
                raise MemoryInputError(f"where.{key}: unknown operator {op!r}")
            if op in ("$in", "$nin") and not isinstance(value, list):
                raise MemoryInputError(f"where.{key}.{op}: a list")
        elif not isinstance(condition, Scalar):
            raise MemoryInputError(
                f"where.{key}: a string, number or boolean, or {{operator: ...}}"
            )


def matches(metadata: Mapping[str, Any], where: Where | None) -> bool:
    """Whether ``metadata`` meets ``where`` (a missing key meets only ``$ne`` and ``$nin``)."""
    if where is None:
        return True
    for key, condition in where.items():
        if key == "$and":
            if not all(matches(metadata, part) for part in condition):
                return False
            continue
        if key == "$or":
            if not any(matches(metadata, part) for part in condition):
                return False
            continue
        op, expected = (
            next(iter(condition.items()))
            if isinstance(condition, Mapping)
            else (
                "$eq",
                condition,
            )
        )
        if not _holds(metadata.get(key), op, expected, key in metadata):
            return False
    return True


def _holds(value: Any, op: str, expected: Any, present: bool) -> bool:
    if op == "$ne":
        return not present or value != expected
    if op == "$nin":
        return not present or value not in expected
    if not present:
        return False
    if op == "$eq":
        return _same(value, expected)
    if op == "$in":
        return any(_same(value, item) for item in expected)
    try:
        if op == "$gt":
            return bool(value > expected)
        if op == "$gte":
            return bool(value >= expected)
        if op == "$lt":
            return bool(value < expected)
        return bool(value <= expected)
    except TypeError:  # a number compared with a string: not a match
        return False


def _same(value: Any, expected: Any) -> bool:
    """Equal, numbers as numbers; a string never equals a number, nor a boolean a number."""
    numbers = (int, float)
    if isinstance(value, bool) or isinstance(expected, bool):
        return type(value) is type(expected) and value == expected
    if isinstance(value, numbers) and isinstance(expected, numbers):
        return bool(value == expected)
    return type(value) is type(expected) and value == expected
