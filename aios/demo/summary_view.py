"""The demo's ending: the summary table (stage, what happened, the events that say so, how long
it took), the addresses to go on from, and the same as JSON for programs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from aios.demo.embedded_up import Endpoints
from aios.demo.evidence import Row

FULL_IDS_FROM = 160  # columns from which the table shows whole event ids


def table(rows: list[Row], *, full_ids: bool) -> Table:
    """The summary; ``full_ids`` False shows the end of each event id (enough to find it)."""
    grid = Table(
        title="aios demo: what happened (read back from the event log)",
        show_lines=True,
        expand=True,
    )
    grid.add_column("stage", ratio=2)
    grid.add_column("what happened", ratio=6)
    grid.add_column("evidence (UTC)", ratio=3)
    grid.add_column("took", justify="right", no_wrap=True)
    for row in rows:
        stage = Text("✔ ", style="green") if row.happened else Text("✘ ", style="bold red")
        stage.append(row.stage, style="bold" if row.happened else "bold red")
        if not row.happened:
            stage.append("\nnot happened", style="red")
        evidence = Text()
        for event in row.evidence:
            if evidence:
                evidence.append("\n")
            evidence.append(f"{event.time:%H:%M:%S} {event.type}\n")
            evidence.append(event.id if full_ids else f"…{event.id[-12:]}", style="dim")
        took = "" if row.duration_s is None else f"{row.duration_s:.1f} s"
        grid.add_row(stage, Text(row.what), evidence, Text(took))
    return grid


def addresses(endpoints: Endpoints | None, home: Path) -> list[tuple[str, str]]:
    """(name, address) to go on from; says so when the dashboard is not running."""
    if endpoints is None:
        return [("AIOS_HOME", str(home))]
    return [
        ("Prefect UI", endpoints.ui_url),
        ("Dashboard", endpoints.dashboard_url or "not running (aios up reported none)"),
        ("AIOS_HOME", str(home)),
    ]


def show(console: Console, rows: list[Row], endpoints: Endpoints | None, home: Path) -> None:
    console.print(table(rows, full_ids=console.width >= FULL_IDS_FROM))
    for name, address in addresses(endpoints, home):
        console.print(f"  {name + ':':<12} ", Text(address, style="bold"))
    console.print(
        Text(
            f"  Look closer: AIOS_HOME={home} aios events tail -n 50   (or aios events sql, "
            "aios lessons list, aios score)",
            style="dim",
        )
    )


def as_json(
    rows: list[Row],
    endpoints: Endpoints | None,
    home: Path,
    *,
    ok: bool,
    missed: list[str],
    failure: str | None,
    elapsed_s: float,
    facts: dict[str, Any],
) -> dict[str, Any]:
    return {
        "ok": ok,
        "elapsed_s": round(elapsed_s, 1),
        "aios_home": str(home),
        "prefect_ui": endpoints.ui_url if endpoints else None,
        "prefect_api": endpoints.api_url if endpoints else None,
        "dashboard": endpoints.dashboard_url if endpoints else None,
        "chroma": endpoints.chroma_url if endpoints else None,
        "stages": [row.to_dict() for row in rows],
        "missed": missed,
        "failure": failure,
        "facts": facts,
    }
