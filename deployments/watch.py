"""``aios watch``: the event watcher alone, for deployments that run on a work pool.

``aios up`` serves the deployments and watches the log itself. When the deployments live on a
work pool (``aios deploy --pool NAME``), nothing on a site starts the reactor for its urgent
events: ``aios watch`` does, on each machine whose event log it should follow, creating runs
of ``aios-reactor/aios`` that the pool's workers pick up. One watcher per ``AIOS_HOME``.
"""

from __future__ import annotations

import signal
import threading
import uuid
from typing import Any

from rich.console import Console

from aios.errors import AIOSError
from aios.home import HomePaths
from aios.locking import file_lock
from aios.prefect_api import HttpPrefectAPI, PrefectNotFoundError, api_url
from deployments.definitions import REACTOR


class WatcherRunningError(AIOSError):
    """Another event watcher (``aios up`` or ``aios watch``) follows this AIOS_HOME."""


def watcher_lock_path(paths: HomePaths) -> Any:
    return paths.root / "watcher.lock"


def watch(paths: HomePaths | None = None, *, console: Console | None = None) -> int:
    """Follow the log and start reactor runs until interrupted; returns the exit code."""
    import os

    from aios.runtime import default_bus
    from blocks.aios_settings import effective_config
    from deployments.watcher import EventWatcher, reactor_starter

    paths = paths or HomePaths.current()
    console = console or Console(stderr=True)
    paths.root.mkdir(parents=True, exist_ok=True)
    lock = file_lock(watcher_lock_path(paths))
    if not lock.try_acquire():
        raise WatcherRunningError(
            f"an event watcher already follows {paths.root} (aios up or aios watch)"
        )
    try:
        url = api_url(paths)
        os.environ["PREFECT_API_URL"] = url
        with HttpPrefectAPI(url) as api:
            try:
                reactor = api.read_deployment_by_name(REACTOR.full_name)
            except PrefectNotFoundError:
                raise AIOSError(
                    f"{url} has no {REACTOR.full_name} deployment: run aios deploy --pool NAME "
                    "first"
                ) from None
            reactor_id = uuid.UUID(str(reactor["id"]))

            start_reactor = reactor_starter(reactor_id)

            watcher = EventWatcher(
                default_bus(), paths, effective_config(paths), start_reactor, api=api
            )
            stopped = threading.Event()
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, lambda *_: stopped.set())
            watcher.start()
            watcher.ready.wait(60)
            where = reactor.get("work_pool_name") or "served"
            console.print(
                f"watching {paths.root}: urgent events start {REACTOR.full_name} ({where}) "
                f"on {url}. Ctrl-C stops it."
            )
            stopped.wait()
            watcher.stop()
            watcher.join(10)
            console.print(f"event watcher stopped; {watcher.dispatched} run(s) started")
        return 0
    finally:
        lock.release()
