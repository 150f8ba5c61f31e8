"""Where AIOS keeps its state: ``$AIOS_HOME`` (default ``~/.aios``) and the paths inside it."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


def make_private_dir(path: Path) -> None:
    """Create ``path`` and its missing parents, each its owner's alone (0700): the event log,
    the store and the secrets under the home are not for other users. Directories that exist
    already are left as they are."""
    missing = []
    while not path.is_dir() and path != path.parent:
        missing.append(path)
        path = path.parent
    for directory in reversed(missing):
        directory.mkdir(mode=0o700, exist_ok=True)


def home_dir() -> Path:
    """The AIOS home directory from ``AIOS_HOME``, else ``~/.aios``; not created here."""
    value = os.environ.get("AIOS_HOME", "").strip()
    return Path(value).expanduser().resolve() if value else (Path.home() / ".aios").resolve()


def demo_home() -> Path:
    """Where ``aios demo`` keeps its site: ``AIOS_DEMO_HOME``, else ``~/.aios-demo``.

    The notebooks read it when ``AIOS_HOME`` is not set."""
    value = os.environ.get("AIOS_DEMO_HOME", "").strip()
    return Path(value).expanduser().resolve() if value else (Path.home() / ".aios-demo").resolve()


@dataclass(frozen=True)
class HomePaths:
    """The files and directories under one AIOS home."""

    root: Path

    @property
    def config(self) -> Path:
        return self.root / "config.toml"

    @property
    def events(self) -> Path:
        return self.root / "events"

    @property
    def duckdb(self) -> Path:
        return self.root / "aios.duckdb"

    @property
    def duckdb_lock(self) -> Path:
        return self.root / "aios.duckdb.lock"

    @property
    def backups(self) -> Path:
        return self.root / "backups"

    @classmethod
    def current(cls) -> HomePaths:
        return cls(home_dir())
