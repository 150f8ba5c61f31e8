"""The demo's home: a fresh ``AIOS_HOME`` each run, marked as the demo's own, and its layout.

A directory is only ever cleared when it carries the marker an earlier ``aios demo`` wrote; any
other non-empty directory is refused, so a person's real AIOS home is never touched.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import orjson

from aios import __version__
from aios.atomic import write_atomic
from aios.errors import InputError
from aios.home import HomePaths
from aios.prefect_api import read_up

MARKER = "aios-demo.json"


class DemoHomeError(InputError):
    """The demo's home cannot be used: not an earlier demo's, or a demo still runs there."""


@dataclass(frozen=True)
class DemoSite:
    """Where everything of one demo run lives."""

    paths: HomePaths

    @property
    def root(self) -> Path:
        return self.paths.root

    @property
    def marker(self) -> Path:
        return self.root / MARKER

    @property
    def workload(self) -> Path:
        """The only directory AIOS's file actions may touch (``[reactor] allowed_roots``)."""
        return self.root / "workload"

    @property
    def temp_dir(self) -> Path:
        """The temporary directory that fills up."""
        return self.workload / "scratch"

    @property
    def agent_config(self) -> Path:
        """The flaky agent's config file: ``tools.timeout_s`` is what AIOS tunes."""
        return self.workload / "researcher.json"

    @property
    def agent_prefect_home(self) -> Path:
        """``PREFECT_HOME`` of the flaky agent's flow runs (its client's own files)."""
        return self.workload / "prefect"

    @property
    def playbooks(self) -> Path:
        return self.root / "playbooks"

    @property
    def logs(self) -> Path:
        """Output of ``aios up`` and of the workload's programs."""
        return self.root / "demo-logs"

    @property
    def up_log(self) -> Path:
        return self.logs / "aios-up.log"


def is_demo_home(path: Path) -> bool:
    """Whether ``path`` is a directory an earlier ``aios demo`` made (it holds the marker)."""
    marker = path / MARKER
    if not path.is_dir() or path.is_symlink() or not marker.is_file():
        return False
    try:
        data = orjson.loads(marker.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return False
    return isinstance(data, dict) and data.get("made_by") == "aios demo"


def prepare(path: Path) -> DemoSite:
    """A fresh demo home at ``path``: created, or cleared when an earlier demo made it.

    Raises DemoHomeError (exit 2) when ``path`` is a file, a non-empty directory that is not
    an earlier demo's home, or a demo home whose ``aios up`` is still running.
    """
    root = path.expanduser().absolute()
    if root.is_symlink() or (root.exists() and not root.is_dir()):
        raise DemoHomeError(f"{root}: not a directory; give --home a directory for the demo")
    if root.is_dir() and any(root.iterdir()):
        if not is_demo_home(root):
            raise DemoHomeError(
                f"{root} exists and is not an aios demo home (it has no {MARKER}): the demo "
                "never clears a directory it did not make. Give --home a new or empty "
                "directory, or set AIOS_DEMO_HOME."
            )
        running = read_up(HomePaths(root))
        if running and _alive(running.get("pid")):
            raise DemoHomeError(
                f"an aios demo is still running in {root} (aios up pid {running['pid']}, "
                f"Prefect UI {running.get('ui_url', '?')}): stop it with Ctrl-C first"
            )
        for entry in root.iterdir():  # the earlier demo's home, emptied in place
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
    root.mkdir(parents=True, exist_ok=True)
    site = DemoSite(HomePaths(root))
    write_atomic(
        site.marker,
        orjson.dumps(
            {
                "made_by": "aios demo",
                "version": __version__,
                "started": datetime.now(UTC).isoformat(),
                "note": "aios demo clears this directory on its next run",
            },
            option=orjson.OPT_INDENT_2,
        ),
    )
    for directory in (site.paths.events, site.workload, site.temp_dir, site.playbooks, site.logs):
        directory.mkdir(parents=True, exist_ok=True)
    return site


def _alive(pid: object) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
