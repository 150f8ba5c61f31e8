"""The embedded default for the demo: ``aios up`` as a child process on the demo's home, with a
local Prefect server on port 4200 (or a free port when 4200 is taken), the Chroma server, every
deployment served and the event watcher.

It counts as up once it recorded its addresses (``up.json``) and the deployments the demo
starts exist on its server; runs created from then on are picked up by its runner, and the
watcher is following the log before the runner serves anything.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aios.demo import lifeline
from aios.demo.child_processes import Child, Children, clean_environment
from aios.demo.demo_home import DemoSite
from aios.demo.deployment_runs import NEEDED, DeploymentRuns
from aios.errors import AIOSError
from aios.ports import free_port, port_free
from aios.prefect_api import PrefectAPIError, read_up

PREFERRED_PORT = 4200
HOST = "127.0.0.1"


class UpError(AIOSError):
    """``aios up`` did not come up for the demo; the message names its log."""


@dataclass(frozen=True)
class Endpoints:
    """What ``aios up`` recorded about itself."""

    pid: int
    api_url: str
    ui_url: str
    chroma_url: str | None
    dashboard_url: str | None

    @classmethod
    def from_record(cls, data: dict[str, Any]) -> Endpoints:
        dashboard = data.get("dashboard_url")
        chroma = data.get("chroma_url")
        return cls(
            pid=int(data["pid"]),
            api_url=str(data["api_url"]),
            ui_url=str(data["ui_url"]),
            chroma_url=str(chroma) if chroma else None,
            dashboard_url=str(dashboard) if dashboard else None,
        )


def choose_port(preferred: int = PREFERRED_PORT) -> int:
    """``preferred`` when it is free, else a free port."""
    return preferred if port_free(preferred) else free_port(HOST)


def start(site: DemoSite, children: Children, port: int) -> Child:
    """Start ``aios up`` on the demo's home; its output goes to ``demo-logs/aios-up.log``."""
    env = clean_environment(site.root)
    env["PREFECT_SERVER_API_PORT"] = str(port)
    argv = lifeline.wrap([sys.executable, "-m", "aios.cli.main", "up"])
    return children.start("aios up", argv, env, site.up_log)


def _tail(site: DemoSite, lines: int = 15) -> str:
    try:
        text = site.up_log.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def wait_until_up(
    site: DemoSite,
    child: Child,
    timeout_s: float,
    tick: Callable[[str], None] = lambda _: None,
) -> Endpoints:
    """Wait for ``aios up`` to record its addresses and serve the deployments the demo needs;
    raises UpError (with the end of its log) when it exits or takes longer than ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    endpoints: Endpoints | None = None
    missing: list[str] = list(NEEDED)
    while time.monotonic() < deadline:
        if not child.running():
            raise UpError(
                f"aios up exited with code {child.process.returncode}; the end of "
                f"{site.up_log}:\n{_tail(site)}"
            )
        if endpoints is None:
            record = read_up(site.paths)
            if record and record.get("pid") == child.pid and record.get("api_url"):
                endpoints = Endpoints.from_record(record)
            tick("starting the Prefect server and the Chroma server")
        else:
            tick("serving the deployments")
            with DeploymentRuns(endpoints.api_url) as api:
                for name in list(missing):
                    try:
                        api.read_deployment_by_name(name)
                        missing.remove(name)
                    except PrefectAPIError:
                        break
            if not missing:
                # up.json may have gained keys (the dashboard) since it was first read
                record = read_up(site.paths)
                return Endpoints.from_record(record) if record else endpoints
        time.sleep(0.5)
    raise UpError(
        f"aios up was not up within {timeout_s:.0f} s (still missing: "
        f"{', '.join(missing) if endpoints else 'its up.json'}); the end of {site.up_log}:\n"
        f"{_tail(site)}"
    )
