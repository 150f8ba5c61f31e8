"""A local Prefect server for ``aios up``: SQLite under ``$AIOS_HOME/prefect``, 127.0.0.1 only,
analytics off, started in its own process group and stopped with it."""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from aios.errors import AIOSError
from aios.home import HomePaths
from aios.ports import port_free

DEFAULT_PORT = 4200
_PR_SET_PDEATHSIG = 1
HOST = "127.0.0.1"


class ServerError(AIOSError):
    """The local Prefect server could not be started or did not become healthy."""


def _die_with_parent() -> None:
    """In the child: SIGTERM when the process that started it dies, even by SIGKILL (Linux),
    so a killed ``aios up`` leaves no server behind holding the port."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        pass  # not Linux: stopped by aios up's own shutdown only


def wait_healthy(api_url: str, timeout_s: float, alive: subprocess.Popen[bytes] | None) -> None:
    """Return once ``GET {api_url}/health`` answers; raises ServerError at the deadline."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if alive is not None and alive.poll() is not None:
            raise ServerError(f"the Prefect server exited with code {alive.returncode}")
        try:
            if httpx.get(f"{api_url}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    raise ServerError(f"the Prefect server at {api_url} was not healthy within {timeout_s:.0f} s")


class LocalServer:
    """``prefect server start`` on ``port``, its state in ``$AIOS_HOME/prefect``."""

    def __init__(self, paths: HomePaths, port: int = DEFAULT_PORT) -> None:
        self.paths = paths
        self.port = port
        self.home = paths.root / "prefect"
        self.log_path = self.home / "server.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def api_url(self) -> str:
        return f"http://{HOST}:{self.port}/api"

    @property
    def ui_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
        env.update(
            PREFECT_HOME=str(self.home),
            PREFECT_API_DATABASE_CONNECTION_URL=f"sqlite+aiosqlite:///{self.home / 'prefect.db'}",
            PREFECT_SERVER_API_HOST=HOST,
            PREFECT_SERVER_API_PORT=str(self.port),
            PREFECT_UI_API_URL=self.api_url,
            PREFECT_SERVER_ANALYTICS_ENABLED="false",
        )
        # Only the server's own UI may call it from a browser (Prefect's default is any
        # origin: a web page elsewhere could resume a paused approval). An operator's own
        # setting wins.
        env.setdefault("PREFECT_SERVER_API_CORS_ALLOWED_ORIGINS", self.ui_url)
        return env

    def start(self, timeout_s: float = 90.0) -> None:
        """Start it and wait until it answers; raises ServerError (port taken, no answer)."""
        if not port_free(self.port):
            raise ServerError(
                f"port {self.port} on {HOST} is in use: stop what uses it, or set "
                "PREFECT_SERVER_API_PORT to a free port (or PREFECT_API_URL to use a running "
                "Prefect server)"
            )
        self.home.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115 - the server writes it while it runs
        try:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "prefect",
                    "server",
                    "start",
                    "--host",
                    HOST,
                    "--port",
                    str(self.port),
                    "--analytics-off",
                ],
                env=self.environment(),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # its own process group: stopped as a whole
                preexec_fn=_die_with_parent,
            )
        finally:
            log.close()
        try:
            wait_healthy(self.api_url, timeout_s, self.process)
        except ServerError as exc:
            self.stop()
            raise ServerError(f"{exc}; see {self.log_path}") from None

    def stop(self, timeout_s: float = 15.0) -> None:
        stop_group(self.process, timeout_s)


def stop_group(process: subprocess.Popen[bytes] | None, timeout_s: float) -> None:
    """SIGTERM to ``process``'s process group, SIGKILL after ``timeout_s``."""
    if process is None or process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        process.wait(timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(5)


def log_tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""
