"""``example.touch_marker``: write a marker file under the allowed roots; undo removes it.

A marker left for an agent (or a person) to notice. It writes into directories agents own, so
its risk floor is medium: a playbook may not declare it low.
"""

from __future__ import annotations

import base64
import contextlib
import os
from typing import Any, ClassVar, Literal

from pydantic import Field

from aios.actions import ActionContext, ActionPlan, ActionSpec, Risk
from aios.actions.base import ActionError, render
from aios.actions.confine import open_file, open_parent, read_all, write_atomic_at


class TouchMarker(ActionSpec):
    """Write a marker file (under the allowed roots); undo removes it or restores what was there."""

    type: Literal["example.touch_marker"] = "example.touch_marker"
    path: str = Field(description="Absolute path of the marker, under the allowed roots.")
    text: str = Field(default="", max_length=4096, description="What the marker says.")
    risk_floor: ClassVar[Risk] = Risk.MEDIUM

    def _target(self, ctx: ActionContext) -> str:
        return str(render(self.path, ctx.event))

    def plan(self, ctx: ActionContext) -> ActionPlan:
        target = self._target(ctx)
        return ActionPlan(self.type, f"write the marker {target}", [target], risk=self.floor())

    def execute(self, ctx: ActionContext) -> dict[str, Any]:
        target = self._target(ctx)
        text = str(render(self.text, ctx.event))
        with open_parent(target, ctx.allowed_roots) as (dir_fd, name):
            previous = _read(dir_fd, name)
            write_atomic_at(dir_fd, name, text.encode(), 0o644)
        kept = base64.b64encode(previous).decode() if previous is not None else None
        return {"path": target, "previous": kept}

    def rollback(self, undo: dict[str, Any], ctx: ActionContext) -> str:
        target = str(undo["path"])
        with open_parent(target, ctx.allowed_roots) as (dir_fd, name):
            if undo.get("previous") is None:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(name, dir_fd=dir_fd)
                return f"removed the marker {target}"
            write_atomic_at(dir_fd, name, base64.b64decode(undo["previous"]), 0o644)
        return f"restored {target} as it was"


def _read(dir_fd: int, name: str) -> bytes | None:
    try:
        fd = open_file(dir_fd, name)
    except FileNotFoundError:
        return None
    try:
        data = read_all(fd)
    finally:
        os.close(fd)
    if len(data) > 1 << 20:
        raise ActionError(f"{name}: over 1 MiB; not a marker this action replaces")
    return data
