"""Detection over history in DuckDB: failure bursts and adaptive baselines.

- Bursts: ``burst_failures`` ``task.failed`` of one agent within ``burst_window`` raise
  ``agent.degraded`` (once per window).
- Baselines, per agent: mean task latency and error rate in hourly buckets over
  ``baseline_history`` give a median and a median absolute deviation; the recent window's
  value is anomalous when its robust z-score (0.6745 * (value - median) / MAD) reaches
  ``baseline_z`` in the bad direction (slower, more errors). ``anomaly.detected`` carries the
  baseline and the deviation; ``anomaly.cleared`` follows once the z-score is back under half.
  Too little history or too few recent tasks: no verdict.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import duckdb

from aios.observe.agents import AGENT_OF

SOURCE = "aios.monitor"
# The least spread assumed, so a perfectly flat history does not call every wobble an anomaly.
MIN_SPREAD = {"latency_ms": 5.0, "error_rate": 0.02}


def bursts(
    con: duckdb.DuckDBPyConnection, now: datetime, failures: int, window: timedelta
) -> list[dict[str, Any]]:
    """``agent.degraded`` events due now (not already raised within the window)."""
    since = now - window
    rows = con.execute(
        f"""
        WITH failed AS (
            SELECT {AGENT_OF} AS agent, count(*) AS n, arg_max(payload->>'error', seq) AS last
            FROM events WHERE type = 'task.failed' AND time >= ? AND time <= ?
            GROUP BY 1 HAVING count(*) >= ?
        ),
        raised AS (
            SELECT DISTINCT labels->>'agent' AS agent FROM events
            WHERE type = 'agent.degraded' AND source = ? AND time >= ?
        )
        SELECT failed.agent, n, last FROM failed
        WHERE failed.agent NOT IN (SELECT agent FROM raised WHERE agent IS NOT NULL)
        ORDER BY failed.agent
        """,
        [since, now, failures, SOURCE, since],
    ).fetchall()
    return [
        {
            "type": "agent.degraded",
            "severity": "high",
            "labels": {"agent": agent},
            "payload": {
                "agent": agent,
                "failures": int(n),
                "window_s": window.total_seconds(),
                "threshold": failures,
                "last_error": last,
                "reason": f"{n} failed tasks within {window}",
            },
        }
        for agent, n, last in rows
    ]


@dataclass(frozen=True)
class Baseline:
    agent: str
    metric: str
    value: float
    median: float
    mad: float
    z: float
    buckets: int
    samples: int

    def payload(self) -> dict[str, Any]:
        return {
            "agent": self.agent,
            "metric": self.metric,
            "value": round(self.value, 4),
            "baseline": round(self.median, 4),
            "mad": round(self.mad, 4),
            "deviation": round(self.value - self.median, 4),
            "z": round(self.z, 2),
            "history_buckets": self.buckets,
            "recent_samples": self.samples,
        }


def baselines(
    con: duckdb.DuckDBPyConnection,
    now: datetime,
    *,
    history: timedelta,
    recent: timedelta,
    min_buckets: int,
    min_samples: int,
) -> list[Baseline]:
    """Per agent and metric: the recent value against its baseline (enough data only)."""
    recent_start = now - recent
    rows = con.execute(
        f"""
        SELECT {AGENT_OF} AS agent,
               time >= ? AS is_recent,
               CASE WHEN time >= ? THEN NULL ELSE date_trunc('hour', time) END AS bucket,
               avg(TRY_CAST(payload->>'latency_ms' AS DOUBLE))
                   FILTER (WHERE type = 'task.completed') AS latency,
               count(*) FILTER (WHERE type = 'task.failed') AS failed,
               count(*) AS n
        FROM events
        WHERE type IN ('task.completed', 'task.failed') AND time >= ? AND time <= ?
        GROUP BY 1, 2, 3
        """,
        [recent_start, recent_start, now - history, now],
    ).fetchall()
    per_agent: dict[str, dict[str, Any]] = {}
    for agent, is_recent, _bucket, latency, failed, n in rows:
        entry = per_agent.setdefault(agent, {"latency": [], "error": [], "recent": None})
        if is_recent:
            entry["recent"] = (latency, failed / n if n else None, n)
        else:
            if latency is not None:
                entry["latency"].append(float(latency))
            entry["error"].append(failed / n)
    found = []
    for agent, entry in sorted(per_agent.items()):
        recent_row = entry["recent"]
        if recent_row is None or recent_row[2] < min_samples:
            continue
        for metric, past, now_value in (
            ("latency_ms", entry["latency"], recent_row[0]),
            ("error_rate", entry["error"], recent_row[1]),
        ):
            if now_value is None or len(past) < min_buckets:
                continue
            median = statistics.median(past)
            mad = statistics.median(abs(v - median) for v in past)
            spread = max(mad, MIN_SPREAD[metric], 0.05 * abs(median))
            z = 0.6745 * (float(now_value) - median) / spread
            found.append(
                Baseline(agent, metric, float(now_value), median, mad, z, len(past), recent_row[2])
            )
    return found


def active_anomalies(con: duckdb.DuckDBPyConnection) -> set[tuple[str, str]]:
    """(agent, metric) pairs whose latest anomaly event is ``anomaly.detected``."""
    rows = con.execute(
        """
        SELECT labels->>'agent', labels->>'metric', arg_max(type, seq) FROM events
        WHERE source = ? AND type IN ('anomaly.detected', 'anomaly.cleared')
        GROUP BY 1, 2
        """,
        [SOURCE],
    ).fetchall()
    return {(agent, metric) for agent, metric, kind in rows if kind == "anomaly.detected"}


def anomaly_events(
    found: list[Baseline], active: set[tuple[str, str]], z_limit: float
) -> list[dict[str, Any]]:
    """Detections and clearances; an active anomaly with no recent verdict (the agent went
    quiet) is cleared as such."""
    events = []
    judged = {(b.agent, b.metric) for b in found}
    for agent, metric in sorted(active - judged):
        events.append(
            {
                "type": "anomaly.cleared",
                "severity": "info",
                "labels": {"agent": agent, "metric": metric},
                "payload": {
                    "agent": agent,
                    "metric": metric,
                    "reason": "too few recent tasks to judge",
                },
            }
        )
    for baseline in found:
        key = (baseline.agent, baseline.metric)
        labels = {"agent": baseline.agent, "metric": baseline.metric}
        if key not in active and baseline.z >= z_limit:
            events.append(
                {
                    "type": "anomaly.detected",
                    "severity": "medium",
                    "labels": labels,
                    "payload": {**baseline.payload(), "z_limit": z_limit},
                }
            )
        elif key in active and baseline.z < z_limit / 2:
            events.append(
                {
                    "type": "anomaly.cleared",
                    "severity": "info",
                    "labels": labels,
                    "payload": baseline.payload(),
                }
            )
    return events
