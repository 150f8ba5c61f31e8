"""The event watcher in ``aios up``: urgent events start the reactor deployment at once.

It follows the log (every ``poll_s``), lets the scheduler decide each new event (priority,
dedupe, breaker check), and starts one reactor flow run per batch of urgent events with their
ids; ``scheduler.dispatched`` records which run took which events, ``scheduler.suppressed``
why an urgent event started none. Its place in the log is kept in
``$AIOS_HOME/scheduler.cursor`` and moves only after the run was created, so events that
arrive while the server is unreachable are dispatched when it is back, and so are those
emitted while ``aios up`` was down (unless older than ``urgent_max_age``).
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aios.atomic import write_atomic
from aios.bus import EventBus
from aios.config import AIOSConfig
from aios.event import Severity
from aios.home import HomePaths
from aios.log import Cursor
from aios.playbooks.matcher import PlaybookIndex
from aios.prefect_api import PrefectAPI
from aios.reactor.runner import load_index, playbook_dirs
from aios.reactor.state import REACTOR_TYPES
from aios.scheduler import SOURCE, Scheduler
from aios.store import open_store
from aios.store.consumers import events_between, last_seq

logger = logging.getLogger("aios.watcher")
RELOAD_CHECK_S = 5.0
# (event ids, idempotency key) -> the id of the reactor run that takes them
StartRun = Callable[[list[str], str], str]


def reactor_starter(reactor_id: Any) -> StartRun:
    """Start runs of the reactor deployment ``reactor_id`` (a UUID) through Prefect's client."""

    def start(event_ids: list[str], key: str) -> str:
        from prefect.client.orchestration import get_client

        with get_client(sync_client=True) as client:
            run = client.create_flow_run_from_deployment(
                reactor_id,
                parameters={"event_ids": event_ids},
                tags=["aios", "urgent"],
                idempotency_key=key,
            )
        return str(run.id)

    return start


def _key(*parts: str) -> str:
    return "aios-reactor-" + hashlib.sha256("\n".join(parts).encode()).hexdigest()[:32]


def cursor_path(paths: HomePaths) -> Path:
    return paths.root / "scheduler.cursor"


def load_cursor(paths: HomePaths) -> Cursor | None:
    try:
        return Cursor.parse(cursor_path(paths).read_text().strip())
    except (OSError, ValueError, Exception):
        return None


def _dir_mtimes(dirs: list[Path]) -> tuple[float, ...]:
    """Cheap: a file added to or removed from a playbook directory changes its mtime."""
    stamps = []
    for root in dirs:
        try:
            stamps.append(root.stat().st_mtime)
        except OSError:
            stamps.append(-1.0)
    return tuple(stamps)


def _mtimes(dirs: list[Path]) -> tuple[float, ...]:
    stamps = []
    for root in dirs:
        try:
            stamps.append(root.stat().st_mtime)
            if root.is_dir():
                stamps += [p.stat().st_mtime for p in sorted(root.rglob("*")) if p.is_file()]
        except OSError:
            stamps.append(-1.0)
    return tuple(stamps)


class EventWatcher(threading.Thread):
    """Follows the log and starts reactor runs; ``stop()`` ends it."""

    def __init__(
        self,
        bus: EventBus,
        paths: HomePaths,
        config: AIOSConfig,
        start_run: StartRun,
        *,
        poll_s: float = 0.2,
        api: PrefectAPI | None = None,
    ) -> None:
        super().__init__(name="aios-event-watcher", daemon=True)
        self.bus = bus
        self.paths = paths
        self.config = config
        self.start_run = start_run
        self.poll_s = poll_s
        self.api = api
        self._stop_flag = threading.Event()
        self.dispatched = 0
        self.errors = 0
        self.ready = threading.Event()
        self._dirs = playbook_dirs(config)
        self._stamps: tuple[float, ...] = ()
        self._dir_stamps: tuple[float, ...] = ()
        self._checked = 0.0
        self.scheduler = Scheduler(
            self._load_index(),
            paths,
            dedupe_window=config.orchestration.dedupe_window,
            max_age=config.orchestration.urgent_max_age,
        )
        # Where to start, fixed now: an event emitted once aios up says it is up is seen.
        self.start_at = load_cursor(paths) or bus.log.end()

    def stop(self) -> None:
        self._stop_flag.set()

    def _load_index(self) -> PlaybookIndex:
        index, result = load_index(self.config, strict=False)
        for problem in result.problems:
            logger.warning("playbook problem (left out): %s", problem)
        self._stamps = _mtimes(self._dirs)
        self._dir_stamps = _dir_mtimes(self._dirs)
        return index

    def _maybe_reload(self) -> None:
        """Reload at once when a playbook file comes or goes, within seconds when one is
        edited."""
        now = time.monotonic()
        added_or_removed = _dir_mtimes(self._dirs) != self._dir_stamps
        if not added_or_removed and now - self._checked < RELOAD_CHECK_S:
            return
        self._checked = now
        if added_or_removed or _mtimes(self._dirs) != self._stamps:
            self.scheduler.index = self._load_index()
            logger.info("playbooks reloaded: %d", len(self.scheduler.index.playbooks))

    def _warm_up(self) -> None:
        """The breaker state of the recent past (the reactor's own steps)."""
        since = datetime.now(UTC) - max(
            (p.limits.window for p in self.scheduler.index.playbooks.values()),
            default=self.config.orchestration.urgent_max_age,
        )
        with open_store(self.paths) as con:
            for _, event in events_between(con, since, last_seq(con), REACTOR_TYPES):
                self.scheduler.observe(event)

    def recover_orphans(self) -> dict[str, int]:
        """Approvals nobody can answer any more (the runs that asked stopped with aios up, or
        crashed): asked again by a new reactor run while their time lasts, else recorded as
        expired. Returns how many of each."""
        from aios.reactor.approval import ApprovalDecision, ApprovalRequest
        from aios.reactor.decisions import orphaned_requests
        from aios.reactor.runner import record_decision, settings_from

        if self.api is None:
            return {"asked_again": 0, "expired": 0}
        orphans = orphaned_requests(self.paths, self.api)
        timeout = self.config.reactor.approval_timeout
        now = datetime.now(UTC)
        again = [o for o in orphans if o.requested_at + timeout > now]
        expired = [o for o in orphans if o.requested_at + timeout <= now]
        if expired:
            index = self.scheduler.index
            settings = settings_from(self.config, self.paths)
            for orphan in expired:
                p = orphan.request
                request = ApprovalRequest(
                    orphan.remediation_id,
                    orphan.playbook,
                    str(p.get("risk", "")),
                    str(p.get("description", "")),
                    {},
                    [],
                    {},
                    timeout_s=float(p.get("timeout_s", timeout.total_seconds())),
                    digest=str(p.get("digest", "")),
                )
                decision = ApprovalDecision(
                    False, "nobody", "unanswered when the runs that asked stopped", expired=True
                )
                record_decision(self.bus, index, settings, orphan.trigger_id, request, decision)
        if again:
            batch = sorted({o.trigger_id for o in again})
            run_id = self.start_run(batch, _key("recovered", now.isoformat(), *batch))
            self.bus.emit(
                "scheduler.dispatched",
                {"event_ids": batch, "flow_run_id": run_id, "route": "reactor", "recovered": True},
                source=SOURCE,
            )
        if orphans:
            logger.info(
                "approvals left without a run: %d asked again, %d expired", len(again), len(expired)
            )
        return {"asked_again": len(again), "expired": len(expired)}

    def run(self) -> None:
        try:
            self._warm_up()
        except Exception:
            logger.exception("could not read the reactor's recent history; breakers start closed")
        try:
            self.recover_orphans()
        except Exception:
            logger.exception("could not recover the approvals left without a run")
        cursor = self.start_at
        self.ready.set()
        failures = 0
        while not self._stop_flag.is_set():
            try:
                self._maybe_reload()
                cursor = self._step(cursor)
                failures = 0
            except Exception:
                failures += 1
                self.errors += 1
                logger.exception("the event watcher failed; trying again")
                self._stop_flag.wait(min(30.0, self.poll_s * 2**failures))
                continue
            self._stop_flag.wait(self.poll_s)

    def _step(self, cursor: Cursor) -> Cursor:
        """Decide every new event; dispatch the urgent ones as one run; return the new place."""
        now = datetime.now(UTC)
        batch: list[str] = []
        suppressed: list[dict[str, object]] = []
        position = cursor
        for event, after in self.bus.log.read(cursor=cursor):
            decision = self.scheduler.decide(event, now)
            if decision.dispatch:
                batch.append(event.id)
            elif decision.route is not None and decision.route.value == "reactor":
                suppressed.append(decision.to_dict())
            position = after
        if position == cursor:
            return cursor
        if batch:
            # Raises: the place stays, the batch is retried, and the same batch is the same run.
            run_id = self.start_run(batch, _key("dispatch", *batch))
            self.dispatched += 1
            self.bus.emit(
                "scheduler.dispatched",
                {"event_ids": batch, "flow_run_id": run_id, "route": "reactor"},
                source=SOURCE,
            )
        for item in suppressed:
            self.bus.emit("scheduler.suppressed", dict(item), source=SOURCE, severity=Severity.LOW)
        write_atomic(cursor_path(self.paths), f"{position}\n".encode())
        return position
