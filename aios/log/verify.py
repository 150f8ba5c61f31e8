"""Walking the hash chain: find the first place where the log is not what its writers wrote.

Detected: a modified line (its content no longer matches its hash), a deleted, inserted or
reordered line (its ``prev_hash`` is not the hash of the line before), a missing segment, a torn
or unfinished tail, and truncation (the log ends before the point ``HEAD`` recorded, or a writer
found it so and recorded a ``log.truncated`` event).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from aios.locking import file_lock
from aios.log.head import Head, head_path, read_head
from aios.log.line_format import GENESIS_HASH, check_line
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

    Safe on a live log: HEAD, the segment list and their sizes are read together under the
    writers' lock, and only those bytes are checked (what is appended meanwhile is not).
    """
    head, segments, sizes = _snapshot(directory)
    report = VerifyReport(ok=True, segments=len(segments))
    total = sum(sizes.values())
    expected = GENESIS_HASH
    if segments and segments[0].seq != 1:
        return _broken(
            report,
            segments[0],
            1,
            "missing_segment",
            f"segments 1 to {segments[0].seq - 1} are missing",
        )
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
        open_batch = False
        number = 0
        limit = sizes[segment.name]
        with segment.path.open("rb") as handle:  # streamed: memory stays flat on big segments
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
                if check.prev_hash != expected:
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
    report.last_hash = expected
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


def _snapshot(directory: Path) -> tuple[Head | None, list[Segment], dict[str, int]]:
    """HEAD, the segments and their sizes, taken while no writer is in the middle of a batch."""
    if not directory.is_dir():
        return read_head(head_path(directory)), [], {}
    with file_lock(directory / ".lock"):
        head = read_head(head_path(directory))
        segments = list_segments(directory)
        return head, segments, {s.name: _size(s) for s in segments}


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
