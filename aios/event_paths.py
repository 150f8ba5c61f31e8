"""Dotted paths into an event: ``payload.value``, ``labels.host``, ``payload.items.0.name``.

Paths start at an event field and go down through objects and list indexes. A path that leads
nowhere resolves to ``MISSING``.
"""

from __future__ import annotations

from typing import Any

from aios.event import Event

EVENT_ROOTS = (
    "payload",
    "labels",
    "source",
    "type",
    "severity",
    "priority",
    "id",
    "correlation_id",
    "causation_id",
)


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


MISSING: Any = _Missing()


def split_path(path: str) -> tuple[str, ...]:
    """``payload.items.0`` -> ``("payload", "items", "0")``; raises ValueError when invalid."""
    parts = tuple(path.split("."))
    if not path or any(not part for part in parts):
        raise ValueError(f"path {path!r} has an empty segment")
    if parts[0] not in EVENT_ROOTS:
        raise ValueError(f"path {path!r} must start with one of: {', '.join(EVENT_ROOTS)}")
    if parts[0] not in ("payload", "labels") and len(parts) > 1:
        raise ValueError(f"path {path!r}: {parts[0]} has no fields below it")
    return parts


def resolve(event: Event, parts: tuple[str, ...]) -> Any:
    """The value at ``parts`` in ``event``, or MISSING."""
    root = parts[0]
    if root == "priority":
        value: Any = event.priority.value
    elif root == "severity":
        value = event.severity.value
    else:
        value = getattr(event, root)
    for part in parts[1:]:
        if isinstance(value, dict):
            if part not in value:
                return MISSING
            value = value[part]
        elif isinstance(value, list) and part.isdecimal() and part.isascii() and len(part) < 10:
            index = int(part)
            if index >= len(value):
                return MISSING
            value = value[index]
        else:
            return MISSING
    return value
