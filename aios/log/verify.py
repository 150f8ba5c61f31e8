"""Walking the hash chain: find the first place where the log is not what its writers wrote.

Detected: a modified line (its content no longer matches its hash), a deleted, inserted or
reordered line (its ``prev_hash`` is not the hash of the line before), a missing segment, a torn
or unfinished tail, and truncation (the log ends before the point ``HEAD`` recorded, or a writer
found it so and recorded a ``log.truncated`` event). A log that retention shortened starts where
``events.anchor`` says, and only if a ``log.retention_applied`` event in the chain confirms it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from aios.locking import file_lock
from aios.log.head import Head, head_path, read_head
from aios.log.line_format import GENESIS_HASH, check_line
from aios.log.retention import Anchor, confirms, read_anchor
from aios.log.segments import Segment, list_segments
from aios.log.writer import head_problem

# The event's own type is its last key, right before the chain trailer; a payload holding the
# same words cannot produce this byte sequence.
_TRUNCATED = b',"type":"log.truncated","commit":'


@dataclass(frozen=True)
class ChainBreak:
    """The first problem found: where it is and what it is."""

    segment: str
    line: int
    kind: str  # modified | chain | malformed | missing_segment | torn_tail | truncated
    detail: str

    def __str__(self) -> str:
        return f"{self.segment} line {self.line}: {self.detail}"


@dataclass
class VerifyReport:
    """Outcome of ``verify``: ``ok`` with the counts, or the first break."""

    ok: bool
    events: int = 0
    segments: int = 0
    bytes: int = 0
    last_hash: str = GENESIS_HASH
    first_break: ChainBreak | None = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["first_break"] = asdict(self.first_break) if self.first_break else None
        return data


def verify_log(
    directory: Path, *, progress: Callable[[int, int], None] | None = None
) -> VerifyReport:
    """Check the whole chain in ``directory``; ``progress(bytes_done, bytes_total)`` if given.

    Safe on a live log: HEAD, the anchor, the segment list and their sizes are read together
    under the writers' lock, and only those bytes are checked (what is appended meanwhile is
    not). A segment that retention removes while it is being read starts the walk over.
    """
    for attempt in range(3):
        try:
            return _verify(directory, progress, last_attempt=attempt == 2)
        except _SegmentVanishedError:
            continue
    raise AssertionError("unreachable: the last attempt reports a vanished segment")


class _SegmentVanishedError(Exception):
    """A segment of the snapshot was removed before it could be read."""


def _verify(
    directory: Path, progress: Callable[[int, int], None] | None, *, last_attempt: bool
) -> VerifyReport:
    head, segments, sizes, anchor = _snapshot(directory)
    report = VerifyReport(ok=True, segments=len(segments))
    total = sum(sizes.values())
    expected: str | None = GENESIS_HASH
    start = segments[0] if segments else None
    if start is not None and start.seq != 1:
        problem = _start_problem(anchor, segments)
        if problem is not None:
            return _broken(report, start, 1, "missing_segment", problem)
        assert anchor is not None
        _anchor_notes(report, anchor, start)
        # Segments below the anchor are an interrupted retention's leftovers: their own start
        # is gone; the anchor's hash is where they must lead.
        expected = anchor.prev_hash if start.seq == anchor.first_seq else None
    else:
        anchor = None  # a log that starts at 1 is checked from the genesis hash alone
    link_pending = confirmed_pending = anchor is not None
    for index, segment in enumerate(segments):
        if index and segment.seq != segments[index - 1].seq + 1:
            return _broken(
                report,
                segment,
                1,
                "missing_segment",
                f"segment(s) {segments[index - 1].seq + 1} to {segment.seq - 1} before this one "
                "are missing",
            )
        last_segment = index == len(segments) - 1
        kept = anchor is None or segment.seq >= anchor.first_seq
        open_batch = False
        number = 0
        limit = sizes[segment.name]
        try:
            handle = segment.path.open("rb")
        except FileNotFoundError:
            if not last_attempt:
                raise _SegmentVanishedError from None
            return _broken(
                report, segment, 1, "missing_segment", "the segment was removed while verifying"
            )
        with handle:  # streamed: memory stays flat on big segments
            for number, body in enumerate(_lines_upto(handle, limit), start=1):
                if not body.endswith(b"\n"):
                    return _broken(
                        report,
                        segment,
                        number,
                        "torn_tail",
                        f"{len(body)} bytes of an incomplete line at the end (a crashed or cut "
                        "write; the next writer sets it aside, or run `aios events repair`)",
                    )
                check = check_line(body)
                if not check.ok:
                    kind = "modified" if check.hash else "malformed"
                    return _broken(report, segment, number, kind, check.problem)
                if link_pending and kept:
                    assert anchor is not None and start is not None
                    link_pending = False
                    if check.prev_hash != anchor.prev_hash:
                        return _broken(
                            report,
                            start,
                            1,
                            "missing_segment",
                            f"segments 1 to {start.seq - 1} are missing: the first line kept "
                            "after retention does not link to the hash events.anchor records",
                        )
                if expected is not None and check.prev_hash != expected:
                    return _broken(
                        report,
                        segment,
                        number,
                        "chain",
                        "prev_hash is not the hash of the line before: a line was deleted, "
                        "inserted or reordered here",
                    )
                if _TRUNCATED in body:
                    return _broken(
                        report,
                        segment,
                        number,
                        "truncated",
                        "a writer found the log shorter than HEAD recorded and logged "
                        "log.truncated here: committed events before this line were lost",
                    )
                if confirmed_pending and kept:
                    assert anchor is not None
                    confirmed_pending = not confirms(body, anchor)
                expected = check.hash
                open_batch = not check.commit
                report.events += 1
                report.bytes += len(body)
                if progress is not None and number % 65536 == 0:
                    progress(report.bytes, total)
        if open_batch:
            # Reported where the missing commit line would be.
            if last_segment:
                detail = (
                    "the log ends inside a batch whose commit line is missing (an unfinished "
                    "write; the next writer sets it aside, or run `aios events repair`)"
                )
            else:
                detail = "the segment ends inside a batch: its commit line is missing (deleted?)"
            return _broken(report, segment, number + 1, "torn_tail", detail)
        if progress is not None:
            progress(report.bytes, total)
    if confirmed_pending:
        assert start is not None
        return _broken(
            report,
            start,
            1,
            "missing_segment",
            f"segments 1 to {start.seq - 1} are missing: events.anchor says retention removed "
            "them, but no log.retention_applied event in the log records it",
        )
    report.last_hash = expected or GENESIS_HASH
    if head is None:
        if segments:
            report.notes.append(
                "HEAD is missing: truncation of the newest events cannot be checked"
            )
    else:
        problem = head_problem(head, segments)
        if problem is not None:
            last = segments[-1] if segments else None
            return _broken(
                report, last, _line_count(last), "truncated", f"the log was truncated: {problem}"
            )
    return report


def _broken(
    report: VerifyReport, segment: Segment | None, line: int, kind: str, detail: str
) -> VerifyReport:
    report.ok = False
    report.first_break = ChainBreak(
        segment.name if segment else "(no segments)", line, kind, detail
    )
    return report


def _start_problem(anchor: Anchor | None, segments: list[Segment]) -> str | None:
    """Why the log may not start at ``segments[0]`` (not segment 1), or None if the anchor
    accounts for it; the link and the confirming event are checked during the walk."""
    first = segments[0]
    if anchor is None:
        return f"segments 1 to {first.seq - 1} are missing"
    if anchor.first_seq < first.seq:
        return (
            f"segments {anchor.first_seq} to {first.seq - 1} are missing (events.anchor says "
            f"the log starts at segment {anchor.first_seq})"
        )
    named = next((s for s in segments if s.seq == anchor.first_seq), None)
    if named is None or named.name != anchor.first_segment:
        return (
            f"segments 1 to {first.seq - 1} are missing (events.anchor names "
            f"{anchor.first_segment}, which is not in the log)"
        )
    return None


def _anchor_notes(report: VerifyReport, anchor: Anchor, start: Segment) -> None:
    report.notes.append(
        f"the log starts at {anchor.first_segment}: retention removed {anchor.removed_events} "
        f"events in {anchor.removed_segments} segment(s) before it (last at {anchor.applied_at})"
    )
    if start.seq < anchor.first_seq:
        report.notes.append(
            f"segments {start.seq} to {anchor.first_seq - 1} are left over from an interrupted "
            "retention; the next maintenance run removes them"
        )


def _snapshot(
    directory: Path,
) -> tuple[Head | None, list[Segment], dict[str, int], Anchor | None]:
    """HEAD, the segments, their sizes and the anchor, taken while no writer or retention is in
    the middle of a change."""
    if not directory.is_dir():
        return read_head(head_path(directory)), [], {}, read_anchor(directory)
    with file_lock(directory / ".lock"):
        head = read_head(head_path(directory))
        segments = list_segments(directory)
        sizes = {s.name: _size(s) for s in segments}
        return head, segments, sizes, read_anchor(directory)


def _lines_upto(handle: BinaryIO, limit: int) -> Iterator[bytes]:
    """The lines of ``handle`` within its first ``limit`` bytes."""
    done = 0
    for line in handle:
        if done + len(line) > limit:
            if done < limit:
                yield line[: limit - done]
            return
        done += len(line)
        yield line


def _size(segment: Segment) -> int:
    try:
        return segment.path.stat().st_size
    except FileNotFoundError:
        return 0


def _line_count(segment: Segment | None) -> int:
    return segment.path.read_bytes().count(b"\n") if segment else 0
