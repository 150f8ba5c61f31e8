"""``aios demo``: a self-contained scenario on the embedded default, in a few minutes.

The work is in ``aios.demo``; this module only reads the options.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from aios.cli.output import err_console


def demo(
    home: Annotated[
        Path | None,
        typer.Option(
            "--home",
            help="The demo's AIOS_HOME (default: $AIOS_DEMO_HOME, else ~/.aios-demo). Cleared "
            "on each run when an earlier demo made it; any other non-empty directory is "
            "refused.",
        ),
    ] = None,
    exit_after: Annotated[
        bool,
        typer.Option(
            "--exit", help="Stop everything after the summary instead of keeping aios up."
        ),
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Also print the summary as JSON on stdout.")
    ] = False,
) -> None:
    """Watch AIOS deal with a real workload, start to end, in a few minutes.

    Starts `aios up` on a fresh home (local Prefect server, Chroma, every deployment, the
    event watcher) and a workload: an idle agent while CPU burners keep the CPU busy, a
    flaky agent (a Prefect flow, its runs in the UI) whose tool times out, a temp directory
    filling the disk, an agent config file. AIOS detects each problem, remediates (one
    approval, granted automatically because this is the demo, and said so), verifies, rolls
    back a fix that did not work, learns a lesson and records the score. It ends with a
    summary read back from the event log and the addresses of the Prefect UI and the
    dashboard; `aios up` keeps running until Ctrl-C unless --exit is given. Exit 0 when
    every stage happened, 1 when one did not.
    """
    from aios.demo.run_demo import run_demo
    from aios.home import demo_home

    raise typer.Exit(
        run_demo(
            home or demo_home(),
            keep_running=not exit_after,
            as_json=as_json,
            console=err_console,
        )
    )
