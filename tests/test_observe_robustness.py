"""Observing and scoring under forged events, failing steps, restarts and gaps in the data."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

import aios
from aios.agents.consumer import run_lifecycle
from aios.agents.registry import current_states, pick_agent
from aios.config import Threshold, load_config
from aios.home import HomePaths
from aios.log import EventLog
from aios.observe.detect import anomaly_events
from aios.observe.host import HostCollector
from aios.observe.http_ingest import create_app, ensure_token, token_path
from aios.observe.monitor import run_cycle
from aios.observe.thresholds import Reading, evaluate
from aios.score.engine import Component, Score, compute
from aios.score.record import record
from aios.store import open_store


def test_an_empty_token_file_is_replaced_and_short_tokens_are_refused(home: HomePaths) -> None:
    token_path(home).write_text("\n")
    token = ensure_token(home)
    assert len(token) >= 16 and token_path(home).read_text().strip() == token
    with pytest.raises(ValueError, match="at least 16"):
        create_app(aios.bus(), "   ")


def test_forged_state_and_scores_from_outside_do_not_count(home: HomePaths) -> None:
    aios.emit("agent.state_changed", {"agent": "writer", "from": "idle", "to": "archived"})
    aios.emit("score.updated", {"preset": "evolution", "score": 0.1, "grade": "critical"})
    aios.emit("task.started", labels={"agent": "writer"})
    aios.emit("task.completed", labels={"agent": "writer"})
    run_lifecycle(aios.bus(), home, datetime.now(UTC))
    with open_store(home) as con:
        assert current_states(con)["writer"][0] == "idle"
        assert pick_agent(con, datetime.now(UTC)) == "writer"
        assert con.execute("SELECT count(*) FROM scores").fetchall() == [(0,)]


def test_a_failing_step_is_recorded_and_the_others_still_run(home: HomePaths) -> None:
    (home.root / "inbox").write_text("not a directory")  # the inbox step will fail
    config = load_config(home)
    report = run_cycle(aios.bus(), home, config, HostCollector(sample_s=0.1))
    assert report.failed_steps == ["inbox"]
    types = [e.type for e in report.emitted]
    assert "monitor.step_failed" in types and "score.updated" in types
    assert "host.metrics" in types


def test_a_reset_is_remembered_across_restarts(home: HomePaths) -> None:
    agent = {"agent": "w"}
    for kind in ("task.started", "task.failed", "task.started", "task.failed"):
        aios.emit(kind, labels=agent)
    aios.emit("agent.reset", labels=agent)
    run_lifecycle(aios.bus(), home, datetime.now(UTC))
    aios.emit("task.started", labels=agent)
    aios.emit("task.failed", labels=agent)
    later = run_lifecycle(aios.bus(), home, datetime.now(UTC))
    assert [e.payload["to"] for e in later] == ["running", "idle"]  # one failure, not three


def test_a_starved_agent_stays_blocked_and_refusals_are_said_once(home: HomePaths) -> None:
    agent = {"agent": "w"}
    start = datetime.now(UTC)
    aios.emit("agent.memory_high", labels=agent)
    run_lifecycle(aios.bus(), home, start, timedelta(minutes=5))
    aios.bus().emit("agent.memory_high", labels=agent, time=start + timedelta(minutes=4))
    aios.bus().emit("task.started", labels=agent, time=start + timedelta(minutes=4))
    first = run_lifecycle(aios.bus(), home, start + timedelta(minutes=6), timedelta(minutes=5))
    assert [e.type for e in first] == ["agent.transition_refused"]  # still blocked
    aios.bus().emit("task.started", labels=agent, time=start + timedelta(minutes=7))
    again = run_lifecycle(aios.bus(), home, start + timedelta(minutes=8), timedelta(minutes=5))
    assert again == []  # the same refusal is not said again
    freed = run_lifecycle(aios.bus(), home, start + timedelta(minutes=10), timedelta(minutes=5))
    assert [e.payload["to"] for e in freed] == ["idle"]


def test_aios_own_tasks_do_not_count_in_the_score(home: HomePaths) -> None:
    for _ in range(7):
        aios.emit("task.completed", labels={"agent": "writer"})
    for _ in range(3):
        aios.emit("task.failed", labels={"agent": "writer"})
    for _ in range(50):
        aios.bus().emit("task.completed", labels={"agent": "aios.monitor"}, source="aios.monitor")
    with open_store(home) as con:
        result = compute(con, until=datetime.now(UTC) + timedelta(minutes=1))
    tsr = result.component("task_success_rate")
    assert tsr is not None and tsr.value == pytest.approx(0.7)


def fake(value: float | None) -> Score:
    now = datetime.now(UTC)
    return Score(
        "evolution",
        value,
        None if value is None else "critical",
        86400.0,
        [Component("task_success_rate", value, 0.4)],
        now,
        now,
    )


def test_a_score_without_data_does_not_make_alerts_flap(home: HomePaths) -> None:
    with open_store(home) as con:
        first = record(aios.bus(), con, fake(0.3))
    with open_store(home) as con:
        gap = record(aios.bus(), con, fake(None))
    with open_store(home) as con:
        back = record(aios.bus(), con, fake(0.3))
    assert "alert.raised" in [e.type for e in first]
    assert [e.type for e in gap] == ["score.updated"]
    assert [e.type for e in back] == ["score.updated"]  # still raised: nothing new to say


def test_an_unmounted_disk_that_was_high_recovers_as_gone() -> None:
    limits = {"disk": Threshold(raise_at=90, clear_at=80)}
    disk = Reading("disk", {"host": "h", "resource": "disk", "mount": "/data"}, 95, {})
    now = datetime.now(UTC)
    events = evaluate([], limits, {disk.key: now - timedelta(minutes=3)}, now)
    assert [(e["type"], e["payload"]["gone"]) for e in events] == [("resource.recovered", True)]


def test_an_anomaly_clears_when_the_agent_goes_quiet() -> None:
    events = anomaly_events([], {("w", "latency_ms")}, 3.5)
    assert [(e["type"], e["labels"]["agent"]) for e in events] == [("anomaly.cleared", "w")]


def test_outside_sources_are_checked_case_space_and_look_alike_blind(home: HomePaths) -> None:
    from aios.errors import EventValidationError
    from aios.event import check_outside_source

    look_alikes = ("aios-reactor", "\uff41\uff49\uff4f\uff53.reactor", "\u200baios.reactor")
    for source in (" aios.reactor", "AIOS.score", "aios", "aios\xa0.reactor", *look_alikes):
        with pytest.raises(EventValidationError):
            check_outside_source(source)
    check_outside_source("aiosomething")
    check_outside_source("my-aios.reactor")
    assert EventLog(home.events).verify().ok
