"""The ``lessons`` table: each lesson's current state, derived from the lesson events.

Reading it back gives ``Lesson`` objects; ``lesson_history`` gives the events of one lesson.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import duckdb
import orjson

from aios.lessons.model import (
    CREATED,
    JUDGEMENTS,
    LESSON_TYPES,
    SOURCE,
    UPDATED,
    Lesson,
    lesson_owner,
)
from aios.memory.records import SHARED
from aios.store.projections import register_projection

COLUMNS = (
    "lesson_id, signature, symptom, state, count, agents, first_seen, last_seen, fix, "
    "successes, failures, streak, sample_event_id, created, updated"
)


class Lessons:
    name = "lessons"
    version = 2  # 2: owner
    tables: tuple[str, ...] = ("lessons",)

    def create(self, con: duckdb.DuckDBPyConnection) -> None:
        con.execute(
            """
            CREATE TABLE IF NOT EXISTS lessons (
                lesson_id VARCHAR PRIMARY KEY, signature VARCHAR NOT NULL, symptom VARCHAR,
                state VARCHAR NOT NULL, count BIGINT NOT NULL, agents JSON,
                first_seen TIMESTAMPTZ, last_seen TIMESTAMPTZ, fix JSON,
                successes BIGINT NOT NULL, failures BIGINT NOT NULL, streak BIGINT NOT NULL,
                sample_event_id VARCHAR,
                created TIMESTAMPTZ NOT NULL, updated TIMESTAMPTZ NOT NULL, seq BIGINT NOT NULL,
                owner VARCHAR NOT NULL
            )
            """
        )

    def apply(self, con: duckdb.DuckDBPyConnection, after_seq: int, upto_seq: int) -> None:
        rows = con.execute(
            """
            SELECT seq, time, type, payload FROM events
            WHERE seq > ? AND seq <= ? AND source = ? AND type IN (SELECT unnest(?::VARCHAR[]))
            ORDER BY seq
            """,
            [after_seq, upto_seq, SOURCE, list(LESSON_TYPES)],
        ).fetchall()
        for seq, time, kind, raw in rows:
            payload = orjson.loads(raw)
            lid = payload.get("lesson_id")
            if not isinstance(lid, str):
                continue
            if kind == CREATED:
                con.execute(
                    f"""
                    INSERT INTO lessons ({COLUMNS}, seq, owner)
                    VALUES (?, ?, ?, 'draft', ?, ?, ?, ?, ?, 0, 0, 0, ?, ?, ?, ?, ?)
                    ON CONFLICT DO NOTHING
                    """,
                    [
                        lid,
                        payload.get("signature", ""),
                        payload.get("symptom", ""),
                        int(payload.get("count", 0)),
                        orjson.dumps(_agents(payload)).decode(),
                        payload.get("first"),
                        payload.get("last"),
                        _json(payload.get("fix")),
                        payload.get("sample_event_id"),
                        time,
                        time,
                        seq,
                        lesson_owner(_agents(payload)),
                    ],
                )
            elif kind == UPDATED:
                con.execute(
                    """
                    UPDATE lessons SET count = coalesce(?, count),
                        agents = coalesce(?::JSON, agents), owner = coalesce(?, owner),
                        last_seen = coalesce(?, last_seen),
                        fix = CASE WHEN ? THEN ?::JSON ELSE fix END, updated = ?, seq = ?
                    WHERE lesson_id = ?
                    """,
                    [
                        payload.get("count"),
                        _json(_agents(payload)) if "agents" in payload else None,
                        lesson_owner(_agents(payload)) if "agents" in payload else None,
                        payload.get("last"),
                        "fix" in payload,
                        _json(payload.get("fix")),
                        time,
                        seq,
                        lid,
                    ],
                )
            elif kind in JUDGEMENTS:
                con.execute(
                    """
                    UPDATE lessons SET state = ?, successes = ?, failures = ?, streak = ?,
                        updated = ?, seq = ?
                    WHERE lesson_id = ?
                    """,
                    [
                        payload.get("to"),
                        int(payload.get("successes", 0)),
                        int(payload.get("failures", 0)),
                        int(payload.get("streak", 0)),
                        time,
                        seq,
                        lid,
                    ],
                )


def _agents(payload: dict[str, Any]) -> list[str]:
    agents = payload.get("agents")
    return [str(a) for a in agents] if isinstance(agents, list) else []


def _json(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


def _lesson(row: tuple[Any, ...]) -> Lesson:
    (lid, sig, symptom, state, count, agents, first, last, fix, ok, bad, streak, sample) = row[:13]
    made, upd = row[13:]
    return Lesson(
        lesson_id=str(lid),
        signature=str(sig),
        symptom=str(symptom or ""),
        state=str(state),
        count=int(count),
        agents=list(orjson.loads(agents)) if agents else [],
        first_seen=_time(first),
        last_seen=_time(last),
        fix=orjson.loads(fix) if fix else None,
        successes=int(ok),
        failures=int(bad),
        streak=int(streak),
        sample_event_id=sample,
        created=made,
        updated=upd,
    )


def _time(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value))


def read_lessons(
    con: duckdb.DuckDBPyConnection,
    *,
    state: str | None = None,
    ids: list[str] | None = None,
    limit: int | None = None,
    agent: str | None = None,
) -> list[Lesson]:
    """Lessons, most recently changed first (those in ``ids``, or in ``state``, when given);
    with ``agent``, only those it sees: its own and the shared ones."""
    where: list[str] = ["TRUE"]
    params: list[Any] = []
    if agent is not None:
        where.append("owner IN (?, ?)")
        params += [agent, SHARED]
    if state is not None:
        where.append("state = ?")
        params.append(state)
    if ids is not None:
        where.append("lesson_id IN (SELECT unnest(?::VARCHAR[]))")
        params.append(ids)
    sql = (
        f"SELECT {COLUMNS} FROM lessons WHERE {' AND '.join(where)} "
        "ORDER BY updated DESC, lesson_id"
    )
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    return [_lesson(row) for row in con.execute(sql, params).fetchall()]


def by_signature(con: duckdb.DuckDBPyConnection) -> dict[str, Lesson]:
    return {lesson.signature: lesson for lesson in read_lessons(con)}


def lesson_history(con: duckdb.DuckDBPyConnection, lid: str) -> list[dict[str, Any]]:
    """The events of lesson ``lid``, oldest first (time, type, payload)."""
    rows = con.execute(
        """
        SELECT time, type, payload FROM events
        WHERE source = ? AND type IN (SELECT unnest(?::VARCHAR[])) AND payload->>'lesson_id' = ?
        ORDER BY seq
        """,
        [SOURCE, list(LESSON_TYPES), lid],
    ).fetchall()
    return [
        {"time": time.isoformat(), "type": kind, "payload": orjson.loads(payload)}
        for time, kind, payload in rows
    ]


register_projection(Lessons())
