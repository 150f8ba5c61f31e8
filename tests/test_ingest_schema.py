"""schemathesis against the ingest API's own OpenAPI schema, in process, with and without a token.

Requests are generated from ``/openapi.json`` (bodies that follow it, and bodies that break it)
and sent to the ASGI app. Every answer must be documented there and match it: no 5xx, a 201
for what the schema accepts, a 4xx with a ``detail`` for the rest, and 401 for every request
without the real token. The runs are derandomized and bounded, so CI sends the same requests
every time. The positive run skips the few bodies that break a limit the schema can only state
in words (``said_only_in_words``); the fuzz tests cover those.

The cases come from ``as_strategy`` under plain hypothesis rather than ``@schema.parametrize``:
the latter's lazy loader (``from_fixture``, needed because the app is built in a fixture) sets
a pytest node attribute that pytest 9 no longer has.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st
from schemathesis import Case, GenerationMode
from schemathesis.config import SchemathesisConfig
from schemathesis.core.transport import Response
from schemathesis.specs.openapi.schemas import OpenApiSchema

from aios.bus import EventBus
from aios.log import EventLog
from aios.observe.http_ingest import create_app

TOKEN = "schema-token-" + "z" * 24
REAL = f"Bearer {TOKEN}"
# No header, a wrong token of the same length, the right one without "Bearer" or as Basic.
NOT_THE_TOKEN = [None, "Bearer " + "w" * len(TOKEN), TOKEN, f"Basic {TOKEN}", "Bearer "]
# Per run: about ten seconds for the file on two cores.
EXAMPLES = 100


@pytest.fixture(scope="module")
def ingest_schema(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpenApiSchema]:
    log = EventLog(Path(tmp_path_factory.mktemp("ingest")) / "events")
    app: FastAPI = create_app(EventBus(log), TOKEN)
    # The token is set by each test; generated Authorization headers would only make
    # schemathesis count a request as invalid that the real token makes valid.
    config = SchemathesisConfig.from_dict(
        {"generation": {"database": "none", "with-security-parameters": False}}
    )
    yield schemathesis.openapi.from_asgi("/openapi.json", app, config=config)
    log.close()


def reason_given(ctx: Any, response: Response, case: Case[Any]) -> bool | None:
    """Every refusal says why: a 4xx body is ``{"detail": "<non-empty text>"}``."""
    if 400 <= response.status_code < 500:
        detail = response.json().get("detail")
        assert isinstance(detail, str) and detail, f"{response.status_code} without a reason"
    return None


def events_in(body: Any) -> list[Any]:
    """The events of a request body, in any of its three forms."""
    if isinstance(body, dict) and set(body) == {"events"}:
        body = body["events"]
    return body if isinstance(body, list) else [body]


def beyond_64_bits(value: Any) -> bool:
    if isinstance(value, dict):
        return any(beyond_64_bits(item) for item in value.values())
    if isinstance(value, list):
        return any(beyond_64_bits(item) for item in value)
    return type(value) is int and not -(2**63) <= value < 2**63


def said_only_in_words(case: Case[Any]) -> bool:
    """Whether the body breaks a limit the schema can only describe, which the server refuses
    with a 422 naming the field: a time in year 1 or 9999 that leaves the range once in UTC,
    or a payload integer beyond 64 bits (JSON Schema's integer is any whole number, 1e20
    included, which the server reads as a float and keeps)."""
    for event in events_in(case.body):
        if not isinstance(event, dict):
            continue
        time = event.get("time")
        if isinstance(time, str) and time[:4] in ("0001", "9999"):
            return True
        if beyond_64_bits(event.get("payload")):
            return True
    return False


def run_cases(
    schema: OpenApiSchema, mode: GenerationMode, test: Callable[[Case[Any], str | None], None]
) -> None:
    """``test(case, authorization)`` on the cases schemathesis generates in ``mode`` (the same
    every run), with each of the Authorization headers below for the unauthorized runs."""

    # Whole requests are slow to generate, and said_only_in_words rejects some of them.
    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    @given(schema.as_strategy(generation_mode=mode), st.sampled_from(NOT_THE_TOKEN))
    def cases(case: Case[Any], authorization: str | None) -> None:
        test(case, authorization)

    cases()


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_with_the_token_every_answer_is_documented(
    ingest_schema: OpenApiSchema, mode: GenerationMode
) -> None:
    def check(case: Case[Any], _: str | None) -> None:
        if mode is GenerationMode.POSITIVE and said_only_in_words(case):
            reject()
        case.call_and_validate(headers={"Authorization": REAL}, additional_checks=[reason_given])

    run_cases(ingest_schema, mode, check)


def test_without_the_token_every_event_is_refused_with_401(ingest_schema: OpenApiSchema) -> None:
    def check(case: Case[Any], authorization: str | None) -> None:
        headers = {"Authorization": authorization} if authorization is not None else None
        response = case.call_and_validate(headers=headers, additional_checks=[reason_given])
        if case.operation.path == "/events":
            assert response.status_code == 401, response.text

    run_cases(ingest_schema, GenerationMode.POSITIVE, check)
