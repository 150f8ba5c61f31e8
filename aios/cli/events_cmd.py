"""``aios events ...``: read, verify, replay and query the event log."""

from __future__ import annotations

import csv
import sys
import time
from collections import Counter
from typing import Annotated, Any

import orjson
import typer
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TransferSpeedColumn

from aios.cli.output import console, err_console, event_json, events_table, print_json, rows_table
from aios.durations import parse_time
from aios.errors import InputError
from aios.event import Event
from aios.event_filter import EventFilter, parse_labels

app = typer.Typer(help="Read, verify, replay and query the event log.", no_args_is_help=True)

TypeOpt = Annotated[
    list[str] | None,
    typer.Option("--type", "-t", help="Event type glob (repeatable), e.g. 'task.*'."),
]
SinceOpt = Annotated[
    str | None, typer.Option(help="Only events at or after: a duration ago (24h) or ISO time.")
]
UntilOpt = Annotated[
    str | None, typer.Option(help="Only events at or before: a duration ago or ISO time.")
]
SourceOpt = Annotated[list[str] | None, typer.Option("--source", help="Source glob (repeatable).")]
LabelOpt = Annotated[
    list[str] | None, typer.Option("--label", "-l", help="KEY=VALUE that must match (repeatable).")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def build_filter(
    types: list[str] | None,
    since: str | None,
    until: str | None = None,
    sources: list[str] | None = None,
    labels: list[str] | None = None,
) -> EventFilter:
    return EventFilter(
        types=tuple(types or ()),
        since=parse_time(since) if since else None,
        until=parse_time(until) if until else None,
        sources=tuple(sources or ()),
        labels=parse_labels(labels or []),
    )


def _log() -> Any:
    from aios.runtime import default_bus

    return default_bus().log


@app.command()
def tail(
    n: Annotated[int, typer.Option("-n", min=1, help="How many events.")] = 20,
    types: TypeOpt = None,
    since: SinceOpt = None,
    source: SourceOpt = None,
    label: LabelOpt = None,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new events as they arrive.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Show the newest events, oldest first (--json: a list; with --follow, one per line)."""
    flt = build_filter(types, since, None, source, label)
    log = _log()
    newest: list[Event] = []
    for event in log.newest_first(flt):
        newest.append(event)
        if len(newest) >= n:
            break
    newest.reverse()
    if as_json and not follow:
        print_json([event_json(e) for e in newest])
        return
    if as_json:
        for event in newest:
            print_json(event_json(event), indent=False)
    elif newest or not follow:
        console.print(events_table(newest))
    if not follow:
        return
    cursor = log.end()
    try:
        while True:
            batch = []
            for event, after in log.read(flt, cursor):
                batch.append(event)
                cursor = after
            if batch:
                if as_json:
                    for event in batch:
                        print_json(event_json(event), indent=False)
                else:
                    console.print(events_table(batch))
            time.sleep(0.5)
    except KeyboardInterrupt:
        return


@app.command()
def verify(as_json: JsonOpt = False) -> None:
    """Walk the hash chain. Exit 0 with the count when intact; 1 naming the first break."""
    log = _log()
    with Progress(
        TextColumn("verifying"),
        BarColumn(),
        TransferSpeedColumn(),
        console=err_console,
        transient=True,
        disable=as_json or not err_console.is_terminal,
    ) as progress:
        task = progress.add_task("verify", total=None)
        report = log.verify(lambda done, total: progress.update(task, completed=done, total=total))
    if as_json:
        print_json(report.to_dict())
    elif report.ok:
        console.print(
            f"[green]intact[/]: {report.events} events in {report.segments} segment(s); "
            f"last hash {report.last_hash[:16]}…"
        )
        for note in report.notes:
            console.print(f"note: {escape(note)}")
    else:
        assert report.first_break is not None
        where = escape(str(log.directory / report.first_break.segment))
        err_console.print(
            f"[bold red]BROKEN[/] at {where} line {report.first_break.line} "
            f"({report.first_break.kind}): {escape(report.first_break.detail)}"
        )
        err_console.print(f"{report.events} events verified before the break.")
    raise typer.Exit(0 if report.ok else 1)


@app.command()
def repair(as_json: JsonOpt = False) -> None:
    """Set aside a torn or unfinished tail now (writers also do this on their next append)."""
    from aios.runtime import default_bus

    notices = default_bus().log.repair()
    if as_json:
        print_json([event_json(e) for e in notices])
    elif not notices:
        console.print("nothing to repair")
    for event in notices if not as_json else []:
        console.print(f"{event.type}: {escape(orjson.dumps(event.payload).decode())}")


@app.command()
def replay(
    types: TypeOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    source: SourceOpt = None,
    label: LabelOpt = None,
    handler: Annotated[
        list[str] | None,
        typer.Option(
            "--handler",
            help="MODULE:FUNCTION to deliver to (repeatable); default: \\[bus].subscribers.",
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Count what would be delivered; call nothing.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Re-dispatch stored events to handlers (rebuild a projection, try a handler on history)."""
    from aios.bus import load_handler
    from aios.config import load_config
    from aios.runtime import default_bus

    flt = build_filter(types, since, until, source, label)
    bus = default_bus()
    specs = [(s.pattern, s.handler) for s in load_config().bus.subscribers]
    specs += [(p, h) for h in handler or [] for p in (types or ["*"])]
    if not specs:
        raise InputError(
            "no handlers to replay to: pass --handler MODULE:FUNCTION or add [bus].subscribers "
            "to config.toml"
        )
    from aios.bus import EventBus, Subscription

    target = EventBus(bus.log)
    subs: list[Subscription] = [
        target.subscribe(pattern, load_handler(spec), name=f"{spec} ({pattern})")
        for pattern, spec in specs
    ]
    if dry_run:
        counts: Counter[str] = Counter()
        per_handler: Counter[str] = Counter()
        for event in bus.log.events(flt):
            counts[event.type] += 1
            for sub in subs:
                if sub.matches(event.type):
                    per_handler[sub.name] += 1
        would = {s.name: per_handler[s.name] for s in subs}
        if as_json:
            print_json(
                {
                    "dry_run": True,
                    "events": sum(counts.values()),
                    "by_type": dict(counts),
                    "would_deliver": would,
                }
            )
        else:
            console.print(f"dry run: {sum(counts.values())} events match; nothing was delivered")
            console.print(rows_table(["handler", "would receive"], list(would.items())))
        return
    with Progress(
        TextColumn("replaying {task.completed} events"),
        console=err_console,
        transient=True,
        disable=as_json or not err_console.is_terminal,
    ) as progress:
        task = progress.add_task("replay", total=None)
        report = target.replay(
            flt, handlers=subs, progress=lambda n: progress.update(task, completed=n)
        )
    if as_json:
        print_json(report.__dict__)
    else:
        console.print(f"replayed {report.events} events")
        console.print(rows_table(["handler", "delivered"], list(report.delivered.items())))
        for failure in report.failures[:20]:
            err_console.print(
                escape(
                    f"handler {failure['handler']} failed on {failure['event_id']}: "
                    f"{failure['error']}"
                )
            )
    raise typer.Exit(1 if report.failures else 0)


@app.command()
def sql(
    query: Annotated[str, typer.Argument(metavar="SQL", help="One SELECT (or DESCRIBE, SHOW).")],
    as_json: Annotated[bool, typer.Option("--json", help="A JSON list of row objects.")] = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="CSV with a header row.")] = False,
    timeout: Annotated[
        float, typer.Option(min=0.1, help="Stop the query after this many seconds.")
    ] = 60.0,
) -> None:
    """Read-only SQL over the DuckDB projections (tables: events, ...). Writes are refused."""
    from aios.store.readonly_sql import run_readonly

    if as_json and as_csv:
        raise InputError("choose one of --json and --csv")
    result = run_readonly(query, timeout=timeout)
    json_columns = {i for i, t in enumerate(result.types) if t.upper() == "JSON"}
    if as_json:
        rows = [
            {
                col: orjson.loads(v) if i in json_columns and isinstance(v, str) else v
                for i, (col, v) in enumerate(zip(result.columns, row, strict=True))
            }
            for row in result.rows
        ]
        print_json(rows)
    elif as_csv:
        writer = csv.writer(sys.stdout)
        writer.writerow(result.columns)
        writer.writerows(result.rows)
    else:
        console.print(rows_table(result.columns, result.rows))
        console.print(f"{len(result.rows)} row(s)", style="dim")


@app.command()
def rebuild(
    projection: Annotated[
        list[str] | None, typer.Argument(help="Projections to rebuild (default: everything).")
    ] = None,
) -> None:
    """Rebuild DuckDB projections from the log (the log is the source of truth)."""
    from aios.store import open_store
    from aios.store import rebuild as forget
    from aios.store.projections import registered_projections
    from aios.store.sync import SyncReport

    names = projection or None
    known = {p.name for p in registered_projections()}
    unknown = [n for n in names or [] if n not in known and n != "events"]
    if unknown:
        choices = ", ".join(["events", *sorted(known)])
        raise InputError(f"unknown projection(s): {', '.join(unknown)} (known: {choices})")
    if names and "events" in names:
        names = None
    with open_store(sync_first=False) as con:
        from aios.store.sync import ensure_schema

        ensure_schema(con)
        forget(con, names)
    report = SyncReport()
    with open_store(report=report):
        pass
    what = "everything" if names is None else ", ".join(names)
    console.print(f"rebuilt {escape(what)}: {report.seq} events in the log")
