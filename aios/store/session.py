"""The one way to open the DuckDB store: lock, connect, sync, work, close.

DuckDB admits one writing process at a time, and a read-only connection fails while another
process writes, so every process takes an inter-process lock first and never keeps the
connection open beyond the ``with`` block. Nested use in one thread or asyncio task shares the
connection.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import duckdb

from aios.errors import StoreError
from aios.home import HomePaths, make_private_dir
from aios.locking import file_lock
from aios.store.sync import SyncReport, sync

# Connections open in this context (thread or asyncio task): nested use shares one, while
# another task gets its own connection.
_open: contextvars.ContextVar[dict[str, duckdb.DuckDBPyConnection]] = contextvars.ContextVar(
    "aios_open_stores"
)


@contextmanager
def open_store(
    paths: HomePaths | None = None,
    *,
    sync_first: bool = True,
    progress: Callable[[int], None] | None = None,
    report: SyncReport | None = None,
) -> Iterator[duckdb.DuckDBPyConnection]:
    """A connection to ``$AIOS_HOME/aios.duckdb``, brought up to date with the log first.

    Holds the store's inter-process lock for the whole block. ``report`` (if given) is filled
    with what the sync did. Raises StoreError when the database cannot be opened.
    """
    paths = paths or HomePaths.current()
    key = str(paths.duckdb)
    held = _open.get({})
    if key in held:
        yield held[key]
        return
    with file_lock(paths.duckdb_lock):
        make_private_dir(paths.root)
        try:
            con = duckdb.connect(key)
        except duckdb.Error as exc:
            raise StoreError(f"cannot open {paths.duckdb}: {exc}") from exc
        token = _open.set({**held, key: con})
        try:
            if sync_first:
                result = sync(con, paths.events, progress=progress)
                if report is not None:
                    report.__dict__.update(result.__dict__)
            yield con
        finally:
            _open.reset(token)
            con.close()


def store_is_open(paths: HomePaths | None = None) -> bool:
    """Whether this thread or task is inside ``open_store`` for that home."""
    paths = paths or HomePaths.current()
    return str(paths.duckdb) in _open.get({})
