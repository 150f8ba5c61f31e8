"""The demo's flaky agent: a Prefect flow, ``demo-researcher``, run again and again against the
Prefect server of the demo's ``aios up`` (``PREFECT_API_URL``), so its runs are in the Prefect UI.

Each flow run calls the search tool once, as a Prefect task: the task reads ``tools.timeout_s``
from the agent's config file and calls a local HTTP service that answers after ``--latency``
seconds, recorded with ``aios.track`` (``task.started``, then ``task.completed`` or
``task.failed`` with the agent, the task and the config file as labels, and the flow run's id).
A call that times out fails the flow run, with the tool's error as its message.

With the demo's settings the tool takes 2 s and the timeout starts at 0.5 s: every run fails
until AIOS gives the tool enough time. ``aios demo`` runs it as ``python <...>/aios/demo/
flaky_agent.py`` with ``AIOS_HOME`` set to the demo's home. The runs happen in a thread of their
own, so SIGTERM (which Prefect takes over in the main thread during a run) lets the run under
way finish and then ends the agent, instead of leaving a crashed run behind.
"""

from __future__ import annotations

import argparse
import json
import signal
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

import aios
from aios.demo import lifeline
from aios.demo.identities import FLAKY_AGENT, FLAKY_TASK

STOP_WAIT_S = 8.0  # for the run under way to finish (the tool answers in 2 s)


class SlowSearch(BaseHTTPRequestHandler):
    """The tool's service: answers every query, after ``latency`` seconds."""

    latency = 2.0

    def do_GET(self) -> None:
        time.sleep(self.latency)
        body = b'{"results": ["a paper on self-healing systems"]}'
        try:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except OSError:
            pass  # the caller gave up waiting: nobody to answer

    def log_message(self, format: str, *args: Any) -> None:
        pass


class QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a connection the caller closed early is not news


def timeout_of(config: Path) -> float:
    """``tools.timeout_s`` from the agent's config file."""
    return float(json.loads(config.read_text(encoding="utf-8"))["tools"]["timeout_s"])


def search(url: str, timeout_s: float) -> dict[str, Any]:
    """One call of the tool; raises TimeoutError when it does not answer in time."""
    try:
        response = httpx.get(url, params={"q": "self-healing"}, timeout=timeout_s)
    except httpx.TimeoutException:
        raise TimeoutError(f"tool 'search' did not answer within {timeout_s:g} s") from None
    response.raise_for_status()
    result: dict[str, Any] = response.json()
    return result


def failed_run(exc: BaseException) -> Any:
    """The state of a run the tool failed: the tool's error as ``Type: message``, without the
    "Flow run encountered an exception:" Prefect puts before an exception that escapes a flow.
    The monitor's flow-run health reads the message as the failure's error, so the failed run
    has the signature of the agent's own ``task.failed``: one failure, one lesson."""
    from prefect.states import Failed

    return Failed(message=f"{type(exc).__name__}: {exc}")


def researcher_flow() -> Any:
    """The ``demo-researcher`` flow. Prefect is imported here, in the agent's own process
    only: the rest of ``aios`` never imports it."""
    from prefect import flow, task
    from prefect.cache_policies import NO_CACHE
    from prefect.runtime import flow_run

    @task(name=FLAKY_TASK, cache_policy=NO_CACHE, persist_result=False)
    def search_tool(url: str, config: str) -> dict[str, Any]:
        """The tool call: the timeout is read from the config file just before the call
        (AIOS may have changed it since the last one)."""
        timeout_s = timeout_of(Path(config))
        labels = {"config_file": config}
        with aios.track(FLAKY_TASK, agent=FLAKY_AGENT, labels=labels) as tracked:
            tracked.set(timeout_s=timeout_s, flow_run_id=str(flow_run.id or ""))
            return search(url, timeout_s)

    @flow(name=FLAKY_AGENT, persist_result=False)
    def researcher(url: str, config: str) -> Any:
        """Look something up with the search tool; a tool timeout fails the run."""
        try:
            return search_tool(url, config)
        except TimeoutError as exc:
            return failed_run(exc)

    return researcher


def run_until(stop: threading.Event, url: str, config: Path, pause_s: float) -> None:
    """One flow run, a pause, the next, until ``stop`` is set; a run that fails in another way
    (the Prefect server gone) is logged, and the agent carries on."""
    researcher = researcher_flow()
    while not stop.is_set():
        began = time.monotonic()
        try:
            state = researcher(url, str(config), return_state=True)
            outcome = f"{state.name}: {state.message or ''}".strip(": ")
        except Exception as exc:  # the agent keeps running for the demo
            outcome = f"could not run: {type(exc).__name__}: {exc}"
        print(f"flow run {outcome} ({time.monotonic() - began:.2f} s)", flush=True)
        stop.wait(pause_s)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", required=True, type=Path, help="The agent's config file.")
    parser.add_argument("--latency", type=float, default=2.0, help="Seconds the tool takes.")
    parser.add_argument("--pause", type=float, default=3.0, help="Seconds between flow runs.")
    args = parser.parse_args(argv)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    lifeline.hold()
    SlowSearch.latency = args.latency
    server = QuietServer(("127.0.0.1", 0), SlowSearch)
    threading.Thread(target=server.serve_forever, name="slow-search", daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/search"
    runs = threading.Thread(
        target=run_until, args=(stop, url, args.config, args.pause), name="flow-runs", daemon=True
    )
    runs.start()
    while not stop.wait(1.0):
        if not runs.is_alive():
            break
    runs.join(STOP_WAIT_S)


if __name__ == "__main__":
    main()
