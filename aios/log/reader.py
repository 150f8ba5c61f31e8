"""Reading the event log: committed lines only, from a cursor, forwards or newest first.

Readers take no lock. A batch becomes visible when its commit line is on disk; anything after
the last commit line of the newest segment (a batch being written, or a crashed writer's
leftovers) is not yet part of the log and is never returned.
"""

from __future__ import annotations

import os
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path

from aios.errors import InputError, LogIntegrityError
from aios.event import Event
from aios.event_filter import EventFilter
from aios.log.line_format import HASH_TAIL, is_commit_line, line_links, parse_line
from aios.log.segments import Segment, list_segments
from aios.log.tail import scan_path

_CHUNK = 4 * 1024 * 1024


@dataclass(frozen=True, order=True)
class Cursor:
    """A position in the log: a segment number and a byte offset in it. ``str`` round-trips."""

    segment: int = 0
    offset: int = 0

    def __str__(self) -> str:
        return f"{self.segment}:{self.offset}"

    @classmethod
    def parse(cls, text: str) -> Cursor:
        try:
            segment, offset = text.split(":")
            cursor = cls(int(segment), int(offset))
        except ValueError:
            raise InputError(f"not a log cursor: {text!r} (expected SEGMENT:OFFSET)") from None
        if cursor.segment < 0 or cursor.offset < 0:
            raise InputError(f"not a log cursor: {text!r} (negative)")
        return cursor


START = Cursor(0, 0)


@dataclass(frozen=True, slots=True)
class RawLine:
    """One committed line as stored, with where it is and the cursor just after it."""

    data: bytes
    segment: Segment
    offset: int
    line_no: int

    @property
    def after(self) -> Cursor:
        return Cursor(self.segment.seq, self.offset + len(self.data))


def committed_lines(
    segment: Segment, offset: int = 0, *, last: bool = True, line_no: int | None = None
) -> Iterator[RawLine]:
    """Committed lines of ``segment`` from byte ``offset`` (which must start a line).

    In the newest segment (``last``) reading stops before an unfinished batch. Every line must
    link to the one before it (its ``prev_hash``); if the newest segment changes under the
    reader (a writer setting aside a crashed tail), reading resumes after the last line it
    returned. Raises LogIntegrityError for a cursor that does not start a line, and for a
    broken link in a closed segment (run ``aios events verify``). ``line_no`` numbers lines
    from 1 at the segment's start; when unknown (``offset`` > 0) it is 0.
    """
    number = line_no if line_no is not None else (1 if offset == 0 else 0)
    try:
        fd = os.open(segment.path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return
    try:
        prev = _hash_before(fd, offset, segment)
        for _attempt in range(5):
            progress = yield from _read_from(fd, segment, offset, number, prev, last)
            if progress is None:
                return
            offset, number, prev = progress  # the file changed under us: resume
        raise LogIntegrityError("the segment keeps changing while it is read", segment=segment.name)
    finally:
        os.close(fd)


def _hash_before(fd: int, offset: int, segment: Segment) -> bytes | None:
    """The hash of the line ending at ``offset`` (None at the start of the segment)."""
    if offset == 0:
        return None
    size = os.fstat(fd).st_size
    if offset > size:
        raise LogIntegrityError(
            f"cursor at byte {offset} is past the end ({size} bytes): the log was truncated",
            segment=segment.name,
        )
    before = os.pread(fd, HASH_TAIL, offset - HASH_TAIL) if offset >= HASH_TAIL else b""
    if not before.endswith(b'"}\n'):
        raise LogIntegrityError(
            f"cursor at byte {offset} does not start a line", segment=segment.name
        )
    return line_links(before)[1]


def _read_from(
    fd: int, segment: Segment, offset: int, number: int, prev: bytes | None, last: bool
) -> Generator[RawLine, None, tuple[int, int, bytes | None] | None]:
    """Yield committed lines from ``offset``; return where to resume if the file changed."""
    end = os.fstat(fd).st_size
    pos = offset
    carry = b""
    pending: list[RawLine] = []
    resume = (offset, number, prev)
    link = prev
    while pos < end:
        chunk = os.pread(fd, min(_CHUNK, end - pos), pos)
        if not chunk:
            break
        base = pos - len(carry)
        data = carry + chunk if carry else chunk
        pos += len(chunk)
        start = 0
        while True:
            nl = data.find(b"\n", start)
            if nl < 0:
                break
            raw = RawLine(data[start : nl + 1], segment, base + start, number)
            start = nl + 1
            if number:
                number += 1
            before, own = line_links(raw.data)
            if link is not None and before != link:
                if last:
                    return resume  # spliced by a concurrent repair: read again
                raise LogIntegrityError(
                    f"line at byte {raw.offset} does not follow the line before it "
                    "(run `aios events verify`)",
                    segment=segment.name,
                )
            link = own
            pending.append(raw)
            if is_commit_line(raw.data):
                yield from pending
                pending = []
                resume = (raw.offset + len(raw.data), number, own)
        carry = data[start:]
    return None


def iter_raw(directory: Path, cursor: Cursor = START) -> Iterator[RawLine]:
    """Committed lines of the whole log after ``cursor``, oldest first."""
    segments = list_segments(directory)
    for index, segment in enumerate(segments):
        if segment.seq < cursor.segment:
            continue
        offset = cursor.offset if segment.seq == cursor.segment else 0
        yield from committed_lines(segment, offset, last=index == len(segments) - 1)


def _event_of(raw: RawLine) -> Event:
    return parse_line(raw.data, segment=raw.segment.name, line_no=raw.line_no, offset=raw.offset)


def read_events(
    directory: Path, flt: EventFilter | None = None, cursor: Cursor = START
) -> Iterator[tuple[Event, Cursor]]:
    """Events after ``cursor`` that pass ``flt``, each with the cursor to resume after it."""
    for raw in iter_raw(directory, cursor):
        if flt is not None and not flt.might_match(raw.data):
            continue
        event = _event_of(raw)
        if flt is None or flt.matches(event):
            yield event, raw.after


def read_newest_first(directory: Path, flt: EventFilter | None = None) -> Iterator[Event]:
    """Events that pass ``flt``, newest first (for ``tail``)."""
    segments = list_segments(directory)
    for index in range(len(segments) - 1, -1, -1):
        lines = list(committed_lines(segments[index], last=index == len(segments) - 1))
        for raw in reversed(lines):
            if flt is not None and not flt.might_match(raw.data):
                continue
            event = _event_of(raw)
            if flt is None or flt.matches(event):
                yield event


def end_cursor(directory: Path) -> Cursor:
    """The cursor after the last committed line (a follower starting here sees only new events)."""
    segments = list_segments(directory)
    if not segments:
        return START
    return Cursor(segments[-1].seq, scan_path(segments[-1].path).committed_end)
