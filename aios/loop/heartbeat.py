"""The heartbeat: one light ``system.heartbeat`` event, no store access.

The score's uptime counts the minutes that had one, so the heartbeat deployment runs every
minute while AIOS is up.
"""

from __future__ import annotations

import os
import socket
import time

from aios import __version__
from aios.bus import EventBus
from aios.event import Event

SOURCE = "aios.heartbeat"


def beat(bus: EventBus, *, started: float | None = None) -> Event:
    """Record that AIOS is up on this host now."""
    host = socket.gethostname()
    payload: dict[str, object] = {"host": host, "pid": os.getpid(), "version": __version__}
    if started is not None:
        payload["uptime_s"] = round(time.time() - started, 1)
    return bus.emit("system.heartbeat", payload, source=SOURCE, labels={"host": host})
