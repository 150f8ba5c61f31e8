"""Generated history for the notebooks and the dashboard: days of agent tasks, incidents,
remediations (some asked for approval, one rolled back), and hourly scores computed by the
real score engine over those events.

The remediation events have the shape the reactor gives them (the same payload fields and
causation); tests of ``aios.insights`` check that shape against a real reactor run.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import aios
from aios.event import Event
from aios.home import HomePaths
from aios.score.engine import compute
from aios.score.record import trend_of
from aios.store import open_store

AGENTS = ("writer", "reader", "planner")
ERRORS = (
    ("TimeoutError", "tool search timed out after {n}.5s (req 8f3a{n}c9e12ab34d)"),
    ("ConnectionError", "connection refused by 10.0.0.{n}:8080"),
    ("KeyError", "missing key 'doc_{n}' in /tmp/run-{n}/state.json"),
)


@dataclass
class History:
    """What was generated, for assertions."""

    start: datetime
    end: datetime
    tasks: int = 0
    failures: int = 0
    remediations: dict[str, str] = field(default_factory=dict)  # id -> outcome or decision
    scores: int = 0


def _event(kind: str, time: datetime, **fields: Any) -> Event:
    return Event.create(type=kind, time=time, **fields)


def generate(
    home: HomePaths, *, days: int = 2, seed: int = 7, end: datetime | None = None
) -> History:
    """Write ``days`` of history ending at ``end`` (default now) into ``home``'s log."""
    rng = random.Random(seed)
    end = (end or datetime.now(UTC)).replace(microsecond=0)
    start = end - timedelta(days=days)
    history = History(start, end)
    events: list[Event] = []
    hours = days * 24
    bad = range(hours // 2, hours // 2 + 4)  # a rough afternoon in the middle
    for hour in range(hours):
        base = start + timedelta(hours=hour)
        for agent in AGENTS:
            for _ in range(rng.randint(4, 8)):
                at = base + timedelta(seconds=rng.randint(0, 3599))
                failing = rng.random() < (0.45 if hour in bad else 0.05)
                latency = rng.uniform(200, 900) * (3 if hour in bad else 1)
                labels = {"agent": agent}
                if failing:
                    error_type, message = rng.choice(ERRORS)
                    payload = {
                        "task": "answer",
                        "latency_ms": round(latency, 1),
                        "error_type": error_type,
                        "error": message.format(n=rng.randint(1, 9)),
                    }
                    events.append(
                        _event(
                            "task.failed",
                            at,
                            source=agent,
                            labels=labels,
                            payload=payload,
                            severity="medium",
                        )
                    )
                    history.failures += 1
                else:
                    payload = {"task": "answer", "latency_ms": round(latency, 1)}
                    events.append(
                        _event("task.completed", at, source=agent, labels=labels, payload=payload)
                    )
                history.tasks += 1
        if hour in bad or hour % 11 == 5:
            events.extend(_incident(rng, history, base + timedelta(minutes=rng.randint(1, 40))))
    aios.bus().publish(sorted(events, key=lambda e: e.time))
    _scores(home, history)
    return history


def _incident(rng: random.Random, history: History, at: datetime) -> list[Event]:
    """A CPU alert and the reactor's remediation of it, one of four shapes."""
    value = round(rng.uniform(86, 99), 1)
    trigger = _event(
        "resource.high",
        at,
        source="aios.monitor",
        severity="high",
        labels={"host": "web1"},
        payload={"resource": "cpu", "value": value},
    )
    n = len(history.remediations)
    shape = ("auto", "approved", "rolled_back", "denied")[n % 4]
    playbook = "idle_agents_while_cpu_high" if shape == "auto" else "restart_worker"
    rid = f"rem-{n:04d}"
    risk = "low" if shape == "auto" else "medium"
    base = {"remediation_id": rid, "playbook": playbook, "target": "host=web1"}
    chain: list[tuple[str, dict[str, Any], float]] = []
    clock = rng.uniform(1.0, 4.0)
    if shape != "auto":
        chain.append(("approval.requested", {**base, "risk": risk}, clock))
        clock += rng.uniform(60, 900)
        verdict = "denied" if shape == "denied" else "granted"
        chain.append(
            (f"approval.{verdict}", {**base, "approver": "ops-ana", "by_person": True}, clock)
        )
    if shape == "denied":
        chain.append(("playbook.skipped", {**base, "reason": "denied"}, clock + 0.1))
        history.remediations[rid] = "denied"
    else:
        clock += 0.5
        chain.append(
            (
                "remediation.started",
                {**base, "trigger_id": str(trigger.id), "risk": risk, "actions": ["process.kill"]},
                clock,
            )
        )
        clock += rng.uniform(5, 40)
        outcome = "rolled_back" if shape == "rolled_back" else "succeeded"
        verify = "verify.failed" if outcome == "rolled_back" else "verify.passed"
        chain.append((verify, {**base}, clock))
        chain.append(("remediation.finished", {**base, "outcome": outcome}, clock + 0.2))
        history.remediations[rid] = outcome
    out = [trigger]
    for kind, payload, offset in chain:
        out.append(
            _event(
                kind,
                at + timedelta(seconds=offset),
                source="aios.reactor",
                labels={"host": "web1", "playbook": playbook, "remediation": rid},
                payload=payload,
                causation_id=str(trigger.id),
                correlation_id=str(trigger.id),
            )
        )
    return out


def _scores(home: HomePaths, history: History) -> None:
    """The evolution score every hour, computed by the engine over the generated events."""
    scores: list[Event] = []
    values: list[float] = []
    with open_store(home) as con:
        at = history.start + timedelta(hours=6)
        while at <= history.end:
            score = compute(con, preset="evolution", window=timedelta(hours=6), until=at)
            if score.value is not None:
                values.append(score.value)
            trend, change = trend_of(values[-6:])
            scores.append(
                _event(
                    "score.updated",
                    at,
                    source="aios.score",
                    labels={"preset": "evolution"},
                    payload={**score.to_dict(), "trend": trend, "trend_change": change},
                )
            )
            at += timedelta(hours=1)
    aios.bus().publish(scores)
    history.scores = len(scores)
