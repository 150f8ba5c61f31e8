"""Selecting events: type globs, a time range, source and labels.

Globs follow shell rules over the whole type, so ``resource.*`` matches ``resource.high`` and
``resource.disk.full``; ``*`` matches everything.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache

from aios.errors import InputError
from aios.event import Event


@lru_cache(maxsize=4096)
def compile_glob(pattern: str) -> re.Pattern[str]:
    """A compiled matcher for an event-type glob."""
    if not pattern or any(ch.isspace() for ch in pattern):
        raise InputError(f"not an event type pattern: {pattern!r}")
    return re.compile(fnmatch.translate(pattern))


def glob_matches(pattern: str, value: str) -> bool:
    return compile_glob(pattern).match(value) is not None


def parse_labels(items: Iterable[str]) -> dict[str, str]:
    """``["host=web1", "agent=writer"]`` -> a dict; raises InputError naming a bad item."""
    labels: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InputError(f"label {item!r} is not KEY=VALUE")
        labels[key.strip()] = value
    return labels


@dataclass(frozen=True)
class EventFilter:
    """Which events to keep. Empty fields keep everything."""

    types: tuple[str, ...] = ()
    since: datetime | None = None
    until: datetime | None = None
    sources: tuple[str, ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for pattern in (*self.types, *self.sources):
            compile_glob(pattern)
        plain = [t for t in self.types if not any(ch in t for ch in "*?[")]
        needles = tuple(f'"type":"{t}"'.encode() for t in plain)
        object.__setattr__(self, "_needles", needles if len(plain) == len(self.types) else ())

    def might_match(self, raw_line: bytes) -> bool:
        """Cheap pre-check on a stored line: False only when the event cannot match."""
        needles: tuple[bytes, ...] = getattr(self, "_needles", ())
        return not needles or any(needle in raw_line for needle in needles)

    def matches(self, event: Event) -> bool:
        if self.types and not any(glob_matches(p, event.type) for p in self.types):
            return False
        if self.since is not None and event.time < self.since:
            return False
        if self.until is not None and event.time > self.until:
            return False
        if self.sources and not any(glob_matches(p, event.source) for p in self.sources):
            return False
        return all(event.labels.get(key) == value for key, value in self.labels.items())
