"""Monitor (Observe): measure the host and agents, take in ingested events, detect, score;
and turn the operator's failed, crashed and late Prefect flow runs into events."""

from __future__ import annotations

from typing import Any

from prefect import flow

from flows import artifacts
from flows.runtime import api_url
from tasks.observe import flow_run_health, monitor_cycle


def snapshot_rows(cycle: dict[str, Any], health: list[dict[str, Any]]) -> list[dict[str, Any]]:
    measured = cycle["measured"]
    rows: list[dict[str, Any]] = [
        {"kind": "host", "name": "cpu %", "value": measured.get("cpu")},
        {"kind": "host", "name": "memory %", "value": measured.get("memory")},
        {"kind": "host", "name": "fullest disk %", "value": measured.get("disk_max")},
        {"kind": "host", "name": "load", "value": ", ".join(map(str, measured.get("load", [])))},
    ]
    for name, agent in cycle["agents"].items():
        rows.append(
            {
                "kind": "agent",
                "name": name,
                "value": f"{agent['processes']} process(es), {agent['rss_mb']} MB, "
                f"{agent['cpu_percent']}% cpu",
            }
        )
    for event in cycle["emitted"] + health:
        rows.append(
            {
                "kind": "event",
                "name": event["type"],
                "value": ", ".join(f"{k}={v}" for k, v in sorted(event["labels"].items())),
            }
        )
    for step in cycle["failed_steps"]:
        rows.append({"kind": "failed step", "name": step, "value": "see monitor.step_failed"})
    return rows


@flow(name="aios-monitor", log_prints=False)
def monitor_flow() -> dict[str, Any]:
    """One observation cycle; returns the measurements and the events it raised."""
    cycle = monitor_cycle()
    health_state = flow_run_health(api_url(), return_state=True)
    health: list[dict[str, Any]] = health_state.result() if health_state.is_completed() else []
    artifacts.table(
        "aios-monitor-snapshot",
        snapshot_rows(cycle, health),
        f"Host {cycle['host']}: measurements, agents and the events this cycle raised.",
    )
    return {
        "host": cycle["host"],
        "cpu": cycle["measured"].get("cpu"),
        "memory": cycle["measured"].get("memory"),
        "disk_max": cycle["measured"].get("disk_max"),
        "agents": sorted(cycle["agents"]),
        "raised": [e["type"] for e in cycle["emitted"]],
        "flow_runs_reported": len(health),
        "flow_run_health": "ok" if health_state.is_completed() else "failed",
        "failed_steps": cycle["failed_steps"],
    }
