"""The deployment definition: entrypoints, prefect.yaml, `aios deploy` to a work pool with a
real worker, `prefect deploy --all`, `aios run`, and the core staying free of Prefect."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from aios.home import HomePaths
from deployments.definitions import DEPLOYMENTS, PROJECT_ROOT
from tests.orchestration_helpers import aios_cli, aios_env, events_of, wait_for


@pytest.mark.parametrize("spec", DEPLOYMENTS, ids=lambda s: s.agent)
def test_every_entrypoint_imports_and_names_its_flow(spec: object) -> None:
    from prefect import Flow
    from prefect.flows import load_flow_from_entrypoint

    from deployments.definitions import DeploymentSpec

    assert isinstance(spec, DeploymentSpec)
    by_module = spec.load_flow()
    by_file: Flow[..., object] = load_flow_from_entrypoint(str(PROJECT_ROOT / spec.entrypoint))
    assert isinstance(by_module, Flow) and isinstance(by_file, Flow)
    assert by_module.name == by_file.name == spec.flow_name


def test_prefect_yaml_is_the_rendered_definition() -> None:
    from deployments.prefect_yaml import PATH, render

    assert PATH.read_text() == render(), "run: python -m deployments.prefect_yaml"
    document = yaml.safe_load(PATH.read_text())
    names = [d["flow_name"] for d in document["deployments"]]
    assert names == [spec.flow_name for spec in DEPLOYMENTS]
    cadence = {d["flow_name"]: d["schedules"] for d in document["deployments"]}
    assert cadence["aios-monitor"] == [{"interval": 300}]
    assert cadence["aios-heartbeat"] == [{"interval": 60}]
    assert cadence["aios-executor"] == [{"interval": 1800}]
    assert cadence["aios-reactor"] == []
    assert cadence["aios-analyst"][0]["cron"] == "0 1 * * *"


def test_the_cli_knows_every_flow() -> None:
    from aios.cli.orchestration_cmd import FLOW_NAMES

    assert set(FLOW_NAMES) == {spec.agent for spec in DEPLOYMENTS}


def test_the_core_and_its_commands_never_import_prefect() -> None:
    """Importing every module of ``aios`` (and running a core command) leaves Prefect,
    flows, tasks, blocks and deployments unimported."""
    code = """
import importlib, pkgutil, sys
import aios
for info in pkgutil.walk_packages(aios.__path__, "aios."):
    importlib.import_module(info.name)
from aios.cli.main import app
from typer.testing import CliRunner
CliRunner().invoke(app, ["playbooks", "list"])
bad = sorted(m for m in sys.modules
             if m.split(".")[0] in ("prefect", "flows", "tasks", "blocks", "deployments"))
print(",".join(bad))
"""
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""


def test_aios_run_prints_the_flows_result(home: HomePaths, prefect_server: str) -> None:
    result = aios_cli("run", "heartbeat", "--json", home=home, api_url=prefect_server)
    assert result.returncode == 0, result.stderr
    beat = json.loads(result.stdout)
    assert beat["pid"] > 0 and beat["version"]
    [(_, _, payload, _)] = events_of(home, "type = 'system.heartbeat'")
    assert payload["pid"] == beat["pid"]
    bad = aios_cli("run", "nonsense", home=home, api_url=prefect_server)
    assert bad.returncode == 2 and "is not a flow" in bad.stderr
    wrong = aios_cli("run", "monitor", "--event", "x", home=home, api_url=prefect_server)
    assert wrong.returncode == 2 and "reactor flow only" in wrong.stderr


@pytest.fixture
def pool_deployments(prefect_server: str) -> Iterator[None]:
    """The AIOS deployments a test puts on a work pool are deleted afterwards: the server is
    shared, and ``aios up`` refuses to take pool deployments over."""
    yield
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with (
        temporary_settings({PREFECT_API_URL: prefect_server}),
        get_client(sync_client=True) as client,
    ):
        for spec in DEPLOYMENTS:
            with contextlib.suppress(ObjectNotFound):
                client.delete_deployment(client.read_deployment_by_name(spec.full_name).id)


@pytest.mark.slow
@pytest.mark.usefixtures("pool_deployments")
def test_aios_deploy_to_a_pool_and_a_real_worker_runs_it(
    home: HomePaths, prefect_server: str, tmp_path: Path
) -> None:
    pool = f"aios-test-{uuid.uuid4().hex[:6]}"
    result = aios_cli("deploy", "--pool", pool, "--json", home=home, api_url=prefect_server)
    assert result.returncode == 0, result.stderr
    done = {d["name"]: d for d in json.loads(result.stdout)}
    assert set(done) == {spec.full_name for spec in DEPLOYMENTS}
    from aios.prefect_api import HttpPrefectAPI

    with HttpPrefectAPI(prefect_server) as api:
        heartbeat = api.read_deployment(done["aios-heartbeat/aios"]["id"])
        assert heartbeat["work_pool_name"] == pool
        assert heartbeat["entrypoint"] == "flows/heartbeat.py:heartbeat_flow"
        assert heartbeat["schedules"][0]["schedule"]["interval"] == 60
        run = api.read_flow_run(_create_run(prefect_server, heartbeat["id"]))
    # A worker on this "machine" runs the scheduled heartbeat once.
    worker = subprocess.run(
        [
            str(Path(sys.executable).parent / "prefect"),
            "worker",
            "start",
            "--pool",
            pool,
            "--run-once",
            "--limit",
            "1",
        ],
        env=aios_env(home, prefect_server),
        capture_output=True,
        text=True,
        timeout=180,
        cwd=tmp_path,
    )
    assert worker.returncode == 0, worker.stdout[-3000:] + worker.stderr[-3000:]
    with HttpPrefectAPI(prefect_server) as api:
        wait_for(
            lambda: api.read_flow_run(run["id"])["state_type"] == "COMPLETED",
            60,
            "the worker's run to complete",
        )
    assert events_of(home, "type = 'system.heartbeat'"), "the heartbeat ran in this home"
    # On a pool, aios watch starts the reactor for this site's urgent events.
    watcher = subprocess.Popen(
        [str(Path(sys.executable).parent / "aios"), "watch"],
        env=aios_env(home, prefect_server),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_for(lambda: (home.root / "watcher.lock").exists(), 60, "aios watch to start")
        second = aios_cli("watch", home=home, api_url=prefect_server)
        assert second.returncode == 1 and "already follows" in second.stderr
        urgent = aios_cli(
            "emit", "disk.failing", "--severity", "critical", home=home, api_url=prefect_server
        )
        assert urgent.returncode == 0, urgent.stderr
        [(_, _, dispatched, _)] = wait_for(
            lambda: events_of(home, "type = 'scheduler.dispatched'"), 60, "a dispatch"
        )
    finally:
        watcher.send_signal(signal.SIGINT)
        out, _ = watcher.communicate(timeout=60)
    assert watcher.returncode == 0 and "1 run(s) started" in out, out
    assert dispatched["event_ids"] == [urgent.stdout.strip()]
    with HttpPrefectAPI(prefect_server) as api:
        reactor_run = api.read_flow_run(dispatched["flow_run_id"])
        reactor_deployment = api.read_deployment(reactor_run["deployment_id"])
    assert reactor_deployment["work_pool_name"] == pool  # for the pool's workers to run
    # aios up on the same server would take the pool's deployments from its workers: refused.
    refused = aios_cli("up", home=HomePaths(tmp_path / "up-home"), api_url=prefect_server)
    assert refused.returncode == 1
    assert f"aios-heartbeat/aios (work pool {pool})" in refused.stderr
    assert "another Prefect server" in refused.stderr
    with HttpPrefectAPI(prefect_server) as api:
        assert api.read_deployment(heartbeat["id"])["work_pool_name"] == pool  # untouched


def _create_run(api_url: str, deployment_id: str) -> str:
    """A run of the deployment, through Prefect's client (it retries a busy server's 503)."""
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: api_url}), get_client(sync_client=True) as client:
        return str(client.create_flow_run_from_deployment(uuid.UUID(deployment_id)).id)


@pytest.mark.slow
@pytest.mark.usefixtures("pool_deployments")
def test_prefect_deploy_all_reads_prefect_yaml(home: HomePaths, prefect_server: str) -> None:
    env = aios_env(home, prefect_server)
    prefect = str(Path(sys.executable).parent / "prefect")
    created = subprocess.run(
        [prefect, "work-pool", "create", "aios", "--type", "process", "--overwrite"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=PROJECT_ROOT,
    )
    assert created.returncode == 0, created.stdout + created.stderr
    result = subprocess.run(
        [prefect, "--no-prompt", "deploy", "--all", "--prefect-file", "deployments/prefect.yaml"],
        env={**env, "PWD": str(PROJECT_ROOT)},
        capture_output=True,
        text=True,
        timeout=300,
        cwd=PROJECT_ROOT,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    from aios.prefect_api import HttpPrefectAPI

    with HttpPrefectAPI(prefect_server) as api:
        monitor = api.read_deployment_by_name("aios-monitor/aios")
    assert monitor["work_pool_name"] == "aios"
    assert monitor["entrypoint"] == "flows/monitor.py:monitor_flow"
    assert monitor["pull_steps"][0]["prefect.deployments.steps.set_working_directory"][
        "directory"
    ] == str(PROJECT_ROOT)
    assert os.path.isdir(PROJECT_ROOT / "flows")
