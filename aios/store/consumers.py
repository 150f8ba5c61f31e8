"""Consumers of the log that keep their place in the store, and reading events back from it.

A consumer (the reactor, say) records the ``seq`` of the last event it handled; events come
back as ``Event`` objects rebuilt from the ``events`` projection.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import duckdb
import orjson

from aios.event import Event, Severity

_DDL = """
CREATE TABLE IF NOT EXISTS _aios_consumers (
    name    VARCHAR PRIMARY KEY,
    seq     BIGINT NOT NULL,
    updated TIMESTAMPTZ NOT NULL
)
"""
EVENT_COLUMNS = (
    "seq, id, time, type, source, severity, labels, payload, correlation_id, causation_id"
)


def get_position(con: duckdb.DuckDBPyConnection, name: str) -> int | None:
    """The ``seq`` consumer ``name`` last handled, or None if it never ran."""
    con.execute(_DDL)
    rows = con.execute("SELECT seq FROM _aios_consumers WHERE name = ?", [name]).fetchall()
    return int(rows[0][0]) if rows else None


def set_position(con: duckdb.DuckDBPyConnection, name: str, seq: int) -> None:
    con.execute(_DDL)
    con.execute("INSERT OR REPLACE INTO _aios_consumers VALUES (?, ?, now())", [name, seq])


def last_seq(con: duckdb.DuckDBPyConnection) -> int:
    rows = con.execute("SELECT coalesce(max(seq), 0) FROM events").fetchall()
    return int(rows[0][0])


def seq_at(con: duckdb.DuckDBPyConnection, when: datetime) -> int:
    """The ``seq`` just before the first event at or after ``when``."""
    rows = con.execute(
        "SELECT coalesce(min(seq), (SELECT coalesce(max(seq), 0) + 1 FROM events)) - 1 "
        "FROM events WHERE time >= ?",
        [when],
    ).fetchall()
    return int(rows[0][0])


def event_from_row(row: tuple[Any, ...]) -> tuple[int, Event]:
    seq, eid, time, etype, source, severity, labels, payload, corr, cause = row
    event = Event.model_construct(
        id=str(eid),
        time=time,
        type=etype,
        source=source,
        severity=Severity(severity),
        labels=orjson.loads(labels),
        payload=orjson.loads(payload),
        correlation_id=corr,
        causation_id=cause,
    )
    return int(seq), event


def events_after(
    con: duckdb.DuckDBPyConnection, seq: int, *, limit: int = 10_000
) -> list[tuple[int, Event]]:
    """Events with ``seq`` greater than ``seq``, oldest first, at most ``limit``."""
    rows = con.execute(
        f"SELECT {EVENT_COLUMNS} FROM events WHERE seq > ? ORDER BY seq LIMIT ?", [seq, limit]
    ).fetchall()
    return [event_from_row(row) for row in rows]


def events_between(
    con: duckdb.DuckDBPyConnection,
    since: datetime,
    upto_seq: int,
    types: list[str] | None = None,
    *,
    source: str | None = None,
) -> Iterator[tuple[int, Event]]:
    """Events at or after ``since`` with ``seq`` up to ``upto_seq``, oldest first.

    ``types`` (globs) narrows them; None means every type. ``source`` keeps only its events.
    """
    where = "time >= ? AND seq <= ?"
    params: list[Any] = [since, upto_seq]
    if source is not None:
        where += " AND source = ?"
        params.append(source)
    if types is not None:
        if not types:
            return iter(())
        where += " AND (" + " OR ".join("type GLOB ?" for _ in types) + ")"
        params.extend(types)
    rows = con.execute(
        f"SELECT {EVENT_COLUMNS} FROM events WHERE {where} ORDER BY seq", params
    ).fetchall()
    return (event_from_row(row) for row in rows)


def events_with_ids(con: duckdb.DuckDBPyConnection, ids: list[str]) -> list[tuple[int, Event]]:
    """The events with these ids that are in the store, oldest first."""
    if not ids:
        return []
    rows = con.execute(
        f"SELECT {EVENT_COLUMNS} FROM events "
        "WHERE CAST(id AS VARCHAR) IN (SELECT unnest(?::VARCHAR[])) ORDER BY seq",
        [ids],
    ).fetchall()
    return [event_from_row(row) for row in rows]
