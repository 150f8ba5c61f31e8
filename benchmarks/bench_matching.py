"""Playbook matching: throughput against 10 to 10,000 playbooks, most unrelated; explain's cost.

Beside it, in the same run, the original AIOS way (re-read the playbook file and scan every
playbook for each event), so the gain is a ratio on this machine.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

from benchmarks.common import finish, in_fresh_process, temp_home

SIZES = (10, 100, 1000, 10_000)
TARGETS = {"match_events_per_s_1000": (">=", 100_000)}


def _playbooks(count: int) -> list[dict[str, Any]]:
    """Five playbooks that concern the events, the rest about unrelated event types."""
    relevant = [
        {
            "id": "cpu_high",
            "trigger": {
                "type": "resource.high",
                "conditions": [
                    {"path": "payload.resource", "op": "eq", "value": "cpu"},
                    {"path": "payload.value", "op": "gte", "value": 80},
                ],
            },
            "actions": [{"type": "wait", "duration": "1s"}],
        },
        {
            "id": "disk_high",
            "trigger": {
                "type": "resource.*",
                "conditions": {
                    "all": [
                        {"path": "payload.resource", "op": "eq", "value": "disk"},
                        {"not": {"path": "labels.mount", "op": "startswith", "value": "/boot"}},
                    ]
                },
            },
            "actions": [{"type": "wait", "duration": "1s"}],
        },
        {
            "id": "timeouts",
            "trigger": {
                "type": "task.failed",
                "conditions": {"path": "payload.error", "op": "regex", "value": "(?i)time.?out"},
            },
            "actions": [{"type": "wait", "duration": "1s"}],
        },
        {
            "id": "writer_errors",
            "trigger": {
                "type": "task.failed",
                "conditions": {"path": "labels.agent", "op": "in", "value": ["writer", "x"]},
            },
            "actions": [{"type": "wait", "duration": "1s"}],
        },
        {
            "id": "seed_form",
            "trigger": {
                "event_type": "resource.high",
                "conditions": {"resource": "memory", "threshold": 85},
            },
            "actions": [{"type": "kill_process", "target": "idle_agents"}],
        },
    ]
    unrelated = [
        {
            "id": f"unrelated_{i}",
            "trigger": {
                "type": f"service{i}.degraded" if i % 2 else f"queue{i}.*",
                "conditions": {"path": "payload.value", "op": "gt", "value": i},
            },
            "actions": [{"type": "wait", "duration": "1s"}],
        }
        for i in range(max(0, count - len(relevant)))
    ]
    return relevant + unrelated


def _events(count: int) -> list[dict[str, Any]]:
    kinds = [
        {"type": "resource.high", "payload": {"resource": "cpu", "value": 91.0}},
        {
            "type": "resource.high",
            "payload": {"resource": "disk", "value": 95.0},
            "labels": {"mount": "/data"},
        },
        {
            "type": "task.failed",
            "payload": {"error": "tool timed out"},
            "labels": {"agent": "writer"},
        },
        {"type": "task.completed", "payload": {"latency_ms": 120}, "labels": {"agent": "reader"}},
        {"type": "heartbeat.tick", "payload": {}},
    ]
    return [kinds[i % len(kinds)] for i in range(count)]


def phase_match(count: int, events: int) -> dict[str, Any]:
    from aios.bus import coerce_event
    from aios.playbooks.matcher import PlaybookIndex
    from aios.playbooks.model import Playbook

    index = PlaybookIndex(Playbook.model_validate(p) for p in _playbooks(count))
    stream = [coerce_event(e) for e in _events(events)]
    matched = 0
    start = time.perf_counter()
    for event in stream:
        matched += len(index.match(event))
    elapsed = time.perf_counter() - start
    explain_start = time.perf_counter()
    explained = 0
    for event in stream[:2000]:
        for playbook_id in ("cpu_high", "disk_high", "timeouts"):
            index.explain(playbook_id, event)
            explained += 1
    explain_elapsed = time.perf_counter() - explain_start
    return {
        "playbooks": count,
        "events_per_s": round(events / elapsed),
        "matches": matched,
        "explain_us": round(explain_elapsed / explained * 1e6, 2),
    }


def phase_baseline(count: int, events: int, directory: str) -> dict[str, Any]:
    """The original matcher: read the playbook file again for every event and scan them all."""
    import fnmatch

    path = Path(directory) / "playbooks.json"
    path.write_text(json.dumps(_playbooks(count)))
    stream = _events(events)
    matched = 0
    start = time.perf_counter()
    for event in stream:
        for playbook in json.loads(path.read_text()):
            trigger = playbook["trigger"]
            if fnmatch.fnmatch(event["type"], trigger.get("type") or trigger.get("event_type")):
                matched += 1
    elapsed = time.perf_counter() - start
    return {"playbooks": count, "events_per_s": round(events / elapsed), "matches": matched}


def run(quick: bool = False) -> dict[str, Any]:
    results: dict[str, Any] = {}
    scratch = temp_home()
    try:
        for size in SIZES:
            events = 20_000 if quick else 200_000
            # The median of three runs: this machine's speed drifts from minute to minute.
            runs = [in_fresh_process(phase_match, size, events) for _ in range(3)]
            measured = sorted(runs, key=lambda r: r["events_per_s"])[1]
            results[f"match_events_per_s_{size}"] = measured["events_per_s"]
            results[f"explain_us_{size}"] = measured["explain_us"]
        baseline = in_fresh_process(phase_baseline, 1000, 100 if quick else 300, str(scratch))
        results["baseline_reread_events_per_s_1000"] = baseline["events_per_s"]
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    results["ratio_vs_baseline_1000"] = round(
        results["match_events_per_s_1000"] / results["baseline_reread_events_per_s_1000"]
    )
    results["flatness_10000_vs_10"] = round(
        results["match_events_per_s_10000"] / results["match_events_per_s_10"], 2
    )
    return finish("matching", results, TARGETS, write=not quick)
