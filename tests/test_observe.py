"""Observing: real psutil readings, hysteresis, bursts, baselines, the inbox and HTTP ingest."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

import aios
from aios.config import Threshold, load_config
from aios.home import HomePaths
from aios.log import EventLog
from aios.observe.agents import agent_processes, parse_patterns
from aios.observe.detect import active_anomalies, anomaly_events, baselines, bursts
from aios.observe.host import HostCollector, gpus
from aios.observe.http_ingest import create_app, ensure_token
from aios.observe.inbox import inbox_dir, ingest_inbox
from aios.observe.monitor import run_cycle
from aios.observe.thresholds import Reading, evaluate
from aios.store import open_store
from tests.conftest import run_aios


@pytest.fixture
def children() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for child in started:
        child.kill()
        child.wait()


def spawn(
    children: list[subprocess.Popen[bytes]], code: str, marker: str
) -> subprocess.Popen[bytes]:
    child = subprocess.Popen([sys.executable, "-c", code, marker])
    children.append(child)
    return child


# ------------------------------------------------------------ real readings
def test_a_cpu_burning_child_shows_up_in_the_readings(
    children: list[subprocess.Popen[bytes]],
) -> None:
    marker = f"aios-test-burner-{uuid.uuid4().hex[:8]}"
    burner = spawn(children, "while True: pass", marker)
    time.sleep(0.3)
    snapshot = HostCollector(sample_s=1.0).collect()
    mine = [p for p in snapshot.processes if p.pid == burner.pid]
    assert mine and mine[0].cpu_percent >= 50  # one core, nearly all of it
    assert snapshot.cpu_percent >= 100 * 0.5 / len(snapshot.per_cpu) - 5
    assert len(snapshot.per_cpu) == os.cpu_count()


def test_a_memory_hungry_agent_shows_its_rss(children: list[subprocess.Popen[bytes]]) -> None:
    marker = f"aios-test-hog-{uuid.uuid4().hex[:8]}"
    spawn(
        children,
        "import time\nb = bytearray(200 * 2**20)\nfor i in range(0, len(b), 4096): b[i] = 1\n"
        "time.sleep(60)",
        marker,
    )
    deadline = time.monotonic() + 10
    while True:
        snapshot = HostCollector(sample_s=0.2).collect()
        found = agent_processes(snapshot.processes, [f"hog=*{marker}*"])
        if found["hog"].rss_mb >= 180 or time.monotonic() > deadline:
            break
    assert len(found["hog"].processes) == 1
    assert found["hog"].rss_mb >= 180


def test_disks_and_no_gpu_without_nvidia_smi(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # nvidia-smi is nowhere
    assert gpus() == ([], None)
    snapshot = HostCollector(sample_s=0.1).collect()
    assert snapshot.gpus == [] and snapshot.notes == []
    assert "/" in [d.mount for d in snapshot.disks]
    assert 0 <= snapshot.memory_percent <= 100


def test_pattern_names() -> None:
    assert parse_patterns(["writer=*writer_agent.py*", "*reader.py*"]) == [
        ("writer", "*writer_agent.py*"),
        ("reader.py", "*reader.py*"),
    ]


# -------------------------------------------------------------- hysteresis
def test_a_value_hovering_at_the_line_does_not_flap() -> None:
    limits = {"cpu": Threshold(raise_at=80, clear_at=70)}
    active: dict[str, datetime] = {}
    start = datetime(2026, 1, 1, tzinfo=UTC)
    seen = []
    for minute, value in enumerate([79, 81, 79.5, 80.5, 75, 71, 69, 79, 80]):
        now = start + timedelta(minutes=minute)
        reading = Reading("cpu", {"host": "h", "resource": "cpu"}, value, {})
        for event in evaluate([reading], limits, active, now):
            seen.append((minute, event["type"], event["payload"].get("high_for_s")))
            if event["type"] == "resource.high":
                active[reading.key] = now
            else:
                active.pop(reading.key)
    assert seen == [
        (1, "resource.high", 0),
        (6, "resource.recovered", 300.0),  # five minutes above, reported when it cleared
        (8, "resource.high", 0),
    ]


def test_what_is_high_survives_a_restart(home: HomePaths) -> None:
    config = load_config(home).model_copy(deep=True)
    config.monitor.thresholds["memory"] = Threshold(raise_at=0, clear_at=0)  # always high
    config.monitor.record_score = False
    first = run_cycle(aios.bus(), home, config, HostCollector(sample_s=0.1))
    assert "resource.high" in [
        e.type for e in first.emitted if e.labels.get("resource") == "memory"
    ]
    again = run_cycle(aios.bus(), home, config, HostCollector(sample_s=0.1))
    assert "resource.high" not in [
        e.type for e in again.emitted if e.labels.get("resource") == "memory"
    ]


# --------------------------------------------------------- bursts, baselines
def test_a_burst_of_failures_degrades_the_agent_once(home: HomePaths) -> None:
    now = datetime.now(UTC)
    for _ in range(3):
        aios.emit("task.failed", {"error": "tool timed out"}, labels={"agent": "writer"})
    aios.emit("task.failed", {"error": "x"}, labels={"agent": "reader"})
    with open_store(home) as con:
        first = bursts(con, now + timedelta(seconds=1), 3, timedelta(minutes=10))
    assert [(e["labels"]["agent"], e["payload"]["failures"]) for e in first] == [("writer", 3)]
    aios.bus().emit_many([{**e, "source": "aios.monitor"} for e in first])
    aios.emit("task.failed", labels={"agent": "writer"})
    with open_store(home) as con:
        again = bursts(con, now + timedelta(seconds=2), 3, timedelta(minutes=10))
    assert again == []


def test_a_slow_agent_is_an_anomaly_against_its_own_baseline(home: HomePaths) -> None:
    now = datetime.now(UTC)
    history = []
    for hour in range(1, 25):
        for n in range(6):
            history.append(
                {
                    "type": "task.completed",
                    "time": now - timedelta(hours=hour, minutes=n),
                    "labels": {"agent": "writer"},
                    "payload": {"latency_ms": 100 + (hour * 7 + n) % 11},
                }
            )
    recent = [
        {
            "type": "task.completed",
            "time": now - timedelta(minutes=n),
            "labels": {"agent": "writer"},
            "payload": {"latency_ms": 400},
        }
        for n in range(1, 7)
    ]
    aios.emit_many(history + recent)
    settings: dict[str, Any] = {
        "history": timedelta(days=7),
        "recent": timedelta(minutes=15),
        "min_buckets": 6,
        "min_samples": 5,
    }
    with open_store(home) as con:
        found = baselines(con, now, **settings)
        events = anomaly_events(found, active_anomalies(con), 3.5)
    latency = next(b for b in found if b.metric == "latency_ms")
    assert latency.median == pytest.approx(105, abs=6)
    assert latency.z > 3.5
    detected = [e for e in events if e["type"] == "anomaly.detected"]
    assert detected and detected[0]["payload"]["baseline"] == pytest.approx(105, abs=6)
    assert detected[0]["payload"]["deviation"] == pytest.approx(295, abs=6)
    aios.bus().emit_many([{**e, "source": "aios.monitor"} for e in detected])
    later = now + timedelta(minutes=30)
    aios.emit_many(
        [
            {
                "type": "task.completed",
                "time": later - timedelta(minutes=n),
                "labels": {"agent": "writer"},
                "payload": {"latency_ms": 104},
            }
            for n in range(1, 7)
        ]
    )
    with open_store(home) as con:
        cleared = anomaly_events(baselines(con, later, **settings), active_anomalies(con), 3.5)
    assert [e["type"] for e in cleared] == ["anomaly.cleared"]


def test_too_little_history_gives_no_verdict(home: HomePaths) -> None:
    aios.emit_many(
        [{"type": "task.completed", "labels": {"agent": "new"}, "payload": {"latency_ms": 5000}}]
        * 10
    )
    with open_store(home) as con:
        found = baselines(
            con,
            datetime.now(UTC) + timedelta(seconds=1),
            history=timedelta(days=7),
            recent=timedelta(minutes=15),
            min_buckets=6,
            min_samples=5,
        )
    assert found == []


# ---------------------------------------------------------------- the inbox
def drop(home: HomePaths, name: str, lines: list[Any]) -> Path:
    directory = inbox_dir(home)
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / f".{name}"
    tmp.write_bytes(
        b"".join(
            (line if isinstance(line, bytes) else orjson.dumps(line)) + b"\n" for line in lines
        )
    )
    final = directory / name
    tmp.rename(final)
    return final


def test_the_inbox_takes_each_file_once_and_quarantines_bad_lines(home: HomePaths) -> None:
    drop(
        home,
        "a.jsonl",
        [
            {"type": "agent.note", "payload": {"n": 1}},
            b"{not json",
            {"type": "Bad Type"},
            {"type": "agent.note", "payload": {"n": 2}, "labels": {"agent": "writer"}},
            [1, 2],
            {"type": "agent.note", "id": str(uuid.uuid4())},
        ],
    )
    (inbox_dir(home) / ".half-written.jsonl").write_text('{"type": "agent.note"}\n')
    report = ingest_inbox(aios.bus(), home)
    assert (report.files, report.accepted, report.rejected) == (1, 2, 4)
    notes = [e for e in EventLog(home.events).events() if e.type == "agent.note"]
    assert [e.payload["n"] for e in notes] == [1, 2]
    assert notes[0].source == "inbox:a.jsonl"
    [rejected_file] = (inbox_dir(home) / "rejected").iterdir()
    reasons = [json.loads(line) for line in rejected_file.read_text().splitlines()]
    assert [r["line"] for r in reasons] == [2, 3, 5, 6]
    assert "not JSON" in reasons[0]["reason"] and "type" in reasons[1]["reason"]
    assert (inbox_dir(home) / ".half-written.jsonl").exists()  # not complete: not taken
    assert ingest_inbox(aios.bus(), home).files == 0


def test_a_file_whose_events_were_committed_before_a_crash_is_not_taken_twice(
    home: HomePaths,
) -> None:
    drop(home, "b.jsonl", [{"type": "agent.note", "payload": {"n": 1}}])
    ingest_inbox(aios.bus(), home)
    [done] = (inbox_dir(home) / "done").iterdir()
    done.rename(inbox_dir(home) / "processing" / done.name)  # as if it crashed before moving
    report = ingest_inbox(aios.bus(), home)
    assert report.skipped_already_consumed == 1 and report.accepted == 0
    assert sum(1 for e in EventLog(home.events).events() if e.type == "agent.note") == 1


def test_the_same_bytes_dropped_again_are_new_events_and_nothing_is_overwritten(
    home: HomePaths,
) -> None:
    lines = [{"type": "agent.note", "payload": {"n": 1}}]
    drop(home, "same.jsonl", lines)
    ingest_inbox(aios.bus(), home)
    drop(home, "same.jsonl", lines)  # the same batch sent again: new events, not a duplicate
    ingest_inbox(aios.bus(), home)
    leftover = inbox_dir(home) / "processing" / f"{uuid.uuid4()}-same.jsonl"
    leftover.write_bytes(b'{"type": "agent.other"}\n')  # a crashed run's claim
    drop(home, "same.jsonl", [{"type": "agent.third"}])  # a new file of the same name
    ingest_inbox(aios.bus(), home)
    types = [e.type for e in EventLog(home.events).events() if e.type.startswith("agent.")]
    assert sorted(types) == ["agent.note", "agent.note", "agent.other", "agent.third"]


def test_a_symlink_in_the_inbox_is_never_read(home: HomePaths, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("root:HASH:0:0\n")
    inbox_dir(home).mkdir(parents=True, exist_ok=True)
    (inbox_dir(home) / "evil.jsonl").symlink_to(secret)
    report = ingest_inbox(aios.bus(), home)
    assert report.rejected == 1 and report.accepted == 0
    [rejected] = (inbox_dir(home) / "rejected").iterdir()
    assert "HASH" not in rejected.read_text() and "symlink" in rejected.read_text()
    assert rejected.stat().st_mode & 0o077 == 0


# ---------------------------------------------------------------- HTTP ingest
@pytest.fixture
def client(home: HomePaths) -> Iterator[tuple[TestClient, str]]:
    token = ensure_token(home)
    app = create_app(aios.bus(), token, max_body_bytes=4096)
    with TestClient(app) as test_client:
        yield test_client, token


def test_http_ingest_accepts_good_events_durably(
    home: HomePaths, client: tuple[TestClient, str]
) -> None:
    http, token = client
    auth = {"Authorization": f"Bearer {token}"}
    one = http.post("/events", json={"type": "agent.note", "payload": {"n": 1}}, headers=auth)
    many = http.post(
        "/events", json=[{"type": "agent.note", "payload": {"n": i}} for i in (2, 3)], headers=auth
    )
    wrapped = http.post("/events", json={"events": [{"type": "agent.note"}]}, headers=auth)
    assert (one.status_code, many.status_code, wrapped.status_code) == (201, 201, 201)
    assert many.json()["accepted"] == 2 and len(many.json()["ids"]) == 2
    stored = [e.id for e in EventLog(home.events).events() if e.type == "agent.note"]
    assert stored == one.json()["ids"] + many.json()["ids"] + wrapped.json()["ids"]
    assert (home.root / "ingest.token").stat().st_mode & 0o077 == 0


@pytest.mark.parametrize(
    ("headers", "body", "status", "reason"),
    [
        ({}, b'{"type": "a.b"}', 401, "Bearer"),
        ({"Authorization": "Bearer wrong"}, b'{"type": "a.b"}', 401, "Bearer"),
        ({"Authorization": "Basic x"}, b'{"type": "a.b"}', 401, "Bearer"),
        (None, b"{nope", 400, "not JSON"),
        (None, b'[{"type": "a.b"}, {"type": "Nope"}]', 422, "[1].type"),
        (None, b'{"type": "a.b", "severity": "apocalyptic"}', 422, "[0].severity"),
        (None, b'{"type": "a.b", "payload": {"x": NaN}}', 400, "not JSON"),
        (None, b'{"type": "a.b", "id": "x"}', 422, "ids are assigned"),
        (None, b"[]", 422, "no events"),
        (None, b"[1]", 422, "JSON object"),
        (None, b'{"type": "a.b", "payload": {"blob": "' + b"x" * 5000 + b'"}}', 413, "larger"),
    ],
)
def test_http_ingest_refuses_bad_requests_with_a_reason_and_writes_nothing(
    home: HomePaths,
    client: tuple[TestClient, str],
    headers: dict[str, str] | None,
    body: bytes,
    status: int,
    reason: str,
) -> None:
    http, token = client
    response = http.post(
        "/events",
        content=body,
        headers=headers if headers is not None else {"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == status
    assert reason in response.json()["detail"]
    assert list(EventLog(home.events).events()) == []


def test_http_ingest_publishes_its_openapi_schema(client: tuple[TestClient, str]) -> None:
    http, _ = client
    schema = http.get("/openapi.json").json()
    assert "/events" in schema["paths"]
    assert set(schema["paths"]["/events"]["post"]["responses"]) >= {"201", "401", "422"}


# --------------------------------------------------------------- the command
def test_aios_monitor_once_prints_what_it_measured_and_emitted(home: HomePaths) -> None:
    home.config.write_text(
        '[monitor]\nsample = "0.2s"\n[monitor.thresholds]\nmemory = { raise = 0, clear = 0 }\n'
    )
    result = run_aios("monitor", "--once", "--json", home=home)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert 0 <= data["measured"]["cpu"] <= 100 and data["measured"]["disks"]
    emitted = [e["type"] for e in data["emitted"]]
    assert "resource.high" in emitted and "score.updated" in emitted
    types = [e.type for e in EventLog(home.events).events()]
    assert "host.metrics" in types and "task.started" in types  # the cycle tracks itself
