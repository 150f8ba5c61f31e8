"""Segment files of the event log: ``<seq:08d>-<YYYYMMDD>.jsonl``, ordered by ``seq``."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

SEGMENT_PATTERN = re.compile(r"^(\d{8})-(\d{8})\.jsonl$")


@dataclass(frozen=True, order=True)
class Segment:
    """One segment file; ``seq`` orders segments, ``day`` is the UTC day it was opened on."""

    seq: int
    day: date
    path: Path

    @property
    def name(self) -> str:
        return self.path.name


def segment_name(seq: int, day: date) -> str:
    return f"{seq:08d}-{day:%Y%m%d}.jsonl"


def list_segments(directory: Path) -> list[Segment]:
    """The segments in ``directory``, oldest first; other files are ignored."""
    try:
        names = [entry.name for entry in directory.iterdir()]
    except FileNotFoundError:
        return []
    segments = []
    for name in names:
        match = SEGMENT_PATTERN.match(name)
        if match:
            day = datetime.strptime(match.group(2), "%Y%m%d").date()
            segments.append(Segment(int(match.group(1)), day, directory / name))
    segments.sort()
    return segments
