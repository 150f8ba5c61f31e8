"""The ``aios`` command: entry point, top-level commands and the exit-code contract.

Exit codes: 0 ok, 1 a check failed, 2 bad input or usage (with a message naming what is wrong).
"""

from __future__ import annotations

import math
import re
import sys
from typing import Annotated, Any

import orjson
import typer
from rich.markup import escape

from aios import __version__
from aios.cli import (
    approvals_cmd,
    dashboard_cmd,
    demo_cmd,
    doctor_cmd,
    events_cmd,
    lessons_cmd,
    observe_cmd,
    orchestration_cmd,
    playbooks_cmd,
    plugins_cmd,
    score_cmd,
)
from aios.cli.output import console, err_console, event_json, print_json
from aios.errors import AIOSError, InputError

app = typer.Typer(
    name="aios",
    help="AIOS: self-healing operations for AI-agent workloads.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
)
app.add_typer(events_cmd.app, name="events")
app.add_typer(playbooks_cmd.app, name="playbooks")
app.command("doctor")(doctor_cmd.doctor)
app.command("react")(playbooks_cmd.react)
app.command("score")(score_cmd.score)
app.command("monitor")(observe_cmd.monitor)
app.command("agents")(observe_cmd.agents)
app.add_typer(observe_cmd.ingest_app, name="ingest")
app.add_typer(approvals_cmd.app, name="approvals")
app.add_typer(lessons_cmd.app, name="lessons")
app.add_typer(plugins_cmd.app, name="plugins")
app.command("up")(orchestration_cmd.up)
app.command("run")(orchestration_cmd.run)
app.command("deploy")(orchestration_cmd.deploy)
app.command("watch")(orchestration_cmd.watch)
app.command("evolve")(orchestration_cmd.evolve)
app.command("demo")(demo_cmd.demo)
app.command("dashboard")(dashboard_cmd.dashboard)


def _version(value: bool) -> None:
    if value:
        console.print(f"aios {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    """AIOS watches agent workloads, fixes what is safe to fix, verifies, rolls back, scores
    and learns. State lives in $AIOS_HOME (default ~/.aios)."""


@app.command()
def init() -> None:
    """Create $AIOS_HOME with a commented config.toml (keeps an existing one)."""
    from aios.config import config_template, load_config
    from aios.home import HomePaths, make_private_dir

    paths = HomePaths.current()
    make_private_dir(paths.events)
    if paths.config.exists():
        load_config(paths)  # a broken existing file is reported, never overwritten
        console.print(f"kept existing {escape(str(paths.config))}")
    else:
        from aios.atomic import write_atomic

        write_atomic(paths.config, config_template().encode())
        console.print(f"wrote {escape(str(paths.config))}")
    from aios.observe.http_ingest import ensure_token, token_path

    ensure_token(paths)
    (paths.root / "inbox").mkdir(exist_ok=True)
    console.print(f"ingest token: {escape(str(token_path(paths)))} (owner-only)")
    console.print(f"AIOS home: {escape(str(paths.root))}")


_JSON_NUMBER = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?")


def _parse_value(text: str) -> Any:
    """``-p`` values: JSON numbers become numbers; anything else (``007``, ``1_000``) a string."""
    if not _JSON_NUMBER.fullmatch(text):
        return text
    if text.lstrip("-").isdigit():
        if len(text) > 20:  # past 64 bits, which events cannot hold (and int() refuses 4300+)
            raise InputError(f"-p value {text[:24]}... ({len(text)} digits) is too large a number")
        return int(text)
    value = float(text)
    return value if math.isfinite(value) else text


@app.command()
def emit(
    event_type: Annotated[
        str, typer.Argument(metavar="TYPE", help="Dotted type, e.g. resource.high")
    ],
    source: Annotated[str, typer.Option("--source", "-s", help="Who emits it.")] = "cli",
    severity: Annotated[
        str, typer.Option("--severity", help="info, low, medium, high or critical.")
    ] = "info",
    label: Annotated[
        list[str] | None, typer.Option("--label", "-l", help="KEY=VALUE (repeatable).")
    ] = None,
    payload: Annotated[
        str | None, typer.Option("--payload", help="The payload as a JSON object.")
    ] = None,
    field: Annotated[
        list[str] | None,
        typer.Option("-p", help="Payload KEY=VALUE (repeatable); numbers become numbers."),
    ] = None,
    correlation_id: Annotated[str | None, typer.Option(help="Correlation id.")] = None,
    causation_id: Annotated[str | None, typer.Option(help="Id of the causing event.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the whole event as JSON.")] = False,
) -> None:
    """Append an event to the log (durably) and print its id."""
    from aios.event import check_outside_source
    from aios.event_filter import parse_labels
    from aios.runtime import default_bus

    if payload is not None and field:
        raise InputError("give the payload either as --payload JSON or as -p KEY=VALUE, not both")
    data: dict[str, Any] = {}
    if payload is not None:
        try:
            data = orjson.loads(payload)
        except orjson.JSONDecodeError as exc:
            raise InputError(f"--payload: bad JSON: {exc}") from None
        if not isinstance(data, dict):
            raise InputError(f"--payload must be a JSON object, got {type(data).__name__}")
    for item in field or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InputError(f"-p {item!r} is not KEY=VALUE")
        data[key] = _parse_value(value)
    try:
        labels = parse_labels(label or [])
    except InputError as exc:
        raise InputError(f"--label: {exc}") from None
    check_outside_source(source)
    event = default_bus().emit(
        event_type,
        data,
        source=source,
        severity=severity,
        labels=labels,
        correlation_id=correlation_id,
        causation_id=causation_id,
    )
    if as_json:
        print_json(event_json(event))
    else:
        console.print(event.id)


def run() -> None:
    """Console-script entry point: AIOS errors become a message and their exit code."""
    try:
        app()
    except AIOSError as exc:
        err_console.print(f"[bold red]error:[/] {escape(str(exc))}", soft_wrap=True)
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    run()
