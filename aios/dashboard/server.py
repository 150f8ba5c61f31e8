"""Serving the dashboard: in a thread beside ``aios up``'s runner, or in the foreground for
``aios dashboard``. The socket is bound before anything starts, so a port in use is an
error at once (naming the port), never a silent failure later."""

from __future__ import annotations

import errno
import logging
import socket
import threading
from collections.abc import Callable

import uvicorn

from aios.dashboard.app import create_app, is_loopback
from aios.dashboard.live import LiveData
from aios.errors import InputError
from aios.home import HomePaths

DEFAULT_PORT = 8765


class DashboardServer:
    """The dashboard of ``paths`` on ``host:port`` (port 0: a free one)."""

    def __init__(
        self,
        paths: HomePaths,
        *,
        host: str = "127.0.0.1",
        port: int = DEFAULT_PORT,
        preset: str = "evolution",
        ui_url: Callable[[], str | None] = lambda: None,
        allowed_hosts: tuple[str, ...] = (),
    ) -> None:
        self.live = LiveData(paths, preset=preset, ui_url=ui_url)
        self.host = host
        self.socket = _bind(host, port)
        self.port = int(self.socket.getsockname()[1])
        config = uvicorn.Config(
            create_app(self.live, host, allowed_hosts),
            log_level="warning",
            access_log=False,
            ws_ping_interval=20.0,
            lifespan="off",
        )
        self.server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    @property
    def exposed(self) -> str | None:
        """A warning when others can reach it: the dashboard has no login, so anyone who can
        reach a non-loopback address can read every page (never change anything)."""
        if is_loopback(self.host):
            return None
        return (
            f"the dashboard listens on {self.host or 'every address'}: it has no login, so "
            "anyone who can reach that address can read it (set [dashboard] host = "
            '"127.0.0.1" to keep it to this machine)'
        )

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> None:
        """Serve in a background thread."""
        self.live.start()
        self._thread = threading.Thread(
            target=self.server.run,
            kwargs={"sockets": [self.socket]},
            name="aios-dashboard-http",
            daemon=True,
        )
        self._thread.start()

    def run(self) -> None:
        """Serve in this thread until Ctrl-C."""
        self.live.start()
        try:
            self.server.run(sockets=[self.socket])
        finally:
            self.live.stop()
            self.socket.close()

    def stop(self) -> None:
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)
        self.live.stop()
        self.socket.close()


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OverflowError:
        sock.close()
        raise InputError(f"the dashboard's port {port}: a port number from 0 to 65535") from None
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise InputError(
                f"the dashboard's port {port} on {host} is in use: set [dashboard] port in "
                "config.toml (or AIOS_DASHBOARD__PORT; 0 takes a free port)"
            ) from None
        raise InputError(f"the dashboard cannot listen on {host}:{port}: {exc}") from None
    sock.listen(128)
    sock.set_inheritable(False)
    logging.getLogger("aios.dashboard").debug("dashboard bound to %s:%s", host, port)
    return sock
