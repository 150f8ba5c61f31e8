"""What is going on: event rates by priority, task throughput and latency, and the newest
events for a timeline."""

from __future__ import annotations

from datetime import UTC, datetime

import duckdb
import pandas as pd

from aios.loop.analyst import AGENT_OF, NOT_ISSUES

_FAR_PAST = datetime(1970, 1, 1, tzinfo=UTC)
ROUTINE = ("task.started", "task.completed")
# Every bucket from ``since`` (or the first event) to now, so quiet periods count as zero.
_BUCKETS = """
buckets AS (
    SELECT unnest(generate_series(
        time_bucket(?::INTERVAL, coalesce(?::TIMESTAMPTZ, (SELECT min(time) FROM events), now())),
        time_bucket(?::INTERVAL, greatest(now(), coalesce((SELECT max(time) FROM events), now()))),
        ?::INTERVAL)) AS bucket
)"""


def event_rates(
    con: duckdb.DuckDBPyConnection, since: datetime | None = None, every: str = "1 hour"
) -> pd.DataFrame:
    """Events per ``every`` bucket from ``since`` to now (zero where there were none), a
    column per priority (``P0`` .. ``P3``) and ``total``."""
    frame: pd.DataFrame = con.execute(
        f"""
        WITH {_BUCKETS},
        counted AS (
            SELECT time_bucket(?::INTERVAL, time) AS bucket,
                   count(*) FILTER (WHERE priority = 'P0') AS "P0",
                   count(*) FILTER (WHERE priority = 'P1') AS "P1",
                   count(*) FILTER (WHERE priority = 'P2') AS "P2",
                   count(*) FILTER (WHERE priority = 'P3') AS "P3",
                   count(*) AS total
            FROM events WHERE time >= ? GROUP BY 1
        )
        SELECT bucket, coalesce("P0", 0) AS "P0", coalesce("P1", 0) AS "P1",
               coalesce("P2", 0) AS "P2", coalesce("P3", 0) AS "P3",
               coalesce(total, 0) AS total
        FROM buckets LEFT JOIN counted USING (bucket) ORDER BY bucket
        """,
        [every, since, every, every, every, since or _FAR_PAST],
    ).df()
    return frame


def throughput(
    con: duckdb.DuckDBPyConnection, since: datetime | None = None, every: str = "1 hour"
) -> pd.DataFrame:
    """The agents' tasks per bucket from ``since`` to now: ``completed``, ``failed`` (zero
    where there were none), ``success_rate`` and the median and p95 latency in ms (from
    ``latency_ms``; None where no task ran); AIOS's own flows are left out."""
    frame: pd.DataFrame = con.execute(
        f"""
        WITH {_BUCKETS},
        counted AS (
            SELECT time_bucket(?::INTERVAL, time) AS bucket,
                   count(*) FILTER (WHERE type = 'task.completed') AS completed,
                   count(*) FILTER (WHERE type = 'task.failed') AS failed,
                   median(TRY_CAST(payload->>'latency_ms' AS DOUBLE)) AS latency_p50_ms,
                   quantile_cont(TRY_CAST(payload->>'latency_ms' AS DOUBLE), 0.95)
                       AS latency_p95_ms
            FROM events
            WHERE type IN ('task.completed', 'task.failed') AND time >= ?
              AND {AGENT_OF} NOT LIKE 'aios.%'
            GROUP BY 1
        )
        SELECT bucket, coalesce(completed, 0) AS completed, coalesce(failed, 0) AS failed,
               completed / nullif(completed + failed, 0) AS success_rate,
               latency_p50_ms, latency_p95_ms
        FROM buckets LEFT JOIN counted USING (bucket) ORDER BY bucket
        """,
        [every, since, every, every, every, since or _FAR_PAST],
    ).df()
    return frame


def recent_events(
    con: duckdb.DuckDBPyConnection,
    limit: int = 50,
    *,
    after_seq: int = 0,
    everything: bool = False,
) -> pd.DataFrame:
    """The newest events after ``after_seq``, newest first: ``seq``, ``id``, ``time``,
    ``type``, ``source``, ``severity``, ``priority``, ``subject``. Periodic measurements
    (host and agent metrics, heartbeats, score updates) and routine task starts and
    completions are left out unless ``everything``."""
    frame: pd.DataFrame = con.execute(
        """
        SELECT seq, id::VARCHAR AS id, time, type, source, severity, priority,
               coalesce(labels->>'agent', labels->>'playbook', labels->>'deployment',
                        payload->>'resource', labels->>'host', source) AS subject
        FROM events
        WHERE seq > ? AND (? OR type NOT IN (SELECT unnest(?::VARCHAR[])))
        ORDER BY seq DESC LIMIT ?
        """,
        [after_seq, everything, [*NOT_ISSUES, *ROUTINE], limit],
    ).df()
    return frame


def recent_tasks(con: duckdb.DuckDBPyConnection, limit: int = 30) -> pd.DataFrame:
    """The agents' newest finished tasks: ``time``, ``agent``, ``task``, ``outcome``
    (completed or failed), ``latency_ms``, ``error``."""
    frame: pd.DataFrame = con.execute(
        f"""
        SELECT time, {AGENT_OF} AS agent, payload->>'task' AS task,
               split_part(type, '.', 2) AS outcome,
               TRY_CAST(payload->>'latency_ms' AS DOUBLE) AS latency_ms,
               payload->>'error' AS error
        FROM events
        WHERE type IN ('task.completed', 'task.failed') AND {AGENT_OF} NOT LIKE 'aios.%'
        ORDER BY seq DESC LIMIT ?
        """,
        [limit],
    ).df()
    return frame
