"""The playbook schema: trigger, actions, risk, verify, limits. Immutable once loaded.

Canonical form (YAML or JSON)::

    id: disk_nearly_full
    trigger:
      type: resource.high                  # event type glob
      conditions:                          # one condition, a list (all must hold), or a tree
        - {path: payload.resource, op: eq, value: disk}
        - {path: payload.value, op: gte, value: 90}
      threshold: {count: 3, within: 10m, group_by: [labels.host]}   # optional
      throttle: {once_within: 30m, group_by: [labels.host]}         # optional
    actions:
      - {type: files.cleanup, paths: [/var/log/app], patterns: ["*.log.*"], older_than: 7d}
    risk: low
    auto_execute: true
    verify: {probe: disk_usage, path: /var/log/app, expect: "<85", after: 5s, within: 2m}
    limits: {max_runs: 3, window: 24h, failures_to_open: 3, cooldown: 5m}

The seed's JSON form is accepted as it is: ``trigger.event_type``; ``conditions: {"resource":
"cpu", "threshold": 80}`` (each key an equality on the payload, ``threshold`` meaning
``payload.value >= threshold``); ``verify: {"metric": ..., "expected": "<70"}``;
``validation: {"check": "cpu_below_threshold", "threshold": 70}``; ``kill_process``.

No number anywhere in a playbook may be NaN or infinite (a condition ``ne`` NaN would always
hold), and the windows (``within``, ``once_within``, ``window``, ``flap_window``, ``interval``)
are longer than 0s. The action types are looked up when a playbook is validated, so plugin
actions are known whatever was imported first.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    GetJsonSchemaHandler,
    PrivateAttr,
    SerializeAsAny,
    ValidatorFunctionWrapHandler,
    WrapValidator,
    field_validator,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

from aios.actions.base import ActionSpec, Risk, guarded_floor
from aios.durations import Duration
from aios.errors import EventValidationError
from aios.event import check_json_value
from aios.event_filter import compile_glob
from aios.event_paths import split_path
from aios.playbooks.conditions import AllOf, AnyOf, Compare, Condition, NotOf
from aios.probes import PROBES, SEED_CHECKS, Expectation, check_params

ID_PATTERN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,99}$")


def _check_paths(paths: list[str]) -> list[str]:
    for path in paths:
        split_path(path)
    return paths


def _positive(value: timedelta) -> timedelta:
    if value <= timedelta(0):
        raise ValueError("must be longer than 0s")
    return value


def _validate_actions(value: Any, handler: ValidatorFunctionWrapHandler) -> list[ActionSpec]:
    """The actions, validated against the action types known now: the set is looked up at
    each validation, never when this module is imported, so the plugins a process has are
    all known whichever of them (or of this module) is imported first."""
    from aios.actions import actions_adapter

    return actions_adapter().validate_python(value)


class _ActionsSchema:
    """The JSON schema of ``actions``, made from the action types known when it is asked
    for (plugins included)."""

    def __get_pydantic_json_schema__(
        self, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        from aios.actions import actions_adapter

        return handler(actions_adapter().core_schema)


Actions = Annotated[
    list[SerializeAsAny[ActionSpec]], WrapValidator(_validate_actions), _ActionsSchema()
]


class Threshold(BaseModel):
    """Fire only after ``count`` matching events within ``within`` (per group)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    count: int = Field(ge=1, description="How many matching events are needed.")
    within: Duration = Field(description="The sliding window they must fall in.")
    group_by: list[str] = Field(default_factory=list, description="Paths to count separately by.")

    _paths = field_validator("group_by")(_check_paths)
    _window = field_validator("within")(_positive)


class Throttle(BaseModel):
    """Fire at most once per ``once_within`` (per group)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    once_within: Duration = Field(description="After firing, stay quiet this long.")
    group_by: list[str] = Field(
        default_factory=list, description="Paths to throttle separately by."
    )

    _paths = field_validator("group_by")(_check_paths)
    _window = field_validator("once_within")(_positive)


class Limits(BaseModel):
    """Circuit breaker settings (seed defaults)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    max_runs: int = Field(default=3, ge=1, description="Runs per target within window.")
    window: Duration = Field(default=timedelta(hours=24), description="Window for max_runs.")
    failures_to_open: int = Field(
        default=3, ge=1, description="Consecutive failures that open the breaker."
    )
    cooldown: Duration = Field(
        default=timedelta(minutes=5), description="After this, one trial run goes through."
    )
    flap_count: int = Field(
        default=3, ge=2, description="The same action on the same target this often..."
    )
    flap_window: Duration = Field(
        default=timedelta(hours=1), description="...within this window is flapping."
    )
    target_by: list[str] = Field(
        default_factory=list,
        description="Paths naming the target (default: all labels of the triggering event).",
    )

    _paths = field_validator("target_by")(_check_paths)
    _windows = field_validator("window", "flap_window")(_positive)


class VerifySpec(BaseModel):
    """A probe and what it should read, polled from ``after`` until ``within``."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    probe: str = Field(description=f"One of: {', '.join(PROBES)}.")
    expect: str = Field(description="<70, <=70, >5, ==3, !=0, 10..20, or a value.")
    after: Duration = Field(default=timedelta(0), description="Wait before the first reading.")
    within: Duration = Field(default=timedelta(seconds=60), description="Give up after this.")
    interval: Duration = Field(default=timedelta(seconds=2), description="Between readings.")
    mode: Literal["first", "sustained"] | None = Field(
        default=None,
        description="first: pass as soon as it holds; sustained: it must hold until within "
        "(default for event_absent).",
    )
    params: dict[str, Any] = Field(
        default_factory=dict, description="Probe parameters (path, pattern, file, key, type)."
    )

    @model_validator(mode="before")
    @classmethod
    def _forms(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        if "metric" in data:  # seed: {"metric": "cpu_usage", "expected": "<70"}
            data["probe"] = data.pop("metric")
        if "expected" in data:
            data["expect"] = data.pop("expected")
        if "check" in data:  # seed: {"check": "cpu_below_threshold", "threshold": 70}
            check = data.pop("check")
            if not isinstance(check, str) or check not in SEED_CHECKS:  # a list is unhashable
                raise ValueError(
                    f"unknown check {check!r} (known: {', '.join(SEED_CHECKS)}, or use probe:)"
                )
            if "threshold" not in data:
                raise ValueError(f"check {check} needs a threshold")
            probe, op = SEED_CHECKS[check]
            data["probe"] = probe
            data["expect"] = f"{op}{data.pop('threshold')}"
        known = set(cls.model_fields)
        given = data.get("params") or {}
        if not isinstance(given, dict):  # dict() would raise TypeError, which pydantic passes on
            raise ValueError("params must be a mapping of probe parameters")
        params = dict(given)
        for key in [k for k in data if k not in known]:
            params[key] = data.pop(key)  # probe parameters may sit beside probe: and expect:
        data["params"] = params
        if "expect" in data and not isinstance(data["expect"], str):
            data["expect"] = (
                str(data["expect"]).lower()
                if isinstance(data["expect"], bool)
                else (f"=={data['expect']}")
            )
        return data

    _interval = field_validator("interval")(_positive)

    @model_validator(mode="after")
    def _check(self) -> VerifySpec:
        try:
            check_json_value(self.params, "params")
        except EventValidationError as exc:
            raise ValueError(str(exc)) from None
        check_params(self.probe, self.params)
        Expectation.parse(self.expect)
        return self

    def expectation(self) -> Expectation:
        return Expectation.parse(self.expect)

    def sustained(self) -> bool:
        return self.mode == "sustained" or (self.mode is None and self.probe == "event_absent")


def _seed_conditions(conditions: dict[str, Any]) -> list[dict[str, Any]]:
    """The seed's ``{"resource": "cpu", "threshold": 80}`` as canonical comparisons."""
    out = []
    for key, value in conditions.items():
        if key == "threshold":
            out.append({"path": "payload.value", "op": "gte", "value": value})
        else:
            out.append({"path": f"payload.{key}", "op": "eq", "value": value})
    return out


class Trigger(BaseModel):
    """Which events start the playbook."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, populate_by_name=True, allow_inf_nan=False
    )

    type: str = Field(
        validation_alias=AliasChoices("type", "event_type"),
        description="Event type glob, e.g. resource.high or task.*",
    )
    conditions: Condition | None = Field(
        default=None, description="A condition, or a list that must all hold."
    )
    threshold: Threshold | None = None
    throttle: Throttle | None = None

    @model_validator(mode="before")
    @classmethod
    def _forms(cls, data: Any) -> Any:
        if not isinstance(data, dict) or "conditions" not in data:
            return data
        data = dict(data)
        conditions = data["conditions"]
        if isinstance(conditions, list):
            data["conditions"] = {"all": conditions}
        elif isinstance(conditions, dict) and not ({"path", "all", "any", "not"} & set(conditions)):
            data["conditions"] = {"all": _seed_conditions(conditions)}
        return data

    @field_validator("type")
    @classmethod
    def _check_type(cls, value: str) -> str:
        compile_glob(value)
        return value


class Playbook(BaseModel):
    """A remediation: when ``trigger`` fires, run ``actions``, then ``verify``."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, populate_by_name=True, allow_inf_nan=False
    )

    id: str = Field(description="Unique id: letters, digits, _ . -")
    description: str = Field(default="", description="What it fixes and how.")
    enabled: bool = Field(default=True, description="Disabled playbooks match but never run.")
    trigger: Trigger
    actions: Actions = Field(description="Run in order (at least one).")
    risk: Risk = Field(
        default=Risk.LOW, description="Declared risk; the actions' floors can only raise it."
    )
    auto_execute: bool = Field(
        default=True, description="Run without asking when the effective risk is low."
    )
    verify: VerifySpec | None = Field(
        default=None,
        validation_alias=AliasChoices("verify", "validation"),
        description="Without it, an outcome is 'unverified', never a success.",
    )
    limits: Limits = Field(default_factory=Limits)
    tags: list[str] = Field(default_factory=list)

    _source: str = PrivateAttr(default="")
    _line: int | None = PrivateAttr(default=None)

    @field_validator("id")
    @classmethod
    def _check_id(cls, value: str) -> str:
        if not ID_PATTERN.match(value):
            raise ValueError("use letters, digits, _ . - (at most 100 characters)")
        return value

    @property
    def source(self) -> str:
        """``file:line`` where the playbook was defined (empty when built in code)."""
        return f"{self._source}:{self._line}" if self._line else self._source

    def effective_risk(self) -> Risk:
        """The declared risk raised to the highest floor of the actions (an action whose
        floor cannot be told counts as high: see ``risk_problems``)."""
        risk = self.risk
        for action in self.actions:
            risk = risk.at_least(guarded_floor(action)[0])
        return risk

    def risk_problems(self) -> list[str]:
        """Why actions count as high risk whatever they declare: their ``floor()`` failed."""
        return [why for action in self.actions if (why := guarded_floor(action)[1]) is not None]

    def needs_approval(self, approve_from: str = "medium") -> bool:
        """Whether a person must say yes first: medium or high risk, ``auto_execute`` off, or
        a risk policy (``approve_from="low"``) that asks for everything."""
        if approve_from == "low":
            return True
        return self.effective_risk() is not Risk.LOW or not self.auto_execute

    def condition(self) -> Compare | AllOf | AnyOf | NotOf | None:
        return self.trigger.conditions
