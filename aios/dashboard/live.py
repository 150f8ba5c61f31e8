"""Keeping the dashboard's data current: a thread follows the event log and rebuilds every
page when it grows (at most once per ``min_rebuild_s``, and never sooner than four times the
last rebuild took, so the store's lock stays free most of the time; at least every
``max_age_s`` so time windows move on), then wakes the WebSocket connections waiting for a
change.

Pages are built in one ``open_store`` block and served from memory, so any number of open
browsers costs the store nothing more.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aios.dashboard import pages
from aios.errors import AIOSError
from aios.home import HomePaths
from aios.log.reader import end_cursor
from aios.store import open_store

logger = logging.getLogger("aios.dashboard")


@dataclass
class Snapshot:
    """Every page's data at one moment of the log."""

    version: int = 0
    built: str | None = None
    pages: dict[str, dict[str, Any]] = field(default_factory=dict)
    error: str | None = None


class LiveData:
    """The pages of one AIOS home, rebuilt as its log grows."""

    def __init__(
        self,
        paths: HomePaths,
        *,
        preset: str = "evolution",
        ui_url: Callable[[], str | None] = lambda: None,
        poll_s: float = 0.5,
        min_rebuild_s: float = 1.0,
        max_age_s: float = 30.0,
    ) -> None:
        self.paths = paths
        self.preset = preset
        self.ui_url = ui_url
        self.poll_s = poll_s
        self.min_rebuild_s = min_rebuild_s
        self.max_age_s = max_age_s
        self.snapshot = Snapshot()
        self._lock = threading.Lock()
        self._waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Future[int]]] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._seen: tuple[Any, ...] | None = None
        self._built_at = 0.0
        self._cost = 0.0  # seconds the last rebuild took

    def start(self) -> None:
        """Follow the log in a thread; the first build happens there, so a busy store never
        keeps the server from answering."""
        self._thread = threading.Thread(target=self._follow, name="aios-dashboard", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def _log_state(self) -> tuple[Any, ...] | None:
        """Cheap: the last segment's name, size and mtime (the tail is scanned only when they
        change)."""
        try:
            names = sorted(n for n in os.listdir(self.paths.events) if n.endswith(".jsonl"))
        except FileNotFoundError:
            return None
        if not names:
            return ()
        stat = (self.paths.events / names[-1]).stat()
        return (names[-1], stat.st_size, stat.st_mtime_ns)

    def _follow(self) -> None:
        cursor = None
        pending = True  # the first build
        while True:
            try:
                state = self._log_state()
                if state != self._seen:
                    self._seen = state
                    now_cursor = end_cursor(self.paths.events) if state else None
                    if now_cursor != cursor:
                        cursor, pending = now_cursor, True
                age = time.monotonic() - self._built_at
                pause = max(self.min_rebuild_s, 4 * self._cost)
                if (pending and age >= pause) or age >= self.max_age_s:
                    pending = False
                    self.refresh()
            except Exception:  # the dashboard must outlive a bad moment of the log or store
                logger.exception("the dashboard could not follow the log")
            if self._stop.wait(self.poll_s):
                return

    def refresh(self) -> Snapshot:
        """Rebuild every page now. A page that cannot be built keeps its last data and the
        snapshot says why; the version moves only when some page's data changed."""
        self._built_at = time.monotonic()
        now = datetime.now(UTC)
        built: dict[str, dict[str, Any]] = {}
        problems: list[str] = []
        if not self.paths.root.is_dir():
            problems.append(f"there is no AIOS home at {self.paths.root}")
        else:
            try:
                with open_store(self.paths) as con:
                    for name in pages.PAGES:
                        try:
                            built[name] = self._build(name, con, now)
                        except Exception as exc:  # one bad page must not blank the others
                            logger.exception("dashboard: the %s page could not be built", name)
                            problems.append(f"the {name} page could not be built: {exc}")
            except (AIOSError, OSError, RuntimeError) as exc:
                problems.append(f"could not read {self.paths.duckdb}: {exc}")
                logger.warning("dashboard: %s", problems[-1])
        self._cost = time.monotonic() - self._built_at
        with self._lock:
            previous = self.snapshot
            merged = {**previous.pages, **built}
            changed = merged != previous.pages or not previous.built
            self.snapshot = Snapshot(
                previous.version + 1 if changed else previous.version,
                now.isoformat(),
                merged,
                "; ".join(problems) or None,
            )
            waiters = set()
            if changed:
                waiters, self._waiters = self._waiters, set()
        for loop, future in waiters:
            loop.call_soon_threadsafe(_wake, future, self.snapshot.version)
        return self.snapshot

    def _build(self, name: str, con: Any, now: datetime) -> dict[str, Any]:
        if name == "approvals":
            return pages.approvals(con, now, self.preset, self.ui_url())
        return pages.BUILDERS[name](con, now, self.preset)

    def problem(self) -> str | None:
        """What is wrong right now: the last rebuild's problems, or data gone stale because
        the store has been busy (or the follower stuck) for a long while."""
        snapshot = self.snapshot
        if snapshot.error:
            return snapshot.error
        if snapshot.built is None:
            return "the first build has not finished yet (the store may be busy)"
        age = (datetime.now(UTC) - datetime.fromisoformat(snapshot.built)).total_seconds()
        if age > 2 * self.max_age_s + 5:
            return f"the data is from {snapshot.built}: the store has been busy since"
        return None

    async def changed(self, version: int, timeout: float) -> int:
        """Wait until the snapshot is newer than ``version`` (or ``timeout`` seconds)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[int] = loop.create_future()
        with self._lock:
            if self.snapshot.version != version:
                return self.snapshot.version
            self._waiters.add((loop, future))
        try:
            return await asyncio.wait_for(future, timeout)
        except TimeoutError:
            return self.snapshot.version
        finally:
            with self._lock:
                self._waiters.discard((loop, future))

    def page(self, name: str) -> dict[str, Any]:
        """What the browser gets for one page."""
        snapshot = self.snapshot
        return {
            "page": name,
            "version": snapshot.version,
            "built": snapshot.built,
            "error": self.problem(),
            "home": str(self.paths.root),
            "data": snapshot.pages.get(name),
        }


def _wake(future: asyncio.Future[int], version: int) -> None:
    if not future.done():
        future.set_result(version)
