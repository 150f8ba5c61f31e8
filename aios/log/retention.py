"""Log retention: remove whole old segments; ``events.anchor`` says where the log now starts.

A ``log.retention_applied`` event in the chain confirms each anchor, so ``verify`` can tell
retention from segments deleted by hand.
"""

from __future__ import annotations

import mmap
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from aios.atomic import write_atomic
from aios.durations import format_duration
from aios.errors import LogIntegrityError
from aios.event import Event
from aios.locking import file_lock
from aios.log.line_format import GENESIS_HASH, check_line, line_links
from aios.log.segments import Segment, list_segments
from aios.log.tail import scan_path
from aios.log.writer import AppendResult

if TYPE_CHECKING:
    from aios.log import EventLog

RETENTION_EVENT = "log.retention_applied"
RETENTION_SOURCE = "aios.maintenance"
# The event's type is its last key, right before the chain trailer (see verify's _TRUNCATED).
RETENTION_MARK = b',"type":"log.retention_applied","commit":'
_TIME_KEY = b',"time":"'


@dataclass(frozen=True)
class Anchor:
    """Where the log starts after retention, and how much retention removed so far."""

    first_seq: int
    first_segment: str
    prev_hash: str  # the hash of the last removed line: the first kept line links to it
    removed_events: int  # totals over every run
    removed_segments: int
    applied_at: str  # RFC 3339 UTC

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class RetentionResult:
    """What one run removed, and the anchor in force afterwards (None: the log is whole)."""

    removed: list[str] = field(default_factory=list)
    events: int = 0  # in the segments this run chose (leftovers were counted by their run)
    bytes: int = 0
    resumed: list[str] = field(default_factory=list)  # left by an interrupted run
    anchor: Anchor | None = None
    appended: AppendResult | None = None


def anchor_path(directory: Path) -> Path:
    """``events.anchor`` beside the log directory, like ``events.head``."""
    return directory.with_name(directory.name + ".anchor")


def read_anchor(directory: Path) -> Anchor | None:
    """The anchor of the log in ``directory``; None when there is none or it does not parse."""
    try:
        data = orjson.loads(anchor_path(directory).read_bytes())
        return Anchor(
            int(data["first_seq"]),
            str(data["first_segment"]),
            str(data["prev_hash"]),
            int(data["removed_events"]),
            int(data["removed_segments"]),
            str(data["applied_at"]),
        )
    except (OSError, orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None


def confirms(line: bytes, anchor: Anchor) -> bool:
    """Whether ``line`` is the ``log.retention_applied`` event that recorded ``anchor``."""
    if RETENTION_MARK not in line:
        return False
    try:
        record = orjson.loads(line)
    except orjson.JSONDecodeError:
        return False
    payload = record.get("payload") if isinstance(record, dict) else None
    return (
        isinstance(payload, dict)
        and record.get("source") == RETENTION_SOURCE
        and payload.get("first_seq") == anchor.first_seq
        and payload.get("first_segment") == anchor.first_segment
        and payload.get("prev_hash") == anchor.prev_hash
    )


def apply_retention(
    log: EventLog,
    *,
    retention: timedelta,
    applied_below: int,
    now: datetime | None = None,
) -> RetentionResult:
    """Remove the oldest segments whose newest event is older than ``retention``.

    Only segments with ``seq < applied_below`` (fully applied by the store) go, never the
    newest one holding events. Order, all under the writers' lock: the ``log.retention_applied``
    event, then the anchor, then the segments oldest first, so every intermediate state
    verifies and the next run finishes an interrupted one. Raises LogIntegrityError, removing
    nothing, when the part to remove does not verify or the log's start is unaccounted for.
    """
    at = now or datetime.now(UTC)
    cutoff = at - retention
    directory = log.directory
    result = RetentionResult()
    with file_lock(directory / ".lock"):
        segments = list_segments(directory)
        if not segments:
            return result
        anchor, leftovers = _in_force(directory, segments)
        result.anchor = anchor
        leftovers = [s for s in leftovers if s.seq < applied_below]
        _remove(directory, leftovers, result)
        result.resumed = [s.name for s in leftovers]
        kept = [s for s in segments if anchor is None or s.seq >= anchor.first_seq]
        if len(result.resumed) < len(segments) - len(kept):
            return result  # the store has not applied all of an interrupted run's leftovers
        start = anchor.prev_hash if anchor else GENESIS_HASH
        doomed, events, last_hash = _expired(kept, start, cutoff, applied_below)
        if not doomed:
            return result
        first = kept[len(doomed)]
        _check_link(first, kept[len(doomed) :], last_hash)
        new = Anchor(
            first.seq,
            first.name,
            last_hash,
            (anchor.removed_events if anchor else 0) + events,
            (anchor.removed_segments if anchor else 0) + len(doomed),
            at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        )
        payload = {
            **new.to_dict(),
            "segments": [s.name for s in doomed],
            "events": events,
            "retention": format_duration(retention),
            "cutoff": cutoff.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        }
        # The event first: an anchor on disk is always confirmed by the chain, and a crash
        # before the anchor leaves a log that still verifies against the previous one.
        event = Event.create(type=RETENTION_EVENT, source=RETENTION_SOURCE, payload=payload)
        result.appended = log.append([event])
        write_atomic(anchor_path(directory), orjson.dumps(new.to_dict()))
        result.anchor = new
        _remove(directory, doomed, result)
        result.events += events
    return result


def _in_force(directory: Path, segments: list[Segment]) -> tuple[Anchor | None, list[Segment]]:
    """The anchor that accounts for the log's start, and the segments below it still on disk.

    A log starting at segment 1 needs no anchor (a stale one is ignored); one starting later
    must have an anchor that the chain confirms, or retention would hide a hand deletion.
    """
    anchor = read_anchor(directory)
    problem = _anchor_problem(anchor, segments) if anchor else "there is no events.anchor"
    if problem is None:
        assert anchor is not None
        return anchor, [s for s in segments if s.seq < anchor.first_seq]
    if segments[0].seq == 1:
        return None, []
    raise LogIntegrityError(
        f"the log starts at segment {segments[0].seq} and {problem}: retention removes "
        "nothing until `aios events verify` passes",
        segment=segments[0].name,
    )


def _anchor_problem(anchor: Anchor, segments: list[Segment]) -> str | None:
    """Why ``anchor`` does not describe this log's start, or None when it does."""
    kept = [s for s in segments if s.seq >= anchor.first_seq]
    if not kept or kept[0].seq != anchor.first_seq or kept[0].name != anchor.first_segment:
        return f"events.anchor names {anchor.first_segment}, which is not in the log"
    below = [s for s in segments if s.seq < anchor.first_seq]
    if below and [s.seq for s in below] != list(range(below[0].seq, anchor.first_seq)):
        return "segments between the oldest one and events.anchor's are missing"
    for segment in reversed(below):
        last = scan_path(segment.path).last_hash
        if last is not None:
            if last != anchor.prev_hash:
                return "events.anchor's hash is not the one of the last line before it"
            break
    first_link = next((_first_prev_hash(s) for s in kept if s.path.stat().st_size), None)
    if first_link is not None and first_link != anchor.prev_hash:
        return "the first kept line does not link to events.anchor's hash"
    if not any(confirms(line, anchor) for line in _retention_lines(kept)):
        return "no log.retention_applied event in the log records events.anchor"
    return None


def _retention_lines(segments: list[Segment]) -> Iterator[bytes]:
    """Lines holding a ``log.retention_applied`` event, newest first (found by byte search)."""
    for segment in reversed(segments):
        with segment.path.open("rb") as handle:
            if os.fstat(handle.fileno()).st_size == 0:
                continue
            with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
                end = len(data)
                while (pos := data.rfind(RETENTION_MARK, 0, end)) >= 0:
                    start = data.rfind(b"\n", 0, pos) + 1
                    stop = data.find(b"\n", pos)
                    yield data[start : stop + 1 if stop >= 0 else len(data)]
                    end = start


def _first_prev_hash(segment: Segment) -> str | None:
    with segment.path.open("rb") as handle:
        line = handle.readline()
    return line_links(line)[0].decode("ascii", "replace") if line.endswith(b"\n") else None


def _expired(
    kept: list[Segment], start: str, cutoff: datetime, applied_below: int
) -> tuple[list[Segment], int, str]:
    """The oldest segments that may go, their event count and the hash of their last line.

    Each is checked line by line on the way: retention must never remove evidence of tampering.
    """
    # The newest segment holding a line stays, with all after it: a writer whose segment is
    # still empty takes its first prev_hash from the segment before.
    stay = next((i for i in range(len(kept) - 1, -1, -1) if scan_path(kept[i].path).last_hash), 0)
    doomed: list[Segment] = []
    events, expected = 0, start
    for segment in kept[:stay]:
        if segment.seq >= applied_below:
            break
        count, newest, last = _scan(segment, expected)
        if newest is not None and newest >= cutoff:
            break
        doomed.append(segment)
        events += count
        expected = last
    return doomed, events, expected


def _scan(segment: Segment, expected: str) -> tuple[int, datetime | None, str]:
    """Lines, newest event time and last hash of a closed segment whose chain starts at
    ``expected``; raises LogIntegrityError at the first line that does not verify."""
    count, newest, open_batch = 0, None, False
    with segment.path.open("rb") as handle:
        for number, line in enumerate(handle, start=1):
            check = check_line(line)
            if not line.endswith(b"\n") or not check.ok or check.prev_hash != expected:
                raise LogIntegrityError(
                    "this line does not verify: retention removes nothing until "
                    "`aios events verify` passes",
                    segment=segment.name,
                    line=number,
                )
            expected, open_batch, count = check.hash, not check.commit, number
            when = _line_time(line)
            if when is not None and (newest is None or when > newest):
                newest = when
    if open_batch:
        raise LogIntegrityError(
            "the segment ends inside a batch: retention removes nothing until "
            "`aios events verify` passes",
            segment=segment.name,
        )
    return count, newest, expected


def _line_time(line: bytes) -> datetime | None:
    """The event's own time: its last ``"time"`` key (only ``type`` and the trailer follow)."""
    at = line.rfind(_TIME_KEY)
    if at < 0:
        return None
    start = at + len(_TIME_KEY)
    try:
        return datetime.fromisoformat(line[start : line.index(b'"', start)].decode("ascii"))
    except (ValueError, UnicodeDecodeError):
        return None


def _check_link(first: Segment, kept: list[Segment], last_hash: str) -> None:
    """The first kept line must link to the last removed one, or the anchor would be wrong."""
    link = next((_first_prev_hash(s) for s in kept if s.path.stat().st_size), None)
    if link is not None and link != last_hash:
        raise LogIntegrityError(
            "the first line does not follow the segment before it: retention removes nothing "
            "until `aios events verify` passes",
            segment=first.name,
            line=1,
        )


def _remove(directory: Path, segments: list[Segment], result: RetentionResult) -> None:
    """Unlink ``segments`` oldest first, each made durable before the next (crash order)."""
    for segment in segments:
        size = segment.path.stat().st_size
        segment.path.unlink()
        _fsync_dir(directory)
        result.removed.append(segment.name)
        result.bytes += size


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
