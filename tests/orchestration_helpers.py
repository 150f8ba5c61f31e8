"""Shared by the Prefect-side tests: a playbook workspace, running flows, reading what Prefect
recorded, and starting ``aios up`` as a real process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from aios.home import HomePaths
from aios.ports import free_port as free_port

AIOS_BIN = Path(sys.executable).parent / "aios"


@dataclass
class Workspace:
    """An allowed root with an agent's config file, and a directory of test playbooks."""

    root: Path
    playbooks: Path
    config: Path

    def playbook(self, pid: str, **fields: Any) -> Path:
        """Write playbook ``pid``: by default it sets ``limits.level`` to 2 in the config
        file (low risk, verified), triggered by ``test.<pid>``."""
        data: dict[str, Any] = {
            "id": pid,
            "description": f"test playbook {pid}",
            "trigger": {"type": f"test.{pid}"},
            "actions": [
                {
                    "type": "config.update",
                    "file": str(self.config),
                    "key": "limits.level",
                    "value": 2,
                }
            ],
            "risk": "low",
            "verify": {
                "probe": "file_value",
                "file": str(self.config),
                "key": "limits.level",
                "expect": "==2",
                "within": "5s",
                "interval": "0.2s",
            },
        }
        data.update(fields)
        path = self.playbooks / f"{pid}.json"
        path.write_text(json.dumps(data, indent=2))
        return path

    def level(self) -> Any:
        return json.loads(self.config.read_text())["limits"]["level"]

    def reset(self) -> None:
        self.config.write_text('{\n  "limits": {\n    "level": 1\n  }\n}\n')

    def env(self) -> dict[str, str]:
        return {
            "AIOS_REACTOR__PLAYBOOK_DIRS": json.dumps([str(self.playbooks)]),
            "AIOS_REACTOR__ALLOWED_ROOTS": json.dumps([str(self.root)]),
        }


def make_workspace(base: Path) -> Workspace:
    root = base / "agent-root"
    playbooks = base / "test-playbooks"
    root.mkdir()
    playbooks.mkdir()
    workspace = Workspace(root, playbooks, root / "agent.json")
    workspace.reset()
    return workspace


def wait_for(check: Callable[[], Any], timeout: float, what: str, every: float = 0.2) -> Any:
    """Poll ``check`` until it returns something truthy; AssertionError naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


def events_of(paths: HomePaths, where: str = "TRUE", params: list[Any] | None = None) -> list[Any]:
    """Rows (type, source, payload dict, correlation_id) from the store, oldest first."""
    from aios.store import open_store

    with open_store(paths) as con:
        rows = con.execute(
            f"SELECT type, source, payload, correlation_id FROM events WHERE {where} ORDER BY seq",
            params or [],
        ).fetchall()
    return [(t, s, orjson.loads(p), c) for t, s, p, c in rows]


def remediations_finished(
    paths: HomePaths, event_id: str, timeout: float = 90, what: str = "the remediation to finish"
) -> list[Any]:
    """Wait until a remediation caused by ``event_id`` has finished; its
    ``remediation.finished`` rows (as ``events_of`` gives them)."""
    rows: list[Any] = wait_for(
        lambda: events_of(
            paths, "type = 'remediation.finished' AND correlation_id = ?", [event_id]
        ),
        timeout,
        what,
    )
    return rows


def run_flow(flow: Any, *args: Any, **kwargs: Any) -> tuple[Any, str]:
    """Run a flow in this process; (its result, its flow run id). Raises if it failed."""
    state = flow(*args, return_state=True, **kwargs)
    flow_run_id = str(state.state_details.flow_run_id)
    return state.result(), flow_run_id


def flow_run(flow_run_id: str) -> Any:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        return client.read_flow_run(uuid.UUID(flow_run_id))


def artifacts_of(flow_run_id: str) -> dict[str, Any]:
    """The artifacts a flow run published, by key."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        )
    return {a.key: a for a in found if a.key}


def aios_env(
    home: HomePaths, api_url: str | None, extra: dict[str, str] | None = None
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIOS_", "PREFECT_"))}
    env.update(AIOS_HOME=str(home.root), NO_COLOR="1", COLUMNS="200")
    env["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    env["AIOS_DASHBOARD__PORT"] = "0"  # tests run side by side: each dashboard on a free port
    if api_url:
        env["PREFECT_API_URL"] = api_url
    env.update(extra or {})
    return env


def aios_cli(
    *args: str, home: HomePaths, api_url: str | None, extra: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(AIOS_BIN), *args],
        capture_output=True,
        text=True,
        env=aios_env(home, api_url, extra),
        timeout=180,
    )


@dataclass
class Up:
    """A running ``aios up``: its process and what it printed."""

    process: subprocess.Popen[str]
    home: HomePaths
    output: list[str] = field(default_factory=list)
    ui_url: str = ""
    api_url: str = ""
    dashboard_url: str | None = None

    def text(self) -> str:
        return "".join(self.output)

    def stop(self, sig: int = signal.SIGINT, timeout: float = 60) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.process.wait(timeout)


@contextmanager
def aios_up(
    home: HomePaths,
    *,
    api_url: str | None = None,
    port: int | None = None,
    extra: dict[str, str] | None = None,
    timeout: float = 150,
) -> Iterator[Up]:
    """Start ``aios up`` and wait until it says it is up; stop it (Ctrl-C) afterwards."""
    env = aios_env(home, api_url, extra)
    if port is not None:
        env["PREFECT_SERVER_API_PORT"] = str(port)
    process = subprocess.Popen(
        [str(AIOS_BIN), "up"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    up = Up(process, home)
    ready = threading.Event()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            up.output.append(line)
            if "Prefect UI:" in line:
                up.ui_url = line.split("Prefect UI:", 1)[1].strip()
            if "Ctrl-C stops it" in line:
                ready.set()
        ready.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        if not ready.wait(timeout) or process.poll() is not None:
            raise AssertionError(f"aios up did not come up:\n{up.text()}")
        info = json.loads((home.root / "up.json").read_text())
        up.api_url = info["api_url"]
        up.dashboard_url = info.get("dashboard_url")
        yield up
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
        reader.join(5)


class Background:
    """Run ``fn`` in a thread that carries this context (Prefect's settings live in it)."""

    def __init__(self, fn: Callable[[], Any]) -> None:
        import contextvars

        self.result: Any = None
        self.error: BaseException | None = None
        context = contextvars.copy_context()

        def target() -> None:
            try:
                self.result = context.run(fn)
            except BaseException as exc:  # handed to the test in join()
                self.error = exc

        self.thread = threading.Thread(target=target, daemon=True)
        self.thread.start()

    def join(self, timeout: float) -> Any:
        self.thread.join(timeout)
        if self.thread.is_alive():
            raise AssertionError(f"still running after {timeout:.0f} s")
        if self.error is not None:
            raise self.error
        return self.result
