"""`aios react` and `aios playbooks` through the installed command, on real files and processes."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from aios.home import HomePaths
from aios.log import EventLog
from tests.conftest import run_aios


@pytest.fixture
def setup(home: HomePaths, tmp_path: Path) -> tuple[Path, Path]:
    """A config with an allowed root holding an agent's config, and a playbook directory."""
    root = tmp_path / "agents"
    root.mkdir()
    agent_config = root / "writer.toml"
    agent_config.write_text("# writer\n[heartbeat]\ninterval = 60  # seconds\n")
    playbooks = tmp_path / "playbooks"
    playbooks.mkdir()
    (playbooks / "slow_heartbeat.yaml").write_text(
        f"""id: slow_heartbeat
description: CPU high -> slower heartbeat
trigger:
  type: resource.high
  conditions:
    - {{path: payload.resource, op: eq, value: cpu}}
    - {{path: payload.value, op: gte, value: 80}}
actions:
  - {{type: config.update, file: "{agent_config}", key: heartbeat.interval, value: 120}}
verify: {{probe: file_value, file: "{agent_config}", key: heartbeat.interval, expect: "==120",
         within: 2s, interval: 0.2s}}
"""
    )
    home.config.write_text(
        f'[reactor]\nplaybook_dirs = ["{playbooks}"]\nallowed_roots = ["{root}"]\n'
    )
    return agent_config, playbooks


def types(home: HomePaths) -> list[str]:
    return [e.type for e in EventLog(home.events).events()]


def test_react_once_fixes_verifies_and_keeps_its_place(
    home: HomePaths, setup: tuple[Path, Path]
) -> None:
    agent_config, _ = setup
    original = agent_config.read_bytes()
    first = run_aios("react", "--once", home=home)  # no place yet: starts at the end
    assert first.returncode == 0, first.stderr
    run_aios("emit", "resource.high", "-p", "resource=cpu", "-p", "value=93", home=home)
    dry = run_aios("react", "--once", "--dry-run", home=home)
    assert dry.returncode == 0, dry.stderr
    assert "slow_heartbeat: dry_run" in dry.stdout
    assert agent_config.read_bytes() == original
    real = run_aios("react", "--once", home=home)
    assert real.returncode == 0, real.stderr
    assert "slow_heartbeat: succeeded" in real.stdout
    assert "interval = 120  # seconds" in agent_config.read_text()  # the comment survives
    again = run_aios("react", "--once", "--json", home=home)
    assert again.stdout.strip() == ""  # nothing new since its saved place
    assert types(home).count("remediation.finished") == 1


def test_explain_says_why_and_exits_by_verdict(home: HomePaths, setup: tuple[Path, Path]) -> None:
    hot = json.dumps({"type": "resource.high", "payload": {"resource": "cpu", "value": 95}})
    cool = json.dumps({"type": "resource.high", "payload": {"resource": "cpu", "value": 40}})
    fires = run_aios("playbooks", "explain", "slow_heartbeat", "--event", hot, home=home)
    assert fires.returncode == 0, fires.stderr
    assert "would fire" in fires.stdout
    quiet = run_aios("playbooks", "explain", "slow_heartbeat", "--event", cool, "--json", home=home)
    assert quiet.returncode == 1
    data = json.loads(quiet.stdout)
    assert data["would_fire"] is False
    value = data["conditions"]["children"][1]
    assert (value["path"], value["seen"], value["verdict"]) == ("payload.value", 40, False)
    unknown = run_aios("playbooks", "explain", "nope", "--event", hot, home=home)
    assert unknown.returncode == 2 and "no playbook 'nope'" in unknown.stderr


def test_test_shows_the_plan_and_executes_nothing(
    home: HomePaths, setup: tuple[Path, Path]
) -> None:
    agent_config, _ = setup
    before = agent_config.read_bytes()
    hot = json.dumps({"type": "resource.high", "payload": {"resource": "cpu", "value": 95}})
    result = run_aios("playbooks", "test", "slow_heartbeat", "--event", hot, "--json", home=home)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["executed"] is False and data["matched"] is True
    assert "60 -> 120" in data["plan"][0]["summary"]
    assert agent_config.read_bytes() == before
    assert types(home) == []


def test_validate_lists_and_schema(
    home: HomePaths, setup: tuple[Path, Path], tmp_path: Path
) -> None:
    ok = run_aios("playbooks", "validate", home=home)
    assert ok.returncode == 0 and "1 playbook(s) valid" in ok.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text("id: b\ntrigger: {type: a.b}\nactions:\n  - {type: explode}\n")
    failed = run_aios("playbooks", "validate", str(bad), home=home)
    assert failed.returncode == 1
    assert f"{bad}:4" in failed.stderr and "unknown action type 'explode'" in failed.stderr
    listed = json.loads(run_aios("playbooks", "list", "--json", home=home).stdout)
    assert listed[0]["id"] == "slow_heartbeat" and listed[0]["needs_approval"] is False
    schema = json.loads(run_aios("playbooks", "schema", home=home).stdout)
    assert "trigger" in schema["properties"] and "actions" in schema["properties"]
    shipped = run_aios(
        "playbooks",
        "list",
        "--playbooks",
        str(Path(__file__).resolve().parent.parent / "playbooks"),
        home=home,
    )
    assert "cpu_high_kill_idle" in shipped.stdout


def test_simulate_replays_history_and_executes_nothing(
    home: HomePaths, setup: tuple[Path, Path]
) -> None:
    agent_config, _ = setup
    before = agent_config.read_bytes()
    for value in (95, 85, 50):
        run_aios(
            "emit",
            "resource.high",
            "-p",
            "resource=cpu",
            "-p",
            f"value={value}",
            "--label",
            "host=h1",
            home=home,
        )
    result = run_aios("playbooks", "simulate", "--since", "1h", "--json", home=home)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    [entry] = report["playbooks"]
    assert report["events"] == 3
    assert entry["fires"] == 2 and entry["targets"] == {"labels.host=h1": 2}
    assert agent_config.read_bytes() == before


@pytest.fixture
def agents() -> Iterator[tuple[str, list[subprocess.Popen[bytes]]]]:
    marker = f"aios-test-agent-{uuid.uuid4().hex[:8]}"
    children: list[subprocess.Popen[bytes]] = []
    yield marker, children
    for child in children:
        if child.poll() is None:
            child.kill()
            child.wait()


def test_the_seed_playbook_kills_an_idle_agent_and_nothing_else(
    home: HomePaths, tmp_path: Path, agents: tuple[str, list[subprocess.Popen[bytes]]]
) -> None:
    marker, children = agents
    idle = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(120)", f"{marker}-idle"]
    )
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass", f"{marker}-busy"])
    bystander = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(120)", "not-an-agent"]
    )
    children.extend([idle, busy, bystander])
    time.sleep(0.5)
    playbooks = tmp_path / "seed"
    playbooks.mkdir()
    (playbooks / "seed.json").write_text(
        (
            Path(__file__).resolve().parent.parent / "playbooks" / "cpu_high_kill_idle.json"
        ).read_text()
    )
    home.config.write_text(f'[agents]\npatterns = ["*{marker}*"]\n')
    run_aios("react", "--once", "--playbooks", str(playbooks), home=home)
    run_aios("emit", "resource.high", "-p", "resource=cpu", "-p", "value=97", home=home)
    result = run_aios("react", "--once", "--playbooks", str(playbooks), home=home)
    assert result.returncode == 0, result.stderr
    assert idle.wait(timeout=10) != 0  # terminated
    assert busy.poll() is None and bystander.poll() is None
    assert psutil.Process(busy.pid).is_running()
    killed = [e for e in EventLog(home.events).events() if e.type == "action.completed"]
    assert [p["pid"] for p in killed[0].payload["undo"]["killed"]] == [idle.pid]
