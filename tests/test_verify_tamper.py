"""Tampering with the log on disk: every edit, deletion, swap and insertion is found where it is."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from aios.event import Event
from aios.log import EventLog
from aios.log.line_format import canonical_body, check_line, seal
from aios.log.segments import Segment, list_segments
from aios.log.verify import verify_log


@pytest.fixture
def tampered_home(tmp_path: Path) -> Iterator[tuple[Path, list[Segment], dict[Path, bytes]]]:
    """A log of 3+ segments (60 events in batches of 1 to 4); yields it and its pristine bytes."""
    directory = tmp_path / "events"
    log = EventLog(directory, segment_max_bytes=8 * 1024)
    rng = random.Random(7)
    written = 0
    while written < 60:
        size = rng.randint(1, 4)
        log.append(
            [
                Event.create(type="test.event", payload={"n": written + i, "pad": "x" * 40})
                for i in range(size)
            ]
        )
        written += size
    log.close()
    segments = list_segments(directory)
    assert len(segments) >= 3
    pristine = {s.path: s.path.read_bytes() for s in segments}
    assert verify_log(directory).ok
    yield directory, segments, pristine


def restore(pristine: dict[Path, bytes]) -> None:
    for path, data in pristine.items():
        path.write_bytes(data)


def line_of(data: bytes, position: int) -> int:
    return data.count(b"\n", 0, position) + 1


def test_random_byte_edits_are_found_at_their_line(tampered_home) -> None:
    directory, segments, pristine = tampered_home
    rng = random.Random(2026)
    for _trial in range(400):
        segment = rng.choice(segments)
        data = pristine[segment.path]
        position = rng.randrange(len(data))
        new_byte = rng.choice([b for b in range(256) if b != data[position]])
        segment.path.write_bytes(data[:position] + bytes([new_byte]) + data[position + 1 :])
        report = verify_log(directory)
        assert not report.ok, f"edit at {segment.name}:{position} not detected"
        assert report.first_break is not None
        assert report.first_break.segment == segment.name
        assert report.first_break.line == line_of(data, position), (position, report.first_break)
        restore(pristine)
    assert verify_log(directory).ok


def test_deleted_lines_break_the_chain_where_they_were(tampered_home) -> None:
    directory, segments, pristine = tampered_home
    for segment in segments:
        lines = pristine[segment.path].splitlines(keepends=True)
        for index in range(len(lines)):
            segment.path.write_bytes(b"".join(lines[:index] + lines[index + 1 :]))
            report = verify_log(directory)
            assert not report.ok and report.first_break is not None
            last_of_log = segment is segments[-1] and index == len(lines) - 1
            if last_of_log and check_line(lines[index - 1]).commit:
                assert report.first_break.kind == "truncated"  # only HEAD can tell
            elif last_of_log:
                assert report.first_break.kind == "torn_tail"
                assert report.first_break.line == index + 1
            elif index == len(lines) - 1 and check_line(lines[index - 1]).commit:
                # The next segment's first line no longer follows on.
                following = segments[segments.index(segment) + 1]
                assert (report.first_break.segment, report.first_break.line) == (following.name, 1)
                assert report.first_break.kind == "chain"
            elif index == len(lines) - 1:
                # The segment now ends inside a batch: found where its commit line was.
                assert (report.first_break.segment, report.first_break.line) == (
                    segment.name,
                    index + 1,
                )
                assert report.first_break.kind == "torn_tail"
            else:
                assert (report.first_break.segment, report.first_break.line) == (
                    segment.name,
                    index + 1,
                )
                assert report.first_break.kind == "chain"
            restore(pristine)


def test_swapped_lines_are_found_at_the_first_of_the_pair(tampered_home) -> None:
    directory, segments, pristine = tampered_home
    for segment in segments:
        lines = pristine[segment.path].splitlines(keepends=True)
        for index in range(len(lines) - 1):
            swapped = list(lines)
            swapped[index], swapped[index + 1] = swapped[index + 1], swapped[index]
            segment.path.write_bytes(b"".join(swapped))
            report = verify_log(directory)
            assert report.first_break is not None
            assert (report.first_break.segment, report.first_break.line) == (
                segment.name,
                index + 1,
            )
            restore(pristine)


def test_inserted_lines_are_found(tampered_home) -> None:
    directory, segments, pristine = tampered_home
    rng = random.Random(11)
    segment = segments[1]
    lines = pristine[segment.path].splitlines(keepends=True)
    for index in rng.sample(range(1, len(lines)), min(10, len(lines) - 1)):
        # A copy of another line of the log.
        copy = rng.choice(pristine[segments[0].path].splitlines(keepends=True))
        segment.path.write_bytes(b"".join([*lines[:index], copy, *lines[index:]]))
        report = verify_log(directory)
        assert report.first_break is not None
        assert (report.first_break.segment, report.first_break.line) == (segment.name, index + 1)
        # A forged line that is properly chained to the line before it: the chain then
        # breaks at the line after it, which no longer follows on.
        prev_hash = check_line(lines[index - 1]).hash
        forged, _ = seal(canonical_body(Event.create(type="forged.event")), prev_hash, True)
        assert check_line(forged).ok
        segment.path.write_bytes(b"".join([*lines[:index], forged, *lines[index:]]))
        report = verify_log(directory)
        assert report.first_break is not None
        assert (report.first_break.segment, report.first_break.line) == (segment.name, index + 2)
        restore(pristine)


def test_a_deleted_middle_segment_is_named(tampered_home) -> None:
    directory, segments, pristine = tampered_home
    segments[1].path.unlink()
    report = verify_log(directory)
    assert report.first_break is not None
    assert report.first_break.kind == "missing_segment"
    assert (report.first_break.segment, report.first_break.line) == (segments[2].name, 1)
    restore(pristine)
    segments[0].path.unlink()
    report = verify_log(directory)
    assert report.first_break is not None and report.first_break.kind == "missing_segment"


def test_truncation_is_found(tampered_home) -> None:
    directory, segments, pristine = tampered_home
    newest = segments[-1]
    data = pristine[newest.path]
    lines = data.splitlines(keepends=True)
    # Whole lines cut from the end: only HEAD can tell, and it does.
    newest.path.write_bytes(b"".join(lines[:-2]))
    report = verify_log(directory)
    assert report.first_break is not None and report.first_break.kind == "truncated"
    assert report.first_break.segment == newest.name
    # Cut in the middle of a line: a torn tail at that line.
    cut = len(b"".join(lines[:-1])) + 30
    newest.path.write_bytes(data[:cut])
    report = verify_log(directory)
    assert report.first_break is not None and report.first_break.kind == "torn_tail"
    assert report.first_break.line == len(lines)
    # The newest segment removed altogether.
    newest.path.unlink()
    report = verify_log(directory)
    assert report.first_break is not None and report.first_break.kind == "truncated"
    restore(pristine)
    assert verify_log(directory).ok
