"""Who sees a memory: its owner (an agent, or ``shared``), the agents its owner shared it with,
and those whose memories it was linked into. The same rule as a ``where`` filter (for the
backends' queries) and as a check (for ``get``, ``neighbors`` and writes)."""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Any

from aios.memory.records import (
    LINK_PREFIX,
    OWNER_KEY,
    SHARE_PREFIX,
    SHARED,
    Memory,
    MemoryInputError,
    Metadata,
    Where,
)

MAX_AGENT = 256


def is_agent_name(name: object) -> bool:
    """Whether ``name`` can name an agent: what failures carry as their ``agent`` label or
    source, 1-256 printable characters, not all blank, and not ``shared`` (the owner of what
    every agent sees is no agent)."""
    return (
        isinstance(name, str)
        and bool(name.strip())
        and len(name) <= MAX_AGENT
        and name != SHARED
        and not any(unicodedata.category(c).startswith("C") for c in name)
    )


def check_agent(name: str, what: str = "agent") -> str:
    """``name`` if it can name an agent; MemoryInputError otherwise (``shared`` included: it
    names what every agent sees, and a view or owner by that name could change it)."""
    if name == SHARED:
        raise MemoryInputError(
            f"{what} {name!r}: reserved, it names what every agent sees and is no agent"
        )
    if not is_agent_name(name):
        raise MemoryInputError(f"{what} {name!r}: 1-{MAX_AGENT} printable characters")
    return name


def share_key(agent: str) -> str:
    return SHARE_PREFIX + agent


def link_key(agent: str) -> str:
    return LINK_PREFIX + agent


def visible_where(agent: str) -> dict[str, Any]:
    """The memories ``agent`` sees, as a ``where`` both backends apply while they search (so a
    query's ``top_k`` counts only what the agent may see). Memories stored before owners carry
    ``owner: shared`` (the backends see to it), so no clause is needed for them."""
    return {
        "$or": [
            {OWNER_KEY: {"$in": sorted({agent, SHARED})}},
            {share_key(agent): True},
            {link_key(agent): True},
        ]
    }


def restrict(where: Where | None, agent: str | None) -> Where | None:
    """``where`` as ``agent`` may ask it: and-ed with what the agent sees, so no clause of
    ``where`` (an ``owner`` or an ``$or``) can reach beyond it. None (the operator): as is."""
    if agent is None:
        return where
    scope = visible_where(agent)
    return scope if where is None else {"$and": [scope, dict(where)]}


def can_see(memory: Memory, agent: str | None) -> bool:
    """Whether ``agent`` (None: the operator) sees ``memory``: the rule of ``visible_where``."""
    return (
        agent is None
        or memory.owner in (agent, SHARED)
        or agent in memory.shared_with
        or agent in memory.linked_for
    )


def as_seen_by(memory: Memory, agent: str | None) -> Memory:
    """``memory`` as ``agent`` is shown it: whom else it is shared with only for its owner."""
    if agent is None or memory.owner == agent or not (memory.shared_with or memory.linked_for):
        return memory
    return replace(memory, shared_with=(), linked_for=())


def grant_metadata(memory: Memory | None) -> Metadata:
    """The metadata that keeps ``memory``'s shares and link grants when it is stored again."""
    if memory is None:
        return {}
    found: Metadata = {share_key(agent): True for agent in memory.shared_with}
    found.update({link_key(agent): True for agent in memory.linked_for})
    return found


def grant_changes(
    have: Iterable[str], want: Iterable[str], key: Callable[[str], str]
) -> dict[str, Any]:
    """The metadata changes that turn the grants ``have`` into ``want`` (None removes one)."""
    before, after = set(have), set(want)
    changes: dict[str, Any] = {key(agent): True for agent in sorted(after - before)}
    changes.update({key(agent): None for agent in sorted(before - after)})
    return changes
