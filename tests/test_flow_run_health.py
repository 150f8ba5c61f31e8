"""Prefect flow-run health: failed, crashed, late and completed runs become events, once each."""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest

from aios import runtime
from aios.event import Event
from aios.home import HomePaths
from aios.observe.flow_runs import collect_flow_run_events, report_flow_runs
from aios.prefect_api import HttpPrefectAPI, MemoryPrefectAPI, PrefectUnavailableError
from aios.store import open_store

if TYPE_CHECKING:
    from prefect.client.orchestration import SyncPrefectClient
    from prefect.client.schemas.objects import State

HOUR_AGO = datetime.now(UTC) - timedelta(hours=1)


def by_run(events: list[Event]) -> dict[tuple[str, str], Event]:
    return {(e.labels["flow_run_id"], e.type): e for e in events}


# ------------------------------------------------------------------ in memory
@pytest.fixture
def memory() -> MemoryPrefectAPI:
    return MemoryPrefectAPI()


def test_each_kind_of_run_becomes_its_event(home: HomePaths, memory: MemoryPrefectAPI) -> None:
    nightly = memory.add_deployment("etl", "nightly")
    start, end = "2026-11-21T10:00:00+00:00", "2026-11-21T10:00:02.500000+00:00"
    failed = memory.add_flow_run(
        "FAILED", deployment=nightly, name="sad-fox", message="boom", start_time=start, end_time=end
    )
    crashed = memory.add_flow_run("CRASHED", deployment=nightly, message="killed")
    completed = memory.add_flow_run("COMPLETED", deployment=nightly, name="glad-fox")
    late = memory.add_flow_run("SCHEDULED", state_name="Late", deployment=nightly)
    memory.add_flow_run("RUNNING", deployment=nightly)
    memory.add_flow_run("SCHEDULED", deployment=nightly)
    since = datetime(2026, 11, 21, 9, tzinfo=UTC)

    events = by_run(report_flow_runs(runtime.default_bus(), home, memory, since))

    assert set(events) == {
        (failed["id"], "task.failed"),
        (crashed["id"], "task.failed"),
        (completed["id"], "task.completed"),
        (late["id"], "agent.degraded"),
    }
    sad = events[(failed["id"], "task.failed")]
    assert (sad.source, sad.severity.value) == ("aios.prefect", "medium")
    assert sad.labels == {"agent": "etl/nightly", "flow_run_id": failed["id"]}
    assert sad.time == datetime(2026, 11, 21, 10, 0, 2, 500000, tzinfo=UTC)
    assert {
        k: sad.payload[k] for k in ("task", "flow_run_name", "state", "error", "latency_ms")
    } == {
        "task": "etl",
        "flow_run_name": "sad-fox",
        "state": "Failed",
        "error": "boom",
        "latency_ms": 2500.0,
    }
    assert events[(crashed["id"], "task.failed")].payload["state"] == "Crashed"
    glad = events[(completed["id"], "task.completed")]
    assert glad.severity.value == "info" and "error" not in glad.payload
    degraded = events[(late["id"], "agent.degraded")]
    assert degraded.severity.value == "medium"
    assert degraded.payload["reason"] == "late"
    assert degraded.payload["expected_start_time"] == late["expected_start_time"]
    assert degraded.labels["agent"] == "etl/nightly"


def test_a_second_call_emits_nothing(home: HomePaths, memory: MemoryPrefectAPI) -> None:
    nightly = memory.add_deployment("etl", "nightly")
    memory.add_flow_run("FAILED", deployment=nightly)
    memory.add_flow_run("SCHEDULED", state_name="Late", deployment=nightly)
    bus = runtime.default_bus()
    assert len(report_flow_runs(bus, home, memory, HOUR_AGO)) == 2
    assert report_flow_runs(bus, home, memory, HOUR_AGO) == []
    with open_store(home) as con:
        assert con.execute(
            "SELECT count(*) FROM events WHERE source = 'aios.prefect'"
        ).fetchall() == [(2,)]


def test_a_retried_run_that_fails_again_is_reported_again(
    home: HomePaths, memory: MemoryPrefectAPI
) -> None:
    nightly = memory.add_deployment("etl", "nightly")
    run = memory.add_flow_run("FAILED", deployment=nightly, message="first")
    bus = runtime.default_bus()
    assert len(report_flow_runs(bus, home, memory, HOUR_AGO)) == 1
    memory.set_flow_run_state(run["id"], {"type": "SCHEDULED", "name": "AwaitingRetry"})
    memory.set_flow_run_state(run["id"], {"type": "RUNNING"})
    memory.set_flow_run_state(run["id"], {"type": "FAILED", "message": "second"})
    again = report_flow_runs(bus, home, memory, HOUR_AGO)
    assert [(e.type, e.payload["error"], e.payload["run_count"]) for e in again] == [
        ("task.failed", "second", 2)
    ]


@pytest.mark.parametrize(
    ("where", "tags"), [("deployment", {"deployment": ["aios"]}), ("run", {"run": ["aios"]})]
)
def test_runs_of_aios_itself_are_skipped(
    home: HomePaths, memory: MemoryPrefectAPI, where: str, tags: dict[str, list[str]]
) -> None:
    monitor = memory.add_deployment("monitor", "aios-monitor", tags=tags.get("deployment", []))
    run = memory.add_flow_run("FAILED", deployment=monitor)
    run_record = memory.flow_runs[run["id"]]
    run_record["tags"] = run_record["tags"] + tags.get("run", [])
    assert report_flow_runs(runtime.default_bus(), home, memory, HOUR_AGO) == []


def test_a_run_without_deployment_is_the_flows_and_old_runs_are_left_out(
    home: HomePaths, memory: MemoryPrefectAPI
) -> None:
    adhoc = memory.add_flow_run("FAILED", flow_name="backfill")
    memory.add_flow_run("COMPLETED", flow_name="backfill", end_time="2020-01-01T00:00:00+00:00")
    events = report_flow_runs(runtime.default_bus(), home, memory, HOUR_AGO)
    assert [(e.type, e.labels["agent"], e.labels["flow_run_id"]) for e in events] == [
        ("task.failed", "backfill", adhoc["id"])
    ]


def test_a_server_that_is_down_raises_and_emits_nothing(
    home: HomePaths, memory: MemoryPrefectAPI
) -> None:
    memory.add_flow_run("FAILED", flow_name="backfill")
    memory.flaky = True
    with pytest.raises(PrefectUnavailableError):
        report_flow_runs(runtime.default_bus(), home, memory, HOUR_AGO)
    memory.flaky = False
    with open_store(home) as con:
        assert collect_flow_run_events(memory, con, HOUR_AGO)[0]["type"] == "task.failed"
        assert con.execute("SELECT count(*) FROM events").fetchall() == [(0,)]


# ---------------------------------------------------------------- real server
@dataclass
class Workloads:
    """Deployments and runs made with Prefect's own client (removed after the test)."""

    client: SyncPrefectClient
    runs: list[uuid.UUID] = field(default_factory=list)
    deployments: list[uuid.UUID] = field(default_factory=list)

    def deployment(self, flow: str, name: str, tags: list[str] | None = None) -> uuid.UUID:
        flow_id = self.client.create_flow_from_name(flow)
        made = self.client.create_deployment(flow_id=flow_id, name=name, tags=tags or [])
        self.deployments.append(made)
        return made

    def run(self, deployment_id: uuid.UUID, *states: State[Any]) -> str:
        run = self.client.create_flow_run_from_deployment(deployment_id)
        return self._set(run.id, states)

    def adhoc_run(self, flow_name: str, *states: State[Any]) -> str:
        from prefect import flow

        run = self.client.create_flow_run(flow(name=flow_name)(lambda: None))
        return self._set(run.id, states)

    def _set(self, run_id: uuid.UUID, states: tuple[State[Any], ...]) -> str:
        self.runs.append(run_id)
        for state in states:
            self.client.set_flow_run_state(run_id, state, force=True)
        return str(run_id)

    def cleanup(self) -> None:
        from prefect.exceptions import ObjectNotFound

        for run_id in self.runs:
            with contextlib.suppress(ObjectNotFound):
                self.client.delete_flow_run(run_id)
        for deployment_id in self.deployments:
            with contextlib.suppress(ObjectNotFound):
                self.client.delete_deployment(deployment_id)


@pytest.fixture
def workloads(prefect_server: str) -> Iterator[Workloads]:
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with (
        temporary_settings({PREFECT_API_URL: prefect_server}),
        get_client(sync_client=True) as client,
    ):
        made = Workloads(client)
        yield made
        made.cleanup()


def test_flow_run_health_on_a_real_server(
    home: HomePaths, prefect_server: str, workloads: Workloads
) -> None:
    from prefect.states import Completed, Crashed, Failed, Running, Scheduled

    tag = uuid.uuid4().hex[:6]
    etl = workloads.deployment(f"etl-{tag}", "nightly")
    own = workloads.deployment(f"monitor-{tag}", "aios-monitor", tags=["aios"])
    old = workloads.run(etl, Running(), Completed())
    time.sleep(0.05)
    since = datetime.now(UTC)
    failed = workloads.run(etl, Running(), Failed(message="ValueError: bad row 17"))
    crashed = workloads.run(etl, Running(), Crashed(message="process killed"))
    completed = workloads.run(etl, Running(), Completed())
    late = workloads.run(etl, Scheduled(name="Late"))
    running = workloads.run(etl, Running())
    own_failed = workloads.run(own, Running(), Failed(message="mine"))
    own_late = workloads.run(own, Scheduled(name="Late"))
    adhoc = workloads.adhoc_run(f"backfill-{tag}", Running(), Failed(message="no data"))

    bus = runtime.default_bus()
    with HttpPrefectAPI(prefect_server) as api:
        first = report_flow_runs(bus, home, api, since)
        second = report_flow_runs(bus, home, api, since)

    mine = {failed, crashed, completed, late, running, own_failed, own_late, adhoc, old}
    events = by_run([e for e in first if e.labels["flow_run_id"] in mine])
    assert {key: e.labels["agent"] for key, e in events.items()} == {
        (failed, "task.failed"): f"etl-{tag}/nightly",
        (crashed, "task.failed"): f"etl-{tag}/nightly",
        (completed, "task.completed"): f"etl-{tag}/nightly",
        (late, "agent.degraded"): f"etl-{tag}/nightly",
        (adhoc, "task.failed"): f"backfill-{tag}",
    }
    bad = events[(failed, "task.failed")].payload
    assert (bad["task"], bad["state"], bad["error"]) == (
        f"etl-{tag}",
        "Failed",
        "ValueError: bad row 17",
    )
    assert bad["latency_ms"] >= 0 and bad["flow_run_name"]
    assert events[(crashed, "task.failed")].payload["error"] == "process killed"
    assert events[(late, "agent.degraded")].payload["reason"] == "late"
    assert second == []
    with open_store(home) as con:
        stored = con.execute(
            "SELECT labels->>'flow_run_id', type FROM events WHERE source = 'aios.prefect'"
        ).fetchall()
    assert sorted(r for r in stored if r[0] in mine) == sorted(events)
