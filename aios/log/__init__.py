"""The append-only, hash-chained event log: the source of truth of AIOS.

``EventLog`` ties together the writer (durable group commits, crash repair), the readers
(filters and cursors) and ``verify``. See ``line_format`` for the on-disk form.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from aios.event import Event
from aios.event_filter import EventFilter
from aios.log.reader import START, Cursor, end_cursor, read_events, read_newest_first
from aios.log.verify import VerifyReport, verify_log
from aios.log.writer import DEFAULT_SEGMENT_MAX_BYTES, AppendResult, EventLogWriter

__all__ = ["START", "AppendResult", "Cursor", "EventLog", "VerifyReport"]


class EventLog:
    """The event log in one directory (``$AIOS_HOME/events``)."""

    def __init__(self, directory: Path, *, segment_max_bytes: int = DEFAULT_SEGMENT_MAX_BYTES):
        self.directory = directory
        self.segment_max_bytes = segment_max_bytes
        self._writer: EventLogWriter | None = None

    @property
    def writer(self) -> EventLogWriter:
        if self._writer is None:
            self._writer = EventLogWriter(self.directory, segment_max_bytes=self.segment_max_bytes)
        return self._writer

    def append(self, events: Sequence[Event]) -> AppendResult:
        """Durably append ``events`` as one group; see ``EventLogWriter.append``."""
        return self.writer.append(events)

    def repair(self) -> list[Event]:
        """Set aside a torn or unfinished tail now; returns the ``log.repaired`` events."""
        return self.writer.repair()

    def read(
        self, flt: EventFilter | None = None, cursor: Cursor = START
    ) -> Iterator[tuple[Event, Cursor]]:
        """Committed events after ``cursor`` passing ``flt``, with the cursor after each."""
        return read_events(self.directory, flt, cursor)

    def events(self, flt: EventFilter | None = None, cursor: Cursor = START) -> Iterator[Event]:
        return (event for event, _ in read_events(self.directory, flt, cursor))

    def newest_first(self, flt: EventFilter | None = None) -> Iterator[Event]:
        return read_newest_first(self.directory, flt)

    def end(self) -> Cursor:
        """The cursor after the last committed event."""
        return end_cursor(self.directory)

    def verify(self, progress: Callable[[int, int], None] | None = None) -> VerifyReport:
        return verify_log(self.directory, progress=progress)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
