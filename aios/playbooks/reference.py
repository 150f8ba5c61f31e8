"""The playbook reference in the README, generated from the schema and the registries.

``python -m aios.playbooks.reference`` prints it; a test keeps the README's copy identical.
"""

from __future__ import annotations

from datetime import timedelta
from enum import Enum
from typing import Any

from aios.actions import BUILTIN_ACTION_TYPES
from aios.durations import format_duration
from aios.playbooks.conditions import OPERATORS
from aios.probes import PROBES, SEED_CHECKS

BEGIN = "<!-- playbook-reference:begin (generated: python -m aios.playbooks.reference) -->"
END = "<!-- playbook-reference:end -->"


def _type_name(info: dict[str, Any]) -> str:
    if "enum" in info:
        return " \\| ".join(str(v) for v in info["enum"])
    if "const" in info:
        return str(info["const"])
    if "anyOf" in info:
        return " or ".join(_type_name(i) for i in info["anyOf"] if i.get("type") != "null")
    kind = info.get("type", "any")
    if kind == "array":
        return f"list of {_type_name(info.get('items', {}))}"
    return str(kind)


def _default(value: Any) -> str:
    if isinstance(value, timedelta):
        return format_duration(value)
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, Enum):
        return str(value.value)
    return str(value)


def _params(cls: Any) -> str:
    schema = cls.model_json_schema()
    rows = []
    for name, info in schema.get("properties", {}).items():
        if name == "type":
            continue
        required = name in schema.get("required", [])
        field = cls.model_fields[name]
        default = field.get_default(call_default_factory=True)
        shown = "" if required or default in (None, [], {}) else f" (default `{_default(default)}`)"
        description = info.get("description", "")
        rows.append(f"`{name}`{'*' if required else ''} {_type_name(info)}{shown}: {description}")
    return "<br>".join(rows)


def render() -> str:
    lines = [BEGIN, "", "#### Actions", ""]
    lines += ["| type | risk floor | undo | parameters (* required) |", "|---|---|---|---|"]
    for name, cls in BUILTIN_ACTION_TYPES.items():  # plugins document themselves
        doc = (cls.__doc__ or "").strip().splitlines()[0]
        floor = cls.risk_floor.value
        undo = "yes" if cls.reversible else "no"
        lines.append(f"| `{name}` | {floor} | {undo} | {doc}<br>{_params(cls)} |")
    lines += [
        "",
        "Some floors and undos depend on the parameters: `process.*` choosing anything but "
        "`target: agents`/`idle_agents` is at least medium; `files.cleanup` with "
        "`trash: false` is medium and cannot be undone; `process.signal` can be undone only "
        "for SIGSTOP; `command.run` only with an `undo` argv.",
        "",
        "#### Condition operators",
        "",
        "| op | meaning |",
        "|---|---|",
    ]
    lines += [f"| `{op.name}` | {op.description} |" for op in OPERATORS.values()]
    lines += ["", "#### Verify probes", "", "| probe | parameters | reads |", "|---|---|---|"]
    for probe in PROBES.values():
        params = ", ".join(
            [*(f"`{p}`*" for p in probe.required), *(f"`{p}`" for p in probe.optional)]
        )
        lines.append(
            f"| `{probe.name}` | {params or '-'} | {probe.description} ({probe.unit or 'value'}) |"
        )
    lines += [
        "",
        "The seed's checks: "
        + ", ".join(
            f"`{name}` = `{probe} {op}threshold`" for name, (probe, op) in SEED_CHECKS.items()
        )
        + ".",
        "",
        END,
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    print(render())
