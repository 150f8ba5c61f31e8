"""The Chroma server ``aios up`` starts for lessons and memories: ``chroma run`` on 127.0.0.1,
its data in ``$AIOS_HOME/chroma``, in its own process group, stopped with ``aios up``.

Every process then talks to one server (``AIOS_CHROMA_URL``, also recorded in ``up.json``)
instead of opening the files itself: no process can answer from a stale copy of the index.
The port is ``AIOS_CHROMA_PORT``, else a free one.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx

from aios.errors import AIOSError, InputError
from aios.home import HomePaths
from aios.ports import free_port, port_free
from deployments.server import HOST, _die_with_parent, log_tail, stop_group

PORT_ENV = "AIOS_CHROMA_PORT"


class ChromaServerError(AIOSError):
    """The Chroma server could not be started or did not answer."""


def chosen_port() -> int:
    raw = os.environ.get(PORT_ENV, "").strip()
    if not raw:
        return free_port(HOST)
    if not raw.isdigit() or not 1 <= int(raw) <= 65535:
        raise InputError(f"{PORT_ENV}={raw!r}: a port number from 1 to 65535")
    return int(raw)


class ChromaServer:
    """``chroma run --path $AIOS_HOME/chroma`` on ``port``."""

    def __init__(self, paths: HomePaths, port: int) -> None:
        self.paths, self.port = paths, port
        self.data = paths.root / "chroma"
        self.log_path = paths.root / "chroma-server.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def _command(self) -> list[str]:
        found = shutil.which("chroma", path=str(Path(sys.executable).parent)) or shutil.which(
            "chroma"
        )
        if found is None:
            raise ChromaServerError("the chroma command is missing: reinstall aios (chromadb)")
        return [found, "run", "--path", str(self.data), "--host", HOST, "--port", str(self.port)]

    def start(self, timeout_s: float = 60.0) -> None:
        """Start it and wait until it answers; raises ChromaServerError (port taken, no
        answer)."""
        if not port_free(self.port):
            raise ChromaServerError(
                f"port {self.port} on {HOST} is in use: set {PORT_ENV} to a free port, or "
                "AIOS_CHROMA_URL to a running Chroma server"
            )
        self.data.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "ANONYMIZED_TELEMETRY": "False"}
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                self._command(),
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ChromaServerError(
                    f"the Chroma server exited with code {self.process.returncode}: "
                    f"{log_tail(self.log_path, 5)}"
                )
            try:
                if httpx.get(f"{self.url}/api/v2/heartbeat", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise ChromaServerError(f"the Chroma server did not answer within {timeout_s:.0f} s")

    def stop(self, timeout_s: float = 10.0) -> None:
        stop_group(self.process, timeout_s)
