"""What is known about each agent: state, since when, success rate, last error, processes.

``pick_agent`` chooses an idle, healthy agent for new work. ``AgentRegistry`` holds the agent
types AIOS runs as flows beside its own: registered in code or by ``aios.agents`` entry points.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any, ClassVar

import duckdb
import orjson

from aios.agents.lifecycle import SOURCE as LIFECYCLE_SOURCE
from aios.errors import InputError
from aios.observe.agents import agent_tasks
from aios.plugins.checks import agent_problem
from aios.plugins.discovery import loaded, require


class AgentRegistry:
    """Agent types by name: ``AgentRegistry.register("my_agent", MyAgentClass)`` (the seeds'
    form) and every agent the ``aios.agents`` entry point group provides. A type is a class
    like ``aios.plugins.PluginAgent``: ``run(context) -> dict``, ``schedule``, ``in_dag``.
    Registering in code reaches only this process; an entry point reaches every AIOS process
    (``aios up``'s deployments, the orchestrator)."""

    _registered: ClassVar[dict[str, type]] = {}

    @classmethod
    def register(cls, name: str, agent_type: type) -> type:
        """Add ``agent_type`` as ``name``; InputError when it is not an agent type or the name
        is taken. Returns the class, so it can be used as a decorator's result."""
        problem = agent_problem(name, agent_type)
        if problem:
            raise InputError(problem)
        taken = cls._registered.get(name) or loaded("agent").get(name)
        if taken is not None and taken is not agent_type:
            raise InputError(f"agent type {name!r} is already {taken.__module__}.{taken.__name__}")
        cls._registered[name] = agent_type
        return agent_type

    @classmethod
    def unregister(cls, name: str) -> None:
        cls._registered.pop(name, None)

    @classmethod
    def all(cls) -> dict[str, type]:
        """Every agent type: entry points first, then those registered in code."""
        return {**loaded("agent"), **cls._registered}

    @classmethod
    def get(cls, name: str) -> type:
        """The agent type ``name``; PluginError saying why when there is none."""
        found = cls._registered.get(name)
        return found if found is not None else require("agent", name)

    @classmethod
    def in_dag(cls) -> dict[str, type]:
        """The agent types the orchestrator runs after its own stages, in name order."""
        return {n: t for n, t in sorted(cls.all().items()) if getattr(t, "in_dag", False)}

    @classmethod
    def scheduled(cls) -> dict[str, type]:
        """The agent types that have their own deployment, in name order."""
        return {n: t for n, t in sorted(cls.all().items()) if getattr(t, "schedule", None)}


@dataclass
class AgentView:
    agent: str
    state: str
    since: datetime | None
    completed: int
    failed: int
    success_rate: float | None
    last_error: str | None
    last_seen: datetime | None
    processes: int | None
    rss_mb: float | None
    cpu_percent: float | None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("since", "last_seen"):
            data[key] = data[key].isoformat() if data[key] else None
        return data


def current_states(con: duckdb.DuckDBPyConnection) -> dict[str, tuple[str, datetime]]:
    """Each agent's latest state and when it was entered."""
    rows = con.execute(
        "SELECT payload->>'agent', arg_max(payload->>'to', seq), max(time) FROM events "
        "WHERE type = 'agent.state_changed' AND source = ? GROUP BY 1",
        [LIFECYCLE_SOURCE],
    ).fetchall()
    return {agent: (state, since) for agent, state, since in rows if agent}


def agent_views(
    con: duckdb.DuckDBPyConnection, now: datetime, window: timedelta = timedelta(hours=24)
) -> list[AgentView]:
    states = current_states(con)
    tasks = agent_tasks(con, now - window)
    metrics: dict[str, dict[str, Any]] = {}
    for agent, payload in con.execute(
        "SELECT labels->>'agent', arg_max(payload, seq) FROM events "
        "WHERE type = 'agent.metrics' AND labels->>'agent' IS NOT NULL AND time >= ? GROUP BY 1",
        [now - window],
    ).fetchall():
        loaded = orjson.loads(payload)
        metrics[agent] = loaded if isinstance(loaded, dict) else {}
    views = []
    for agent in sorted(set(states) | set(tasks) | set(metrics)):
        state, since = states.get(agent, ("idle", None))
        task = tasks.get(agent)
        metric = metrics.get(agent, {})
        views.append(
            AgentView(
                agent=agent,
                state=state,
                since=since,
                completed=task.completed if task else 0,
                failed=task.failed if task else 0,
                success_rate=task.success_rate if task else None,
                last_error=task.last_error if task else None,
                last_seen=task.last_seen if task else None,
                processes=metric.get("processes"),
                rss_mb=metric.get("rss_mb"),
                cpu_percent=metric.get("cpu_percent"),
            )
        )
    return views


def pick_agent(
    con: duckdb.DuckDBPyConnection,
    now: datetime,
    *,
    candidates: list[str] | None = None,
    min_success_rate: float = 0.5,
) -> str | None:
    """An idle, healthy agent for new work: the best success rate, then the longest idle.

    Agents with no task history count as healthy. None when no agent qualifies.
    """
    best: tuple[float, float, str] | None = None
    for view in agent_views(con, now):
        if candidates is not None and view.agent not in candidates:
            continue
        if view.state != "idle":
            continue
        rate = 1.0 if view.success_rate is None else view.success_rate
        if rate < min_success_rate:
            continue
        idle_for = (now - view.since).total_seconds() if view.since else float("inf")
        key = (rate, idle_for, view.agent)
        if best is None or key[:2] > best[:2]:
            best = key
    return best[2] if best else None
