"""``aios up`` as a real process: served deployments, the event watcher, approvals through the
API, a crashed run retried as the UI's Retry does, one instance per home, a clean Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from aios.bus import EventBus
from aios.event import Event
from aios.home import HomePaths
from aios.log import EventLog
from aios.ports import port_free
from aios.prefect_api import HttpPrefectAPI
from tests.orchestration_helpers import (
    AIOS_BIN,
    Up,
    Workspace,
    aios_cli,
    aios_env,
    aios_up,
    events_of,
    free_port,
    make_workspace,
    remediations_finished,
    wait_for,
)

pytestmark = pytest.mark.slow


@dataclass
class Served:
    up: Up
    home: HomePaths
    ws: Workspace
    bus: EventBus
    api_url: str

    def emit(self, event_type: str, severity: str = "high", **payload: Any) -> Event:
        return self.bus.emit(event_type, payload, source="test", severity=severity)

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return aios_cli(*args, home=self.home, api_url=self.api_url, extra=self.ws.env())

    def outcome(self, event: Event, timeout: float = 90) -> dict[str, Any]:
        rows = remediations_finished(self.home, event.id, timeout, f"a remediation of {event.type}")
        found: dict[str, Any] = rows[-1][2]
        return found

    def waiting(self) -> list[dict[str, Any]]:
        result = self.cli("approvals", "list", "--json")
        assert result.returncode == 0, result.stderr
        return list(json.loads(result.stdout))


# Every playbook here changes the same file; many runs of one action on one target within an
# hour is flapping, which opens the breaker (rightly): this module's tests are not flapping.
LIMITS = {"flap_count": 100}


def write_playbooks(ws: Workspace, marker: Path) -> None:
    """The playbooks of this module, in place before aios up starts."""
    ws.playbook("up_low", limits=LIMITS)
    ws.playbook("up_quiet", limits=LIMITS)
    # One per producer of urgent events.
    ws.playbook("up_by_cli", limits=LIMITS)
    ws.playbook("up_by_http", limits=LIMITS)
    ws.playbook(
        "up_by_track",
        limits=LIMITS,
        trigger={
            "type": "task.failed",
            "conditions": [{"path": "labels.agent", "op": "eq", "value": "producer-track"}],
        },
    )
    ws.playbook(
        "up_by_monitor",
        limits=LIMITS,
        trigger={
            "type": "resource.high",
            "conditions": [
                {"path": "source", "op": "eq", "value": "aios.monitor"},
                {"path": "payload.resource", "op": "eq", "value": "memory"},
            ],
        },
    )
    for answer in ("approve", "reject"):
        ws.playbook(f"up_risky_{answer}", risk="medium", limits=LIMITS)
    # The second action kills its own flow-run process the first time it runs.
    crash = f'test -e "{marker}" || {{ touch "{marker}"; kill -9 $PPID; }}'
    ws.playbook(
        "up_crash",
        risk="high",
        limits=LIMITS,
        actions=[
            {"type": "config.update", "file": str(ws.config), "key": "limits.level", "value": 2},
            {"type": "command.run", "argv": ["/bin/sh", "-c", crash]},
        ],
    )


@pytest.fixture(scope="module")
def served(prefect_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    base = tmp_path_factory.mktemp("served")
    home = HomePaths(base / "aios-home")
    ws = make_workspace(base)
    write_playbooks(ws, base / "crashed-once")
    with aios_up(home, api_url=prefect_server, extra=ws.env()) as up:
        log = EventLog(home.events)
        yield Served(up, home, ws, EventBus(log), prefect_server)
        log.close()


def test_it_uses_the_server_prefect_api_url_names_and_serves_every_deployment(
    served: Served,
) -> None:
    assert served.up.api_url == served.api_url
    assert served.up.ui_url == served.api_url.removesuffix("/api")
    with HttpPrefectAPI(served.api_url) as api:
        names = {f"{d['flow_name']}/{d['name']}" for d in api.read_deployments()}
        limit = api.read_concurrency_limit("aios-remediations")
    from deployments.definitions import DEPLOYMENTS

    assert {spec.full_name for spec in DEPLOYMENTS} <= names
    assert limit is not None and limit["limit"] == 3
    for spec in DEPLOYMENTS:
        assert spec.full_name in served.up.text()


def test_an_urgent_event_starts_the_served_reactor(served: Served) -> None:
    served.ws.reset()
    event = served.emit("test.up_low")
    outcome = served.outcome(event)
    assert outcome["outcome"] == "succeeded" and served.ws.level() == 2
    [(_, _, dispatched, _)] = events_of(
        served.home,
        "type = 'scheduler.dispatched' AND payload->>'event_ids' LIKE ?",
        [f"%{event.id}%"],
    )
    with HttpPrefectAPI(served.api_url) as api:
        run = wait_for(
            lambda: (
                (r := api.read_flow_run(dispatched["flow_run_id"]))["state_type"] == "COMPLETED"
                and r
            ),
            60,
            "the reactor run to complete",
        )
    assert run["flow_name"] == "aios-reactor"
    assert run["parameters"]["event_ids"] == [event.id]


def _by_cli(served: Served) -> str:
    result = served.cli("emit", "test.up_by_cli", "--severity", "high")
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def _by_track(served: Served) -> str:
    program = (
        "import aios\n"
        "try:\n"
        "    with aios.track('lookup', agent='producer-track', failure_severity='high'):\n"
        "        raise TimeoutError('the search tool timed out')\n"
        "except TimeoutError:\n"
        "    pass\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", program],
        env=aios_env(served.home, served.api_url),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    [(_, _, _, _, event_id)] = _rows(
        served, "type = 'task.failed' AND labels->>'agent' = 'producer-track'"
    )
    return str(event_id)


def _by_http(served: Served) -> str:
    port = free_port()
    server = subprocess.Popen(
        [str(AIOS_BIN), "ingest", "serve", "--port", str(port)],
        env=aios_env(served.home, served.api_url),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        token = wait_for(
            lambda: (
                (served.home.root / "ingest.token").exists()
                and (served.home.root / "ingest.token").read_text().strip()
            ),
            30,
            "the ingest token",
        )

        def post() -> Any:
            try:
                return httpx.post(
                    f"http://127.0.0.1:{port}/events",
                    json={"type": "test.up_by_http", "severity": "high", "source": "http-test"},
                    headers={"Authorization": f"Bearer {token}"},
                    timeout=10,
                )
            except httpx.TransportError:
                return None  # not listening yet

        response = wait_for(post, 60, "the ingest endpoint")
        assert response.status_code == 201, response.text
        return str(response.json()["ids"][0])
    finally:
        server.terminate()
        server.wait(30)


def _by_monitor(served: Served) -> str:
    # Memory "high" at 0 %: this one monitor cycle raises resource.high for memory.
    extra = {"AIOS_MONITOR__THRESHOLDS": json.dumps({"memory": {"raise": 0, "clear": 0}})}
    result = aios_cli("monitor", "--once", home=served.home, api_url=served.api_url, extra=extra)
    assert result.returncode == 0, result.stderr
    [(_, _, _, _, event_id)] = _rows(
        served,
        "type = 'resource.high' AND source = 'aios.monitor' AND payload->>'resource' = 'memory'",
    )
    return str(event_id)


def _rows(served: Served, where: str) -> list[Any]:
    from aios.store import open_store

    with open_store(served.home) as con:
        return con.execute(
            f"SELECT type, source, severity, payload, id FROM events WHERE {where}"
        ).fetchall()


PRODUCERS = {"cli": _by_cli, "track": _by_track, "http": _by_http, "monitor": _by_monitor}


@pytest.mark.parametrize("producer", list(PRODUCERS))
def test_an_urgent_event_from_any_producer_reaches_the_reactor(
    served: Served, producer: str
) -> None:
    served.ws.reset()
    event_id = PRODUCERS[producer](served)
    finished = remediations_finished(
        served.home, event_id, what=f"a remediation of the event from {producer}"
    )
    assert finished[-1][2]["playbook"] == f"up_by_{producer}"
    assert finished[-1][2]["outcome"] == "succeeded" and served.ws.level() == 2
    [(_, _, dispatched, _)] = events_of(
        served.home,
        "type = 'scheduler.dispatched' AND payload->>'event_ids' LIKE ?",
        [f"%{event_id}%"],
    )
    assert dispatched["route"] == "reactor"


def test_a_low_priority_event_does_not_start_the_reactor(served: Served) -> None:
    event = served.emit("test.up_quiet", severity="medium")  # P2: the executor's
    marker = served.emit("test.nothing_matches", severity="critical")  # P0: alerted anyway
    wait_for(
        lambda: events_of(
            served.home,
            "type = 'scheduler.dispatched' AND payload->>'event_ids' LIKE ?",
            [f"%{marker.id}%"],
        ),
        60,
        "the critical event to be dispatched",
    )
    dispatched = events_of(served.home, "type = 'scheduler.dispatched'")
    assert not any(event.id in d[2]["event_ids"] for d in dispatched)


@pytest.mark.parametrize("answer", ["approve", "reject"])
def test_a_served_reactor_pauses_for_approval_through_the_api(served: Served, answer: str) -> None:
    served.ws.reset()
    pid = f"up_risky_{answer}"
    event = served.emit(f"test.{pid}")
    [waiting] = wait_for(
        lambda: [w for w in served.waiting() if w["playbook"] == pid], 90, "a paused run"
    )
    with HttpPrefectAPI(served.api_url) as api:
        assert api.read_flow_run(waiting["flow_run_id"])["state_type"] == "PAUSED"
    assert served.ws.level() == 1
    result = served.cli("approvals", answer, waiting["remediation_id"], "--approver", "ops")
    assert result.returncode == 0, result.stderr
    if answer == "approve":
        outcome = served.outcome(event)
        assert outcome["outcome"] == "succeeded" and served.ws.level() == 2
    else:
        skipped = wait_for(
            lambda: events_of(
                served.home,
                "type = 'playbook.skipped' AND correlation_id = ? AND payload->>'reason' = "
                "'denied'",
                [event.id],
            ),
            60,
            "the denial",
        )
        assert skipped and served.ws.level() == 1
    with HttpPrefectAPI(served.api_url) as api:
        wait_for(
            lambda: api.read_flow_run(waiting["flow_run_id"])["state_type"] == "COMPLETED",
            60,
            "the run to complete",
        )


def test_a_crashed_run_retried_like_the_ui_does_not_repeat_done_actions(
    served: Served,
) -> None:
    served.ws.reset()
    marker = served.ws.root.parent / "crashed-once"
    event = served.emit("test.up_crash")
    [waiting] = wait_for(
        lambda: [w for w in served.waiting() if w["playbook"] == "up_crash"], 90, "a paused run"
    )
    assert served.cli("approvals", "approve", waiting["flow_run_id"]).returncode == 0
    run_id = waiting["flow_run_id"]
    with HttpPrefectAPI(served.api_url) as api:
        crashed = wait_for(
            lambda: api.read_flow_run(run_id)["state_type"] in ("CRASHED", "FAILED"),
            90,
            "the run to crash",
        )
        assert crashed and marker.exists() and served.ws.level() == 2
        runs_before = api.read_flow_run(run_id)["run_count"]
        # What the UI's Retry does: AwaitingRetry; the runner runs it again.
        result = api.set_flow_run_state(
            run_id, {"type": "SCHEDULED", "name": "AwaitingRetry", "message": "Retry"}
        )
        assert result["status"] == "ACCEPT"
        outcome = served.outcome(event)
        run = api.read_flow_run(run_id)
    assert outcome["outcome"] == "succeeded"
    assert run["run_count"] == runs_before + 1  # the same flow run, run again
    wait_for(
        lambda: HttpPrefectAPI(served.api_url).read_flow_run(run_id)["state_type"] == "COMPLETED",
        60,
        "the retried run to complete",
    )
    chain = [(t, p) for t, _, p, c in events_of(served.home) if c == event.id]
    completed = [p["index"] for t, p in chain if t == "action.completed"]
    assert completed == [0, 1], "the config change is not made twice"
    assert [t for t, _ in chain].count("approval.requested") == 1, "approval is not asked again"
    assert [t for t, _ in chain].count("remediation.started") == 1


def test_a_second_aios_up_says_one_is_running(served: Served) -> None:
    result = aios_cli("up", home=served.home, api_url=served.api_url)
    assert result.returncode == 1
    assert "already running" in result.stderr and str(served.up.process.pid) in result.stderr


def test_ctrl_c_stops_it_cleanly(prefect_server: str, tmp_path: Path) -> None:
    home = HomePaths(tmp_path / "aios-home")
    with aios_up(home, api_url=prefect_server) as up:
        assert (home.root / "up.json").exists()
        chroma_port = int(
            json.loads((home.root / "up.json").read_text())["chroma_url"].rsplit(":", 1)[1]
        )
        assert up.dashboard_url is not None
        dashboard_port = int(up.dashboard_url.rsplit(":", 1)[1])
        code = up.stop(signal.SIGINT)
    assert code == 0
    assert "runner, event watcher and dashboard stopped" in up.text()
    assert not (home.root / "up.json").exists()
    assert port_free(chroma_port), "the Chroma server stopped with it"
    assert port_free(dashboard_port), "the dashboard stopped with it"
    # The lock is free again: a new one starts, and runs on when the dashboard's port is taken.
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        with aios_up(home, api_url=prefect_server, extra={"AIOS_DASHBOARD__PORT": port}) as again:
            assert f"the dashboard's port {port} on 127.0.0.1 is in use" in again.text()
            assert again.dashboard_url is None
            assert again.stop(signal.SIGTERM) == 0


def test_it_serves_the_dashboard_of_its_home(served: Served) -> None:
    assert served.up.dashboard_url is not None
    assert f"Dashboard:  {served.up.dashboard_url}" in served.up.text()
    event = served.bus.emit("queue.backlog", {"depth": 9}, severity="medium")

    def shown() -> bool:
        page = httpx.get(f"{served.up.dashboard_url}/api/pages/overview", timeout=10).json()
        return str(event.id) in {row["id"] for row in (page["data"] or {}).get("timeline", [])}

    wait_for(shown, 30, "the new event on the dashboard's overview")
    approvals = httpx.get(f"{served.up.dashboard_url}/api/pages/approvals", timeout=10).json()
    assert approvals["data"]["ui_url"] == served.up.ui_url
    assert approvals["home"] == str(served.home.root)


def test_a_bad_server_address_is_a_clear_error(tmp_path: Path) -> None:
    home = HomePaths(tmp_path / "aios-home")
    result = subprocess.run(
        [str(AIOS_BIN), "up"],
        env=aios_env(home, "http://127.0.0.1:9/api"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert "http://127.0.0.1:9/api" in result.stderr and "not healthy" in result.stderr
    assert not (home.root / "up.json").exists()


def test_lessons_go_through_the_chroma_server_it_started(served: Served) -> None:
    info = json.loads((served.home.root / "up.json").read_text())
    chroma = info["chroma_url"]
    assert httpx.get(f"{chroma}/api/v2/heartbeat", timeout=10).status_code == 200
    assert f"Chroma:     {chroma}" in served.up.text()
    for n in range(3):
        served.bus.emit(
            "task.failed",
            {"error_type": "TimeoutError", "error": f"tool up_search timed out after {n}s"},
            source="writer",
            labels={"agent": "writer"},
        )
    made = served.cli("lessons", "extract", "--json")
    assert made.returncode == 0, made.stderr
    [created] = json.loads(made.stdout)["created"]
    found = json.loads(served.cli("lessons", "search", "up_search timeout", "--json").stdout)
    assert found[0]["lesson_id"] == created["lesson_id"]
    # The lesson lives in the server's collection, not in a file this process opened.
    listed = httpx.get(
        f"{chroma}/api/v2/tenants/default_tenant/databases/default_database/collections",
        timeout=10,
    ).json()
    assert any(c["name"].startswith("lessons.") for c in listed)


def test_a_server_with_an_auth_string_is_served_and_asked_with_it(tmp_path: Path) -> None:
    """PREFECT_SERVER_API_AUTH_STRING: the local server asks every caller for it; aios up's
    runner and the CLI send it; a caller without it or with a wrong one is told so."""
    home = HomePaths(tmp_path / "aios-home")
    secret = "ops:" + uuid.uuid4().hex
    with aios_up(home, port=free_port(), extra={"PREFECT_SERVER_API_AUTH_STRING": secret}) as up:
        assert "credentials required" in up.text()
        anonymous = httpx.post(f"{up.api_url}/deployments/filter", json={}, timeout=10)
        assert anonymous.status_code == 401
        with_it = {"PREFECT_API_AUTH_STRING": secret}
        listed = aios_cli(
            "approvals", "list", "--json", home=home, api_url=up.api_url, extra=with_it
        )
        assert listed.returncode == 0, listed.stderr
        assert json.loads(listed.stdout) == []
        wrong = aios_cli(
            "approvals",
            "list",
            home=home,
            api_url=up.api_url,
            extra={"PREFECT_API_AUTH_STRING": "ops:wrong"},
        )
        assert wrong.returncode != 0 and "refused PREFECT_API_AUTH_STRING" in wrong.stderr
        missing = aios_cli("approvals", "list", home=home, api_url=up.api_url)
        assert missing.returncode != 0 and "wants credentials" in missing.stderr
        assert secret not in wrong.stderr + missing.stderr + up.text()
        os.environ["PREFECT_API_AUTH_STRING"] = secret
        try:
            with HttpPrefectAPI(up.api_url) as api:  # the runner registered every deployment
                names = {f"{d['flow_name']}/{d['name']}" for d in api.read_deployments()}
        finally:
            del os.environ["PREFECT_API_AUTH_STRING"]
        assert "aios-monitor/aios" in names
