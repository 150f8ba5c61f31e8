"""One monitor cycle: observe the host and the agents, take in the inbox, detect, and record.

A cycle collects a host snapshot and the agents' processes (``host.metrics`` and
``agent.metrics`` events), applies the static thresholds (``resource.high`` /
``resource.recovered``, ``agent.memory_high``), takes in the inbox, looks for failure bursts
(``agent.degraded``) and baseline anomalies (``anomaly.detected`` / ``anomaly.cleared``),
moves agents through their lifecycle (``agent.state_changed``), records the score
(``score.updated`` and its alerts) and, once a UTC day, a baseline snapshot of key metrics
(``baseline.snapshot``). Plugin collectors add their events (``aios.plugins.collectors``). The
cycle itself is tracked as a task of the agent ``aios.monitor``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from aios.agents.consumer import run_lifecycle
from aios.bus import EventBus
from aios.config import AIOSConfig
from aios.event import Event
from aios.home import HomePaths
from aios.observe.agents import AgentProcesses, agent_processes
from aios.observe.detect import active_anomalies, anomaly_events, baselines, bursts
from aios.observe.host import HostCollector, HostSnapshot
from aios.observe.inbox import InboxReport, ingest_inbox
from aios.observe.thresholds import active_highs, evaluate, readings
from aios.plugins.collectors import run_collectors
from aios.score.engine import compute
from aios.score.record import record
from aios.store import open_store
from aios.track import track

SOURCE = "aios.monitor"
AGENT = "aios.monitor"
logger = logging.getLogger("aios.monitor")


@dataclass
class CycleReport:
    snapshot: HostSnapshot
    agents: dict[str, AgentProcesses]
    inbox: InboxReport
    emitted: list[Event] = field(default_factory=list)
    failed_steps: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "host": self.snapshot.host,
            "measured": self.snapshot.metrics_payload(),
            "agents": {name: a.payload() for name, a in self.agents.items()},
            "inbox": {
                "files": self.inbox.files,
                "accepted": self.inbox.accepted,
                "rejected": self.inbox.rejected,
            },
            "failed_steps": self.failed_steps,
            "emitted": [
                {
                    "type": e.type,
                    "severity": e.severity.value,
                    "labels": e.labels,
                    "payload": e.payload,
                }
                for e in self.emitted
                if e.type not in ("host.metrics", "agent.metrics")
            ],
        }


def _monitor_event(spec: dict[str, Any]) -> dict[str, Any]:
    return {"source": SOURCE, **spec}


def run_cycle(
    bus: EventBus,
    paths: HomePaths,
    config: AIOSConfig,
    collector: HostCollector | None = None,
    now: datetime | None = None,
) -> CycleReport:
    """One full cycle; returns what was measured and every event emitted.

    Each step runs on its own: one that fails (a locked store, a broken inbox) is recorded as
    a ``monitor.step_failed`` event and the others still run.
    """
    settings = config.monitor
    collector = collector or HostCollector(settings.sample.total_seconds())
    with track("monitor.cycle", agent=AGENT, bus=bus) as task:
        snapshot = collector.collect()
        at = now or datetime.now(UTC)
        agents = agent_processes(snapshot.processes, config.agents.patterns)
        report = CycleReport(snapshot, agents, InboxReport())

        def step(name: str, work: Callable[[], list[Event]]) -> None:
            try:
                report.emitted += work()
            except Exception as exc:  # recorded; the cycle goes on
                logger.exception("monitor step %s failed", name)
                report.failed_steps.append(name)
                report.emitted += bus.emit_many(
                    [
                        {
                            "type": "monitor.step_failed",
                            "source": SOURCE,
                            "severity": "medium",
                            "labels": {"step": name},
                            "payload": {
                                "step": name,
                                "error_type": type(exc).__name__,
                                "error": str(exc)[:2000],
                            },
                        }
                    ]
                )

        def observe() -> list[Event]:
            specs: list[dict[str, Any]] = [
                {
                    "type": "host.metrics",
                    "labels": {"host": snapshot.host},
                    "payload": snapshot.metrics_payload(),
                }
            ]
            for agent in agents.values():
                specs.append(
                    {
                        "type": "agent.metrics",
                        "labels": {"agent": agent.agent},
                        "payload": agent.payload(),
                    }
                )
                if agent.processes and agent.rss_mb >= settings.agent_memory_mb:
                    specs.append(
                        {
                            "type": "agent.memory_high",
                            "severity": "medium",
                            "labels": {"agent": agent.agent, "host": snapshot.host},
                            "payload": {**agent.payload(), "limit_mb": settings.agent_memory_mb},
                        }
                    )
            with open_store(paths) as con:
                active = active_highs(con, snapshot.host)
            specs += evaluate(readings(snapshot), settings.thresholds, active, at)
            return bus.emit_many([_monitor_event(s) for s in specs])

        def inbox() -> list[Event]:
            report.inbox = ingest_inbox(bus, paths)
            return []

        def detect() -> list[Event]:
            with open_store(paths) as con:
                found = bursts(con, at, settings.burst_failures, settings.burst_window)
                baseline = baselines(
                    con,
                    at,
                    history=settings.baseline_history,
                    recent=settings.baseline_recent,
                    min_buckets=settings.baseline_min_buckets,
                    min_samples=settings.baseline_min_samples,
                )
                found += anomaly_events(baseline, active_anomalies(con), settings.baseline_z)
            return bus.emit_many([_monitor_event(s) for s in found]) if found else []

        def score() -> list[Event]:
            preset = config.score.preset
            with open_store(paths) as con:
                result = compute(
                    con,
                    preset=preset,
                    window=config.score.window,
                    until=at,
                    weights=config.score.weights.get(preset),
                    latency_budget_ms=config.score.latency_budget_ms,
                )
                return record(bus, con, result, trend_points=config.score.trend_points)

        step("observe", observe)
        step("inbox", inbox)
        step("plugins", lambda: run_collectors(bus, paths, config, at, snapshot.host, SOURCE))
        step("detect", detect)
        step("lifecycle", lambda: run_lifecycle(bus, paths, at, settings.blocked_cooldown))
        if settings.record_score:
            step("score", score)
        step("baseline", lambda: _daily_baseline(bus, paths, config, at))
        if report.failed_steps:
            task.set(failed_steps=report.failed_steps)
    return report


def _daily_baseline(
    bus: EventBus, paths: HomePaths, config: AIOSConfig, at: datetime
) -> list[Event]:
    """Once a UTC day: key metrics of the past day, for before/after comparisons."""
    day_start = at.replace(hour=0, minute=0, second=0, microsecond=0)
    with open_store(paths) as con:
        taken = con.execute(
            "SELECT 1 FROM events WHERE type = 'baseline.snapshot' AND source = ? "
            "AND time >= ? AND time <= ? LIMIT 1",
            [SOURCE, day_start, at + timedelta(minutes=5)],
        ).fetchall()
        if taken:
            return []
        evolution = compute(
            con,
            preset="evolution",
            window=timedelta(days=1),
            until=at + timedelta(minutes=1),
            weights=config.score.weights.get("evolution"),
        )
        ops = compute(
            con,
            preset="ops",
            window=timedelta(days=1),
            until=at + timedelta(minutes=1),
            weights=config.score.weights.get("ops"),
            latency_budget_ms=config.score.latency_budget_ms,
        )
    metrics: dict[str, Any] = {"date": day_start.date().isoformat()}
    for result in (evolution, ops):
        metrics[f"{result.preset}_score"] = result.value
        for component in result.components:
            metrics[component.name] = component.value
            metrics[f"{component.name}_counts"] = component.counts
    return bus.emit_many(
        [
            {
                "type": "baseline.snapshot",
                "source": SOURCE,
                "payload": metrics,
                "labels": {"date": metrics["date"]},
            }
        ]
    )
