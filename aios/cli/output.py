"""Printing for the CLI: rich tables for people, plain JSON for programs."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import orjson
from rich.console import Console
from rich.table import Table
from rich.text import Text

from aios.event import Event

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)

SEVERITY_STYLE = {
    "info": "dim",
    "low": "cyan",
    "medium": "yellow",
    "high": "bold red",
    "critical": "bold white on red",
}


def _default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, UUID | Decimal):
        return str(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def dumps(value: Any, *, indent: bool = True) -> str:
    option = orjson.OPT_INDENT_2 if indent else 0
    return orjson.dumps(value, default=_default, option=option | orjson.OPT_NON_STR_KEYS).decode()


def print_json(value: Any, *, indent: bool = True) -> None:
    """Write ``value`` as JSON to stdout (no rich markup, so it stays parseable)."""
    sys.stdout.write(dumps(value, indent=indent) + "\n")
    sys.stdout.flush()


def event_json(event: Event) -> dict[str, Any]:
    return event.model_dump(mode="json")


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def events_table(events: Iterable[Event], title: str | None = None) -> Table:
    table = Table(title=title, show_lines=False, expand=False)
    table.add_column("time (UTC)", no_wrap=True)
    table.add_column("sev", no_wrap=True)
    table.add_column("type", no_wrap=True)
    table.add_column("source", no_wrap=True)
    table.add_column("labels")
    table.add_column("payload")
    for event in events:
        severity = event.severity.value
        table.add_row(  # Text cells: event data is printed as it is, never read as markup
            Text(event.time.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]),
            Text(severity, style=SEVERITY_STYLE[severity]),
            Text(event.type),
            Text(_short(event.source, 24)),
            Text(_short(" ".join(f"{k}={v}" for k, v in event.labels.items()), 40)),
            Text(_short(dumps(event.payload, indent=False), 80)),
        )
    return table


def rows_table(columns: list[str], rows: list[tuple[Any, ...]]) -> Table:
    table = Table()
    for column in columns:
        table.add_column(Text(column))
    for row in rows:
        table.add_row(*(Text("" if v is None else _short(_cell(v), 120)) for v in row))
    return table


def _cell(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict | list):
        return dumps(value, indent=False)
    return str(value)
