"""Finding plugins: every entry point of the ``aios.*`` groups, each loaded and checked alone.

A plugin that fails to import, or is not what its group expects, becomes a ``failed`` record
with the reason; it is never raised into AIOS. Discovery runs once, at first use.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from typing import Any, Literal

from aios.errors import AIOSError

logger = logging.getLogger("aios.plugins")

Kind = Literal["action", "probe", "collector", "memory_backend", "agent"]

GROUPS: dict[Kind, str] = {
    "action": "aios.actions",
    "probe": "aios.probes",
    "collector": "aios.collectors",
    "memory_backend": "aios.memory_backends",
    "agent": "aios.agents",
}


class PluginError(AIOSError):
    """A plugin AIOS was told to use is not installed, did not load, or gave something
    unusable; the message names it and says why."""


class PluginRefusedError(Exception):
    """A plugin loaded but is not acceptable; the message says why (it becomes the record's
    reason)."""


@dataclass(frozen=True)
class PluginRecord:
    """One entry point and what became of it. ``obj`` is what AIOS uses (None when failed)."""

    kind: Kind
    name: str
    entry_point: str
    distribution: str | None
    version: str | None
    status: Literal["loaded", "failed"]
    error: str | None = None
    obj: Any = field(default=None, compare=False, repr=False)

    @property
    def group(self) -> str:
        return GROUPS[self.kind]

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "group": self.group,
            "entry_point": self.entry_point,
            "distribution": self.distribution,
            "version": self.version,
            "status": self.status,
            "error": self.error,
        }


# kind -> check(name, loaded object, records accepted so far) -> the object AIOS keeps.
Check = Callable[[str, Any, list[PluginRecord]], Any]

_lock = threading.RLock()
_found: list[PluginRecord] | None = None
_busy = False


def _checks() -> dict[Kind, Check]:
    from aios.plugins import checks

    return {
        "action": checks.check_action,
        "probe": checks.check_probe,
        "collector": checks.check_collector,
        "memory_backend": checks.check_memory_backend,
        "agent": checks.check_agent,
    }


def load_entry_point(kind: Kind, point: EntryPoint, accepted: list[PluginRecord]) -> PluginRecord:
    """Load and check one entry point; a failed record (never an exception) when it is bad."""
    dist = getattr(point, "dist", None)
    where: dict[str, Any] = {
        "kind": kind,
        "name": point.name,
        "entry_point": point.value,
        "distribution": dist.name if dist is not None else None,
        "version": dist.version if dist is not None else None,
    }
    try:
        loaded = point.load()
        kept = _checks()[kind](point.name, loaded, accepted)
    except PluginRefusedError as exc:
        reason = str(exc)
    # A plugin is someone else's code: whatever it raises (even SystemExit) stays here.
    except (Exception, SystemExit) as exc:
        reason = f"{type(exc).__name__}: {exc}"
    else:
        return PluginRecord(status="loaded", obj=kept, **where)
    logger.info("plugin %s (%s) not loaded: %s", point.name, GROUPS[kind], reason)
    return PluginRecord(status="failed", error=reason, **where)


def load_all(points: dict[Kind, list[EntryPoint]]) -> list[PluginRecord]:
    """Records for the given entry points, in group order then name order."""
    records: list[PluginRecord] = []
    for kind in GROUPS:
        accepted: list[PluginRecord] = []
        for point in sorted(points.get(kind, []), key=lambda p: (p.name, p.value)):
            record = load_entry_point(kind, point, accepted)
            if record.status == "loaded":
                accepted.append(record)
            records.append(record)
    return records


def discover() -> list[PluginRecord]:
    """Every installed plugin, loaded or failed (found once per process, then cached).

    A plugin that asks for plugins while it is being imported gets none (they are not ready).
    """
    global _found, _busy
    with _lock:
        if _found is None:
            if _busy:
                return []
            _busy = True
            try:
                installed = entry_points()
                _found = load_all(
                    {kind: list(installed.select(group=group)) for kind, group in GROUPS.items()}
                )
            finally:
                _busy = False
        return _found


def discovering() -> bool:
    """Whether plugins are being loaded right now (what is asked for then is not cached)."""
    return _busy


def loaded(kind: Kind) -> dict[str, Any]:
    """The plugins of ``kind`` that loaded: name -> the object AIOS uses."""
    return {r.name: r.obj for r in discover() if r.kind == kind and r.status == "loaded"}


def record(kind: Kind, name: str) -> PluginRecord | None:
    """The record of plugin ``name`` of ``kind`` (loaded or failed); None when not installed."""
    return next((r for r in discover() if r.kind == kind and r.name == name), None)


def describe(kind: Kind, name: str) -> str:
    """How to name plugin ``name`` of ``kind`` to a person: ``action plugin acme.x
    (acme_aios.actions:X, from acme-aios 1.0)``, with as much of that as is known."""
    what = f"{kind.replace('_', ' ')} plugin {name}"
    found = next((r for r in (_found or []) if r.kind == kind and r.name == name), None)
    if found is None:
        return what
    if found.distribution:
        origin = f", from {found.distribution} {found.version or ''}".rstrip()
        return f"{what} ({found.entry_point}{origin})"
    return f"{what} ({found.entry_point})"


def require(kind: Kind, name: str) -> Any:
    """The loaded plugin ``name`` of ``kind``; PluginError saying why when there is none."""
    found = record(kind, name)
    if found is None:
        known = ", ".join(loaded(kind)) or "none installed"
        raise PluginError(f"no {kind.replace('_', ' ')} plugin {name!r} (loaded: {known})")
    if found.status == "failed":
        raise PluginError(f"{kind.replace('_', ' ')} plugin {name!r} did not load: {found.error}")
    return found.obj


def forget() -> None:
    """Discover again at next use (for a process that installed or removed a plugin)."""
    global _found
    with _lock:
        _found = None
