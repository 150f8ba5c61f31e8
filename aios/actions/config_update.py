"""``config.update``: set a dotted key in a JSON, YAML or TOML file under the allowed roots.

The write is atomic; the original bytes are kept under ``$AIOS_HOME/backups/<remediation>/``
and a rollback puts them back byte for byte, but only if the file still holds what the update
wrote (a later change by someone else is never overwritten).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import AliasChoices, Field

from aios.actions.base import ActionContext, ActionError, ActionPlan, ActionSpec, Risk, render
from aios.actions.config_formats import detect_format, get_key, parse, update_text
from aios.actions.confine import open_file, open_parent, read_all, write_atomic_at
from aios.event import check_json_value


class ConfigUpdate(ActionSpec):
    """Set ``key`` in ``file`` to ``value``. Seed form: ``{"path": "heartbeat.interval", ...}``."""

    type: Literal["config.update"] = "config.update"
    file: str = Field(
        description="Absolute path of the file (under allowed_roots); ${...} allowed."
    )
    key: str = Field(
        validation_alias=AliasChoices("key", "path"),
        description="Dotted key, e.g. heartbeat.interval (the seed calls it 'path').",
    )
    value: Any = Field(description="The new value (JSON: number, string, bool, list, object).")
    format: Literal["auto", "json", "yaml", "toml"] = Field(
        default="auto", description="File format; auto goes by the extension."
    )
    create: bool = Field(default=False, description="Add the key if it is missing.")
    op: Literal["set", "add", "multiply"] = Field(
        default="set", description="set the value, or add it to / multiply the current number."
    )
    min: float | None = Field(default=None, description="Never go below this (add/multiply).")
    max: float | None = Field(default=None, description="Never go above this (add/multiply).")

    risk_floor: ClassVar[Risk] = Risk.LOW

    def _target(self, ctx: ActionContext) -> tuple[str, Any]:
        path = render(self.file, ctx.event)
        value = render(self.value, ctx.event)
        check_json_value(value, "value")
        return str(path), value

    def _new_value(self, old: Any, value: Any) -> Any:
        """The value to write, given what is there now."""
        if self.op == "set":
            return value
        if isinstance(old, bool) or not isinstance(old, int | float):
            raise ActionError(f"{self.key} is {old!r}, not a number; cannot {self.op}")
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ActionError(f"{self.op} needs a number, got {value!r}")
        new = old + value if self.op == "add" else old * value
        if self.max is not None:
            new = min(new, self.max)
        if self.min is not None:
            new = max(new, self.min)
        return int(new) if isinstance(old, int) and float(new).is_integer() else new

    def _read(self, path: str, ctx: ActionContext) -> tuple[bytes, int]:
        with open_parent(path, ctx.allowed_roots) as (dir_fd, name):
            fd = open_file(dir_fd, name)
            try:
                return read_all(fd), os.fstat(fd).st_mode & 0o7777
            finally:
                os.close(fd)

    def plan(self, ctx: ActionContext) -> ActionPlan:
        path, value = self._target(ctx)
        raw, _mode = self._read(path, ctx)
        fmt = detect_format(path, self.format)
        document = parse(raw.decode("utf-8"), fmt, path)
        try:
            old: Any = get_key(document, self.key)
        except ActionError:
            if not self.create:
                raise
            old = None
        value = self._new_value(old, value)
        return ActionPlan(
            self.type,
            f"set {self.key} in {path}: {old!r} -> {value!r}",
            targets=[path],
            reversible=True,
            risk=self.floor(),
            details={"file": path, "key": self.key, "old": old, "new": value},
        )

    def execute(self, ctx: ActionContext) -> dict[str, Any]:
        path, value = self._target(ctx)
        fmt = detect_format(path, self.format)
        with open_parent(path, ctx.allowed_roots) as (dir_fd, name):
            fd = open_file(dir_fd, name)
            try:
                raw, mode = read_all(fd), os.fstat(fd).st_mode & 0o7777
            finally:
                os.close(fd)
            text = raw.decode("utf-8")
            if self.op != "set":
                value = self._new_value(get_key(parse(text, fmt, path), self.key), value)
            edited, old = update_text(text, fmt, self.key, value, create=self.create, name=path)
            new = edited.encode("utf-8")
            backup = ctx.work_dir / f"{ctx.index}-{name}"
            _write_backup(backup, raw)
            write_atomic_at(dir_fd, name, new, mode)
        return {
            "file": path,
            "key": self.key,
            "old": old,
            "new": value,
            "backup": str(backup),
            "written_sha256": hashlib.sha256(new).hexdigest(),
        }

    def rollback(self, undo: dict[str, Any], ctx: ActionContext) -> str:
        path = undo["file"]
        backup = undo["backup"]
        try:
            with open(backup, "rb") as handle:
                original = handle.read()
        except OSError as exc:
            raise ActionError(f"cannot read the backup {backup}: {exc.strerror}") from None
        with open_parent(path, ctx.allowed_roots) as (dir_fd, name):
            fd = open_file(dir_fd, name)
            try:
                current, mode = read_all(fd), os.fstat(fd).st_mode & 0o7777
            finally:
                os.close(fd)
            if hashlib.sha256(current).hexdigest() != undo["written_sha256"]:
                raise ActionError(
                    f"{path} changed after the update; not overwriting that change with the "
                    f"backup (the original is kept at {backup})"
                )
            write_atomic_at(dir_fd, name, original, mode)
        return (
            f"restored {path} byte for byte from {backup} ({undo['key']} back to {undo['old']!r})"
        )


def _write_backup(path: Path, data: bytes) -> None:
    """Keep the original readable by its owner only: it may hold secrets."""
    path.parent.chmod(0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        os.fchmod(handle.fileno(), 0o600)
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
