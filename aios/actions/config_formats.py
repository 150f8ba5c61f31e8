"""Reading and setting a dotted key in JSON, YAML and TOML text, keeping the rest as it was.

TOML goes through tomlkit and YAML through ruamel.yaml's round-trip mode, so comments, order
and formatting survive an update; JSON keeps its key order and indentation. The text is
untrusted (an agent may write it): it is refused, with an ActionError naming the file, when it
is larger than MAX_CONFIG_BYTES, nests deeper than MAX_DEPTH, or holds more than MAX_NODES
keys and values (a YAML alias counted each time it is used); any parser failure becomes that
ActionError too.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterable, MutableMapping
from typing import Any

import tomlkit
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError
from ruamel.yaml.events import (
    AliasEvent,
    CollectionEndEvent,
    CollectionStartEvent,
    Event,
    ScalarEvent,
)
from tomlkit.exceptions import TOMLKitError

from aios.actions.base import ActionError

FORMATS = ("json", "yaml", "toml")
# ruamel.yaml's round trip is pure Python and takes tens of microseconds a byte (a 1 MiB YAML
# file takes about a minute to update): this keeps one update within seconds.
MAX_CONFIG_BYTES = 256 * 1024
# Config files nest a few levels; the parsers (and the JSON-as-YAML position lookup) recurse.
MAX_DEPTH = 100
# Keys and values a document may hold, a YAML alias counting as often as it is used: an alias
# bomb of a few hundred bytes would otherwise expand to billions. Config files hold hundreds;
# the YAML round trip costs about 0.1 ms each, so this keeps an update within seconds.
MAX_NODES = 20_000
# How parsers fail on text they do not expect, besides their own errors: int('1' * 5000),
# a timestamp that is no date, a tag applied to the wrong kind of node.
_PARSER_FAILURES = (
    ValueError,
    TypeError,
    AttributeError,
    LookupError,
    ArithmeticError,
    AssertionError,
)
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
    """The document ``text`` holds, read as ``fmt``.

    Raises ActionError naming ``name`` when the text is not valid, larger than
    MAX_CONFIG_BYTES, nested deeper than MAX_DEPTH, holds more than MAX_NODES keys and values
    (YAML: once its aliases are expanded), or (YAML) holds an alias to a node that contains it.
    """
    _check_size(text, name)
    try:
        if fmt == "json":
            document = json.loads(text)
        elif fmt == "yaml":
            _check_yaml_events(_yaml().parse(text), name)
            document = _yaml().load(text)
        else:
            document = tomlkit.parse(text)
    except RecursionError:
        raise ActionError(f"{name}: nested deeper than {MAX_DEPTH} levels") from None
    except (YAMLError, TOMLKitError, *_PARSER_FAILURES) as exc:
        raise ActionError(f"{name}: not valid {fmt.upper()}: {_reason(exc)}") from None
    _check_shape(document, name)
    return document


def _reason(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 500 else text[:500] + "..."


def _check_size(text: str, name: str) -> None:
    if len(text) > MAX_CONFIG_BYTES or len(text.encode("utf-8", "surrogatepass")) > (
        MAX_CONFIG_BYTES
    ):
        raise ActionError(
            f"{name}: larger than {MAX_CONFIG_BYTES} bytes; config files that big are not parsed"
        )


def _check_yaml_events(events: Iterable[Event], name: str) -> None:
    """Refuse a YAML event stream nested deeper than MAX_DEPTH or expanding past MAX_NODES.

    Runs on the parser's events, before anything is built: each alias adds the size of the
    node it names, so the count is what the document expands to. An alias to a node still
    open (one that would contain itself) is refused: the document would be infinite.
    """
    sizes: dict[Any, int | None] = {}  # anchor -> expanded size; None while its node is open
    open_nodes: list[tuple[Any, int]] = []  # (anchor, size so far) of each open collection
    total = 0
    for event in events:
        if isinstance(event, CollectionStartEvent):
            if len(open_nodes) >= MAX_DEPTH:
                raise ActionError(
                    f"{name}: line {_line(event)}: nested deeper than {MAX_DEPTH} levels"
                )
            if event.anchor is not None:
                sizes[event.anchor] = None
            open_nodes.append((event.anchor, 1))
            size = 1
        elif isinstance(event, CollectionEndEvent):
            anchor, size = open_nodes.pop()
            if anchor is not None:
                sizes[anchor] = size
            if open_nodes:
                parent, so_far = open_nodes[-1]
                open_nodes[-1] = (parent, so_far + size)
            continue
        elif isinstance(event, AliasEvent):
            known = sizes.get(event.anchor, 1)  # an unknown anchor fails when composed
            if known is None:
                raise ActionError(
                    f"{name}: line {_line(event)}: alias *{event.anchor} refers to a node "
                    "that contains it"
                )
            size = known
        elif isinstance(event, ScalarEvent):
            if event.anchor is not None:
                sizes[event.anchor] = 1
            size = 1
        else:
            continue
        total += size
        if total > MAX_NODES:
            raise ActionError(
                f"{name}: line {_line(event)}: more than {MAX_NODES} keys and values (an "
                "alias counts as all it stands for)"
            )
        if open_nodes and not isinstance(event, CollectionStartEvent):
            parent, so_far = open_nodes[-1]
            open_nodes[-1] = (parent, so_far + size)


def _line(event: Event) -> int:
    mark = getattr(event, "start_mark", None)
    return int(getattr(mark, "line", 0)) + 1


def _check_shape(document: Any, name: str) -> None:
    """Refuse a parsed document nested deeper than MAX_DEPTH or holding more than MAX_NODES
    keys and values (walked without recursion, and stopped as soon as either is passed)."""
    stack: list[tuple[Any, int]] = [(document, 1)]
    count = 0
    while stack:
        node, depth = stack.pop()
        count += 1
        if count > MAX_NODES:
            raise ActionError(f"{name}: holds more than {MAX_NODES} keys and values")
        if isinstance(node, MutableMapping):
            count += len(node)  # its keys
            children: Iterable[Any] = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        if depth > MAX_DEPTH:
            raise ActionError(f"{name}: nested deeper than {MAX_DEPTH} levels")
        stack.extend((child, depth + 1) for child in children)


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


def _index(part: str, node: list[Any]) -> int | None:
    """``part`` as a position in ``node``, or None if it is not one (only ASCII digits are)."""
    if part.isascii() and part.isdigit() and len(part) <= len(str(len(node))):
        index = int(part)
        return index if index < len(node) else None
    return None


def _step(node: Any, part: str) -> Any:
    if isinstance(node, MutableMapping):
        return node.get(part, _MISSING)
    if isinstance(node, list) and (index := _index(part, node)) is not None:
        return node[index]
    return _MISSING


def get_key(document: Any, key: str, name: str | None = None) -> Any:
    """The value at dotted ``key``; raises ActionError naming the first missing part (and the
    file ``name``, when given)."""
    node = document
    for index, part in enumerate(key.split(".")):
        node = _step(node, part)
        if node is _MISSING:
            where = ".".join(key.split(".")[: index + 1])
            file = f"{name}: " if name else ""
            raise ActionError(f"{file}key {key!r} not found (no {where!r})")
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
    if isinstance(node, list) and (position := _index(last, node)) is not None:
        old = _plain(node[position])
        node[position] = value
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
    whole (TOML through tomlkit keeps its layout either way), and refused (ActionError) unless
    that text reads back as the intended document: a library that rounds a float or drops a
    character on the way out must not change values nobody asked to change.
    """
    document = parse(text, fmt, name)
    try:
        try:
            old = set_key(document, key, value, create=create)
        except ActionError as exc:
            raise ActionError(f"{name}: {exc}") from None
        edited = None
        if fmt != "toml" and _scalar(old) and _scalar(value):
            edited = _replace_scalar(text, fmt, key, value)
            if edited is not None and not _means(edited, fmt, document):
                edited = None
        if edited is None:
            edited = dump(document, fmt, text)
            if not _reads_back(edited, fmt, document, name):
                raise ActionError(
                    f"{name}: written back whole, this {fmt.upper()} would not read back as it "
                    f"was with {key} set (another value would change); nothing written"
                )
        edited.encode("utf-8")
    except RecursionError:
        raise ActionError(f"{name}: nested deeper than {MAX_DEPTH} levels") from None
    except (YAMLError, TOMLKitError, *_PARSER_FAILURES) as exc:
        raise ActionError(
            f"{name}: cannot set {key} to {_short(value)} in this {fmt.upper()}: {_reason(exc)}"
        ) from None
    return edited, old


def _short(value: Any) -> str:
    try:
        text = repr(value)
    except ValueError:  # an integer too long to print
        return "a number"
    return text if len(text) <= 80 else text[:77] + "..."


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, bool | int | float | str)


def _means(text: str, fmt: str, document: Any) -> bool:
    """Whether ``text`` parses to the same plain data as ``document``."""
    try:
        again = json.loads(text) if fmt == "json" else YAML(typ="safe").load(text)
    except (YAMLError, RecursionError, *_PARSER_FAILURES):
        return False
    return _same(again, document)


def _reads_back(text: str, fmt: str, document: Any, name: str) -> bool:
    """Whether ``text``, parsed as the file will be, gives the same plain data as ``document``."""
    try:
        again = parse(text, fmt, name)
    except ActionError:
        return False
    return _same(again, document)


def _same(one: Any, other: Any) -> bool:
    """Whether two documents hold the same plain data: types kept apart (1, 1.0 and true
    differ), NaN equal to NaN."""

    def canonical(document: Any) -> str:
        return json.dumps(_plain(document), sort_keys=True, default=str)

    try:
        return canonical(one) == canonical(other)
    except (ValueError, TypeError):  # keys of mixed types, a value json cannot write
        return False


def _replace_scalar(text: str, fmt: str, key: str, value: Any) -> str | None:
    try:
        tree = _yaml().load(text)  # JSON is YAML: this gives positions for both
    except (YAMLError, RecursionError, *_PARSER_FAILURES):
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
        elif isinstance(node, list) and hasattr(node, "lc") and _index(last, node) is not None:
            line, col = node.lc.item(int(last))
        else:
            return None
    except (KeyError, IndexError, TypeError):
        return None
    lines = text.splitlines(keepends=True)
    if line >= len(lines):
        return None
    start = sum(len(item) for item in lines[:line]) + col
    flow = fmt == "json" or getattr(getattr(node, "fa", None), "_flow_style", False)
    end = _scalar_end(text, start, flow=bool(flow))
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
