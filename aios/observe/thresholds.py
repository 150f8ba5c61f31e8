"""Static thresholds with hysteresis: ``resource.high`` at the raise level, ``resource.recovered``
only once the value falls below the clear level, so a value hovering at the line does not flap.

Which resources are high is read back from the log (the latest ``resource.high`` or
``resource.recovered`` per resource), so it survives restarts and agrees across processes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import duckdb
import orjson

from aios.config import Threshold
from aios.observe.host import HostSnapshot

SOURCE = "aios.monitor"


@dataclass(frozen=True)
class Reading:
    resource: str  # cpu | memory | disk | gpu
    labels: dict[str, str]
    value: float
    extra: dict[str, Any]

    @property
    def key(self) -> str:
        return orjson.dumps(self.labels, option=orjson.OPT_SORT_KEYS).decode()


def readings(snapshot: HostSnapshot) -> list[Reading]:
    host = snapshot.host
    out = [
        Reading(
            "cpu",
            {"host": host, "resource": "cpu"},
            snapshot.cpu_percent,
            {"per_cpu": snapshot.per_cpu, "load": list(snapshot.load)},
        ),
        Reading(
            "memory",
            {"host": host, "resource": "memory"},
            snapshot.memory_percent,
            {"used_mb": snapshot.memory_used_mb, "total_mb": snapshot.memory_total_mb},
        ),
    ]
    for disk in snapshot.disks:
        out.append(
            Reading(
                "disk",
                {"host": host, "resource": "disk", "mount": disk.mount},
                disk.percent,
                {"path": disk.mount, "used_gb": disk.used_gb, "total_gb": disk.total_gb},
            )
        )
    for gpu in snapshot.gpus:
        out.append(
            Reading(
                "gpu",
                {"host": host, "resource": "gpu", "gpu": str(gpu.index)},
                gpu.utilization,
                {"name": gpu.name, "memory_percent": gpu.memory_percent},
            )
        )
    return out


def active_highs(con: duckdb.DuckDBPyConnection, host: str) -> dict[str, datetime]:
    """Resources (by label key) whose latest event is ``resource.high``, with when it was."""
    rows = con.execute(
        """
        SELECT CAST(labels AS VARCHAR), arg_max(type, seq), max(time)
        FROM events
        WHERE source = ? AND type IN ('resource.high', 'resource.recovered')
          AND labels->>'host' = ?
        GROUP BY 1
        """,
        [SOURCE, host],
    ).fetchall()
    return {key: time for key, kind, time in rows if kind == "resource.high"}


def evaluate(
    current: list[Reading],
    thresholds: Mapping[Any, Threshold],
    active: dict[str, datetime],
    now: datetime,
) -> list[dict[str, Any]]:
    """The events these readings call for (as ``emit`` keyword dicts), given what is high.

    A resource that is high but no longer read at all (a disk unmounted) is recovered, as gone.
    """
    events = []
    present = {reading.key for reading in current}
    for key, went_high in active.items():
        if key not in present:
            labels = orjson.loads(key)
            events.append(
                {
                    "type": "resource.recovered",
                    "severity": "info",
                    "labels": labels,
                    "payload": {
                        "resource": labels.get("resource"),
                        "gone": True,
                        "high_for_s": round((now - went_high).total_seconds(), 1),
                    },
                }
            )
    for reading in current:
        limit = thresholds.get(reading.resource)
        if limit is None:
            continue
        since = active.get(reading.key)
        payload = {"resource": reading.resource, "value": reading.value, **reading.extra}
        if since is None and reading.value >= limit.raise_at:
            events.append(
                {
                    "type": "resource.high",
                    "severity": "critical" if reading.value >= 98 else "high",
                    "labels": reading.labels,
                    "payload": {
                        **payload,
                        "threshold": limit.raise_at,
                        "clear_at": limit.clear_at,
                        "high_for_s": 0,
                    },
                }
            )
        elif since is not None and reading.value < limit.clear_at:
            events.append(
                {
                    "type": "resource.recovered",
                    "severity": "info",
                    "labels": reading.labels,
                    "payload": {
                        **payload,
                        "threshold": limit.clear_at,
                        "high_for_s": round((now - since).total_seconds(), 1),
                    },
                }
            )
    return events
