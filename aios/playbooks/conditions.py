"""Trigger conditions: an operator registry over dotted paths into an event, with explanations.

A condition is a comparison ``{path: payload.value, op: gte, value: 80}`` or a combination
``{all: [...]}``, ``{any: [...]}``, ``{not: {...}}``, nested freely. Paths start at an event
field (``payload``, ``labels``, ``source``, ``type``, ``severity``, ``priority``, ``id``,
``correlation_id``, ``causation_id``) and go down through objects and list indexes
(``payload.items.0.name``). A path that leads nowhere is *missing*: every operator is false on
it except ``exists: false``.

Matching compiles conditions into closures (fast, short-circuiting); ``explain`` evaluates all
of them and reports, for each comparison, the path, the value seen, the operator and the verdict.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Annotated, Any, Literal

import regex
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationInfo,
    field_validator,
)

from aios.errors import EventValidationError
from aios.event import Event, check_json_value
from aios.event_paths import MISSING, resolve, split_path


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    return None


def _ordered(seen: Any, expected: Any) -> tuple[Any, Any] | None:
    """Both as numbers, or both as strings; None when they cannot be ordered."""
    a, b = _number(seen), _number(expected)
    if a is not None and b is not None:
        return a, b
    if isinstance(seen, str) and isinstance(expected, str):
        return seen, expected
    return None


def _eq(seen: Any, expected: Any) -> bool:
    if isinstance(seen, bool) or isinstance(expected, bool):
        return type(seen) is type(expected) and seen == expected  # true is not 1
    a, b = _number(seen), _number(expected)
    if a is not None and b is not None:
        return a == b
    return bool(seen == expected)


def _cmp(test: Callable[[Any, Any], bool]) -> Callable[[Any, Any], bool]:
    def op(seen: Any, expected: Any) -> bool:
        pair = _ordered(seen, expected)
        return pair is not None and test(*pair)

    return op


def _contains(seen: Any, expected: Any) -> bool:
    if isinstance(seen, str):
        return isinstance(expected, str) and expected in seen
    if isinstance(seen, list):
        return any(_eq(item, expected) for item in seen)
    if isinstance(seen, dict):
        return isinstance(expected, str) and expected in seen  # a key of the object
    return False


REGEX_TIMEOUT_S = 0.05  # a pathological pattern cannot stall the reactor on a crafted event


@lru_cache(maxsize=1024)
def _regex(pattern: str) -> Any:
    return regex.compile(pattern)


def _search(seen: Any, pattern: str) -> bool:
    if not isinstance(seen, str):
        return False
    try:
        return _regex(pattern).search(seen, timeout=REGEX_TIMEOUT_S) is not None
    except TimeoutError:
        return False


def _between(seen: Any, expected: Any) -> bool:
    low, high = expected
    pair_low, pair_high = _ordered(seen, low), _ordered(seen, high)
    return (
        pair_low is not None
        and pair_high is not None
        and pair_low[1] <= pair_low[0]
        and pair_high[0] <= pair_high[1]
    )


@dataclass(frozen=True)
class Operator:
    """One comparison: ``test(seen, expected)``; ``check`` validates ``expected`` at load time."""

    name: str
    test: Callable[[Any, Any], bool]
    description: str
    check: Callable[[Any], str | None] = lambda value: None


def _needs_list(value: Any) -> str | None:
    return None if isinstance(value, list) else "value must be a list"


def _needs_pair(value: Any) -> str | None:
    if not (isinstance(value, list) and len(value) == 2):
        return "value must be [low, high]"
    return None


# regex compiles x{n} as n copies of x: ((a{100}){100}){100} takes half a second to compile,
# one more {100} a minute. Patterns that would expand beyond this many items are refused
# before they are compiled.
MAX_REGEX_EXPANSION = 10_000
_COUNTED = re.compile(r"\{(\d*)(?:,\d*)?\}")


def _expanded_size(pattern: str) -> int:
    """An upper estimate of how many items ``pattern`` compiles to (counted repeats copied).

    Stops counting once past MAX_REGEX_EXPANSION. Escapes and character classes count as
    one item; a group counts as what it holds.
    """
    groups = [0]  # the size of each open group so far
    last = 0  # the size of the item a following {n} repeats
    pos, end = 0, len(pattern)
    while pos < end and groups[-1] <= MAX_REGEX_EXPANSION:
        char = pattern[pos]
        if char == "(":
            groups.append(0)
            pos, last = pos + 1, 0
            continue
        if char == ")" and len(groups) > 1:
            size, pos = groups.pop(), pos + 1
        elif char == "{" and (counted := _COUNTED.match(pattern, pos)) and counted.group(1):
            digits = counted.group(1)
            times = MAX_REGEX_EXPANSION + 1 if len(digits) > 9 else int(digits)
            groups[-1] += last * (max(times, 1) - 1)
            last *= max(times, 1)
            pos = counted.end()
            continue
        elif char == "\\":
            size, pos = 1, pos + 2
        elif char == "[":
            close = pos + 1 + (pattern[pos + 1 : pos + 2] == "^")
            close += pattern[close : close + 1] == "]"  # a leading ] is a member
            while close < end and pattern[close] != "]":
                close += 2 if pattern[close] == "\\" else 1
            size, pos = 1, close + 1
        else:
            size, pos = 1, pos + 1
        groups[-1] += size
        last = size
    return sum(groups)


def _needs_regex(value: Any) -> str | None:
    if not isinstance(value, str):
        return "value must be a regular expression string"
    if _expanded_size(value) > MAX_REGEX_EXPANSION:
        return (
            f"the regular expression compiles to more than {MAX_REGEX_EXPANSION} items "
            "(x{n} is copied n times); use a smaller count, or + and *"
        )
    try:
        regex.compile(value)
    except regex.error as exc:
        return f"invalid regular expression: {exc}"
    except RecursionError:  # thousands of nested groups
        return "invalid regular expression: nested too deeply"
    return None


def _needs_bool(value: Any) -> str | None:
    return None if isinstance(value, bool) else "value must be true or false"


def _needs_str(value: Any) -> str | None:
    return None if isinstance(value, str) else "value must be a string"


OPERATORS: dict[str, Operator] = {
    op.name: op
    for op in (
        Operator("eq", _eq, "equal (numbers compare as numbers)"),
        Operator("ne", lambda s, e: not _eq(s, e), "not equal"),
        Operator("gt", _cmp(lambda a, b: a > b), "greater than"),
        Operator("gte", _cmp(lambda a, b: a >= b), "greater than or equal"),
        Operator("lt", _cmp(lambda a, b: a < b), "less than"),
        Operator("lte", _cmp(lambda a, b: a <= b), "less than or equal"),
        Operator("in", lambda s, e: any(_eq(s, x) for x in e), "one of a list", _needs_list),
        Operator(
            "not_in", lambda s, e: not any(_eq(s, x) for x in e), "none of a list", _needs_list
        ),
        Operator("contains", _contains, "string holds a substring, list an item, object a key"),
        Operator(
            "startswith",
            lambda s, e: isinstance(s, str) and s.startswith(e),
            "string starts with",
            _needs_str,
        ),
        Operator(
            "endswith",
            lambda s, e: isinstance(s, str) and s.endswith(e),
            "string ends with",
            _needs_str,
        ),
        Operator(
            "regex",
            _search,
            "string matches a regular expression (search; gives up after 50 ms)",
            _needs_regex,
        ),
        Operator(
            "exists", lambda s, e: True, "the path is present (true) or absent (false)", _needs_bool
        ),
        Operator("between", _between, "low <= value <= high", _needs_pair),
    )
}


# ------------------------------------------------------------------ the models
class Compare(BaseModel):
    """``path`` ``op`` ``value``: one comparison."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    path: str = Field(description="Dotted path into the event, e.g. payload.value, labels.host.")
    value: Any = Field(default=None, description="What to compare with (not needed for exists).")
    op: str = Field(description=f"One of: {', '.join(OPERATORS)}.")

    @field_validator("path")
    @classmethod
    def _check_path(cls, path: str) -> str:
        split_path(path)
        return path

    @field_validator("value")
    @classmethod
    def _check_value(cls, value: Any) -> Any:
        # What an event can hold: plain, finite JSON. NaN would make ``ne`` always true.
        try:
            check_json_value(value, "value")
        except EventValidationError as exc:
            raise ValueError(exc.reason) from None
        return value

    @field_validator("op")
    @classmethod
    def _check_op(cls, op: str, info: ValidationInfo) -> str:
        operator = OPERATORS.get(op)
        if operator is None:
            raise ValueError(f"unknown operator {op!r} (known: {', '.join(OPERATORS)})")
        if "value" not in info.data:
            return op  # the value was refused already; its error says why
        value = info.data["value"]
        problem = operator.check(True if op == "exists" and value is None else value)
        if problem:
            raise ValueError(f"operator {op}: {problem}")
        return op


class AllOf(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
    all: list[Condition] = Field(description="Every condition holds.")


class AnyOf(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
    any: list[Condition] = Field(description="At least one condition holds.")


class NotOf(BaseModel):
    model_config = ConfigDict(
        extra="forbid", frozen=True, populate_by_name=True, allow_inf_nan=False
    )
    not_: Condition = Field(alias="not", description="The condition does not hold.")


def _condition_kind(value: Any) -> str | None:
    if isinstance(value, dict):
        for key in ("all", "any", "not"):
            if key in value:
                return key
        return "compare"
    if isinstance(value, AllOf):
        return "all"
    if isinstance(value, AnyOf):
        return "any"
    if isinstance(value, NotOf):
        return "not"
    if isinstance(value, Compare):
        return "compare"
    return None


Condition = Annotated[
    Annotated[Compare, Tag("compare")]
    | Annotated[AllOf, Tag("all")]
    | Annotated[AnyOf, Tag("any")]
    | Annotated[NotOf, Tag("not")],
    Discriminator(_condition_kind),
]
AllOf.model_rebuild()
AnyOf.model_rebuild()
NotOf.model_rebuild()


def safe_test(test: Callable[[Any, Any], bool], seen: Any, expected: Any) -> bool:
    """An operator's verdict; whatever an event holds, it never raises (a mismatch is False)."""
    try:
        return bool(test(seen, expected))
    except (TypeError, ValueError, OverflowError, RecursionError):
        return False


# ------------------------------------------------------------ compiled matching
Predicate = Callable[[Event], bool]


def compile_condition(condition: Compare | AllOf | AnyOf | NotOf) -> Predicate:
    """A fast, short-circuiting predicate for ``condition``."""
    if isinstance(condition, Compare):
        parts = split_path(condition.path)
        operator = OPERATORS[condition.op]
        expected = condition.value
        if condition.op == "exists":
            want = True if expected is None else bool(expected)
            return lambda event: (resolve(event, parts) is not MISSING) == want
        test = operator.test

        def compare(event: Event) -> bool:
            seen = resolve(event, parts)
            return seen is not MISSING and safe_test(test, seen, expected)

        return compare
    if isinstance(condition, AllOf):
        parts_all = [compile_condition(c) for c in condition.all]
        return lambda event: all(p(event) for p in parts_all)
    if isinstance(condition, AnyOf):
        parts_any = [compile_condition(c) for c in condition.any]
        return lambda event: any(p(event) for p in parts_any)
    inner = compile_condition(condition.not_)
    return lambda event: not inner(event)


# ---------------------------------------------------------------- explanation
@dataclass
class ConditionResult:
    """How one condition (or combination) fared against an event."""

    kind: Literal["compare", "all", "any", "not"]
    verdict: bool
    path: str | None = None
    op: str | None = None
    expected: Any = None
    seen: Any = None
    children: list[ConditionResult] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        if self.kind == "compare":
            return {
                "path": self.path,
                "op": self.op,
                "expected": self.expected,
                "seen": None if self.seen is MISSING else self.seen,
                "missing": self.seen is MISSING,
                "verdict": self.verdict,
            }
        return {
            "kind": self.kind,
            "verdict": self.verdict,
            "children": [child.to_dict() for child in self.children],
        }

    def lines(self, depth: int = 0) -> list[str]:
        """Readable lines, one per condition, indented by nesting."""
        pad = "  " * depth
        mark = "✓" if self.verdict else "✗"
        if self.kind == "compare":
            seen = "missing" if self.seen is MISSING else repr(self.seen)
            expected = (
                "" if self.op == "exists" and self.expected is None else f" {self.expected!r}"
            )
            return [f"{pad}{mark} {self.path} {self.op}{expected} (seen {seen})"]
        out = [f"{pad}{mark} {self.kind}:"]
        for child in self.children:
            out.extend(child.lines(depth + 1))
        return out


def explain_condition(condition: Compare | AllOf | AnyOf | NotOf, event: Event) -> ConditionResult:
    """Evaluate every part of ``condition`` (no short-circuit) and say how each fared."""
    if isinstance(condition, Compare):
        seen = resolve(event, split_path(condition.path))
        if condition.op == "exists":
            want = True if condition.value is None else bool(condition.value)
            verdict = (seen is not MISSING) == want
        else:
            verdict = seen is not MISSING and safe_test(
                OPERATORS[condition.op].test, seen, condition.value
            )
        return ConditionResult(
            "compare", verdict, condition.path, condition.op, condition.value, seen
        )
    if isinstance(condition, AllOf):
        children = [explain_condition(c, event) for c in condition.all]
        return ConditionResult("all", all(c.verdict for c in children), children=children)
    if isinstance(condition, AnyOf):
        children = [explain_condition(c, event) for c in condition.any]
        return ConditionResult("any", any(c.verdict for c in children), children=children)
    child = explain_condition(condition.not_, event)
    return ConditionResult("not", not child.verdict, children=[child])
