"""The Event model: validation, derived priority, ids, and the canonical form."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aios.errors import EventValidationError
from aios.event import Event, Priority, Severity
from aios.log.line_format import (
    GENESIS_HASH,
    canonical_body,
    check_line,
    parse_line,
    seal,
)


@pytest.mark.parametrize(
    "event_type",
    ["resource.high", "task.failed", "a.b.c", "log.repaired", "x1.y_2", "agent.state_changed"],
)
def test_valid_types_are_accepted(event_type: str) -> None:
    assert Event.create(type=event_type).type == event_type


@pytest.mark.parametrize(
    "event_type",
    [
        "",
        "resource",
        "Resource.high",
        "resource..high",
        ".a",
        "a.",
        "a.b-c",
        "a b.c",
        "1a.b",
        "a.*",
    ],
)
def test_invalid_types_are_refused_naming_the_field(event_type: str) -> None:
    with pytest.raises(EventValidationError) as info:
        Event.create(type=event_type)
    assert info.value.field == "type"
    assert "dotted lowercase" in str(info.value)


@pytest.mark.parametrize(
    ("severity", "priority"),
    [
        ("critical", Priority.P0),
        ("high", Priority.P1),
        ("medium", Priority.P2),
        ("low", Priority.P3),
        ("info", Priority.P3),
    ],
)
def test_priority_is_derived_from_severity(severity: str, priority: Priority) -> None:
    event = Event.create(type="a.b", severity=severity)
    assert event.priority is priority
    assert event.model_dump(mode="json")["priority"] == priority.value


def test_unknown_severity_is_refused() -> None:
    with pytest.raises(EventValidationError, match="not a severity") as info:
        Event.create(type="a.b", severity="urgent")
    assert info.value.field == "severity"


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"x": float("nan")}, "payload.x"),
        ({"x": {"y": float("inf")}}, "payload.x.y"),
        ({"x": [1, 2**70]}, "payload.x[1]"),
        ({"x": {1, 2}}, "payload.x"),
        ({"x": object()}, "payload.x"),
    ],
)
def test_payload_must_be_plain_finite_json(payload: dict[str, Any], field: str) -> None:
    with pytest.raises(EventValidationError) as info:
        Event.create(type="a.b", payload=payload)
    assert info.value.field == field


def test_deep_payload_is_refused() -> None:
    deep: dict[str, Any] = {}
    node = deep
    for _ in range(40):
        node["n"] = {}
        node = node["n"]
    with pytest.raises(EventValidationError, match="nested deeper"):
        Event.create(type="a.b", payload=deep)


@pytest.mark.parametrize("key", ["", "has space", "-lead", "ünï"])
def test_bad_label_keys_are_refused(key: str) -> None:
    with pytest.raises(EventValidationError) as info:
        Event.create(type="a.b", labels={key: "v"})
    assert info.value.field == "labels"


def test_labels_values_must_be_strings() -> None:
    with pytest.raises(EventValidationError) as info:
        Event.create(type="a.b", labels={"host": 5})
    assert info.value.field == "labels.host"


def test_extra_fields_are_refused() -> None:
    with pytest.raises(EventValidationError) as info:
        Event.create(type="a.b", colour="red")
    assert info.value.field == "colour"


def test_ids_are_time_ordered_and_unique() -> None:
    ids = [Event.create(type="a.b").id for _ in range(5000)]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)


def test_time_is_normalised_to_utc() -> None:
    local = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=2)))
    event = Event.create(type="a.b", time=local)
    assert event.time == datetime(2026, 1, 2, 1, 4, 5, tzinfo=UTC)
    naive = Event.create(type="a.b", time=datetime(2026, 1, 2, 3, 4, 5))
    assert naive.time.tzinfo is not None and naive.time.hour == 3


def test_events_are_immutable() -> None:
    event = Event.create(type="a.b")
    with pytest.raises(Exception, match="frozen"):
        event.type = "c.d"  # type: ignore[misc]


def test_stored_fields_are_exactly_the_model_fields() -> None:
    # The canonical form serialises the model's __dict__; priority is derived, not stored.
    event = Event.create(type="a.b", payload={"k": 1})
    assert set(event.__dict__) == set(Event.model_fields)
    assert b'"priority"' not in canonical_body(event)


# -------------------------------------------------------------- property tests
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
segment = st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True)
events = st.builds(
    Event,
    type=st.lists(segment, min_size=2, max_size=4).map(".".join),
    source=st.from_regex(r"[a-z][a-z.]{0,15}", fullmatch=True),
    severity=st.sampled_from(list(Severity)),
    labels=st.dictionaries(
        st.from_regex(r"[a-z][a-z0-9_.-]{0,8}", fullmatch=True), st.text(max_size=10), max_size=3
    ),
    payload=st.dictionaries(st.text(max_size=8), json_values, max_size=5),
    time=st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
    ),
)


@settings(max_examples=300, deadline=None)
@given(events)
def test_canonical_form_round_trips(event: Event) -> None:
    body = canonical_body(event)
    line, _digest = seal(body, GENESIS_HASH, True)
    back = parse_line(line)
    assert back == event
    assert canonical_body(back) == body
    assert b"\n" not in body


@settings(max_examples=200, deadline=None)
@given(events, st.data())
def test_any_byte_change_breaks_the_line_hash(event: Event, data: st.DataObject) -> None:
    line, _ = seal(canonical_body(event), GENESIS_HASH, True)
    assert check_line(line).ok
    position = data.draw(st.integers(min_value=0, max_value=len(line) - 2))
    replacement = data.draw(
        st.integers(min_value=0, max_value=255).filter(lambda b: b != line[position])
    )
    tampered = line[:position] + bytes([replacement]) + line[position + 1 :]
    assert not check_line(tampered).ok


@settings(max_examples=100, deadline=None)
@given(st.lists(events, min_size=1, max_size=6))
def test_the_chain_links_each_line_to_the_one_before(batch: list[Event]) -> None:
    prev = GENESIS_HASH
    for index, event in enumerate(batch):
        line, digest = seal(canonical_body(event), prev, index == len(batch) - 1)
        check = check_line(line)
        assert check.ok and check.prev_hash == prev and check.hash == digest
        assert check.commit == (index == len(batch) - 1)
        prev = digest


@pytest.mark.parametrize("bad", ["evt42", "ééé", "١٢٣", "not-a-uuid", ""])
def test_ids_must_be_uuids(bad: str) -> None:
    with pytest.raises(EventValidationError) as info:
        Event.create(type="a.b", id=bad)
    assert info.value.field == "id"


def test_a_time_that_overflows_in_utc_is_refused_naming_the_field() -> None:
    with pytest.raises(EventValidationError) as info:
        Event.create(type="a.b", time=datetime(1, 1, 1, 0, 30, tzinfo=timezone(timedelta(hours=1))))
    assert info.value.field == "time"


def test_a_lone_surrogate_is_refused_naming_its_field() -> None:
    event = Event.create(type="a.b", labels={"host": "\ud800"})
    with pytest.raises(EventValidationError) as info:
        canonical_body(event)
    assert info.value.field == "labels"
