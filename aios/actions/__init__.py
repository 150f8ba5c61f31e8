"""Remediation actions: the registry of action types and the union playbooks validate against.

The seed's ``kill_process`` is accepted as ``process.kill``. The ``prefect.*`` actions act on
the Prefect server (deployments, flow runs, global concurrency limits). Plugin action types
(the ``aios.actions`` entry point group) join ``ACTION_TYPES`` and ``AnyAction``, both built
once at first use.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Annotated, Any, Union

from pydantic import Discriminator, Tag

from aios.actions.base import ALIASES, ActionContext, ActionPlan, ActionSpec, Risk
from aios.actions.config_update import ConfigUpdate
from aios.actions.files_cleanup import FilesCleanup
from aios.actions.prefect_actions import (
    ConcurrencyLimitSet,
    DeploymentPause,
    DeploymentResume,
    DeploymentSetParameters,
    FlowRunCancel,
    FlowRunRetry,
)
from aios.actions.process_actions import ProcessKill, ProcessRenice, ProcessSignal
from aios.actions.simple_actions import CommandRun, EmitEvent, Notify, Wait

BUILTIN_ACTION_TYPES: dict[str, type[ActionSpec]] = {
    cls.model_fields["type"].default: cls
    for cls in (
        ConfigUpdate,
        ProcessKill,
        ProcessSignal,
        ProcessRenice,
        FilesCleanup,
        CommandRun,
        Notify,
        EmitEvent,
        Wait,
        DeploymentPause,
        DeploymentResume,
        DeploymentSetParameters,
        FlowRunRetry,
        FlowRunCancel,
        ConcurrencyLimitSet,
    )
}


def _action_tag(value: Any) -> str | None:
    if isinstance(value, ActionSpec):
        return value.type
    if isinstance(value, dict):
        kind = value.get("type")
        return ALIASES.get(kind, kind) if isinstance(kind, str) else None
    return None


_lock = threading.RLock()
_built: dict[str, Any] = {}


def action_types() -> dict[str, type[ActionSpec]]:
    """Every action type: the built-ins, then the plugins that loaded."""
    from aios.plugins import discovery

    with _lock:
        if "types" not in _built:
            plugins = discovery.loaded("action")
            if discovery.discovering():  # asked by a plugin as it loads: not final yet
                return dict(BUILTIN_ACTION_TYPES)
            _built["types"] = {**BUILTIN_ACTION_TYPES, **plugins}
        found: dict[str, type[ActionSpec]] = _built["types"]
        return found


def _union_of(types: dict[str, type[ActionSpec]]) -> Any:
    members = tuple(Annotated[cls, Tag(name)] for name, cls in types.items())
    return Annotated[
        Union[members],  # noqa: UP007 - a union built from a tuple at run time
        Discriminator(
            _action_tag,
            custom_error_type="unknown_action",
            custom_error_message="unknown action type",
        ),
    ]


def _union() -> Any:
    with _lock:
        if "union" not in _built:
            types = action_types()
            if "types" not in _built:  # not final (asked during discovery): not kept either
                return _union_of(types)
            _built["union"] = _union_of(types)
        return _built["union"]


if TYPE_CHECKING:
    ACTION_TYPES: dict[str, type[ActionSpec]]
    AnyAction = ActionSpec
else:

    def __getattr__(name: str) -> Any:
        # Built on first use, so that importing aios.actions does not look for plugins.
        if name == "ACTION_TYPES":
            return action_types()
        if name == "AnyAction":
            return _union()
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "ACTION_TYPES",
    "ALIASES",
    "BUILTIN_ACTION_TYPES",
    "ActionContext",
    "ActionPlan",
    "ActionSpec",
    "AnyAction",
    "Risk",
    "action_types",
]
