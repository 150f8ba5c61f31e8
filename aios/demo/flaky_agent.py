"""The demo's flaky agent: calls its search tool again and again, each call recorded with
``aios.track``; the tool (a local HTTP service) answers after ``--latency`` seconds and the
agent gives up after ``tools.timeout_s`` from its config file, read before every call.

With the demo's settings the tool takes 2 s and the timeout starts at 0.5 s: every call times
out until AIOS gives the tool enough time. ``aios demo`` runs it as ``python <...>/aios/demo/
flaky_agent.py`` with ``AIOS_HOME`` set to the demo's home.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

import aios
from aios.demo import lifeline
from aios.demo.identities import FLAKY_AGENT, FLAKY_TASK


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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", required=True, type=Path, help="The agent's config file.")
    parser.add_argument("--latency", type=float, default=2.0, help="Seconds the tool takes.")
    parser.add_argument("--pause", type=float, default=1.0, help="Seconds between calls.")
    args = parser.parse_args(argv)
    lifeline.hold()
    SlowSearch.latency = args.latency
    server = QuietServer(("127.0.0.1", 0), SlowSearch)
    threading.Thread(target=server.serve_forever, name="slow-search", daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/search"
    labels = {"config_file": str(args.config)}
    while True:  # SIGTERM ends it (the default action)
        timeout_s = timeout_of(args.config)
        try:
            with aios.track(FLAKY_TASK, agent=FLAKY_AGENT, labels=labels) as task:
                task.set(timeout_s=timeout_s)
                search(url, timeout_s)
        except TimeoutError:
            pass  # recorded as task.failed; the agent carries on
        time.sleep(args.pause)


if __name__ == "__main__":
    main()
