"""AIOS: self-healing operations for AI-agent workloads.

The core (this package) is plain Python with no Prefect import::

    from aios import emit, track
    emit("resource.high", {"resource": "cpu", "value": 93.5}, severity="high",
         labels={"host": "web1"})
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, overload

from aios.bus import EventBus, H, Subscription, is_replay
from aios.event import Event, Priority, Severity
from aios.track import track

__version__ = "0.1.0"
__all__ = [
    "Event",
    "EventBus",
    "Priority",
    "Severity",
    "Subscription",
    "__version__",
    "bus",
    "emit",
    "emit_many",
    "is_replay",
    "subscribe",
    "track",
]


def bus() -> EventBus:
    """The bus of the current ``AIOS_HOME``."""
    from aios.runtime import default_bus

    return default_bus()


def emit(
    type: str,
    payload: Mapping[str, Any] | None = None,
    *,
    source: str = "app",
    severity: Severity | str = Severity.INFO,
    labels: Mapping[str, str] | None = None,
    correlation_id: str | None = None,
    causation_id: str | None = None,
) -> Event:
    """Append an event to ``$AIOS_HOME/events`` durably, then dispatch it; returns the event.

    Raises EventValidationError naming the bad field (nothing is written then); sources
    starting with ``aios.`` belong to AIOS's own components and are refused here.
    """
    from aios.event import check_outside_source

    check_outside_source(source)
    return bus().emit(
        type,
        payload,
        source=source,
        severity=severity,
        labels=labels,
        correlation_id=correlation_id,
        causation_id=causation_id,
    )


def emit_many(items: Iterable[Event | Mapping[str, Any]]) -> list[Event]:
    """Append many events as one group commit (all or none), then dispatch them.

    Like ``emit``, refuses (writing none of them) events whose source starts with ``aios.``.
    """
    from aios.bus import coerce_event
    from aios.errors import EventValidationError
    from aios.event import check_outside_source

    batch: list[Event] = []
    for index, item in enumerate(items):
        try:  # the source checked is the one the event will carry
            event = coerce_event(item if isinstance(item, Event) else {"source": "app", **item})
            check_outside_source(event.source)
        except EventValidationError as exc:
            raise exc.within(f"[{index}]") from None
        batch.append(event)
    return bus().emit_many(batch)


@overload
def subscribe(
    pattern: str, handler: None = None, *, name: str | None = None
) -> Callable[[H], H]: ...


@overload
def subscribe(
    pattern: str, handler: Callable[[Event], Any], *, name: str | None = None
) -> Subscription: ...


def subscribe(
    pattern: str, handler: Callable[[Event], Any] | None = None, *, name: str | None = None
) -> Subscription | Callable[[H], H]:
    """Subscribe ``handler`` to event types matching ``pattern`` (or use as a decorator)."""
    if handler is None:
        return bus().subscribe(pattern, name=name)
    return bus().subscribe(pattern, handler, name=name)
