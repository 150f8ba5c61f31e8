"""Maintenance on a real AIOS_HOME: log retention and its anchor, the store's checkpoint and
daily snapshots, pruning remediation backups and the trash, and steps that fail on their own."""

from __future__ import annotations

import os
import shutil
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pytest

import aios
from aios.atomic import write_atomic
from aios.config import load_config
from aios.errors import ConfigError, LogIntegrityError
from aios.event import Event
from aios.home import HomePaths
from aios.log import Cursor
from aios.log import retention as retention_module
from aios.log.line_format import check_line
from aios.log.retention import anchor_path, apply_retention, read_anchor
from aios.log.segments import Segment, list_segments
from aios.log.verify import verify_log
from aios.loop.maintenance import MaintenanceReport, run_maintenance
from aios.store import open_store
from aios.store.sync import read_state

NOW = datetime.now(UTC)
DAY = timedelta(days=1)


class Crash(BaseException):
    """The process dying at this point (nothing after it runs, no handler catches it)."""


@pytest.fixture
def small(home: HomePaths, monkeypatch: pytest.MonkeyPatch) -> HomePaths:
    """A home whose log rotates every 4 KiB (about six events a segment)."""
    monkeypatch.setenv("AIOS_LOG__SEGMENT_MAX_BYTES", "4096")
    return home


def write(days_ago: float, count: int, kind: str = "test.event") -> None:
    """``count`` events dated ``days_ago``, one append each."""
    bus = aios.bus()
    for n in range(count):
        event = Event.create(
            type=kind, time=NOW - days_ago * DAY, payload={"n": n, "pad": "x" * 400}
        )
        bus.publish([event])


def maintain(home: HomePaths, now: datetime = NOW) -> MaintenanceReport:
    return run_maintenance(aios.bus(), home, load_config(home), now=now)


def newest_by_segment(home: HomePaths) -> dict[int, datetime]:
    newest: dict[int, datetime] = {}
    for event, cursor in aios.bus().log.read():
        newest[cursor.segment] = max(newest.get(cursor.segment, event.time), event.time)
    return newest


def expired_prefix(home: HomePaths, cutoff: datetime) -> list[Segment]:
    """What retention should remove: the oldest segments with only events before ``cutoff``."""
    newest = newest_by_segment(home)
    segments = list_segments(home.events)
    out = []
    for segment in segments[:-1]:
        if newest[segment.seq] >= cutoff:
            break
        out.append(segment)
    return out


def line_count(segments: list[Segment]) -> int:
    return sum(s.path.read_bytes().count(b"\n") for s in segments)


def last_hash(segment: Segment) -> str:
    return check_line(segment.path.read_bytes().splitlines(keepends=True)[-1]).hash


def log_types(home: HomePaths) -> list[str]:
    return [e.type for e in aios.bus().log.events()]


def sync(home: HomePaths) -> None:
    with open_store(home):
        pass


# ------------------------------------------------------------------ retention


def test_retention_removes_old_segments_and_leaves_a_confirmed_anchor(small: HomePaths) -> None:
    write(200, 20)
    write(10, 20)
    doomed = expired_prefix(small, NOW - 90 * DAY)
    before = list_segments(small.events)
    assert len(doomed) >= 2 and len(before) > len(doomed) + 2
    removed_events = line_count(doomed)
    link = last_hash(doomed[-1])

    report = maintain(small)

    step = report.step("log_retention")
    assert step.result == "done"
    assert step.detail["removed_segments"] == [s.name for s in doomed]
    assert step.detail["removed_events"] == removed_events
    assert [s.name for s in list_segments(small.events)][: len(before) - len(doomed)] == [
        s.name for s in before[len(doomed) :]
    ]
    first = before[len(doomed)]
    anchor = orjson.loads(anchor_path(small.events).read_bytes())
    assert anchor["first_seq"] == first.seq and anchor["first_segment"] == first.name
    assert anchor["prev_hash"] == link
    assert (anchor["removed_events"], anchor["removed_segments"]) == (removed_events, len(doomed))
    recorded = [e for e in aios.bus().log.events() if e.type == "log.retention_applied"]
    assert len(recorded) == 1 and recorded[0].source == "aios.maintenance"
    assert {k: recorded[0].payload[k] for k in anchor} == anchor
    assert recorded[0].payload["segments"] == [s.name for s in doomed]

    verified = verify_log(small.events)
    assert verified.ok, verified.first_break
    assert any(first.name in note and "retention removed" in note for note in verified.notes)
    # Events in a segment that also holds recent ones stay; the store keeps every one.
    old_left = [e for e in aios.bus().log.events() if e.time < NOW - 90 * DAY]
    assert len(old_left) == 20 - removed_events
    with open_store(small) as con:
        assert con.execute("SELECT count(*) FROM events WHERE type = 'test.event'").fetchall() == [
            (40,)
        ]


def test_only_segments_the_store_has_applied_are_removed(small: HomePaths) -> None:
    write(200, 30)
    segments = list_segments(small.events)
    assert len(segments) >= 4
    log = aios.bus().log
    nothing = apply_retention(log, retention=90 * DAY, applied_below=0, now=NOW)
    assert nothing.removed == [] and not anchor_path(small.events).exists()
    some = apply_retention(log, retention=90 * DAY, applied_below=3, now=NOW)
    assert some.removed == [segments[0].name, segments[1].name]
    assert list_segments(small.events)[0] == segments[2]
    assert verify_log(small.events).ok


def test_the_newest_segment_stays_even_when_every_event_is_old(small: HomePaths) -> None:
    write(200, 30)
    segments = list_segments(small.events)
    report = maintain(small)
    kept = list_segments(small.events)
    assert report.step("log_retention").detail["removed_segments"] == [
        s.name for s in segments[:-1]
    ]
    assert kept[0] == segments[-1]
    # Its old events are still there, followed by the maintenance events.
    types = log_types(small)
    assert types.count("test.event") == line_count([segments[-1]])
    assert types[-2:] == ["log.retention_applied", "maintenance.completed"]
    assert verify_log(small.events).ok
    # A writer appends on after the removal, and the chain stays whole.
    write(0, 5)
    assert verify_log(small.events).ok


def test_retention_off_keeps_the_whole_log(small: HomePaths, monkeypatch) -> None:
    write(400, 20)
    monkeypatch.setenv("AIOS_MAINTENANCE__LOG_RETENTION", "off")
    before = list_segments(small.events)
    report = maintain(small)
    assert report.step("log_retention").result == "skipped"
    assert list_segments(small.events)[: len(before)] == before
    assert not anchor_path(small.events).exists()


def test_retention_accumulates_over_runs(small: HomePaths) -> None:
    write(300, 14)
    write(120, 14)
    write(1, 6)
    first_doomed = expired_prefix(small, NOW - 200 * DAY)
    second_doomed = expired_prefix(small, NOW - 90 * DAY)
    assert 0 < len(first_doomed) < len(second_doomed)
    removed_events = line_count(second_doomed)
    log = aios.bus().log
    sync(small)
    with open_store(small) as con:
        applied = read_state(con).segment
    apply_retention(log, retention=200 * DAY, applied_below=applied, now=NOW)
    assert verify_log(small.events).ok
    report = maintain(small)
    assert report.step("log_retention").detail["removed_segments"] == [
        s.name for s in second_doomed[len(first_doomed) :]
    ]
    anchor = read_anchor(small.events)
    assert anchor is not None
    assert anchor.removed_segments == len(second_doomed)
    assert anchor.removed_events == removed_events
    assert log_types(small).count("log.retention_applied") == 2
    assert verify_log(small.events).ok


# ------------------------------------------------------ verify after retention


@pytest.fixture
def retained(small: HomePaths) -> HomePaths:
    """A log that retention has shortened: four or more segments left."""
    write(200, 20)
    write(5, 30)
    report = maintain(small)
    assert report.step("log_retention").detail["removed_segments"]
    assert len(list_segments(small.events)) >= 4
    assert verify_log(small.events).ok
    return small


def test_verify_still_detects_a_segment_deleted_by_hand(retained: HomePaths) -> None:
    kept = list_segments(retained.events)
    kept[0].path.unlink()
    report = verify_log(retained.events)
    assert not report.ok and report.first_break is not None
    assert report.first_break.kind == "missing_segment"
    assert report.first_break.segment == kept[1].name
    assert f"segments {kept[0].seq} to {kept[0].seq}" in report.first_break.detail


def test_verify_still_detects_a_segment_deleted_in_the_middle(retained: HomePaths) -> None:
    kept = list_segments(retained.events)
    kept[1].path.unlink()
    report = verify_log(retained.events)
    assert report.first_break is not None and report.first_break.kind == "missing_segment"
    assert report.first_break.segment == kept[2].name


def test_verify_still_detects_a_modified_line_in_a_kept_segment(retained: HomePaths) -> None:
    segment = list_segments(retained.events)[1]
    data = segment.path.read_bytes()
    segment.path.write_bytes(data.replace(b'"n":', b'"m":', 1))
    report = verify_log(retained.events)
    assert report.first_break is not None
    assert (report.first_break.kind, report.first_break.segment, report.first_break.line) == (
        "modified",
        segment.name,
        1,
    )


def test_verify_without_the_anchor_reports_the_missing_segments(retained: HomePaths) -> None:
    first = list_segments(retained.events)[0]
    anchor_path(retained.events).unlink()
    report = verify_log(retained.events)
    assert report.first_break is not None and report.first_break.kind == "missing_segment"
    assert report.first_break.detail == f"segments 1 to {first.seq - 1} are missing"


@pytest.mark.parametrize(
    "change",
    [
        {"prev_hash": "ab" * 32},
        {"first_seq": 99, "first_segment": "00000099-20260101.jsonl"},
        {"first_seq": 1},
    ],
)
def test_verify_refuses_an_anchor_that_does_not_match(
    retained: HomePaths, change: dict[str, Any]
) -> None:
    path = anchor_path(retained.events)
    path.write_bytes(orjson.dumps({**orjson.loads(path.read_bytes()), **change}))
    report = verify_log(retained.events)
    assert report.first_break is not None and report.first_break.kind == "missing_segment"


def test_verify_refuses_a_forged_anchor_that_the_chain_does_not_record(
    small: HomePaths,
) -> None:
    write(200, 30)
    sync(small)
    segments = list_segments(small.events)
    # Deleted by hand, with an anchor written to match the first remaining line.
    for segment in segments[:2]:
        segment.path.unlink()
    first = segments[2]
    forged = {
        "first_seq": first.seq,
        "first_segment": first.name,
        "prev_hash": check_line(first.path.read_bytes().splitlines(keepends=True)[0]).prev_hash,
        "removed_events": 12,
        "removed_segments": 2,
        "applied_at": "2026-01-01T00:00:00Z",
    }
    anchor_path(small.events).write_bytes(orjson.dumps(forged))
    report = verify_log(small.events)
    assert report.first_break is not None and report.first_break.kind == "missing_segment"
    assert "no log.retention_applied event" in report.first_break.detail
    # Retention will not build on it either: nothing more is removed, and it says why.
    maintained = maintain(small)
    assert "log_retention" in maintained.failed_steps
    assert "events.anchor" in maintained.step("log_retention").summary
    assert list_segments(small.events)[0] == first


def test_retention_refuses_to_remove_a_segment_that_was_tampered_with(small: HomePaths) -> None:
    write(200, 30)
    sync(small)
    segments = list_segments(small.events)
    data = segments[1].path.read_bytes()
    segments[1].path.write_bytes(data.replace(b'"n":', b'"m":', 1))
    with open_store(small) as con:
        applied = read_state(con).segment
    with pytest.raises(LogIntegrityError, match=segments[1].name):
        apply_retention(aios.bus().log, retention=90 * DAY, applied_below=applied, now=NOW)
    assert list_segments(small.events) == segments


# ----------------------------------------------------------------- readers


def test_readers_continue_at_the_first_kept_segment(small: HomePaths) -> None:
    write(200, 20)
    write(5, 20)
    log = aios.bus().log
    positions = [(e.id, c) for e, c in log.read()]
    old_cursor = positions[1][1]  # inside the first segment, which retention removes
    report = maintain(small)
    removed = {s.split("-")[0] for s in report.step("log_retention").detail["removed_segments"]}
    assert f"{old_cursor.segment:08d}" in removed
    first = list_segments(small.events)[0]
    kept_ids = [i for i, c in positions if c.segment >= first.seq]
    from_start = [e.id for e in log.events()]
    assert from_start[: len(kept_ids)] == kept_ids
    assert [e.id for e in log.events(cursor=old_cursor)] == from_start
    assert [e.id for e in log.events(cursor=Cursor.parse(str(old_cursor)))] == from_start
    inside = next(c for i, c in positions if c.segment == first.seq + 1)
    after_inside = [i for i, c in positions if c > inside]
    assert [e.id for e in log.events(cursor=inside)][: len(after_inside)] == after_inside
    assert [e.id for e in log.newest_first()] == from_start[::-1]
    assert log.end().segment == list_segments(small.events)[-1].seq


def test_a_new_store_is_built_from_the_kept_log(small: HomePaths) -> None:
    write(200, 20)
    write(5, 20)
    maintain(small)
    kept = sum(1 for _ in aios.bus().log.events())
    small.duckdb.unlink()
    with open_store(small) as con:
        assert con.execute("SELECT count(*) FROM events").fetchall() == [(kept,)]


def test_verify_running_while_retention_removes_segments_still_passes(small: HomePaths) -> None:
    write(200, 30)
    write(1, 6)
    sync(small)
    with open_store(small) as con:
        applied = read_state(con).segment
    removed: list[str] = []

    def retention_meanwhile(done: int, total: int) -> None:
        if not removed:  # after the first segment was read, before the next is opened
            removed.extend(
                apply_retention(
                    aios.bus().log, retention=90 * DAY, applied_below=applied, now=NOW
                ).removed
            )

    report = verify_log(small.events, progress=retention_meanwhile)
    assert len(removed) >= 3
    assert report.ok, report.first_break
    assert report.events == sum(1 for _ in aios.bus().log.events())


# ------------------------------------------------------------ crash safety


@pytest.mark.parametrize("crash_at", ["before_anchor", 0, 1, 2])
def test_a_crash_during_retention_leaves_a_log_that_verifies_and_the_next_run_finishes(
    small: HomePaths, monkeypatch: pytest.MonkeyPatch, crash_at: str | int
) -> None:
    write(200, 24)
    write(1, 12)
    doomed = expired_prefix(small, NOW - 90 * DAY)
    assert len(doomed) >= 3
    expected_events = line_count(doomed)
    real_remove = retention_module._remove

    def write_then_crash(path: Path, data: bytes, **kw: Any) -> None:
        raise Crash

    def remove_then_crash(directory: Path, segments: list[Segment], result: Any) -> None:
        if segments:
            real_remove(directory, segments[: int(crash_at)], result)
            raise Crash
        real_remove(directory, segments, result)

    if crash_at == "before_anchor":
        monkeypatch.setattr(retention_module, "write_atomic", write_then_crash)
    else:
        monkeypatch.setattr(retention_module, "_remove", remove_then_crash)
    with pytest.raises(Crash):
        maintain(small)
    monkeypatch.setattr(retention_module, "write_atomic", write_atomic)
    monkeypatch.setattr(retention_module, "_remove", real_remove)

    # The interrupted state: intact, and readable from the start.
    interrupted = verify_log(small.events)
    assert interrupted.ok, interrupted.first_break
    left = list_segments(small.events)
    if crash_at == "before_anchor":
        assert left[0].seq == 1 and not anchor_path(small.events).exists()
    else:
        assert left[0] == doomed[int(crash_at)]
        # A log still starting at segment 1 is checked from the genesis hash, anchor or not.
        leftover_noted = any("interrupted retention" in note for note in interrupted.notes)
        assert leftover_noted == (left[0].seq != 1)
    assert sum(1 for _ in aios.bus().log.events()) == interrupted.events

    report = maintain(small)
    step = report.step("log_retention")
    assert step.result == "done", step.summary
    if crash_at != "before_anchor":
        assert step.detail["resumed"] == [s.name for s in doomed[int(crash_at) :]]
    assert list_segments(small.events)[0].seq == doomed[-1].seq + 1
    anchor = read_anchor(small.events)
    assert anchor is not None
    assert (anchor.removed_segments, anchor.removed_events) == (len(doomed), expected_events)
    assert verify_log(small.events).ok


# ---------------------------------------------------------------- the store


def test_checkpoint_reports_the_store_size(home: HomePaths) -> None:
    write(0, 50)
    report = maintain(home)
    step = report.step("checkpoint")
    assert step.result == "done"
    assert step.detail["bytes_before"] > 0 and step.detail["bytes_after"] > 0
    assert not home.duckdb.with_name("aios.duckdb.wal").exists()


def test_snapshots_are_daily_complete_and_pruned(
    home: HomePaths, monkeypatch: pytest.MonkeyPatch
) -> None:
    home.config.write_text('[score]\npreset = "ops"\n')
    write(0, 10)
    first = maintain(home, now=NOW)
    step = first.step("snapshot")
    assert step.result == "done" and step.detail["files"] == ["aios.duckdb", "config.toml"]
    root = home.backups / "snapshots"
    taken = root / step.detail["taken"]
    assert taken.name == NOW.strftime("%Y%m%dT%H%M%SZ")
    assert (taken / "config.toml").read_text() == home.config.read_text()
    with open_store(home) as con:
        stored = con.execute("SELECT count(*) FROM events").fetchall()[0][0]
    copy = duckdb.connect(str(taken / "aios.duckdb"), read_only=True)
    try:
        # Everything the store had when the copy was made (the run's own final event after).
        assert copy.execute("SELECT count(*) FROM events").fetchall()[0][0] == stored - 1
        assert copy.execute("SELECT max(seq) FROM events").fetchall()[0][0] == stored - 1
    finally:
        copy.close()

    again = maintain(home, now=NOW + timedelta(hours=1))
    assert again.step("snapshot").result == "skipped"
    assert [p.name for p in root.iterdir()] == [taken.name]

    monkeypatch.setenv("AIOS_MAINTENANCE__KEEP_SNAPSHOTS", "2")
    for days in (1, 2, 3):
        maintain(home, now=NOW + days * DAY)
    names = sorted(p.name for p in root.iterdir())
    assert names == [(NOW + d * DAY).strftime("%Y%m%dT%H%M%SZ") for d in (2, 3)]


def test_an_unfinished_snapshot_copy_is_cleared_and_taken_again(home: HomePaths) -> None:
    root = home.backups / "snapshots"
    stale = root / ".20260101T000000Z.tmp"
    stale.mkdir(parents=True)
    (stale / "aios.duckdb").write_bytes(b"half a copy")
    report = maintain(home)
    assert not stale.exists()
    assert [p.name for p in root.iterdir()] == [report.step("snapshot").detail["taken"]]


# ------------------------------------------------------- backups and trash


def test_remediation_backups_of_old_finished_remediations_are_pruned(home: HomePaths) -> None:
    bus = aios.bus()

    def remediation(rid: str, started_days: float, finished_days: float | None) -> None:
        bus.emit(
            "remediation.started",
            {"remediation_id": rid},
            source="aios.reactor",
            time=NOW - started_days * DAY,
        )
        if finished_days is not None:
            bus.emit(
                "remediation.finished",
                {"remediation_id": rid, "outcome": "succeeded"},
                source="aios.reactor",
                time=NOW - finished_days * DAY,
            )

    remediation("old-finished", 41, 40)
    remediation("recent-finished", 6, 5)
    remediation("never-finished", 60, None)
    # Someone else claiming a remediation finished is not believed.
    bus.emit("remediation.finished", {"remediation_id": "never-finished"}, source="app")
    for name in ("old-finished", "recent-finished", "never-finished", "stray-old", "stray-new"):
        (home.backups / name).mkdir(parents=True)
        (home.backups / name / "0-app.yaml").write_text("original\n")
    forty_days = time.time() - 40 * 86400
    os.utime(home.backups / "stray-old", (forty_days, forty_days))

    report = maintain(home)

    step = report.step("backups")
    assert step.result == "done"
    assert sorted(step.detail["removed"]) == ["old-finished", "stray-old"]
    assert step.detail["unfinished"] == ["never-finished"]
    assert sorted(p.name for p in home.backups.iterdir()) == [
        "never-finished",
        "recent-finished",
        "snapshots",
        "stray-new",
    ]


def test_trash_past_its_retention_is_purged(home: HomePaths) -> None:
    trash = home.root / "trash"
    for name in ("old", "new"):
        (trash / name / "0").mkdir(parents=True)
    week_ago = time.time() - 8 * 86400
    os.utime(trash / "old", (week_ago, week_ago))
    report = maintain(home)
    assert report.step("trash").detail["purged"] == 1
    assert [p.name for p in trash.iterdir()] == ["new"]


# ------------------------------------------------------------- failures


def test_a_failing_step_is_recorded_and_the_others_still_run(home: HomePaths) -> None:
    write(200, 3)
    home.duckdb.write_bytes(b"this is not a database" * 100)
    (home.backups / "kept").mkdir(parents=True)
    (home.root / "trash" / "old").mkdir(parents=True)
    long_ago = time.time() - 30 * 86400
    os.utime(home.root / "trash" / "old", (long_ago, long_ago))

    report = maintain(home)

    failing = ["log_retention", "checkpoint", "snapshot", "backups"]
    assert report.failed_steps == failing
    assert str(home.duckdb) in report.step("checkpoint").summary
    assert report.step("trash").result == "done" and report.step("trash").detail["purged"] == 1
    assert (home.backups / "kept").exists()
    rows = dict((step, result) for step, result, _ in report.rows())
    assert rows == {**dict.fromkeys(failing, "failed"), "trash": "done"}
    events = list(aios.bus().log.events())
    failed = [e for e in events if e.type == "maintenance.step_failed"]
    assert [e.labels["step"] for e in failed] == failing
    completed = events[-1]
    assert completed.type == "maintenance.completed" and completed.source == "aios.maintenance"
    assert completed.severity == "medium"
    assert completed.payload["failed_steps"] == failing
    assert completed.payload["steps"]["trash"]["purged"] == 1
    assert verify_log(home.events).ok


def test_the_completed_event_says_what_each_step_did(small: HomePaths) -> None:
    write(200, 20)
    write(1, 6)
    report = maintain(small)
    assert report.failed_steps == []
    completed = report.emitted[-1]
    assert completed.type == "maintenance.completed" and completed.severity == "info"
    steps = completed.payload["steps"]
    assert list(steps) == ["log_retention", "checkpoint", "snapshot", "backups", "trash"]
    assert (
        steps["log_retention"]["removed_segments"]
        == report.to_dict()["steps"]["log_retention"]["removed_segments"]
    )
    assert steps["snapshot"]["files"] == ["aios.duckdb"]
    assert [row[0] for row in report.rows()] == list(steps)
    assert all(isinstance(detail, str) and detail for _, _, detail in report.rows())


# ------------------------------------------------------------- configuration


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('[maintenance]\nlog_retention = "ninety days"\n', "maintenance.log_retention"),
        ("[maintenance]\nkeep_snapshots = 0\n", "maintenance.keep_snapshots"),
        ('[maintenance]\nbackup_retention = "off"\n', "maintenance.backup_retention"),
        ("[maintenance]\nkeep = 3\n", "maintenance.keep"),
    ],
)
def test_maintenance_config_errors_name_the_key(home: HomePaths, text: str, key: str) -> None:
    home.config.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(home)
    assert info.value.key == key
    assert info.value.line == 2


@pytest.mark.parametrize(
    ("value", "days"), [("off", None), ("0", None), ("never", None), ("30d", 30)]
)
def test_log_retention_is_a_duration_or_off(
    home: HomePaths, monkeypatch: pytest.MonkeyPatch, value: str, days: int | None
) -> None:
    monkeypatch.setenv("AIOS_MAINTENANCE__LOG_RETENTION", value)
    retention = load_config(home).maintenance.log_retention
    assert retention == (None if days is None else days * DAY)


def test_a_bad_maintenance_override_names_the_variable(
    home: HomePaths, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIOS_MAINTENANCE__BACKUP_RETENTION", "soon")
    with pytest.raises(ConfigError, match="AIOS_MAINTENANCE__BACKUP_RETENTION"):
        load_config(home)


def test_maintenance_defaults(home: HomePaths) -> None:
    settings = load_config(home).maintenance
    assert settings.log_retention == 90 * DAY
    assert settings.backup_retention == 30 * DAY
    assert settings.keep_snapshots == 3


def test_a_copied_home_keeps_verifying(retained: HomePaths, tmp_path: Path) -> None:
    # The anchor travels beside the log: a backup of the home verifies on its own.
    copy = tmp_path / "copy"
    shutil.copytree(retained.root, copy)
    assert verify_log(copy / "events").ok
