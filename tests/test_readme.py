"""The README stays true: every command is in its CLI reference, every picture and file it
links to exists."""

from __future__ import annotations

import re
from pathlib import Path

from aios.cli.main import app

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def test_every_command_is_in_the_cli_reference() -> None:
    reference = README.split("## CLI reference", 1)[1].split("\n## ", 1)[0]
    names = [c.name or (c.callback.__name__ if c.callback else "") for c in app.registered_commands]
    names += [g.name or "" for g in app.registered_groups]
    missing = [n for n in names if f"`aios {n}" not in reference]
    assert not missing, f"not in the README's CLI reference: {missing}"


def test_every_linked_file_exists() -> None:
    links = re.findall(r"\]\(((?!https?:|#)[^)\s]+)\)", README)
    assert any(link.endswith(".png") for link in links)
    missing = [link for link in links if not (ROOT / link.split("#")[0]).exists()]
    assert not missing, f"the README links to missing files: {missing}"
