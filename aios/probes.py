"""Verify probes and expectations: did the remediation work?

A probe reads one number (or value) from the machine, a file or the event log; an expectation
(``<70``, ``<=70``, ``>5``, ``==3``, ``!=0``, ``10..20``, or a plain value meaning ``==``) says
what it should be. ``poll`` waits ``after``, then reads every ``interval`` until the
expectation holds or ``within`` runs out.

Probes: ``cpu_usage`` and ``memory_usage`` (percent), ``disk_usage`` (percent, ``path``),
``process_count`` (``pattern``), ``process_memory_mb`` (``pattern``), ``file_value`` (``file``,
``key``; under the allowed roots) and ``event_absent`` (events of ``type`` since the actions
ran; expect ``==0``). The seed's checks ``cpu_below_threshold`` and friends map onto these.
Plugin probes (the ``aios.probes`` entry point group) are looked up after these.
"""

from __future__ import annotations

import fnmatch
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
from pydantic import BaseModel, ValidationError

from aios.event import Event


class ProbeError(Exception):
    """A probe could not take a reading (the reading is then a failure, with this reason)."""


# ---------------------------------------------------------------- expectations
_EXPECT = re.compile(r"^\s*(<=|>=|==|!=|<|>)?\s*(.+?)\s*$")
_WORD = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")
_RANGE = re.compile(r"^\s*(-?[\d.]+)\s*\.\.\s*(-?[\d.]+)\s*$")


def _as_number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


_NOT_FINITE = {"nan", "+nan", "-nan", "inf", "+inf", "-inf", "infinity", "+infinity", "-infinity"}


def _shown(value: Any) -> str:
    """``value`` as an error message shows it: its repr, cut to 60 characters."""
    try:
        text = repr(value)
    except ValueError:  # an int of over 4300 digits has no repr
        return "a number of over 4300 digits"
    return text if len(text) <= 60 else text[:57] + "..."


def _finite(given: Any, number: float) -> float:
    if not math.isfinite(number):
        raise ValueError(f"expectation {_shown(given)}: NaN and infinity are not allowed")
    return number


@dataclass(frozen=True)
class Expectation:
    """A parsed expectation; ``holds(value)`` tests a reading."""

    text: str
    op: str
    target: Any
    high: float | None = None

    @classmethod
    def parse(cls, text: str | float | int) -> Expectation:
        """The expectation ``text`` says. Raises ValueError, its message starting with
        ``expectation``, when it is not one (NaN and infinity never are)."""
        if isinstance(text, bool):
            return cls(str(text).lower(), "==", text)
        if isinstance(text, int | float):
            try:
                given = float(text)
            except OverflowError:
                given = math.inf if text > 0 else -math.inf
            target = _finite(text, given)  # before text is shown: a huge int has no str
            return cls(f"=={text}", "==", target)
        if not isinstance(text, str):
            raise ValueError(f"expectation {_shown(text)} is not text or a number")
        ranged = _RANGE.match(text)
        if ranged:
            ends = _as_number(ranged.group(1)), _as_number(ranged.group(2))
            if ends[0] is None or ends[1] is None:
                raise ValueError(f"expectation {_shown(text)}: a range is two numbers, like 10..20")
            low, high = _finite(text, ends[0]), _finite(text, ends[1])
            if low > high:
                raise ValueError(f"expectation {_shown(text)}: the range is empty")
            return cls(text, "..", low, high)
        match = _EXPECT.match(text)
        if not match or not match.group(2) or ".." in text:
            raise ValueError(f"expectation {_shown(text)} is not like <70, >=5, ==3, 10..20")
        op = match.group(1) or "=="
        raw = match.group(2)
        number = _as_number(raw)
        if number is not None:
            _finite(text, number)
        elif raw.strip("'\"").lower() in _NOT_FINITE:  # the quoted word would compare as text
            raise ValueError(f"expectation {_shown(text)}: NaN and infinity are not allowed")
        if op in ("<", "<=", ">", ">=") and number is None:
            raise ValueError(f"expectation {_shown(text)}: {op} needs a number")
        if number is None and not _WORD.match(raw.strip("'\"")):
            raise ValueError(
                f"expectation {_shown(text)} is not like <70, >=5, ==3, 10..20, ==ready (a number "
                "or a plain word)"
            )
        if number is None and raw.lower() in ("true", "false"):
            return cls(text, op, raw.lower() == "true")
        return cls(text, op, number if number is not None else raw.strip("'\""))

    def holds(self, value: Any) -> bool:
        if self.op == "..":
            number = _numeric(value)
            return number is not None and self.target <= number <= (self.high or 0.0)
        if self.op in ("==", "!="):
            equal = _same(value, self.target)
            return equal if self.op == "==" else not equal
        number = _numeric(value)
        if number is None:
            return False
        target = float(self.target)
        if self.op == "<":
            return number < target
        if self.op == "<=":
            return number <= target
        if self.op == ">":
            return number > target
        return number >= target


def _numeric(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        try:
            return float(value)
        except OverflowError:  # an int beyond any float
            return math.inf if value > 0 else -math.inf
    if isinstance(value, str):
        return _as_number(value)
    return None


def _same(value: Any, target: Any) -> bool:
    if isinstance(target, bool) or isinstance(value, bool):
        return type(value) is type(target) and value == target  # true is not 1
    a, b = _numeric(value), _numeric(target)
    if a is not None and b is not None:
        return a == b
    try:
        return str(value) == str(target)
    except ValueError:  # an int of over 4300 digits has no str: it is no word either
        return False


# ---------------------------------------------------------------------- probes
@dataclass
class ProbeContext:
    """What probes may use."""

    allowed_roots: tuple[Path, ...] = ()
    read_events_since: Callable[[], list[Event]] | None = None  # events after the actions


@dataclass(frozen=True)
class ProbeDef:
    name: str
    read: Callable[[dict[str, Any], ProbeContext], Any]
    required: tuple[str, ...] = ()
    optional: tuple[str, ...] = ()
    unit: str = ""
    description: str = ""
    model: type[BaseModel] | None = None  # a plugin probe's parameters
    # Parameters that are process globs: a value from the event in them matches literally.
    globs: tuple[str, ...] = ()


def _cpu(params: dict[str, Any], ctx: ProbeContext) -> float:
    return float(psutil.cpu_percent(interval=float(params.get("sample", 1.0))))


def _memory(params: dict[str, Any], ctx: ProbeContext) -> float:
    return float(psutil.virtual_memory().percent)


def _disk(params: dict[str, Any], ctx: ProbeContext) -> float:
    try:
        return float(psutil.disk_usage(str(params["path"])).percent)
    except OSError as exc:
        raise ProbeError(f"disk_usage {params['path']}: {exc.strerror}") from None


def _matching(pattern: str) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["name", "cmdline"]):
        name = proc.info.get("name") or ""
        cmdline = " ".join(proc.info.get("cmdline") or [])
        if fnmatch.fnmatchcase(name, pattern) or fnmatch.fnmatchcase(cmdline, pattern):
            found.append(proc)
    return found


def _process_count(params: dict[str, Any], ctx: ProbeContext) -> int:
    return sum(1 for proc in _matching(str(params["pattern"])) if proc.is_running())


def _process_memory(params: dict[str, Any], ctx: ProbeContext) -> float:
    total = 0.0
    for proc in _matching(str(params["pattern"])):
        try:
            total += proc.memory_info().rss / 2**20
        except psutil.Error:
            continue
    return round(total, 1)


def _file_value(params: dict[str, Any], ctx: ProbeContext) -> Any:
    from aios.actions.base import ActionError
    from aios.actions.config_formats import MAX_CONFIG_BYTES, detect_format, get_key, parse
    from aios.actions.confine import open_file, open_parent, read_all

    path = str(params["file"])
    try:
        with open_parent(path, ctx.allowed_roots) as (dir_fd, name):
            import os

            fd = open_file(dir_fd, name)
            try:
                raw = read_all(fd, MAX_CONFIG_BYTES, path=path)
            finally:
                os.close(fd)
        document = parse(
            raw.decode("utf-8"), detect_format(path, params.get("format", "auto")), path
        )
        return get_key(document, str(params["key"]), path)
    except (ActionError, OSError, UnicodeDecodeError) as exc:
        raise ProbeError(f"file_value {path}: {exc}") from None


def _event_absent(params: dict[str, Any], ctx: ProbeContext) -> int:
    if ctx.read_events_since is None:
        raise ProbeError("event_absent needs the event log")
    pattern = str(params["type"])
    labels = params.get("labels") or {}
    return sum(
        1
        for event in ctx.read_events_since()
        if fnmatch.fnmatchcase(event.type, pattern)
        and all(event.labels.get(k) == v for k, v in labels.items())
    )


PROBES: dict[str, ProbeDef] = {
    probe.name: probe
    for probe in (
        ProbeDef("cpu_usage", _cpu, (), ("sample",), "%", "total CPU use, sampled"),
        ProbeDef("memory_usage", _memory, (), (), "%", "memory in use"),
        ProbeDef("disk_usage", _disk, ("path",), (), "%", "use of the filesystem holding path"),
        ProbeDef(
            "process_count",
            _process_count,
            ("pattern",),
            (),
            "",
            "matching processes",
            globs=("pattern",),
        ),
        ProbeDef(
            "process_memory_mb",
            _process_memory,
            ("pattern",),
            (),
            "MB",
            "RSS of matching processes",
            globs=("pattern",),
        ),
        ProbeDef("file_value", _file_value, ("file", "key"), ("format",), "", "a key in a file"),
        ProbeDef(
            "event_absent",
            _event_absent,
            ("type",),
            ("labels",),
            "events",
            "matching events since the actions ran",
        ),
    )
}

# The seed's checks: name -> (probe, comparison against the given threshold).
SEED_CHECKS = {
    "cpu_below_threshold": ("cpu_usage", "<"),
    "cpu_above_threshold": ("cpu_usage", ">"),
    "memory_below_threshold": ("memory_usage", "<"),
    "memory_above_threshold": ("memory_usage", ">"),
    "disk_below_threshold": ("disk_usage", "<"),
    "disk_above_threshold": ("disk_usage", ">"),
}


# The type each probe parameter must have; templates (${...}) are strings.
_PARAM_TYPES: dict[str, tuple[type, ...]] = {
    "sample": (int, float),
    "path": (str,),
    "pattern": (str,),
    "file": (str,),
    "key": (str,),
    "format": (str,),
    "type": (str,),
    "labels": (dict,),
}


def _plugin_probes() -> dict[str, ProbeDef]:
    from aios.plugins.discovery import loaded

    return {name: _plugin_definition(plugin) for name, plugin in loaded("probe").items()}


def _plugin_definition(plugin: Any) -> ProbeDef:
    """A plugin probe as a ProbeDef: parameters validated by its model, a number returned."""

    def read(params: dict[str, Any], ctx: ProbeContext) -> float:
        try:
            validated = plugin.params.model_validate(params)
        except ValidationError as exc:
            raise ProbeError(f"{plugin.name}: {_first_error(exc)}") from None
        except (Exception, SystemExit) as exc:  # its own validators: someone else's code
            raise ProbeError(_plugin_failed(plugin.name, "checking its parameters", exc)) from None
        try:
            value = plugin.read(validated, ctx)
        except ProbeError:
            raise
        except (Exception, SystemExit) as exc:  # someone else's code: a failed reading
            raise ProbeError(_plugin_failed(plugin.name, "reading", exc)) from None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ProbeError(f"{plugin.name} returned {_shown(value)}, not a number")
        if isinstance(value, float) and not math.isfinite(value):
            raise ProbeError(f"{plugin.name} returned {value!r}, not a finite number")
        return value

    fields = plugin.params.model_fields
    return ProbeDef(
        plugin.name,
        read,
        tuple(name for name, f in fields.items() if f.is_required()),
        tuple(name for name, f in fields.items() if not f.is_required()),
        plugin.unit,
        plugin.description,
        plugin.params,
        globs=("pattern",) if "pattern" in fields else (),
    )


def _plugin_failed(name: str, doing: str, exc: BaseException) -> str:
    from aios.plugins.discovery import describe

    return f"the {describe('probe', name)} failed {doing}: {type(exc).__name__}: {exc}"[:2000]


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error["loc"])
    return f"{where}: {error['msg']}" if where else str(error["msg"])


def probe_definition(probe: str) -> ProbeDef | None:
    """The built-in or plugin probe named ``probe``; None when there is none."""
    return PROBES.get(probe) or _plugin_probes().get(probe)


def check_params(probe: str, params: dict[str, Any]) -> None:
    """Raise ValueError for an unknown probe, or a missing, unknown or mistyped parameter."""
    definition = probe_definition(probe)
    if definition is None:
        known = [*PROBES, *_plugin_probes()]
        raise ValueError(f"unknown probe {probe!r} (known: {', '.join(known)})")
    if definition.model is not None:
        _check_model_params(probe, definition.model, params)
        return
    missing = [name for name in definition.required if name not in params]
    if missing:
        raise ValueError(f"probe {probe} needs {', '.join(missing)}")
    unknown = sorted(set(params) - set(definition.required) - set(definition.optional))
    if unknown:
        raise ValueError(f"probe {probe} does not take {', '.join(unknown)}")
    for name, value in params.items():
        wanted = _PARAM_TYPES.get(name, (object,))
        if isinstance(value, bool) or not isinstance(value, wanted):
            kinds = " or ".join("number" if t in (int, float) else t.__name__ for t in wanted)
            raise ValueError(f"probe {probe}: {name} must be a {kinds}, not {value!r}")


def _check_model_params(probe: str, model: type[BaseModel], params: dict[str, Any]) -> None:
    unknown = sorted(set(params) - set(model.model_fields))
    if unknown:
        raise ValueError(f"probe {probe} does not take {', '.join(unknown)}")
    try:
        model.model_validate(params)
    except (Exception, SystemExit) as exc:
        if not isinstance(exc, ValidationError):  # its own validators: someone else's code
            raise ValueError(_plugin_failed(probe, "checking its parameters", exc)) from None
        for error in exc.errors():
            value = error.get("input")
            if isinstance(value, str) and "${" in value:
                continue  # a template: its value is known only when the event is
            where = ".".join(str(part) for part in error["loc"])
            raise ValueError(f"probe {probe}: {where}: {error['msg']}") from None


@dataclass
class VerifyResult:
    """The outcome of polling a probe."""

    passed: bool
    probe: str
    expect: str
    readings: list[dict[str, Any]] = field(default_factory=list)
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "probe": self.probe,
            "expect": self.expect,
            "readings": self.readings[-20:],
            "reason": self.reason,
        }


def poll(
    probe: str,
    params: dict[str, Any],
    expect: Expectation,
    *,
    after: float,
    within: float,
    interval: float,
    ctx: ProbeContext,
    sustained: bool = False,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> VerifyResult:
    """Read ``probe`` from ``after`` seconds on, every ``interval``, until ``within``.

    By default it passes at the first reading that meets ``expect``; ``sustained`` passes only
    if every reading until ``within`` meets it, and fails at the first that does not.
    """
    definition = probe_definition(probe)
    if definition is None:
        raise ProbeError(f"unknown probe {probe!r}")
    start = clock()
    result = VerifyResult(False, probe, expect.text)
    if after > 0:
        sleep(after)
    deadline = start + max(within, after)
    while True:
        taken = clock() - start
        try:
            value = definition.read(params, ctx)
            ok = expect.holds(value)
            result.readings.append({"t": round(taken, 2), "value": value, "ok": ok})
            shown = f"{probe} = {_with_unit(value, definition.unit)}, expected {expect.text}"
            if ok and not sustained:
                result.passed, result.reason = True, shown
                return result
            if not ok and sustained:
                result.reason = f"{shown}, at {taken:.1f}s"
                return result
            result.reason = (
                f"{shown} throughout {within:g}s"
                if sustained
                else f"{probe} was {_with_unit(value, definition.unit)} (expected {expect.text}) "
                f"until the deadline ({within:g}s)"
            )
        except ProbeError as exc:
            result.readings.append({"t": round(taken, 2), "error": str(exc), "ok": False})
            result.reason = str(exc)
            if sustained:
                return result
        if clock() + interval > deadline:
            result.passed = sustained and bool(result.readings) and result.readings[-1]["ok"]
            return result
        sleep(interval)


def _with_unit(value: Any, unit: str) -> str:
    """``93.5%``, but ``1 events`` and ``512 MB``: a word unit is set apart."""
    return f"{value!r} {unit}" if unit[:1].isalpha() else f"{value!r}{unit}"
