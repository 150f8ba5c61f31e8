"""Read-only SQL over the projections, for people and notebooks.

One statement, of a reading kind (SELECT, DESCRIBE, SHOW, EXPLAIN), on a read-only connection
with file access disabled, so nothing is written: not the database, not a file via COPY, not an
attached database.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from typing import Any

import duckdb

from aios.errors import SQLRefusedError
from aios.home import HomePaths
from aios.locking import file_lock
from aios.store.session import open_store, store_is_open

_READING = {duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN}
_ANALYZE = re.compile(r"\s*EXPLAIN\s+ANALY[SZ]E\b", re.IGNORECASE)


@dataclass
class QueryResult:
    columns: list[str]
    types: list[str]
    rows: list[tuple[Any, ...]]


def run_readonly(sql: str, paths: HomePaths | None = None, *, timeout: float = 60.0) -> QueryResult:
    """Sync the store, then run one reading statement; raises SQLRefusedError otherwise.

    A query running longer than ``timeout`` seconds is stopped (SQLRefusedError).
    """
    paths = paths or HomePaths.current()
    if store_is_open(paths):
        raise RuntimeError("run_readonly cannot be called inside open_store")
    with file_lock(paths.duckdb_lock):
        with open_store(paths):
            pass  # brings the projections up to date, then closes the writing connection
        con = duckdb.connect(
            str(paths.duckdb),
            read_only=True,
            config={"enable_external_access": False, "lock_configuration": True},
        )
        try:
            try:
                statements = con.extract_statements(sql)
            except duckdb.Error as exc:
                raise SQLRefusedError(f"SQL does not parse: {_first_line(exc)}") from None
            if len(statements) != 1:
                raise SQLRefusedError(f"give exactly one statement (got {len(statements)})")
            kind = statements[0].type
            if kind is duckdb.StatementType.EXPLAIN and _ANALYZE.match(statements[0].query):
                raise SQLRefusedError("EXPLAIN ANALYZE runs its statement; use plain EXPLAIN")
            if kind not in _READING:
                raise SQLRefusedError(
                    f"only reading statements (SELECT, DESCRIBE, SHOW, EXPLAIN) are allowed; "
                    f"this is {kind.name}"
                )
            # The store stays locked while the query runs: stop it if it runs too long.
            timer = threading.Timer(timeout, con.interrupt)
            timer.start()
            try:
                cursor = con.execute(sql)
                rows = cursor.fetchall()
            except duckdb.InterruptException:
                raise SQLRefusedError(
                    f"query stopped after {timeout:g}s (it holds the store's lock; use LIMIT)"
                ) from None
            except duckdb.Error as exc:
                raise SQLRefusedError(f"query failed: {_first_line(exc)}") from None
            finally:
                timer.cancel()
            description = cursor.description or []
            return QueryResult([d[0] for d in description], [str(d[1]) for d in description], rows)
        finally:
            con.close()


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
