"""Playbooks that try to do harm: refused or sent to approval, and nothing is executed."""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import aios
from aios.home import HomePaths
from aios.playbooks.matcher import PlaybookIndex
from aios.playbooks.model import Playbook
from aios.reactor.approval import PolicyApprover
from aios.reactor.engine import Reactor, ReactorSettings


def run_one(
    home: HomePaths,
    root: Path,
    spec: dict[str, Any],
    *,
    approve: bool = False,
    agent_patterns: tuple[str, ...] = (),
) -> tuple[Any, PolicyApprover, list[str]]:
    playbook = Playbook.model_validate({"trigger": {"type": "attack.test"}, **spec})
    approver = PolicyApprover(approve)
    reactor = Reactor(
        PlaybookIndex([playbook]),
        aios.bus(),
        ReactorSettings(home, allowed_roots=(root,), agent_patterns=agent_patterns),
        approver,
    )
    event = aios.emit("attack.test", {"x": 1}, labels={"host": "h"})
    [outcome] = reactor.process(event)
    steps = [e.type for e in aios.bus().log.events() if e.correlation_id == event.id]
    return outcome, approver, steps


@pytest.fixture
def root(tmp_path: Path) -> Path:
    path = tmp_path / "allowed"
    path.mkdir()
    return path


def test_path_traversal_is_refused_before_anything_runs(
    home: HomePaths, root: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside.json"
    outside.write_text('{"admin": false}\n')
    before = outside.read_bytes()
    outcome, _, steps = run_one(
        home,
        root,
        {
            "id": "traversal",
            "actions": [
                {
                    "type": "config.update",
                    "file": f"{root}/../outside.json",
                    "key": "admin",
                    "value": True,
                }
            ],
        },
    )
    assert outcome.status == "skipped" and "plan_failed" in outcome.reason
    assert "outside the allowed roots" in outcome.reason
    assert outside.read_bytes() == before
    assert "action.started" not in steps


def test_a_symlink_out_of_the_roots_is_never_followed(
    home: HomePaths, root: Path, tmp_path: Path
) -> None:
    secret = tmp_path / "secret.log"
    secret.write_text("keep me")
    os.utime(secret, (0, 0))
    (root / "innocent.log").symlink_to(secret)
    (root / "logs").symlink_to(tmp_path, target_is_directory=True)
    outcome, _, _ = run_one(
        home,
        root,
        {
            "id": "symlinks",
            "actions": [{"type": "files.cleanup", "paths": [str(root)], "patterns": ["*.log"]}],
        },
    )
    assert outcome.status == "unverified"
    assert secret.read_text() == "keep me"
    assert (root / "innocent.log").is_symlink()


def test_a_command_declared_low_still_needs_approval_and_does_not_run(
    home: HomePaths, root: Path, tmp_path: Path
) -> None:
    marker = tmp_path / "ran"
    outcome, approver, steps = run_one(
        home,
        root,
        {
            "id": "sneaky_command",
            "risk": "low",
            "auto_execute": True,
            "actions": [{"type": "command.run", "argv": ["/usr/bin/touch", str(marker)]}],
        },
    )
    assert outcome.status == "skipped" and outcome.reason.startswith("denied")
    assert approver.requests and approver.requests[0].risk == "high"
    assert not marker.exists()
    assert "approval.denied" in steps and "action.started" not in steps


@pytest.fixture
def bystander() -> Iterator[subprocess.Popen[bytes]]:
    child = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)", f"bystander-{uuid.uuid4().hex}"]
    )
    yield child
    child.kill()
    child.wait()


def test_killing_processes_outside_the_agent_patterns_needs_approval(
    home: HomePaths, root: Path, bystander: subprocess.Popen[bytes]
) -> None:
    outcome, approver, _ = run_one(
        home,
        root,
        {
            "id": "kill_by_name",
            "risk": "low",
            "actions": [{"type": "process.kill", "pid": bystander.pid}],
        },
        agent_patterns=("*some-agent*",),
    )
    assert outcome.status == "skipped" and outcome.reason.startswith("denied")
    assert approver.requests[0].risk == "medium"
    assert bystander.poll() is None  # still running


def test_targets_outside_the_patterns_are_never_chosen_even_when_approved(
    home: HomePaths, root: Path, bystander: subprocess.Popen[bytes]
) -> None:
    outcome, _, _ = run_one(
        home,
        root,
        {"id": "kill_agents", "actions": [{"type": "process.kill", "target": "agents"}]},
        approve=True,
        agent_patterns=("*no-such-agent-here*",),
    )
    assert outcome.status == "unverified"
    assert bystander.poll() is None


def test_notify_posts_to_a_webhook_and_event_emit_appends(home: HomePaths, root: Path) -> None:
    received: list[dict[str, Any]] = []

    class Hook(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers["Content-Length"])
            received.append(json.loads(self.rfile.read(length)))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/hook"
        outcome, _, _steps = run_one(
            home,
            root,
            {
                "id": "tell_someone",
                "actions": [
                    {"type": "notify", "url": url, "message": "host ${labels.host} needs a look"},
                    {
                        "type": "event.emit",
                        "event_type": "ops.note",
                        "payload": {"host": "${labels.host}"},
                    },
                ],
            },
        )
    finally:
        server.shutdown()
    assert outcome.status == "unverified"
    assert received and received[0]["text"] == "host h needs a look"
    notes = [e for e in aios.bus().log.events() if e.type == "ops.note"]
    assert notes and notes[0].payload == {"host": "h"} and notes[0].source == "aios.playbook"
