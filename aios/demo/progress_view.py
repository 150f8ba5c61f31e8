"""What the demo shows while it runs: a live status line for the stage under way, and a line for
each thing that happened, was decided for the demo, or did not happen in time."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.markup import escape
from rich.status import Status


class StageView:
    """Stages numbered ``1..total``; every line carries the seconds since the demo began."""

    def __init__(self, console: Console, total: int) -> None:
        self.console = console
        self.total = total
        self.began = time.monotonic()
        self._status: Status | None = None
        self._title = ""
        self._stage_began = self.began

    def _clock(self) -> str:
        return f"[dim]{time.monotonic() - self.began:5.0f}s[/]"

    @contextmanager
    def stage(self, number: int, title: str) -> Iterator[None]:
        self._title = f"{number}/{self.total} {title}"
        self._stage_began = time.monotonic()
        self.console.print(f"{self._clock()} [bold]{escape(self._title)}[/]")
        with self.console.status(escape(self._title), spinner="dots") as status:
            self._status = status
            try:
                yield
            finally:
                self._status = None

    def step(self, text: str) -> None:
        """What the stage waits for now (the live line)."""
        if self._status is not None:
            waited = time.monotonic() - self._stage_began
            self._status.update(
                f"[bold]{escape(self._title)}[/] · {escape(text)} [dim]({waited:.0f} s)[/]"
            )

    def done(self, text: str) -> None:
        self.console.print(f"{self._clock()}   [green]✔[/] {escape(text)}")

    def note(self, text: str) -> None:
        """Something the demo decided (a lowered threshold, an automatic approval)."""
        self.console.print(f"{self._clock()}   [yellow]![/] {escape(text)}")

    def missed(self, text: str) -> None:
        self.console.print(f"{self._clock()}   [bold red]✘[/] {escape(text)}")
