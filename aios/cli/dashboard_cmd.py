"""``aios dashboard``: serve the read-only dashboard of ``$AIOS_HOME`` in the foreground."""

from __future__ import annotations

import os
from typing import Annotated

import typer
from rich.markup import escape

from aios.cli.output import err_console
from aios.errors import InputError


def dashboard(
    port: Annotated[
        int | None,
        typer.Option(
            min=0, max=65535, help="Port (default: [dashboard] port, 8765; 0 takes a free one)."
        ),
    ] = None,
    host: Annotated[
        str | None, typer.Option(help="Address (default: [dashboard] host, 127.0.0.1).")
    ] = None,
) -> None:
    """Serve the dashboard (Overview, Agents, Evolution, Performance, Approvals) until Ctrl-C.

    `aios up` serves it too; use this to look at a home without running AIOS, such as the
    demo's after it ended. Read-only. Links into the Prefect UI use the address `aios up`
    recorded, else PREFECT_UI_URL.
    """
    from aios.config import load_config
    from aios.dashboard.server import DashboardServer
    from aios.home import HomePaths
    from aios.prefect_api import read_up

    paths = HomePaths.current()
    if not (paths.events.is_dir() or paths.config.is_file()):
        raise InputError(
            f"there is no AIOS home at {paths.root}: set AIOS_HOME, or run `aios init` or "
            "`aios demo` first"
        )
    config = load_config(paths)

    def ui_url() -> str | None:
        info = read_up(paths) or {}
        return info.get("ui_url") or os.environ.get("PREFECT_UI_URL") or None

    server = DashboardServer(
        paths,
        host=host or config.dashboard.host,
        port=config.dashboard.port if port is None else port,
        preset=config.score.preset,
        ui_url=ui_url,
        allowed_hosts=tuple(config.dashboard.allowed_hosts),
    )
    if server.exposed:
        err_console.print(f"[yellow]warning:[/] {escape(server.exposed)}")
    err_console.print(f"Dashboard of {paths.root}: [bold]{server.url}[/] (Ctrl-C stops it)")
    server.run()
