"""``aios.track`` on a real AIOS_HOME: task.started, then task.completed or task.failed."""

from __future__ import annotations

import asyncio
import inspect
import time

import pytest

import aios
from aios.errors import InputError
from aios.event import Event, Severity
from aios.home import HomePaths
from aios.log import EventLog


def stored(home: HomePaths) -> list[Event]:
    return list(EventLog(home.events).events())


def started_and_finished(home: HomePaths) -> tuple[Event, Event]:
    """The only two events in the log: the task's start and its end."""
    started, finished = stored(home)
    assert started.type == "task.started"
    return started, finished


def test_a_completed_task_records_started_then_completed(home: HomePaths) -> None:
    with aios.track("summarise", agent="writer") as t:
        time.sleep(0.05)
        t.tokens = 120
        t.cost = 0.5

    started, completed = started_and_finished(home)
    assert completed.type == "task.completed"
    for event in (started, completed):
        assert event.labels == {"agent": "writer", "task": "summarise"}
        assert event.source == "writer"
        assert event.severity is Severity.INFO
    assert started.payload == {"task": "summarise"}
    assert completed.payload["task"] == "summarise"
    assert completed.payload["task_id"] == started.id
    assert completed.payload["tokens"] == 120
    assert completed.payload["cost"] == 0.5
    assert completed.payload["latency_ms"] >= 50
    assert completed.correlation_id == started.id
    assert completed.causation_id == started.id
    # The tracker itself tells the caller what happened.
    assert t.task_id == started.id
    assert t.outcome == "completed"
    assert t.latency_ms == completed.payload["latency_ms"]


def test_the_started_event_shares_the_task_correlation_id(home: HomePaths) -> None:
    with aios.track("summarise", agent="writer"):
        pass
    started, completed = started_and_finished(home)
    assert started.correlation_id == started.id == completed.correlation_id


def test_tokens_and_cost_are_left_out_when_not_set(home: HomePaths) -> None:
    with aios.track("summarise", agent="writer"):
        pass
    _, completed = started_and_finished(home)
    assert set(completed.payload) == {"task", "task_id", "latency_ms"}


def test_set_adds_fields_to_the_completed_payload(home: HomePaths) -> None:
    with aios.track("summarise", agent="writer") as t:
        t.set(model="gpt-x", retries=2)
        t.set(prompt_chars=1800)
    _, completed = started_and_finished(home)
    assert completed.payload["model"] == "gpt-x"
    assert completed.payload["retries"] == 2
    assert completed.payload["prompt_chars"] == 1800


def test_extra_labels_are_kept_next_to_agent_and_task(home: HomePaths) -> None:
    with aios.track("summarise", agent="writer", labels={"host": "web1"}, source="svc"):
        pass
    started, completed = started_and_finished(home)
    assert (
        started.labels
        == completed.labels
        == {
            "host": "web1",
            "agent": "writer",
            "task": "summarise",
        }
    )
    assert started.source == completed.source == "svc"


def test_an_exception_records_task_failed_and_is_reraised_unchanged(home: HomePaths) -> None:
    error = ValueError("the model refused")
    with pytest.raises(ValueError) as info, aios.track("summarise", agent="writer") as t:
        t.set(model="gpt-x")
        raise error

    assert info.value is error
    started, failed = started_and_finished(home)
    assert failed.type == "task.failed"
    assert failed.severity is Severity.MEDIUM
    assert failed.payload["error_type"] == "ValueError"
    assert failed.payload["error"] == "the model refused"
    assert failed.payload["task_id"] == started.id
    assert failed.payload["model"] == "gpt-x"
    assert failed.payload["latency_ms"] >= 0
    assert failed.labels == {"agent": "writer", "task": "summarise"}
    assert failed.correlation_id == failed.causation_id == started.id
    assert t.outcome == "failed"


@pytest.mark.parametrize("severity", ["low", "high", Severity.CRITICAL])
def test_failure_severity_is_configurable(home: HomePaths, severity: Severity | str) -> None:
    with (
        pytest.raises(TimeoutError),
        aios.track("fetch", agent="crawler", failure_severity=severity),
    ):
        raise TimeoutError("upstream slow")
    _, failed = started_and_finished(home)
    assert failed.type == "task.failed"
    assert failed.severity == Severity(severity)
    assert failed.payload["error_type"] == "TimeoutError"


def test_decorating_a_sync_function(home: HomePaths) -> None:
    @aios.track(agent="writer")
    def summarise(text: str, *, limit: int = 10) -> str:
        return text[:limit]

    assert summarise.__name__ == "summarise"
    assert summarise("a long piece of text", limit=6) == "a long"
    assert summarise("short") == "short"

    events = stored(home)
    assert [e.type for e in events] == ["task.started", "task.completed"] * 2
    started = [e for e in events if e.type == "task.started"]
    completed = [e for e in events if e.type == "task.completed"]
    # Named after the function's qualified name.
    assert {e.payload["task"] for e in events} == {summarise.__qualname__}
    assert summarise.__qualname__.endswith("<locals>.summarise")
    assert {e.labels["task"] for e in events} == {summarise.__qualname__}
    # Each call is its own task.
    assert started[0].id != started[1].id
    assert [c.payload["task_id"] for c in completed] == [s.id for s in started]
    assert [c.correlation_id for c in completed] == [s.id for s in started]


def test_decorating_with_an_explicit_name(home: HomePaths) -> None:
    @aios.track("nightly-report", agent="reporter")
    def build() -> int:
        return 3

    assert build() == 3
    started, completed = started_and_finished(home)
    assert started.payload["task"] == completed.payload["task"] == "nightly-report"


def test_decorating_an_async_function(home: HomePaths) -> None:
    @aios.track(agent="writer")
    async def summarise(text: str) -> str:
        await asyncio.sleep(0.02)
        return text.upper()

    assert inspect.iscoroutinefunction(summarise)

    async def main() -> list[str]:
        return [await summarise("one"), await summarise("two")]

    assert asyncio.run(main()) == ["ONE", "TWO"]
    events = stored(home)
    assert [e.type for e in events] == ["task.started", "task.completed"] * 2
    started, completed = events[0::2], events[1::2]
    assert started[0].id != started[1].id
    assert [c.payload["task_id"] for c in completed] == [s.id for s in started]
    assert all(c.payload["latency_ms"] >= 20 for c in completed)
    assert {e.payload["task"] for e in events} == {summarise.__qualname__}


def test_a_decorated_function_that_raises_records_task_failed(home: HomePaths) -> None:
    @aios.track(agent="writer", failure_severity="high")
    def summarise() -> None:
        raise KeyError("missing prompt")

    with pytest.raises(KeyError, match="missing prompt"):
        summarise()
    _, failed = started_and_finished(home)
    assert failed.type == "task.failed"
    assert failed.severity is Severity.HIGH
    assert failed.payload["error_type"] == "KeyError"


def test_a_decorated_async_function_that_raises_records_task_failed(home: HomePaths) -> None:
    error = RuntimeError("rate limited")

    @aios.track(agent="writer")
    async def summarise() -> None:
        raise error

    with pytest.raises(RuntimeError) as info:
        asyncio.run(summarise())
    assert info.value is error
    _, failed = started_and_finished(home)
    assert failed.type == "task.failed"
    assert failed.payload["error"] == "rate limited"


def test_track_events_reach_subscribers(home: HomePaths) -> None:
    seen: list[str] = []
    aios.subscribe("task.*", lambda e: seen.append(e.type))
    with aios.track("summarise", agent="writer"):
        pass
    assert seen == ["task.started", "task.completed"]


def test_an_empty_agent_is_refused(home: HomePaths) -> None:
    with pytest.raises(InputError, match="agent"):
        aios.track("summarise", agent="")
    assert stored(home) == []


def test_a_with_block_needs_a_task_name(home: HomePaths) -> None:
    with pytest.raises(InputError, match="name the task"), aios.track(agent="writer"):
        pass
    assert stored(home) == []


def test_a_blank_agent_is_refused(home: HomePaths) -> None:
    with pytest.raises(InputError, match="agent"):
        aios.track("summarise", agent="   ")


def test_an_unknown_failure_severity_is_an_input_error(home: HomePaths) -> None:
    with pytest.raises(InputError, match="severity"):
        aios.track("summarise", agent="writer", failure_severity="urgent")
