"""``config.update``: set a dotted key in a JSON, YAML or TOML file under the allowed roots.

The write is atomic; the original bytes are kept under ``$AIOS_HOME/backups/<remediation>/``
and a rollback puts them back byte for byte, but only if the file still holds what the update
wrote (a later change by someone else is never overwritten). The new file keeps the old one's
mode and owner. A write is refused if, since the read, the file was replaced or changed or its
directory left the allowed roots. Files larger than ``MAX_CONFIG_BYTES`` are not read, and an
``add`` or ``multiply`` whose result is not a finite number in range writes nothing.
"""

from __future__ import annotations

import hashlib
import math
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import AliasChoices, Field, field_validator

from aios.actions.base import ActionContext, ActionError, ActionPlan, ActionSpec, Risk, render
from aios.actions.config_formats import (
    MAX_CONFIG_BYTES,
    detect_format,
    get_key,
    parse,
    update_text,
)
from aios.actions.confine import (
    ensure_still_there,
    open_file,
    open_parent,
    read_all,
    write_atomic_at,
)
from aios.errors import EventValidationError
from aios.event import INT_MAX, INT_MIN, check_json_value


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

    @field_validator("value")
    @classmethod
    def _finite(cls, value: Any) -> Any:
        """NaN and infinity would be written into the file (or, as a bound, turn it off)."""
        stack = [value]
        while stack:
            item = stack.pop()
            if isinstance(item, float) and not math.isfinite(item):
                raise ValueError(f"{item} is not a finite number; NaN and infinity are refused")
            if isinstance(item, dict):
                stack.extend(item.values())
            elif isinstance(item, list):
                stack.extend(item)
        return value

    def _target(self, ctx: ActionContext) -> tuple[str, Any]:
        path = render(self.file, ctx.event)
        value = render(self.value, ctx.event)
        check_json_value(value, "value")
        return str(path), value

    def _new_value(self, old: Any, value: Any, path: str) -> Any:
        """The value to write, given what is there now; ActionError (naming ``path`` and the
        key) if ``add``/``multiply`` cannot give a finite number in the signed 64-bit range."""
        if self.op == "set":
            return value
        if isinstance(old, bool) or not isinstance(old, int | float):
            raise ActionError(
                f"{path}: {self.key} is {_shown(old)}, not a number; cannot {self.op}"
            )
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ActionError(f"{path}: {self.op} needs a number, got {_shown(value)}")
        sign = "+" if self.op == "add" else "*"
        what = f"{path}: {self.key}: {_shown(old)} {sign} {value!r}"
        try:
            new = old + value if self.op == "add" else old * value
        except OverflowError:  # a huge integer from the file meets a float
            raise ActionError(f"{what} gives a number too large for a float") from None
        if isinstance(new, float) and not math.isfinite(new):
            raise ActionError(f"{what} gives {new}, not a finite number")
        if self.max is not None:
            new = min(new, self.max)
        if self.min is not None:
            new = max(new, self.min)
        if isinstance(old, int) and isinstance(new, float) and new.is_integer():
            new = int(new)  # an integer setting stays an integer
        if isinstance(new, int) and not INT_MIN <= new <= INT_MAX:
            raise ActionError(f"{what} gives an integer outside the signed 64-bit range")
        return new

    def _read(self, path: str, ctx: ActionContext) -> bytes:
        with open_parent(path, ctx.allowed_roots) as (dir_fd, name):
            return _read_at(dir_fd, name, path).data

    def _current(self, document: Any, path: str) -> Any:
        """The value at the key now; None if it is missing and ``create`` is set."""
        try:
            return get_key(document, self.key, path)
        except ActionError:
            if not self.create:
                raise
            return None

    def plan(self, ctx: ActionContext) -> ActionPlan:
        path, value = self._target(ctx)
        raw = self._read(path, ctx)
        fmt = detect_format(path, self.format)
        old = self._current(parse(_decode(raw, path), fmt, path), path)
        value = self._new_value(old, value, path)
        return ActionPlan(
            self.type,
            f"set {self.key} in {path}: {_shown(old)} -> {_shown(value)}",
            targets=[path],
            reversible=True,
            risk=self.floor(),
            details={"file": path, "key": self.key, "old": _recordable(old), "new": value},
        )

    def execute(self, ctx: ActionContext) -> dict[str, Any]:
        path, value = self._target(ctx)
        fmt = detect_format(path, self.format)
        with open_parent(path, ctx.allowed_roots) as (dir_fd, name):
            read = _read_at(dir_fd, name, path)
            text = _decode(read.data, path)
            if self.op != "set":
                value = self._new_value(self._current(parse(text, fmt, path), path), value, path)
            edited, old = update_text(text, fmt, self.key, value, create=self.create, name=path)
            new = edited.encode("utf-8")
            backup = ctx.work_dir / f"{ctx.index}-{name}"
            _write_backup(backup, read.data)
            read.replace_with(new, ctx.allowed_roots)
        return {
            "file": path,
            "key": self.key,
            "old": _recordable(old),
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
            current = _read_at(dir_fd, name, path)
            if hashlib.sha256(current.data).hexdigest() != undo["written_sha256"]:
                raise ActionError(
                    f"{path} changed after the update; not overwriting that change with the "
                    f"backup (the original is kept at {backup})"
                )
            current.replace_with(original, ctx.allowed_roots)
        return (
            f"restored {path} byte for byte from {backup} ({undo['key']} back to {undo['old']!r})"
        )


@dataclass(frozen=True)
class _Read:
    """A file's bytes as read, and what identified it then: the write must replace that file.

    Usable only while ``dir_fd`` (its directory, opened by ``open_parent``) is open.
    """

    path: str
    dir_fd: int
    name: str
    data: bytes
    info: os.stat_result

    def replace_with(self, data: bytes, roots: tuple[Path, ...]) -> None:
        """Atomically replace the file with ``data``, keeping its mode and owner.

        Refused (ActionError, naming the path) if the directory has left the allowed roots or
        the name no longer holds the file that was read, exactly as it was read: whoever
        changed it in the meantime wins, and nothing is written outside the roots.
        """
        write_atomic_at(
            self.dir_fd,
            self.name,
            data,
            stat.S_IMODE(self.info.st_mode),
            owner=(self.info.st_uid, self.info.st_gid),
            check=lambda: self._unchanged(roots),
        )

    def _unchanged(self, roots: tuple[Path, ...]) -> None:
        ensure_still_there(self.dir_fd, self.path, roots)
        try:
            now = os.stat(self.name, dir_fd=self.dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            now = None
        if now is None or _identity(now) != _identity(self.info):
            raise ActionError(
                f"{self.path} was replaced or changed while AIOS was updating it; left as it is now"
            )


def _identity(info: os.stat_result) -> tuple[int, ...]:
    """What tells one file from another, and this file now from itself before a write."""
    return (info.st_dev, info.st_ino, stat.S_IFMT(info.st_mode), info.st_size, info.st_mtime_ns)


def _read_at(dir_fd: int, name: str, path: str) -> _Read:
    fd = open_file(dir_fd, name, path=path)
    try:
        info = os.fstat(fd)  # before the read: a change made during it shows at the check
        return _Read(path, dir_fd, name, read_all(fd, MAX_CONFIG_BYTES, path=path), info)
    finally:
        os.close(fd)


def _decode(data: bytes, path: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ActionError(f"{path}: not UTF-8 text (byte {exc.start}); left as it is") from None


def _shown(value: Any) -> str:
    """``repr(value)`` cut to 80 characters, for messages."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _recordable(value: Any) -> Any:
    """``value`` if an event can carry it, else its (shortened) repr.

    The old value comes from the file and may be NaN or an integer past 64 bits, which the
    event log refuses; the plan and the undo record must still be stored.
    """
    try:
        check_json_value(value, "old")
    except EventValidationError:
        return _shown(value)
    return value


def _write_backup(path: Path, data: bytes) -> None:
    """Keep the original readable by its owner only: it may hold secrets."""
    path.parent.chmod(0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        os.fchmod(handle.fileno(), 0o600)
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
