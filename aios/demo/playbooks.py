"""The demo's playbooks, written into its home as ordinary YAML playbooks and loaded by the
same machinery as any other (schema, conditions, thresholds, verify, limits).

Two answer the flaky agent's timeouts: doubling the timeout (not enough for a tool that takes
four times as long: its verify fails and it is rolled back), then, as the timeouts keep coming,
ten times the timeout (enough). The temp-directory playbook is written at the disk stage, when
the threshold it verifies against has been measured.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from aios.atomic import write_atomic
from aios.demo.demo_home import DemoSite
from aios.demo.identities import (
    CLEAN_TEMP,
    IDLE_AGENT_GLOB,
    KILL_IDLE,
    RAISE_TIMEOUT,
    TENFOLD_TIMEOUT,
)
from aios.playbooks.loader import load_playbooks


def _resource_high(resource: str, condition: dict[str, Any], per: str) -> dict[str, Any]:
    """A trigger on the monitor's ``resource.high`` for ``resource``, at most every 30
    minutes per ``per`` (a label)."""
    return {
        "type": "resource.high",
        "conditions": [{"path": "payload.resource", "op": "eq", "value": resource}, condition],
        "throttle": {"once_within": "30m", "group_by": [f"labels.{per}"]},
    }


def kill_idle_agents(cpu_raise_at: float) -> dict[str, Any]:
    return {
        "id": KILL_IDLE,
        "description": "CPU is high while an agent sits idle: terminate the idle agents, then "
        "check they are gone. A kill cannot be undone, so a person approves it first.",
        "trigger": _resource_high(
            "cpu", {"path": "payload.value", "op": "gte", "value": cpu_raise_at}, "host"
        ),
        "actions": [
            {
                "type": "process.kill",
                "target": "idle_agents",
                "idle_cpu_below": 1.0,
                "sample": "1s",
                "grace": "3s",
            }
        ],
        "risk": "medium",
        "auto_execute": True,
        "verify": {
            "probe": "process_count",
            "pattern": IDLE_AGENT_GLOB,
            "expect": "==0",
            "within": "20s",
            "interval": "1s",
        },
        "limits": {"target_by": ["labels.host"]},
        "tags": ["demo", "cpu", "agents"],
    }


def _timeouts(count: int) -> dict[str, Any]:
    """A trigger on an agent's tool timeouts: the ``count``-th within ten minutes."""
    return {
        "type": "task.failed",
        "conditions": [
            {"path": "labels.agent", "op": "exists"},
            {"path": "labels.config_file", "op": "exists"},
            {"path": "payload.error_type", "op": "eq", "value": "TimeoutError"},
        ],
        "threshold": {"count": count, "within": "10m", "group_by": ["labels.agent"]},
        "throttle": {"once_within": "1h", "group_by": ["labels.agent"]},
    }


def _timeout_fix(
    pid: str, description: str, count: int, factor: int, verify_s: int
) -> dict[str, Any]:
    return {
        "id": pid,
        "description": description,
        "trigger": _timeouts(count),
        "actions": [
            {
                "type": "config.update",
                "file": "${labels.config_file}",
                "key": "tools.timeout_s",
                "op": "multiply",
                "value": factor,
                "max": 300,
            },
            # A call already under way ends with the old timeout before the verify starts.
            {"type": "wait", "duration": "1s"},
        ],
        "risk": "low",
        "auto_execute": True,
        "verify": {
            "probe": "event_absent",
            "type": "task.failed",
            # The agent's own task (not, say, a failed flow run the monitor reads late).
            "labels": {"agent": "${labels.agent}", "task": "${labels.task}"},
            "expect": "==0",
            "within": f"{verify_s}s",
            "interval": "1s",
        },
        "limits": {"target_by": ["labels.agent"]},
        "tags": ["demo", "agents", "timeouts"],
    }


def raise_tool_timeout() -> dict[str, Any]:
    return _timeout_fix(
        RAISE_TIMEOUT,
        "Three tool timeouts of an agent within ten minutes: double tools.timeout_s in its "
        "config file (its config_file label), then check the task does not fail again for 20 s; "
        "rolled back if it does.",
        count=3,
        factor=2,
        verify_s=20,
    )


def tenfold_tool_timeout() -> dict[str, Any]:
    return _timeout_fix(
        TENFOLD_TIMEOUT,
        "The timeouts keep coming (six within ten minutes): give the tool ten times its "
        "timeout (at most 300 s), then check the task does not fail again for 15 s; rolled back "
        "if it does.",
        count=6,
        factor=10,
        verify_s=15,
    )


def clean_temp_dir(mount: str, temp_dir: Path, raise_at: float) -> dict[str, Any]:
    return {
        "id": CLEAN_TEMP,
        "description": f"The filesystem at {mount} passed the demo's threshold: move the temp "
        f"files of {temp_dir} to the trash (compressed, so a rollback can restore them), then "
        "check the use fell below the threshold.",
        "trigger": _resource_high(
            "disk", {"path": "labels.mount", "op": "eq", "value": mount}, "mount"
        ),
        "actions": [
            {"type": "files.cleanup", "paths": [str(temp_dir)], "patterns": ["*.tmp"]},
        ],
        "risk": "low",
        "auto_execute": True,
        "verify": {
            "probe": "disk_usage",
            "path": "${payload.path}",
            "expect": f"<{raise_at}",
            "after": "1s",
            "within": "30s",
            "interval": "2s",
        },
        "limits": {"target_by": ["labels.mount"]},
        "tags": ["demo", "disk"],
    }


def write_playbook(site: DemoSite, playbook: dict[str, Any]) -> Path:
    """Write one playbook into the demo's playbook directory and load it back; raises
    PlaybookError (naming file and field) if it does not load."""
    path = site.playbooks / f"{playbook['id']}.yaml"
    write_atomic(path, yaml.safe_dump(playbook, sort_keys=False, width=100).encode())
    load_playbooks([path], strict=True)
    return path


def write_playbooks(site: DemoSite, cpu_raise_at: float) -> list[Path]:
    """The playbooks the demo needs from the start (the disk one comes later)."""
    return [
        write_playbook(site, playbook)
        for playbook in (
            kill_idle_agents(cpu_raise_at),
            raise_tool_timeout(),
            tenfold_tool_timeout(),
        )
    ]
