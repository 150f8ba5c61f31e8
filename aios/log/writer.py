"""Durable, hash-chained appends to the event log, safe across processes.

Every append takes the log's inter-process lock, looks at the tail of the newest segment,
sets aside what a crashed writer left behind (a torn line or an unfinished batch goes to
``events/quarantine/`` and a ``log.repaired`` event records it), rotates the segment by size
or day, writes the whole batch with one ``write``, ``fdatasync``s it and only then returns.
The last line of a batch carries ``commit: 1``: a batch is visible to readers, and survives a
crash, as a whole or not at all.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

from aios.errors import LogError
from aios.event import Event, Severity
from aios.home import make_private_dir
from aios.locking import file_lock
from aios.log.head import Head, head_path, read_head, write_head
from aios.log.line_format import (
    GENESIS_HASH,
    HASH_TAIL,
    canonical_bodies,
    canonical_body,
    line_hash,
    seal_all,
)
from aios.log.segments import Segment, list_segments, segment_name
from aios.log.tail import BadTail, scan_fd, scan_path

DEFAULT_SEGMENT_MAX_BYTES = 64 * 1024 * 1024


@dataclass
class _Tail:
    """What the writer knows about the end of the newest segment."""

    segment: Segment
    fd: int
    inode: int
    size: int
    last_hash: str


@dataclass(frozen=True)
class AppendResult:
    """The caller's events as written, and any events the writer added before them."""

    written: list[Event]
    notices: list[Event]


class EventLogWriter:
    """Appends batches of events durably. One instance per process and log directory."""

    def __init__(self, directory: Path, *, segment_max_bytes: int = DEFAULT_SEGMENT_MAX_BYTES):
        self.directory = directory
        self.segment_max_bytes = segment_max_bytes
        self.lock = file_lock(directory / ".lock")
        self.head_path = head_path(directory)
        self._tail: _Tail | None = None
        self._head_fd: int | None = None
        self._notices: list[Event] = []

    # ----------------------------------------------------------------- public
    def append(self, events: Sequence[Event]) -> AppendResult:
        """Append ``events`` as one group commit; returns once they are on disk.

        ``notices`` in the result are events the writer appended first: a ``log.repaired``
        after setting aside a crashed writer's tail, a ``log.truncated`` when the log ends
        before HEAD said it did. Raises EventValidationError (nothing written) for an event
        that cannot be serialised and LogError when the disk refuses the write.
        """
        bodies = canonical_bodies(events)
        with self.lock:
            self._notices = []
            tail = self._prepare()
            if bodies:
                self._write(tail, bodies)
            notices, self._notices = self._notices, []
        return AppendResult(list(events), notices)

    def repair(self) -> list[Event]:
        """Set aside a torn or unfinished tail now; returns the events that record it."""
        return self.append([]).notices

    def close(self) -> None:
        with self.lock:
            self._forget_tail()
            if self._head_fd is not None:
                os.close(self._head_fd)
                self._head_fd = None

    # --------------------------------------------------------------- internals
    def _prepare(self) -> _Tail:
        """The tail to append to, after repairs, truncation checks and rotation."""
        make_private_dir(self.directory)
        segments = list_segments(self.directory)
        tail = self._tail
        if tail is not None:
            st = os.fstat(tail.fd)
            fresh = segments and tail.segment == segments[-1] and st.st_nlink > 0
            if not fresh or st.st_ino != tail.inode or st.st_size != tail.size:
                self._forget_tail()
                tail = None
        if tail is None:
            tail = self._open(segments)
        if tail.size >= self.segment_max_bytes or (tail.size > 0 and tail.segment.day != _today()):
            tail = self._rotate(tail.last_hash)
        return tail

    def _open(self, segments: list[Segment]) -> _Tail:
        """Open the newest segment (creating the first), check HEAD, then repair its tail.

        HEAD is checked before anything is written: a repair would move HEAD, and a log cut
        short must be recorded as truncated, not mistaken for a crashed writer's leftovers.
        """
        head = read_head(self.head_path)
        problem = head_problem(head, segments) if head is not None else None
        self._record_pending_quarantines(segments)
        if not segments:
            tail = self._rotate(GENESIS_HASH)
        else:
            newest = segments[-1]
            fd = os.open(newest.path, os.O_RDWR | os.O_APPEND | os.O_CLOEXEC)
            st = os.fstat(fd)
            scan = scan_fd(fd, st.st_size)
            last_hash = scan.last_hash or self._previous_hash(newest, segments)
            tail = _Tail(newest, fd, st.st_ino, st.st_size, last_hash)
            self._tail = tail
            if scan.bad is not None:
                self._quarantine(tail, scan.bad)
        if head is not None and problem is not None:
            self._record_truncation(tail, head, problem)
        return tail

    def _previous_hash(self, segment: Segment, segments: list[Segment]) -> str:
        """Hash of the last line before ``segment`` (it has no committed line of its own)."""
        for prev in reversed([s for s in segments if s.seq < segment.seq]):
            last_hash = scan_path(prev.path).last_hash
            if last_hash is not None:
                return last_hash
        return GENESIS_HASH

    def _quarantine(self, tail: _Tail, bad: BadTail) -> None:
        """Move a bad tail to quarantine/, cut it off, and record it.

        The copy is named ``.pending`` until ``log.repaired`` is in the log, so a crash in
        between is noticed (and recorded) by the next writer.
        """
        qdir = self.directory / "quarantine"
        qdir.mkdir(exist_ok=True)
        for stale in qdir.glob(f"{tail.segment.path.stem}.{bad.offset}.*.pending"):
            stale.unlink()  # a repair of these same bytes that crashed before cutting them off
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        pending = qdir / f"{tail.segment.path.stem}.{bad.offset}.{stamp}.pending"
        with pending.open("xb") as handle:
            handle.write(bad.data)
            handle.flush()
            os.fsync(handle.fileno())
        _fsync_dir(qdir)
        os.ftruncate(tail.fd, bad.offset)
        os.fsync(tail.fd)
        tail.size = bad.offset
        self._record_repair(tail, pending, bad.offset, bad.complete_lines, bad.reason)

    def _record_repair(
        self, tail: _Tail, pending: Path, offset: int, lines: int | None, reason: str
    ) -> None:
        final = pending.with_suffix(".bad")
        segment = pending.name.split(".", 1)[0] + ".jsonl"
        self._notice(
            tail,
            Event(
                type="log.repaired",
                source="aios.log",
                severity=Severity.MEDIUM,
                labels={"segment": segment},
                payload={
                    "segment": segment,
                    "offset": offset,
                    "bytes": pending.stat().st_size,
                    "complete_lines": lines,
                    "reason": reason,
                    "quarantine": str(final.relative_to(self.directory)),
                },
            ),
        )
        pending.rename(final)
        _fsync_dir(pending.parent)

    def _record_pending_quarantines(self, segments: list[Segment]) -> None:
        """Record repairs that a crashed writer finished cutting but never logged."""
        qdir = self.directory / "quarantine"
        if not qdir.is_dir():
            return
        sizes = {s.path.stem: s.path.stat().st_size for s in segments}
        for pending in sorted(qdir.glob("*.pending")):
            stem, offset_text = pending.name.split(".")[:2]
            if sizes.get(stem, 0) > int(offset_text):
                pending.unlink()  # the bytes are still in the segment: the repair starts over
                continue
            if not segments:
                continue
            tail = self._tail or self._rotate(GENESIS_HASH)
            self._record_repair(
                tail,
                pending,
                int(offset_text),
                None,
                "set aside by a writer that stopped before recording it",
            )

    def _record_truncation(self, tail: _Tail, head: Head, problem: str) -> None:
        self._notice(
            tail,
            Event(
                type="log.truncated",
                source="aios.log",
                severity=Severity.CRITICAL,
                labels={"segment": head.segment},
                payload={
                    "head_segment": head.segment,
                    "head_offset": head.offset,
                    "head_hash": head.hash,
                    "problem": problem,
                    "found_segment": tail.segment.name,
                    "found_bytes": tail.size,
                },
            ),
        )

    def _notice(self, tail: _Tail, event: Event) -> None:
        self._write(tail, [canonical_body(event)])
        self._notices.append(event)

    def _rotate(self, last_hash: str) -> _Tail:
        self._forget_tail()
        segments = list_segments(self.directory)
        seq = segments[-1].seq + 1 if segments else 1
        day = _today()
        path = self.directory / segment_name(seq, day)
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        _fsync_dir(self.directory)
        st = os.fstat(fd)
        tail = _Tail(Segment(seq, day, path), fd, st.st_ino, 0, last_hash)
        self._tail = tail
        return tail

    def _write(self, tail: _Tail, bodies: list[bytes]) -> None:
        parts: list[bytes] = []
        prev = seal_all(parts, bodies, tail.last_hash.encode())
        data = b"".join(parts)
        try:
            view = memoryview(data)
            while view:
                written = os.write(tail.fd, view)
                view = view[written:]
            os.fdatasync(tail.fd)
        except OSError as exc:
            # Whatever reached the file is cut off again, so a caller that retries after this
            # error never finds the batch twice; if even that fails, the next writer's repair
            # sets aside an unfinished batch, but a complete one would stand.
            try:
                os.ftruncate(tail.fd, tail.size)
                os.fsync(tail.fd)
            except OSError as undo:
                self._forget_tail()
                raise LogError(
                    f"cannot append to {tail.segment.path} ({exc}), nor cut the failed write "
                    f"off again ({undo}); a retry may store the batch twice"
                ) from exc
            self._forget_tail()
            raise LogError(f"cannot append to {tail.segment.path}: {exc}") from exc
        tail.size += len(data)
        tail.last_hash = prev.decode()
        self._write_head(Head(tail.segment.name, tail.size, tail.last_hash))

    def _write_head(self, head: Head) -> None:
        if self._head_fd is not None and os.fstat(self._head_fd).st_nlink == 0:
            os.close(self._head_fd)  # deleted under us: write a new one
            self._head_fd = None
        if self._head_fd is None:
            self._head_fd = os.open(self.head_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        write_head(self._head_fd, head)

    def _forget_tail(self) -> None:
        if self._tail is not None:
            os.close(self._tail.fd)
            self._tail = None


def head_problem(head: Head, segments: list[Segment]) -> str | None:
    """Why the log no longer reaches the point HEAD recorded, or None if it does."""
    segment = next((s for s in segments if s.name == head.segment), None)
    if segment is None:
        head_seq = int(head.segment[:8]) if head.segment[:8].isdigit() else 0
        if segments and head_seq < segments[0].seq:
            return None  # removed by retention, which never removes the newest segment
        return f"segment {head.segment}, where the last append ended, is missing"
    size = segment.path.stat().st_size
    if size < head.offset:
        return f"{head.segment} is {size} bytes but an append ended at byte {head.offset}"
    if head.offset >= HASH_TAIL:
        with segment.path.open("rb") as handle:
            handle.seek(head.offset - HASH_TAIL)
            trailer = handle.read(HASH_TAIL)
        if not trailer.endswith(b"\n") or line_hash(trailer) != head.hash:
            return f"the line ending at byte {head.offset} of {head.segment} was replaced"
    return None


def _today() -> date:
    return datetime.now(UTC).date()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
