"""The event bus on a real AIOS_HOME: durable emits, glob subscriptions, failing handlers,
group commits, replay, validation and several writers sharing one log."""

from __future__ import annotations

import asyncio
import itertools
import math
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

import aios
from aios.bus import EventBus
from aios.errors import EventValidationError
from aios.event import Event, Severity
from aios.event_filter import EventFilter
from aios.home import HomePaths
from aios.log import Cursor, EventLog
from aios.log.segments import list_segments


def stored(home: HomePaths) -> list[Event]:
    """Every committed event, read back by a fresh EventLog (not the bus's own)."""
    return list(EventLog(home.events).events())


def types_of(events: list[Event]) -> list[str]:
    return [event.type for event in events]


class Recorder:
    """A handler remembering every event it is given, and whether it came from a replay."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.replay_flags: list[bool] = []

    def __call__(self, event: Event) -> None:
        self.events.append(event)
        self.replay_flags.append(aios.is_replay())

    @property
    def types(self) -> list[str]:
        return types_of(self.events)

    @property
    def ids(self) -> list[str]:
        return [event.id for event in self.events]


def explode(event: Event) -> None:
    raise RuntimeError(f"cannot handle {event.type}")


# ------------------------------------------------------------------ emit


def test_emit_with_only_aios_home_is_durable_and_returns_the_event(home: HomePaths) -> None:
    from aios import emit

    event = emit(
        "resource.high",
        {"resource": "cpu", "value": 93.5},
        severity="high",
        labels={"host": "web1"},
    )

    assert isinstance(event, Event) and event.id
    [back] = stored(home)
    assert back == event
    assert back.id == event.id
    assert back.type == "resource.high"
    assert back.payload == {"resource": "cpu", "value": 93.5}
    assert back.severity is Severity.HIGH
    assert back.labels == {"host": "web1"}
    assert back.source == "app"
    assert EventLog(home.events).verify().ok


def test_emit_in_a_fresh_process_with_only_aios_home(home: HomePaths) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIOS_")}
    env["AIOS_HOME"] = str(home.root)
    script = "from aios import emit; print(emit('deploy.finished', {'ok': True}).id)"
    proc = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    [back] = stored(home)
    assert back.id == proc.stdout.strip()
    assert back.payload == {"ok": True}


def test_successive_emits_are_stored_in_order(home: HomePaths) -> None:
    ids = [aios.emit("step.done", {"n": n}).id for n in range(5)]
    assert [e.id for e in stored(home)] == ids


# ------------------------------------------------------------ subscribing

EMITTED = ["resource.high", "resource.disk.full", "task.failed"]


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("resource.*", ["resource.high", "resource.disk.full"]),
        ("*", EMITTED),
        ("task.failed", ["task.failed"]),
        ("*.full", ["resource.disk.full"]),
        ("resource.?igh", ["resource.high"]),
        ("agent.*", []),
    ],
)
def test_subscribers_match_by_type_glob(home: HomePaths, pattern: str, expected: list[str]) -> None:
    got = Recorder()
    aios.subscribe(pattern, got)
    for event_type in EMITTED:
        aios.emit(event_type)
    assert got.types == expected


def test_subscribe_as_a_decorator(home: HomePaths) -> None:
    bus = aios.bus()
    seen: list[str] = []

    # subscribe() is annotated as returning Any, so mypy --strict calls the decorator untyped.
    @bus.subscribe("x.*")
    def on_x(event: Event) -> None:
        seen.append(event.type)

    bus.emit("x.one")
    bus.emit("y.one")
    bus.emit("x.two.deep")
    assert seen == ["x.one", "x.two.deep"]
    on_x(Event(type="x.direct"))  # the decorator hands back the function itself
    assert seen[-1] == "x.direct"
    assert [s.name for s in bus.subscriptions] == [on_x.__qualname__]


def test_top_level_subscribe_decorator(home: HomePaths) -> None:
    seen: list[str] = []

    @aios.subscribe("job.*", name="jobs")
    def on_job(event: Event) -> None:
        seen.append(event.type)

    aios.emit("job.started")
    assert seen == ["job.started"]
    assert [s.name for s in aios.bus().subscriptions] == ["jobs"]


def test_cancel_stops_delivery(home: HomePaths) -> None:
    got = Recorder()
    sub = aios.subscribe("*", got)
    aios.emit("a.first")
    sub.cancel()
    aios.emit("a.second")
    assert got.types == ["a.first"]
    assert aios.bus().subscriptions == []
    assert types_of(stored(home)) == ["a.first", "a.second"]  # the log has both


# ------------------------------------------------------- sync and async


def test_sync_emit_runs_sync_and_async_handlers(home: HomePaths) -> None:
    bus = aios.bus()
    sync_seen: list[str] = []
    async_seen: list[str] = []

    def on_sync(event: Event) -> None:
        sync_seen.append(event.id)

    async def on_async(event: Event) -> None:
        await asyncio.sleep(0.01)
        async_seen.append(event.id)

    bus.subscribe("job.*", on_sync)
    bus.subscribe("job.*", on_async)
    first = bus.emit("job.done")
    second = bus.emit("job.done")
    # The async handler has finished by the time emit returns.
    assert sync_seen == async_seen == [first.id, second.id]


def test_aemit_awaits_async_handlers_and_runs_sync_ones(home: HomePaths) -> None:
    bus = aios.bus()
    order: list[tuple[str, str]] = []

    async def on_async(event: Event) -> None:
        await asyncio.sleep(0.01)
        order.append(("async", event.type))

    def on_sync(event: Event) -> None:
        order.append(("sync", event.type))

    bus.subscribe("job.*", on_async)
    bus.subscribe("job.*", on_sync)

    async def main() -> Event:
        event = await bus.aemit("job.done", {"n": 1}, severity="low", labels={"agent": "a"})
        assert order == [("async", "job.done"), ("sync", "job.done")]
        return event

    event = asyncio.run(main())
    [back] = stored(home)
    assert back == event
    assert back.severity is Severity.LOW and back.labels == {"agent": "a"}


def test_aemit_with_bad_input_raises_and_writes_nothing(home: HomePaths) -> None:
    bus = aios.bus()
    with pytest.raises(EventValidationError) as info:
        asyncio.run(bus.aemit("job.done", {"bad": {1, 2}}))
    assert info.value.field == "payload.bad"
    assert stored(home) == []


# ------------------------------------------------------- failing handlers


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
def test_a_failing_handler_loses_nothing_and_is_reported(home: HomePaths, is_async: bool) -> None:
    bus = aios.bus()
    before, after = Recorder(), Recorder()

    async def explode_async(event: Event) -> None:
        raise RuntimeError(f"cannot handle {event.type}")

    failing: Any = explode_async if is_async else explode
    bus.subscribe("job.*", before)
    bus.subscribe("job.*", failing)
    bus.subscribe("job.*", after)

    event = bus.emit("job.done", correlation_id="incident-7")

    assert before.ids == [event.id]
    assert after.ids == [event.id]
    events = stored(home)
    assert types_of(events) == ["job.done", "bus.handler_failed"]
    assert events[0] == event
    failure = events[1]
    assert failure.payload["handler"] == failing.__qualname__
    assert failure.payload["event_id"] == event.id
    assert failure.payload["event_type"] == "job.done"
    assert failure.payload["error_type"] == "RuntimeError"
    assert failure.payload["error"] == "cannot handle job.done"
    assert failure.payload["replay"] is False
    assert "RuntimeError" in failure.payload["traceback"]
    assert failure.causation_id == event.id
    assert failure.correlation_id == "incident-7"
    assert failure.source == "aios.bus"
    assert failure.severity is Severity.MEDIUM
    assert EventLog(home.events).verify().ok


def test_failure_event_correlates_to_the_failed_event_when_it_has_no_correlation(
    home: HomePaths,
) -> None:
    aios.subscribe("job.*", explode)
    event = aios.emit("job.done")
    failure = stored(home)[1]
    assert failure.correlation_id == event.id


def test_failure_events_reach_subscribers(home: HomePaths) -> None:
    failures = Recorder()
    aios.subscribe("bus.handler_failed", failures)
    aios.subscribe("job.*", explode)
    event = aios.emit("job.done")
    assert [f.payload["event_id"] for f in failures.events] == [event.id]


def test_a_handler_failing_on_everything_does_not_loop(home: HomePaths) -> None:
    calls: list[str] = []

    def always_fails(event: Event) -> None:
        calls.append(event.type)
        raise ValueError("nope")

    aios.subscribe("*", always_fails)
    emitted = [aios.emit("job.done", {"n": n}) for n in range(3)]

    events = stored(home)
    # Each event, then exactly one failure report about it; the failure to handle a
    # failure report is only logged.
    assert types_of(events) == ["job.done", "bus.handler_failed"] * 3
    assert [e.payload["event_id"] for e in events[1::2]] == [e.id for e in emitted]
    assert calls == ["job.done", "bus.handler_failed"] * 3


def test_subscribers_receive_events_in_log_order_when_a_handler_fails(home: HomePaths) -> None:
    aios.subscribe("job.*", explode)
    got = Recorder()
    aios.subscribe("*", got)
    aios.emit("job.done")
    assert got.types == types_of(stored(home)) == ["job.done", "bus.handler_failed"]


# -------------------------------------------------------------- emit_many


def test_emit_many_writes_one_group_and_dispatches_in_order(home: HomePaths) -> None:
    bus = aios.bus()
    got = Recorder()
    bus.subscribe("*", got)
    first = Event(type="batch.item", payload={"n": 0})

    written = bus.emit_many(
        [
            first,
            {"type": "batch.item", "payload": {"n": 1}, "severity": "low"},
            {"type": "batch.item", "payload": {"n": 2}, "priority": "P3"},
        ]
    )

    assert written[0] is first
    assert [e.payload["n"] for e in written] == [0, 1, 2]
    assert got.ids == [e.id for e in written]
    assert [e.id for e in stored(home)] == [e.id for e in written]
    [segment] = list_segments(home.events)
    lines = segment.path.read_bytes().splitlines()
    assert [b'"commit":1' in line for line in lines] == [False, False, True]


@pytest.mark.parametrize(
    ("bad", "inner_field"),
    [
        ({"type": "Batch.Item"}, "type"),
        ({"type": "batch.item", "severity": "urgent"}, "severity"),
        ({"type": "batch.item", "payload": {"tags": {"a"}}}, "payload.tags"),
        ({"type": "batch.item", "payload": {"ratio": math.nan}}, "payload.ratio"),
        ({"type": "batch.item", "labels": {"bad key": "v"}}, "labels"),
        ({"payload": {"n": 2}}, "type"),
    ],
)
def test_emit_many_with_one_bad_item_writes_nothing(
    home: HomePaths, bad: dict[str, Any], inner_field: str
) -> None:
    bus = aios.bus()
    before = bus.emit("before.batch")
    got = Recorder()
    bus.subscribe("*", got)
    items: list[Event | dict[str, Any]] = [
        {"type": "batch.item", "payload": {"n": 0}},
        Event(type="batch.item", payload={"n": 1}),
        bad,
        {"type": "batch.item", "payload": {"n": 3}},
    ]

    with pytest.raises(EventValidationError) as info:
        bus.emit_many(items)

    assert info.value.field is not None and info.value.field.startswith("[2]")
    message = str(info.value)
    assert "[2]" in message and inner_field in message
    assert [e.id for e in stored(home)] == [before.id]
    assert got.events == []
    assert EventLog(home.events).verify().ok


def test_emit_many_error_field_names_index_and_field(home: HomePaths) -> None:
    with pytest.raises(EventValidationError) as info:
        aios.emit_many([{"type": "a.b"}, {"type": "a.c"}, {"type": "Bad"}])
    assert info.value.field == "[2].type"


def test_emit_many_of_nothing_writes_nothing(home: HomePaths) -> None:
    assert aios.emit_many([]) == []
    assert stored(home) == []


# ------------------------------------------------------------------ replay


def emit_mix(bus: EventBus) -> list[Event]:
    return [
        bus.emit("task.started", {"n": 1}),
        bus.emit("resource.high", {"n": 2}),
        bus.emit("task.completed", {"n": 3}),
        bus.emit("agent.state_changed", {"n": 4}),
        bus.emit("task.failed", {"n": 5}),
        bus.emit("resource.disk.full", {"n": 6}),
    ]


def test_replay_redelivers_exactly_the_matching_events_in_order(home: HomePaths) -> None:
    bus = aios.bus()
    live = Recorder()
    bus.subscribe("*", live)
    emitted = emit_mix(bus)
    assert live.replay_flags == [False] * len(emitted)

    replayed = Recorder()
    bus.subscribe("*", replayed, name="replayed")
    resources = Recorder()
    bus.subscribe("resource.*", resources, name="resources")
    report = bus.replay(EventFilter(types=("task.*",)))

    expected = [e for e in emitted if e.type.startswith("task.")]
    assert replayed.events == expected
    assert replayed.replay_flags == [True, True, True]
    assert resources.events == []  # no resource.* event passes the filter
    assert report.events == 3
    assert report.delivered["replayed"] == 3
    assert report.delivered["resources"] == 0
    assert report.failures == []
    # The report's cursor resumes after the last matching event: nothing more to replay.
    resumed = bus.replay(EventFilter(types=("task.*",)), cursor=Cursor.parse(report.cursor))
    assert resumed.events == 0
    assert not aios.is_replay()
    # Replay only reads: the log holds what was emitted, nothing more.
    assert stored(home) == emitted


def test_is_replay_is_false_again_for_live_emits_after_a_replay(home: HomePaths) -> None:
    bus = aios.bus()
    got = Recorder()
    bus.subscribe("*", got)
    bus.emit("job.one")
    bus.replay()
    bus.emit("job.two")
    assert got.types == ["job.one", "job.one", "job.two"]
    assert got.replay_flags == [False, True, False]


def test_is_replay_is_true_inside_async_handlers_during_replay(home: HomePaths) -> None:
    bus = aios.bus()
    flags: list[bool] = []

    async def on_task(event: Event) -> None:
        flags.append(aios.is_replay())

    bus.subscribe("task.*", on_task)
    bus.emit("task.done")
    bus.replay()
    assert flags == [False, True]


def test_replay_from_a_cursor_delivers_only_later_events(home: HomePaths) -> None:
    bus = aios.bus()
    emit_mix(bus)
    cursor = bus.log.end()
    later = [bus.emit("task.started", {"n": 7}), bus.emit("task.completed", {"n": 8})]
    bus.emit("resource.high", {"n": 9})

    got = Recorder()
    bus.subscribe("*", got)
    report = bus.replay(EventFilter(types=("task.*",)), cursor=cursor)
    assert got.events == later
    assert report.events == 2

    # From the end of the log there is nothing left to replay.
    assert bus.replay(cursor=bus.log.end()).events == 0
    assert got.events == later


def test_replay_rebuilds_the_live_projection(home: HomePaths) -> None:
    bus = aios.bus()
    live_counts: Counter[str] = Counter()
    sub = bus.subscribe("*", lambda e: live_counts.update([e.type]))
    emit_mix(bus)
    bus.emit_many([{"type": "task.failed"}, {"type": "task.failed"}])
    sub.cancel()

    rebuilt: Counter[str] = Counter()
    bus.subscribe("*", lambda e: rebuilt.update([e.type]))
    bus.replay()
    assert rebuilt == live_counts
    assert rebuilt["task.failed"] == 3


def test_replay_can_be_limited_to_some_handlers(home: HomePaths) -> None:
    bus = aios.bus()
    emit_mix(bus)
    chosen, other = Recorder(), Recorder()
    chosen_sub = bus.subscribe("task.*", chosen, name="chosen")
    bus.subscribe("task.*", other, name="other")
    report = bus.replay(handlers=[chosen_sub])
    assert chosen.types == ["task.started", "task.completed", "task.failed"]
    assert other.events == []
    assert report.delivered == {"chosen": 3}


def test_a_handler_failing_during_replay_is_reported(home: HomePaths) -> None:
    bus = aios.bus()
    emitted = emit_mix(bus)
    failed_task = next(e for e in emitted if e.type == "task.failed")

    def fails_on_failed(event: Event) -> None:
        if event.type == "task.failed":
            raise KeyError("no such task")

    bus.subscribe("task.*", fails_on_failed, name="projector")
    report = bus.replay(EventFilter(types=("task.*",)))

    assert report.events == 3
    assert report.delivered == {"projector": 2}
    assert report.failures == [
        {
            "handler": "projector",
            "event_id": failed_task.id,
            "error": repr(KeyError("no such task")),
        }
    ]
    events = stored(home)
    assert events[: len(emitted)] == emitted
    [failure] = events[len(emitted) :]
    assert failure.type == "bus.handler_failed"
    assert failure.causation_id == failed_task.id
    assert failure.payload["handler"] == "projector"
    assert failure.payload["event_id"] == failed_task.id
    assert failure.payload["error_type"] == "KeyError"
    assert failure.payload["replay"] is True


# -------------------------------------------------------------- validation

BAD_EMITS: list[tuple[str, dict[str, Any], str]] = [
    ("uppercase type", {"type": "Resource.High"}, "type"),
    ("one-segment type", {"type": "resource"}, "type"),
    ("bad severity", {"type": "resource.high", "severity": "urgent"}, "severity"),
    ("set in payload", {"type": "resource.high", "payload": {"tags": {"a"}}}, "payload.tags"),
    ("NaN in payload", {"type": "resource.high", "payload": {"ratio": math.nan}}, "payload.ratio"),
    (
        "nested infinity",
        {"type": "resource.high", "payload": {"stats": {"xs": [1.0, math.inf]}}},
        "payload.stats.xs[1]",
    ),
    ("object in payload", {"type": "resource.high", "payload": {"when": object()}}, "payload.when"),
    ("label key with a space", {"type": "resource.high", "labels": {"bad key": "v"}}, "labels"),
    ("blank source", {"type": "resource.high", "source": "  "}, "source"),
]


@pytest.mark.parametrize(
    ("kwargs", "field"), [(kw, f) for _, kw, f in BAD_EMITS], ids=[n for n, _, _ in BAD_EMITS]
)
def test_bad_input_to_emit_names_the_field_and_writes_nothing(
    home: HomePaths, kwargs: dict[str, Any], field: str
) -> None:
    got = Recorder()
    aios.subscribe("*", got)
    with pytest.raises(EventValidationError) as info:
        aios.emit(**kwargs)
    assert info.value.field == field
    assert str(info.value).startswith(f"{field}: ")
    assert stored(home) == []
    assert got.events == []


# ------------------------------------------------------- several writers

PER_WRITER = 40

# Each child imports aios, says it is ready, waits for the go file, then emits.
EMITTER = """
import os, sys, time
from aios import emit
name, go = sys.argv[1], sys.argv[2]
print("ready", flush=True)
while not os.path.exists(go):
    time.sleep(0.001)
for i in range({n}):
    emit("writer.tick", {{"writer": name, "i": i}})
    time.sleep(0.001)
"""


def switches(names: list[str]) -> int:
    return sum(a != b for a, b in itertools.pairwise(names))


def test_buses_and_processes_sharing_a_home_interleave_safely(
    home: HomePaths, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIOS_")}
    env["AIOS_HOME"] = str(home.root)
    go = tmp_path / "go"
    script = EMITTER.format(n=PER_WRITER)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, f"proc{k}", str(go)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for k in range(2)
    ]
    for proc in procs:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"

    started = threading.Event()

    def run_bus(name: str) -> None:
        bus = EventBus(EventLog(home.events))
        started.wait(30)
        try:
            for i in range(PER_WRITER):
                bus.emit("writer.tick", {"writer": name, "i": i})
                time.sleep(0.001)
        finally:
            bus.log.close()

    threads = [threading.Thread(target=run_bus, args=(f"bus{k}",)) for k in range(2)]
    for thread in threads:
        thread.start()
    go.touch()
    started.set()
    for thread in threads:
        thread.join(timeout=60)
    for proc in procs:
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err

    events = stored(home)
    writers = ["bus0", "bus1", "proc0", "proc1"]
    assert len(events) == PER_WRITER * len(writers)
    assert len({e.id for e in events}) == len(events)
    for name in writers:
        mine = [e.payload["i"] for e in events if e.payload["writer"] == name]
        assert mine == list(range(PER_WRITER)), name
    # The writers really ran at the same time (not one block after another).
    assert switches([e.payload["writer"] for e in events]) > len(writers)
    report = EventLog(home.events).verify()
    assert report.ok
    assert report.events == len(events)
