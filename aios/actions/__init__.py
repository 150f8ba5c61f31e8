"""Remediation actions: the registry of action types and the union playbooks validate against.

The seed's ``kill_process`` is accepted as ``process.kill``. The ``prefect.*`` actions act on
the Prefect server (deployments, flow runs, global concurrency limits).
"""

from __future__ import annotations

from typing import Annotated, Any

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

ACTION_TYPES: dict[str, type[ActionSpec]] = {
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


AnyAction = Annotated[
    Annotated[ConfigUpdate, Tag("config.update")]
    | Annotated[ProcessKill, Tag("process.kill")]
    | Annotated[ProcessSignal, Tag("process.signal")]
    | Annotated[ProcessRenice, Tag("process.renice")]
    | Annotated[FilesCleanup, Tag("files.cleanup")]
    | Annotated[CommandRun, Tag("command.run")]
    | Annotated[Notify, Tag("notify")]
    | Annotated[EmitEvent, Tag("event.emit")]
    | Annotated[Wait, Tag("wait")]
    | Annotated[DeploymentPause, Tag("prefect.deployment.pause")]
    | Annotated[DeploymentResume, Tag("prefect.deployment.resume")]
    | Annotated[DeploymentSetParameters, Tag("prefect.deployment.set_parameters")]
    | Annotated[FlowRunRetry, Tag("prefect.flow_run.retry")]
    | Annotated[FlowRunCancel, Tag("prefect.flow_run.cancel")]
    | Annotated[ConcurrencyLimitSet, Tag("prefect.concurrency_limit.set")],
    Discriminator(
        _action_tag,
        custom_error_type="unknown_action",
        custom_error_message="unknown action type",
    ),
]

__all__ = [
    "ACTION_TYPES",
    "ALIASES",
    "ActionContext",
    "ActionPlan",
    "ActionSpec",
    "AnyAction",
    "Risk",
]
