"""The score's projections: per-minute aggregates of what scores are made of, and past scores.

A score over any window sums at most one row per minute of that window (and a small latency
histogram), however long the history is: the events themselves are read once, when the
projection takes them in. ``scores`` keeps every recorded ``score.updated``.
"""

from __future__ import annotations

import math

import duckdb

from aios.store.projections import register_projection

LATENCY_BASE = 1.25  # latency histogram bins grow by a quarter: p95 within about 12%

# AIOS's own agents (aios.monitor, ...) are tracked like any other, but the score is about the
# operator's workloads: their tasks are not counted in it.
_THEIRS = "coalesce(labels->>'agent', source) NOT LIKE 'aios.%'"
# Remediations and lessons count only as AIOS recorded them: an event from outside claiming a
# remediation succeeded or a lesson was verified does not move the score.
_REACTOR = "source = 'aios.reactor'"
_LESSONS = "source = 'aios.lessons'"
_COUNTS = f"""
    count(*) FILTER (WHERE type = 'task.completed' AND {_THEIRS}) AS tasks_completed,
    count(*) FILTER (WHERE type = 'task.failed' AND {_THEIRS}) AS tasks_failed,
    count(*) FILTER (WHERE type = 'task.completed' AND labels->>'tool' IS NOT NULL
                     AND {_THEIRS}) AS tools_completed,
    count(*) FILTER (WHERE type = 'task.failed' AND labels->>'tool' IS NOT NULL
                     AND {_THEIRS}) AS tools_failed,
    count(*) FILTER (WHERE type = 'remediation.finished' AND {_REACTOR}) AS remediations_finished,
    count(*) FILTER (WHERE type = 'remediation.finished' AND {_REACTOR}
                     AND payload->>'outcome' = 'succeeded') AS remediations_succeeded,
    count(*) FILTER (WHERE type = 'system.heartbeat') AS heartbeats,
    count(*) AS events_total,
    count(*) FILTER (WHERE severity IN ('high', 'critical')) AS events_severe,
    count(*) FILTER (WHERE type = 'host.metrics') AS headroom_n,
    coalesce(sum(1 - greatest(
        coalesce(TRY_CAST(payload->>'cpu' AS DOUBLE), 0),
        coalesce(TRY_CAST(payload->>'memory' AS DOUBLE), 0),
        coalesce(TRY_CAST(payload->>'disk_max' AS DOUBLE), 0)) / 100)
        FILTER (WHERE type = 'host.metrics'), 0) AS headroom_sum,
    count(*) FILTER (WHERE type = 'lesson.created' AND {_LESSONS}) AS lessons_created,
    count(*) FILTER (WHERE type IN ('lesson.verified', 'lesson.hardened')
                     AND {_LESSONS}) AS lessons_promoted
"""
COLUMNS = (
    "tasks_completed",
    "tasks_failed",
    "tools_completed",
    "tools_failed",
    "remediations_finished",
    "remediations_succeeded",
    "heartbeats",
    "events_total",
    "events_severe",
    "headroom_n",
    "headroom_sum",
    "lessons_created",
    "lessons_promoted",
)


class ScoreBuckets:
    """Tables ``score_buckets`` (one row per minute) and ``score_latency`` (histogram bins)."""

    name = "score_buckets"
    version = 2
    tables: tuple[str, ...] = ("score_buckets", "score_latency")

    def create(self, con: duckdb.DuckDBPyConnection) -> None:
        columns = ",\n".join(
            f"{c} {'DOUBLE' if c.endswith('_sum') else 'BIGINT'} NOT NULL" for c in COLUMNS
        )
        con.execute(
            f"CREATE TABLE IF NOT EXISTS score_buckets (bucket TIMESTAMPTZ PRIMARY KEY, {columns})"
        )
        con.execute(
            "CREATE TABLE IF NOT EXISTS score_latency ("
            "bucket TIMESTAMPTZ NOT NULL, bin SMALLINT NOT NULL, n BIGINT NOT NULL, "
            "PRIMARY KEY (bucket, bin))"
        )

    def apply(self, con: duckdb.DuckDBPyConnection, after_seq: int, upto_seq: int) -> None:
        updates = ", ".join(f"{c} = score_buckets.{c} + excluded.{c}" for c in COLUMNS)
        con.execute(
            f"""
            INSERT INTO score_buckets
            SELECT date_trunc('minute', time) AS bucket, {_COUNTS}
            FROM events WHERE seq > ? AND seq <= ?
            GROUP BY 1
            ON CONFLICT (bucket) DO UPDATE SET {updates}
            """,
            [after_seq, upto_seq],
        )
        con.execute(
            f"""
            INSERT INTO score_latency
            SELECT date_trunc('minute', time) AS bucket,
                   CAST(floor(ln(greatest(latency, 1)) / ln({LATENCY_BASE})) AS SMALLINT) AS bin,
                   count(*) AS n
            FROM (SELECT time, TRY_CAST(payload->>'latency_ms' AS DOUBLE) AS latency
                  FROM events
                  WHERE seq > ? AND seq <= ? AND type = 'task.completed' AND {_THEIRS})
            WHERE latency IS NOT NULL
            GROUP BY 1, 2
            ON CONFLICT (bucket, bin) DO UPDATE SET n = score_latency.n + excluded.n
            """,
            [after_seq, upto_seq],
        )


def bin_value(index: int) -> float:
    """The middle of latency bin ``index``, in milliseconds."""
    return float(LATENCY_BASE ** (index + 0.5))


def bin_of(latency_ms: float) -> int:
    return math.floor(math.log(max(latency_ms, 1.0)) / math.log(LATENCY_BASE))


class Scores:
    """The ``scores`` table: one row per ``score.updated`` event."""

    name = "scores"
    version = 2
    tables: tuple[str, ...] = ("scores",)

    def create(self, con: duckdb.DuckDBPyConnection) -> None:
        con.execute(
            "CREATE TABLE IF NOT EXISTS scores (seq BIGINT, time TIMESTAMPTZ, preset VARCHAR, "
            "score DOUBLE, grade VARCHAR, trend VARCHAR, window_s DOUBLE, components JSON)"
        )

    def apply(self, con: duckdb.DuckDBPyConnection, after_seq: int, upto_seq: int) -> None:
        con.execute(
            """
            INSERT INTO scores
            SELECT seq, time, payload->>'preset', TRY_CAST(payload->>'score' AS DOUBLE),
                   payload->>'grade', payload->>'trend',
                   TRY_CAST(payload->>'window_s' AS DOUBLE), payload->'components'
            FROM events
            WHERE seq > ? AND seq <= ? AND type = 'score.updated' AND source = 'aios.score'
            """,
            [after_seq, upto_seq],
        )


register_projection(ScoreBuckets())
register_projection(Scores())
