"""The event log on real files: appends, group commits, rotation, reading, repair, HEAD."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from aios.event import Event
from aios.event_filter import EventFilter
from aios.log import Cursor, EventLog
from aios.log import writer as writer_module
from aios.log.line_format import canonical_body, check_line, seal
from aios.log.segments import list_segments


def make(n: int, kind: str = "test.event", **fields: object) -> list[Event]:
    return [Event.create(type=kind, payload={"n": i}, **fields) for i in range(n)]


def lines_of(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def test_appended_events_read_back_in_order(log: EventLog) -> None:
    first = log.append(make(3)).written
    second = log.append(make(2, "other.event")).written
    assert [e.id for e in log.events()] == [e.id for e in first + second]
    assert log.verify().ok and log.verify().events == 5


def test_a_batch_has_exactly_one_commit_line_at_its_end(log: EventLog) -> None:
    log.append(make(4))
    log.append(make(1))
    segment = list_segments(log.directory)[0]
    flags = [b'"commit":1' in line for line in lines_of(segment.path)]
    assert flags == [False, False, False, True, True]


def test_an_unfinished_batch_is_invisible_to_readers(log: EventLog) -> None:
    log.append(make(2))
    segment = list_segments(log.directory)[0].path
    committed = segment.read_bytes()
    other = EventLog(log.directory)
    other.append(make(3, "late.event"))
    full = segment.read_bytes()
    # Cut the second batch just after its first (uncommitted) line, as a crash would.
    first_new_line_end = full.index(b"\n", len(committed)) + 1
    segment.write_bytes(full[:first_new_line_end])
    assert [e.type for e in log.events()] == ["test.event", "test.event"]
    assert log.end() == Cursor(1, len(committed))


def test_filters_select_by_type_time_source_and_labels(log: EventLog) -> None:
    now = datetime.now(UTC)
    log.append(
        [
            Event.create(type="resource.high", source="monitor", labels={"host": "a"}),
            Event.create(type="resource.disk.full", source="monitor", labels={"host": "b"}),
            Event.create(type="task.failed", source="agent", labels={"host": "a"}),
            Event.create(type="task.completed", time=now - timedelta(days=2)),
        ]
    )

    def types(flt: EventFilter) -> list[str]:
        return [e.type for e in log.events(flt)]

    assert types(EventFilter(types=("resource.*",))) == ["resource.high", "resource.disk.full"]
    assert types(EventFilter(types=("task.failed", "resource.high"))) == [
        "resource.high",
        "task.failed",
    ]
    assert types(EventFilter(labels={"host": "a"})) == ["resource.high", "task.failed"]
    assert types(EventFilter(sources=("agent",))) == ["task.failed"]
    assert "task.completed" not in types(EventFilter(since=now - timedelta(hours=1)))
    assert types(EventFilter(until=now - timedelta(days=1))) == ["task.completed"]


def test_a_cursor_resumes_exactly_where_the_reader_stopped(log: EventLog) -> None:
    log.append(make(5))
    seen = []
    cursor = Cursor()
    for event, after in log.read():
        seen.append(event.payload["n"])
        cursor = after
        if len(seen) == 2:
            break
    log.append(make(2, "more.event"))
    rest = [(e.type, e.payload["n"]) for e, _ in log.read(cursor=Cursor.parse(str(cursor)))]
    assert seen == [0, 1]
    assert rest == [
        ("test.event", 2),
        ("test.event", 3),
        ("test.event", 4),
        ("more.event", 0),
        ("more.event", 1),
    ]


def test_segments_rotate_by_size_and_the_chain_spans_them(home) -> None:
    log = EventLog(home.events, segment_max_bytes=4096)
    for _ in range(30):
        log.append(make(3))
    segments = list_segments(home.events)
    assert len(segments) > 5
    assert [s.seq for s in segments] == list(range(1, len(segments) + 1))
    report = log.verify()
    assert report.ok and report.events == 90
    assert [e.payload["n"] for e in log.events()] == [0, 1, 2] * 30
    log.close()


def test_segments_rotate_at_a_new_utc_day(log: EventLog, monkeypatch: pytest.MonkeyPatch) -> None:
    log.append(make(2))
    monkeypatch.setattr(writer_module, "_today", lambda: date(2099, 1, 2))
    log.append(make(1))
    names = [s.name for s in list_segments(log.directory)]
    assert len(names) == 2 and names[1].endswith("-20990102.jsonl")
    assert log.verify().ok


def test_a_torn_last_line_is_quarantined_and_recorded(log: EventLog) -> None:
    log.append(make(3))
    path = list_segments(log.directory)[0].path
    intact = path.read_bytes()
    path.write_bytes(intact + b'{"causation_id":null,"corr')  # a crash mid-line
    assert not log.verify().ok
    writer = EventLog(log.directory)
    result = writer.append(make(1, "after.crash"))
    repaired = result.notices
    assert [e.type for e in repaired] == ["log.repaired"]
    assert repaired[0].payload["reason"] == "torn last line"
    quarantine = log.directory / repaired[0].payload["quarantine"]
    assert quarantine.read_bytes() == b'{"causation_id":null,"corr'
    assert [e.type for e in log.events()] == ["test.event"] * 3 + ["log.repaired", "after.crash"]
    assert log.verify().ok
    writer.close()


def unfinished_batch(after: bytes, count: int) -> bytes:
    """The lines a writer would add after ``after`` for a batch of ``count`` events."""
    prev = check_line(after.splitlines(keepends=True)[-1]).hash
    lines = []
    for index, event in enumerate(make(count, "doomed.event")):
        line, prev = seal(canonical_body(event), prev, index == count - 1)
        lines.append(line)
    return b"".join(lines)


def test_an_unfinished_batch_is_set_aside_whole(log: EventLog) -> None:
    log.append(make(2))
    path = list_segments(log.directory)[0].path
    committed = path.read_bytes()
    batch = unfinished_batch(committed, 4)
    # A crash after two complete lines and part of the third of a 4-line batch.
    cut = batch.index(b"\n", batch.index(b"\n") + 1) + 40
    path.write_bytes(committed + batch[:cut])
    fresh = EventLog(log.directory)
    notices = fresh.repair()
    assert [e.type for e in notices] == ["log.repaired"]
    assert notices[0].payload["complete_lines"] == 2
    assert notices[0].payload["reason"] == "unfinished batch ending in a torn line"
    types = [e.type for e in fresh.events()]
    assert "doomed.event" not in types and types.count("test.event") == 2
    assert fresh.verify().ok
    fresh.close()


def test_a_batch_with_a_damaged_line_before_its_commit_line_is_set_aside(log: EventLog) -> None:
    # Power loss can keep a batch's last page and lose an earlier one.
    log.append(make(2))
    path = list_segments(log.directory)[0].path
    committed = path.read_bytes()
    batch = bytearray(unfinished_batch(committed, 3))
    batch[10:30] = b"\0" * 20
    path.write_bytes(committed + bytes(batch))
    fresh = EventLog(log.directory)
    notices = fresh.repair()
    assert [e.type for e in notices] == ["log.repaired"]
    assert [e.type for e in fresh.events()] == ["test.event", "test.event", "log.repaired"]
    assert fresh.verify().ok
    fresh.close()


def test_a_cut_that_looks_like_a_crash_is_still_recorded_as_truncation(log: EventLog) -> None:
    log.append(make(3))
    path = list_segments(log.directory)[0].path
    path.write_bytes(path.read_bytes()[:-100])  # acknowledged bytes lost, mid-line
    writer = EventLog(log.directory)
    notices = writer.repair()
    assert [e.type for e in notices] == ["log.repaired", "log.truncated"]
    assert not writer.verify().ok
    writer.close()


def test_a_removed_log_directory_is_recorded_as_truncated(home) -> None:
    log = EventLog(home.events)
    log.append(make(2))
    log.close()
    import shutil

    shutil.rmtree(home.events)
    again = EventLog(home.events)
    notices = again.append(make(1, "after.wipe")).notices
    assert [e.type for e in notices] == ["log.truncated"]
    again.close()


def test_truncation_behind_head_is_detected_and_recorded(log: EventLog) -> None:
    log.append(make(3))
    log.append(make(3))
    log.close()
    path = list_segments(log.directory)[0].path
    lines = lines_of(path)
    path.write_bytes(b"".join(lines[:3]))  # drop the last committed batch
    report = EventLog(log.directory).verify()
    assert not report.ok and report.first_break is not None
    assert report.first_break.kind == "truncated"
    assert report.first_break.segment == path.name
    writer = EventLog(log.directory)
    notices = writer.append(make(1, "later.event")).notices
    assert [e.type for e in notices] == ["log.truncated"]
    report = writer.verify()
    assert not report.ok and report.first_break is not None
    assert report.first_break.kind == "truncated" and report.first_break.line == 4
    writer.close()


def test_newest_first_reads_backwards_across_segments(home) -> None:
    log = EventLog(home.events, segment_max_bytes=4096)
    for i in range(20):
        log.append([Event.create(type="test.event", payload={"n": i})])
    newest = [e.payload["n"] for e in log.newest_first()][:5]
    assert newest == [19, 18, 17, 16, 15]
    log.close()


def test_oversized_events_are_refused_and_nothing_is_written(log: EventLog) -> None:
    from aios.errors import EventValidationError

    big = Event.create(type="big.event", payload={"blob": "x" * (1 << 20)})
    with pytest.raises(EventValidationError, match="limit"):
        log.append([Event.create(type="ok.event"), big])
    assert list(log.events()) == []


def test_a_cursor_that_does_not_start_a_line_is_refused(log: EventLog) -> None:
    from aios.errors import LogIntegrityError

    log.append(make(3))
    end = log.end()
    with pytest.raises(LogIntegrityError, match="does not start a line"):
        list(log.read(cursor=Cursor(end.segment, end.offset - 10)))
    with pytest.raises(LogIntegrityError, match="past the end"):
        list(log.read(cursor=Cursor(end.segment, end.offset + 500)))


def test_a_line_changed_on_disk_is_named_by_segment_and_place(log: EventLog) -> None:
    from aios.errors import LogIntegrityError

    log.append(make(3))
    segment = list_segments(log.directory)[0]
    lines = lines_of(segment.path)
    changed = lines[1].replace(b'"payload":{"n":1}', b'"payload":{"n":1]')
    assert changed != lines[1] and len(changed) == len(lines[1])  # the hash links stay
    segment.path.write_bytes(lines[0] + changed + lines[2])
    with pytest.raises(LogIntegrityError) as caught:
        list(log.read())
    assert caught.value.segment == segment.name
    assert caught.value.line == 2
    assert str(caught.value).startswith(f"{segment.name} line 2: the line at byte {len(lines[0])}")


def test_a_failed_fdatasync_leaves_nothing_behind_for_a_retry(
    log: EventLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aios.errors import LogError

    log.append(make(1, "first.event"))
    import os

    real = os.fdatasync
    calls = {"n": 0}

    def failing_once(fd: int) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            raise OSError(5, "Input/output error")
        real(fd)

    monkeypatch.setattr(os, "fdatasync", failing_once)
    retried = make(1, "retried.event")
    with pytest.raises(LogError, match="Input/output error"):
        log.append(retried)
    log.append(retried)  # what a caller does after the error
    assert [e.type for e in log.events()] == ["first.event", "retried.event"]
    assert log.verify().ok


def test_a_payload_mentioning_log_truncated_is_not_a_truncation(log: EventLog) -> None:
    log.append(
        [
            Event.create(
                type="note.event",
                payload={"type": "log.truncated"},
                labels={"type": "log.truncated"},
            )
        ]
    )
    assert log.verify().ok


def test_verify_on_a_live_log_is_not_fooled_by_appends_and_rotation(home) -> None:
    import threading

    log = EventLog(home.events, segment_max_bytes=4096)
    stop = threading.Event()

    def keep_writing() -> None:
        writer = EventLog(home.events, segment_max_bytes=4096)
        while not stop.is_set():
            writer.append(make(3))
        writer.close()

    thread = threading.Thread(target=keep_writing)
    thread.start()
    try:
        for _ in range(30):
            report = log.verify()
            assert report.ok, report.first_break
    finally:
        stop.set()
        thread.join()
    log.close()


def test_a_forked_child_can_take_a_lock_its_parent_held(log: EventLog) -> None:
    import os
    import threading

    log.append(make(1))
    held = threading.Event()
    release = threading.Event()

    def hold() -> None:
        with log.writer.lock:
            held.set()
            release.wait(10)

    thread = threading.Thread(target=hold)
    thread.start()
    held.wait(5)
    pid = os.fork()
    if pid == 0:  # the child: the parent's thread holds the lock, not the child
        try:
            release.set()
            EventLog(log.directory).append(make(1, "from.child"))
            os._exit(0)
        except BaseException:
            os._exit(1)
    release.set()
    thread.join()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert "from.child" in [e.type for e in log.events()]
