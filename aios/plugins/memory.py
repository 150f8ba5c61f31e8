"""Plugin memory backends: ``[memory] backend = "acme.redis"`` names an ``aios.memory_backends``
entry point, whose factory makes the backend; what it makes is checked against the protocol.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any, cast

from aios.config import AIOSConfig
from aios.home import HomePaths
from aios.plugins.discovery import PluginError, require

if TYPE_CHECKING:
    from aios.memory.records import MemoryBackend


def protocol_members(protocol: type) -> dict[str, Any]:
    """The attributes and methods a Protocol class declares: name -> the function (methods) or
    None (plain attributes)."""
    members: dict[str, Any] = dict.fromkeys(getattr(protocol, "__annotations__", {}))
    for name, value in vars(protocol).items():
        if callable(value) and not name.startswith("_"):
            members[name] = value
    return members


def protocol_problems(obj: Any, protocol: type) -> list[str]:
    """What ``obj`` lacks to satisfy ``protocol``: missing attributes and methods, and methods
    that cannot be called with the protocol's parameters (by name). Empty when it does."""
    problems = []
    for name, declared in protocol_members(protocol).items():
        if not hasattr(obj, name):
            problems.append(f"no {name}")
            continue
        if declared is None:
            continue
        found = getattr(obj, name)
        if not callable(found):
            problems.append(f"{name} is not a method")
            continue
        wanted = [p for p in inspect.signature(declared).parameters.values() if p.name != "self"]
        try:
            inspect.signature(found).bind(*(p.name for p in wanted))
        except TypeError as exc:
            problems.append(f"{name}{inspect.signature(declared)}: {exc}".replace("self, ", ""))
            continue
        have = inspect.signature(found).parameters
        renamed = [p.name for p in wanted if p.kind is p.KEYWORD_ONLY and p.name not in have]
        if renamed:
            problems.append(f"{name} lacks keyword parameters {', '.join(renamed)}")
    return problems


def plugin_backend(name: str, paths: HomePaths, config: AIOSConfig) -> MemoryBackend:
    """The memory backend plugin ``name`` makes for this home.

    Raises PluginError when the plugin is not installed, did not load, fails (raises anything,
    SystemExit included), or makes an object that does not satisfy the protocol.
    """
    from aios.memory.records import MemoryBackend

    factory = require("memory_backend", name)
    try:
        backend = factory(paths, config)
        problems = protocol_problems(backend, MemoryBackend)  # reads the backend's attributes
    except (Exception, SystemExit) as exc:  # the plugin's own failure (or exit), named as such
        raise PluginError(f"memory backend {name!r} failed: {type(exc).__name__}: {exc}") from exc
    if problems:
        raise PluginError(f"memory backend {name!r} is not a MemoryBackend: {'; '.join(problems)}")
    return cast("MemoryBackend", backend)
