"""What one rebuild of the dashboard costs over long histories (10^5 and 10^6 events).

The dashboard rebuilds every page in one store session when the log grows (at most once a
second), holding the store's lock meanwhile, so a rebuild must stay well under that second.
Histories of 30 days (the score benchmark's mix: task results, remediations, heartbeats, host
readings) are generated straight into a DuckDB file and taken in by every projection; then the
five pages are built 10 times. Beside it, in the same run, what an HTTP poll of a built page
costs (serving from memory) for a ratio.
"""

from __future__ import annotations

import shutil
import statistics
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from benchmarks.bench_score import _GENERATE
from benchmarks.common import finish, in_fresh_process, temp_home

SIZES = (100_000, 1_000_000)
TARGETS = {"rebuild_ms_p50_1000000": ("<=", 1000.0)}


def phase_rebuild(events: int, directory: str) -> dict[str, Any]:
    import duckdb
    import orjson

    from aios.dashboard import pages
    from aios.store.projections import registered_projections
    from aios.store.sync import EVENTS_DDL

    path = Path(directory) / f"dashboard-{events}.duckdb"
    con = duckdb.connect(str(path))
    con.execute(EVENTS_DDL)
    end = datetime.now(UTC).replace(microsecond=0)
    step_us = int(timedelta(days=30).total_seconds() * 1e6 / events)
    con.execute(_GENERATE.format(end=end.isoformat(), step_us=step_us), [events, events])
    for projection in registered_projections():
        projection.create(con)
        projection.apply(con, 0, events)
    timings: list[float] = []
    per_page: dict[str, list[float]] = {name: [] for name in pages.PAGES}
    built: dict[str, Any] = {}
    for _ in range(10):
        started = time.perf_counter()
        for name, build in pages.BUILDERS.items():
            page_started = time.perf_counter()
            built[name] = build(con, end, "evolution")
            per_page[name].append(time.perf_counter() - page_started)
        page_started = time.perf_counter()
        built["approvals"] = pages.approvals(con, end, "evolution", "http://127.0.0.1:4200")
        per_page["approvals"].append(time.perf_counter() - page_started)
        timings.append(time.perf_counter() - started)
    con.close()
    serve = []
    for _ in range(200):  # what a poll costs once built: encoding the page from memory
        started = time.perf_counter()
        orjson.dumps(built["overview"])
        serve.append(time.perf_counter() - started)
    results: dict[str, Any] = {
        "rebuild_ms_p50": round(statistics.median(timings) * 1000, 1),
        "rebuild_ms_max": round(max(timings) * 1000, 1),
        "poll_ms_p50": round(statistics.median(serve) * 1000, 3),
    }
    for name, values in per_page.items():
        results[f"{name}_ms_p50"] = round(statistics.median(values) * 1000, 1)
    return results


def run(quick: bool = False) -> dict[str, Any]:
    scratch = temp_home()
    results: dict[str, Any] = {}
    try:
        for size in SIZES[:1] if quick else SIZES:
            measured = in_fresh_process(phase_rebuild, size, str(scratch))
            for key, value in measured.items():
                results[f"{key}_{size}"] = value
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    biggest = SIZES[0] if quick else SIZES[-1]
    results["ratio_rebuild_vs_poll"] = round(
        results[f"rebuild_ms_p50_{biggest}"] / max(results[f"poll_ms_p50_{biggest}"], 0.001)
    )
    return finish("dashboard", results, TARGETS, write=not quick)
