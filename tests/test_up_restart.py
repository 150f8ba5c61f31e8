"""``aios up`` stopped and started again, on its own (one ``aios up`` per Prefect server: this
module runs after test_up's served instance is gone). Bad settings are named."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import pytest

from aios.bus import EventBus
from aios.home import HomePaths
from aios.log import EventLog
from tests.orchestration_helpers import (
    aios_cli,
    aios_up,
    events_of,
    make_workspace,
    remediations_finished,
    wait_for,
)
from tests.test_up import LIMITS

pytestmark = pytest.mark.slow


def test_an_approval_left_waiting_when_aios_up_stops_is_asked_again_after(
    prefect_server: str, tmp_path: Path
) -> None:
    home = HomePaths(tmp_path / "aios-home")
    ws = make_workspace(tmp_path)
    ws.playbook("up_left_waiting", risk="medium", limits=LIMITS)
    env = ws.env()
    bus = EventBus(EventLog(home.events))
    with aios_up(home, api_url=prefect_server, extra=env) as up:
        event = bus.emit("test.up_left_waiting", {}, source="test", severity="high")
        [first] = wait_for(
            lambda: [
                w for w in _listed(home, prefect_server, env) if w["playbook"] == "up_left_waiting"
            ],
            90,
            "the approval",
        )
        assert up.stop(signal.SIGINT) == 0  # its paused run is cancelled with it
    assert ws.level() == 1
    with aios_up(home, api_url=prefect_server, extra=env):
        [again] = wait_for(
            lambda: [
                w for w in _listed(home, prefect_server, env) if w["playbook"] == "up_left_waiting"
            ],
            90,
            "the approval to be asked again",
        )
        assert again["remediation_id"] == first["remediation_id"]
        assert again["flow_run_id"] != first["flow_run_id"]
        answered = aios_cli(
            "approvals",
            "approve",
            again["flow_run_id"],
            home=home,
            api_url=prefect_server,
            extra=env,
        )
        assert answered.returncode == 0, answered.stderr
        finished = remediations_finished(home, event.id, what="the remediation")
    assert finished[-1][2]["outcome"] == "succeeded" and ws.level() == 2
    [(_, _, recovered, _)] = events_of(
        home, "type = 'scheduler.dispatched' AND payload->>'recovered' = 'true'"
    )
    assert recovered["event_ids"] == [event.id]


def _listed(home: HomePaths, api_url: str, env: dict[str, str]) -> list[dict[str, Any]]:
    result = aios_cli("approvals", "list", "--json", home=home, api_url=api_url, extra=env)
    assert result.returncode == 0, result.stderr
    return list(json.loads(result.stdout))


def test_bad_port_and_bad_flow_parameters_are_named(tmp_path: Path, prefect_server: str) -> None:
    home = HomePaths(tmp_path / "aios-home")
    port = aios_cli("up", home=home, api_url=None, extra={"PREFECT_SERVER_API_PORT": "http"})
    assert port.returncode == 2 and "PREFECT_SERVER_API_PORT='http'" in port.stderr
    unknown = aios_cli("run", "heartbeat", "-p", "speed=3", home=home, api_url=prefect_server)
    assert unknown.returncode == 2 and "has no parameter speed" in unknown.stderr
    typed = aios_cli("run", "analyst", "-p", "window_hours=abc", home=home, api_url=prefect_server)
    assert typed.returncode == 2 and "window_hours" in typed.stderr
    assert "Traceback" not in unknown.stderr + typed.stderr + port.stderr
