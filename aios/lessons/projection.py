"""The ``lessons`` table: each lesson's current state, derived from the lesson events.

A lesson's owner is the one its ``lesson.created`` names and never changes. A lesson recorded
before lessons named their owner is its one agent's; one that several agents' failures made at
once is shared, and keeps only what they have in common: the signature stands for the symptom,
and no agent or sample failure is named (its history shows no more). Reading the table back
gives ``Lesson`` objects; ``lesson_history`` gives the events of one lesson.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import duckdb
import orjson

from aios.errors import InputError
from aios.lessons.model import (
    CREATED,
    JUDGEMENTS,
    LESSON_TYPES,
    SHARED_WITH,
    SOURCE,
    UNSHARED_WITH,
    UPDATED,
    Lesson,
    lesson_owner,
)
from aios.memory.access import is_agent_name
from aios.memory.records import SHARED
from aios.store.projections import register_projection

COLUMNS = (
    "lesson_id, signature, symptom, state, count, agents, first_seen, last_seen, fix, "
    "successes, failures, streak, sample_event_id, created, updated, owner, shared_with"
)


class Lessons:
    name = "lessons"
    version = 3  # 2: owner; 3: the owner is the created one's, shared_with
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
                owner VARCHAR NOT NULL, shared_with VARCHAR[] NOT NULL
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
                created = as_created(payload)
                con.execute(
                    f"""
                    INSERT INTO lessons ({COLUMNS}, seq)
                    VALUES (?, ?, ?, 'draft', ?, ?, ?, ?, ?, 0, 0, 0, ?, ?, ?, ?, [], ?)
                    ON CONFLICT DO NOTHING
                    """,
                    [
                        lid,
                        created.get("signature", ""),
                        created.get("symptom", ""),
                        int(created.get("count", 0)),
                        orjson.dumps(_agents(created)).decode(),
                        created.get("first"),
                        created.get("last"),
                        _json(created.get("fix")),
                        created.get("sample_event_id"),
                        time,
                        time,
                        created["owner"],
                        seq,
                    ],
                )
            elif kind == UPDATED:
                # Who saw it again is not recorded: the owner made it and keeps it.
                con.execute(
                    """
                    UPDATE lessons SET count = coalesce(?, count),
                        last_seen = coalesce(?, last_seen),
                        fix = CASE WHEN ? THEN ?::JSON ELSE fix END, updated = ?, seq = ?
                    WHERE lesson_id = ?
                    """,
                    [
                        payload.get("count"),
                        payload.get("last"),
                        "fix" in payload,
                        _json(payload.get("fix")),
                        time,
                        seq,
                        lid,
                    ],
                )
            elif kind in (SHARED_WITH, UNSHARED_WITH):
                agent = payload.get("agent")
                if is_agent_name(agent):
                    params = {"agent": agent, "time": time, "seq": seq, "lid": lid}
                    if kind == SHARED_WITH:
                        con.execute(_SHARE, params | {"shared": SHARED})
                    else:
                        con.execute(_UNSHARE, params)
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


# A lesson is shared with agents other than its owner, and a shared one with nobody in particular.
_SHARE = """
    UPDATE lessons SET shared_with = list_sort(list_distinct(list_append(shared_with, $agent))),
        updated = $time, seq = $seq
    WHERE lesson_id = $lid AND owner NOT IN ($agent, $shared)
"""
_UNSHARE = """
    UPDATE lessons SET shared_with = list_filter(shared_with, lambda x: x <> $agent),
        updated = $time, seq = $seq
    WHERE lesson_id = $lid AND list_contains(shared_with, $agent)
"""


def _agents(payload: dict[str, Any]) -> list[str]:
    agents = payload.get("agents")
    return [str(a) for a in agents] if isinstance(agents, list) else []


def as_created(payload: dict[str, Any]) -> dict[str, Any]:
    """A ``lesson.created`` payload as the table keeps it, with its ``owner``. One recorded
    before lessons named their owner belongs to its one agent; made from several agents'
    failures at once, it is shared and keeps the signature as its symptom, no agents and no
    sample failure (whose text, agents and ids were one agent's or another's)."""
    owner = payload.get("owner")
    if owner == SHARED or is_agent_name(owner):
        return payload
    agents = _agents(payload)
    owner = lesson_owner(agents)
    if owner != SHARED or not agents:
        return {**payload, "owner": owner}
    signature = payload.get("signature", "")
    return {
        **payload,
        "owner": SHARED,
        "symptom": signature,
        "agents": [],
        "sample_event_id": None,
    }


def _json(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


def _lesson(row: tuple[Any, ...]) -> Lesson:
    (lid, sig, symptom, state, count, agents, first, last, fix, ok, bad, streak, sample) = row[:13]
    made, upd, owner, shared_with = row[13:]
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
        owner=str(owner),
        shared_with=list(shared_with or []),
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
    with ``agent``, only those it sees: its own, the shared ones and those shared with it
    (whom else a lesson is shared with shows for its owner only). ``agent`` ``shared``: the
    shared ones only."""
    where: list[str] = ["TRUE"]
    params: list[Any] = []
    if agent is not None:
        where.append("(owner IN (?, ?) OR list_contains(shared_with, ?))")
        params += [agent, SHARED, agent]
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
    found = [_lesson(row) for row in con.execute(sql, params).fetchall()]
    if agent is not None:
        for lesson in found:
            if lesson.owner != agent:
                lesson.shared_with = []
    return found


def find_lesson(con: duckdb.DuckDBPyConnection, prefix: str, agent: str | None = None) -> Lesson:
    """The one lesson whose id starts with ``prefix`` among those ``agent`` sees (every one,
    for None). InputError when none does (another agent's lesson is "no such lesson", as one
    that does not exist) or several do."""
    found = [
        lesson for lesson in read_lessons(con, agent=agent) if lesson.lesson_id.startswith(prefix)
    ]
    if len(found) != 1:
        raise InputError(
            f"{prefix!r}: no such lesson"
            if not found
            else f"{prefix!r} is the start of {len(found)} lessons: give more of it"
        )
    return found[0]


# Fields of a judgement that speak of the remediation behind it (and so of its agent).
PRIVATE_JUDGEMENT_FIELDS = frozenset({"reason", "remediation_id", "trigger_id", "event_id"})


def lesson_history(
    con: duckdb.DuckDBPyConnection, lid: str, agent: str | None = None
) -> list[dict[str, Any]]:
    """The events of lesson ``lid``, oldest first (time, type, payload), its creation as the
    table keeps it (``as_created``). For ``agent`` (not the owner), shares with other agents
    are left out, and judgements keep their verdict and counts, not the remediation behind
    them nor its reason."""
    rows = con.execute(
        """
        SELECT time, type, payload FROM events
        WHERE source = ? AND type IN (SELECT unnest(?::VARCHAR[])) AND payload->>'lesson_id' = ?
        ORDER BY seq
        """,
        [SOURCE, list(LESSON_TYPES), lid],
    ).fetchall()
    history, owner = [], None
    for time, kind, raw in rows:
        payload = orjson.loads(raw)
        if kind == CREATED:
            payload = as_created(payload)
            owner = payload["owner"]
        elif kind == UPDATED:
            payload.pop("agents", None)  # recorded before owners: who else saw it, not kept
        elif kind in (SHARED_WITH, UNSHARED_WITH) and agent not in (
            None,
            owner,
            payload.get("agent"),
        ):
            continue  # whom else the owner shared it with is the owner's business
        elif kind in JUDGEMENTS and agent not in (None, owner):
            # Which remediation judged it, and why, is about the agent it ran for.
            payload = {k: v for k, v in payload.items() if k not in PRIVATE_JUDGEMENT_FIELDS}
        history.append({"time": time.isoformat(), "type": kind, "payload": payload})
    return history


register_projection(Lessons())
