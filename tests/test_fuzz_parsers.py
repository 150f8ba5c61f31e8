"""Hostile input to every parser: it is accepted, or refused with an AIOS error saying where.

Each parser gets arbitrary text, bytes and JSON-like structures (huge and non-finite numbers,
non-string keys, sets, deep nesting, enormous strings), plus the classic attacks named one by
one: YAML python tags (which would create a marker file), alias bombs, 10^4 levels of nesting,
10**10000, catastrophic regular expressions. The properties: nothing raises but the project's
own errors (aios/errors.py), an error names the file, line, field or variable where there is
one, nothing is executed, and the time and memory spent stay bounded.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
import regex
import tomlkit
import yaml
from fastapi.testclient import TestClient
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError
from typer.testing import CliRunner

from aios import runtime
from aios.actions.base import render
from aios.bus import EventBus, coerce_event
from aios.cli.main import app as cli_app
from aios.config import AIOSConfig, load_config
from aios.durations import format_duration, parse_duration, parse_time
from aios.errors import (
    ConfigError,
    DurationError,
    EventValidationError,
    InputError,
    LogIntegrityError,
)
from aios.event import Event
from aios.event_filter import parse_labels
from aios.home import HomePaths
from aios.log import EventLog
from aios.log.line_format import (
    GENESIS_HASH,
    LineCheck,
    canonical_body,
    check_line,
    parse_line,
    seal,
)
from aios.observe.http_ingest import create_app
from aios.observe.inbox import inbox_dir, ingest_inbox
from aios.playbooks.conditions import (
    MAX_REGEX_EXPANSION,
    OPERATORS,
    REGEX_TIMEOUT_S,
    Condition,
    ConditionResult,
    compile_condition,
    explain_condition,
)
from aios.playbooks.loader import LoadResult, load_file
from aios.probes import Expectation
from tests.conftest import run_aios
from tests.test_fuzz_config_files import billion_laughs, bounded

# Random, as fuzzing should be: a failure prints the example and a blob to reproduce it.
# The example counts keep this file well under a minute on two cores.
settings.register_profile("aios-fuzz", deadline=None, max_examples=100)
FUZZ = settings.get_profile("aios-fuzz")
SLOW = settings(FUZZ, max_examples=20)  # examples that write files or open the store

TOKEN = "fuzz-token-" + "x" * 20
HUGE = 10**10000
HUGE_TEXT = "1" + "0" * 10_000  # str(HUGE) is refused: over 4300 digits


# ------------------------------------------------------------------ strategies
huge_ints = st.sampled_from([2**63, -(2**63) - 1, 2**64, 10**400, -(10**400)])
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    huge_ints,
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
)
json_like = st.recursive(
    scalars,
    lambda kids: (
        st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4)
    ),
    max_leaves=12,
)
# What a caller can pass in Python but JSON cannot say: bytes, sets, non-string keys, tuples.
hostile = st.one_of(
    json_like,
    st.binary(max_size=10),
    st.sets(st.integers(), max_size=3),
    st.tuples(scalars, scalars),
    st.dictionaries(st.integers() | st.none() | st.booleans(), json_like, min_size=1, max_size=3),
)
# Text that can be written to a file or the environment (no lone surrogates, no NUL).
plain_text = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"))

EVENT_FIELDS = (
    "id",
    "time",
    "type",
    "source",
    "severity",
    "labels",
    "payload",
    "correlation_id",
    "causation_id",
    "priority",
)
event_fields = st.fixed_dictionaries(
    {},
    optional={
        "type": st.sampled_from(["a.b", "resource.high", "A.b", "a", ""]) | hostile,
        "source": st.sampled_from(["app", "aios.reactor", " ", "a\nb"]) | hostile,
        "severity": st.sampled_from(["info", "critical", "apocalyptic"]) | hostile,
        "labels": st.dictionaries(st.text(max_size=6), st.text(max_size=6), max_size=3) | hostile,
        "payload": st.dictionaries(st.text(max_size=6), hostile, max_size=4) | hostile,
        "time": st.datetimes(timezones=st.none() | st.timezones()) | hostile,
        "id": st.uuids().map(str) | hostile,
        "correlation_id": st.none() | hostile,
        "causation_id": st.none() | hostile,
        "priority": hostile,
        "bogus": hostile,
    },
)
valid_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=10),
    lambda kids: (
        st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=6), kids, max_size=4)
    ),
    max_leaves=10,
)
events = st.builds(
    Event.create,
    type=st.sampled_from(["a.b", "resource.high", "task.failed"]),
    source=st.sampled_from(["app", "cli", "monitor"]),
    severity=st.sampled_from(["info", "low", "medium", "high", "critical"]),
    labels=st.dictionaries(
        st.sampled_from(["host", "agent", "x"]), st.text(max_size=6), max_size=3
    ),
    payload=st.dictionaries(
        st.sampled_from(["x", "items", "s", "value", "0"]) | st.text(max_size=4),
        valid_json,
        max_size=5,
    ),
)


def root_of(field: str) -> str:
    """The top-level name in a dotted field path: ``payload.a[2].b`` -> ``payload``."""
    return field.split(".")[0].split("[")[0]


# ----------------------------------------------------------------------- events
@FUZZ
@given(event_fields)
def test_event_create_accepts_or_names_the_field(fields: dict[str, Any]) -> None:
    try:
        event = Event.create(**fields)
    except EventValidationError as exc:
        assert exc.field is not None, exc
        assert root_of(exc.field) in {*fields, "type"}, (exc.field, fields)
        assert str(exc).startswith(exc.field)
        return
    # Whatever was accepted is stored as is, or refused by the log naming the field.
    try:
        body = canonical_body(event)
    except EventValidationError as exc:
        assert exc.field in EVENT_FIELDS
        return
    line, _ = seal(body, GENESIS_HASH, True)
    assert check_line(line).ok
    assert parse_line(line) == event


@FUZZ
@given(st.one_of(event_fields, hostile, st.builds(object)))
def test_coerce_event_takes_anything_and_refuses_with_a_validation_error(item: Any) -> None:
    try:
        assert isinstance(coerce_event(item), Event)
    except EventValidationError as exc:
        assert str(exc)


# --------------------------------------------------------------- the log lines
@FUZZ
@given(st.binary(max_size=600))
def test_log_lines_of_arbitrary_bytes_are_checked_and_parsed_without_crashing(data: bytes) -> None:
    assert isinstance(check_line(data), LineCheck)
    try:
        assert isinstance(parse_line(data), Event)
    except LogIntegrityError as exc:
        assert "aios events verify" in str(exc)


@FUZZ
@given(events, st.data())
def test_a_changed_log_line_parses_to_an_event_or_an_integrity_error(
    event: Event, data: st.DataObject
) -> None:
    line, _ = seal(canonical_body(event), GENESIS_HASH, True)
    start = data.draw(st.integers(0, len(line) - 1))
    end = data.draw(st.integers(start, min(len(line), start + 20)))
    changed = line[:start] + data.draw(st.binary(max_size=20)) + line[end:]
    assume(changed != line)
    assert not check_line(changed).ok or changed.rstrip(b"\n") == line.rstrip(b"\n")
    with contextlib.suppress(LogIntegrityError):
        parse_line(changed)


# ------------------------------------------------------------------ aios emit
@FUZZ
@given(st.lists(st.text(max_size=12), max_size=5))
def test_label_arguments_parse_or_are_refused_naming_the_item(items: list[str]) -> None:
    try:
        labels = parse_labels(items)
    except InputError as exc:
        assert any(repr(item) in str(exc) for item in items)
        return
    assert all(key and key == key.strip() for key in labels)


@pytest.fixture(scope="module")
def cli_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HomePaths]:
    """One AIOS_HOME for the in-process CLI examples (a fresh one each would cost a bus each)."""
    root = tmp_path_factory.mktemp("cli-home")
    with pytest.MonkeyPatch.context() as patch:
        for name in list(os.environ):
            if name.startswith("AIOS_"):
                patch.delenv(name)
        patch.setenv("AIOS_HOME", str(root))
        runtime.reset()
        yield HomePaths(root)
        runtime.reset()


cli_words = st.sampled_from(["a.b", "x=1", "x=1e999", "k=", "=v", "{}", "[]", '{"a": NaN}', "-"])
emit_args = st.tuples(
    cli_words | st.text(max_size=10),
    st.lists(
        st.tuples(
            st.sampled_from(["--label", "-p", "--payload", "--severity", "--source"]),
            cli_words | plain_text.filter(lambda t: not t.startswith("-")).map(lambda t: t[:30]),
        ),
        max_size=4,
    ),
)


@SLOW
@given(emit_args)
def test_aios_emit_refuses_bad_arguments_with_an_input_error(
    cli_home: HomePaths, args: tuple[str, list[tuple[str, str]]]
) -> None:
    event_type, options = args
    argv = ["emit", event_type, *[part for pair in options for part in pair]]
    result = CliRunner().invoke(cli_app, argv)
    # typer's own usage errors exit 2 without an exception; AIOS's reach run() as AIOSError.
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        assert isinstance(result.exception, InputError), (argv, repr(result.exception))


# ------------------------------------------------------------------ playbooks
SKELETON: dict[str, Any] = {
    "id": "p",
    "description": "d",
    "trigger": {
        "type": "a.b",
        "conditions": [
            {"path": "payload.x", "op": "gte", "value": 1},
            {"path": "payload.s", "op": "regex", "value": "^ok"},
        ],
        "threshold": {"count": 2, "within": "5m", "group_by": ["labels.host"]},
        "throttle": {"once_within": "1m"},
    },
    "actions": [
        {"type": "wait", "duration": "1s"},
        {
            "type": "process.kill",
            "target": "idle_agents",
            "idle_cpu_below": 2.5,
            "memory_above_mb": 100.5,
            "max_processes": 3,
            "grace": "5s",
        },
        {
            "type": "config.update",
            "file": "/srv/app/config.json",
            "key": "pool.size",
            "value": 1.5,
            "op": "multiply",
            "min": 0.5,
            "max": 10.0,
        },
        {"type": "event.emit", "event_type": "a.done", "payload": {"n": 1.5, "l": [0.5]}},
    ],
    "risk": "low",
    "verify": {
        "probe": "cpu_usage",
        "expect": "<90",
        "sample": 0.5,
        "within": "10s",
        "interval": "2s",
    },
    "limits": {"max_runs": 3, "window": "1h", "flap_window": "1h", "target_by": ["labels.host"]},
}
SEED: dict[str, Any] = {
    "id": "seed",
    "trigger": {"event_type": "resource.high", "conditions": {"resource": "cpu", "threshold": 80}},
    "actions": [{"type": "kill_process", "target": "idle_agents"}],
    "validation": {"check": "cpu_below_threshold", "threshold": 70},
}


def locations(data: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every path into ``data`` (keys and list indexes), the root excluded."""
    if isinstance(data, list):
        data = dict(enumerate(data))
    if not isinstance(data, dict):
        return
    for key, value in data.items():
        yield (*prefix, key)
        yield from locations(value, (*prefix, key))


def replaced(data: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    copy = dict(data) if isinstance(data, dict) else list(data)
    copy[path[0]] = replaced(copy[path[0]], path[1:], value)
    return copy


def dump(data: Any, suffix: str) -> str:
    """``data`` as a playbook file; the standard json module writes NaN, Infinity and big ints."""
    if suffix == ".json":
        return json.dumps(data)
    return yaml.safe_dump(data, allow_unicode=True)


def _orjson_ok(data: Any) -> bool:
    try:
        orjson.dumps(data, option=orjson.OPT_NON_STR_KEYS)
    except TypeError:
        return False
    return True


def non_finite(value: Any, path: str = "") -> list[str]:
    """Where ``value`` holds NaN or infinity (through lists, tuples and dicts)."""
    if isinstance(value, float):
        return [] if math.isfinite(value) else [path]
    if isinstance(value, dict):
        return [where for k, v in value.items() for where in non_finite(v, f"{path}.{k}")]
    if isinstance(value, list | tuple):
        return [where for i, v in enumerate(value) for where in non_finite(v, f"{path}[{i}]")]
    return []


def loaded(path: Path) -> LoadResult:
    """``load_file``, checking what every result must be: each problem names this file, and
    no playbook that loads holds NaN or infinity anywhere (its verify expectation included)."""
    result = load_file(path)
    assert result.playbooks or result.problems
    for problem in result.problems:
        assert problem.file == str(path)
        assert str(problem).startswith(str(path))
        assert problem.message
    for playbook in result.playbooks:
        assert non_finite(playbook.model_dump()) == [], playbook
        if playbook.verify is not None:
            expectation = playbook.verify.expectation()
            assert non_finite([expectation.target, expectation.high]) == [], expectation
    return result


@pytest.mark.parametrize("form", [SKELETON, SEED], ids=["canonical", "seed"])
@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_the_fuzzed_playbooks_start_out_valid(
    tmp_path: Path, form: dict[str, Any], suffix: str
) -> None:
    path = tmp_path / f"p{suffix}"
    path.write_text(dump(form, suffix))
    assert [p.id for p in loaded(path).playbooks] == [form["id"]]


playbook_values = st.one_of(
    json_like,
    st.sampled_from([10**400, math.nan, math.inf, -math.inf, "x" * 200_000]),
    st.dictionaries(st.integers() | st.booleans(), json_like, min_size=1, max_size=2),
)


def load_with(
    tmp_path_factory: pytest.TempPathFactory,
    form: dict[str, Any],
    suffix: str,
    data: st.DataObject,
    values: st.SearchStrategy[Any],
) -> tuple[tuple[Any, ...], Any]:
    """``form`` with one drawn place holding a drawn value, written as ``suffix`` and loaded:
    (the place, what loading it gave)."""
    where = data.draw(st.sampled_from(list(locations(form))))
    document = replaced(form, where, data.draw(values))
    path = tmp_path_factory.mktemp("pb") / f"p{suffix}"
    path.write_text(dump(document, suffix))
    return where, loaded(path)


@settings(FUZZ, max_examples=100)
@given(st.sampled_from([SKELETON, SEED]), st.sampled_from([".yaml", ".json"]), st.data())
def test_a_playbook_with_any_value_anywhere_loads_or_names_file_line_and_field(
    tmp_path_factory: pytest.TempPathFactory,
    form: dict[str, Any],
    suffix: str,
    data: st.DataObject,
) -> None:
    where, result = load_with(tmp_path_factory, form, suffix, data, playbook_values)
    for problem in result.problems:
        if problem.field is None:  # about the file as a whole: syntax, or not a mapping
            continue
        assert problem.line is not None, problem
        assert root_of(problem.field) == where[0], (where, problem)
        if where != ("id",):
            assert problem.playbook == form["id"], problem


non_finite_values = st.sampled_from([math.nan, math.inf, -math.inf]).flatmap(
    lambda bad: st.sampled_from([bad, [bad], {"n": bad}, [1, {"x": [bad]}]])
)


@settings(FUZZ, max_examples=150)
@given(st.sampled_from([SKELETON, SEED]), st.sampled_from([".yaml", ".json"]), st.data())
def test_a_playbook_with_nan_or_infinity_anywhere_never_loads(
    tmp_path_factory: pytest.TempPathFactory,
    form: dict[str, Any],
    suffix: str,
    data: st.DataObject,
) -> None:
    where, result = load_with(tmp_path_factory, form, suffix, data, non_finite_values)
    assert result.playbooks == [], where
    assert all(root_of(p.field or "") == where[0] for p in result.problems), result.problems


@pytest.mark.parametrize(
    ("where", "value", "field", "message"),
    [
        (("trigger", "conditions", 0, "value"), math.nan, "trigger.conditions.all[0].value", "NaN"),
        (
            ("trigger", "conditions", 0, "value"),
            [math.inf],
            "trigger.conditions.all[0].value",
            "NaN",
        ),
        (("verify", "expect"), "!=nan", "verify", "NaN and infinity are not allowed"),
        (("verify", "expect"), math.nan, "verify", "NaN and infinity are not allowed"),
        (("verify", "expect"), "<1e999", "verify", "NaN and infinity are not allowed"),
        (("verify", "expect"), "0..inf", "verify", "expectation '0..inf'"),
        (("verify", "sample"), math.nan, "verify", "NaN"),
        (("limits", "window"), 0, "limits.window", "longer than 0s"),
        (("limits", "flap_window"), "0s", "limits.flap_window", "longer than 0s"),
        (("trigger", "throttle", "once_within"), 0, "trigger.throttle.once_within", "0s"),
        (("trigger", "threshold", "within"), "0m", "trigger.threshold.within", "0s"),
        (("verify", "interval"), 0, "verify.interval", "longer than 0s"),
        (("actions", 1, "idle_cpu_below"), math.inf, "actions[1].idle_cpu_below", "finite"),
        (("actions", 1, "memory_above_mb"), -math.inf, "actions[1].memory_above_mb", "finite"),
        (("actions", 2, "value"), math.nan, "actions[2].value", "NaN"),
        (("actions", 2, "max"), math.nan, "actions[2].max", "finite"),
        (("actions", 3, "payload", "l", 0), math.inf, "actions[3]", "payload.l[0]: NaN"),
    ],
)
@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_nan_infinity_and_zero_windows_are_refused_naming_the_field(
    tmp_path: Path, where: tuple[Any, ...], value: Any, field: str, message: str, suffix: str
) -> None:
    path = tmp_path / f"p{suffix}"
    path.write_text(dump(replaced(SKELETON, where, value), suffix))
    result = loaded(path)
    assert result.playbooks == []
    [problem] = result.problems
    assert (problem.playbook, problem.field) == ("p", field), problem
    assert message in problem.message and problem.line is not None, problem


yaml_tokens = st.sampled_from(
    [
        "id: x\n",
        "trigger: {type: a.b}\n",
        "actions: [{type: wait, duration: 1s}]\n",
        "conditions:",
        "- ",
        "[",
        "]",
        "{",
        "}",
        ": ",
        ", ",
        "&a ",
        "*a ",
        "<<: *a\n",
        "? ",
        "!!python/object/apply:os.system ['touch {marker}'] ",
        "!!python/object/new:os.system ['touch {marker}'] ",
        "!!python/name:os.system ",
        "!custom ",
        "!!set ",
        "!!binary ",
        "!!timestamp ",
        "!!omap ",
        "%TAG ! tag:example.com,2000:\n",
        "---\n",
        "...\n",
        "\n",
        "  ",
        '"',
        "'",
        "# c\n",
        "|\n",
        "1e999",
        ".nan",
        "-.inf",
        "0x1F",
        "9" * 400,
        "~",
        "2001-13-45",
        "\t",
        "\ufeff",
    ]
)


@settings(FUZZ, max_examples=150)
@given(
    st.lists(yaml_tokens | st.text(max_size=4), max_size=40), st.sampled_from([".yaml", ".json"])
)
def test_arbitrary_yaml_and_json_text_loads_or_is_refused_and_runs_nothing(
    tmp_path_factory: pytest.TempPathFactory, tokens: list[str], suffix: str
) -> None:
    folder = tmp_path_factory.mktemp("pb")
    marker = folder / "executed"
    path = folder / f"p{suffix}"
    path.write_text("".join(tokens).replace("{marker}", str(marker)), encoding="utf-8")
    loaded(path)
    assert not marker.exists()


@FUZZ
@given(st.binary(max_size=300), st.sampled_from([".yaml", ".yml", ".json"]))
def test_arbitrary_bytes_load_or_are_refused(
    tmp_path_factory: pytest.TempPathFactory, raw: bytes, suffix: str
) -> None:
    path = tmp_path_factory.mktemp("pb") / f"p{suffix}"
    path.write_bytes(raw)
    loaded(path)


PYTHON_TAGS = [
    "!!python/object/apply:os.system ['touch {marker}']",
    "!!python/object/apply:subprocess.call [['touch', '{marker}']]",
    "!!python/object/new:os.system ['touch {marker}']",
    '!!python/object/apply:builtins.exec [\'open("{marker}", "w")\']',
    "!!python/name:os.system",
    "!!python/module:os",
    "!<tag:yaml.org,2002:python/object/apply:os.system> ['touch {marker}']",
]


# Where the tag sits: EVIL is replaced by it; the number is its line.
PLACES = {
    "id": ("id: EVIL\ntrigger: {type: a.b}\n", 1),
    "description": ("id: p\ndescription: EVIL\ntrigger: {type: a.b}\n", 2),
    "trigger": ("id: p\n\ntrigger: EVIL\n", 3),
    "condition value": (
        "id: p\ntrigger:\n  type: a.b\n  conditions:\n"
        "    - {path: payload.x, op: eq, value: EVIL}\n",
        5,
    ),
}


@pytest.mark.parametrize("tag", PYTHON_TAGS)
@pytest.mark.parametrize("place", sorted(PLACES))
def test_python_tags_are_refused_naming_the_line_and_never_run(
    tmp_path: Path, tag: str, place: str
) -> None:
    marker = tmp_path / "executed"
    text, line = PLACES[place]
    path = tmp_path / "evil.yaml"
    path.write_text(
        text.replace("EVIL", tag.replace("{marker}", str(marker)))
        + "actions: [{type: wait, duration: 1s}]\n"
    )
    result = loaded(path)
    assert not result.playbooks and not marker.exists()
    [problem] = result.problems
    assert "not valid YAML" in problem.message and "python/" in problem.message
    assert problem.line == line


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("id: !custom p\n", "could not determine a constructor for the tag '!custom'"),
        ("id: !!binary cA==\nextra: !!set {a, b}\n", "Extra inputs are not permitted"),
        ("id: p\ndescription: !!timestamp 2001-13-45\n", "month must be in 1..12"),
        ("id: p\ndescription: !!timestamp soon\n", "'soon' is not a valid !!timestamp"),
        ("id: p\ndescription: !!bool maybe\n", "'maybe' is not a valid !!bool"),
        ("id: p\ndescription: !!int ''\n", "'' is not a valid !!int"),
        ("id: p\ndescription: !!set [1]\n", "expected a mapping node"),
        ("id: p\n? [a, b]\n: 1\n", "a key must be a plain value"),
        ("id: p\n{a: 1}: 1\n", "a key must be a plain value"),
        ("id: p\n1: one\n", "Keys should be strings"),
        ("id: p\nid: q\n", "duplicate key 'id'"),
        ("id: p\ntrigger: {type: a.b, threshold: {count: .nan, within: 1m}}\n", "finite number"),
        ("id: p\ntrigger: {type: a.b, threshold: {count: 1, within: .inf}}\n", "out of range"),
        (f"id: p\ntrigger: {{type: a.b, throttle: {{once_within: {10**400}}}}}\n", "out of range"),
        (f"id: p\ntrigger: {{type: a.b, threshold: {{count: {HUGE_TEXT}, within: 1m}}}}\n", "4300"),
        ("id: p\ndescription: " + "[" * 10_000 + "]" * 10_000 + "\n", "deeper than 100 levels"),
        ("id: p\ndescription: " + "{a: " * 10_000 + "1" + "}" * 10_000 + "\n", "deeper than 100"),
        ("id: " + "p" * 900_000 + "\n", "at most 100 characters"),
        ("description: " + "x" * (1 << 20) + "\n", "larger than 1048576 bytes"),
    ],
)
def test_hostile_yaml_is_refused_with_a_clear_message(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(
        text + "actions: [{type: wait, duration: 1s}]\n" if "actions" not in text else text
    )
    started = time.perf_counter()
    result = loaded(path)
    assert time.perf_counter() - started < 5  # a guard only: the limits refuse these at once
    assert not result.playbooks
    assert any(message in problem.message for problem in result.problems), result.problems


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"id": "p", "id": "q"}', "duplicate key 'id'"),
        (
            '{"id": "p", "trigger": {"type": "a.b", "threshold": {"count": NaN, "within": "1m"}}}',
            "finite",
        ),
        ('{"id": "p", "limits": {"window": 1' + "0" * 400 + "}}", "out of range"),
        ('{"id": "p", "limits": {"max_runs": ' + "9" * 10_000 + "}}", "4300"),
        ('{"id": "p", "validation": {"check": ["x"], "threshold": 1}}', "unknown check"),
        (
            '{"id": "p", "validation": {"probe": "cpu_usage", "expect": "<1", "params": [1]}}',
            "params",
        ),
        ('{"id": "p", "description": ' + "[" * 10_000 + "]" * 10_000 + "}", "nested too deeply"),
        ('{"id": "p", "description": "' + "x" * (1 << 20) + '"}', "larger than"),
        ('["a", 1, null]', "a playbook must be a mapping"),
    ],
)
def test_hostile_json_is_refused_with_a_clear_message(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "p.json"
    path.write_text(text)
    started = time.perf_counter()
    result = loaded(path)
    assert time.perf_counter() - started < 5
    assert not result.playbooks
    assert any(message in problem.message for problem in result.problems), result.problems


def test_a_json_file_indented_with_tabs_has_its_lines_named(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_text(
        '{\n\t"id": "p",\n\t"description": "del \x7f, nel \x85, ls \u2028",\n'
        '\t"trigger": {"type": 5},\n\t"actions": [{"type": "wait", "duration": "1s"}]\n}'
    )
    [problem] = loaded(path).problems
    assert (problem.line, problem.field) == (4, "trigger.type")


def test_yaml_nested_too_deep_is_refused_at_the_line_where_it_goes_too_deep(
    tmp_path: Path,
) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("id: p\ndescription:\n" + "".join("  " * i + "- \n" for i in range(1, 200)))
    [problem] = loaded(path).problems
    assert "nested deeper than 100 levels" in problem.message
    assert problem.line == 102  # line n holds level n - 1 (the document is level 1)


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_an_alias_bomb_is_refused_quickly_in_little_memory(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"bomb{suffix}"
    path.write_text(billion_laughs(9))  # 9**9 strings once expanded: 387 million
    with bounded(5, 64):
        result = loaded(path)
    assert [p.message for p in result.problems] == ["expands to more than 100000 nodes"]


# ----------------------------------------------------------------- conditions
regex_values = st.sampled_from(
    [
        "(a+)+$",
        "(a|aa)*c",
        "(x+x+)+y",
        "^(\\w+\\s?)*$",
        "a{1000}{1000}",
        "((a{100}){100}){100}",
        "[",
        "\\",
    ]
) | st.text(max_size=12)
PATHS = ["payload.x", "payload.s", "payload.0", "payload.items.0", "labels.host", "payload"]
ROOTS = ["labels", "source", "type", "severity", "priority", "id"]
# A list index int() cannot read, and paths that do not parse.
ODD_PATHS = ["payload.items.²", "payload.items." + "9" * 5000, "severity.x", "payload..x", "x.y"]
condition_paths = st.sampled_from([*PATHS, *ROOTS, *ODD_PATHS]) | st.text(max_size=12)
compares = st.fixed_dictionaries(
    {"path": condition_paths, "op": st.sampled_from(list(OPERATORS)) | st.text(max_size=5)},
    optional={"value": json_like | regex_values},
)
condition_trees = st.recursive(
    compares | hostile,
    lambda kids: st.one_of(
        st.fixed_dictionaries({"all": st.lists(kids, max_size=3)}),
        st.fixed_dictionaries({"any": st.lists(kids, max_size=3)}),
        st.fixed_dictionaries({"not": kids}),
    ),
    max_leaves=6,
)
CONDITION = TypeAdapter(Condition)


@settings(FUZZ, max_examples=200)
@given(condition_trees, events)
def test_any_condition_loads_or_is_refused_and_never_crashes_the_matcher(
    raw: Any, event: Event
) -> None:
    try:
        condition = CONDITION.validate_python(raw)
    except ValidationError as exc:
        assert all(error["msg"] for error in exc.errors())
        return
    verdict = compile_condition(condition)(event)
    explained = explain_condition(condition, event)
    assert isinstance(verdict, bool) and verdict == explained.verdict
    assert isinstance(explained, ConditionResult)
    explained.to_dict()
    assert explained.lines()


def test_an_index_that_is_no_int_reads_as_missing() -> None:
    event = Event.create(type="a.b", payload={"items": [1, 2, 3]})
    for path in ("payload.items.²", "payload.items." + "9" * 5000):
        condition = CONDITION.validate_python({"path": path, "op": "exists", "value": False})
        assert compile_condition(condition)(event) is True
        assert explain_condition(condition, event).verdict is True


@pytest.mark.parametrize(
    ("pattern", "subject"), [("(x+x+)+y", "x" * 5000), ("(\\w+\\s?)*$", "a" * 5000 + "!")]
)
def test_a_catastrophic_regex_is_cut_off_by_the_timeout(pattern: str, subject: str) -> None:
    with pytest.raises(TimeoutError):  # the pattern really is catastrophic on this subject
        regex.compile(pattern).search(subject, timeout=REGEX_TIMEOUT_S)
    condition = CONDITION.validate_python({"path": "payload.s", "op": "regex", "value": pattern})
    event = Event.create(type="a.b", payload={"s": subject})
    started = time.perf_counter()
    assert compile_condition(condition)(event) is False
    assert explain_condition(condition, event).verdict is False
    assert time.perf_counter() - started < 1  # two searches of 50 ms each, with room


@pytest.mark.parametrize(
    "pattern", ["((a{1000}){1000}){1000}", "a{99999999999}", "(ab){6000}", "(a)" * 20_000]
)
def test_a_regex_that_would_compile_to_millions_of_items_is_refused_quickly(
    tmp_path: Path, pattern: str
) -> None:
    path = tmp_path / "p.json"
    path.write_text(
        orjson.dumps(replaced(SKELETON, ("trigger", "conditions", 1, "value"), pattern)).decode()
    )
    started = time.perf_counter()
    [problem] = loaded(path).problems
    assert time.perf_counter() - started < 2
    assert problem.field == "trigger.conditions.all[1].op"
    assert f"more than {MAX_REGEX_EXPANSION} items" in problem.message


def test_deeply_nested_groups_in_a_regex_are_refused() -> None:
    with pytest.raises(ValidationError, match="nested too deeply"):
        CONDITION.validate_python(
            {"path": "payload.s", "op": "regex", "value": "(" * 10_000 + ")" * 10_000}
        )


# ------------------------------------------------------------- verify expectations
expectation_tokens = st.sampled_from(
    [
        "<", "<=", ">", ">=", "==", "!=", "..", " ", "-", ".", "e", "E", "+", "_", "'", '"',
        "0", "1", "70", "9" * 400, "1e999", "1e308", "nan", "NaN", "inf", "-inf", "Infinity",
        "true", "false", "ready", "\t", "\n", "\u00a0", "٣", "²",
    ]
)  # fmt: skip
expectation_inputs = st.one_of(
    st.lists(expectation_tokens | st.text(max_size=3), max_size=8).map("".join),
    st.text(max_size=30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(),
    huge_ints,
    st.booleans(),
    st.sampled_from([10**5000, -(10**5000)]),
)


@settings(FUZZ, max_examples=300)
@given(expectation_inputs, st.one_of(scalars, st.sampled_from([10**5000, "9" * 5000])))
def test_an_expectation_parses_to_finite_targets_or_says_what_is_wrong(
    text: Any, reading: Any
) -> None:
    try:
        expectation = Expectation.parse(text)
    except ValueError as exc:
        message = str(exc)
        assert message.startswith("expectation "), message
        assert len(message) < 200, message  # the text is shown cut, not whole
        return
    for number in (expectation.target, expectation.high):
        assert not (isinstance(number, float) and not math.isfinite(number)), expectation
    assert isinstance(expectation.holds(reading), bool)


@pytest.mark.parametrize(
    "text",
    ["nan", "==NaN", "!=nan", "<inf", ">= -Infinity", "'nan'", "1e999", "0..inf", "1..1e400"],
)
def test_an_expectation_of_nan_or_infinity_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match=r"^expectation .*(NaN and infinity|like)"):
        Expectation.parse(text)
    for number in (math.nan, math.inf, -math.inf, 10**400):
        with pytest.raises(ValueError, match="NaN and infinity are not allowed"):
            Expectation.parse(number)


# ------------------------------------------------------------------ templates
@FUZZ
@given(
    st.lists(
        st.sampled_from(
            ["${payload.x}", "${labels.host}", "${payload.nope}", "${", "}", "$", "${}"]
        )
        | st.text(max_size=5),
        max_size=6,
    ).map("".join),
    events,
)
def test_templates_render_or_refuse_with_an_input_error(template: str, event: Event) -> None:
    try:
        render(template, event)
    except InputError as exc:
        assert "template ${" in str(exc)


def test_a_rendered_value_is_not_rendered_again() -> None:
    event = Event.create(type="a.b", payload={"x": "${payload.secret}", "secret": "leaked"})
    assert render("run ${payload.x}", event) == "run ${payload.secret}"
    assert render("${payload.x}", event) == "${payload.secret}"


# ------------------------------------------------------------------ durations
@FUZZ
@given(st.one_of(st.text(), st.integers() | huge_ints, st.floats(), st.booleans()))
def test_any_duration_parses_within_range_or_raises_a_duration_error(text: Any) -> None:
    try:
        delta = parse_duration(text)
    except DurationError as exc:
        assert len(str(exc)) < 200  # the input is cut short, not repeated whole
        return
    assert timedelta(0) <= delta <= timedelta(days=36525)


@FUZZ
@given(
    st.lists(
        st.sampled_from(["1", "5", ".", "ms", "s", "m", "h", "d", "w", " ", "-", "e9", "nan"]),
        max_size=12,
    ).map("".join)
)
def test_duration_like_text_parses_or_raises_a_duration_error(text: str) -> None:
    with contextlib.suppress(DurationError):
        parse_duration(text)


@FUZZ
@given(st.integers(min_value=1, max_value=100 * 365 * 86400))
def test_a_formatted_duration_parses_back(seconds: int) -> None:
    assert parse_duration(format_duration(timedelta(seconds=seconds))) == timedelta(seconds=seconds)


@FUZZ
@given(st.text() | st.datetimes(timezones=st.timezones()).map(datetime.isoformat))
def test_any_time_parses_to_utc_or_raises_a_duration_error(text: str) -> None:
    try:
        moment = parse_time(text)
    except DurationError:
        return
    assert moment.tzinfo is UTC


@pytest.mark.parametrize(
    "text", ["1" * 200_000 + "x", "1s" * 100_000 + "x", "9" * 200_000, "1." + "1" * 200_000 + "q"]
)
def test_a_long_duration_is_refused_in_linear_time(text: str) -> None:
    started = time.perf_counter()
    with pytest.raises(DurationError) as info:
        parse_duration(text)
    assert time.perf_counter() - started < 1  # the scan was quadratic: minutes for this
    assert len(str(info.value)) < 200


@pytest.mark.parametrize(
    "value",
    [10**400, -(10**400), HUGE, math.nan, -math.inf],
    ids=["1e400", "-1e400", "1e10000", "nan", "-inf"],
)
def test_numbers_beyond_any_duration_raise_a_duration_error(value: float) -> None:
    with pytest.raises(DurationError, match=r"out of range|negative"):
        parse_duration(value)


@pytest.mark.parametrize("text", ["0001-01-01T00:00+01:00", "9999-12-31T23:59-01:00"])
def test_a_time_outside_utcs_range_raises_a_duration_error(text: str) -> None:
    with pytest.raises(DurationError, match="out of range"):
        parse_time(text)


# --------------------------------------------------------------------- config
SECTIONS = {name: field.annotation for name, field in AIOSConfig.model_fields.items()}
section_names = st.sampled_from(sorted(SECTIONS)) | st.sampled_from(["nope", "Log", ""])
toml_values = st.recursive(
    st.one_of(
        st.booleans(),
        st.integers(min_value=-(2**63), max_value=2**63 - 1),
        st.floats(),
        plain_text.map(lambda t: t[:20]),
        st.datetimes(timezones=st.none() | st.just(UTC)),
        st.sampled_from(["5m", "off", "/tmp", "cpu", "*"]),
    ),
    lambda kids: (
        st.lists(kids, max_size=3)
        | st.dictionaries(plain_text.map(lambda t: t[:8]), kids, max_size=3)
    ),
    max_leaves=6,
)


@st.composite
def config_documents(draw: st.DrawFn) -> dict[str, Any]:
    document: dict[str, Any] = {}
    for section in draw(st.lists(section_names, max_size=3, unique=True)):
        model = SECTIONS.get(section)
        known = sorted(getattr(model, "model_fields", {})) or ["x"]
        keys = st.sampled_from(known) | plain_text.map(lambda t: t[:8])
        document[section] = draw(st.dictionaries(keys, toml_values, max_size=3))
    return document


@contextlib.contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    """Only these AIOS_* variables (besides AIOS_HOME) for the block."""
    saved = {name: value for name, value in os.environ.items() if name.startswith("AIOS_")}
    for name in saved:
        if name != "AIOS_HOME":
            del os.environ[name]
    os.environ.update(values)
    try:
        yield
    finally:
        for name in [n for n in os.environ if n.startswith("AIOS_")]:
            del os.environ[name]
        os.environ.update(saved)


@FUZZ
@given(config_documents())
def test_any_config_file_loads_or_names_file_line_and_key(
    tmp_path_factory: pytest.TempPathFactory, document: dict[str, Any]
) -> None:
    home = HomePaths(tmp_path_factory.mktemp("home"))
    home.config.write_text(tomlkit.dumps(document), encoding="utf-8")
    with environment({}):
        try:
            load_config(home)
        except ConfigError as exc:
            assert exc.path == str(home.config) and str(home.config) in str(exc)
            # Section names are matched without regard to case ([Log] is [log]).
            sections = {name.lower() for name in document}
            assert exc.key is not None and root_of(exc.key) in sections, (exc, document)
            lines = home.config.read_text().count("\n") + 1
            assert exc.line is None or 1 <= exc.line <= lines


toml_tokens = st.sampled_from(
    [
        "[log]\n",
        "[[x]]\n",
        "segment_max_bytes = ",
        "a = ",
        "[",
        "]",
        "{",
        "}",
        "=",
        ",",
        '"',
        "'''",
        "nan",
        "inf",
        "1979-05-27T07:32:00Z",
        "9" * 5000,
        "0x",
        "\n",
        "#",
        "true",
        "\\u0000",
    ]
)


@FUZZ
@given(st.lists(toml_tokens | st.text(max_size=4), max_size=30).map("".join))
def test_arbitrary_config_text_loads_or_raises_a_config_error(
    tmp_path_factory: pytest.TempPathFactory, text: str
) -> None:
    home = HomePaths(tmp_path_factory.mktemp("home"))
    home.config.write_bytes(text.encode("utf-8", "surrogatepass"))
    with environment({}):
        try:
            load_config(home)
        except ConfigError as exc:
            assert str(home.config) in str(exc)


ENV_NAMES = [
    "AIOS_LOG__SEGMENT_MAX_BYTES",
    "AIOS_BUS__SUBSCRIBERS",
    "AIOS_REACTOR__ALLOWED_ROOTS",
    "AIOS_MONITOR__INTERVAL",
    "AIOS_MONITOR__THRESHOLDS",
    "AIOS_SCORE__WEIGHTS",
    "AIOS_MAINTENANCE__LOG_RETENTION",
    "AIOS_INGEST__PORT",
    "AIOS_LOG",
    "AIOS_EVOLUTION__AGENTS",
]
env_values = st.one_of(
    plain_text.map(lambda t: t[:30]),
    json_like.map(
        lambda v: (
            orjson.dumps(v, option=orjson.OPT_NON_STR_KEYS).decode() if _orjson_ok(v) else "{}"
        )
    ),
    st.sampled_from(["[" * 5000, "[" * 5000 + "]" * 5000, "9" * 5000, "nan", "1e400", "null"]),
)


@FUZZ
@given(st.dictionaries(st.sampled_from(ENV_NAMES), env_values, min_size=1, max_size=2))
def test_any_environment_override_loads_or_names_the_variable(
    tmp_path_factory: pytest.TempPathFactory, values: dict[str, str]
) -> None:
    home = HomePaths(tmp_path_factory.mktemp("home"))
    with environment(values):
        try:
            load_config(home)
        except ConfigError as exc:
            assert any(name in str(exc) for name in values), (exc, values)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[monitor]\ninterval = " + "1" * 400 + "\n", "monitor.interval"),
        ("[maintenance]\nlog_retention = " + "9" * 400 + "\n", "maintenance.log_retention"),
        ("[log]\nsegment_max_bytes = " + "1" * 5000 + "\n", "4300"),
        ("a = " + "[" * 5000 + "]" * 5000 + "\n", "nested too deeply"),
        ("a = " + "{b = " * 3000 + "1" + "}" * 3000 + "\n", "nested too deeply"),
        ("[score.weights.ops]\nrisk = nan\n", "score.weights.ops.risk.*finite"),
        ("[score]\nlatency_budget_ms = inf\n", "score.latency_budget_ms.*finite"),
        ("[monitor.thresholds.cpu]\nraise = nan\nclear = 50\n", "finite"),
    ],
)
def test_hostile_config_files_raise_a_config_error(
    home: HomePaths, text: str, message: str
) -> None:
    home.config.write_text(text)
    with pytest.raises(ConfigError, match=message) as info:
        load_config(home)
    assert str(home.config) in str(info.value)


def test_a_home_section_in_the_file_is_not_blamed_on_aios_home(home: HomePaths) -> None:
    home.config.write_text("[log]\n\n[home]\npath = 1\n")
    with pytest.raises(ConfigError) as info:
        load_config(home)
    assert (info.value.path, info.value.line, info.value.key) == (str(home.config), 3, "home")


def test_a_bad_config_exits_2_through_the_cli_naming_where(home: HomePaths) -> None:
    home.config.write_text("[monitor]\na = " + "[" * 5000 + "]" * 5000 + "\n")
    nested = run_aios("init", home=home)
    assert nested.returncode == 2, nested.stderr
    assert str(home.config) in nested.stderr and "nested too deeply" in nested.stderr
    home.config.write_text("[log]\n")
    deep_env = run_aios("init", home=home, env={"AIOS_BUS__SUBSCRIBERS": "[" * 5000})
    assert deep_env.returncode == 2, deep_env.stderr
    assert "AIOS_BUS__SUBSCRIBERS" in deep_env.stderr and "Traceback" not in deep_env.stderr


def test_a_payload_number_of_thousands_of_digits_exits_2(home: HomePaths) -> None:
    result = run_aios("emit", "a.b", "-p", "n=" + "9" * 5000, home=home)
    assert result.returncode == 2 and "Traceback" not in result.stderr


# ---------------------------------------------------------------- HTTP ingest
@pytest.fixture(scope="module")
def ingest(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, EventLog]]:
    log = EventLog(tmp_path_factory.mktemp("ingest") / "events")
    with TestClient(create_app(EventBus(log), TOKEN, max_body_bytes=2 << 20)) as client:
        yield client, log
    log.close()


bodies = st.one_of(
    st.binary(max_size=200),
    json_like.map(
        lambda v: orjson.dumps(v, option=orjson.OPT_NON_STR_KEYS) if _orjson_ok(v) else b"{"
    ),
    st.lists(
        event_fields.map(lambda f: {k: v for k, v in f.items() if _orjson_ok(v)}), max_size=3
    ).map(
        lambda items: (
            orjson.dumps({"events": items}, option=orjson.OPT_NON_STR_KEYS)
            if _orjson_ok(items)
            else b"[]"
        )
    ),
)


@FUZZ
@given(bodies, st.sampled_from(["good", "none", "wrong", "basic"]))
def test_the_ingest_answers_any_body_with_a_4xx_reason_or_201(
    ingest: tuple[TestClient, EventLog], body: bytes, auth: str
) -> None:
    client, _ = ingest
    headers = {
        "good": {"Authorization": f"Bearer {TOKEN}"},
        "none": {},
        "wrong": {"Authorization": "Bearer " + "y" * 31},
        "basic": {"Authorization": f"Basic {TOKEN}"},
    }[auth]
    response = client.post("/events", content=body, headers=headers)
    if auth != "good":
        assert response.status_code == 401
    assert response.status_code in (201, 400, 401, 413, 422), response.text
    if response.status_code != 201:
        detail = response.json()["detail"]
        assert isinstance(detail, str) and detail


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (b'{"events": {"type": "a.b"}}', "events: must be a list of events"),
        (b'{"type": "a.b", "time": 1700000000}', "[0].time: must be an RFC 3339 string"),
        (b'[{"type": "a.b"}, {"type": "a.b", "time": 1e13}]', "[1].time: must be an RFC 3339"),
    ],
)
def test_bodies_outside_the_documented_schema_are_a_422(
    ingest: tuple[TestClient, EventLog], body: bytes, detail: str
) -> None:
    client, _ = ingest
    response = client.post("/events", content=body, headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 422
    assert response.json()["detail"].startswith(detail)


def test_an_event_too_large_for_the_log_is_a_422_naming_it(
    ingest: tuple[TestClient, EventLog],
) -> None:
    client, log = ingest
    before = len(list(log.events()))
    big = {"type": "a.b", "payload": {"blob": "x" * (1 << 20)}}
    response = client.post(
        "/events",
        content=orjson.dumps([{"type": "a.b"}, big]),
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    assert response.status_code == 422, response.text
    assert response.json()["detail"].startswith("[1].payload: event is")
    assert len(list(log.events())) == before  # the batch is all or nothing


# ---------------------------------------------------------------------- inbox
@pytest.fixture(scope="module")
def inbox_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[EventBus, HomePaths]]:
    home = HomePaths(tmp_path_factory.mktemp("inbox-home"))
    inbox_dir(home).mkdir()
    log = EventLog(home.events)
    yield EventBus(log), home
    log.close()


inbox_lines = st.lists(
    st.one_of(
        st.binary(max_size=40),
        bodies,
        st.sampled_from([b'{"type": "a.b"}', b'{"type": "a.b", "id": "x"}', b"", b"  "]),
    ),
    max_size=6,
)


@SLOW
@given(inbox_lines)
def test_an_inbox_file_of_anything_is_consumed_once_with_every_line_accounted_for(
    inbox_home: tuple[EventBus, HomePaths], lines: list[bytes]
) -> None:
    bus, home = inbox_home
    data = b"\n".join(line.replace(b"\n", b" ").replace(b"\r", b" ") for line in lines)
    (inbox_dir(home) / "drop.jsonl").write_bytes(data)
    report = ingest_inbox(bus, home)
    counted = [line for line in data.removeprefix(b"\xef\xbb\xbf").splitlines() if line.strip()]
    assert report.files == 1 and report.accepted + report.rejected == len(counted)
    assert not list((inbox_dir(home) / "processing").iterdir())


def test_an_oversized_inbox_line_is_rejected_and_the_rest_ingested(
    inbox_home: tuple[EventBus, HomePaths],
) -> None:
    bus, home = inbox_home
    big = orjson.dumps({"type": "a.b", "payload": {"blob": "x" * (1 << 20)}})
    (inbox_dir(home) / "big.jsonl").write_bytes(b'{"type": "a.b"}\n' + big + b"\n")
    report = ingest_inbox(bus, home)
    assert (report.accepted, report.rejected) == (1, 1)
    assert not list((inbox_dir(home) / "processing").iterdir())  # not stuck, retried for ever
    [rejected] = (inbox_dir(home) / "rejected").glob("*big.jsonl.rejected.jsonl")
    assert "the limit is 1048576" in rejected.read_text()


def test_an_inbox_file_whose_name_is_not_utf8_is_ingested(
    inbox_home: tuple[EventBus, HomePaths],
) -> None:
    bus, home = inbox_home
    name = os.path.join(os.fsencode(inbox_dir(home)), b"caf\xe9.jsonl")
    with open(name, "wb") as handle:
        handle.write(b'{"type": "a.b"}\nnot json\n')
    report = ingest_inbox(bus, home)
    assert (report.accepted, report.rejected) == (1, 1)
    assert report.details[-1]["file"] == "caf\ufffd.jsonl"
    assert not list((inbox_dir(home) / "processing").iterdir())
