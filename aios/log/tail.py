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
    """Find the last intact batch in ``data``, the bytes of a segment from ``read_at`` to its end.

    The last batch counts as committed only if every one of its lines matches its hash and
    links to the line before (a crash can persist a batch's last page and lose an earlier
    one). ``need_more`` asks for a window reaching further back; ``last_hash`` is None when
    the segment holds no committed line at all.
    """
    size = len(data)
    cut = data.rfind(b"\n") + 1
    torn = cut < size
    spans = _line_spans(data, cut)
    if read_at > 0 and spans and spans[0][0] == 0:
        spans = spans[1:]  # the first line may begin before the window
    skipped, unreadable = 0, False
    index = len(spans) - 1
    while index >= 0:
        start, end = spans[index]
        check = check_line(data[start:end])
        if check.ok and check.commit:
            first = _batch_start(data, spans, index)
            if first is None:
                if read_at > 0:
                    return TailScan(read_at, None, None, need_more=True)
                first = 0  # the batch starts the segment
            if first >= 0:
                if end == size:
                    return TailScan(read_at + end, check.hash, None)
                reason = _reason(torn, skipped, unreadable)
                return TailScan(
                    read_at + end, check.hash, BadTail(read_at + end, data[end:], skipped, reason)
                )
            # A damaged batch: everything after the batch before it is set aside.
            unreadable = True
            skipped += 1
            index -= 1
            continue
        unreadable = unreadable or not check.ok
        skipped += 1
        index -= 1
    if read_at > 0:
        return TailScan(read_at, None, None, need_more=True)
    if size == 0:
        return TailScan(0, None, None)
    return TailScan(0, None, BadTail(0, data, skipped, _reason(torn, skipped, unreadable)))


def _line_spans(data: bytes, cut: int) -> list[tuple[int, int]]:
    spans, start = [], 0
    while start < cut:
        end = data.index(b"\n", start) + 1
        spans.append((start, end))
        start = end
    return spans


def _batch_start(data: bytes, spans: list[tuple[int, int]], last: int) -> int | None:
    """Check the batch ending at line ``last``: its first line's index if intact, -1 if damaged,
    None if it reaches the start of ``data`` (its beginning may lie before the window)."""
    later = check_line(data[slice(*spans[last])])
    index = last - 1
    while index >= 0:
        check = check_line(data[slice(*spans[index])])
        if not check.ok or check.hash != later.prev_hash:
            return -1
        if check.commit:
            return index + 1  # the previous batch's commit line links to this batch
        later = check
        index -= 1
    return None


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
