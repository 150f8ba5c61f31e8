"""Which events are about the flaky agent: its tool call as its ``aios.track`` recorded it, and
its flow runs as the monitor's flow-run health read them from Prefect (those carry the agent's
name too, the flow's, but not the task label, the config file or an error type)."""

from __future__ import annotations

from collections.abc import Callable

from aios.demo.identities import FLAKY_AGENT, FLAKY_TASK
from aios.event import Event
from aios.observe.flow_runs import SOURCE as FLOW_RUN_HEALTH

Test = Callable[[Event], bool]


def tool_task(kind: str) -> Test:
    """``kind`` (task.failed, task.completed) of the agent's tool call."""
    return lambda e: (
        e.type == kind
        and e.labels.get("agent") == FLAKY_AGENT
        and e.labels.get("task") == FLAKY_TASK
    )


def tool_timeout(event: Event) -> bool:
    """A tool call that timed out."""
    return tool_task("task.failed")(event) and event.payload.get("error_type") == "TimeoutError"


def flow_run_read(kind: str) -> Test:
    """``kind`` for a run of the agent's flow, read from Prefect by the monitor
    (``task.failed`` for a Failed run, ``task.completed`` for a Completed one)."""
    return lambda e: (
        e.type == kind and e.source == FLOW_RUN_HEALTH and e.labels.get("agent") == FLAKY_AGENT
    )


def flow_run_of(event: Event | None) -> str:
    """The flow run an event names (the agent's own events carry it in their payload)."""
    return str((event.payload.get("flow_run_id") if event else None) or "?")
