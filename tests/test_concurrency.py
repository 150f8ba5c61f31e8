"""Many processes appending and syncing at once: nothing lost, nothing twice, chain intact."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from aios.home import HomePaths
from aios.log import EventLog
from aios.store import open_store

WRITER = Path(__file__).with_name("concurrent_writer.py")
ROOT = Path(__file__).resolve().parent.parent
WORKERS, PER_WORKER = 8, 5000


@pytest.mark.slow
def test_eight_processes_append_and_sync_at_once(home: HomePaths) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "AIOS_HOME": str(home.root)}
    procs = [
        subprocess.Popen(
            [sys.executable, str(WRITER), str(w), str(PER_WORKER)],
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in range(WORKERS)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err  # no process ever saw DuckDB's lock error

    log = EventLog(home.events)
    report = log.verify()
    assert report.ok, report.first_break
    seen = [(e.payload["w"], e.payload["n"]) for e in log.events() if e.type == "load.event"]
    assert len(seen) == WORKERS * PER_WORKER
    assert set(seen) == {(w, n) for w in range(WORKERS) for n in range(PER_WORKER)}
    # Each writer's events appear in the order it wrote them.
    for w in range(WORKERS):
        mine = [n for worker, n in seen if worker == w]
        assert mine == sorted(mine)

    with open_store(home) as con:
        rows = con.execute(
            "SELECT count(*), count(DISTINCT id), count(DISTINCT seq), max(seq) FROM events "
            "WHERE type = 'load.event'"
        ).fetchall()
        per_worker = con.execute(
            "SELECT (payload->>'w')::INT AS w, count(*) FROM events GROUP BY w ORDER BY w"
        ).fetchall()
    assert rows[0][:3] == (40_000, 40_000, 40_000)
    assert per_worker == [(w, PER_WORKER) for w in range(WORKERS)]
    log.close()
