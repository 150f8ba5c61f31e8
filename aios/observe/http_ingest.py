"""``POST /events``: other programs send events over HTTP (FastAPI; 127.0.0.1 by default).

Every request needs ``Authorization: Bearer <token>`` (compared in constant time, never
logged). The body is one event object, a list of them, or ``{"events": [...]}``; every event
is validated before any is written, and a batch is appended as one group commit. ``201``
comes back only once the events are on disk (fsync'd), so nothing accepted is lost. Errors are
4xx with a reason: 400 not JSON, 401 no or wrong token, 413 too large, 422 invalid (naming the
item and field). The OpenAPI schema is at ``/openapi.json``.
"""

from __future__ import annotations

import hmac
import secrets
from pathlib import Path
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from aios import __version__
from aios.bus import EventBus, coerce_event
from aios.errors import EventValidationError
from aios.event import Event, check_outside_source
from aios.home import HomePaths


class Accepted(BaseModel):
    accepted: int = Field(description="How many events were appended.")
    ids: list[str] = Field(description="Their ids, in order.")


class Problem(BaseModel):
    detail: str = Field(description="What is wrong, naming the item and field.")


MIN_TOKEN_LENGTH = 16


def token_path(paths: HomePaths) -> Path:
    return paths.root / "ingest.token"


def ensure_token(paths: HomePaths) -> str:
    """The token in ``$AIOS_HOME/ingest.token``, created (owner-only) if missing."""
    path = token_path(paths)
    if path.exists():
        if path.stat().st_mode & 0o077:
            path.chmod(0o600)  # a token readable by others is tightened, not trusted as is
        token = path.read_text(encoding="utf-8").strip()
        if len(token) >= MIN_TOKEN_LENGTH:
            return token
    paths.root.mkdir(parents=True, exist_ok=True)  # missing, empty or too short: a new one
    token = secrets.token_urlsafe(32)
    from aios.atomic import write_atomic

    write_atomic(path, (token + "\n").encode(), mode=0o600)
    return token


_EVENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["type"],
    "properties": {
        "type": {"type": "string", "pattern": r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$"},
        "source": {"type": "string"},
        "severity": {"enum": ["info", "low", "medium", "high", "critical"]},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "payload": {"type": "object"},
        "time": {"type": "string", "format": "date-time"},
        "correlation_id": {"type": ["string", "null"]},
        "causation_id": {"type": ["string", "null"]},
    },
}


def _problem(status: int, detail: str) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status)


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

    @app.post(
        "/events",
        status_code=201,
        response_model=Accepted,
        responses={
            400: {"model": Problem},
            401: {"model": Problem},
            413: {"model": Problem},
            422: {"model": Problem},
        },
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "oneOf": [
                                _EVENT_SCHEMA,
                                {"type": "array", "items": _EVENT_SCHEMA},
                                {
                                    "type": "object",
                                    "required": ["events"],
                                    "properties": {
                                        "events": {"type": "array", "items": _EVENT_SCHEMA}
                                    },
                                },
                            ]
                        }
                    }
                },
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
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > max_body_bytes:
                return _problem(413, f"the body is larger than {max_body_bytes} bytes")
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            return _problem(400, f"the body is not JSON: {exc}")
        if isinstance(data, dict) and "events" in data and set(data) == {"events"}:
            data = data["events"]
        items = data if isinstance(data, list) else [data]
        if not items:
            return _problem(422, "no events in the body")
        events: list[Event] = []
        for index, item in enumerate(items):
            if not isinstance(item, dict):
                return _problem(422, f"[{index}]: an event must be a JSON object")
            if "id" in item:
                return _problem(422, f"[{index}].id: ids are assigned by AIOS")
            try:
                event = coerce_event(item)
                check_outside_source(event.source)
                events.append(event)
            except EventValidationError as exc:
                return _problem(422, str(exc.within(f"[{index}]")))
            except RecursionError:
                return _problem(422, f"[{index}]: nested too deeply")
        written = await run_in_threadpool(bus.publish, events)
        return JSONResponse(
            {"accepted": len(written), "ids": [e.id for e in written]}, status_code=201
        )

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"ok": True, "version": __version__}

    return app
