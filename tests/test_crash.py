"""A writer killed with SIGKILL in the middle of a batch, many times over."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from aios.log import EventLog

CHILD = Path(__file__).with_name("crash_writer.py")
ROOT = Path(__file__).resolve().parent.parent


def run_until_killed(directory: Path, seed: int, first_batch: int, delay: float) -> list[int]:
    """Start a writer, SIGKILL it after ``delay`` s; return the batches it acknowledged."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen(
        [sys.executable, str(CHILD), str(directory), str(seed), str(first_batch)],
        stdout=subprocess.PIPE,
        env=env,
    )
    # Wait for the first acknowledged batch so the kill lands while it is writing.
    assert child.stdout is not None
    first = child.stdout.readline()
    time.sleep(delay)
    child.send_signal(signal.SIGKILL)
    rest, _ = child.communicate(timeout=30)
    return [int(n) for n in (first + rest).split()]


@pytest.mark.slow
def test_sigkill_mid_batch_loses_nothing_acknowledged_and_duplicates_nothing(
    tmp_path: Path,
) -> None:
    directory = tmp_path / "events"
    rng = random.Random(42)
    acknowledged: set[int] = set()
    next_batch = 0
    for round_no in range(24):
        acked = run_until_killed(
            directory, seed=round_no, first_batch=next_batch, delay=rng.uniform(0.0, 0.25)
        )
        acknowledged.update(acked)
        next_batch += 10_000  # each writer numbers its batches in its own range
        # What a reader sees (no repair yet): whole batches only, nothing twice.
        log = EventLog(directory)
        ids: Counter[str] = Counter()
        per_batch: Counter[int] = Counter()
        sizes: dict[int, int] = {}
        for event in log.events():
            ids[event.id] += 1
            if event.type == "crash.test":
                per_batch[event.payload["batch"]] += 1
                sizes[event.payload["batch"]] = event.payload["size"]
        assert max(ids.values()) == 1, "an event was written twice"
        assert all(per_batch[b] == sizes[b] for b in per_batch), "a batch is only partly visible"
        assert acknowledged <= set(per_batch), "an acknowledged batch was lost"
        if round_no % 3 == 2:  # sometimes repair here, sometimes let the next writer do it
            log.repair()
            assert log.verify().ok
        log.close()

    final = EventLog(directory)
    final.repair()
    report = final.verify()
    assert report.ok, report.first_break
    repairs = [e for e in final.events() if e.type == "log.repaired"]
    # Most kills land mid-batch; each such kill leaves a tail that was set aside and recorded.
    assert len(repairs) >= 5, f"only {len(repairs)} of 24 kills left a torn tail"
    quarantined = sorted((directory / "quarantine").iterdir())
    assert len(quarantined) == len(repairs)
    assert sum(p.stat().st_size for p in quarantined) == sum(e.payload["bytes"] for e in repairs)
    final.close()
