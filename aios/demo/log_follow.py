"""Following the demo home's event log as AIOS writes it: every event read is kept, so a stage
can ask "has this happened yet?" about anything since the demo began.

Reading the log takes no lock and never blocks AIOS's writers; the summary is read from the
DuckDB store afterwards, not from here.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from aios.event import Event
from aios.log import EventLog


class LogFollower:
    """The events appended to the log in ``directory`` from now on."""

    def __init__(self, directory: Path) -> None:
        self.log = EventLog(directory)
        self.cursor = self.log.end()
        self.events: list[Event] = []

    def poll(self) -> list[Event]:
        """Read what was appended since the last call; returns the new events."""
        new = []
        for event, after in self.log.read(cursor=self.cursor):
            new.append(event)
            self.cursor = after
        self.events += new
        return new

    def mark(self) -> int:
        """A place in what was read so far: ``find(..., after=mark)`` looks only later."""
        return len(self.events)

    def find(self, predicate: Callable[[Event], bool], *, after: int = 0) -> Event | None:
        """The first event read after ``after`` that satisfies ``predicate``."""
        for event in self.events[after:]:
            if predicate(event):
                return event
        return None

    def count(self, predicate: Callable[[Event], bool], *, after: int = 0) -> int:
        return sum(1 for event in self.events[after:] if predicate(event))
