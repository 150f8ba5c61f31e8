"""``aios plugins list``: the installed plugins, where each came from, and whether it loaded.

A plugin that failed shows the reason; the command still exits 0 (a broken plugin is
reported, it is not an error of AIOS).
"""

from __future__ import annotations

from typing import Annotated

import typer

from aios.cli.output import console, print_json, rows_table

app = typer.Typer(help="Plugins: what is installed, from where, and whether it loaded.")


@app.command("list")
def list_plugins(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Every plugin of every kind: entry point, distribution and version, loaded or failed."""
    from aios.plugins import GROUPS, discover

    records = [r.to_dict() for r in discover()]
    if as_json:
        print_json(records)
        return
    if not records:
        console.print(f"No plugins installed (entry point groups: {', '.join(GROUPS.values())}).")
        return
    rows = [
        (
            r["kind"],
            r["name"],
            r["entry_point"],
            f"{r['distribution'] or '?'} {r['version'] or ''}".strip(),
            r["status"] if r["status"] == "loaded" else f"failed: {r['error']}",
        )
        for r in records
    ]
    console.print(rows_table(["kind", "name", "entry point", "distribution", "status"], rows))
