"""``aios up``, ``aios run FLOW`` and ``aios deploy --pool NAME``: AIOS on Prefect.

These commands load the Prefect side (``deployments/``, ``flows/``) only when they run, so the
rest of the CLI never pays for importing Prefect.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

import typer

from aios.cli.output import console, err_console, print_json, rows_table
from aios.errors import InputError

FLOW_NAMES = (
    "monitor",
    "analyst",
    "optimizer",
    "executor",
    "validator",
    "learner",
    "orchestrator",
    "reactor",
    "heartbeat",
    "maintenance",
)


def up() -> None:
    """Run AIOS: Prefect server, every deployment on its schedule, the event watcher, the
    dashboard.

    A local Prefect server starts unless PREFECT_API_URL names one (its port from
    PREFECT_SERVER_API_PORT, default 4200), and a Chroma server for lessons unless
    AIOS_CHROMA_URL names one; urgent events start the reactor at once. The dashboard listens
    on [dashboard] host and port (default http://127.0.0.1:8765). Prints both addresses.
    Ctrl-C stops the runner and the dashboard, then the servers.
    """
    from deployments.up import up as run_up

    raise typer.Exit(run_up(console=err_console))


def watch() -> None:
    """Start the reactor for urgent events when the deployments run on a work pool.

    `aios up` does this itself; with `aios deploy --pool NAME`, run `aios watch` on each
    machine whose event log should be followed (needs PREFECT_API_URL). Ctrl-C stops it.
    """
    from deployments.watch import watch as run_watch

    raise typer.Exit(run_watch(console=err_console))


def _parse_params(items: list[str]) -> dict[str, Any]:
    import orjson

    params: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InputError(f"--param {item!r} is not KEY=VALUE")
        try:
            params[key] = orjson.loads(value)
        except orjson.JSONDecodeError:
            params[key] = value
    return params


def run(
    flow: Annotated[str, typer.Argument(help=f"One of: {', '.join(FLOW_NAMES)}.")],
    param: Annotated[
        list[str] | None,
        typer.Option("--param", "-p", help="Flow parameter KEY=VALUE (JSON values allowed)."),
    ] = None,
    event: Annotated[
        list[str] | None,
        typer.Option("--event", help="reactor only: the id of an event to react to (repeat)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Run one flow now and print its result.

    Uses the server of `aios up` (or PREFECT_API_URL); without one, a temporary Prefect
    server for this run.
    """
    if flow not in FLOW_NAMES:
        raise InputError(f"{flow!r} is not a flow: use one of {', '.join(FLOW_NAMES)}")
    params = _parse_params(param or [])
    if event:
        if flow != "reactor":
            raise InputError("--event is for the reactor flow only")
        params["event_ids"] = list(event)
    from deployments.run_now import run_flow

    started = time.monotonic()
    result = run_flow(flow, params)
    if as_json:
        print_json(result)
        return
    console.print(f"[bold]aios-{flow}[/] finished in {time.monotonic() - started:.1f} s")
    from aios.cli.output import dumps

    console.print(dumps(result), markup=False, highlight=False)


def deploy(
    pool: Annotated[str, typer.Option("--pool", help="Work pool (created as process type).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Create or update every AIOS deployment on a work pool, for workers on many machines.

    Workers run them (`prefect worker start --pool NAME`). Needs PREFECT_API_URL or a
    running `aios up`.
    """
    import os

    from aios.prefect_api import api_url

    url = api_url()
    os.environ["PREFECT_API_URL"] = url
    import contextlib
    import sys

    from aios.config import load_config
    from deployments.deploy import deploy_to_pool

    with contextlib.redirect_stdout(sys.stderr):  # Prefect's own messages: not the answer
        done = deploy_to_pool(
            pool, url, max_remediations=load_config().orchestration.max_concurrent_remediations
        )
    if as_json:
        print_json(done)
        return
    console.print(
        rows_table(
            ["deployment", "schedule", "id"], [(d["name"], d["schedule"], d["id"]) for d in done]
        )
    )
    console.print(f"start workers with: prefect worker start --pool {pool}")


def evolve(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """One pass of agent evolution without Prefect: judge changes, propose and make new ones.

    A change that needs a person (a deployment parameter) asks at this terminal.
    """
    from datetime import UTC, datetime

    from aios.config import load_config
    from aios.evolution_runs import evolution_index
    from aios.evolution_runs import evolve as run_evolve
    from aios.home import HomePaths
    from aios.reactor.approval import TerminalApprover
    from aios.reactor.runner import load_index
    from aios.runtime import default_bus

    paths = HomePaths.current()
    config = load_config(paths)
    base, _ = load_index(config, strict=False)
    report = run_evolve(
        default_bus(),
        paths,
        config,
        evolution_index(paths, config, base),
        TerminalApprover(),
        now=datetime.now(UTC),
    )
    if as_json:
        print_json(report.to_dict())
        return
    console.print(report.to_markdown(), markup=False, highlight=False)
