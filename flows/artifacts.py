"""Publishing what a flow run found as Prefect artifacts a person would want to read."""

from __future__ import annotations

from typing import Any

from prefect.artifacts import create_markdown_artifact, create_table_artifact


def table(key: str, rows: list[dict[str, Any]], description: str) -> None:
    """A table artifact under ``key`` (its history is kept per key in the UI)."""
    create_table_artifact(
        key=key,
        table=rows or [{"note": "nothing to show"}],
        description=description,
    )


def markdown(key: str, text: str, description: str) -> None:
    create_markdown_artifact(key=key, markdown=text, description=description)
