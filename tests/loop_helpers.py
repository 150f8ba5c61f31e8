"""Helpers shared by the tests of the loop and of lessons: reactor settings, small playbooks
that fix or break a config file, remediating one event, and task failures with past times."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import aios
from aios.event import Event
from aios.home import HomePaths
from aios.playbooks.matcher import PlaybookIndex
from aios.playbooks.model import Playbook
from aios.reactor.approval import PolicyApprover
from aios.reactor.engine import Outcome, Reactor, ReactorSettings


def settings(home: HomePaths, root: Path) -> ReactorSettings:
    return ReactorSettings(home, allowed_roots=(root,))


def verify_value(file: Path, key: str, expect: str) -> dict[str, Any]:
    return {
        "probe": "file_value",
        "file": str(file),
        "key": key,
        "expect": expect,
        "within": "0.2s",
        "interval": "0.1s",
    }


def book(pid: str, trigger: str | dict[str, Any] = "queue.backlog", **fields: Any) -> Playbook:
    data: dict[str, Any] = {
        "id": pid,
        "trigger": {"type": trigger} if isinstance(trigger, str) else trigger,
        "actions": [{"type": "wait", "duration": "0s"}],
        "limits": {"max_runs": 20},
    }
    data.update(fields)
    return Playbook.model_validate(data)


def fixes(config_file: Path, pid: str = "raise_interval", **fields: Any) -> Playbook:
    """Sets the heartbeat interval to 120 and checks it: succeeds."""
    return book(
        pid,
        actions=[
            {
                "type": "config.update",
                "file": str(config_file),
                "key": "heartbeat.interval",
                "value": 120,
            }
        ],
        verify=verify_value(config_file, "heartbeat.interval", "==120"),
        **fields,
    )


def breaks(config_file: Path, pid: str = "bad_fix", **fields: Any) -> Playbook:
    """Its verify never passes: rolled back."""
    return book(
        pid,
        actions=[{"type": "config.update", "file": str(config_file), "key": "retries", "value": 3}],
        verify=verify_value(config_file, "retries", "==99"),
        **fields,
    )


def remediate(
    home: HomePaths, root: Path, pb: Playbook, event: Event, *, approve: bool = True
) -> Outcome:
    reactor = Reactor(
        PlaybookIndex([pb]), aios.bus(), settings(home, root), PolicyApprover(approve)
    )
    [outcome] = reactor.process(event)
    return outcome


def backlog(host: str = "web1", *, severity: str = "medium", at: datetime | None = None) -> Event:
    return aios.bus().emit(
        "queue.backlog", {"depth": 500}, severity=severity, labels={"host": host}, time=at
    )


def failures(
    count: int,
    *,
    agent: str = "writer",
    error_type: str = "TimeoutError",
    message: str = "tool search timed out after {n}.5s (req 8f3a{n}c9e12ab34d)",
    start: datetime,
    step: timedelta = timedelta(minutes=1),
) -> list[Event]:
    """``count`` task failures of one kind, published with past times."""
    return aios.bus().publish(
        [
            Event.create(
                type="task.failed",
                source=agent,
                severity="medium",
                time=start + n * step,
                labels={"agent": agent, "task": "summarise"},
                payload={"error_type": error_type, "error": message.format(n=n + 10)},
            )
            for n in range(count)
        ]
    )
