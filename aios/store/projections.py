"""The registry of projections: tables in DuckDB derived from the ``events`` table.

A projection says which tables it owns, how to create them, and how to apply the events with
sequence numbers in ``(after_seq, upto_seq]``. The sync calls ``apply`` in the same transaction
that records how far the projection has got, so a projection is never applied twice. Bumping
``version`` rebuilds it from the events. Later parts of AIOS register theirs here (actions,
approvals, scores, agent states, lessons) without touching the sync.
"""

from __future__ import annotations

import importlib
import threading
from typing import Protocol, runtime_checkable

import duckdb

# Modules that register built-in projections when imported.
BUILTIN_PROJECTION_MODULES: tuple[str, ...] = (
    "aios.score.projections",
    "aios.memory.links",
    "aios.lessons.projection",
)


@runtime_checkable
class Projection(Protocol):
    """A table (or tables) kept up to date from the events."""

    name: str
    version: int
    tables: tuple[str, ...]

    def create(self, con: duckdb.DuckDBPyConnection) -> None:
        """Create the tables (``IF NOT EXISTS``)."""

    def apply(self, con: duckdb.DuckDBPyConnection, after_seq: int, upto_seq: int) -> None:
        """Apply the events with ``after_seq < seq <= upto_seq`` (read them from ``events``)."""


_registry: dict[str, Projection] = {}
_guard = threading.Lock()
_builtins_loaded = False


def register_projection(projection: Projection) -> Projection:
    """Add (or replace, by name) a projection; returns it so it can be used as a decorator."""
    if not projection.name.isidentifier():
        raise ValueError(f"projection name {projection.name!r} must be an identifier")
    with _guard:
        _registry[projection.name] = projection
    return projection


def unregister_projection(name: str) -> None:
    with _guard:
        _registry.pop(name, None)


def registered_projections() -> list[Projection]:
    """Every registered projection, built-ins first, in registration order."""
    global _builtins_loaded
    if not _builtins_loaded:
        for module in BUILTIN_PROJECTION_MODULES:
            importlib.import_module(module)
        _builtins_loaded = True
    with _guard:
        return list(_registry.values())
