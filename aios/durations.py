"""Durations (``90s``, ``5m``, ``1h30m``, ``7d``) and points in time (ago, or ISO 8601)."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta
from typing import Annotated

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

from aios.errors import DurationError

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_MAX_SECONDS = 100 * 365.25 * 86400
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")


def parse_duration(text: str | float | int) -> timedelta:
    """``"1h30m"`` -> ``timedelta(minutes=90)``; plain numbers are seconds.

    Raises DurationError naming the text when it is empty, negative or has an unknown unit.
    """
    if isinstance(text, bool):
        raise DurationError(f"not a duration: {text!r}")
    if isinstance(text, int | float):
        try:
            return _checked(float(text), text)
        except OverflowError:  # an int beyond any float, e.g. 10**400 from YAML or TOML
            raise DurationError(
                f"duration out of range: {_shown(text)} (at most 100 years)"
            ) from None
    value = text.strip().lower().replace(" ", "")
    if not value:
        raise DurationError("empty duration (expected e.g. 90s, 5m, 24h, 7d)")
    try:
        seconds = float(value)
    except ValueError:
        pos, seconds = 0, 0.0
        # Each part is matched where the last ended: searching ahead instead (finditer)
        # rescans a long run of digits from every position, quadratic in the text.
        while match := _PART.match(value, pos):
            seconds += float(match.group(1)) * _UNITS[match.group(2)]
            pos = match.end()
        if pos != len(value):
            raise DurationError(
                f"not a duration: {_shown(text)} (expected e.g. 90s, 5m, 1h30m, 24h, 7d)"
            ) from None
    return _checked(seconds, text)


def _shown(text: object, limit: int = 60) -> str:
    """``repr(text)``, cut short: an error message should not repeat a megabyte of input."""
    try:
        shown = repr(text)
    except ValueError:  # an int over Python's 4300-digit limit for str()
        return "a number with thousands of digits"
    return shown if len(shown) <= limit else shown[: limit - 3] + "..."


def _checked(seconds: float, text: object) -> timedelta:
    if not math.isfinite(seconds) or seconds > _MAX_SECONDS:
        raise DurationError(f"duration out of range: {_shown(text)} (at most 100 years)")
    if seconds < 0:
        raise DurationError(f"duration must not be negative: {_shown(text)}")
    return timedelta(seconds=seconds)


def parse_time(text: str, *, now: datetime | None = None) -> datetime:
    """A point in time: a duration ago (``24h``) or an ISO 8601 timestamp; always UTC-aware.

    Naive timestamps are taken as UTC. Raises DurationError naming the text.
    """
    value = text.strip()
    if not value:
        raise DurationError("empty time (expected a duration such as 24h, or ISO 8601)")
    try:
        return (now or datetime.now(UTC)) - parse_duration(value)
    except DurationError:
        pass
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise DurationError(
            f"not a duration or ISO 8601 time: {_shown(text)} "
            "(expected e.g. 24h, 7d, 2026-11-21T08:00Z)"
        ) from None
    try:
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00+01:00 is before year 1 in UTC
        raise DurationError(f"time out of range once converted to UTC: {_shown(text)}") from None


def format_duration(delta: timedelta | float) -> str:
    """Shortest readable form: ``timedelta(seconds=5400)`` -> ``"1h30m"``."""
    seconds = delta.total_seconds() if isinstance(delta, timedelta) else float(delta)
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    out, rest = "", round(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if rest >= size:
            out += f"{rest // size}{unit}"
            rest %= size
    return out


def _duration_input(value: object) -> timedelta:
    if isinstance(value, timedelta):
        return value
    if isinstance(value, str | int | float):
        try:
            return parse_duration(value)
        except DurationError as exc:
            raise ValueError(str(exc)) from None
    raise ValueError(f"not a duration: {_shown(value)} (expected e.g. 90s, 5m, 24h)")


Duration = Annotated[
    timedelta,
    BeforeValidator(_duration_input),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema({"type": "string", "description": "A duration: 90s, 5m, 1h30m, 24h, 7d."}),
]
"""A pydantic field type: ``"5m"``, ``90`` (seconds) or a timedelta; serialised as ``"5m"``."""
