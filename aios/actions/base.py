"""The contract every remediation action keeps: plan, execute, rollback; risk and reversibility.

- ``plan(ctx)`` says what would happen, touching nothing (the dry run).
- ``execute(ctx)`` does it for real and returns an undo record: plain JSON, stored in the
  ``action.completed`` event, so a rollback can happen later and in another process.
- ``rollback(undo, ctx)`` restores what ``execute`` changed and says what it restored; an
  irreversible action raises ``IrreversibleError`` instead of pretending.

``risk_floor`` is the least risk an action of that kind carries: a playbook may declare more,
never less. String parameters may refer to the triggering event with ``${path}``, for example
``${labels.agent}`` or ``${payload.pid}``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, model_validator

from aios.errors import AIOSError, InputError
from aios.event import Event
from aios.event_paths import MISSING, resolve, split_path
from aios.home import HomePaths


class Risk(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"

    @property
    def rank(self) -> int:
        return ("low", "medium", "high").index(self.value)

    def at_least(self, other: Risk) -> Risk:
        return self if self.rank >= other.rank else other


class ActionError(AIOSError):
    """An action could not be planned or carried out; nothing more was done after the error."""


class IrreversibleError(ActionError):
    """Asked to roll back an action that cannot be undone (say so; escalate)."""


class ConfinementError(ActionError):
    """A path lies outside the allowed roots, or leads out of them through a symlink."""


@dataclass
class ActionContext:
    """What an action may use: the triggering event, the configuration, where to keep things."""

    event: Event
    paths: HomePaths
    remediation_id: str
    allowed_roots: tuple[Path, ...] = ()
    agent_patterns: tuple[str, ...] = ()
    protected_patterns: tuple[str, ...] = ()
    emit: Any = None  # callable(type, payload, **fields) -> Event, for event.emit
    index: int = 0  # position of the action in its playbook
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def work_dir(self) -> Path:
        """A directory for this remediation's backups (created on first use)."""
        path = self.paths.backups / self.remediation_id
        path.mkdir(parents=True, exist_ok=True)
        return path


@dataclass
class ActionPlan:
    """What an action would do: a sentence, the things it would touch, and details."""

    action: str
    summary: str
    targets: list[str] = field(default_factory=list)
    reversible: bool = True
    risk: Risk = Risk.LOW
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "summary": self.summary,
            "targets": self.targets,
            "reversible": self.reversible,
            "risk": self.risk.value,
            "details": self.details,
        }


_TEMPLATE = re.compile(r"\$\{([^}]+)\}")


def render(value: Any, event: Event) -> Any:
    """Replace ``${path}`` in strings (recursively in lists and dicts) with values from ``event``.

    A string that is exactly one ``${path}`` takes the value's own type (a pid stays a number).
    Raises InputError when a path is invalid or missing from the event.
    """
    if isinstance(value, str):
        whole = _TEMPLATE.fullmatch(value)
        if whole:
            return _lookup(whole.group(1), event)
        return _TEMPLATE.sub(lambda m: str(_lookup(m.group(1), event)), value)
    if isinstance(value, list):
        return [render(item, event) for item in value]
    if isinstance(value, dict):
        return {key: render(item, event) for key, item in value.items()}
    return value


def _lookup(path: str, event: Event) -> Any:
    try:
        found = resolve(event, split_path(path.strip()))
    except ValueError as exc:
        raise InputError(f"template ${{{path}}}: {exc}") from None
    if found is MISSING:
        raise InputError(f"template ${{{path}}}: the event has no {path.strip()}")
    return found


# Other names accepted for action types (the seed's form).
ALIASES = {"kill_process": "process.kill"}


class ActionSpec(BaseModel):
    """Base of the action models; subclasses set ``type`` and implement the contract."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: str
    risk_floor: ClassVar[Risk] = Risk.LOW
    reversible: ClassVar[bool] = True

    @model_validator(mode="before")
    @classmethod
    def _alias(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("type") in ALIASES:
            data = {**data, "type": ALIASES[data["type"]]}
        return data

    def floor(self) -> Risk:
        """The least risk of this action with these parameters (some depend on them)."""
        return self.risk_floor

    def is_reversible(self) -> bool:
        return self.reversible

    def plan(self, ctx: ActionContext) -> ActionPlan:
        raise NotImplementedError

    def execute(self, ctx: ActionContext) -> dict[str, Any]:
        raise NotImplementedError

    def rollback(self, undo: dict[str, Any], ctx: ActionContext) -> str:
        raise IrreversibleError(f"{self.type} cannot be undone")
