"""The ``HEAD`` file: where the last committed append ended (segment, offset, hash).

The writer overwrites it in place after every durable append. It lives beside the log's
directory (``$AIOS_HOME/events.head``), not in it. It may lag behind the log
(a crash between the append and the update) but never runs ahead of it, so a log that
ends before HEAD says it should has lost committed events.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import orjson

HEAD_SIZE = 256


def head_path(directory: Path) -> Path:
    """Where the log in ``directory`` keeps its HEAD: beside it (``events.head``), so that
    removing or replacing the whole directory is noticed too."""
    return directory.with_name(directory.name + ".head")


@dataclass(frozen=True)
class Head:
    segment: str
    offset: int
    hash: str

    def encode(self) -> bytes:
        data = orjson.dumps({"segment": self.segment, "offset": self.offset, "hash": self.hash})
        return data.ljust(HEAD_SIZE - 1) + b"\n"


def read_head(path: Path) -> Head | None:
    """The recorded head, or None when the file is missing or unreadable."""
    try:
        raw = path.read_bytes()
        data = orjson.loads(raw.strip() or b"null")
        return Head(str(data["segment"]), int(data["offset"]), str(data["hash"]))
    except (OSError, orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None


def write_head(fd: int, head: Head) -> None:
    """Overwrite the head in place (one small write at offset 0)."""
    os.pwrite(fd, head.encode(), 0)
