"""The score engine against small histories computed by hand; no-data; trend; alerts."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import aios
from aios.home import HomePaths
from aios.score.engine import compute, grade_of
from aios.score.record import record, trend_of
from aios.store import open_store
from tests.conftest import run_aios

NOW = datetime.now(UTC)


def at(minutes_ago: float) -> datetime:
    return NOW - timedelta(minutes=minutes_ago)


def emit(kind: str, minutes_ago: float = 1, **fields: Any) -> None:
    aios.bus().emit(kind, fields.pop("payload", {}), time=at(minutes_ago), **fields)


def score(home: HomePaths, preset: str = "evolution", **kw: Any) -> Any:
    with open_store(home) as con:
        return compute(con, preset=preset, until=NOW + timedelta(minutes=1), **kw)


def test_seven_completed_and_three_failed_is_a_success_rate_of_0_7(home: HomePaths) -> None:
    for _ in range(7):
        emit("task.completed", payload={"latency_ms": 100})
    for _ in range(3):
        emit("task.failed", payload={"error": "boom"})
    result = score(home)
    tsr = result.component("task_success_rate")
    assert tsr is not None and tsr.value == pytest.approx(0.7)
    assert tsr.counts == {"completed": 7, "failed": 3}
    assert tsr.explanation == "7 completed of 10 tasks"
    # The other components have no data: the score is the success rate alone, re-weighted.
    assert result.value == pytest.approx(0.7)
    assert result.grade == "good"
    for name in ("correction_rate", "uptime", "learning"):
        component = result.component(name)
        assert component is not None and component.value is None
        assert component.explanation.startswith("no data")


def test_components_are_weighted_over_those_with_data(home: HomePaths) -> None:
    for _ in range(7):
        emit("task.completed")
    for _ in range(3):
        emit("task.failed")
    for outcome in ("succeeded", "succeeded", "rolled_back", "failed"):
        emit("remediation.finished", payload={"outcome": outcome}, source="aios.reactor")
    for _ in range(5):  # claimed from outside: not AIOS's remediations
        emit("remediation.finished", payload={"outcome": "succeeded"}, source="agent-x")
    for minute in range(30):  # a heartbeat every minute but five of the last thirty
        if minute not in (3, 7, 11, 12, 20):
            emit("system.heartbeat", minutes_ago=minute + 0.5)
    result = score(home)
    correction = result.component("correction_rate")
    uptime = result.component("uptime")
    assert correction is not None and correction.value == pytest.approx(0.5)
    assert correction.counts == {"succeeded": 2, "finished": 4}
    assert uptime is not None and uptime.counts["minutes_with_heartbeat"] == 25
    assert uptime.value == pytest.approx(25 / uptime.counts["minutes_expected"], rel=0.01)
    expected = (0.4 * 0.7 + 0.3 * 0.5 + 0.2 * uptime.value) / 0.9
    assert result.value == pytest.approx(expected)


def test_learning_counts_the_lessons_aios_recorded_only(home: HomePaths) -> None:
    for kind in ("lesson.created", "lesson.created", "lesson.verified"):
        emit(kind, payload={"lesson_id": "l1", "to": "verified"}, source="aios.lessons")
    for kind in ("lesson.hardened", "lesson.hardened", "lesson.verified"):  # from outside
        emit(kind, payload={"lesson_id": "l2", "to": "hardened"}, source="agent-x")
    learning = score(home).component("learning")
    assert learning is not None and learning.value == pytest.approx(0.5)
    assert learning.counts == {"lessons_created": 2, "lessons_promoted": 1}


def test_nothing_at_all_is_no_score(home: HomePaths) -> None:
    result = score(home)
    assert result.value is None and result.grade is None
    assert all(c.value is None for c in result.components)


def test_the_window_bounds_what_counts(home: HomePaths) -> None:
    emit("task.failed", minutes_ago=60 * 30)  # thirty hours ago
    emit("task.completed", minutes_ago=5)
    day = score(home).component("task_success_rate")
    week = score(home, window=timedelta(days=7)).component("task_success_rate")
    assert day is not None and day.value == 1.0
    assert week is not None and week.value == 0.5


def test_the_ops_preset(home: HomePaths) -> None:
    for latency in (100, 200, 300, 400, 4000):
        emit("task.completed", labels={"tool": "search"}, payload={"latency_ms": latency})
    emit("task.failed", labels={"tool": "search"})
    emit("task.completed", payload={"latency_ms": 100})  # no tool label: not a tool call
    emit("host.metrics", payload={"cpu": 30, "memory": 60, "disk_max": 40})
    emit("host.metrics", payload={"cpu": 80, "memory": 20, "disk_max": 10})
    emit("resource.high", severity="high")
    result = score(home, preset="ops", latency_budget_ms=8000)
    health = result.component("health")
    efficiency = result.component("efficiency")
    stability = result.component("stability")
    headroom = result.component("headroom")
    assert health is not None and health.value == pytest.approx(5 / 6)
    assert efficiency is not None
    assert efficiency.counts["p95_latency_ms"] == pytest.approx(4000, rel=0.15)
    assert efficiency.value == pytest.approx(
        1 - efficiency.counts["p95_latency_ms"] / 8000, rel=1e-4
    )
    assert stability is not None and stability.value == pytest.approx(1 - 1 / 10)
    assert headroom is not None and headroom.value == pytest.approx(((1 - 0.6) + (1 - 0.8)) / 2)


def test_weights_can_be_changed(home: HomePaths) -> None:
    emit("task.completed")
    emit("remediation.finished", payload={"outcome": "rolled_back"}, source="aios.reactor")
    default = score(home)
    tilted = score(home, weights={"task_success_rate": 0.1, "correction_rate": 0.9})
    assert default.value == pytest.approx(0.4 / 0.7)
    assert tilted.value == pytest.approx(0.1)


@pytest.mark.parametrize(
    ("preset", "value", "grade"),
    [
        ("evolution", 0.8, "excellent"),
        ("evolution", 0.79, "good"),
        ("evolution", 0.6, "good"),
        ("evolution", 0.4, "degraded"),
        ("evolution", 0.39, "critical"),
        ("ops", 0.7, "healthy"),
        ("ops", 0.5, "ok"),
        ("ops", 0.3, "degraded"),
        ("ops", 0.29, "critical"),
    ],
)
def test_grades(preset: str, value: float, grade: str) -> None:
    assert grade_of(preset, value) == grade


@pytest.mark.parametrize(
    ("values", "trend"),
    [
        ([0.5, 0.55, 0.6, 0.65], "improving"),
        ([0.9, 0.8, 0.7], "degrading"),
        ([0.7, 0.72, 0.69, 0.71, 0.7], "stable"),
        ([0.2, 0.9], "stable"),  # too few to tell
        ([0.5, 0.9, 0.5, 0.9, 0.5, 0.9], "stable"),  # noise, no direction
    ],
)
def test_trend_needs_a_direction_not_noise(values: list[float], trend: str) -> None:
    assert trend_of(values)[0] == trend


def test_recording_raises_and_clears_alerts_and_grade_changes(home: HomePaths) -> None:
    for _ in range(9):
        emit("task.completed")
    emit("task.failed")
    with open_store(home) as con:
        first = record(aios.bus(), con, compute(con, until=NOW + timedelta(minutes=1)))
    assert [e.type for e in first] == ["score.updated"]  # 0.9: excellent, no alert
    for _ in range(20):
        emit("task.failed")
    with open_store(home) as con:
        second = record(aios.bus(), con, compute(con, until=NOW + timedelta(minutes=1)))
    kinds = [(e.type, e.payload.get("alert") or e.payload.get("to")) for e in second]
    assert ("score.degraded", "critical") in kinds
    assert ("alert.raised", "score_critical") in kinds
    assert ("alert.raised", "task_success_low") in kinds
    raised = [e for e in second if e.type == "alert.raised"]
    assert {e.severity.value for e in raised} == {"critical", "medium"}
    for _ in range(200):
        emit("task.completed")
    with open_store(home) as con:
        third = record(aios.bus(), con, compute(con, until=NOW + timedelta(minutes=1)))
        rows = con.execute("SELECT grade, trend FROM scores ORDER BY seq").fetchall()
    kinds = [(e.type, e.payload.get("alert") or e.payload.get("to")) for e in third]
    assert ("score.recovered", "excellent") in kinds
    assert ("alert.cleared", "score_critical") in kinds
    assert rows[0][0] == "excellent" and rows[1][0] == "critical" and len(rows) == 2


def test_aios_score_prints_components_with_counts(home: HomePaths) -> None:
    for _ in range(7):
        aios.emit("task.completed", {"latency_ms": 120})
    for _ in range(3):
        aios.emit("task.failed")
    result = run_aios("score", "--json", home=home)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    tsr = next(c for c in data["components"] if c["name"] == "task_success_rate")
    assert (tsr["value"], tsr["counts"]) == (0.7, {"completed": 7, "failed": 3})
    assert data["score"] == 0.7 and data["grade"] == "good" and data["recorded"] == []
    text = run_aios("score", "--preset", "ops", "--window", "1h", home=home)
    assert text.returncode == 0 and "efficiency" in text.stdout and "no data" in text.stdout
    recorded = run_aios("score", "--record", "--json", home=home)
    assert json.loads(recorded.stdout)["recorded"] == ["score.updated"]
    bad = run_aios("score", "--preset", "vibes", home=home)
    assert bad.returncode == 2 and "--preset" in bad.stderr


def test_configured_weights_must_name_real_components(home: HomePaths) -> None:
    home.config.write_text("[score.weights.evolution]\ncharisma = 1.0\n")
    result = run_aios("score", home=home)
    assert result.returncode == 2
    assert "charisma" in result.stderr and "config.toml" in result.stderr
