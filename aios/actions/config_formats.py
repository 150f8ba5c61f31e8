"""Reading and setting a dotted key in JSON, YAML and TOML text, keeping the rest as it was.

TOML goes through tomlkit and YAML through ruamel.yaml's round-trip mode, so comments, order
and formatting survive an update; JSON keeps its key order and indentation.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import MutableMapping
from typing import Any

import tomlkit
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from aios.actions.base import ActionError

FORMATS = ("json", "yaml", "toml")
_MISSING = object()


def detect_format(name: str, declared: str = "auto") -> str:
    if declared != "auto":
        return declared
    lower = name.lower()
    if lower.endswith(".json"):
        return "json"
    if lower.endswith((".yaml", ".yml")):
        return "yaml"
    if lower.endswith(".toml"):
        return "toml"
    raise ActionError(f"{name}: cannot tell the format from the name; set format: json|yaml|toml")


def _yaml() -> YAML:
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    return yaml


def parse(text: str, fmt: str, name: str) -> Any:
    try:
        if fmt == "json":
            return json.loads(text)
        if fmt == "yaml":
            return _yaml().load(text)
        return tomlkit.parse(text)
    except (json.JSONDecodeError, YAMLError, tomlkit.exceptions.TOMLKitError) as exc:
        raise ActionError(f"{name}: not valid {fmt.upper()}: {exc}") from None


def dump(document: Any, fmt: str, original: str) -> str:
    if fmt == "json":
        indent = _json_indent(original)
        text = json.dumps(document, indent=indent, ensure_ascii=False)
        return text + ("\n" if original.endswith("\n") else "")
    if fmt == "yaml":
        out = io.StringIO()
        _yaml().dump(document, out)
        return out.getvalue()
    return tomlkit.dumps(document)


def _json_indent(text: str) -> int | None:
    lines = text.splitlines()
    if len(lines) < 2:
        return None
    second = lines[1]
    return len(second) - len(second.lstrip(" ")) or 2


def _step(node: Any, part: str) -> Any:
    if isinstance(node, MutableMapping):
        return node.get(part, _MISSING)
    if isinstance(node, list) and part.isdigit() and int(part) < len(node):
        return node[int(part)]
    return _MISSING


def get_key(document: Any, key: str) -> Any:
    """The value at dotted ``key``; raises ActionError naming the first missing part."""
    node = document
    for index, part in enumerate(key.split(".")):
        node = _step(node, part)
        if node is _MISSING:
            where = ".".join(key.split(".")[: index + 1])
            raise ActionError(f"key {key!r} not found (no {where!r})")
    return _plain(node)


def set_key(document: Any, key: str, value: Any, *, create: bool = False) -> Any:
    """Set dotted ``key`` to ``value``; returns the old value (None if created)."""
    parts = key.split(".")
    node = document
    for index, part in enumerate(parts[:-1]):
        child = _step(node, part)
        if child is _MISSING:
            if not create or not isinstance(node, MutableMapping):
                where = ".".join(parts[: index + 1])
                raise ActionError(f"key {key!r} not found (no {where!r}); set create: true")
            node[part] = {}
            child = node[part]
        node = child
    last = parts[-1]
    if isinstance(node, MutableMapping):
        if last not in node and not create:
            raise ActionError(f"key {key!r} not found; set create: true to add it")
        old = _plain(node[last]) if last in node else None
        node[last] = value
        return old
    if isinstance(node, list) and last.isdigit() and int(last) < len(node):
        old = _plain(node[int(last)])
        node[int(last)] = value
        return old
    raise ActionError(f"key {key!r}: {'.'.join(parts[:-1]) or 'the document'} is not a table")


def _plain(value: Any) -> Any:
    """tomlkit/ruamel values as plain JSON-able Python values (their own subclasses dropped)."""
    if hasattr(value, "unwrap"):
        return value.unwrap()
    if isinstance(value, MutableMapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if value is None:
        return None
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    return str(value)


# ----------------------------------------------------------- surgical updates
_SAFE_PLAIN = re.compile(r"^[A-Za-z_][A-Za-z0-9_./-]*$")


def update_text(
    text: str, fmt: str, key: str, value: Any, *, create: bool, name: str
) -> tuple[str, Any]:
    """``text`` with dotted ``key`` set to ``value``, and the old value.

    When a scalar replaces a scalar in JSON or YAML, only that scalar's characters change
    (indentation, comments, flow lists and all else stay exactly as they were); the result is
    parsed again to make sure it means what was intended. Otherwise the document is dumped
    whole (TOML through tomlkit keeps its layout either way).
    """
    document = parse(text, fmt, name)
    old = set_key(document, key, value, create=create)
    if fmt != "toml" and _scalar(old) and _scalar(value):
        edited = _replace_scalar(text, fmt, key, value)
        if edited is not None and _means(edited, fmt, document):
            return edited, old
    return dump(document, fmt, text), old


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, bool | int | float | str)


def _means(text: str, fmt: str, document: Any) -> bool:
    """Whether ``text`` parses to the same plain data as ``document``."""
    try:
        again = json.loads(text) if fmt == "json" else YAML(typ="safe").load(text)
    except (json.JSONDecodeError, YAMLError):
        return False
    return bool(_plain(again) == _plain(document))


def _replace_scalar(text: str, fmt: str, key: str, value: Any) -> str | None:
    try:
        tree = _yaml().load(text)  # JSON is YAML: this gives positions for both
    except YAMLError:
        return None
    parts = key.split(".")
    node = tree
    for part in parts[:-1]:
        node = _step(node, part)
        if node is _MISSING:
            return None
    last = parts[-1]
    try:
        if isinstance(node, MutableMapping) and hasattr(node, "lc"):
            line, col = node.lc.value(last)
        elif isinstance(node, list) and hasattr(node, "lc") and last.isdigit():
            line, col = node.lc.item(int(last))
        else:
            return None
    except (KeyError, IndexError, TypeError):
        return None
    lines = text.splitlines(keepends=True)
    if line >= len(lines):
        return None
    start = sum(len(item) for item in lines[:line]) + col
    end = _scalar_end(text, start, flow=fmt == "json" or getattr(node.fa, "_flow_style", False))
    if end is None:
        return None
    original = text[start:end]
    return text[:start] + _render_scalar(value, original, fmt) + text[end:]


def _scalar_end(text: str, start: int, *, flow: bool) -> int | None:
    """Where the scalar token starting at ``start`` ends (None for block scalars)."""
    if start >= len(text):
        return None
    first = text[start]
    if first in "|>":
        return None
    if first == '"':
        index = start + 1
        while index < len(text):
            if text[index] == "\\":
                index += 2
                continue
            if text[index] == '"':
                return index + 1
            if text[index] == "\n":
                return None
            index += 1
        return None
    if first == "'":
        index = start + 1
        while index < len(text):
            if text[index] == "'":
                if text[index + 1 : index + 2] == "'":
                    index += 2
                    continue
                return index + 1
            if text[index] == "\n":
                return None
            index += 1
        return None
    index = start
    while index < len(text):
        char = text[index]
        if char in "\r\n" or (flow and char in ",]}"):
            break
        if char == "#" and index > start and text[index - 1] in " \t":
            break
        index += 1
    end = index
    while end > start and text[end - 1] in " \t":
        end -= 1
    return end if end > start else None


def _render_scalar(value: Any, original: str, fmt: str) -> str:
    if fmt == "yaml" and isinstance(value, str):
        quoted = original[:1] in ("'", '"')
        if not quoted and _SAFE_PLAIN.match(value) and value.lower() not in _YAML_WORDS:
            return value
    if fmt == "yaml" and value is None:
        return "~" if original == "~" else "null"
    return json.dumps(value, ensure_ascii=False)


_YAML_WORDS = {"true", "false", "yes", "no", "on", "off", "null", "y", "n", "~"}
