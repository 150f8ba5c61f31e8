"""Loading playbooks from YAML and JSON files, with errors that say where.

A file holds one playbook, a list of them, or ``{playbooks: [...]}``. Every problem names the
file, the line (found from the YAML node marks), the playbook id and the field. Duplicate ids
across the files are errors. Whatever a playbook's validation raises (a plugin's parameter
check included) is a problem of that playbook; the others still load. YAML is read with the
safe loader, files are capped in size and in how many nodes they expand to (so an alias bomb
is refused rather than loaded).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from aios.errors import InputError
from aios.playbooks.model import Playbook

MAX_FILE_BYTES = 1 << 20
MAX_NODES = 100_000
# Playbooks nest a few levels; PyYAML composes by recursion, and on deep flow nesting ([[[[...)
# its scanner slows quadratically, so deeper text is refused where it goes past this.
MAX_DEPTH = 100
SUFFIXES = (".yaml", ".yml", ".json")
# Lines of a JSON file are found by composing it as YAML, which refuses tabs and control
# characters and counts \r, U+0085, U+2028 and U+2029 as line breaks where JSON does not.
# They can only sit in whitespace or strings, so blanking them moves no line.
_NOT_YAML = re.compile("[^\n\x20-\x7e\xa0-\u2027\u202a-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a playbook file."""

    file: str
    line: int | None
    playbook: str | None
    field: str | None
    message: str

    def __str__(self) -> str:
        where = self.file + (f":{self.line}" if self.line else "")
        who = f" playbook {self.playbook!r}" if self.playbook else ""
        what = f" {self.field}:" if self.field else ""
        return f"{where}:{who}{what} {self.message}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "line": self.line,
            "playbook": self.playbook,
            "field": self.field,
            "message": self.message,
        }


class PlaybookError(InputError):
    """Playbooks that do not load; ``problems`` lists every one."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        head = str(self.problems[0]) if self.problems else "no problems"
        more = f" (and {len(self.problems) - 1} more)" if len(self.problems) > 1 else ""
        super().__init__(head + more)


@dataclass
class LoadResult:
    playbooks: list[Playbook] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    files: list[str] = field(default_factory=list)


class _Budget(yaml.SafeLoader):
    """The safe loader, refusing a key given twice in one mapping (the last would win) and
    nesting deeper than MAX_DEPTH."""

    _depth = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]  # stubs
                raise yaml.composer.ComposerError(
                    None, None, f"nested deeper than {MAX_DEPTH} levels", mark
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep=deep)
        except (ValueError, KeyError, IndexError, AttributeError) as exc:
            # How the safe constructors fail on a value their tag does not fit (!!bool x,
            # !!int '', !!timestamp x, a date that does not exist, an int of 5000 digits):
            # said as a YAML error at the node, so the message has its line.
            tag = str(node.tag).replace("tag:yaml.org,2002:", "!!")
            shown = repr(node.value) if isinstance(node.value, str) else "this"
            why = f": {exc}" if isinstance(exc, ValueError) else ""
            raise yaml.constructor.ConstructorError(
                None, None, f"{shown[:60]} is not a valid {tag}{why}", node.start_mark
            ) from None

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        if not isinstance(node, yaml.MappingNode):  # !!set [1]: the safe loader says why
            return super().construct_mapping(node, deep=deep)
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                hash(key)
            except TypeError:  # a list or mapping as a key: `key in seen` would raise it
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    "a key must be a plain value, not a list or mapping",
                    key_node.start_mark,
                ) from None
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"duplicate key {key!r} (first on line {seen[key]})",
                    key_node.start_mark,
                )
            seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key!r}")
        result[key] = value
    return result


def _line_map(text: str) -> tuple[dict[tuple[Any, ...], int], int]:
    """Line (1-based) of every path in the YAML/JSON text, and the node count with aliases."""
    lines: dict[tuple[Any, ...], int] = {}
    try:
        root = yaml.compose(text, Loader=_Budget)
    except yaml.YAMLError:
        return lines, 0
    count = 0
    stack: list[tuple[Any, tuple[Any, ...]]] = [(root, ())] if root is not None else []
    while stack:
        node, path = stack.pop()
        count += 1
        if count > MAX_NODES:
            return lines, count
        lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node)
                stack.append((value_node, (*path, key)))
                lines.setdefault((*path, key), key_node.start_mark.line + 1)
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                stack.append((item, (*path, index)))
    return lines, count


def _parse(path: Path, text: str) -> Any:
    if path.suffix == ".json":
        return json.loads(text, object_pairs_hook=_no_duplicates)
    return yaml.load(text, Loader=_Budget)


def _documents(data: Any) -> tuple[list[Any], tuple[Any, ...]]:
    if isinstance(data, dict) and "playbooks" in data and isinstance(data["playbooks"], list):
        return data["playbooks"], ("playbooks",)
    if isinstance(data, list):
        return data, ()
    return [data], ()


def _closest_line(lines: dict[tuple[Any, ...], int], loc: tuple[Any, ...]) -> int | None:
    candidates = [loc]
    if "conditions" in loc:  # a plain list of conditions is read as {all: [...]}
        at = loc.index("conditions")
        if loc[at + 1 : at + 2] == ("all",):
            candidates.insert(0, loc[: at + 1] + loc[at + 2 :])
    for candidate in candidates:
        if candidate in lines:
            return lines[candidate]
    for end in range(len(loc), -1, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return None


_CONDITION_TAGS = ("compare", "all", "any", "not")


def _clean_loc(loc: tuple[Any, ...]) -> tuple[Any, ...]:
    """A pydantic error location as a path into the data: union tags removed."""
    from aios.actions import ACTION_TYPES

    out: list[Any] = []
    for index, part in enumerate(loc):
        previous = out[-1] if out else None
        if (
            len(out) >= 2
            and out[-2] == "actions"
            and isinstance(previous, int)
            and part in ACTION_TYPES
        ):
            continue  # the action's type tag
        if part in _CONDITION_TAGS and (
            previous == "conditions" or isinstance(previous, int) or previous in _CONDITION_TAGS
        ):
            if part == "compare":
                continue
            if loc[index + 1 : index + 2] == (part,):
                continue  # the tag of {all: ...}; the field itself follows
        out.append(part)
    return tuple(out)


def _field(loc: tuple[Any, ...]) -> str:
    """A readable field path, e.g. ``actions[0].target``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _action_types() -> list[str]:
    from aios.actions import ACTION_TYPES

    return list(ACTION_TYPES)


def load_file(path: Path) -> LoadResult:
    """The playbooks in one file, and the problems found in it."""
    result = LoadResult(files=[str(path)])
    name = str(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        result.problems.append(Problem(name, None, None, None, f"cannot read: {exc.strerror}"))
        return result
    if len(raw) > MAX_FILE_BYTES:
        result.problems.append(
            Problem(name, None, None, None, f"larger than {MAX_FILE_BYTES} bytes")
        )
        return result
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        result.problems.append(Problem(name, None, None, None, f"not UTF-8: {exc}"))
        return result
    lines, nodes = _line_map(_NOT_YAML.sub(" ", text) if path.suffix == ".json" else text)
    if nodes > MAX_NODES:
        result.problems.append(
            Problem(name, None, None, None, f"expands to more than {MAX_NODES} nodes")
        )
        return result
    try:
        data = _parse(path, text)
    except json.JSONDecodeError as exc:
        result.problems.append(Problem(name, exc.lineno, None, None, f"not valid JSON: {exc.msg}"))
        return result
    except ValueError as exc:  # a duplicate key in JSON, an integer over 4300 digits, a bad date
        form = "JSON" if path.suffix == ".json" else "YAML"
        result.problems.append(Problem(name, None, None, None, f"not valid {form}: {exc}"))
        return result
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        result.problems.append(Problem(name, line, None, None, f"not valid YAML: {exc}"))
        return result
    except RecursionError:
        result.problems.append(Problem(name, None, None, None, "nested too deeply"))
        return result
    documents, prefix = _documents(data)
    for index, document in enumerate(documents):
        base = (*prefix, index) if len(documents) > 1 or prefix else ()
        if isinstance(data, list):
            base = (index,)
        pid = document.get("id") if isinstance(document, dict) else None
        pid = pid if isinstance(pid, str) else None
        if not isinstance(document, dict):
            line = _closest_line(lines, base)
            result.problems.append(Problem(name, line, None, None, "a playbook must be a mapping"))
            continue
        try:
            playbook = Playbook.model_validate(document)
        except ValidationError as exc:
            for error in exc.errors():
                loc = tuple(error.get("loc", ()))
                message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
                if error.get("type") == "unknown_action":
                    given = error.get("input")
                    kind = given.get("type") if isinstance(given, dict) else None
                    known = ", ".join(_action_types())
                    message = f"unknown action type {kind!r} (known: {known})"
                clean = _clean_loc(loc)
                line = _closest_line(lines, (*base, *clean))
                result.problems.append(Problem(name, line, pid, _field(clean) or None, message))
            continue
        except RecursionError:
            result.problems.append(Problem(name, None, pid, None, "nested too deeply"))
            continue
        # Plugin validators are guarded where they are called (the message names the plugin);
        # anything else that escapes validation still only stops this playbook.
        except (Exception, SystemExit) as exc:
            line = _closest_line(lines, base)
            message = f"could not be checked: {type(exc).__name__}: {exc}"[:2000]
            result.problems.append(Problem(name, line, pid, None, message))
            continue
        playbook._source = name
        playbook._line = _closest_line(lines, base) or 1
        result.playbooks.append(playbook)
    return result


def playbook_files(paths: Iterable[Path]) -> list[Path]:
    """Playbook files under ``paths`` (files as given; directories searched, sorted)."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*") if p.suffix in SUFFIXES and p.is_file()))
        else:
            found.append(path)
    return found


def load_playbooks(paths: Iterable[Path], *, strict: bool = True) -> LoadResult:
    """Load every playbook under ``paths``; duplicate ids are problems too.

    With ``strict`` (the default) any problem raises PlaybookError listing all of them.
    """
    result = LoadResult()
    seen: dict[str, Playbook] = {}
    for path in playbook_files(paths):
        if not path.exists():
            result.problems.append(Problem(str(path), None, None, None, "no such file"))
            continue
        loaded = load_file(path)
        result.files.extend(loaded.files)
        result.problems.extend(loaded.problems)
        for playbook in loaded.playbooks:
            first = seen.get(playbook.id)
            if first is not None:
                result.problems.append(
                    Problem(
                        playbook._source,
                        playbook._line,
                        playbook.id,
                        "id",
                        f"duplicate id (first defined at {first.source})",
                    )
                )
                continue
            seen[playbook.id] = playbook
            result.playbooks.append(playbook)
    if strict and result.problems:
        raise PlaybookError(result.problems)
    return result
