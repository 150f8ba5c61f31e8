"""Links between memories, in DuckDB: a projection of ``memory.linked`` / ``memory.unlinked`` /
``memory.deleted`` events, walked with a recursive query.

A link is directed (``a`` -relation-> ``b``); ``neighbors`` follows links both ways up to a
depth and says, for each memory reached, how far it is and through which relation it was
first reached.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb

from aios.store.projections import register_projection

SOURCE = "aios.memory"
LINKED = "memory.linked"
UNLINKED = "memory.unlinked"
DELETED = "memory.deleted"
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
    version = 1
    tables: tuple[str, ...] = ("memory_links",)

    def create(self, con: duckdb.DuckDBPyConnection) -> None:
        con.execute(
            "CREATE TABLE IF NOT EXISTS memory_links (a VARCHAR NOT NULL, b VARCHAR NOT NULL, "
            "relation VARCHAR NOT NULL, seq BIGINT NOT NULL, time TIMESTAMPTZ NOT NULL, "
            "PRIMARY KEY (a, b, relation))"
        )

    def apply(self, con: duckdb.DuckDBPyConnection, after_seq: int, upto_seq: int) -> None:
        rows = con.execute(
            """
            SELECT seq, time, type, payload->>'a', payload->>'b', payload->>'relation',
                   payload->>'key'
            FROM events
            WHERE seq > ? AND seq <= ? AND source = ? AND type IN (?, ?, ?)
            ORDER BY seq
            """,
            [after_seq, upto_seq, SOURCE, LINKED, UNLINKED, DELETED],
        ).fetchall()
        for seq, time, kind, a, b, relation, key in rows:  # in order: a later unlink wins
            if kind == LINKED:
                con.execute(
                    "INSERT INTO memory_links VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                    [a, b, relation, seq, time],
                )
            elif kind == UNLINKED:
                con.execute(
                    "DELETE FROM memory_links WHERE a = ? AND b = ? AND relation = ?",
                    [a, b, relation],
                )
            else:
                con.execute("DELETE FROM memory_links WHERE a = ? OR b = ?", [key, key])


def neighbors(
    con: duckdb.DuckDBPyConnection, key: str, relation: str | None, depth: int
) -> list[Neighbor]:
    """The memories within ``depth`` links of ``key`` (through ``relation`` only, when given),
    nearest first."""
    rows = con.execute(
        """
        WITH RECURSIVE walk(node, depth, relation, direction, path) AS (
            SELECT ?::VARCHAR, 0, NULL::VARCHAR, NULL::VARCHAR, [?::VARCHAR]
            UNION ALL
            SELECT CASE WHEN l.a = w.node THEN l.b ELSE l.a END,
                   w.depth + 1,
                   l.relation,
                   CASE WHEN l.a = w.node THEN 'out' ELSE 'in' END,
                   list_append(w.path, CASE WHEN l.a = w.node THEN l.b ELSE l.a END)
            FROM walk w
            JOIN memory_links l ON (l.a = w.node OR l.b = w.node)
                                AND (?::VARCHAR IS NULL OR l.relation = ?)
            WHERE w.depth < ?
              AND NOT list_contains(w.path, CASE WHEN l.a = w.node THEN l.b ELSE l.a END)
        )
        SELECT node, arg_min(relation, depth), min(depth), arg_min(direction, depth)
        FROM walk WHERE depth > 0
        GROUP BY node
        ORDER BY min(depth), node
        """,
        [key, key, relation, relation, depth],
    ).fetchall()
    return [Neighbor(str(n), str(r), int(d), str(way)) for n, r, d, way in rows]


register_projection(MemoryLinks())
