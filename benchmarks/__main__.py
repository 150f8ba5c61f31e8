"""Run every benchmark, write benchmarks/results/*.json and the table in RESULTS.md.

``python -m benchmarks [NAME ...] [--quick]``; NAME is a module ``bench_NAME``.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from benchmarks.report import update_results_md


def main(argv: list[str]) -> int:
    quick = "--quick" in argv
    wanted = [a for a in argv if not a.startswith("-")]
    here = Path(__file__).parent
    names = sorted(
        m.name.removeprefix("bench_")
        for m in pkgutil.iter_modules([str(here)])
        if m.name.startswith("bench_")
    )
    unknown = [w for w in wanted if w not in names]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; have: {', '.join(names)}")
        return 2
    console = Console()
    all_met = True
    for name in wanted or names:
        console.print(f"[bold]benchmark {name}[/] ...")
        module = importlib.import_module(f"benchmarks.bench_{name}")
        data: dict[str, Any] = module.run(quick=quick)
        table = Table(title=name)
        table.add_column("metric")
        table.add_column("value", justify="right")
        table.add_column("target")
        for key, value in data["results"].items():
            target = data["targets"].get(key, "")
            mark = "" if key not in data["met"] else (" ✓" if data["met"][key] else " ✗")
            table.add_row(key, str(value), target + mark)
        console.print(table)
        all_met = all_met and all(data["met"].values())
    if not quick:
        update_results_md()
    return 0 if all_met else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
