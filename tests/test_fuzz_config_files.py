"""Hostile config files for config.update: read and updated, or refused with an ActionError.

An agent writes the files config.update reads. Each format (JSON, YAML, TOML) gets arbitrary
bytes and text, token soups of its own syntax (tags, anchors and aliases, brackets, tables),
deep nesting, alias bombs and enormous numbers. The properties: parsing and updating raise
nothing but ActionError, which names the file; an update that succeeds means what it says (the
new text parses, the key holds the value, every other key is as it was); a refused file is left
byte for byte as it was; no YAML tag runs anything; time and memory stay bounded.
"""

from __future__ import annotations

import io
import json
import math
import time
import tracemalloc
from collections.abc import Callable, Iterator, MutableMapping
from contextlib import contextmanager
from typing import Any

import pytest
import tomlkit
from hypothesis import given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from aios.actions.base import ActionError, ActionPlan
from aios.actions.config_formats import (
    FORMATS,
    MAX_CONFIG_BYTES,
    MAX_DEPTH,
    MAX_NODES,
    get_key,
    parse,
    update_text,
)
from aios.actions.config_update import ConfigUpdate
from aios.event import check_json_value
from tests.test_actions_files import make_ctx

# Random, as fuzzing should be: a failure prints the example and a blob to reproduce it.
# The example counts keep this file under a minute on two cores.
FUZZ = settings(deadline=None, max_examples=100)
SLOW = settings(FUZZ, max_examples=25)  # examples that write files or build big documents

NAME = "/srv/agent/config"
SUFFIX = {"json": ".json", "yaml": ".yaml", "toml": ".toml"}
KEYS = st.sampled_from(["a", "a.b", "heartbeat.interval", "x.0", "l.1", "a.b.c", "0", "<<"])
# Text that can be written to a file (no lone surrogates).
file_text = st.text(st.characters(exclude_categories=["Cs"]))


def refused_naming_the_file(step: Callable[[], Any]) -> Any:
    """``step()``'s result, or None when it raised ActionError naming NAME; any other
    exception fails the test."""
    try:
        return step()
    except ActionError as exc:
        assert NAME in str(exc), exc
        return None


@contextmanager
def bounded(seconds: float, mebibytes: int) -> Iterator[None]:
    """Fail if the block takes longer than ``seconds`` or allocates more than ``mebibytes``."""
    tracemalloc.start()
    started = time.perf_counter()
    try:
        yield
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    elapsed = time.perf_counter() - started
    assert elapsed < seconds, f"took {elapsed:.1f}s"
    assert peak < mebibytes * 2**20, f"peaked at {peak / 2**20:.0f} MiB"


def parse_and_update(text: str, fmt: str, key: str, value: Any, create: bool) -> None:
    """Parse ``text`` and set ``key``: each step succeeds or is refused naming the file; an
    update that succeeds says what it was asked to and changes nothing else."""
    document = refused_naming_the_file(lambda: parse(text, fmt, NAME))
    if document is None:
        return
    refused_naming_the_file(lambda: get_key(document, key, NAME))
    updated = refused_naming_the_file(
        lambda: update_text(text, fmt, key, value, create=create, name=NAME)
    )
    if updated is None:
        return
    edited, _old = updated
    edited.encode("utf-8")  # what config.update writes
    again = parse(edited, fmt, NAME)  # what it wrote reads back
    assert get_key(again, key) == value


# ------------------------------------------------------------------ arbitrary input
@FUZZ
@given(st.sampled_from(FORMATS), file_text, KEYS, st.booleans())
def test_arbitrary_text_parses_or_is_refused_naming_the_file(
    fmt: str, text: str, key: str, create: bool
) -> None:
    parse_and_update(text, fmt, key, 7, create)


TOKENS = {
    "json": [
        "{",
        "}",
        "[",
        "]",
        ",",
        ":",
        '"a"',
        '"b"',
        '"heartbeat"',
        '"interval"',
        "1",
        "-0",
        "1e999",
        "NaN",
        "-Infinity",
        "9" * 400,
        "9" * 5000,
        "null",
        "true",
        '"\\ud800"',
        '"\\u0000"',
        " ",
        "\n",
        "\t",
    ],
    "yaml": [
        "a: ",
        "b: ",
        "heartbeat:\n  interval: ",
        "- ",
        "[",
        "]",
        "{",
        "}",
        ": ",
        ", ",
        "? ",
        "&a ",
        "*a ",
        "&b ",
        "*b ",
        "<<: *a\n",
        "!!omap ",
        "!!set ",
        "!!pairs ",
        "!!timestamp ",
        "!!binary ",
        "!!int ",
        "!!float ",
        "!!bool ",
        "!!null ",
        "!!str ",
        "!!map ",
        "!!seq ",
        "!!merge ",
        "!custom ",
        "!!python/object/apply:os.system ['touch {marker}'] ",
        "!!python/name:os.system ",
        "%YAML 1.1\n",
        "%TAG ! tag:example.com,2000:\n",
        "---\n",
        "...\n",
        "|\n  ",
        ">-\n  ",
        '"',
        "'",
        "# c\n",
        "\n",
        "  ",
        "\t",
        "1",
        ".nan",
        "-.inf",
        "0x1F",
        "0o17",
        "1_000",
        "9" * 400,
        "9" * 5000,
        "2001-12-14",
        "2001-13-45",
        "~",
        "yes",
        "\ufeff",
    ],
    "toml": [
        "[a]\n",
        "[[a]]\n",
        "[a.b]\n",
        "[[a.b]]\n",
        "[heartbeat]\n",
        "a = ",
        "b = ",
        "a.b = ",
        "interval = ",
        "c = ",
        "[",
        "]",
        "{",
        "}",
        ", ",
        "1\n",
        "inf\n",
        "nan\n",
        "0x1F\n",
        "9" * 400 + "\n",
        "9" * 5000 + "\n",
        "1979-05-27T07:32:00Z\n",
        "1979-13-45\n",
        '"s"\n',
        "'s'\n",
        '"""\n',
        "true\n",
        "# c\n",
        "\n",
        " ",
    ],
}


@SLOW
@given(st.data(), st.sampled_from(FORMATS), KEYS, st.booleans())
def test_token_soups_of_each_syntax_parse_or_are_refused_and_run_nothing(
    tmp_path_factory: pytest.TempPathFactory,
    data: st.DataObject,
    fmt: str,
    key: str,
    create: bool,
) -> None:
    tokens = data.draw(st.lists(st.sampled_from(TOKENS[fmt]) | st.text(max_size=3), max_size=40))
    marker = tmp_path_factory.mktemp("tags") / "executed"
    text = "".join(tokens).replace("{marker}", str(marker))
    with bounded(seconds=10, mebibytes=100):
        parse_and_update(text, fmt, key, data.draw(st.sampled_from([7, "s", None, [1]])), create)
    assert not marker.exists()


@SLOW
@given(st.binary(max_size=400), st.sampled_from(FORMATS), st.sampled_from(["set", "add"]))
def test_config_update_on_a_file_of_arbitrary_bytes_updates_it_or_leaves_it_alone(
    tmp_path_factory: pytest.TempPathFactory, raw: bytes, fmt: str, op: str
) -> None:
    home = tmp_path_factory.mktemp("update")
    root = home / "root"
    root.mkdir()
    path = root / f"agent{SUFFIX[fmt]}"
    path.write_bytes(raw)
    ctx = make_ctx(home, (root,))
    action = ConfigUpdate(file=str(path), key="heartbeat.interval", value=2, op=op, create=True)
    plan: ActionPlan | None = None
    try:
        plan = action.plan(ctx)
    except ActionError as exc:
        assert str(path) in str(exc)
    if plan is not None:
        check_json_value(plan.to_dict(), "plan")  # it can go into the matched event
    try:
        undo = action.execute(ctx)
    except ActionError as exc:
        assert str(path) in str(exc)
        assert path.read_bytes() == raw
        return
    check_json_value(undo, "undo")  # it can go into the completed event
    assert plan is not None
    action.rollback(undo, ctx)
    assert path.read_bytes() == raw


# ------------------------------------------------------------- structured documents
text = st.text(st.characters(exclude_categories=["Cs"]), max_size=10)
numbers = (
    st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
)


def documents(fmt: str) -> st.SearchStrategy[Any]:
    """Documents ``fmt`` can hold: TOML has no null and a table at the top."""
    scalars = numbers | text if fmt == "toml" else st.none() | numbers | text
    tree = st.recursive(
        scalars,
        lambda kids: st.lists(kids, max_size=4) | st.dictionaries(text, kids, max_size=4),
        max_leaves=15,
    )
    return st.dictionaries(text, tree, max_size=5) if fmt == "toml" else tree


def new_values(fmt: str) -> st.SearchStrategy[Any]:
    scalars = numbers | text if fmt == "toml" else st.none() | numbers | text
    return scalars | st.lists(scalars, max_size=3) | st.dictionaries(text, scalars, max_size=3)


def written(document: Any, fmt: str) -> str:
    """``document`` as a file of ``fmt`` would hold it, written by that format's own library."""
    if fmt == "json":
        return json.dumps(document, indent=2)
    if fmt == "toml":
        return tomlkit.dumps(document)
    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    out = io.StringIO()
    yaml.dump(document, out)
    return out.getvalue()


def keys_of(document: Any, prefix: str = "") -> Iterator[str]:
    """The dotted keys that lead to each value in ``document`` (as parsed: its own mappings)."""
    if isinstance(document, MutableMapping):
        for key, value in document.items():
            if isinstance(key, str) and key and "." not in key:
                yield prefix + key
                yield from keys_of(value, f"{prefix}{key}.")


@FUZZ
@given(st.sampled_from(FORMATS), st.data())
def test_a_key_set_in_a_document_holds_the_value_and_the_rest_is_kept(
    fmt: str, data: st.DataObject
) -> None:
    document = data.draw(documents(fmt))
    value = data.draw(new_values(fmt))
    text = written(document, fmt)
    parsed = refused_naming_the_file(lambda: parse(text, fmt, NAME))
    if parsed is None:
        return
    keys = list(keys_of(parsed))
    key = data.draw(st.sampled_from(keys) if keys else KEYS)
    updated = refused_naming_the_file(
        lambda: update_text(text, fmt, key, value, create=True, name=NAME)
    )
    if updated is None:
        return
    edited, _ = updated
    again = parse(edited, fmt, NAME)
    assert get_key(again, key) == value
    for other in keys:
        if not (other == key or other.startswith(key + ".") or key.startswith(other + ".")):
            assert get_key(again, other) == get_key(parsed, other), other


# ---------------------------------------------------------------- named attacks
def billion_laughs(levels: int, fan_out: int = 9) -> str:
    """A YAML alias bomb: ``fan_out**levels`` strings once expanded, a few hundred bytes as
    written."""
    lines = ["heartbeat: {interval: 60}", "l0: &l0 [" + ", ".join(["lol"] * fan_out) + "]"]
    for level in range(1, levels):
        aliases = ", ".join([f"*l{level - 1}"] * fan_out)
        lines.append(f"l{level}: &l{level} [{aliases}]")
    return "\n".join(lines) + "\n"


@SLOW
@given(st.integers(2, 12), st.integers(2, 30))
def test_an_alias_bomb_of_any_shape_is_parsed_or_refused_in_bounded_time_and_memory(
    levels: int, fan_out: int
) -> None:
    text = billion_laughs(levels, fan_out)
    with bounded(seconds=10, mebibytes=64):
        document = refused_naming_the_file(lambda: parse(text, "yaml", NAME))
        if document is not None:  # small enough to have been let through
            get_key(document, f"l{levels - 1}")
    assert (document is None) == (expanded(levels, fan_out) > MAX_NODES)


def expanded(levels: int, fan_out: int) -> int:
    """Keys and values in ``billion_laughs(levels, fan_out)`` once its aliases are expanded."""
    total, size = 5, 1  # the top mapping and heartbeat: {interval: 60}; one "lol"
    for _ in range(levels):
        size = 1 + fan_out * size
        total += 1 + size
    return total


@SLOW
@given(
    st.sampled_from(FORMATS),
    st.integers(MAX_DEPTH - 3, 5000),
    st.sampled_from(["list", "table"]),
)
def test_deep_nesting_is_parsed_or_refused_without_recursion_errors(
    fmt: str, depth: int, shape: str
) -> None:
    if fmt == "toml":
        opened, closed = ("[", "]") if shape == "list" else ("{a = ", "}")
        text = "heartbeat = 1\nx = " + opened * depth + "1" + closed * depth + "\n"
    else:
        opened, closed = ("[", "]") if shape == "list" else ('{"a": ', "}")
        text = '{"heartbeat": 1, "x": ' + opened * depth + "1" + closed * depth + "}"
    with bounded(seconds=10, mebibytes=64):
        parse_and_update(text, fmt, "heartbeat", 2, False)
    if depth > MAX_DEPTH:
        with pytest.raises(ActionError, match=f"{NAME}.*nested"):
            parse(text, fmt, NAME)


@FUZZ
@given(
    st.sampled_from(FORMATS),
    st.integers(300, 6000),
    st.sampled_from(["set", "add", "multiply"]),
    st.sampled_from([2, 2.5, -1, 10**18]),
)
def test_huge_numbers_in_the_file_are_read_or_refused_never_overflowing(
    tmp_path_factory: pytest.TempPathFactory, fmt: str, digits: int, op: str, value: float
) -> None:
    number = "9" * digits
    text = {
        "json": f'{{"heartbeat": {{"interval": {number}}}}}',
        "yaml": f"heartbeat:\n  interval: {number}\n",
        "toml": f"[heartbeat]\ninterval = {number}\n",
    }[fmt]
    root = tmp_path_factory.mktemp("numbers")
    path = root / f"agent{SUFFIX[fmt]}"
    path.write_text(text)
    action = ConfigUpdate(file=str(path), key="heartbeat.interval", value=value, op=op)
    ctx = make_ctx(root, (root,))
    try:
        undo = action.execute(ctx)
    except ActionError as exc:
        assert str(path) in str(exc)
        assert path.read_text() == text
        return
    check_json_value(undo, "undo")
    new = get_key(parse(path.read_text(), fmt, NAME), "heartbeat.interval")
    assert isinstance(new, int | float) and math.isfinite(new)


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_file_past_the_size_cap_is_refused_before_parsing(fmt: str) -> None:
    text = {"json": "{}", "yaml": "a: 1\n", "toml": "a = 1\n"}[fmt]
    text += " " * (MAX_CONFIG_BYTES - len(text) + 1)
    with pytest.raises(ActionError, match=f"{NAME}: larger than {MAX_CONFIG_BYTES} bytes"):
        parse(text, fmt, NAME)
    # Characters of several bytes count as their bytes.
    with pytest.raises(ActionError, match="larger than"):
        parse(text[: MAX_CONFIG_BYTES // 2] + "é" * (MAX_CONFIG_BYTES // 2), fmt, NAME)
