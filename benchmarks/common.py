"""Helpers shared by the benchmarks: isolated phases, percentiles, machine facts, results."""

from __future__ import annotations

import json
import multiprocessing
import os
import platform
import resource
import sys
import tempfile
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).with_name("results")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _phase_entry(func: Callable[..., dict[str, Any]], args: tuple[Any, ...], queue: Any) -> None:
    try:
        result = func(*args)
        result["peak_rss_mb"] = round(peak_rss_mb(), 1)
        queue.put(("ok", result))
    except BaseException as exc:
        queue.put(("error", repr(exc)))


def in_fresh_process(func: Callable[..., dict[str, Any]], *args: Any) -> dict[str, Any]:
    """Run one phase in a fresh interpreter, so its timing and peak memory are its own."""
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_phase_entry, args=(func, args, queue))
    proc.start()
    status, value = queue.get()
    proc.join()
    if status != "ok":
        raise RuntimeError(f"{func.__name__} failed: {value}")
    return dict(value)


def machine() -> dict[str, Any]:
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def temp_home() -> Path:
    return Path(tempfile.mkdtemp(prefix="aios-bench-"))


def write_result(name: str, data: dict[str, Any]) -> Path:
    RESULTS_DIR.mkdir(exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    path.write_text(json.dumps(data, indent=2) + "\n")
    return path


def finish(
    name: str,
    results: dict[str, Any],
    targets: Mapping[str, tuple[str, float]],
    *,
    write: bool = True,
) -> dict[str, Any]:
    """Judge ``results`` against ``targets`` (those measured); write the JSON unless a quick
    run (which is not a measurement to keep); return it."""
    met = {
        key: (results[key] >= target if op == ">=" else results[key] <= target)
        for key, (op, target) in targets.items()
        if key in results  # a quick run may skip what a target is about
    }
    data = {
        "benchmark": name,
        "machine": machine(),
        "results": results,
        "targets": {k: f"{op} {v}" for k, (op, v) in targets.items()},
        "met": met,
    }
    if write:
        write_result(name, data)
    return data
