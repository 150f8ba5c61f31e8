"""The insights the dashboard and the notebooks show, over generated history and over a real
reactor run."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

import aios
from aios import insights
from aios.errors import InputError
from aios.home import HomePaths
from tests.history import generate
from tests.loop_helpers import backlog, breaks, fixes, remediate


def test_score_history_follows_the_scores_recorded(home: HomePaths) -> None:
    history = generate(home, days=2)
    with insights.open_home(home.root) as con:
        scores = insights.score_history(con)
        components = insights.score_components(con)
    assert len(scores) == history.scores > 30
    assert scores["time"].is_monotonic_increasing
    assert set(scores["grade"].dropna()) <= {"excellent", "good", "degraded", "critical"}
    assert {"task_success_rate", "correction_rate"} <= set(components.columns)
    # The rough afternoon in the middle shows: the lowest score is well below the first.
    assert scores["score"].min() < scores["score"].iloc[0] - 0.05


def test_remediations_carry_latency_outcome_and_decision(home: HomePaths) -> None:
    history = generate(home, days=2)
    with insights.open_home(home.root) as con:
        frame = insights.remediations(con)
        effectiveness = insights.playbook_effectiveness(con)
        load = insights.approval_load(con)
        mttr = insights.mttr(con, every="1 day")
    assert (
        dict(zip(frame["remediation_id"], frame["outcome"].fillna(frame["decision"]), strict=True))
        == history.remediations
    )
    started = frame[frame["started"].notna()]
    assert (started["latency_s"] > 0).all() and (started["latency_s"] < 1000).all()
    assert started["trigger_type"].eq("resource.high").all()
    rows = effectiveness.set_index("playbook")
    rolled = sum(1 for v in history.remediations.values() if v == "rolled_back")
    assert rows.loc["restart_worker", "rolled_back"] == rolled
    assert rows.loc["idle_agents_while_cpu_high", "success_rate"] == 1.0
    denied = sum(1 for v in history.remediations.values() if v == "denied")
    assert load["denied"].sum() == denied
    assert load["requested"].sum() == len(frame[frame["requested"].notna()])
    assert mttr["succeeded"].sum() == sum(
        1 for v in history.remediations.values() if v == "succeeded"
    )
    assert (mttr["mttr_s"].dropna() > 0).all()


def test_a_real_reactor_remediation_is_read_the_same_way(
    home: HomePaths, root: Path, config_file: Path
) -> None:
    """The generated chains have the reactor's shape: check against the real thing."""
    ok = remediate(home, root, fixes(config_file), backlog())
    bad = remediate(home, root, breaks(config_file), backlog(host="web2"))
    assert (ok.status, bad.status) == ("succeeded", "rolled_back")
    with insights.open_home(home.root) as con:
        frame = insights.remediations(con).set_index("playbook")
        stats = insights.playbook_effectiveness(con).set_index("playbook")
    assert frame.loc["raise_interval", "outcome"] == "succeeded"
    assert frame.loc["bad_fix", "outcome"] == "rolled_back"
    assert frame.loc["raise_interval", "trigger_type"] == "queue.backlog"
    assert 0 <= frame.loc["raise_interval", "latency_s"] < 60
    assert frame.loc["raise_interval", "resolve_s"] >= frame.loc["raise_interval", "latency_s"]
    assert stats.loc["bad_fix", "rolled_back"] == 1


def test_waiting_approvals_end_with_the_decision(home: HomePaths) -> None:
    bus = aios.bus()
    asked = {
        "remediation_id": "r1",
        "playbook": "p",
        "risk": "medium",
        "flow_run_id": "fr-1",
        "deadline": (datetime.now(UTC) + timedelta(hours=1)).isoformat(),
    }
    bus.emit("approval.waiting", asked, source="aios.approvals")
    bus.emit(
        "approval.waiting",
        {**asked, "remediation_id": "r2", "flow_run_id": "fr-2"},
        source="aios.approvals",
    )
    with insights.open_home(home.root) as con:
        assert list(insights.waiting_approvals(con)["flow_run_id"]) == ["fr-1", "fr-2"]
    bus.emit("approval.granted", {"remediation_id": "r1", "playbook": "p"}, source="aios.reactor")
    with insights.open_home(home.root) as con:
        waiting = insights.waiting_approvals(con)
    assert list(waiting["remediation_id"]) == ["r2"]
    assert isinstance(waiting["deadline"].iloc[0], pd.Timestamp)


def test_rates_throughput_and_timeline(home: HomePaths) -> None:
    history = generate(home, days=1)
    with insights.open_home(home.root) as con:
        rates = insights.event_rates(con, every="1 hour")
        work = insights.throughput(con, every="1 hour")
        recent = insights.recent_events(con, limit=5)
        newer = insights.recent_events(con, after_seq=int(recent["seq"].iloc[0]))
        signatures = insights.top_signatures(con, limit=3)
    assert int(work["completed"].sum() + work["failed"].sum()) == history.tasks
    assert int(work["failed"].sum()) == history.failures
    assert rates["total"].sum() >= history.tasks
    assert len(recent) == 5 and recent["seq"].is_monotonic_decreasing
    assert not {"score.updated", "task.completed"} & set(recent["type"])
    assert newer.empty
    assert signatures["count"].sum() <= history.failures
    assert signatures["count"].is_monotonic_decreasing


def test_a_home_without_a_log_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIOS_HOME", raising=False)
    monkeypatch.setenv("AIOS_DEMO_HOME", str(tmp_path / "no-demo-yet"))
    assert insights.chosen_home().root == tmp_path / "no-demo-yet"
    with pytest.raises(InputError, match="aios demo"), insights.open_home():
        pass
    assert not (tmp_path / "no-demo-yet").exists()
