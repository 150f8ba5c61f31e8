"""Which AIOS home the insights read: ``AIOS_HOME`` when set, else the demo's site.

``open_home`` opens it through ``open_store`` (lock, sync, work, close), the same way the CLI
does; a home that does not exist is an error, never silently created empty.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from aios.errors import InputError
from aios.home import HomePaths, demo_home, home_dir
from aios.store import open_store


def chosen_home(home: str | Path | None = None) -> HomePaths:
    """``home`` if given, else ``AIOS_HOME`` if set, else ``aios demo``'s home."""
    if home is not None:
        return HomePaths(Path(home).expanduser().resolve())
    if os.environ.get("AIOS_HOME", "").strip():
        return HomePaths(home_dir())
    return HomePaths(demo_home())


@contextmanager
def open_home(home: str | Path | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
    """A synced store connection for the chosen home; InputError when it has no event log."""
    paths = chosen_home(home)
    if not paths.events.is_dir():
        raise InputError(
            f"{paths.root} has no event log (events/): set AIOS_HOME to an AIOS home, "
            "or run `aios demo` first"
        )
    with open_store(paths) as con:
        yield con
