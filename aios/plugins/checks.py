"""What each plugin kind must be before AIOS uses it; a refusal says why.

Names are namespaced (``acme.restart_service``) so that no plugin can take a built-in's name
or a built-in's namespace, and the first of two plugins with one name keeps it.
"""

from __future__ import annotations

import inspect
import re
import typing
from typing import Any

from pydantic import BaseModel

from aios.cli.orchestration_cmd import FLOW_NAMES
from aios.config import NAMESPACED
from aios.plugins.discovery import PluginRecord, PluginRefusedError
from aios.plugins.interfaces import ProbePlugin, Schedule

AGENT_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
# The flows AIOS ships (a test keeps the CLI's list equal to the deployments): a plugin agent
# cannot take their names.
BUILTIN_AGENTS = FLOW_NAMES


def _taken(name: str, accepted: list[PluginRecord]) -> None:
    for record in accepted:
        if record.name == name:
            raise PluginRefusedError(
                f"{name!r} is already provided by {record.entry_point} "
                f"({record.distribution or 'unknown distribution'})"
            )


def _namespaced(name: str, builtin: set[str], what: str) -> None:
    if not NAMESPACED.match(name):
        raise PluginRefusedError(
            f"{what} {name!r} must be namespaced, like acme.restart_service (lowercase words "
            "joined by dots)"
        )
    if name in builtin:
        raise PluginRefusedError(f"{what} {name!r} is a built-in")
    prefix = name.split(".", 1)[0]
    if prefix in {b.split(".", 1)[0] for b in builtin}:
        raise PluginRefusedError(f"{what} {name!r}: the namespace {prefix!r} is AIOS's own")


def check_action(name: str, obj: Any, accepted: list[PluginRecord]) -> Any:
    """An ``ActionSpec`` subclass whose ``type`` is a Literal equal to the entry point name."""
    from aios.actions import ALIASES, BUILTIN_ACTION_TYPES, ActionSpec, Risk

    if not (inspect.isclass(obj) and issubclass(obj, ActionSpec)) or obj is ActionSpec:
        raise PluginRefusedError(f"not an aios.actions.ActionSpec subclass: {obj!r}")
    field = obj.model_fields.get("type")
    values = typing.get_args(field.annotation) if field is not None else ()
    if field is None or typing.get_origin(field.annotation) is not typing.Literal:
        raise PluginRefusedError("its type field must be a Literal, e.g. Literal['acme.restart']")
    if len(values) != 1 or field.default != values[0]:
        raise PluginRefusedError("its type field must be one Literal value, also its default")
    kind = values[0]
    if kind != name:
        raise PluginRefusedError(
            f"the entry point is named {name!r} but the action's type is {kind!r}"
        )
    _namespaced(kind, set(BUILTIN_ACTION_TYPES) | set(ALIASES), "action type")
    _taken(kind, accepted)
    if not isinstance(obj.risk_floor, Risk):
        raise PluginRefusedError(f"risk_floor must be an aios.actions.Risk, not {obj.risk_floor!r}")
    own_floor = obj.floor
    if own_floor is not ActionSpec.floor:
        # A plugin may raise its floor with its parameters, never go below what it declares.
        declared = obj.risk_floor

        def floor(self: Any) -> Risk:
            found = own_floor(self)
            if not isinstance(found, Risk):  # a floor it cannot state is the highest
                raise TypeError(f"floor() gave {found!r}, not an aios.actions.Risk")
            return found.at_least(declared)

        setattr(obj, "floor", floor)  # noqa: B010 - a method replaced on purpose
    return obj


def check_probe(name: str, obj: Any, accepted: list[PluginRecord]) -> ProbePlugin:
    """A ``ProbePlugin`` named like its entry point, with a pydantic params model."""
    from aios.probes import PROBES, SEED_CHECKS

    if not isinstance(obj, ProbePlugin):
        raise PluginRefusedError(f"not an aios.plugins.ProbePlugin: {obj!r}")
    if obj.name != name:
        raise PluginRefusedError(f"the entry point is named {name!r} but the probe is {obj.name!r}")
    _namespaced(name, set(PROBES) | set(SEED_CHECKS), "probe")
    _taken(name, accepted)
    if not (inspect.isclass(obj.params) and issubclass(obj.params, BaseModel)):
        raise PluginRefusedError("params must be a pydantic model class")
    if not callable(obj.read):
        raise PluginRefusedError("read must be callable")
    return obj


def check_collector(name: str, obj: Any, accepted: list[PluginRecord]) -> Any:
    """A callable taking a ``CollectorContext``."""
    if not NAMESPACED.match(name):
        raise PluginRefusedError(f"collector {name!r} must be namespaced, like acme.queues")
    _taken(name, accepted)
    if not callable(obj) or inspect.isclass(obj):
        raise PluginRefusedError(f"a collector is a function of the cycle's context, not {obj!r}")
    return obj


def check_memory_backend(name: str, obj: Any, accepted: list[PluginRecord]) -> Any:
    """A factory ``(paths, config) -> MemoryBackend``, named like ``acme.redis``."""
    _namespaced(name, {"chroma", "json"}, "memory backend")
    _taken(name, accepted)
    if not callable(obj):
        raise PluginRefusedError(f"a memory backend factory must be callable, not {obj!r}")
    return obj


def agent_problem(name: str, cls: Any) -> str | None:
    """Why ``cls`` cannot be agent type ``name`` (None when it can)."""
    if not inspect.isclass(cls):
        return f"an agent type is a class, not {cls!r}"
    if not AGENT_NAME.match(name):
        return f"agent name {name!r}: lowercase letters, digits and _, starting with a letter"
    if name in BUILTIN_AGENTS:
        return f"agent name {name!r} is a built-in flow's"
    says = getattr(cls, "name", name)
    if says not in (name, ""):
        return f"the agent is registered as {name!r} but its class says {says!r}"
    if not callable(getattr(cls, "run", None)):
        return "an agent type needs a run(context) -> dict method"
    schedule = getattr(cls, "schedule", None)
    if schedule is not None and not isinstance(schedule, Schedule):
        return f"schedule must be an aios.plugins.Schedule or None, not {schedule!r}"
    if not isinstance(getattr(cls, "in_dag", False), bool):
        return "in_dag must be True or False"
    return None


def check_agent(name: str, obj: Any, accepted: list[PluginRecord]) -> Any:
    """An agent class (see ``PluginAgent``) whose ``name`` is the entry point name."""
    problem = agent_problem(name, obj)
    if problem:
        raise PluginRefusedError(problem)
    _taken(name, accepted)
    return obj
