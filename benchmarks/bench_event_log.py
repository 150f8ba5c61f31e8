"""The event log and store: durable emit latency, batch ingest, DuckDB sync, verify, memory.

Beside them, in the same run, the original AIOS way of storing events (one SQLite commit per
event), so the numbers compare as ratios on the same machine.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import time
from pathlib import Path
from typing import Any

from benchmarks.common import finish, in_fresh_process, percentile, temp_home

TARGETS = {
    "batch_ingest_events_per_s": (">=", 100_000),
    "sync_events_per_s": (">=", 200_000),
    "emit_p99_ms": ("<=", 5.0),
    "verify_events_per_s": (">=", 200_000),
}


def _event(i: int) -> dict[str, Any]:
    return {
        "type": "bench.metric",
        "source": "bench",
        "severity": "info",
        "labels": {"host": "bench-1", "agent": f"agent-{i % 8}"},
        "payload": {"resource": "cpu", "value": 42.5 + i % 50, "i": i},
    }


def phase_emit(home: str, count: int) -> dict[str, Any]:
    os.environ["AIOS_HOME"] = home
    import aios

    aios.emit("bench.warmup")
    latencies = []
    for i in range(count):
        event = _event(i)
        start = time.perf_counter()
        aios.emit(event["type"], event["payload"], source="bench", labels=event["labels"])
        latencies.append((time.perf_counter() - start) * 1000)
    return {
        "emit_count": count,
        "emit_p50_ms": round(percentile(latencies, 50), 3),
        "emit_p99_ms": round(percentile(latencies, 99), 3),
        "emit_max_ms": round(max(latencies), 3),
        "emit_per_s": round(count / (sum(latencies) / 1000)),
    }


def phase_batch(home: str, total: int, batch: int) -> dict[str, Any]:
    os.environ["AIOS_HOME"] = home
    import aios

    aios.emit("bench.warmup")
    elapsed = 0.0
    for offset in range(0, total, batch):
        items = [_event(offset + i) for i in range(batch)]  # what a producer hands in
        start = time.perf_counter()
        aios.emit_many(items)  # validate, serialise, chain, write, fdatasync
        elapsed += time.perf_counter() - start
    return {
        "batch_size": batch,
        "batch_events": total,
        "batch_ingest_events_per_s": round(total / elapsed),
    }


def phase_append(home: str, total: int, batch: int) -> dict[str, Any]:
    """Appending events a program already built (no validation of foreign input)."""
    os.environ["AIOS_HOME"] = home
    import aios
    from aios.bus import coerce_event

    aios.emit("bench.warmup")
    elapsed = 0.0
    for offset in range(0, total, batch):
        events = [coerce_event(_event(offset + i)) for i in range(batch)]
        start = time.perf_counter()
        aios.emit_many(events)  # serialise, chain, write, fdatasync
        elapsed += time.perf_counter() - start
    return {"batch_append_events_per_s": round(total / elapsed)}


def phase_sync(home: str) -> dict[str, Any]:
    os.environ["AIOS_HOME"] = home
    from aios.store import SyncReport, open_store

    report = SyncReport()
    start = time.perf_counter()
    with open_store(report=report):
        pass
    elapsed = time.perf_counter() - start
    return {"sync_events": report.events, "sync_events_per_s": round(report.events / elapsed)}


def phase_verify(home: str) -> dict[str, Any]:
    from aios.log import EventLog

    start = time.perf_counter()
    report = EventLog(Path(home) / "events").verify()
    elapsed = time.perf_counter() - start
    assert report.ok, report.first_break
    return {"verify_events": report.events, "verify_events_per_s": round(report.events / elapsed)}


def phase_sqlite_baseline(home: str, count: int) -> dict[str, Any]:
    """The original bus: one SQLite commit (synchronous=FULL) per event."""
    import json

    con = sqlite3.connect(str(Path(home) / "baseline.sqlite"))
    con.execute("PRAGMA synchronous=FULL")
    con.execute("CREATE TABLE events (id TEXT, time REAL, type TEXT, payload TEXT)")
    start = time.perf_counter()
    for i in range(count):
        event = _event(i)
        con.execute(
            "INSERT INTO events VALUES (?, ?, ?, ?)",
            (str(i), time.time(), event["type"], json.dumps(event["payload"])),
        )
        con.commit()
    elapsed = time.perf_counter() - start
    con.close()
    return {"sqlite_commit_per_event_events_per_s": round(count / elapsed)}


def run(quick: bool = False) -> dict[str, Any]:
    home = temp_home()
    try:
        results: dict[str, Any] = {}
        baseline_run = in_fresh_process(phase_sqlite_baseline, str(home), 300 if quick else 2000)
        results["sqlite_commit_per_event_events_per_s"] = baseline_run[
            "sqlite_commit_per_event_events_per_s"
        ]
        emit = in_fresh_process(phase_emit, str(home), 300 if quick else 3000)
        results.update({k: v for k, v in emit.items() if k != "peak_rss_mb"})
        results["emit_peak_rss_mb"] = emit["peak_rss_mb"]
        # Throughput is the median of three runs: this machine's speed drifts by a quarter.
        runs = [
            in_fresh_process(phase_batch, str(home), 20_000 if quick else 200_000, 1000)
            for _ in range(3)
        ]
        batch = sorted(runs, key=lambda r: r["batch_ingest_events_per_s"])[1]
        results.update({k: v for k, v in batch.items() if k != "peak_rss_mb"})
        results["batch_ingest_events_per_s_runs"] = [r["batch_ingest_events_per_s"] for r in runs]
        results["batch_peak_rss_mb"] = batch["peak_rss_mb"]
        append = in_fresh_process(phase_append, str(home), 20_000 if quick else 200_000, 1000)
        results["batch_append_events_per_s"] = append["batch_append_events_per_s"]
        logged = list((home / "events").glob("*.jsonl"))
        results["log_bytes_per_event"] = round(
            sum(p.stat().st_size for p in logged) / sum(p.read_bytes().count(b"\n") for p in logged)
        )
        sync = in_fresh_process(phase_sync, str(home))
        results.update({k: v for k, v in sync.items() if k != "peak_rss_mb"})
        results["sync_peak_rss_mb"] = sync["peak_rss_mb"]
        verifies = [in_fresh_process(phase_verify, str(home)) for _ in range(3)]
        verify = sorted(verifies, key=lambda r: r["verify_events_per_s"])[1]
        results.update({k: v for k, v in verify.items() if k != "peak_rss_mb"})
        results["verify_peak_rss_mb"] = verify["peak_rss_mb"]
        baseline = results["sqlite_commit_per_event_events_per_s"]
        results["ratio_batch_ingest_vs_sqlite"] = round(
            results["batch_ingest_events_per_s"] / baseline, 1
        )
        results["ratio_single_emit_vs_sqlite"] = round(results["emit_per_s"] / baseline, 2)
    finally:
        shutil.rmtree(home, ignore_errors=True)
    return finish("event_log", results, TARGETS, write=not quick)
