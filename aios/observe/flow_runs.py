"""Prefect flow-run health: the operator's failed, crashed, late and completed runs as events
(``task.failed``, ``task.completed``, ``agent.degraded``), each state once, the deployment as the
agent; runs of AIOS's own deployments (tagged "aios") are left to report themselves.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import duckdb

from aios.bus import EventBus
from aios.event import Event
from aios.home import HomePaths
from aios.prefect_api import PrefectAPI
from aios.store import open_store

SOURCE = "aios.prefect"
OWN_TAG = "aios"
FINISHED = {"FAILED": "task.failed", "CRASHED": "task.failed", "COMPLETED": "task.completed"}
LATE = "agent.degraded"
# The most runs of each kind read per call, newest first (a busier window loses the oldest).
MAX_RUNS = 1000


def _time(value: Any) -> datetime | None:
    if not value:
        return None
    at = datetime.fromisoformat(str(value))
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def _state_key(run: Mapping[str, Any]) -> str:
    """What identifies the state reported: its id, else its type and time."""
    state = run.get("state") or {}
    return str(state.get("id") or f"{run.get('state_type')}@{state.get('timestamp')}")


def _agent(run: Mapping[str, Any], deployment: Mapping[str, Any] | None) -> str:
    flow = str(run.get("flow_name") or "unknown-flow")
    return f"{flow}/{deployment['name']}" if deployment else flow


def _is_own(run: Mapping[str, Any], deployment: Mapping[str, Any] | None) -> bool:
    tags = set(run.get("tags") or []) | set((deployment or {}).get("tags") or [])
    return OWN_TAG in tags


def _event(kind: str, run: Mapping[str, Any], agent: str) -> dict[str, Any]:
    state = run.get("state") or {}
    payload: dict[str, Any] = {
        "task": str(run.get("flow_name") or "unknown-flow"),
        "flow_run_id": str(run["id"]),
        "flow_run_name": str(run.get("name") or ""),
        "state": str(run.get("state_name") or run.get("state_type")),
        "state_id": _state_key(run),
        "run_count": int(run.get("run_count") or 0),
    }
    spec: dict[str, Any] = {
        "type": kind,
        "source": SOURCE,
        "labels": {"agent": agent, "flow_run_id": str(run["id"])},
        "payload": payload,
    }
    if kind == LATE:
        payload.update(
            reason="late", agent=agent, expected_start_time=run.get("expected_start_time")
        )
        spec["severity"] = "medium"
        return spec
    start, end = _time(run.get("start_time")), _time(run.get("end_time"))
    if start and end:
        payload["latency_ms"] = round((end - start).total_seconds() * 1000, 3)
    if end:
        spec["time"] = end  # when it happened, so windows and scores place it right
    if kind == "task.failed":
        payload["error"] = str(state.get("message") or "")[:4000]
        spec["severity"] = "medium"
    return spec


def _reported(con: duckdb.DuckDBPyConnection, run_ids: list[str]) -> set[tuple[str, str]]:
    """(type, state key) pairs already in the store for these flow runs."""
    if not run_ids:
        return set()
    rows = con.execute(
        "SELECT DISTINCT type, payload->>'state_id' FROM events "
        "WHERE source = ? AND list_contains(?, labels->>'flow_run_id')",
        [SOURCE, run_ids],
    ).fetchall()
    return {(str(kind), str(key)) for kind, key in rows}


def collect_flow_run_events(
    api: PrefectAPI, con: duckdb.DuckDBPyConnection, since: datetime
) -> list[dict[str, Any]]:
    """Event specs (for ``bus.emit_many``) of runs not reported yet: failed, crashed and completed
    runs that ended at or after ``since``, and runs that are Late now (whenever they were due).

    Raises PrefectUnavailableError when the server does not answer.
    """
    after = (since if since.tzinfo else since.replace(tzinfo=UTC)).isoformat()
    finished = api.read_flow_runs(
        {"flow_runs": {"state": {"type": {"any_": list(FINISHED)}}, "end_time": {"after_": after}}},
        MAX_RUNS,
    )
    late = api.read_flow_runs(
        {"flow_runs": {"state": {"type": {"any_": ["SCHEDULED"]}, "name": {"any_": ["Late"]}}}},
        MAX_RUNS,
    )
    deployments = {d["id"]: d for d in api.read_deployments()} if finished or late else {}
    candidates = [(FINISHED[r["state_type"]], r) for r in finished if r["state_type"] in FINISHED]
    candidates += [(LATE, r) for r in late if r.get("state_name") == "Late"]
    seen = _reported(con, sorted({str(r["id"]) for _, r in candidates}))
    specs = []
    for kind, run in candidates:
        deployment = deployments.get(run.get("deployment_id") or "")
        key = (kind, _state_key(run))
        if _is_own(run, deployment) or key in seen:
            continue
        seen.add(key)
        specs.append(_event(kind, run, _agent(run, deployment)))
    return specs


def report_flow_runs(
    bus: EventBus, paths: HomePaths, api: PrefectAPI, since: datetime
) -> list[Event]:
    """Collect with the store open, close it, then emit; returns the events emitted."""
    with open_store(paths) as con:
        specs = collect_flow_run_events(api, con, since)
    return bus.emit_many(specs) if specs else []
