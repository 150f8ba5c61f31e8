"""``aios monitor``, ``aios agents`` and ``aios ingest serve``: observing without Prefect."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.text import Text

from aios.cli.output import console, err_console, print_json, rows_table

ingest_app = typer.Typer(help="Take in events from other programs over HTTP.", no_args_is_help=True)


def monitor(
    once: Annotated[bool, typer.Option("--once", help="One cycle, then stop.")] = False,
    interval: Annotated[
        str | None, typer.Option(help="Between cycles (default: \\[monitor] interval).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print each cycle as JSON.")] = False,
) -> None:
    """Observe the host and the agents, detect, and record: one cycle, or a loop."""
    from aios.config import load_config
    from aios.durations import parse_duration
    from aios.home import HomePaths
    from aios.observe.host import HostCollector
    from aios.observe.monitor import run_cycle
    from aios.runtime import default_bus

    config = load_config()
    pause = parse_duration(interval) if interval else config.monitor.interval
    collector = HostCollector(config.monitor.sample.total_seconds())
    paths = HomePaths.current()
    try:
        while True:
            started = time.monotonic()
            try:
                report = run_cycle(default_bus(), paths, config, collector)
            except Exception as exc:  # a loop keeps going; a single cycle reports it
                if once:
                    raise
                err_console.print(f"cycle failed: {type(exc).__name__}: {exc}")
            else:
                if as_json:
                    print_json(report.to_dict(), indent=once)
                else:
                    _show(report)
                if once:
                    raise typer.Exit(1 if report.failed_steps else 0)
            time.sleep(max(0.0, pause.total_seconds() - (time.monotonic() - started)))
    except KeyboardInterrupt:
        raise typer.Exit(130) from None


def _show(report: Any) -> None:
    s = report.snapshot
    console.print(
        Text(
            f"{s.host}: cpu {s.cpu_percent:.1f}%  memory {s.memory_percent:.1f}%  "
            f"swap {s.swap_percent:.1f}%  load {s.load[0]:.2f}  disk max {s.disk_max:.1f}%  "
            f"net in {s.net_recv_per_s / 1024:.1f} KiB/s out {s.net_sent_per_s / 1024:.1f} KiB/s  "
            f"processes {s.process_count}" + (f"  gpus {len(s.gpus)}" if s.gpus else ""),
            style="bold",
        )
    )
    if report.agents:
        console.print(
            rows_table(
                ["agent", "processes", "cpu %", "rss MB"],
                [
                    (a.agent, len(a.processes), a.cpu_percent, a.rss_mb)
                    for a in report.agents.values()
                ],
            )
        )
    if report.inbox.files:
        console.print(
            f"inbox: {report.inbox.files} file(s), {report.inbox.accepted} accepted, "
            f"{report.inbox.rejected} rejected"
        )
    shown = [e for e in report.emitted if e.type not in ("host.metrics", "agent.metrics")]
    console.print(
        rows_table(
            ["emitted", "severity", "labels", "payload"],
            [
                (
                    e.type,
                    e.severity.value,
                    " ".join(f"{k}={v}" for k, v in e.labels.items()),
                    ", ".join(f"{k}={v}" for k, v in list(e.payload.items())[:4]),
                )
                for e in shown
            ],
        )
    )


def agents(
    window: Annotated[str, typer.Option(help="Success rates over this window.")] = "24h",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Each agent's state, since when, success rate, last error and processes."""
    from aios.agents.registry import agent_views
    from aios.durations import parse_duration
    from aios.store import open_store

    with open_store() as con:
        views = agent_views(con, datetime.now(UTC), parse_duration(window))
    if as_json:
        print_json([v.to_dict() for v in views])
        return
    console.print(
        rows_table(
            ["agent", "state", "since", "success", "tasks", "last error", "processes", "rss MB"],
            [
                (
                    v.agent,
                    v.state,
                    v.since.strftime("%Y-%m-%d %H:%M:%S") if v.since else "-",
                    "-" if v.success_rate is None else f"{v.success_rate:.0%}",
                    v.completed + v.failed,
                    (v.last_error or "")[:60],
                    v.processes if v.processes is not None else "-",
                    v.rss_mb if v.rss_mb is not None else "-",
                )
                for v in views
            ],
        )
    )


@ingest_app.command("serve")
def serve(
    host: Annotated[str | None, typer.Option(help="Address (default: \\[ingest] host).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default: \\[ingest] port).")] = None,
) -> None:
    """Serve POST /events (token in $AIOS_HOME/ingest.token, \\[ingest] token, or the Prefect
    Secret block \\[ingest] token_block)."""
    import uvicorn

    from aios.config import load_config
    from aios.home import HomePaths
    from aios.observe.http_ingest import create_app, resolve_token
    from aios.runtime import default_bus

    config = load_config()
    paths = HomePaths.current()
    token, source = resolve_token(paths, config)
    app = create_app(default_bus(), token, max_body_bytes=config.ingest.max_body_bytes)
    where = f"http://{host or config.ingest.host}:{port or config.ingest.port}/events"
    err_console.print(f"POST {where} with 'Authorization: Bearer <token from {source}>'")
    uvicorn.run(
        app,
        host=host or config.ingest.host,
        port=port or config.ingest.port,
        log_level="warning",
        access_log=False,
    )
