"""``POST /events``: other programs send events over HTTP (FastAPI; 127.0.0.1 by default).

Every request needs ``Authorization: Bearer <token>`` (compared in constant time, never
logged). The body is one event object, a list of them, or ``{"events": [...]}``; every event
is validated before any is written, and a batch is appended as one group commit. ``201``
comes back only once the events are on disk (fsync'd), so nothing accepted is lost. Errors are
4xx with a reason: 400 not JSON, 401 no or wrong token, 413 too large (the body, or more than
1000 events), 422 invalid (naming the item and field). The OpenAPI schema is at ``/openapi.json``.
"""

from __future__ import annotations

import asyncio
import hmac
import secrets
from pathlib import Path
from typing import Any

import orjson
from fastapi import FastAPI, Request, Security
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from fastapi.security import HTTPBearer
from pydantic import BaseModel, Field

from aios import __version__
from aios.bus import EventBus, coerce_event
from aios.errors import EventValidationError
from aios.event import (
    LABEL_KEY_PATTERN,
    MAX_PAYLOAD_DEPTH,
    MAX_SOURCE_LENGTH,
    MAX_TYPE_LENGTH,
    SOURCE_PATTERN,
    TYPE_PATTERN,
    Event,
    Severity,
    check_outside_source,
)
from aios.home import HomePaths
from aios.log.line_format import MAX_EVENT_BYTES, canonical_body


class Accepted(BaseModel):
    accepted: int = Field(description="How many events were appended.")
    ids: list[str] = Field(description="Their ids, in order.")


class Problem(BaseModel):
    detail: str = Field(description="What is wrong, naming the item and field.")


MIN_TOKEN_LENGTH = 16
# More events than this in one request: 413. A 5 MiB body of tiny events would otherwise be
# hundreds of thousands of objects held at once (about 250 times the body's size).
MAX_EVENTS_PER_REQUEST = 1000


def token_path(paths: HomePaths) -> Path:
    return paths.root / "ingest.token"


def resolve_token(paths: HomePaths, config: Any) -> tuple[str, str]:
    """(token, where it came from): ``[ingest] token_block`` (a Prefect Secret block), else
    ``[ingest] token`` (config.toml must then be its owner's alone), else
    ``$AIOS_HOME/ingest.token`` (created when missing). Raises InputError naming the problem."""
    from aios.errors import InputError

    settings = config.ingest
    if settings.token_block:
        from aios.prefect_api import HttpPrefectAPI, PrefectAPIError

        try:
            with HttpPrefectAPI() as api:
                token = api.read_secret(settings.token_block).strip()
        except PrefectAPIError as exc:
            raise InputError(
                f"[ingest] token_block {settings.token_block!r}: cannot read it ({exc})"
            ) from None
        source = f"the Prefect Secret block {settings.token_block}"
    elif settings.token is not None:
        from aios.config import require_private

        require_private(paths.config, "[ingest] token", "the endpoint does not start")
        token, source = settings.token.strip(), "[ingest] token"
    else:
        path = token_path(paths)
        replaced = path.exists() and exposed(path)
        where = str(path)
        if replaced:
            where += " (a new token: the old one could be read by others; give clients this one)"
        return ensure_token(paths), where
    if len(token) < MIN_TOKEN_LENGTH:
        raise InputError(f"{source}: the token must have at least {MIN_TOKEN_LENGTH} characters")
    return token, source


def exposed(path: Path) -> bool:
    """Whether a secret's file is readable or writable by group or others, or owned by
    another user."""
    from aios.config import private_problems

    return bool(private_problems(path))


def ensure_token(paths: HomePaths) -> str:
    """The token in ``$AIOS_HOME/ingest.token``, created (owner-only) if missing.

    A token file that others could read (or that another user owns) may be known to them
    already: it is replaced by a new one, and clients must be given the new token.
    """
    path = token_path(paths)
    if path.exists():
        token = path.read_text(encoding="utf-8").strip()
        if len(token) >= MIN_TOKEN_LENGTH and not exposed(path):
            return token
    token = secrets.token_urlsafe(32)
    from aios.atomic import write_atomic

    write_atomic(path, (token + "\n").encode(), mode=0o600)
    return token


# What the Event model accepts from outside, stated so a client (or schemathesis) can tell a
# good body from a bad one without sending it. What JSON Schema cannot say is in descriptions.
_EVENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "One event. Its id is assigned by AIOS; unknown fields are refused.",
    "required": ["type"],
    "additionalProperties": False,
    "properties": {
        "type": {
            "type": "string",
            "pattern": TYPE_PATTERN.pattern,
            "maxLength": MAX_TYPE_LENGTH,
            "description": "Dotted lowercase segments, e.g. agent.note.",
        },
        "source": {
            "type": "string",
            "pattern": SOURCE_PATTERN.pattern,
            "maxLength": MAX_SOURCE_LENGTH,
            # check_outside_source, for the ASCII spellings JSON Schema can match
            "not": {"pattern": r"^\s*[Aa][Ii][Oo][Ss]([^A-Za-z0-9]|$)"},
            "description": "Who sent it: one line; 'aios' and 'aios.*' belong to AIOS.",
        },
        "severity": {"enum": [severity.value for severity in Severity]},
        "priority": {"description": "Derived from severity: accepted and ignored."},
        "labels": {
            "type": "object",
            "propertyNames": {"pattern": LABEL_KEY_PATTERN.pattern, "maxLength": 100},
            "additionalProperties": {"type": "string"},
        },
        "payload": {
            "type": "object",
            "description": f"Any JSON object, nested at most {MAX_PAYLOAD_DEPTH} levels, "
            f"integers within signed 64 bits; an event is at most {MAX_EVENT_BYTES} bytes "
            "once stored.",
        },
        "time": {
            "type": "string",
            "format": "date-time",
            "description": "When it happened (RFC 3339), within years 1 to 9999 in UTC; "
            "default: when it arrives.",
        },
        "correlation_id": {"type": ["string", "null"]},
        "causation_id": {"type": ["string", "null"]},
    },
}
_EVENTS_SCHEMA: dict[str, Any] = {
    "type": "array",
    "minItems": 1,
    "maxItems": MAX_EVENTS_PER_REQUEST,
    "items": _EVENT_SCHEMA,
}
_BODY_SCHEMA: dict[str, Any] = {
    "oneOf": [
        _EVENT_SCHEMA,
        _EVENTS_SCHEMA,
        {
            "type": "object",
            "required": ["events"],
            "additionalProperties": False,
            "properties": {"events": _EVENTS_SCHEMA},
        },
    ]
}


def _problem(status: int, detail: str) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status)


def _unwritable(events: list[Event]) -> str:
    """Which event the log refused (too large once serialised), naming its index."""
    for index, event in enumerate(events):
        try:
            canonical_body(event)
        except EventValidationError as exc:
            return str(exc.within(f"[{index}]"))
    return "the events could not be written"


def _events_of(body: bytes) -> list[Event] | JSONResponse:
    """The events a request body holds, validated; or the 4xx that says what is wrong."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        return _problem(400, f"the body is not JSON: {exc}")
    if isinstance(data, dict) and "events" in data and set(data) == {"events"}:
        data = data["events"]
        if not isinstance(data, list):  # {"events": {...}} is not one event
            return _problem(422, "events: must be a list of events")
    items = data if isinstance(data, list) else [data]
    if not items:
        return _problem(422, "no events in the body")
    if len(items) > MAX_EVENTS_PER_REQUEST:
        return _problem(
            413, f"{len(items)} events in one request: at most {MAX_EVENTS_PER_REQUEST}"
        )
    events: list[Event] = []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            return _problem(422, f"[{index}]: an event must be a JSON object")
        if "id" in item:
            return _problem(422, f"[{index}].id: ids are assigned by AIOS")
        if "time" in item and not isinstance(item["time"], str):
            # The model would read a number as Unix seconds, or as milliseconds when it is
            # large: a guess the schema (RFC 3339) never offered.
            return _problem(422, f"[{index}].time: must be an RFC 3339 string")
        try:
            event = coerce_event(item)
            check_outside_source(event.source)
            events.append(event)
        except EventValidationError as exc:
            return _problem(422, str(exc.within(f"[{index}]")))
        except RecursionError:
            return _problem(422, f"[{index}]: nested too deeply")
    return events


def create_app(bus: EventBus, token: str, *, max_body_bytes: int = 5 * 2**20) -> FastAPI:
    """The ingest API writing through ``bus`` and accepting ``token`` only.

    Raises ValueError for a token shorter than 16 characters (an empty one would let anyone in).
    """
    if len(token.strip()) < MIN_TOKEN_LENGTH:
        raise ValueError(f"the ingest token must have at least {MIN_TOKEN_LENGTH} characters")
    app = FastAPI(
        title="AIOS event ingest",
        version=__version__,
        description="Append events to the AIOS log. Authorization: Bearer <token>.",
    )
    expected = token.strip().encode()
    validating = asyncio.Semaphore(1)
    # Declares the scheme in the OpenAPI schema only: it never refuses (auto_error off), and
    # the handler checks the token itself, in constant time.
    bearer = HTTPBearer(auto_error=False, description="The token in $AIOS_HOME/ingest.token.")

    @app.post(
        "/events",
        status_code=201,
        response_model=Accepted,
        dependencies=[Security(bearer)],
        responses={
            400: {"model": Problem},
            401: {"model": Problem},
            413: {"model": Problem},
            422: {"model": Problem},
        },
        openapi_extra={
            "requestBody": {
                "required": True,
                "description": 'An event, a list of them, or {"events": [...]}; all or none '
                "are written.",
                "content": {"application/json": {"schema": _BODY_SCHEMA}},
            }
        },
    )
    async def post_events(request: Request) -> Any:
        given = request.headers.get("authorization", "")
        scheme, _, credential = given.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            credential.strip().encode(), expected
        ):
            return _problem(401, "a valid 'Authorization: Bearer <token>' header is required")
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > max_body_bytes:
            return _problem(413, f"the body is larger than {max_body_bytes} bytes")
        received = bytearray()
        async for chunk in request.stream():
            received += chunk
            if len(received) > max_body_bytes:
                return _problem(413, f"the body is larger than {max_body_bytes} bytes")
        # Parsing and validating thousands of events takes a while: not on the event loop,
        # and one request at a time, so a few large bodies cannot hold many batches in memory.
        async with validating:
            checked = await run_in_threadpool(_events_of, bytes(received))
        if isinstance(checked, JSONResponse):
            return checked
        events = checked
        try:
            written = await run_in_threadpool(bus.publish, events)
        except EventValidationError:  # over the log's size per event: nothing was written
            return _problem(422, _unwritable(events))
        return JSONResponse(
            {"accepted": len(written), "ids": [e.id for e in written]}, status_code=201
        )

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"ok": True, "version": __version__}

    return app
