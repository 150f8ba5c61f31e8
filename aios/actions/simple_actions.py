"""``command.run``, ``notify``, ``event.emit`` and ``wait``.

``command.run`` runs an argv list (never a shell string) with a timeout, environment and
working directory; it carries high risk, and it can be undone only by an ``undo`` argv the
playbook supplies. A value an event puts into an argument may not start with ``-`` or hold a
wildcard (``* ? [ ]``), so it cannot turn into an option or a pattern of the program run.
``notify`` posts JSON to a webhook. ``event.emit`` appends an event. ``wait`` pauses. None of
the last three changes anything that needs undoing.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.error
import urllib.request
from datetime import timedelta
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator

from aios.actions.base import (
    _TEMPLATE,
    ActionContext,
    ActionError,
    ActionPlan,
    ActionSpec,
    IrreversibleError,
    Risk,
    render,
)
from aios.durations import Duration
from aios.event import Event, Severity

_OUTPUT_LIMIT = 4000
_WILDCARDS = frozenset("*?[]")


def render_argument(item: str, event: Event) -> str:
    """One argv item with its ``${path}`` templates filled in from ``event``.

    Raises ActionError when a substituted value starts with ``-`` (the program would read an
    option) or holds ``* ? [ ]`` (many programs, pkill or find for one, read a pattern).
    """
    for match in _TEMPLATE.finditer(item):
        value = str(render(match.group(0), event))
        if value.startswith("-") or _WILDCARDS.intersection(value):
            raise ActionError(
                f"argv item {item!r}: {match.group(0)} is {value[:80]!r} in the event; a value "
                "from an event may not start with '-' or hold * ? [ ]"
            )
    return str(render(item, event))


class CommandRun(ActionSpec):
    """Run ``argv`` (a list; ``${...}`` allowed in items). Always at least high risk."""

    type: Literal["command.run"] = "command.run"
    argv: list[str] = Field(
        min_length=1, description="Program and arguments, e.g. [systemctl, restart, x]."
    )
    timeout: Duration = Field(
        default=timedelta(seconds=300), description="Kill it after this long."
    )
    env: dict[str, str] = Field(default_factory=dict, description="Extra environment variables.")
    cwd: str | None = Field(default=None, description="Working directory.")
    undo: list[str] | None = Field(default=None, description="argv that undoes it (optional).")
    ok_exit_codes: list[int] = Field(default=[0], description="Exit codes that mean success.")
    risk_floor: ClassVar[Risk] = Risk.HIGH

    @field_validator("argv", "undo", mode="before")
    @classmethod
    def _no_shell_strings(cls, value: Any) -> Any:
        if isinstance(value, str):
            raise ValueError("must be a list of arguments, not a shell string")
        return value

    def is_reversible(self) -> bool:
        return bool(self.undo)

    def _argv(self, argv: list[str], ctx: ActionContext) -> list[str]:
        return [render_argument(item, ctx.event) for item in argv]

    def plan(self, ctx: ActionContext) -> ActionPlan:
        argv = self._argv(self.argv, ctx)
        return ActionPlan(
            self.type,
            f"run {argv!r} (timeout {self.timeout.total_seconds():.0f}s)",
            targets=[argv[0]],
            reversible=self.is_reversible(),
            risk=self.floor(),
            details={"argv": argv, "cwd": self.cwd, "undo": self.undo},
        )

    def _run(self, argv: list[str]) -> dict[str, Any]:
        env = {**os.environ, **self.env}
        started = time.monotonic()
        try:
            done = subprocess.run(
                argv,
                cwd=self.cwd,
                env=env,
                capture_output=True,
                text=True,
                timeout=self.timeout.total_seconds(),
                check=False,
            )
        except FileNotFoundError:
            raise ActionError(f"command not found: {argv[0]}") from None
        except subprocess.TimeoutExpired:
            seconds = self.timeout.total_seconds()
            raise ActionError(f"{argv[0]} did not finish within {seconds:.0f}s; killed") from None
        result = {
            "argv": argv,
            "exit_code": done.returncode,
            "seconds": round(time.monotonic() - started, 3),
            "stdout": done.stdout[-_OUTPUT_LIMIT:],
            "stderr": done.stderr[-_OUTPUT_LIMIT:],
        }
        if done.returncode not in self.ok_exit_codes:
            raise ActionError(
                f"{argv[0]} exited with {done.returncode}: {done.stderr.strip()[-300:]}"
            )
        return result

    def execute(self, ctx: ActionContext) -> dict[str, Any]:
        argv = self._argv(self.argv, ctx)
        undo = self._argv(self.undo, ctx) if self.undo else None  # refused before anything runs
        result = self._run(argv)
        result["undo_argv"] = undo
        return result

    def rollback(self, undo: dict[str, Any], ctx: ActionContext) -> str:
        argv = undo.get("undo_argv")
        if not argv:
            raise IrreversibleError(f"{undo.get('argv')} has no undo command")
        result = self._run(argv)
        return f"ran {argv!r}: exit {result['exit_code']}"


class Notify(ActionSpec):
    """POST a JSON message to a webhook (``url``); nothing to undo."""

    type: Literal["notify"] = "notify"
    url: str = Field(description="Webhook URL (http or https).")
    message: str = Field(description="Text; ${...} allowed.")
    timeout: Duration = Field(default=timedelta(seconds=10), description="HTTP timeout.")
    headers: dict[str, str] = Field(default_factory=dict, description="Extra HTTP headers.")

    @field_validator("url")
    @classmethod
    def _http(cls, url: str) -> str:
        if not url.startswith(("http://", "https://")):
            raise ValueError("url must start with http:// or https://")
        return url

    def plan(self, ctx: ActionContext) -> ActionPlan:
        text = str(render(self.message, ctx.event))
        return ActionPlan(self.type, f"post to {self.url}: {text[:120]}", [self.url], True)

    def execute(self, ctx: ActionContext) -> dict[str, Any]:
        text = str(render(self.message, ctx.event))
        body = json.dumps(
            {
                "text": text,
                "event": ctx.event.model_dump(mode="json"),
                "remediation_id": ctx.remediation_id,
            }
        ).encode()
        request = urllib.request.Request(
            self.url,
            data=body,
            headers={"Content-Type": "application/json", **self.headers},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout.total_seconds()) as reply:
                status = reply.status
        except urllib.error.HTTPError as exc:
            raise ActionError(f"webhook {self.url} answered {exc.code}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise ActionError(f"webhook {self.url} unreachable: {exc}") from None
        return {"url": self.url, "status": status, "nothing_to_undo": True}

    def rollback(self, undo: dict[str, Any], ctx: ActionContext) -> str:
        return "a sent notification has nothing to undo"


class EmitEvent(ActionSpec):
    """Append an event (``event_type``, ``payload``, ``severity``, ``labels``)."""

    type: Literal["event.emit"] = "event.emit"
    event_type: str = Field(description="Type of the event to emit.")
    payload: dict[str, Any] = Field(default_factory=dict, description="${...} allowed.")
    severity: Severity = Field(default=Severity.INFO, description="info ... critical.")
    labels: dict[str, str] = Field(default_factory=dict, description="${...} allowed.")

    def plan(self, ctx: ActionContext) -> ActionPlan:
        return ActionPlan(self.type, f"emit {self.event_type}", [self.event_type], True)

    def execute(self, ctx: ActionContext) -> dict[str, Any]:
        if ctx.emit is None:
            raise ActionError("event.emit needs a bus")
        event = ctx.emit(
            self.event_type,
            render(self.payload, ctx.event),
            severity=self.severity,
            labels=render(self.labels, ctx.event),
        )
        return {"event_id": event.id, "nothing_to_undo": True}

    def rollback(self, undo: dict[str, Any], ctx: ActionContext) -> str:
        return "an emitted event stays in the log (nothing to undo)"


class Wait(ActionSpec):
    """Pause for ``duration`` (for example, to let a restarted agent settle)."""

    type: Literal["wait"] = "wait"
    duration: Duration = Field(description="How long to wait.")

    def plan(self, ctx: ActionContext) -> ActionPlan:
        return ActionPlan(self.type, f"wait {self.duration.total_seconds():g}s", [], True)

    def execute(self, ctx: ActionContext) -> dict[str, Any]:
        time.sleep(self.duration.total_seconds())
        return {"waited_s": self.duration.total_seconds(), "nothing_to_undo": True}

    def rollback(self, undo: dict[str, Any], ctx: ActionContext) -> str:
        return "nothing to undo"
