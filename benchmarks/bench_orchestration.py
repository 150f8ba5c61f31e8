"""Orchestration through a real local Prefect server: how fast an urgent event is acted on,
what a flow run costs, and how much memory ``aios up`` takes.

- Event-to-action latency, two designs in the same run, on one Prefect server, samples
  interleaved, each emitted once the previous reactor run is over and its process gone (an
  urgent event meets an idle system). The event is a severity-high (P1) ``bench.urgent``; a
  low-risk, auto-executed playbook answers it with ``config.update`` on a file, verified by
  ``file_value``. Latency is from the event's ``time`` to the reactor's ``action.completed``
  with that ``correlation_id``; every event has its own labels, so its own breaker target.
  (a) ``watcher``: the real ``aios up`` (``PREFECT_API_URL`` set): its event watcher follows
  the log and creates a run of the served reactor deployment with the event's id, which the
  runner (``query_seconds`` = RUNNER_POLL_S) starts in a new process. (b) ``automation``: a
  mirror thread following the log (same 0.2 s poll as the watcher) sends each urgent event to
  Prefect's event stream (``emit_event``); an Automation (EventTrigger, reactive, threshold 1,
  RunDeployment) runs the reactor deployment with no parameters (it takes the urgent events
  not taken yet), served by a Runner with the same ``query_seconds``. Beside the latency, the
  steps in between: event handed on (dispatched / mirrored), run created, run Pending (the
  runner took it), run Running (Prefect's ``start_time``), reactor matched the playbook.
- Flow-run overhead: ``heartbeat_flow`` and ``monitor_flow`` called as Prefect flow runs
  against the server, minus their tasks' bodies (``task.fn()``) called without Prefect, median
  of the runs after a warm-up, alternating.
- Memory: the real ``aios up`` with its embedded server on a free port, summed over its whole
  process tree (RSS, and USS which does not count shared pages twice) after it said it was up
  and settled; then Ctrl-C, and whether everything exited.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any, TextIO
from uuid import UUID

from benchmarks.common import finish, in_fresh_process, percentile, temp_home

SAMPLES = 20
QUICK_SAMPLES = 3
OVERHEAD_RUNS = 10
QUICK_OVERHEAD_RUNS = 3
SETTLE_S = 20.0
SAMPLE_TIMEOUT_S = 90.0
IDLE_BETWEEN_S = 1.5  # after a run is final, for its process to exit
UP_TIMEOUT_S = 180.0
EVENT_TYPE = "bench.urgent"
MIRRORED_EVENT = "aios.event.urgent"
BENCH_DEPLOYMENT = "bench-automation"
AIOS_BIN = Path(sys.executable).parent / "aios"
TARGETS = {"watcher_latency_ms_p95": ("<=", 5000.0)}
# The reactor's last word on a remediation: once one is seen, the sample is over.
FINAL_TYPES = ("remediation.finished", "remediation.escalated", "playbook.skipped")


# ------------------------------------------------------------------ environment and processes
def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _clean_env(**extra: str) -> dict[str, str]:
    """This environment without AIOS_* and PREFECT_* settings, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIOS_", "PREFECT_"))}
    env.update(PREFECT_SERVER_ANALYTICS_ENABLED="false", NO_COLOR="1", COLUMNS="200")
    env.update(extra)
    return env


def _use_env(env: dict[str, str]) -> None:
    """Make ``env`` this process's environment (before Prefect is imported: it reads it)."""
    os.environ.clear()
    os.environ.update(env)


def _kill_tree(pid: int) -> None:
    """SIGKILL a process and everything under it that is still there."""
    import psutil

    try:
        root = psutil.Process(pid)
        procs = [*root.children(recursive=True), root]
    except psutil.NoSuchProcess:
        return
    for proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()
    psutil.wait_procs(procs, timeout=10)


def _drain_prefect_workers() -> None:
    """Send the logs and events this process still holds while the server is there, so
    nothing tries (and complains) at exit after it is gone."""
    if "prefect" not in sys.modules:
        return
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    with contextlib.suppress(Exception):
        APILogWorker.drain_all(timeout=10)
        EventsWorker.drain_all(timeout=10)


def _kill_my_children() -> None:
    """Whatever this phase started and is still running (flow-run processes of a runner)."""
    import psutil

    for child in psutil.Process().children():
        _kill_tree(child.pid)


@contextlib.contextmanager
def _quiet_fds(log_path: Path) -> Iterator[TextIO]:
    """Send this process's stdout and stderr (Prefect's and its flow runs' output) to
    ``log_path``; yields a stream on the real stdout, for progress."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved_out, saved_err = os.dup(1), os.dup(2)
    log = open(log_path, "ab")  # noqa: SIM115 - closed below, after the fds are restored
    os.dup2(log.fileno(), 1)
    os.dup2(log.fileno(), 2)
    real = os.fdopen(os.dup(saved_out), "w", buffering=1)
    try:
        yield real
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved_out, 1)
        os.dup2(saved_err, 2)
        os.close(saved_out)
        os.close(saved_err)
        real.close()
        log.close()


def _progress(stream: TextIO) -> Any:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    return Progress(
        "  [progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(file=stream),
    )


@dataclass
class _Up:
    """A running ``aios up`` and what it printed."""

    process: subprocess.Popen[str]
    output: list[str] = field(default_factory=list)
    ready: threading.Event = field(default_factory=threading.Event)
    ready_s: float = 0.0

    def text(self, lines: int = 40) -> str:
        return "".join(self.output[-lines:])


@contextlib.contextmanager
def _aios_up(env: dict[str, str], log_path: Path | None = None) -> Iterator[_Up]:
    """Start ``aios up`` and wait until it says it is up; Ctrl-C (then SIGKILL to its whole
    tree, if it does not exit) afterwards."""
    started = time.monotonic()
    process = subprocess.Popen(
        [str(AIOS_BIN), "up"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    up = _Up(process)
    sink: IO[str] | None = open(log_path, "a") if log_path else None  # noqa: SIM115

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            up.output.append(line)
            if sink is not None:
                sink.write(line)
            if "Ctrl-C stops it" in line and not up.ready.is_set():
                up.ready_s = time.monotonic() - started
                up.ready.set()
        up.ready.set()

    reader = threading.Thread(target=read, name="aios-up-output", daemon=True)
    reader.start()
    try:
        if not up.ready.wait(UP_TIMEOUT_S) or process.poll() is not None:
            raise RuntimeError(f"aios up did not come up:\n{up.text()}")
        yield up
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                _kill_tree(process.pid)
                process.wait(10)
        reader.join(5)
        if sink is not None:
            sink.close()


# ------------------------------------------------------------------------ the playbook side
@dataclass(frozen=True)
class _Workspace:
    """An allowed root holding an agent's config file, and a directory with one playbook."""

    root: Path
    playbooks: Path
    config: Path

    def reset(self) -> None:
        self.config.write_text('{\n  "limits": {\n    "level": 1\n  }\n}\n')

    def env(self) -> dict[str, str]:
        return {
            "AIOS_REACTOR__PLAYBOOK_DIRS": json.dumps([str(self.playbooks)]),
            "AIOS_REACTOR__ALLOWED_ROOTS": json.dumps([str(self.root)]),
        }


def _workspace(base: Path) -> _Workspace:
    """A low-risk, verified playbook for ``bench.urgent`` whose breaker never gets in the way
    (every sample also has its own target)."""
    root, playbooks = base / "agent-root", base / "playbooks"
    root.mkdir(parents=True)
    playbooks.mkdir()
    workspace = _Workspace(root, playbooks, root / "agent.json")
    workspace.reset()
    playbook = {
        "id": "bench_urgent",
        "description": "benchmark: set limits.level to 2 in the agent's config",
        "trigger": {"type": EVENT_TYPE},
        "actions": [
            {
                "type": "config.update",
                "file": str(workspace.config),
                "key": "limits.level",
                "value": 2,
            }
        ],
        "risk": "low",
        "auto_execute": True,
        "verify": {
            "probe": "file_value",
            "file": str(workspace.config),
            "key": "limits.level",
            "expect": "==2",
            "within": "10s",
            "interval": "0.2s",
        },
        "limits": {
            "max_runs": 1_000_000,
            "window": "1h",
            "failures_to_open": 1_000_000,
            "flap_count": 1_000_000,
        },
    }
    (playbooks / "bench_urgent.json").write_text(json.dumps(playbook, indent=2))
    return workspace


@dataclass
class _Sample:
    design: str
    event_id: str
    event_time: datetime
    steps: dict[str, datetime] = field(default_factory=dict)
    flow_run_id: str | None = None
    flow_created: datetime | None = None
    flow_pending: datetime | None = None  # the runner took it and starts its process
    flow_started: datetime | None = None

    def ms(self, when: datetime | None) -> float | None:
        return None if when is None else (when - self.event_time).total_seconds() * 1000

    @property
    def latency_ms(self) -> float | None:
        return self.ms(self.steps.get("action.completed"))


class _Design:
    """One way of getting from an event in a home's log to the reactor: emit and wait."""

    def __init__(self, name: str, home: Path, workspace: _Workspace) -> None:
        from aios.bus import EventBus
        from aios.log import EventLog

        self.name = name
        self.workspace = workspace
        self.bus = EventBus(EventLog(home / "events"))
        self.cursor = self.bus.log.end()
        self.samples: list[_Sample] = []
        self.failures: list[str] = []
        self.runs_created: int | None = None  # reactor runs the automation made, all told

    def sample(self, number: int) -> None:
        """Emit one urgent event and wait until the reactor is done with it."""
        self.workspace.reset()
        event = self.bus.emit(
            EVENT_TYPE,
            {"sample": number},
            source="bench",
            severity="high",
            labels={"design": self.name, "sample": str(number)},
        )
        record = _Sample(self.name, event.id, event.time)
        deadline = time.monotonic() + SAMPLE_TIMEOUT_S
        while not any(kind in record.steps for kind in FINAL_TYPES):
            if time.monotonic() > deadline:
                self.failures.append(f"{event.id}: nothing final within {SAMPLE_TIMEOUT_S:.0f} s")
                return
            time.sleep(0.02)
            for seen, after in self.bus.log.read(cursor=self.cursor):
                self.cursor = after
                if seen.correlation_id == event.id:
                    record.steps.setdefault(seen.type, seen.time)
                elif seen.type == "scheduler.dispatched" and event.id in seen.payload.get(
                    "event_ids", []
                ):
                    record.steps.setdefault(seen.type, seen.time)
                    record.flow_run_id = str(seen.payload.get("flow_run_id"))
        if "action.completed" not in record.steps:
            self.failures.append(f"{event.id}: {sorted(record.steps)}")
            return
        self.samples.append(record)


class _Mirror(threading.Thread):
    """Follows a log and sends each urgent event to Prefect's event stream, as a real mirror
    would (same poll as the watcher); ``sent`` says when, by AIOS event id."""

    def __init__(self, home: Path, poll_s: float) -> None:
        from aios.log import EventLog

        super().__init__(name="aios-prefect-mirror", daemon=True)
        self.log = EventLog(home / "events")
        self.cursor = self.log.end()
        self.poll_s = poll_s
        self.sent: dict[str, datetime] = {}
        self.errors: list[str] = []
        self._stop_flag = threading.Event()

    def stop(self) -> None:
        self._stop_flag.set()

    def run(self) -> None:
        from prefect.events import emit_event

        from aios.scheduler import Route, route_of

        while not self._stop_flag.is_set():
            try:
                for event, after in self.log.read(cursor=self.cursor):
                    self.cursor = after
                    if route_of(event) is not Route.REACTOR:
                        continue
                    emit_event(
                        event=MIRRORED_EVENT,
                        resource={
                            "prefect.resource.id": f"aios.event.{event.id}",
                            "prefect.resource.name": event.type,
                        },
                        occurred=event.time,
                        payload={"type": event.type, "severity": event.severity.value},
                    )
                    self.sent[event.id] = datetime.now(UTC)
            except Exception as exc:  # noted, and the mirror goes on like the watcher does
                self.errors.append(repr(exc))
            self._stop_flag.wait(self.poll_s)


def _fill_flow_runs(designs: list[_Design], automation_deployment: Any) -> None:
    """Prefect's own record of each sample's reactor run: when it was created and started."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
    from prefect.client.schemas.objects import StateType
    from prefect.client.schemas.sorting import FlowRunSort

    with get_client(sync_client=True) as client:
        for design in designs:
            if design.name == "watcher":
                for sample in design.samples:
                    if sample.flow_run_id:
                        run = client.read_flow_run(UUID(sample.flow_run_id))
                        sample.flow_created, sample.flow_started = run.created, run.start_time
                continue
            runs = client.read_flow_runs(
                deployment_filter=DeploymentFilter(
                    id=DeploymentFilterId(any_=[automation_deployment])
                ),
                sort=FlowRunSort.EXPECTED_START_TIME_ASC,
                limit=200,
            )
            design.runs_created = len(runs)
            taken: set[str] = set()
            for sample in design.samples:
                # the first run created after the event (samples are one at a time)
                for run in sorted(runs, key=lambda r: r.created or sample.event_time):
                    if str(run.id) in taken or run.created is None:
                        continue
                    if run.created >= sample.event_time:
                        taken.add(str(run.id))
                        sample.flow_run_id = str(run.id)
                        sample.flow_created, sample.flow_started = run.created, run.start_time
                        break
        for design in designs:
            for sample in design.samples:
                if sample.flow_run_id:
                    states = client.read_flow_run_states(UUID(sample.flow_run_id))
                    sample.flow_pending = min(
                        (st.timestamp for st in states if st.type is StateType.PENDING),
                        default=None,
                    )


def _wait_reactor_runs_done(timeout_s: float) -> None:
    """Let the last reactor runs finish (their verify and artifact) before the runners stop."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowFilter,
        FlowFilterName,
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType

    unfinished = FlowRunFilter(
        state=FlowRunFilterState(
            type=FlowRunFilterStateType(
                any_=[StateType.SCHEDULED, StateType.PENDING, StateType.RUNNING]
            )
        )
    )
    deadline = time.monotonic() + timeout_s
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            running = client.read_flow_runs(
                flow_filter=FlowFilter(name=FlowFilterName(any_=["aios-reactor"])),
                flow_run_filter=unfinished,
                limit=10,
            )
            if not running:
                return
            time.sleep(0.5)


def _summary(design: _Design, mirror: _Mirror | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    name = design.name

    def put(key: str, values: list[float | None]) -> None:
        found = [v for v in values if v is not None]
        if found:
            out[f"{name}_{key}_ms_p50"] = round(statistics.median(found))
            if key == "latency":
                out[f"{name}_{key}_ms_p95"] = round(percentile(found, 95))
                out[f"{name}_{key}_ms_max"] = round(max(found))

    samples = design.samples
    put("latency", [s.latency_ms for s in samples])
    if mirror is not None:
        put("mirrored", [s.ms(mirror.sent.get(s.event_id)) for s in samples])
    else:
        put("dispatched", [s.ms(s.steps.get("scheduler.dispatched")) for s in samples])
    put("run_created", [s.ms(s.flow_created) for s in samples])
    put("run_pending", [s.ms(s.flow_pending) for s in samples])
    put("run_started", [s.ms(s.flow_started) for s in samples])
    put("reactor_matched", [s.ms(s.steps.get("playbook.matched")) for s in samples])
    out[f"{name}_samples"] = len(samples)
    out[f"{name}_failed_samples"] = len(design.failures)
    if design.runs_created is not None:  # one run per event, or the trigger misfires
        out[f"{name}_runs_created"] = design.runs_created
    return out


def _watcher_poll_s() -> float:
    """The event watcher's own poll, so the mirror follows the log as often."""
    from deployments.watcher import EventWatcher

    return float(inspect.signature(EventWatcher).parameters["poll_s"].default)


async def _latency_async(
    samples: int, stream: TextIO, homes: dict[str, tuple[Path, _Workspace]]
) -> dict[str, Any]:
    """Serve the reactor for the automation design here, create the Automation, and sample
    both designs (``aios up`` serves the watcher design in its own process)."""
    from prefect.automations import Automation, EventTrigger, Posture, RunDeployment
    from prefect.runner import Runner
    from prefect.types.entrypoint import EntrypointType

    from deployments.up import RUNNER_LIMIT, RUNNER_POLL_S
    from flows.reactor import reactor_flow

    automation_home = homes["automation"][0]
    runner = Runner(name="aios-bench", query_seconds=RUNNER_POLL_S, limit=RUNNER_LIMIT)
    deployment = await reactor_flow.ato_deployment(
        name=BENCH_DEPLOYMENT,
        tags=["aios", "bench"],
        concurrency_limit=None,
        entrypoint_type=EntrypointType.MODULE_PATH,
    )
    deployment_id = await runner.aadd_deployment(deployment)
    automation = await Automation(
        name="aios-bench-urgent-to-reactor",
        description="benchmark: a mirrored urgent AIOS event runs the reactor deployment",
        trigger=EventTrigger(
            expect={MIRRORED_EVENT},
            match={"prefect.resource.id": "aios.event.*"},
            posture=Posture.Reactive,
            threshold=1,
            within=timedelta(0),
        ),
        actions=[RunDeployment(source="selected", deployment_id=deployment_id)],
    ).acreate()
    mirror = _Mirror(automation_home, _watcher_poll_s())
    designs = [_Design(name, home, workspace) for name, (home, workspace) in homes.items()]

    def measure() -> None:
        with _progress(stream) as progress:
            task = progress.add_task("event -> action, both designs", total=samples + 1)
            for number in range(samples + 1):  # the first round is a warm-up
                for design in designs if number % 2 else designs[::-1]:
                    design.sample(number)
                    # An urgent event meets an idle system: the last run has exited.
                    _wait_reactor_runs_done(60.0)
                    time.sleep(IDLE_BETWEEN_S)
                if number == 0:
                    for design in designs:
                        if design.failures:
                            raise RuntimeError(f"warm-up, {design.name}: {design.failures}")
                        design.samples.clear()
                progress.advance(task)
        _fill_flow_runs(designs, deployment_id)

    serving = asyncio.create_task(runner.start())
    try:
        for _ in range(300):
            if runner.started or serving.done():
                break
            await asyncio.sleep(0.1)
        if serving.done():
            serving.result()
        mirror.start()
        await asyncio.to_thread(measure)
    finally:
        mirror.stop()
        if runner.started:
            await runner.astop()
        else:
            serving.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await serving
        with contextlib.suppress(Exception):
            await automation.adelete()
        mirror.join(5)
    results: dict[str, Any] = {}
    for design in designs:
        results.update(_summary(design, mirror if design.name == "automation" else None))
        if design.failures:
            results[f"{design.name}_failures"] = design.failures[:3]
    if mirror.errors:
        results["mirror_errors"] = mirror.errors[:3]
    return results


def phase_latency(directory: str, samples: int) -> dict[str, Any]:
    """Both designs on one Prefect server; samples interleaved, one event at a time."""
    from aios.home import HomePaths
    from deployments.server import LocalServer

    scratch = Path(directory) / "latency"
    scratch.mkdir()
    homes = {
        name: (scratch / f"{name}-home", _workspace(scratch / f"{name}-workspace"))
        for name in ("watcher", "automation")
    }
    server = LocalServer(HomePaths(scratch / "server-home"), _free_port())
    with _quiet_fds(scratch / "output.log") as stream:
        stream.write("  starting a Prefect server and aios up ...\n")
        try:
            server.start()
            watcher_home, watcher_workspace = homes["watcher"]
            up_env = _clean_env(
                AIOS_HOME=str(watcher_home),
                PREFECT_API_URL=server.api_url,
                **watcher_workspace.env(),
            )
            automation_home, automation_workspace = homes["automation"]
            _use_env(
                _clean_env(
                    AIOS_HOME=str(automation_home),
                    PREFECT_API_URL=server.api_url,
                    PREFECT_HOME=str(scratch / "bench-prefect-home"),
                    **automation_workspace.env(),
                )
            )
            with _aios_up(up_env, scratch / "aios-up.log") as up:
                results = asyncio.run(_latency_async(samples, stream, homes))
                results["watcher_up_ready_s"] = round(up.ready_s, 1)
        except BaseException:
            with contextlib.suppress(OSError):
                log = (scratch / "output.log").read_text(errors="replace")
                stream.write(f"  output of the phase (tail):\n{log[-4000:]}\n")
            raise
        finally:
            _drain_prefect_workers()
            server.stop()
            _kill_my_children()
    watcher = results.get("watcher_latency_ms_p50")
    automation = results.get("automation_latency_ms_p50")
    if watcher and automation:
        results["ratio_automation_vs_watcher_p50"] = round(automation / watcher, 2)
    return results


# ----------------------------------------------------------------------- flow-run overhead
def phase_overhead(directory: str, runs: int) -> dict[str, Any]:
    """Each agent flow as a flow run against the server vs. its tasks' bodies without Prefect."""
    from aios.home import HomePaths
    from deployments.server import LocalServer

    scratch = Path(directory) / "overhead"
    scratch.mkdir()
    server = LocalServer(HomePaths(scratch / "server-home"), _free_port())
    results: dict[str, Any] = {}
    with _quiet_fds(scratch / "output.log") as stream:
        try:
            stream.write("  starting a Prefect server ...\n")
            server.start()
            _use_env(
                _clean_env(
                    AIOS_HOME=str(scratch / "home"),
                    PREFECT_API_URL=server.api_url,
                    PREFECT_HOME=str(scratch / "bench-prefect-home"),
                )
            )
            from flows.heartbeat import heartbeat_flow
            from flows.monitor import monitor_flow
            from flows.runtime import api_url
            from tasks.observe import flow_run_health, monitor_cycle
            from tasks.upkeep import record_heartbeat

            def heartbeat_core() -> None:
                record_heartbeat.fn()

            def monitor_core() -> None:
                monitor_cycle.fn()
                flow_run_health.fn(api_url())

            cases: list[tuple[str, Any, Callable[[], None]]] = [
                ("heartbeat", heartbeat_flow, heartbeat_core),
                ("monitor", monitor_flow, monitor_core),
            ]
            with _progress(stream) as progress:
                for name, flow, core in cases:
                    task = progress.add_task(f"{name}: flow run vs. core", total=runs + 1)
                    with_prefect: list[float] = []
                    without: list[float] = []
                    for index in range(runs + 1):  # the first of each is a warm-up
                        started = time.perf_counter()
                        state = flow(return_state=True)
                        flow_s = time.perf_counter() - started
                        if not state.is_completed():
                            raise RuntimeError(f"{name} flow run ended {state.type}: {state}")
                        started = time.perf_counter()
                        core()
                        core_s = time.perf_counter() - started
                        if index:
                            with_prefect.append(flow_s * 1000)
                            without.append(core_s * 1000)
                        progress.advance(task)
                    flow_ms, core_ms = statistics.median(with_prefect), statistics.median(without)
                    results[f"flow_run_ms_p50_{name}"] = round(flow_ms)
                    results[f"core_ms_p50_{name}"] = round(core_ms)
                    results[f"flow_overhead_ms_p50_{name}"] = round(flow_ms - core_ms)
        finally:
            _drain_prefect_workers()
            server.stop()
            _kill_my_children()
    results["overhead_runs"] = runs
    return results


# -------------------------------------------------------------------------- aios up memory
def _tree_memory(root_pid: int) -> dict[str, Any]:
    """RSS and USS of ``aios up`` and everything under it, in parts."""
    import psutil

    root = psutil.Process(root_pid)
    procs = [root, *root.children(recursive=True)]
    server_pids: set[int] = set()
    chroma_pids: set[int] = set()
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            cmd = " ".join(proc.cmdline())
            if "prefect" in cmd and "server" in cmd and "start" in cmd:
                server_pids |= {proc.pid, *(c.pid for c in proc.children(recursive=True))}
            if "chroma" in cmd and " run " in f" {cmd} ":
                chroma_pids |= {proc.pid, *(c.pid for c in proc.children(recursive=True))}
    parts = {
        "main": [0.0, 0.0, 0],
        "server": [0.0, 0.0, 0],
        "chroma": [0.0, 0.0, 0],
        "flow_runs": [0.0, 0.0, 0],
    }
    for proc in procs:
        part = "main" if proc.pid == root_pid else "server" if proc.pid in server_pids else None
        part = part or ("chroma" if proc.pid in chroma_pids else "flow_runs")
        with contextlib.suppress(psutil.Error):
            info = proc.memory_full_info()
            parts[part][0] += info.rss / 2**20
            parts[part][1] += info.uss / 2**20
            parts[part][2] += 1
    return {
        "total_rss": sum(p[0] for p in parts.values()),
        "total_uss": sum(p[1] for p in parts.values()),
        "count": sum(int(p[2]) for p in parts.values()),
        **{f"{name}_rss": p[0] for name, p in parts.items()},
        **{f"{name}_count": int(p[2]) for name, p in parts.items()},
        "pids": [p.pid for p in procs],
    }


def phase_up_memory(directory: str, settle_s: float) -> dict[str, Any]:
    """The real ``aios up`` (embedded server), up and settled, then stopped with Ctrl-C."""
    import psutil

    scratch = Path(directory) / "up-memory"
    scratch.mkdir()
    env = _clean_env(AIOS_HOME=str(scratch / "home"), PREFECT_SERVER_API_PORT=str(_free_port()))
    results: dict[str, Any] = {}
    with _quiet_fds(scratch / "output.log") as stream:
        stream.write("  starting aios up (embedded Prefect server) ...\n")
        pids: set[int] = set()
        try:
            with _aios_up(env, scratch / "aios-up.log") as up:
                results["up_ready_s"] = round(up.ready_s, 1)
                peak, flow_runs_peak = 0.0, 0
                with _progress(stream) as progress:
                    task = progress.add_task("aios up settling", total=int(settle_s))
                    for _ in range(int(settle_s)):
                        time.sleep(1)
                        seen = _tree_memory(up.process.pid)
                        pids |= set(seen["pids"])
                        peak = max(peak, seen["total_rss"])
                        flow_runs_peak = max(flow_runs_peak, seen["flow_runs_count"])
                        progress.advance(task)
                final = _tree_memory(up.process.pid)
                pids |= set(final["pids"])
                results.update(
                    up_total_rss_mb=round(final["total_rss"]),
                    up_total_rss_mb_peak=round(max(peak, final["total_rss"])),
                    up_total_uss_mb=round(final["total_uss"]),
                    up_process_count=final["count"],
                    up_main_rss_mb=round(final["main_rss"]),
                    up_server_rss_mb=round(final["server_rss"]),
                    up_server_process_count=final["server_count"],
                    up_chroma_rss_mb=round(final["chroma_rss"]),
                    up_flow_run_rss_mb=round(final["flow_runs_rss"]),
                    up_flow_run_process_count=final["flow_runs_count"],
                    up_flow_run_process_count_peak=max(flow_runs_peak, final["flow_runs_count"]),
                )
                stopping = time.monotonic()
                up.process.send_signal(signal.SIGINT)
                try:
                    results["up_exit_code"] = up.process.wait(60)
                except subprocess.TimeoutExpired:
                    results["up_exit_code"] = "did not exit within 60 s"
                results["up_stop_s"] = round(time.monotonic() - stopping, 1)
                time.sleep(1)
                left = [p for p in pids if psutil.pid_exists(p) and _is_alive(p)]
                results["up_processes_left_after_stop"] = len(left)
                for pid in left:
                    _kill_tree(pid)
        finally:
            _kill_my_children()
    return results


def _is_alive(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


# ----------------------------------------------------------------------------------- run
def run(quick: bool = False) -> dict[str, Any]:
    scratch = temp_home()
    results: dict[str, Any] = {}
    try:
        latency = in_fresh_process(phase_latency, str(scratch), QUICK_SAMPLES if quick else SAMPLES)
        overhead = in_fresh_process(
            phase_overhead, str(scratch), QUICK_OVERHEAD_RUNS if quick else OVERHEAD_RUNS
        )
        memory = in_fresh_process(phase_up_memory, str(scratch), SETTLE_S)
        for measured in (latency, overhead, memory):
            results.update({k: v for k, v in measured.items() if k != "peak_rss_mb"})
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return finish("orchestration", results, TARGETS, write=not quick)
