"""One ``aios demo`` from start to end: a fresh home, the demo's config and playbooks, the
scenario, the summary read back from the store, then ``aios up`` kept running for the Prefect
UI until Ctrl-C (or stopped at once with ``keep_running=False``).

Every child process is stopped on every way out: the end, an error, Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from aios.cli.output import print_json
from aios.demo import summary_view
from aios.demo.child_processes import Children
from aios.demo.config_file import cpu_plan, write_config
from aios.demo.demo_home import prepare
from aios.demo.embedded_up import PREFERRED_PORT, Endpoints, choose_port
from aios.demo.evidence import Row, summary_rows
from aios.demo.playbooks import write_playbooks
from aios.demo.progress_view import StageView
from aios.demo.scenario import STAGES, Scenario
from aios.errors import AIOSError, InputError
from aios.ports import port_free
from aios.prefect_api import read_up

INTERRUPTED = 130
DASHBOARD_PORT = 8765  # the dashboard's own default; 0 lets it take a free port


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def run_demo(home: Path, *, keep_running: bool, as_json: bool, console: Console) -> int:
    """Run the demo in ``home``; returns the exit code: 0 when every stage happened, 1 when
    one did not, 130 when interrupted. Raises DemoHomeError (exit 2) for a home it may not
    use."""
    began = time.monotonic()
    port = choose_port(_preferred_port())
    site = prepare(home)
    cpu = cpu_plan(os.cpu_count() or 1)
    write_config(site, cpu, DASHBOARD_PORT if port_free(DASHBOARD_PORT) else 0)
    write_playbooks(site, cpu.raise_at)
    console.print(
        f"[bold]aios demo[/] in {escape(str(site.root))} (a fresh AIOS_HOME): AIOS deals with "
        "a real workload in a few minutes; every line of the summary is read back from its "
        "event log."
    )
    children = Children()
    view = StageView(console, STAGES)
    scenario = Scenario(site, children, view, cpu, port)
    previous = signal.signal(signal.SIGTERM, _interrupt)
    # Ctrl-C stops the demo even when it was started with SIGINT ignored (in the background).
    previous_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        failure: str | None = None
        try:
            scenario.play()
        except AIOSError as exc:  # aios up gone, the Prefect API failing: said, then summed up
            failure = str(exc)
            view.missed(failure)
        finally:
            scenario.stop_workload()
        endpoints = _endpoints(site.paths.root, scenario)
        rows: list[Row] = summary_rows(site.paths, scenario.facts)
        ok = bool(rows) and all(row.happened for row in rows) and not scenario.missed
        ok = ok and failure is None
        elapsed = time.monotonic() - began
        summary_view.show(console, rows, endpoints, site.root)
        verdict = "every stage happened" if ok else "some stages did not happen (marked ✘)"
        console.print(f"  {verdict}; {elapsed:.0f} s in all")
        if as_json:
            print_json(
                summary_view.as_json(
                    rows,
                    endpoints,
                    site.root,
                    ok=ok,
                    missed=scenario.missed,
                    failure=failure,
                    elapsed_s=elapsed,
                    facts=scenario.facts.to_dict(),
                )
            )
        code = 0 if ok else 1
        if keep_running and scenario.up is not None and scenario.up.running():
            console.print(
                "AIOS keeps running so you can look around in the Prefect UI; Ctrl-C stops it."
            )
            try:
                while scenario.up.running():
                    time.sleep(0.5)
            except KeyboardInterrupt:
                pass
        return code
    except KeyboardInterrupt:
        console.print("interrupted: stopping the workload and aios up")
        return INTERRUPTED
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut this short
        scenario.close()
        with console.status("stopping the workload and aios up ..."):
            children.stop_all(last=scenario.up)
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, previous_int)
        console.print("stopped")


def _preferred_port() -> int:
    """``PREFECT_SERVER_API_PORT`` when set (as for ``aios up``), else 4200."""
    raw = os.environ.get("PREFECT_SERVER_API_PORT", "").strip()
    if not raw:
        return PREFERRED_PORT
    if not raw.isdigit() or not 1 <= int(raw) <= 65535:
        raise InputError(f"PREFECT_SERVER_API_PORT={raw!r}: a port number from 1 to 65535")
    return int(raw)


def _endpoints(root: Path, scenario: Scenario) -> Endpoints | None:
    """What aios up recorded, read again now (keys such as the dashboard may have come)."""
    from aios.home import HomePaths

    record = read_up(HomePaths(root))
    if record and scenario.up is not None and record.get("pid") == scenario.up.pid:
        return Endpoints.from_record(record)
    return scenario.facts.endpoints
