"""The contract every remediation action keeps: plan, execute, rollback; risk and reversibility.

- ``plan(ctx)`` says what would happen, touching nothing (the dry run).
- ``execute(ctx)`` does it for real and returns an undo record: plain JSON, stored in the
  ``action.completed`` event, so a rollback can happen later and in another process.
- ``rollback(undo, ctx)`` restores what ``execute`` changed and says what it restored; an
  irreversible action raises ``IrreversibleError`` instead of pretending.

``risk_floor`` is the least risk an action of that kind carries: a playbook may declare more,
never less. String parameters may refer to the triggering event with ``${path}``, for example
``${labels.agent}`` or ``${payload.pid}``. No parameter may hold NaN or infinity.

``guarded_floor`` and ``guarded_reversible`` ask an action for its floor and reversibility
without letting a failing one (a plugin's) raise: a floor that fails counts as high risk, a
reversibility that fails as irreversible, and the reason is returned with it.
"""

from __future__ import annotations

import math
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


MAX_PARAM_DEPTH = 64


def non_finite_at(value: Any, path: str, depth: int = 0) -> str | None:
    """Where ``value`` holds NaN or infinity (``path`` extended through lists, tuples, dicts
    and models), or None when it holds none; nesting beyond MAX_PARAM_DEPTH is not looked
    into (the parameters' own models bound it)."""
    if isinstance(value, float):
        return None if math.isfinite(value) else path
    if depth >= MAX_PARAM_DEPTH:
        return None
    if isinstance(value, BaseModel):
        value = dict(value)
    if isinstance(value, dict):
        items: Any = ((f"{path}.{key}", item) for key, item in value.items())
    elif isinstance(value, list | tuple):
        items = ((f"{path}[{index}]", item) for index, item in enumerate(value))
    else:
        return None
    for where, item in items:
        found = non_finite_at(item, where, depth + 1)
        if found is not None:
            return found
    return None


class ActionSpec(BaseModel):
    """Base of the action models; subclasses set ``type`` and implement the contract.

    A number field refuses NaN and infinity (``allow_inf_nan``, inherited by every subclass);
    a field of any other type (a mapping, ``Any``) is searched for them after validation.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    type: str
    risk_floor: ClassVar[Risk] = Risk.LOW
    reversible: ClassVar[bool] = True

    @model_validator(mode="before")
    @classmethod
    def _alias(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("type") in ALIASES:
            data = {**data, "type": ALIASES[data["type"]]}
        return data

    @model_validator(mode="after")
    def _no_nan_or_infinity(self) -> ActionSpec:
        for name in type(self).model_fields:
            where = non_finite_at(getattr(self, name), name)
            if where is not None:
                raise ValueError(f"{where}: NaN and infinity are not allowed")
        return self

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


def _failure(what: str, action: ActionSpec, exc: BaseException) -> str:
    return f"{action.type}: {what} failed ({type(exc).__name__}: {exc})"[:2000]


def guarded_floor(action: ActionSpec) -> tuple[Risk, str | None]:
    """``action.floor()`` and None; ``Risk.HIGH`` and the reason when it raises (SystemExit
    included) or gives something that is not a Risk: an action whose risk cannot be told is
    treated as the riskiest."""
    try:
        found = action.floor()
    except (Exception, SystemExit) as exc:  # a plugin's code: any failure is a high risk
        return Risk.HIGH, _failure("floor()", action, exc)
    if not isinstance(found, Risk):
        return Risk.HIGH, f"{action.type}: floor() gave {found!r}, not a Risk"[:2000]
    return found, None


def guarded_reversible(action: ActionSpec) -> tuple[bool, str | None]:
    """``action.is_reversible()`` and None; False and the reason when it raises (SystemExit
    included) or gives something that is not a bool."""
    try:
        found = action.is_reversible()
    except (Exception, SystemExit) as exc:  # a plugin's code: unknown means irreversible
        return False, _failure("is_reversible()", action, exc)
    if not isinstance(found, bool):
        return False, f"{action.type}: is_reversible() gave {found!r}, not true or false"[:2000]
    return found, None
