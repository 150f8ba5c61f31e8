"""Agent evolution on a real log and a real config file: a failing agent's timeout is raised
through the reactor, an A/B comparison judges it, a change that made things worse is rolled
back, and the lesson of that failure learns from the verdict."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import aios
from aios.config import AIOSConfig, load_config
from aios.event import Event
from aios.evolution import compare, playbook_for, propose, rule_for, side
from aios.evolution_runs import evolve, judge
from aios.home import HomePaths
from aios.lessons.extract import run_pass
from aios.lessons.model import lesson_id
from aios.lessons.projection import read_lessons
from aios.loop.signatures import signature
from aios.playbooks.matcher import PlaybookIndex
from aios.reactor.approval import PolicyApprover
from aios.store import open_store

HOUR = timedelta(hours=1)


@pytest.fixture
def agent(home: HomePaths, root: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The writer's config file, and AIOS told where its timeout lives."""
    path = root / "writer.json"
    path.write_text('{"timeout_s": 30, "retries": 1, "concurrency": 4}\n')
    monkeypatch.setenv("AIOS_REACTOR__ALLOWED_ROOTS", json.dumps([str(root)]))
    monkeypatch.setenv(
        "AIOS_EVOLUTION__AGENTS",
        json.dumps(
            {
                "writer": {
                    "file": str(path),
                    "timeout": "timeout_s",
                    "retries": "retries",
                    "concurrency": "concurrency",
                }
            }
        ),
    )
    monkeypatch.setenv("AIOS_EVOLUTION__OBSERVE", "1h")
    monkeypatch.setenv("AIOS_EVOLUTION__MIN_SAMPLES", "20")
    monkeypatch.setenv("AIOS_MEMORY__EMBEDDING", "hash")
    return path


def tasks(start: datetime, count: int, failing: float, *, agent: str = "writer") -> None:
    """``count`` tasks of ``agent`` spread over the hour from ``start``, a share failing."""
    events = []
    for n in range(count):
        failed = n < round(count * failing)
        events.append(
            Event.create(
                type="task.failed" if failed else "task.completed",
                source=agent,
                time=start + n * (HOUR / count),
                labels={"agent": agent},
                payload={"error_type": "TimeoutError", "error": f"search timed out after {n}s"}
                if failed
                else {"latency_ms": 400},
            )
        )
    aios.bus().publish(events)


def timeouts(now: datetime, count: int = 3) -> None:
    """``count`` timeouts in the last hour."""
    tasks(now - HOUR, count, 1.0)


def change_made(home: HomePaths, now: datetime) -> datetime:
    """Run one pass that raises the timeout; returns when the change was made."""
    report = evolve(
        aios.bus(), home, load_config(home), PlaybookIndex([]), PolicyApprover(False), now=now
    )
    [proposed] = report.proposed
    assert proposed["rule"] == "timeout" and proposed["key"] == "timeout_s"
    [(_, outcome)] = report.outcomes
    assert outcome.status == "unverified", outcome  # judged by the A/B, not by a probe
    with open_store(home) as con:
        [(at,)] = con.execute(
            "SELECT time FROM events WHERE type = 'remediation.finished'"
        ).fetchall()
    return at  # type: ignore[no-any-return]


def value(path: Path, key: str = "timeout_s") -> Any:
    return json.loads(path.read_text())[key]


@pytest.mark.parametrize(
    ("message", "rule"),
    [
        ("TimeoutError: tool search timed out after <n>s", "timeout"),
        ("RateLimitError: 429 Too Many Requests", "rate_limit"),
        ("ConnectionError: connection refused by <addr>", "transient"),
        ("KeyError: <str>", None),
    ],
)
def test_the_failure_decides_the_change(message: str, rule: str | None) -> None:
    assert rule_for(message) == rule


def test_a_change_that_makes_things_worse_is_rolled_back_and_the_lesson_learns(
    home: HomePaths, agent: Path
) -> None:
    now = datetime.now(UTC)
    tasks(now - HOUR, 30, 0.1)  # the hour before: 90% success
    timeouts(now)
    [draft] = run_pass(home).created  # the repeated timeout is a draft lesson...
    assert draft.fix is not None and draft.fix["kind"] == "evolution"  # ...whose fix is the rule
    assert (draft.fix["agent"], draft.fix["rule"], draft.fix["key"]) == (
        "writer",
        "timeout",
        "timeout_s",
    )
    at = change_made(home, now)
    assert value(agent) == 60
    tasks(at + timedelta(seconds=1), 30, 0.6)  # after it: 40% success
    early = judge(aios.bus(), home, load_config(home), PlaybookIndex([]), now=at + HOUR / 2)
    assert early == [], "judged only once its window has passed"
    [verdict] = judge(aios.bus(), home, load_config(home), PlaybookIndex([]), now=at + 2 * HOUR)
    assert verdict["verdict"] == "worse" and verdict["z"] < -1.96
    assert verdict["reverted"] and value(agent) == 30, "the old timeout is back"
    assert verdict["before"]["tasks"] >= 20 and verdict["after"]["tasks"] == 30
    kinds = [e.type for e in aios.bus().log.events()]
    assert "remediation.reverted" in kinds and kinds.count("evolution.verdict") == 1
    with open_store(home) as con:
        [learnt] = read_lessons(
            con, ids=[lesson_id(signature("TimeoutError", "search timed out after 1s"), "writer")]
        )
    assert learnt.fix is not None and learnt.fix["kind"] == "evolution"
    assert learnt.failures == 1 and learnt.state == "draft"
    # Judged once: a second pass leaves it alone.
    assert judge(aios.bus(), home, load_config(home), PlaybookIndex([]), now=at + 3 * HOUR) == []


def test_a_change_that_helps_is_kept_and_verifies_the_lesson(home: HomePaths, agent: Path) -> None:
    now = datetime.now(UTC)
    tasks(now - HOUR, 30, 0.5)
    timeouts(now)
    run_pass(home)
    at = change_made(home, now)
    tasks(at + timedelta(seconds=1), 30, 0.0)
    [verdict] = judge(aios.bus(), home, load_config(home), PlaybookIndex([]), now=at + 2 * HOUR)
    assert verdict["verdict"] == "better" and "reverted" not in verdict
    assert value(agent) == 60
    with open_store(home) as con:
        [learnt] = read_lessons(con)
    assert learnt.state == "verified" and learnt.successes == 1


def test_too_few_tasks_wait_a_window_then_keep_it_as_inconclusive(
    home: HomePaths, agent: Path
) -> None:
    now = datetime.now(UTC)
    tasks(now - HOUR, 30, 0.1)
    timeouts(now)
    at = change_made(home, now)
    tasks(at + timedelta(seconds=1), 5, 0.0)
    config = load_config(home)
    assert judge(aios.bus(), home, config, PlaybookIndex([]), now=at + HOUR + HOUR / 2) == []
    [verdict] = judge(aios.bus(), home, config, PlaybookIndex([]), now=at + 2 * HOUR + 1 * HOUR)
    assert verdict["verdict"] == "inconclusive" and value(agent) == 60


def test_one_change_at_a_time_and_only_where_a_rule_and_a_key_exist(
    home: HomePaths, agent: Path
) -> None:
    now = datetime.now(UTC)
    timeouts(now)
    tasks(now - HOUR, 3, 1.0, agent="reader")  # not configured
    change_made(home, now)
    with open_store(home) as con:
        assert propose(con, load_config(home), now) == []  # writer's change is being judged


def test_an_agent_that_is_a_deployment_gets_a_parameter_change(home: HomePaths) -> None:
    base = load_config(home).model_dump()
    agents = {"etl/nightly": {"deployment": "etl/nightly", "timeout": "timeout_s"}}
    config = AIOSConfig.model_validate({**base, "evolution": {"agents": agents}})
    now = datetime.now(UTC)
    tasks(now - HOUR, 4, 1.0, agent="etl/nightly")
    with open_store(home) as con:
        [proposal] = propose(con, config, now, lambda name: {"timeout_s": 600, "rows": 10})
    assert proposal.deployment == "etl/nightly" and proposal.value == 1200
    event = aios.bus().emit("evolution.proposed", proposal.payload(), source="aios.evolution")
    pb = playbook_for(event, config)
    assert pb.effective_risk().value == "medium"  # a person approves a deployment change
    assert pb.actions[0].type == "prefect.deployment.set_parameters"


def test_compare_needs_samples_and_significance() -> None:
    from aios.evolution import Side

    assert compare(Side(5, 0, 100), Side(40, 0, 100), 20)[0] == "too_few"
    assert compare(Side(40, 4, 100), Side(40, 6, 100), 20)[0] == "inconclusive"
    assert compare(Side(40, 4, 100), Side(40, 4, 200), 20)[0] == "worse"  # twice as slow
    assert compare(Side(40, 20, 100), Side(40, 2, 100), 20)[0] == "better"


def test_side_counts_one_agent(home: HomePaths) -> None:
    now = datetime.now(UTC)
    tasks(now - HOUR, 10, 0.2)
    tasks(now - HOUR, 10, 0.5, agent="reader")
    with open_store(home) as con:
        measured = side(con, "writer", now - 2 * HOUR, now)
    assert (measured.tasks, measured.failed) == (10, 2) and measured.latency_p50_ms == 400


def test_aios_evolve_makes_the_change_from_a_terminal(home: HomePaths, agent: Path) -> None:
    import os

    from tests.conftest import run_aios

    timeouts(datetime.now(UTC))
    env = {k: v for k, v in os.environ.items() if k.startswith("AIOS_") and k != "AIOS_HOME"}
    result = run_aios("evolve", "--json", home=home, env=env)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    [proposed] = report["proposed"]
    assert proposed["agent"] == "writer" and proposed["rule"] == "timeout"
    assert [o["status"] for o in report["outcomes"]] == ["unverified"]
    assert value(agent) == 60
    again = json.loads(run_aios("evolve", "--json", home=home, env=env).stdout)
    assert again["proposed"] == [] and value(agent) == 60  # one change at a time
