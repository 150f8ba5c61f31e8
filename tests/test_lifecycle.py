"""The agent lifecycle: the transition table, refusals, cooldown, and `aios agents`."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

import aios
from aios.agents.consumer import run_lifecycle
from aios.agents.lifecycle import Lifecycle
from aios.agents.registry import pick_agent
from aios.event import Event
from aios.home import HomePaths
from aios.store import open_store
from tests.conftest import run_aios

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def ev(kind: str, agent: str = "w", minutes: float = 0) -> Event:
    return Event.create(type=kind, labels={"agent": agent}, time=T0 + timedelta(minutes=minutes))


def states(events: list[str]) -> list[str]:
    lifecycle = Lifecycle()
    seen = []
    for kind in events:
        lifecycle.feed(ev(kind))
        seen.append(lifecycle.state("w").state)
    return seen


@pytest.mark.parametrize(
    ("events", "expected"),
    [
        (["task.started", "task.completed"], ["running", "idle"]),
        (["task.started", "task.failed"], ["running", "idle"]),
        (
            [
                "task.started",
                "task.failed",
                "task.started",
                "task.failed",
                "task.started",
                "task.failed",
            ],
            ["running", "idle", "running", "idle", "running", "degraded"],
        ),
        (
            [
                "task.started",
                "task.failed",
                "task.started",
                "task.completed",
                "task.started",
                "task.failed",
            ],
            ["running", "idle", "running", "idle", "running", "idle"],
        ),
        (["task.started", "agent.memory_high"], ["running", "blocked"]),
        (
            ["task.started", "agent.memory_high", "agent.degraded"],
            ["running", "blocked", "degraded"],
        ),
        (["agent.degraded", "agent.unrecoverable"], ["degraded", "archived"]),
        (
            ["agent.degraded", "agent.unrecoverable", "agent.reset"],
            ["degraded", "archived", "idle"],
        ),
        (["agent.degraded", "agent.reset", "task.started"], ["degraded", "idle", "running"]),
    ],
)
def test_transitions(events: list[str], expected: list[str]) -> None:
    assert states(events) == expected


def test_illegal_transitions_are_refused_with_a_reason_once() -> None:
    lifecycle = Lifecycle()
    for kind in ("agent.degraded", "agent.unrecoverable"):
        lifecycle.feed(ev(kind))
    refused = lifecycle.feed(ev("task.started"))
    assert [(t.allowed, t.from_state, t.to_state) for t in refused] == [
        (False, "archived", "running")
    ]
    assert "archived" in refused[0].reason and refused[0].event()["type"] == (
        "agent.transition_refused"
    )
    assert lifecycle.feed(ev("task.started")) == []  # said once
    assert lifecycle.state("w").state == "archived"


def test_blocked_returns_to_idle_after_the_cooldown() -> None:
    lifecycle = Lifecycle(cooldown=timedelta(minutes=5))
    lifecycle.feed(ev("task.started"))
    lifecycle.feed(ev("agent.memory_high", minutes=1))
    assert lifecycle.tick(T0 + timedelta(minutes=4)) == []
    [moved] = lifecycle.tick(T0 + timedelta(minutes=6, seconds=1))
    assert (moved.from_state, moved.to_state, moved.reason) == (
        "blocked",
        "idle",
        "cooldown passed",
    )


def test_states_are_derived_from_the_log_and_survive_restarts(home: HomePaths) -> None:
    for kind in ("task.started", "task.failed", "task.started", "task.failed"):
        aios.emit(kind, labels={"agent": "writer"}, source="writer")
    now = datetime.now(UTC)
    first = run_lifecycle(aios.bus(), home, now)
    assert [e.payload["to"] for e in first] == ["running", "idle", "running", "idle"]
    # A new run (another process) resumes: the third failure degrades the agent.
    aios.emit("task.started", labels={"agent": "writer"}, source="writer")
    aios.emit(
        "task.failed", {"error": "tool timed out"}, labels={"agent": "writer"}, source="writer"
    )
    second = run_lifecycle(aios.bus(), home, now)
    assert [e.payload["to"] for e in second] == ["running", "degraded"]
    assert run_lifecycle(aios.bus(), home, now) == []  # nothing new, nothing repeated


def test_pick_agent_and_aios_agents(home: HomePaths) -> None:
    for _ in range(3):
        aios.emit("task.started", labels={"agent": "good"})
        aios.emit("task.completed", {"latency_ms": 50}, labels={"agent": "good"})
    aios.emit("task.started", labels={"agent": "busy"})
    for _ in range(3):
        aios.emit("task.started", labels={"agent": "bad"})
        aios.emit("task.failed", {"error": "boom"}, labels={"agent": "bad"})
    run_lifecycle(aios.bus(), home, datetime.now(UTC))
    with open_store(home) as con:
        assert pick_agent(con, datetime.now(UTC)) == "good"
        assert pick_agent(con, datetime.now(UTC), candidates=["busy", "bad"]) is None
    listed = json.loads(run_aios("agents", "--json", home=home).stdout)
    by_agent = {a["agent"]: a for a in listed}
    assert by_agent["good"]["state"] == "idle" and by_agent["good"]["success_rate"] == 1.0
    assert by_agent["busy"]["state"] == "running"
    assert by_agent["bad"]["state"] == "degraded"
    assert by_agent["bad"]["success_rate"] == 0.0 and by_agent["bad"]["last_error"] == "boom"
