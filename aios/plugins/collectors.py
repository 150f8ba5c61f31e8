"""Plugin collectors in the monitor cycle: each called on its own, its events validated.

A collector that raises (SystemExit included) or returns something that is not a list of valid
events is reported as one ``plugin.failed`` event (with the reason) and emits nothing; the others
still run. An event's source defaults to ``plugin.<name>``; a source of AIOS's own (``aios.*``)
is refused, as it is from any sender outside AIOS.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from aios.bus import EventBus
from aios.config import AIOSConfig
from aios.errors import EventValidationError
from aios.event import Event, check_outside_source
from aios.home import HomePaths
from aios.plugins.discovery import GROUPS, Kind, loaded
from aios.plugins.interfaces import CollectorContext

logger = logging.getLogger("aios.plugins")
FAILED = "plugin.failed"


def failure_event(kind: Kind, name: str, reason: str, source: str) -> dict[str, Any]:
    """The ``plugin.failed`` event for plugin ``name`` of ``kind``."""
    return {
        "type": FAILED,
        "source": source,
        "severity": "medium",
        "labels": {"plugin": name, "group": GROUPS[kind]},
        "payload": {"plugin": name, "kind": kind, "error": reason[:2000]},
    }


def _events(name: str, returned: Any) -> list[dict[str, Any]]:
    if isinstance(returned, Mapping | str | bytes) or not hasattr(returned, "__iter__"):
        raise TypeError(f"returned {type(returned).__name__}, not a list of event dicts")
    events = []
    for index, item in enumerate(returned):
        if not isinstance(item, Mapping):
            raise TypeError(f"item {index} is {type(item).__name__}, not an event dict")
        event = {"source": f"plugin.{name}", **item}
        if isinstance(event["source"], str):  # another type is refused with the event
            try:
                check_outside_source(event["source"])
            except EventValidationError as exc:
                raise exc.within(f"[{index}]") from None
        events.append(event)
    return events


def run_collectors(
    bus: EventBus, paths: HomePaths, config: AIOSConfig, now: datetime, host: str, source: str
) -> list[Event]:
    """Call every plugin collector once; the events they gave, and ``plugin.failed`` ones."""
    emitted: list[Event] = []
    context = CollectorContext(paths, config, now, host)
    for name, collect in loaded("collector").items():
        try:
            emitted += bus.emit_many(_events(name, collect(context)))
        except EventValidationError as exc:
            emitted += bus.emit_many(
                [failure_event("collector", name, f"invalid event {exc}", source)]
            )
        # Someone else's code (a sys.exit() too): reported, and the cycle goes on.
        except (Exception, SystemExit) as exc:
            logger.warning("collector %s failed: %s", name, exc)
            reason = f"{type(exc).__name__}: {exc}"
            emitted += bus.emit_many([failure_event("collector", name, reason, source)])
    return emitted
