"""``aios demo``: the whole scenario for real (``aios up`` on a temporary home, a real workload),
checked against the demo home's own log; and the demo never clears a home it did not make."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psutil
import pytest

import aios
from aios import runtime
from aios.actions.base import render
from aios.demo.agent_events import flow_run_read, tool_timeout
from aios.demo.config_file import cpu_plan
from aios.demo.demo_home import MARKER, DemoHomeError, is_demo_home, prepare
from aios.demo.evidence import Summary, stored_events
from aios.demo.identities import (
    APPROVER,
    CLEAN_TEMP,
    FLAKY_AGENT,
    FLAKY_TASK,
    KILL_IDLE,
    RAISE_TIMEOUT,
    TENFOLD_TIMEOUT,
)
from aios.demo.playbooks import raise_tool_timeout
from aios.demo.scenario import Facts
from aios.home import HomePaths
from aios.loop.analyst import failure_patterns
from aios.observe.flow_runs import report_flow_runs
from aios.prefect_api import MemoryPrefectAPI
from aios.probes import PROBES, ProbeContext
from aios.store import open_store
from tests.orchestration_helpers import AIOS_BIN, free_port

STAGES = [
    "AIOS up",
    "Workload",
    "Detect: CPU high",
    "Approval (demo mode)",
    "Remediate: idle agent",
    "Detect: tool timeouts",
    "Fix that failed: rolled back",
    "Second fix: verified",
    "Detect: disk filling",
    "Remediate: temp dir",
    "Learn: a lesson",
    "Score",
]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIOS_", "PREFECT_"))}
    env.update(NO_COLOR="1", COLUMNS="200", **extra)
    return env


def _cli(home: Path, *args: str) -> Any:
    """``aios ARGS --json`` on the demo's home, parsed."""
    done = subprocess.run(
        [str(AIOS_BIN), *args, "--json"],
        capture_output=True,
        text=True,
        env=_env(AIOS_HOME=str(home)),
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _sql(home: Path, query: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = _cli(home, "events", "sql", query)
    for row in rows:
        if isinstance(row.get("payload"), str):
            row["payload"] = json.loads(row["payload"])
    return rows


def _processes_of(home: Path) -> list[str]:
    """Processes still running for the demo home: its path on their command line, or their
    AIOS_HOME / PREFECT_HOME inside it."""
    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        try:
            cmdline = " ".join(proc.info.get("cmdline") or [])
            environ = proc.environ()
        except (psutil.Error, OSError):
            continue
        homes = (environ.get("AIOS_HOME", ""), environ.get("PREFECT_HOME", ""))
        if str(home) in cmdline or any(h.startswith(str(home)) for h in homes if h):
            found.append(f"{proc.pid}: {cmdline[:200]}")
    return found


# ---------------------------------------------------------------- fast: the home
def test_refuses_a_directory_it_did_not_make(tmp_path: Path) -> None:
    home = tmp_path / "someones-aios"
    home.mkdir()
    (home / "config.toml").write_text("# a person's own settings\n")
    done = subprocess.run(
        [str(AIOS_BIN), "demo", "--exit", "--home", str(home)],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "is not an aios demo home" in done.stderr
    assert str(home) in done.stderr
    assert [p.name for p in home.iterdir()] == ["config.toml"]
    assert (home / "config.toml").read_text() == "# a person's own settings\n"


def test_refuses_a_file_and_a_demo_home_still_running(tmp_path: Path) -> None:
    afile = tmp_path / "afile"
    afile.write_text("x")
    with pytest.raises(DemoHomeError, match="not a directory"):
        prepare(afile)
    site = prepare(tmp_path / "demo")
    (site.root / "up.json").write_text(
        json.dumps({"pid": os.getpid(), "ui_url": "http://127.0.0.1:1"})
    )
    with pytest.raises(DemoHomeError, match="still running"):
        prepare(site.root)
    assert (site.root / "up.json").exists()


def test_an_earlier_demo_home_starts_afresh(tmp_path: Path) -> None:
    site = prepare(tmp_path / "demo")
    assert is_demo_home(site.root)
    (site.root / "events" / "old.jsonl").write_text("{}\n")
    (site.workload / "leftover.tmp").write_text("old")
    again = prepare(site.root)
    assert is_demo_home(again.root)
    assert not (again.root / "events" / "old.jsonl").exists()
    assert not (again.workload / "leftover.tmp").exists()
    assert (again.root / MARKER).is_file()


@pytest.mark.parametrize(
    ("cpus", "burners", "raise_at", "lowered"),
    [(1, 1, 80.0, False), (2, 2, 80.0, False), (8, 8, 80.0, False), (32, 8, 18.8, True)],
)
def test_cpu_burners_and_threshold(cpus: int, burners: int, raise_at: float, lowered: bool) -> None:
    plan = cpu_plan(cpus)
    assert (plan.burners, plan.raise_at, plan.lowered) == (burners, raise_at, lowered)


def test_a_summary_claims_nothing_without_events() -> None:
    rows = Summary([], Facts()).rows()
    assert [row.stage for row in rows] == STAGES
    assert not any(row.happened for row in rows)
    assert not any(row.evidence for row in rows)


def test_a_failed_flow_run_read_from_prefect_is_the_same_failure(home: HomePaths) -> None:
    """The monitor reads the flaky agent's failed flow runs from Prefect as task.failed of the
    agent too: the learner counts them with the agent's own timeouts (one signature, so one
    lesson), while the demo's count of timeouts and its playbooks' verify leave them out."""
    from aios.demo.flaky_agent import QuietServer, SlowSearch, failed_run, search

    class Slow(SlowSearch):
        latency = 0.5

    server = QuietServer(("127.0.0.1", 0), Slow)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    labels = {"config_file": str(home.root / "researcher.json")}
    try:
        with (
            pytest.raises(TimeoutError) as timed_out,
            aios.track(FLAKY_TASK, agent=FLAKY_AGENT, labels=labels),
        ):
            search(f"http://127.0.0.1:{server.server_address[1]}/search", 0.05)
    finally:
        server.shutdown()
        server.server_close()
    prefect = MemoryPrefectAPI()
    run = prefect.add_flow_run(
        "FAILED", flow_name=FLAKY_AGENT, message=failed_run(timed_out.value).message
    )
    since = datetime.now(UTC) - timedelta(hours=1)
    report_flow_runs(runtime.default_bus(), home, prefect, since)

    events = stored_events(home)
    (own,) = [e for e in events if tool_timeout(e)]
    (read,) = [e for e in events if flow_run_read("task.failed")(e)]
    assert read.labels["flow_run_id"] == run["id"]
    assert own.labels["agent"] == read.labels["agent"] == FLAKY_AGENT
    with open_store(home) as con:
        patterns = failure_patterns(con, since, datetime.now(UTC) + timedelta(minutes=1))
    assert [(p.signature, p.count) for p in patterns] == [
        ("TimeoutError: tool <str> did not answer within <n> s", 2)
    ]
    verify = raise_tool_timeout()["verify"]
    params = {"type": verify["type"], "labels": render(verify["labels"], own)}
    absent = PROBES["event_absent"].read
    assert absent(params, ProbeContext(read_events_since=lambda: [own])) == 1
    assert absent(params, ProbeContext(read_events_since=lambda: [read])) == 0


# ------------------------------------------------------------ slow: the whole demo
@pytest.mark.slow
def test_demo_end_to_end(tmp_path: Path) -> None:
    home = tmp_path / "demo-home"
    started = time.monotonic()
    done = subprocess.run(
        [str(AIOS_BIN), "demo", "--exit", "--json", "--home", str(home)],
        capture_output=True,
        text=True,
        env=_env(PREFECT_SERVER_API_PORT=str(free_port())),
        timeout=540,
        check=False,
    )
    took = time.monotonic() - started
    assert done.returncode == 0, done.stderr[-6000:]
    summary = json.loads(done.stdout)
    assert summary["ok"] is True
    assert summary["aios_home"] == str(home)
    assert summary["prefect_ui"].startswith("http://127.0.0.1:")
    assert [s["stage"] for s in summary["stages"]] == STAGES
    assert all(s["happened"] for s in summary["stages"]), summary["stages"]
    assert took < 300, f"the demo took {took:.0f} s"
    # What a person reads at the end.
    assert "Prefect UI:" in done.stderr and "Dashboard:" in done.stderr
    assert "DEMO MODE: approving it automatically" in done.stderr

    # Nothing is left running.
    deadline = time.monotonic() + 15
    while _processes_of(home) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert _processes_of(home) == []
    pids = summary["facts"]["cpu_burner_pids"] + [summary["facts"]["flaky_agent_pid"]]
    assert not any(psutil.pid_exists(p) and psutil.Process(p).status() != "zombie" for p in pids)

    # Every event the summary names is in the demo home's log, with that type.
    claimed = {e["id"]: e["type"] for s in summary["stages"] for e in s["evidence"]}
    ids = ", ".join(f"'{i}'" for i in claimed)
    stored = _sql(home, f"SELECT CAST(id AS VARCHAR) AS id, type FROM events WHERE id IN ({ids})")
    assert {row["id"]: row["type"] for row in stored} == claimed
    assert _cli(home, "events", "verify")["ok"] is True

    # The approval went through the Prefect pause, answered by the demo, and said so.
    decided = _sql(
        home,
        "SELECT type, payload FROM events WHERE source = 'aios.reactor' AND type LIKE "
        f"'approval.%' AND payload->>'playbook' = '{KILL_IDLE}' ORDER BY seq",
    )
    assert [row["type"] for row in decided] == ["approval.requested", "approval.granted"]
    assert decided[1]["payload"]["approver"] == APPROVER
    waiting = _sql(home, "SELECT payload FROM events WHERE type = 'approval.waiting'")
    assert waiting and waiting[0]["payload"]["flow_run_id"]

    # The flaky agent ran as a Prefect flow on the demo's server: every tool call in a flow
    # run, and the monitor read failed runs back from Prefect (and, after the fix, completed
    # ones), under the agent's name.
    calls = _sql(
        home,
        "SELECT type, payload FROM events WHERE type IN ('task.failed', 'task.completed') "
        f"AND source = '{FLAKY_AGENT}'",
    )
    assert calls and all(row["payload"].get("flow_run_id") for row in calls)
    read = _sql(
        home,
        "SELECT type, CAST(labels->>'flow_run_id' AS VARCHAR) AS run, payload FROM events "
        f"WHERE source = 'aios.prefect' AND labels->>'agent' = '{FLAKY_AGENT}'",
    )
    failed_runs = {row["run"] for row in read if row["type"] == "task.failed"}
    assert failed_runs and {row["type"] for row in read} == {"task.failed", "task.completed"}
    assert failed_runs <= {row["payload"]["flow_run_id"] for row in calls}
    assert all(
        row["payload"]["error"].startswith("TimeoutError: tool 'search' did not answer")
        for row in read
        if row["type"] == "task.failed"
    )

    # Outcomes: the idle agent killed, one fix rolled back, the others verified.
    outcomes = {
        row["payload"]["playbook"]: row["payload"]["outcome"]
        for row in _sql(
            home,
            "SELECT payload FROM events WHERE type = 'remediation.finished' "
            "AND source = 'aios.reactor'",
        )
    }
    assert outcomes == {
        KILL_IDLE: "succeeded",
        RAISE_TIMEOUT: "rolled_back",
        TENFOLD_TIMEOUT: "succeeded",
        CLEAN_TEMP: "succeeded",
    }
    rollbacks = _sql(
        home,
        "SELECT payload FROM events WHERE type = 'rollback.completed' "
        f"AND payload->>'playbook' = '{RAISE_TIMEOUT}' AND payload->>'action' = 'config.update'",
    )
    assert len(rollbacks) == 1 and "back to 0.5" in rollbacks[0]["payload"]["restored"]
    agent_config = json.loads((home / "workload" / "researcher.json").read_text())
    assert agent_config["tools"]["timeout_s"] == 5.0  # the fix that held stays
    assert not list((home / "workload" / "scratch").glob("*.tmp"))
    assert not psutil.pid_exists(summary["facts"]["idle_agent_pid"])

    # The summary's words agree with the events.
    rows = {s["stage"]: s for s in summary["stages"]}
    high = _sql(
        home,
        "SELECT payload FROM events WHERE type = 'resource.high' AND payload->>'resource' = 'cpu'",
    )
    assert f"CPU {high[0]['payload']['value']:g}%" in rows["Detect: CPU high"]["what"]
    assert "0.5 -> 1.0" in rows["Fix that failed: rolled back"]["what"]
    assert "0.5 -> 5.0" in rows["Second fix: verified"]["what"]
    assert " in flow run " in rows["Workload"]["what"]
    assert "of its flow runs as Failed" in rows["Detect: tool timeouts"]["what"]

    # A lesson was learnt, and verified by the fix that held.
    lessons = _cli(home, "lessons", "list")
    assert len(lessons) == 1
    assert lessons[0]["state"] == "verified"
    assert (lessons[0]["fix"] or {}).get("playbook") == TENFOLD_TIMEOUT
    assert lessons[0]["lesson_id"] in rows["Learn: a lesson"]["what"]
    scores = _sql(home, "SELECT payload FROM events WHERE type = 'score.updated' ORDER BY seq")
    assert scores and scores[-1]["payload"]["score"] is not None
