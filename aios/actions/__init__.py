"""Remediation actions: the registry of action types and the union playbooks validate against.

The seed's ``kill_process`` is accepted as ``process.kill``. The ``prefect.*`` actions act on
the Prefect server (deployments, flow runs, global concurrency limits). Plugin action types
(the ``aios.actions`` entry point group) join ``ACTION_TYPES``, ``AnyAction`` and
``actions_adapter()``, built once at first use (after plugin discovery). A plugin's parameter
check that raises anything, not just a validation error, is a refusal naming the plugin.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Annotated, Any, Union

from pydantic import (
    Discriminator,
    Field,
    Tag,
    TypeAdapter,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WrapValidator,
)
from pydantic_core import PydanticCustomError

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


def _guard(name: str) -> WrapValidator:
    """Validation of plugin action ``name`` that turns whatever its own validators raise
    (KeyError, SystemExit, ...) into a validation error naming the plugin."""

    def guard(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        try:
            return handler(value)
        except ValidationError:
            raise
        except (Exception, SystemExit) as exc:  # someone else's code: a refusal, not a crash
            from aios.plugins.discovery import describe

            detail = (
                f"the {describe('action', name)} failed checking its parameters: "
                f"{type(exc).__name__}: {exc}"
            )
            raise PydanticCustomError(
                "plugin_failed", "{detail}", {"detail": detail[:2000]}
            ) from None

    return WrapValidator(guard)


def _member(name: str, cls: type[ActionSpec]) -> Any:
    if name in BUILTIN_ACTION_TYPES:
        return Annotated[cls, Tag(name)]
    return Annotated[cls, _guard(name), Tag(name)]


def _union_of(types: dict[str, type[ActionSpec]]) -> Any:
    members = tuple(_member(name, cls) for name, cls in types.items())
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


def actions_adapter() -> TypeAdapter[list[ActionSpec]]:
    """Validates a playbook's ``actions``: a non-empty list, each item of a known type
    (plugins included, once they are discovered)."""
    with _lock:
        if "adapter" in _built:
            adapter: TypeAdapter[list[ActionSpec]] = _built["adapter"]
            return adapter
        union = _union()
        made: TypeAdapter[list[ActionSpec]] = TypeAdapter(
            Annotated[list[union], Field(min_length=1)]  # type: ignore[valid-type, arg-type]
        )
        if "union" in _built:  # final: kept (asked during discovery, it is not)
            _built["adapter"] = made
        return made


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
    "actions_adapter",
]
