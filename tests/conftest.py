"""Shared fixtures: a fresh AIOS_HOME per test, and the installed `aios` command."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from aios import runtime
from aios.home import HomePaths
from aios.log import EventLog

if TYPE_CHECKING:
    from tests.orchestration_helpers import Workspace

AIOS_BIN = Path(sys.executable).parent / "aios"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[HomePaths]:
    """An empty AIOS_HOME for this test; the process-wide bus follows it."""
    root = tmp_path / "aios-home"
    root.mkdir()
    monkeypatch.setenv("AIOS_HOME", str(root))
    for name in list(os.environ):
        if name.startswith("AIOS_") and name != "AIOS_HOME":
            monkeypatch.delenv(name)
    runtime.reset()
    yield HomePaths(root)
    runtime.reset()


@pytest.fixture
def log(home: HomePaths) -> Iterator[EventLog]:
    event_log = EventLog(home.events)
    yield event_log
    event_log.close()


def run_aios(
    *args: str, home: HomePaths, input: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the installed `aios` entry point in a subprocess against ``home``."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("AIOS_")}
    full_env.update({"AIOS_HOME": str(home.root), "COLUMNS": "200", "NO_COLOR": "1"})
    full_env.update(env or {})
    return subprocess.run(
        [str(AIOS_BIN), *args],
        capture_output=True,
        text=True,
        input=input,
        env=full_env,
        timeout=120,
    )


@pytest.fixture(scope="session")
def prefect_server() -> Iterator[str]:
    """One real Prefect server (temporary SQLite) for the whole session; yields its API URL.

    Started once: it costs about 12 s. Tests keep apart by their own names and AIOS_HOME.
    """
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PREFECT_SERVER_ANALYTICS_ENABLED", "false")  # no network here
        with prefect_test_harness(server_startup_timeout=90):
            yield str(PREFECT_API_URL.value())


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """An allowed root for file actions (modules with other needs define their own)."""
    path = tmp_path / "agents"
    path.mkdir()
    return path


@pytest.fixture
def config_file(root: Path) -> Path:
    """An agent's JSON config file in ``root``: heartbeat.interval 60, retries 1."""
    path = root / "writer.json"
    path.write_text('{\n  "heartbeat": {\n    "interval": 60\n  },\n  "retries": 1\n}\n')
    return path


@pytest.fixture
def ws(home: HomePaths, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Workspace]:
    """A playbook workspace (an allowed root with an agent's config file, and a playbook
    directory) that this process's AIOS settings point at."""
    from blocks.aios_settings import forget_cached
    from tests.orchestration_helpers import make_workspace

    workspace = make_workspace(tmp_path)
    for key, value in workspace.env().items():
        monkeypatch.setenv(key, value)
    forget_cached()
    yield workspace
    forget_cached()
