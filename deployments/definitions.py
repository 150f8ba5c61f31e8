"""The one definition of every AIOS deployment and its schedule.

``aios up`` serves these, ``aios deploy --pool NAME`` sends them to a work pool, and
``deployments/prefect.yaml`` (for ``prefect deploy --all``) is rendered from them; a test keeps
the file identical to what ``render_prefect_yaml`` makes. Cadences are the seed's: monitor
every 5 minutes, executor every 30, optimizer and orchestrator hourly, analyst, validator,
learner and maintenance daily, heartbeat every minute, the reactor on demand. Plugin agent
types with a schedule add one deployment each (``plugin_deployments``); they are not in
``prefect.yaml``, which describes AIOS itself.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEPLOYMENT_NAME = "aios"
TAG = "aios"


@dataclass(frozen=True)
class DeploymentSpec:
    """One deployment: which flow, on which schedule, with which limits."""

    agent: str
    module: str
    function: str
    description: str
    interval_s: int | None = None
    cron: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    # Runs of one deployment never overlap, except the reactor's (one per urgent batch).
    concurrency_limit: int | None = 1

    @property
    def flow_name(self) -> str:
        return f"aios-{self.agent}"

    @property
    def full_name(self) -> str:
        return f"{self.flow_name}/{DEPLOYMENT_NAME}"

    @property
    def entrypoint(self) -> str:
        """File path entrypoint, relative to the project root (prefect.yaml, work pools)."""
        return f"{self.module.replace('.', '/')}.py:{self.function}"

    def schedule_text(self) -> str:
        if self.interval_s:
            return (
                f"every {self.interval_s // 60} min"
                if self.interval_s >= 60
                else (f"every {self.interval_s} s")
            )
        return f"cron {self.cron} (UTC)" if self.cron else "on demand"

    def load_flow(self) -> Any:
        """The flow object (imports its module)."""
        return getattr(importlib.import_module(self.module), self.function)


DEPLOYMENTS: tuple[DeploymentSpec, ...] = (
    DeploymentSpec(
        "monitor",
        "flows.monitor",
        "monitor_flow",
        "Observe: host and agent metrics, ingested events, anomalies, flow-run health, score.",
        interval_s=300,
    ),
    DeploymentSpec(
        "analyst",
        "flows.analyst",
        "analyst_flow",
        "Orient: failure patterns, trends and top issues of the last day.",
        cron="0 1 * * *",
    ),
    DeploymentSpec(
        "optimizer",
        "flows.optimizer",
        "optimizer_flow",
        "Decide: a plan of remediations for the executor, and recommendations.",
        interval_s=3600,
    ),
    DeploymentSpec(
        "executor",
        "flows.executor",
        "executor_flow",
        "Act: run the plan; low risk at once, the rest after approval in the UI.",
        interval_s=1800,
    ),
    DeploymentSpec(
        "validator",
        "flows.validator",
        "validator_flow",
        "Verify: roll back interrupted remediations; did the fixes hold?",
        cron="0 2 * * *",
    ),
    DeploymentSpec(
        "learner",
        "flows.learner",
        "learner_flow",
        "Learn: playbook effectiveness and lesson candidates.",
        cron="0 3 * * *",
    ),
    DeploymentSpec(
        "orchestrator",
        "flows.orchestrator",
        "orchestrator_flow",
        "The loop as one DAG: monitor, analyst, optimizer, executor, validator, learner.",
        interval_s=3600,
    ),
    DeploymentSpec(
        "reactor",
        "flows.reactor",
        "reactor_flow",
        "The urgent path: started by aios up for P0/P1 events (match, approve, act, verify).",
        concurrency_limit=None,
    ),
    DeploymentSpec(
        "heartbeat",
        "flows.heartbeat",
        "heartbeat_flow",
        "Records that AIOS is up (the score's uptime).",
        interval_s=60,
    ),
    DeploymentSpec(
        "maintenance",
        "flows.maintenance",
        "maintenance_flow",
        "Log retention, DuckDB checkpoint, snapshots, backup and trash cleanup.",
        cron="30 3 * * *",
    ),
)

BY_AGENT = {spec.agent: spec for spec in DEPLOYMENTS}
REACTOR = BY_AGENT["reactor"]


def plugin_deployments() -> tuple[DeploymentSpec, ...]:
    """One deployment per plugin agent type that has a schedule (``aios.agents`` entry points
    and ``AgentRegistry.register``), in name order; empty when none is installed."""
    from aios.agents.registry import AgentRegistry
    from flows.plugin_agent import PREFIX

    found = []
    for name, agent_type in AgentRegistry.scheduled().items():
        schedule = agent_type.schedule  # type: ignore[attr-defined]  # checked on registration
        found.append(
            DeploymentSpec(
                name,
                "flows.plugin_agent",
                f"{PREFIX}{name}",
                getattr(agent_type, "description", "") or f"The plugin agent {name}.",
                interval_s=schedule.interval_s,
                cron=schedule.cron,
            )
        )
    return tuple(found)


def all_deployments() -> tuple[DeploymentSpec, ...]:
    """AIOS's deployments, then the plugin agents' (what ``aios up`` serves)."""
    return DEPLOYMENTS + plugin_deployments()


def spec_for(name: str) -> DeploymentSpec:
    """The deployment of agent ``name`` (monitor, reactor, a plugin agent, ...); raises KeyError
    with the list."""
    found = BY_AGENT.get(name) or {s.agent: s for s in plugin_deployments()}.get(name)
    if found is None:
        known = [spec.agent for spec in all_deployments()]
        raise KeyError(f"{name!r}: one of {', '.join(known)}")
    return found


def runner_deployments(specs: Sequence[DeploymentSpec] = DEPLOYMENTS) -> list[Any]:
    """``RunnerDeployment``s of ``specs`` for serving (module entrypoints: they run from any
    directory)."""
    from prefect.types.entrypoint import EntrypointType

    found = []
    for spec in specs:
        found.append(
            spec.load_flow().to_deployment(
                name=DEPLOYMENT_NAME,
                interval=spec.interval_s,
                cron=spec.cron,
                parameters=spec.parameters or None,
                description=spec.description,
                tags=[TAG],
                concurrency_limit=spec.concurrency_limit,
                entrypoint_type=EntrypointType.MODULE_PATH,
            )
        )
    return found
