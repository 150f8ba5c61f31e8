"""The score over long histories (10^5, 10^6, 10^7 events), and the CPU time of a monitor cycle.

The score reads per-minute aggregates kept up by a projection, so its cost should not grow
with the history. Each history is generated straight into a DuckDB file (30 days of task
results, remediations, heartbeats and host readings), taken in by the projection once (timed
too), then scored 20 times over 24 hours and over 7 days. Beside it, in the same run, the same
components computed by scanning the events themselves, for a ratio.
"""

from __future__ import annotations

import os
import shutil
import statistics
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from benchmarks.common import finish, in_fresh_process, temp_home

SIZES = (100_000, 1_000_000, 10_000_000)
TARGETS = {"score_ms_p50_10000000": ("<=", 20.0)}

_GENERATE = """
INSERT INTO events
SELECT i + 1 AS seq, uuid() AS id,
       TIMESTAMPTZ '{end}' - to_microseconds(CAST((? - i) * {step_us} AS BIGINT)) AS time,
       CASE WHEN i % 10 < 6 THEN 'task.completed' WHEN i % 10 = 6 THEN 'task.failed'
            WHEN i % 10 = 7 THEN 'remediation.finished' WHEN i % 10 = 8 THEN 'system.heartbeat'
            ELSE 'host.metrics' END AS type,
       'bench' AS source,
       CASE WHEN i % 97 = 0 THEN 'high' ELSE 'info' END AS severity,
       'P3' AS priority,
       CASE WHEN i % 3 = 0 THEN '{{"agent":"writer","tool":"search"}}'
            ELSE '{{"agent":"reader"}}' END::JSON AS labels,
       CASE WHEN i % 10 < 6 THEN json_object('latency_ms', 50 + (i * 7919) % 3000)
            WHEN i % 10 = 7 THEN json_object('outcome', CASE WHEN i % 4 = 0 THEN 'rolled_back'
                                                            ELSE 'succeeded' END)
            WHEN i % 10 = 9 THEN json_object('cpu', 20 + i % 60, 'memory', 40, 'disk_max', 55)
            ELSE json_object() END AS payload,
       NULL, NULL, 1, CAST(i % 1000000 AS INTEGER)
FROM range(?) t(i)
"""


def phase_score(events: int, directory: str) -> dict[str, Any]:
    import duckdb

    from aios.score.engine import compute
    from aios.score.projections import ScoreBuckets
    from aios.store.sync import EVENTS_DDL

    path = Path(directory) / f"score-{events}.duckdb"
    con = duckdb.connect(str(path))
    con.execute(EVENTS_DDL)
    end = datetime.now(UTC).replace(microsecond=0)
    step_us = int(timedelta(days=30).total_seconds() * 1e6 / events)
    started = time.perf_counter()
    con.execute(_GENERATE.format(end=end.isoformat(), step_us=step_us), [events, events])
    generated = time.perf_counter() - started
    projection = ScoreBuckets()
    projection.create(con)
    started = time.perf_counter()
    projection.apply(con, 0, events)
    catch_up = time.perf_counter() - started
    results: dict[str, Any] = {
        "generate_s": round(generated, 2),
        "projection_s": round(catch_up, 2),
    }
    for label, window in (("", timedelta(hours=24)), ("_7d", timedelta(days=7))):
        timings = []
        for _ in range(20):
            started = time.perf_counter()
            score = compute(con, preset="evolution", window=window, until=end)
            compute(con, preset="ops", window=window, until=end)
            timings.append((time.perf_counter() - started) * 1000 / 2)
        results[f"score_ms_p50{label}"] = round(statistics.median(timings), 2)
        results[f"score_value{label}"] = round(score.value or 0, 4)
    # The same task-success and correction components by scanning the events, for a ratio.
    timings = []
    for _ in range(5):
        started = time.perf_counter()
        con.execute(
            "SELECT count(*) FILTER (WHERE type = 'task.completed'), "
            "count(*) FILTER (WHERE type = 'task.failed'), "
            "count(*) FILTER (WHERE type = 'remediation.finished' "
            "AND payload->>'outcome' = 'succeeded'), "
            "quantile_cont(TRY_CAST(payload->>'latency_ms' AS DOUBLE), 0.95) "
            "FILTER (WHERE type = 'task.completed') "
            "FROM events WHERE time >= ? AND time < ?",
            [end - timedelta(hours=24), end],
        ).fetchall()
        timings.append((time.perf_counter() - started) * 1000)
    results["scan_ms_p50"] = round(statistics.median(timings), 2)
    con.close()
    return results


def phase_monitor(home: str, cycles: int) -> dict[str, Any]:
    os.environ["AIOS_HOME"] = home
    from aios.config import load_config
    from aios.home import HomePaths
    from aios.observe.host import HostCollector
    from aios.observe.monitor import run_cycle
    from aios.runtime import default_bus

    config = load_config()
    collector = HostCollector(config.monitor.sample.total_seconds())
    cpu, wall = [], []
    for index in range(cycles + 1):
        started_cpu, started_wall = time.process_time(), time.perf_counter()
        run_cycle(default_bus(), HomePaths.current(), config, collector)
        if index:  # the first cycle pays for imports and for creating the store
            cpu.append(time.process_time() - started_cpu)
            wall.append(time.perf_counter() - started_wall)
    return {
        "monitor_cycle_cpu_s_p50": round(statistics.median(cpu), 3),
        "monitor_cycle_wall_s_p50": round(statistics.median(wall), 3),
        "monitor_sample_s": config.monitor.sample.total_seconds(),
    }


def run(quick: bool = False) -> dict[str, Any]:
    scratch = temp_home()
    results: dict[str, Any] = {}
    try:
        for size in SIZES[:1] if quick else SIZES:
            measured = in_fresh_process(phase_score, size, str(scratch))
            for key, value in measured.items():
                if key != "peak_rss_mb":
                    results[f"{key}_{size}"] = value
        monitor = in_fresh_process(phase_monitor, str(scratch / "home"), 2 if quick else 5)
        results.update({k: v for k, v in monitor.items() if k != "peak_rss_mb"})
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    biggest = SIZES[0] if quick else SIZES[-1]
    results["ratio_scan_vs_score"] = round(
        results[f"scan_ms_p50_{biggest}"] / max(results[f"score_ms_p50_{biggest}"], 0.01), 1
    )
    return finish("score", results, TARGETS, write=not quick)
