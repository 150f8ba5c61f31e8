"""The ``Event`` model: everything that happens in AIOS is one of these.

An event has a time-ordered uuid7 id, a UTC time, a dotted lowercase ``type``, a ``source``, a
``severity`` (from which ``priority`` is derived), string ``labels`` naming the resource, a JSON
``payload`` and ``correlation_id``/``causation_id`` for tracing a remediation back to its cause.
"""

from __future__ import annotations

import math
import re
import unicodedata
import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any

import uuid_utils
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    computed_field,
    field_validator,
)

from aios.errors import EventValidationError

TYPE_PATTERN = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")
LABEL_KEY_PATTERN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-/]*$")
SOURCE_PATTERN = re.compile(r"^[^\n\r]*\S[^\n\r]*$")
TYPE_HELP = (
    "use dotted lowercase segments such as 'resource.high' "
    "(letters, digits and _; at least two segments)"
)
LABEL_KEY_HELP = "label keys start with a letter, digit or _ and hold only letters, digits, _ . - /"
MAX_TYPE_LENGTH = 200
MAX_SOURCE_LENGTH = 200
MAX_PAYLOAD_DEPTH = 32
INT_MIN, INT_MAX = -(2**63), 2**63 - 1


class Severity(StrEnum):
    """How bad an event is; the priority follows from it."""

    INFO = "info"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


class Priority(StrEnum):
    """Scheduling priority: P0 (act now) to P3 (whenever)."""

    P0 = "P0"
    P1 = "P1"
    P2 = "P2"
    P3 = "P3"


PRIORITY_OF: dict[Severity, Priority] = {
    Severity.CRITICAL: Priority.P0,
    Severity.HIGH: Priority.P1,
    Severity.MEDIUM: Priority.P2,
    Severity.LOW: Priority.P3,
    Severity.INFO: Priority.P3,
}


def _plain(text: str) -> str:
    """``text`` as it reads: compatibility forms folded (fullwidth letters), invisible format
    characters and whitespace removed, case folded."""
    folded = unicodedata.normalize("NFKC", text)
    return "".join(
        c for c in folded if not c.isspace() and unicodedata.category(c) != "Cf"
    ).casefold()


def check_outside_source(source: str) -> None:
    """Raise EventValidationError if an event from outside claims an AIOS component's source:
    ``aios`` alone or followed by anything but a letter or digit (``aios.reactor``, and its
    look-alikes ``aios-reactor``, ``ａｉｏｓ.reactor``, ``aios\u200b.reactor``)."""
    normal = _plain(source)
    if normal == "aios" or (normal.startswith("aios") and not normal[4].isalnum()):
        raise EventValidationError(
            f"{source!r}: 'aios', 'aios.*' and sources made to look like them belong to AIOS",
            field="source",
        )


def new_event_id() -> str:
    """A new uuid7: time-ordered and monotonic within this process."""
    return str(uuid_utils.uuid7())


def utc_now() -> datetime:
    return datetime.now(UTC)


def check_json_value(value: Any, path: str, depth: int = 0) -> None:
    """Raise EventValidationError (naming ``path``) unless ``value`` is plain, finite JSON."""
    kind = type(value)
    if value is None or kind is str or kind is bool:
        return
    if kind is int:
        if not INT_MIN <= value <= INT_MAX:
            raise EventValidationError("integer outside the signed 64-bit range", field=path)
        return
    if kind is float:
        if not math.isfinite(value):
            raise EventValidationError("NaN and infinity are not JSON", field=path)
        return
    if depth >= MAX_PAYLOAD_DEPTH:
        raise EventValidationError(f"nested deeper than {MAX_PAYLOAD_DEPTH} levels", field=path)
    if kind is dict:
        for key, item in value.items():
            if type(key) is not str:
                raise EventValidationError(f"object key {key!r} is not a string", field=path)
            check_json_value(item, f"{path}.{key}", depth + 1)
        return
    if kind is list:
        for index, item in enumerate(value):
            check_json_value(item, f"{path}[{index}]", depth + 1)
        return
    raise EventValidationError(f"{kind.__name__} is not a JSON value", field=path)


LabelKey = Annotated[str, StringConstraints(pattern=LABEL_KEY_PATTERN.pattern, max_length=100)]


class Event(BaseModel):
    """One thing that happened. Immutable; build new ones with ``Event(...)`` or ``emit``."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_enum_values=False)

    id: str = Field(default_factory=new_event_id, description="Time-ordered uuid7.")
    time: datetime = Field(default_factory=utc_now, description="When it happened (UTC).")
    type: str = Field(
        pattern=TYPE_PATTERN.pattern,
        max_length=MAX_TYPE_LENGTH,
        description="Dotted lowercase segments, e.g. 'resource.high'.",
    )
    source: str = Field(
        default="app",
        pattern=SOURCE_PATTERN.pattern,
        max_length=MAX_SOURCE_LENGTH,
        description="Who emitted it, e.g. 'aios.monitor'.",
    )
    severity: Severity = Field(
        default=Severity.INFO, description="info, low, medium, high, critical."
    )
    labels: dict[LabelKey, str] = Field(
        default_factory=dict, description="Resource identity: host, agent, deployment, ..."
    )
    payload: dict[str, Any] = Field(default_factory=dict, description="A JSON object.")
    correlation_id: str | None = Field(
        default=None, description="Shared by every event of one incident or remediation."
    )
    causation_id: str | None = Field(
        default=None, description="The id of the event that caused this."
    )

    @computed_field  # type: ignore[prop-decorator]
    @property
    def priority(self) -> Priority:
        """P0 for critical, P1 high, P2 medium, P3 low and info."""
        return PRIORITY_OF[self.severity]

    @field_validator("id")
    @classmethod
    def _check_id(cls, value: str) -> str:
        try:
            return str(uuid.UUID(value))
        except (ValueError, AttributeError, TypeError):
            raise ValueError("must be a uuid, e.g. 01a1fe04-27e7-7559-bd22-d79fe572102a") from None

    @field_validator("time")
    @classmethod
    def _check_time(cls, value: datetime) -> datetime:
        try:
            return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        except OverflowError:
            raise ValueError("out of range once converted to UTC") from None

    @field_validator("payload")
    @classmethod
    def _check_payload(cls, value: dict[str, Any]) -> dict[str, Any]:
        for key, item in value.items():
            kind = type(item)
            if kind is str or kind is bool or item is None:
                continue
            if kind is float and math.isfinite(item):
                continue
            if kind is int and INT_MIN <= item <= INT_MAX:
                continue
            check_json_value(item, f"payload.{key}", 1)
        return value

    @classmethod
    def create(cls, **fields: Any) -> Event:
        """Validate ``fields`` into an Event; raises EventValidationError naming the field."""
        try:
            return cls(**fields)
        except ValidationError as exc:
            raise event_error(exc) from None


def event_error(exc: ValidationError) -> EventValidationError:
    """The first problem in a pydantic error as an EventValidationError naming its field."""
    first = exc.errors()[0]
    loc = [str(part) for part in first.get("loc", ())]
    field = ".".join(loc)
    message = str(first.get("msg", "invalid")).removeprefix("Value error, ")
    ctx_error = (first.get("ctx") or {}).get("error")
    if isinstance(ctx_error, EventValidationError):
        return ctx_error
    value = first.get("input")
    if first.get("type") == "string_pattern_mismatch":
        if loc == ["type"]:
            message = f"{value!r} is not an event type: {TYPE_HELP}"
        elif loc[:1] == ["labels"]:
            message = f"label key {value!r} is invalid: {LABEL_KEY_HELP}"
            field = "labels"
        elif loc == ["source"]:
            message = "must be a non-blank single line"
    elif first.get("type") == "enum" and loc == ["severity"]:
        message = f"{value!r} is not a severity (use info, low, medium, high or critical)"
    return EventValidationError(message, field=field or None)
