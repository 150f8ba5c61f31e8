"""``aios up``: a local Prefect server (unless PREFECT_API_URL names one), a Chroma server for
lessons and memories (unless AIOS_CHROMA_URL names one, or the JSON backend is chosen), every
deployment served on its schedule, the event watcher that starts the reactor for urgent
events, and the dashboard.

One ``aios up`` per ``AIOS_HOME`` (a lock; the second says where the first is). Ctrl-C or
SIGTERM stops the runner and the watcher first, then the servers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from rich.console import Console
from rich.markup import escape

from aios.atomic import write_atomic
from aios.dashboard.server import DashboardServer
from aios.errors import AIOSError, InputError
from aios.home import HomePaths
from aios.locking import file_lock
from aios.prefect_api import HttpPrefectAPI, PrefectNotFoundError, read_up, up_file
from deployments.chroma_server import ChromaServer, chosen_port
from deployments.server import DEFAULT_PORT, LocalServer, wait_healthy

RUNNER_POLL_S = 1.0  # how often the runner asks for runs to start: the urgent path waits on it
RUNNER_LIMIT = 50  # flow-run processes at once (paused approvals keep theirs)


class AlreadyRunningError(AIOSError):
    """Another ``aios up`` serves this AIOS_HOME."""


class PoolDeploymentsError(AIOSError):
    """The server's AIOS deployments belong to a work pool (``aios deploy``): serving them here
    would take them from its workers."""


def _refuse_pool_deployments(api: HttpPrefectAPI, names: list[str]) -> None:
    """Raise PoolDeploymentsError if any of ``names`` is deployed on a work pool."""
    taken = []
    for name in names:
        try:
            found = api.read_deployment_by_name(name)
        except PrefectNotFoundError:
            continue
        if found.get("work_pool_name"):
            taken.append(f"{name} (work pool {found['work_pool_name']})")
    if taken:
        raise PoolDeploymentsError(
            f"{api.url} already runs AIOS on a work pool: {', '.join(taken)}. Its workers run "
            "them; aios up would take them over. Use another Prefect server for aios up, or "
            "delete those deployments first (prefect deployment delete NAME)."
        )


@dataclass
class Endpoints:
    api_url: str
    ui_url: str
    server: LocalServer | None


def _endpoints(paths: HomePaths, console: Console) -> Endpoints:
    url = os.environ.get("PREFECT_API_URL", "").strip().rstrip("/")
    if url:
        with console.status(f"checking the Prefect server at {url} ..."):
            wait_healthy(url, 15.0, None)
        ui = os.environ.get("PREFECT_UI_URL", "").strip() or url.removesuffix("/api")
        return Endpoints(url, ui, None)
    raw = os.environ.get("PREFECT_SERVER_API_PORT", str(DEFAULT_PORT)).strip()
    if not raw.isdigit() or not 1 <= int(raw) <= 65535:
        raise InputError(f"PREFECT_SERVER_API_PORT={raw!r}: a port number from 1 to 65535")
    port = int(raw)
    server = LocalServer(paths, port)
    with console.status(f"starting a local Prefect server on port {port} ..."):
        server.start()
    return Endpoints(server.api_url, server.ui_url, server)


def _chroma(paths: HomePaths, console: Console) -> tuple[ChromaServer | None, str | None]:
    """The Chroma server for lessons and memories: AIOS_CHROMA_URL's, else one started here
    (none with the JSON backend). Every flow run inherits AIOS_CHROMA_URL."""
    from aios.config import load_config

    given = os.environ.get("AIOS_CHROMA_URL", "").strip()
    if given:
        return None, given
    config = load_config(paths)
    if config.memory.backend != "chroma":
        return None, None
    if config.memory.chroma_url:
        return None, config.memory.chroma_url
    server = ChromaServer(paths, chosen_port())
    with console.status(f"starting the Chroma server on port {server.port} ..."):
        server.start()
    os.environ["AIOS_CHROMA_URL"] = server.url
    return server, server.url


def up(paths: HomePaths | None = None, *, console: Console | None = None) -> int:
    """Run until interrupted; returns the exit code."""
    # SIGTERM while starting stops it like Ctrl-C: the server is not left behind.
    signal.signal(signal.SIGTERM, _interrupt)
    paths = paths or HomePaths.current()
    console = console or Console(stderr=True)
    paths.root.mkdir(parents=True, exist_ok=True)
    lock = file_lock(paths.root / "up.lock")
    if not lock.try_acquire():
        info = read_up(paths) or {}
        raise AlreadyRunningError(
            f"aios up is already running for {paths.root} (pid {info.get('pid', '?')}, "
            f"Prefect UI {info.get('ui_url', '?')}); stop it first, or use another AIOS_HOME"
        )
    started = time.monotonic()
    endpoints: Endpoints | None = None
    chroma: ChromaServer | None = None
    try:
        os.environ["AIOS_HOME"] = str(paths.root)
        os.environ.setdefault("PREFECT_HOME", str(paths.root / "prefect"))
        _credentials()
        endpoints = _endpoints(paths, console)
        os.environ["PREFECT_API_URL"] = endpoints.api_url
        os.environ["PREFECT_UI_URL"] = endpoints.ui_url
        chroma, chroma_url = _chroma(paths, console)
        write_atomic(
            up_file(paths),
            orjson.dumps(
                {
                    "pid": os.getpid(),
                    "api_url": endpoints.api_url,
                    "ui_url": endpoints.ui_url,
                    "chroma_url": chroma_url,
                    "started": datetime.now(UTC).isoformat(),
                    "local_server": endpoints.server is not None,
                }
            ),
        )
        return _serve(paths, endpoints, console, started)
    except KeyboardInterrupt:
        console.print("stopped before it was up")
        return 0
    finally:
        if chroma is not None:  # after the runner (inside _serve), before the Prefect server
            with console.status("stopping the Chroma server ..."):
                chroma.stop()
        if endpoints is not None and endpoints.server is not None:
            with console.status("stopping the Prefect server ..."):
                endpoints.server.stop()
        up_file(paths).unlink(missing_ok=True)
        lock.release()


def _credentials() -> None:
    """With ``PREFECT_SERVER_API_AUTH_STRING`` set, the local server asks every caller for
    it (Basic auth; the UI shows a login): the runner, the flow runs, the watcher and the
    CLI send it as ``PREFECT_API_AUTH_STRING``, which defaults to it here."""
    server_auth = os.environ.get("PREFECT_SERVER_API_AUTH_STRING", "")
    if server_auth and not os.environ.get("PREFECT_API_AUTH_STRING"):
        os.environ["PREFECT_API_AUTH_STRING"] = server_auth


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _serve(paths: HomePaths, endpoints: Endpoints, console: Console, started: float) -> int:
    # Prefect is imported only now: its settings are read from the environment set above.
    from prefect.exceptions import TerminationSignal
    from prefect.runner import Runner

    from aios.runtime import default_bus
    from blocks.aios_settings import AIOSSettings, effective_config
    from deployments.definitions import REACTOR, all_deployments, runner_deployments
    from deployments.watch import WatcherRunningError, watcher_lock_path
    from deployments.watcher import EventWatcher, reactor_starter
    from tasks.remediate import REMEDIATION_LIMIT

    _log_to_stderr()
    specs = all_deployments()  # AIOS's, then those of installed plugin agents
    config = effective_config(paths)
    AIOSSettings.register_type_and_schema()
    with HttpPrefectAPI(endpoints.api_url) as api:
        _refuse_pool_deployments(api, [spec.full_name for spec in specs])
        if api.read_concurrency_limit(REMEDIATION_LIMIT) is None:
            api.upsert_concurrency_limit(
                REMEDIATION_LIMIT, config.orchestration.max_concurrent_remediations
            )
    runner = Runner(
        name="aios", query_seconds=RUNNER_POLL_S, limit=RUNNER_LIMIT, pause_on_shutdown=True
    )
    ids: dict[str, Any] = {}
    for spec, deployment in zip(specs, runner_deployments(specs), strict=True):
        ids[spec.agent] = runner.add_deployment(deployment)
    reactor_id = ids[REACTOR.agent]

    start_reactor = reactor_starter(reactor_id)

    watching = file_lock(watcher_lock_path(paths))
    if not watching.try_acquire():
        raise WatcherRunningError(
            f"aios watch already follows {paths.root}: stop it first (aios up watches too)"
        )
    api = HttpPrefectAPI(endpoints.api_url)
    watcher = EventWatcher(default_bus(), paths, config, start_reactor, api=api)
    watcher.start()
    watcher.ready.wait(60)
    dashboard = _dashboard(paths, config, endpoints, console)

    def announce() -> None:
        console.print(f"[bold green]AIOS is up[/] in {time.monotonic() - started:.1f} s")
        console.print(f"  Prefect UI: [bold]{endpoints.ui_url}[/]")
        console.print(f"  AIOS_HOME:  {paths.root}")
        if os.environ.get("PREFECT_API_AUTH_STRING"):
            console.print("  Prefect API and UI: credentials required (PREFECT_API_AUTH_STRING)")
        if dashboard is not None:
            console.print(f"  Dashboard:  [bold]{dashboard.url}[/]")
        chroma_url = os.environ.get("AIOS_CHROMA_URL")
        if chroma_url:
            console.print(f"  Chroma:     {chroma_url}")
        for spec in specs:
            console.print(f"  {spec.full_name:<28} {spec.schedule_text()}")
        console.print("  urgent (P0/P1) events start aios-reactor/aios at once")
        console.print("Ctrl-C stops it.")

    try:
        asyncio.run(_run_until_signalled(runner, announce))
    except (KeyboardInterrupt, TerminationSignal):
        pass
    finally:
        watcher.stop()
        watcher.join(10)
        if dashboard is not None:
            dashboard.stop()
        api.close()
        watching.release()
        console.print("runner, event watcher and dashboard stopped")
    return 0


def _dashboard(
    paths: HomePaths, config: Any, endpoints: Endpoints, console: Console
) -> DashboardServer | None:
    """The dashboard in a thread, its address added to up.json; a port in use is reported
    and AIOS runs on without it."""
    if not config.dashboard.enabled:
        return None
    try:
        dashboard = DashboardServer(
            paths,
            host=config.dashboard.host,
            port=config.dashboard.port,
            preset=config.score.preset,
            ui_url=lambda: endpoints.ui_url,
            allowed_hosts=tuple(config.dashboard.allowed_hosts),
        )
    except InputError as exc:
        console.print(f"[yellow]no dashboard:[/] {exc}")
        return None
    if dashboard.exposed:
        console.print(f"[yellow]warning:[/] {escape(dashboard.exposed)}")
    dashboard.start()
    info = read_up(paths) or {}
    write_atomic(up_file(paths), orjson.dumps({**info, "dashboard_url": dashboard.url}))
    return dashboard


def _log_to_stderr() -> None:
    """AIOS's own messages (the watcher's, say) next to Prefect's on stderr."""
    handler = logging.StreamHandler()
    handler.setFormatter(
        logging.Formatter("%(asctime)s | %(levelname)-7s | %(name)s - %(message)s")
    )
    logger = logging.getLogger("aios")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False


async def _run_until_signalled(runner: Any, announce: Callable[[], None]) -> None:
    """Run the runner until SIGINT or SIGTERM, then stop it (its flow runs are cancelled).
    ``announce`` runs once the signals are ours: from then on, either stops it cleanly."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    serving = asyncio.create_task(runner.start())
    for _ in range(3):  # let the runner install its own SIGTERM handler, then replace it
        await asyncio.sleep(0)
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    for _ in range(300):  # announce once the runner is really serving
        if getattr(runner, "started", False) or serving.done() or stop.is_set():
            break
        await asyncio.sleep(0.1)
    announce()
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
    if not serving.done():
        if getattr(runner, "started", False):
            await runner.astop()
        else:  # stopped while starting
            serving.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await serving
    stopping.cancel()
    error = serving.exception() if serving.done() and not serving.cancelled() else None
    if error is not None:
        raise error
