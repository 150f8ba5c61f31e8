"""How the demo makes a temp directory fill a disk past a threshold on an ordinary machine:
the threshold goes a little above the use measured now, and the directory fills until the use
is past it (within a cap), so no machine needs gigabytes for it.

The use is the monitor's reading: percent of the filesystem as psutil reports it, to a tenth.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from aios.observe.host import HostCollector

ABOVE_NOW = 0.3  # points of use between now and the threshold: room for other writers
PAST_THRESHOLD = 0.1  # the directory fills this far past the threshold
MAX_FILL_BYTES = 4 * 2**30
MAX_SHARE_OF_FREE = 0.25


@dataclass(frozen=True)
class DiskPlan:
    mount: str
    percent_before: float
    raise_at: float
    clear_at: float
    fill_until: float
    fill_bytes: int  # about how much it takes
    max_bytes: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "mount": self.mount,
            "percent_before": self.percent_before,
            "raise": self.raise_at,
            "clear": self.clear_at,
            "fill_until": self.fill_until,
            "fill_bytes": self.fill_bytes,
            "max_bytes": self.max_bytes,
        }


def monitored_mount(path: Path) -> str | None:
    """The filesystem holding ``path`` as the monitor names it (its mount point), or None
    when the monitor does not watch that filesystem."""
    device = os.stat(path).st_dev
    best: str | None = None
    for disk in HostCollector(0.1).collect().disks:
        try:
            same = os.stat(disk.mount).st_dev == device
        except OSError:
            continue
        if same and (best is None or len(disk.mount) > len(best)):
            best = disk.mount
    return best


def plan_disk(temp_dir: Path) -> DiskPlan | str:
    """The plan for ``temp_dir``'s filesystem, or why there can be none here."""
    mount = monitored_mount(temp_dir)
    if mount is None:
        return f"the monitor does not watch the filesystem holding {temp_dir}"
    usage = psutil.disk_usage(mount)
    now = float(usage.percent)
    raise_at = round(now + ABOVE_NOW, 1)
    if raise_at + PAST_THRESHOLD >= 100:
        return f"{mount} is {now:g}% full already"
    capacity = usage.used + usage.free  # what psutil's percent is of
    fill_until = round(raise_at + PAST_THRESHOLD, 1)
    needed = int((fill_until - now) / 100 * capacity)
    cap = int(min(MAX_FILL_BYTES, usage.free * MAX_SHARE_OF_FREE))
    if needed * 1.5 > cap:
        return (
            f"{mount} is too large: {fill_until - now:.1f} points of it are "
            f"{needed / 2**30:.1f} GiB, more than the demo writes ({cap / 2**30:.1f} GiB)"
        )
    return DiskPlan(
        mount=mount,
        percent_before=now,
        raise_at=raise_at,
        clear_at=round(now + ABOVE_NOW / 2, 2),
        fill_until=fill_until,
        fill_bytes=needed,
        max_bytes=cap,
    )
