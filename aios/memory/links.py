"""Links between memories, in DuckDB: a projection of ``memory.linked`` / ``memory.unlinked`` /
``memory.deleted`` events. A link is directed (``a`` -relation-> ``b``), belongs to one
collection, and is walked both ways within it; one that put a private ``a`` into another agent's
``b`` names that agent (``grant_to``). Links recorded before collections were (collection
``''``) carry no grant and are walked in every collection, as they always were."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import duckdb

from aios.store.projections import register_projection

SOURCE = "aios.memory"
LINKED = "memory.linked"
UNLINKED = "memory.unlinked"
DELETED = "memory.deleted"
SHARED_WITH = "memory.shared"  # the record of a share; the memory's metadata enforces it
UNSHARED_WITH = "memory.unshared"
MAX_DEPTH = 8


@dataclass(frozen=True)
class Neighbor:
    key: str
    relation: str
    depth: int
    direction: str  # "out" (key -> it) or "in" (it -> key), for the link that reached it


class MemoryLinks:
    """The ``memory_links`` table: one row per link that stands."""

    name = "memory_links"
    # 2: the collection and the agent a link let see ``a``; 3: one link per collection
    version = 3
    tables: tuple[str, ...] = ("memory_links",)

    def create(self, con: duckdb.DuckDBPyConnection) -> None:
        con.execute(
            "CREATE TABLE IF NOT EXISTS memory_links (a VARCHAR NOT NULL, b VARCHAR NOT NULL, "
            "relation VARCHAR NOT NULL, seq BIGINT NOT NULL, time TIMESTAMPTZ NOT NULL, "
            "collection VARCHAR NOT NULL, grant_to VARCHAR, "
            "PRIMARY KEY (collection, a, b, relation))"
        )

    def apply(self, con: duckdb.DuckDBPyConnection, after_seq: int, upto_seq: int) -> None:
        rows = con.execute(
            """
            SELECT seq, time, type, payload->>'a', payload->>'b', payload->>'relation',
                   payload->>'key', payload->>'collection', payload->>'grant'
            FROM events
            WHERE seq > ? AND seq <= ? AND source = ? AND type IN (?, ?, ?)
            ORDER BY seq
            """,
            [after_seq, upto_seq, SOURCE, LINKED, UNLINKED, DELETED],
        ).fetchall()
        for seq, time, kind, a, b, relation, key, collection, grant in rows:  # a later one wins
            collection = collection or ""
            if kind == LINKED:
                # Linking again says again whom the link lets see ``a`` (its owners may differ).
                con.execute(
                    "INSERT INTO memory_links VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO UPDATE "
                    "SET grant_to = excluded.grant_to",
                    [a, b, relation, seq, time, collection, grant if collection else None],
                )
            elif kind == UNLINKED:
                con.execute(
                    "DELETE FROM memory_links WHERE collection = ? AND a = ? AND b = ? "
                    "AND relation = ?",
                    [collection, a, b, relation],
                )
            else:  # the memory is gone from its collection: so are its links there
                con.execute(
                    "DELETE FROM memory_links WHERE collection IN (?, '') AND (a = ? OR b = ?)",
                    [collection, key, key],
                )


def edges_within(
    con: duckdb.DuckDBPyConnection, collection: str, key: str, relation: str | None, depth: int
) -> list[tuple[str, str, str]]:
    """The links (a, b, relation) of ``collection`` a walk of ``depth`` from ``key`` can follow
    (through ``relation`` only, when given)."""
    rows = con.execute(
        """
        WITH RECURSIVE here AS (
            SELECT a, b, relation FROM memory_links
            WHERE collection IN ($collection, '')
              AND ($relation::VARCHAR IS NULL OR relation = $relation)
        ),
        reach(node, depth) AS (
            SELECT $key::VARCHAR, 0
            UNION
            SELECT CASE WHEN l.a = r.node THEN l.b ELSE l.a END, r.depth + 1
            FROM reach r JOIN here l ON l.a = r.node OR l.b = r.node
            WHERE r.depth < $depth - 1
        )
        SELECT DISTINCT l.a, l.b, l.relation
        FROM here l JOIN (SELECT DISTINCT node FROM reach) n ON l.a = n.node OR l.b = n.node
        """,
        {"collection": collection, "relation": relation, "key": key, "depth": depth},
    ).fetchall()
    return [(str(a), str(b), str(r)) for a, b, r in rows]


def walk(
    edges: Iterable[tuple[str, str, str]],
    key: str,
    depth: int,
    visible: Callable[[list[str]], set[str]] | None = None,
) -> list[Neighbor]:
    """The memories within ``depth`` links of ``key``, nearest first, each with the link that
    first reached it; with ``visible``, only those it keeps, and never through the others."""
    adjacent: dict[str, list[tuple[str, str, str]]] = {}
    for a, b, relation in edges:
        adjacent.setdefault(a, []).append((relation, "out", b))
        adjacent.setdefault(b, []).append((relation, "in", a))
    seen, frontier = {key}, [key]
    found: list[Neighbor] = []
    for level in range(1, depth + 1):
        reached: dict[str, tuple[str, str]] = {}
        for node in frontier:
            for relation, direction, other in adjacent.get(node, []):
                if other not in seen:
                    reached[other] = min(
                        reached.get(other, (relation, direction)), (relation, direction)
                    )
        if not reached:
            break
        seen.update(reached)
        keep = set(reached) if visible is None else visible(sorted(reached))
        frontier = sorted(node for node in reached if node in keep)
        for node in frontier:
            relation, direction = reached[node]
            found.append(Neighbor(node, relation, level, direction))
    return found


def granted(
    con: duckdb.DuckDBPyConnection, collection: str, keys: list[str]
) -> dict[str, set[str]]:
    """Key -> the agents the links standing from it (in ``collection``) let see it."""
    rows = con.execute(
        """
        SELECT a, grant_to FROM memory_links
        WHERE collection = ? AND grant_to IS NOT NULL AND a IN (SELECT unnest(?::VARCHAR[]))
        """,
        [collection, keys],
    ).fetchall()
    found: dict[str, set[str]] = {}
    for a, agent in rows:
        found.setdefault(str(a), set()).add(str(agent))
    return found


def linked_into(con: duckdb.DuckDBPyConnection, collection: str, key: str) -> list[str]:
    """The memories that a link into ``key`` (in ``collection``) let another agent see."""
    rows = con.execute(
        "SELECT DISTINCT a FROM memory_links WHERE collection = ? AND b = ? "
        "AND grant_to IS NOT NULL ORDER BY a",
        [collection, key],
    ).fetchall()
    return [str(a) for (a,) in rows]


register_projection(MemoryLinks())
