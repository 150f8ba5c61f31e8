"""Finding the committed end of a segment and what lies after it (torn or unfinished batches)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from aios.log.line_format import check_line

_TAIL_WINDOW = 64 * 1024


@dataclass(frozen=True)
class BadTail:
    """Bytes after the last committed line of a segment: a torn line or an unfinished batch."""

    offset: int
    data: bytes
    complete_lines: int
    reason: str


@dataclass(frozen=True)
class TailScan:
    """Where the committed part of a segment ends, and what lies after it."""

    committed_end: int
    last_hash: str | None
    bad: BadTail | None
    need_more: bool = False


def scan_tail(read_at: int, data: bytes) -> TailScan:
    """Find the last committed line in ``data``, the bytes of a segment from ``read_at`` to its end.

    ``need_more`` asks for a window reaching further back (no committed line was found and
    ``data`` does not start at the beginning of the file). ``last_hash`` is None when the
    segment holds no committed line at all.
    """
    size = len(data)
    cut = data.rfind(b"\n") + 1
    torn = cut < size
    pos, skipped, unreadable = cut, 0, False
    while pos > 0:
        start = data.rfind(b"\n", 0, pos - 1) + 1
        if start == 0 and read_at > 0:
            return TailScan(read_at, None, None, need_more=True)
        check = check_line(data[start:pos])
        if check.ok and check.commit:
            if pos == size:
                return TailScan(read_at + pos, check.hash, None)
            return TailScan(
                read_at + pos,
                check.hash,
                BadTail(read_at + pos, data[pos:], skipped, _reason(torn, skipped, unreadable)),
            )
        unreadable = unreadable or not check.ok
        skipped += 1
        pos = start
    if size == 0:
        return TailScan(read_at, None, None)
    return TailScan(
        read_at, None, BadTail(read_at, data, skipped, _reason(torn, skipped, unreadable))
    )


def _reason(torn: bool, complete_lines: int, unreadable: bool) -> str:
    if unreadable:
        return "unreadable lines after the last committed line"
    if torn and complete_lines == 0:
        return "torn last line"
    if torn:
        return "unfinished batch ending in a torn line"
    return "unfinished batch (no commit line)"


def scan_fd(fd: int, size: int) -> TailScan:
    """Scan the end of an open segment, widening the window until a commit line is found."""
    window = _TAIL_WINDOW
    while True:
        start = max(0, size - window)
        scan = scan_tail(start, os.pread(fd, size - start, start))
        if not scan.need_more:
            return scan
        window *= 4


def scan_path(path: Path) -> TailScan:
    """``scan_fd`` for a segment file by path."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return scan_fd(fd, os.fstat(fd).st_size)
    finally:
        os.close(fd)
