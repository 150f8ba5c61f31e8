"""The process-wide bus for the current ``AIOS_HOME``, built on first use.

``from aios import emit`` goes through here: no server and no setup beyond ``AIOS_HOME``.
If ``AIOS_HOME`` changes (tests do this), the next call builds a bus for the new home.
"""

from __future__ import annotations

import threading

from aios.bus import EventBus
from aios.config import load_config
from aios.home import HomePaths
from aios.log import EventLog

_buses: dict[str, EventBus] = {}
_guard = threading.Lock()


def default_bus() -> EventBus:
    """The bus writing to ``$AIOS_HOME/events`` (raises ConfigError for a bad config.toml)."""
    paths = HomePaths.current()
    key = str(paths.root)
    with _guard:
        bus = _buses.get(key)
        if bus is None:
            config = load_config(paths)
            log = EventLog(paths.events, segment_max_bytes=config.log.segment_max_bytes)
            bus = _buses[key] = EventBus(log)
        return bus


def reset() -> None:
    """Forget every bus (closing their files); the next call starts afresh."""
    with _guard:
        for bus in _buses.values():
            bus.log.close()
        _buses.clear()
