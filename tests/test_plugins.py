"""Plugins: discovery that isolates each entry point, then the example package of
``examples/aios-plugin-example`` installed for real and every kind proved end to end.

The example is installed into a directory of its own, put on ``PYTHONPATH`` of the processes
that use it: installed into this virtualenv it would change what every other test sees (the
orchestrator's stages, the schema). Those processes run functions of this module
(``scenario_*``) or the ``aios`` command.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import Any, ClassVar, Literal

import pytest
import yaml

from aios.actions import ActionSpec, Risk
from aios.errors import InputError
from aios.home import HomePaths
from aios.plugins import PluginAgent, Schedule, discovery
from aios.plugins.discovery import PluginRecord, load_all
from aios.plugins.memory import protocol_problems
from tests.conftest import AIOS_BIN
from tests.orchestration_helpers import (
    Workspace,
    aios_cli,
    aios_env,
    artifacts_of,
    events_of,
    flow_run,
)

PROJECT = Path(__file__).resolve().parent.parent
EXAMPLE = PROJECT / "examples" / "aios-plugin-example"
MARK = "@@result@@"


# ------------------------------------------------------------ plugins defined here (unit tests)
class AcmeRestart(ActionSpec):
    """A plugin action that tries to go below its own floor."""

    type: Literal["acme.restart"] = "acme.restart"
    service: str
    risk_floor: ClassVar[Risk] = Risk.MEDIUM

    def floor(self) -> Risk:
        return Risk.LOW


class ProcessRestart(AcmeRestart):
    type: Literal["process.restart"] = "process.restart"  # type: ignore[assignment]


class Unnamespaced(AcmeRestart):
    type: Literal["restart"] = "restart"  # type: ignore[assignment]


class LooseType(ActionSpec):
    type: str = "acme.loose"


def not_a_class() -> None:
    """What an entry point of the wrong kind points at."""


class Auditor(PluginAgent):
    name = "acme_auditor"
    schedule = Schedule(interval_s=600)
    in_dag = True

    def run(self, context: Any) -> dict[str, Any]:
        return {"ok": True}


class MonitorImpostor(Auditor):
    name = "monitor"


class SecondAuditor(Auditor):
    """Another class under the first one's name."""


def good_collector(ctx: Any) -> list[dict[str, Any]]:
    return [{"type": "acme.tick", "labels": {"host": ctx.host}}]


def raising_collector(ctx: Any) -> list[dict[str, Any]]:
    raise RuntimeError("the queue broker is down")


def junk_collector(ctx: Any) -> Any:
    return [{"type": "acme.ok"}, {"payload": "no type"}]


def point(group: str, name: str, attr: str) -> EntryPoint:
    return EntryPoint(name=name, value=f"tests.test_plugins:{attr}", group=group)


def records(kind: discovery.Kind, *points: EntryPoint) -> list[PluginRecord]:
    return load_all({kind: list(points)})


# ------------------------------------------------------------------ discovery, in this process
def test_a_good_plugin_loads_and_says_where_it_came_from() -> None:
    [record] = records("action", point("aios.actions", "acme.restart", "AcmeRestart"))
    assert record.status == "loaded" and record.obj is AcmeRestart
    assert record.to_dict() == {
        "kind": "action",
        "name": "acme.restart",
        "group": "aios.actions",
        "entry_point": "tests.test_plugins:AcmeRestart",
        "distribution": None,  # a bare entry point here; installed ones name theirs
        "version": None,
        "status": "loaded",
        "error": None,
    }


@pytest.mark.parametrize(
    ("kind", "name", "attr", "reason"),
    [
        ("action", "acme.gone", "Missing", "AttributeError"),
        ("action", "acme.fn", "not_a_class", "not an aios.actions.ActionSpec subclass"),
        ("action", "process.restart", "ProcessRestart", "the namespace 'process' is AIOS's own"),
        ("action", "restart", "Unnamespaced", "must be namespaced"),
        ("action", "acme.loose", "LooseType", "must be a Literal"),
        ("action", "acme.other", "AcmeRestart", "but the action's type is 'acme.restart'"),
        ("probe", "acme.depth", "AcmeRestart", "not an aios.plugins.ProbePlugin"),
        ("collector", "acme.cls", "Auditor", "not <class"),
        ("memory_backend", "redis", "not_a_class", "must be namespaced"),
        ("memory_backend", "json", "not_a_class", "must be namespaced"),
        ("agent", "monitor", "MonitorImpostor", "is a built-in flow's"),
        ("agent", "acme_other", "Auditor", "its class says 'acme_auditor'"),
        ("agent", "acme_auditor", "not_a_class", "an agent type is a class"),
    ],
)
def test_a_bad_plugin_is_recorded_as_failed_with_the_reason(
    kind: discovery.Kind, name: str, attr: str, reason: str
) -> None:
    [record] = records(kind, point(discovery.GROUPS[kind], name, attr))
    assert record.status == "failed" and record.obj is None
    assert record.error is not None and reason in record.error, record.error


def test_an_import_error_or_exit_stays_in_its_record_and_the_rest_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "acme_exiting_plugin.py").write_text("raise SystemExit(3)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    found = records(
        "action",
        EntryPoint("acme.broken", "tests.no_such_module:Thing", "aios.actions"),
        EntryPoint("acme.exiting", "acme_exiting_plugin:Thing", "aios.actions"),
        point("aios.actions", "acme.restart", "AcmeRestart"),
    )
    assert [(r.name, r.status, r.error) for r in found] == [
        ("acme.broken", "failed", "ModuleNotFoundError: No module named 'tests.no_such_module'"),
        ("acme.exiting", "failed", "SystemExit: 3"),
        ("acme.restart", "loaded", None),
    ]


def test_the_second_plugin_with_a_name_is_refused_naming_the_first() -> None:
    first = point("aios.actions", "acme.restart", "AcmeRestart")
    second = EntryPoint("acme.restart", "tests.test_plugins:AcmeRestart", "aios.actions")
    found = records("action", first, second)
    assert [r.status for r in found] == ["loaded", "failed"]
    assert "already provided by tests.test_plugins:AcmeRestart" in str(found[1].error)


def test_a_plugin_action_cannot_go_below_its_declared_floor() -> None:
    [record] = records("action", point("aios.actions", "acme.restart", "AcmeRestart"))
    action = record.obj(service="web")
    assert action.floor() is Risk.MEDIUM  # its own floor() said low


def test_agent_registry_takes_the_seeds_form_and_refuses_what_is_not_an_agent() -> None:
    from aios.agents.registry import AgentRegistry

    try:
        assert AgentRegistry.register("acme_auditor", Auditor) is Auditor
        assert AgentRegistry.get("acme_auditor") is Auditor
        assert "acme_auditor" in AgentRegistry.in_dag()
        assert "acme_auditor" in AgentRegistry.scheduled()
        with pytest.raises(InputError, match="built-in flow"):
            AgentRegistry.register("monitor", MonitorImpostor)
        with pytest.raises(InputError, match="is a class"):
            AgentRegistry.register("acme_fn", not_a_class)  # type: ignore[arg-type]
        with pytest.raises(InputError, match="already"):
            AgentRegistry.register("acme_auditor", SecondAuditor)
    finally:
        AgentRegistry.unregister("acme_auditor")
    assert "acme_auditor" not in AgentRegistry.all()


def test_the_protocol_check_knows_a_backend_from_an_incomplete_one(tmp_path: Path) -> None:
    from aios.memory.json_backend import JsonBackend
    from aios.memory.records import MemoryBackend

    assert protocol_problems(JsonBackend(tmp_path), MemoryBackend) == []

    class Partial:
        name = "acme.partial"

        def get(self, collection: str) -> list[Any]:
            return []

    problems = protocol_problems(Partial(), MemoryBackend)
    assert "no upsert" in problems and "no drop" in problems
    assert any(p.startswith("get(") for p in problems), problems


def cycle_with_collectors(
    home: HomePaths, monkeypatch: pytest.MonkeyPatch, *collectors: tuple[str, str]
) -> Any:
    """One monitor cycle with these (name, function in this module) collectors installed."""
    import aios
    from aios.config import load_config
    from aios.observe.monitor import run_cycle

    found = records(
        "collector", *(point("aios.collectors", name, func) for name, func in collectors)
    )
    monkeypatch.setattr(discovery, "_found", found)
    return run_cycle(aios.bus(), home, load_config(home))


def test_collectors_that_raise_or_return_junk_are_reported_and_the_cycle_goes_on(
    home: HomePaths, monkeypatch: pytest.MonkeyPatch
) -> None:
    report = cycle_with_collectors(
        home,
        monkeypatch,
        ("acme.good", "good_collector"),
        ("acme.raising", "raising_collector"),
        ("acme.junk", "junk_collector"),
    )
    assert report.failed_steps == []
    ticks = events_of(home, "type = 'acme.tick'")
    assert [(t[1], t[2]) for t in ticks] == [("plugin.acme.good", {})]
    failed = {p["plugin"]: p for _, _, p, _ in events_of(home, "type = 'plugin.failed'")}
    assert set(failed) == {"acme.raising", "acme.junk"}
    assert failed["acme.raising"]["error"] == "RuntimeError: the queue broker is down"
    assert "invalid event" in failed["acme.junk"]["error"]
    assert "type" in failed["acme.junk"]["error"]
    assert events_of(home, "type = 'acme.ok'") == []  # a batch with junk in it: none of it
    assert events_of(home, "type = 'host.metrics'")  # the cycle's own work was done


# ------------------------------------------------------------------ the example, installed
def pip_install(source: Path, site: Path) -> Path:
    """The package at ``source`` installed by pip (no network, no dependencies) into
    ``site``."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--target",
            str(site),
            str(source),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return site


@pytest.fixture(scope="session")
def plugin_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example package installed (pip, no network) into a directory of its own."""
    base = tmp_path_factory.mktemp("plugin")
    source = base / "src"
    # Built from a copy: pip would leave build/ and *.egg-info in the repository.
    shutil.copytree(EXAMPLE, source, ignore=shutil.ignore_patterns("build", "*.egg-info"))
    return pip_install(source, base / "site")


def plugin_env(
    site: Path, home: HomePaths, api_url: str | None = None, **extra: str
) -> dict[str, str]:
    path = os.pathsep.join([str(site), str(PROJECT)])
    return aios_env(home, api_url, {"PYTHONPATH": path, **extra})


def run_aios(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """The installed ``aios`` command with ``env``."""
    return subprocess.run(
        [str(AIOS_BIN), *args], capture_output=True, text=True, env=env, timeout=300
    )


def in_child(env: dict[str, str], scenario: str, *args: Any) -> Any:
    """Run ``scenario(*args)`` of this module in a fresh interpreter with ``env``; its result."""
    code = (
        "import json, sys\n"
        "from tests import test_plugins\n"
        f"result = test_plugins.{scenario}(*json.loads(sys.argv[1]))\n"
        f"print({MARK!r} + json.dumps(result, default=str))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, json.dumps(args)],
        capture_output=True,
        text=True,
        env=env,
        cwd=PROJECT,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout.rsplit(MARK, 1)[1])


def marker_playbook(root: Path, *, expect: str, risk: str = "low") -> dict[str, Any]:
    return {
        "id": "mark_it",
        "trigger": {"type": "resource.high"},
        "actions": [
            {"type": "example.touch_marker", "path": f"{root}/${{labels.host}}.mark", "text": "hi"}
        ],
        "risk": risk,
        "verify": {
            "probe": "example.file_count",
            "directory": str(root),
            "pattern": "*.mark",
            "expect": expect,
            "within": "0.3s",
            "interval": "0.1s",
        },
    }


def scenario_reactor(root: str) -> dict[str, Any]:
    """The example action and probe through the real reactor: a verify that passes, one that
    fails (rolled back), and a denial."""
    import aios
    from aios.playbooks.matcher import PlaybookIndex
    from aios.playbooks.model import Playbook
    from aios.reactor.approval import PolicyApprover
    from aios.reactor.engine import Reactor, ReactorSettings

    folder = Path(root)
    settings = ReactorSettings(HomePaths.current(), allowed_roots=(folder,))
    found: dict[str, Any] = {}
    cases = [("held", ">=1", True), ("failed", ">=5", True), ("no", "==1", False)]
    for case, expect, approve in cases:
        playbook = Playbook.model_validate(marker_playbook(folder, expect=expect))
        found["effective_risk"] = playbook.effective_risk().value
        found["needs_approval"] = playbook.needs_approval()
        reactor = Reactor(PlaybookIndex([playbook]), aios.bus(), settings, PolicyApprover(approve))
        event = aios.emit("resource.high", {"value": 95}, labels={"host": f"web-{case}"})
        [outcome] = reactor.process(event)
        found[case] = {
            "status": outcome.status,
            "markers": sorted(p.name for p in folder.glob("*.mark")),
            "types": [e.type for e in aios.bus().log.events() if e.correlation_id == event.id],
        }
        for marker in folder.glob("*.mark"):
            marker.unlink()
    return found


def test_a_playbook_with_the_example_action_validates_runs_verifies_and_rolls_back(
    plugin_site: Path, home: HomePaths, root: Path
) -> None:
    found = in_child(plugin_env(plugin_site, home), "scenario_reactor", str(root))
    assert found["effective_risk"] == "medium" and found["needs_approval"]  # declared low
    assert found["held"]["status"] == "succeeded"
    assert found["held"]["markers"] == ["web-held.mark"]
    assert found["held"]["types"][-2:] == ["verify.passed", "remediation.finished"]
    assert found["failed"]["status"] == "rolled_back"
    assert found["failed"]["markers"] == []  # the marker was removed again
    assert {"verify.failed", "rollback.completed"} <= set(found["failed"]["types"])
    assert found["no"]["markers"] == [] and "action.started" not in found["no"]["types"]
    [(_, _, rolled, _)] = events_of(home, "type = 'rollback.completed'")
    assert rolled["restored"] == f"removed the marker {root}/web-failed.mark"


def test_playbooks_using_plugins_validate_like_any_other(
    plugin_site: Path, home: HomePaths, tmp_path: Path
) -> None:
    env = plugin_env(plugin_site, home)

    def validate(playbook: dict[str, Any]) -> dict[str, Any]:
        path = tmp_path / "book.yaml"
        path.write_text(yaml.safe_dump(playbook))
        done = run_aios(env, "playbooks", "validate", str(path), "--json")
        assert done.returncode in (0, 1), done.stderr
        result: dict[str, Any] = json.loads(done.stdout)
        return result

    good = marker_playbook(tmp_path, expect=">=1")
    assert validate(good)["ok"] is True
    bad_action = {**good, "actions": [{"type": "example.touch_marker", "path": 5}]}
    [problem] = validate(bad_action)["problems"]
    assert problem["field"] == "actions[0].path" and "valid string" in problem["message"]
    assert problem["line"] is not None
    bad_probe = {**good, "verify": {**good["verify"], "directory": 3}}
    [problem] = validate(bad_probe)["problems"]
    assert "probe example.file_count: directory: Input should be a valid string" in str(problem)
    unknown = {**good, "actions": [{"type": "example.broken"}]}
    [problem] = validate(unknown)["problems"]
    assert "example.touch_marker" in problem["message"]  # the known types, plugins included
    schema = run_aios(env, "playbooks", "schema")
    assert schema.returncode == 0 and '"example.touch_marker"' in schema.stdout


def test_the_collectors_events_appear_after_a_real_monitor_cycle(
    plugin_site: Path, home: HomePaths
) -> None:
    done = run_aios(plugin_env(plugin_site, home), "monitor", "--once", "--json")
    assert done.returncode == 0, done.stderr
    [(_, source, payload, _)] = events_of(home, "type = 'example.heartbeat'")
    assert source == "plugin.example.heartbeat" and "cycle_at" in payload
    assert events_of(home, "type = 'plugin.failed'") == []


def scenario_memory() -> dict[str, Any]:
    """The example backend chosen by ``[memory] backend``, checked against the protocol, and
    used by a palace the way the palace's own tests use the built-in backends."""
    import os

    import aios
    from aios.config import load_config
    from aios.memory.embedding import embedder
    from aios.memory.palace import MemoryPalace, make_backend
    from aios.memory.records import MemoryBackend

    os.environ["AIOS_MEMORY__BACKEND"] = "example.memory"
    paths = HomePaths.current()
    backend = make_backend(paths, load_config(paths))
    palace = MemoryPalace(backend, embedder("hash"), bus=aios.bus(), paths=paths)
    palace.store("pg-refused", "postgres refused connections after the upgrade")
    palace.store("disk-full", {"text": "no space left on /var", "fix": "cleanup"})
    palace.store("api-429", "rate limited by the LLM provider", metadata={"state": "verified"})
    got = palace.get("disk-full")
    return {
        "module": type(backend).__module__,
        "problems": protocol_problems(backend, MemoryBackend),
        "count": palace.count(),
        "best": [m.key for m in palace.query("database connection refused", top_k=2)],
        "value": got.value if got else None,
        "verified": [m.key for m in palace.query("limits", 3, where={"state": "verified"})],
        "deleted": [palace.delete("disk-full"), palace.delete("disk-full")],
        "after": palace.count(),
    }


def test_the_example_memory_backend_satisfies_the_protocol_and_serves_a_palace(
    plugin_site: Path, home: HomePaths
) -> None:
    found = in_child(plugin_env(plugin_site, home), "scenario_memory")
    assert found["module"].startswith("aios_plugin_example")
    assert found["problems"] == []
    assert found["count"] == 3 and found["best"][0] == "pg-refused"
    assert found["value"] == {"fix": "cleanup", "text": "no space left on /var"}
    assert found["verified"] == ["api-429"]
    assert found["deleted"] == [True, False] and found["after"] == 2


def scenario_deployment() -> dict[str, Any]:
    """The example agent as its own deployment definition, and one run of its flow."""
    from prefect import Flow
    from prefect.flows import load_flow_from_entrypoint

    from deployments.definitions import all_deployments, plugin_deployments, runner_deployments
    from deployments.prefect_yaml import PATH, render

    [spec] = plugin_deployments()
    by_file: Flow[..., Any] = load_flow_from_entrypoint(str(PROJECT / spec.entrypoint))
    [runner] = runner_deployments([spec])
    flow = spec.load_flow()
    state = flow(return_state=True)
    return {
        "agent": spec.agent,
        "full_name": spec.full_name,
        "schedule": spec.schedule_text(),
        "flow_names": [flow.name, by_file.name],
        "runner": [
            runner.name,
            runner.entrypoint,
            [s.schedule.interval.total_seconds() for s in runner.schedules],
        ],
        "served": spec in all_deployments(),
        "prefect_yaml_unchanged": PATH.read_text() == render(),
        "run": [str(state.state_details.flow_run_id), state.result()],
    }


def test_the_example_agent_is_a_deployment_of_its_own(
    plugin_site: Path, home: HomePaths, prefect_server: str
) -> None:
    found = in_child(plugin_env(plugin_site, home, prefect_server), "scenario_deployment")
    assert found["agent"] == "example_auditor"
    assert found["full_name"] == "aios-example_auditor/aios"
    assert found["schedule"] == "every 60 min"
    assert found["flow_names"] == ["aios-example_auditor", "aios-example_auditor"]
    name, entrypoint, intervals = found["runner"]
    assert name == "aios" and entrypoint == "flows.plugin_agent.plugin_example_auditor"
    assert intervals == [3600.0]
    assert found["served"] and found["prefect_yaml_unchanged"]
    run_id, result = found["run"]
    assert result["previous"] == [] and result["events"] >= 1
    assert flow_run(run_id).state.is_completed()
    assert "aios-example-auditor-result" in artifacts_of(run_id)


def test_the_example_agent_runs_in_the_orchestrators_dag(
    plugin_site: Path, home: HomePaths, prefect_server: str, ws: Workspace
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName

    env = plugin_env(plugin_site, home, prefect_server, **ws.env())
    done = run_aios(env, "run", "orchestrator", "--json")
    assert done.returncode == 0, done.stderr[-4000:]
    result = json.loads(done.stdout)
    audit = result["plugins"]["example_auditor"]
    assert audit["previous"] == sorted(result["learner"])  # the learner's result, passed on
    assert "host.metrics" in audit["by_type"]  # it saw what the monitor stage recorded
    [(_, source, payload, _)] = events_of(home, "type = 'example.audited'")
    assert source == "example.auditor" and payload["events"] == audit["events"]
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=["aios-example_auditor"]))
        )
        [stage] = [r for r in runs if r.parent_task_run_id is not None]  # a subflow's run
        parent = client.read_task_run(stage.parent_task_run_id)  # type: ignore[arg-type]
        assert parent.flow_run_id is not None
        orchestrator = client.read_flow_run(parent.flow_run_id)
        parent_flow = client.read_flow(orchestrator.flow_id)
    assert parent_flow.name == "aios-orchestrator"
    assert stage.state is not None and stage.state.is_completed() and "aios" in stage.tags
    assert "aios-example-auditor-result" in artifacts_of(str(stage.id))


def test_aios_plugins_list_shows_each_plugin_and_the_broken_one_with_its_reason(
    plugin_site: Path, home: HomePaths
) -> None:
    env = plugin_env(plugin_site, home)
    listed = run_aios(env, "plugins", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    found = {r["name"]: r for r in json.loads(listed.stdout)}
    assert {n: (r["kind"], r["status"]) for n, r in found.items()} == {
        "example.broken": ("action", "failed"),
        "example.touch_marker": ("action", "loaded"),
        "example.file_count": ("probe", "loaded"),
        "example.heartbeat": ("collector", "loaded"),
        "example.memory": ("memory_backend", "loaded"),
        "example_auditor": ("agent", "loaded"),
    }
    broken = found["example.broken"]
    assert broken["error"] == (
        "ModuleNotFoundError: No module named 'aios_plugin_example_missing_dependency'"
    )
    assert broken["entry_point"] == "aios_plugin_example.broken:BrokenAction"
    assert {(r["distribution"], r["version"]) for r in found.values()} == {
        ("aios-plugin-example", "0.1.0")
    }
    table = run_aios(env, "plugins", "list")
    assert table.returncode == 0 and "failed: ModuleNotFoundError" in table.stdout
    for command in (
        ["emit", "test.ping"],
        ["events", "verify"],
        ["playbooks", "list"],
        ["playbooks", "validate"],
        ["score"],
        ["agents"],
    ):
        done = run_aios(env, *command)
        assert done.returncode == 0, (command, done.stderr)
        assert "Traceback" not in done.stderr, (command, done.stderr)


def test_without_plugins_the_list_is_empty(home: HomePaths) -> None:
    done = aios_cli("plugins", "list", "--json", home=home, api_url=None)
    assert done.returncode == 0 and json.loads(done.stdout) == []


# ------------------------------------------------- plugins that fail where AIOS calls them
FAULTY_PYPROJECT = """\
[build-system]
requires = ["setuptools>=64"]
build-backend = "setuptools.build_meta"

[project]
name = "acme-faulty"
version = "1.0"

[project.entry-points."aios.actions"]
"acme.strict" = "acme_faulty.actions:StrictAction"
"acme.exits" = "acme_faulty.actions:ExitingAction"
"acme.no_floor" = "acme_faulty.actions:NoFloor"
"acme.unknown_undo" = "acme_faulty.actions:UnknownUndo"
"acme.word_floor" = "acme_faulty.actions:WordFloor"
"acme.odd_undo" = "acme_faulty.actions:OddUndo"
"acme.model_user" = "acme_faulty.model_user:ModelUser"

[project.entry-points."aios.probes"]
"acme.picky" = "acme_faulty.probes:picky"

[tool.setuptools.packages.find]
where = ["src"]
"""
FAULTY_ACTIONS = '''\
"""Actions whose own code fails where AIOS calls it."""

import sys
from typing import Any, Literal

from pydantic import field_validator

from aios.actions import ActionContext, ActionPlan, ActionSpec, Risk


class Quiet(ActionSpec):
    def plan(self, ctx: ActionContext) -> ActionPlan:
        return ActionPlan(self.type, f"{self.type}: nothing to see", risk=Risk.LOW)

    def execute(self, ctx: ActionContext) -> dict[str, Any]:
        return {"done": True}

    def rollback(self, undo: dict[str, Any], ctx: ActionContext) -> str:
        return "nothing to undo"


class StrictAction(Quiet):
    type: Literal["acme.strict"] = "acme.strict"
    key: str

    @field_validator("key")
    @classmethod
    def _known(cls, value: str) -> str:
        return {"fine": value}[value]  # a KeyError for any other key


class ExitingAction(Quiet):
    type: Literal["acme.exits"] = "acme.exits"

    def execute(self, ctx: ActionContext) -> dict[str, Any]:
        sys.exit(3)


class NoFloor(Quiet):
    type: Literal["acme.no_floor"] = "acme.no_floor"

    def floor(self) -> Risk:
        raise RuntimeError("the risk table is missing")


class UnknownUndo(Quiet):
    type: Literal["acme.unknown_undo"] = "acme.unknown_undo"

    def is_reversible(self) -> bool:
        sys.exit(4)


class WordFloor(Quiet):
    type: Literal["acme.word_floor"] = "acme.word_floor"

    def floor(self) -> Risk:
        return "low"  # a word, not a Risk


class OddUndo(Quiet):
    type: Literal["acme.odd_undo"] = "acme.odd_undo"

    def rollback(self, undo: dict[str, Any], ctx: ActionContext) -> str:
        return {"not", "text"}  # no event can carry a set
'''
FAULTY_MODEL_USER = '''\
"""An action whose module imports the playbook model, as a plugin may."""

from typing import Any, Literal

from aios.actions import ActionContext, ActionPlan, ActionSpec
from aios.playbooks.model import Playbook

assert Playbook.model_fields["actions"]


class ModelUser(ActionSpec):
    type: Literal["acme.model_user"] = "acme.model_user"

    def plan(self, ctx: ActionContext) -> ActionPlan:
        return ActionPlan(self.type, "nothing")

    def execute(self, ctx: ActionContext) -> dict[str, Any]:
        return {}
'''
FAULTY_PROBES = '''\
"""A probe whose parameter check fails with a TypeError."""

from pydantic import BaseModel, field_validator

from aios.plugins import ProbePlugin


class PickyParams(BaseModel):
    queue: str

    @field_validator("queue")
    @classmethod
    def _known(cls, value: str) -> str:
        return value + 1  # a TypeError


picky = ProbePlugin("acme.picky", PickyParams, lambda params, ctx: 0.0)
'''


@pytest.fixture(scope="session")
def faulty_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A package of plugins that fail where AIOS calls them, installed like the example."""
    base = tmp_path_factory.mktemp("faulty")
    package = base / "src" / "src" / "acme_faulty"
    package.mkdir(parents=True)
    (base / "src" / "pyproject.toml").write_text(FAULTY_PYPROJECT)
    (package / "__init__.py").write_text("")
    (package / "actions.py").write_text(FAULTY_ACTIONS)
    (package / "model_user.py").write_text(FAULTY_MODEL_USER)
    (package / "probes.py").write_text(FAULTY_PROBES)
    return pip_install(base / "src", base / "site")


def write_playbooks(folder: Path, *playbooks: dict[str, Any]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for playbook in playbooks:
        (folder / f"{playbook['id']}.yaml").write_text(yaml.safe_dump(playbook, sort_keys=False))
    return folder


def on(event_type: str, pid: str, *actions: dict[str, Any], **more: Any) -> dict[str, Any]:
    return {"id": pid, "trigger": {"type": event_type}, "actions": list(actions), **more}


def test_a_plugin_check_that_raises_is_a_problem_naming_the_plugin_and_the_rest_load(
    faulty_site: Path, home: HomePaths, tmp_path: Path
) -> None:
    folder = write_playbooks(
        tmp_path / "books",
        on("acme.a", "good", {"type": "wait", "duration": "0s"}),
        on("acme.b", "strict", {"type": "acme.strict", "key": "boom"}),
        on(
            "acme.c",
            "picky",
            {"type": "wait", "duration": "0s"},
            verify={"probe": "acme.picky", "queue": "q", "expect": "==0"},
        ),
    )
    env = plugin_env(faulty_site, home)
    done = run_aios(env, "playbooks", "validate", str(folder), "--json")
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    result = json.loads(done.stdout)
    assert result["playbooks"] == ["good"]  # the valid one in the same folder loads
    problems = {p["playbook"]: p for p in result["problems"]}
    assert set(problems) == {"strict", "picky"}
    strict = problems["strict"]
    assert strict["file"] == str(folder / "strict.yaml") and strict["line"] == 5
    assert strict["field"] == "actions[0]"
    assert strict["message"] == (
        "the action plugin acme.strict (acme_faulty.actions:StrictAction, from acme-faulty 1.0) "
        "failed checking its parameters: KeyError: 'boom'"
    )
    picky = problems["picky"]
    assert picky["field"] == "verify" and picky["line"] is not None
    assert picky["message"] == (
        "the probe plugin acme.picky (acme_faulty.probes:picky, from acme-faulty 1.0) failed "
        'checking its parameters: TypeError: can only concatenate str (not "int") to str'
    )
    # The reactor's own loading (strict) refuses them with the same words, no traceback.
    react = run_aios(env, "react", "--once", "--playbooks", str(folder))
    assert react.returncode == 2 and "Traceback" not in react.stderr, react.stderr
    assert "failed checking its parameters: TypeError" in react.stderr


def test_a_plugin_action_that_exits_fails_its_remediation_and_the_reactor_goes_on(
    faulty_site: Path, home: HomePaths, tmp_path: Path
) -> None:
    folder = write_playbooks(
        tmp_path / "books",
        on("acme.exit_now", "exits", {"type": "acme.exits"}),
        on("acme.undo_unknown", "undo", {"type": "acme.unknown_undo"}),
        on("acme.after", "after", {"type": "wait", "duration": "0s"}),
        on("acme.odd", "odd", *[{"type": "acme.odd_undo"}] * 2, {"type": "acme.exits"}),
    )
    env = plugin_env(faulty_site, home)
    for kind in ("acme.exit_now", "acme.undo_unknown", "acme.after", "acme.odd"):
        assert run_aios(env, "emit", kind).returncode == 0
    react = ["react", "--once", "--json", "--since", "1h", "--playbooks", str(folder)]
    done = run_aios(env, *react)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    outcomes = {o["playbook"]: o for o in map(json.loads, done.stdout.splitlines())}
    assert outcomes["exits"]["status"] == "failed"
    assert outcomes["exits"]["reason"] == "acme.exits failed: SystemExit: 3"
    assert outcomes["undo"]["status"] == outcomes["after"]["status"] == "unverified"
    finished = {
        p["playbook"]: p["outcome"]
        for _, _, p, _ in events_of(home, "type = 'remediation.finished'")
    }
    assert finished == {
        "exits": "failed",
        "undo": "unverified",
        "after": "unverified",
        "odd": "failed",
    }
    # Both odd undos were rolled back, their answers recorded as text.
    undone = [p for _, _, p, _ in events_of(home, "type = 'rollback.completed'")]
    assert [u["action"] for u in undone] == ["acme.odd_undo", "acme.odd_undo"]
    assert all("'not'" in u["restored"] for u in undone)
    completed = {p["action"]: p for _, _, p, _ in events_of(home, "type = 'action.completed'")}
    assert set(completed) == {"acme.unknown_undo", "wait", "acme.odd_undo"}  # exits: nothing
    assert completed["acme.unknown_undo"]["reversible"] is False
    assert "reversible_error" not in completed["wait"]
    assert completed["acme.unknown_undo"]["reversible_error"] == (
        "acme.unknown_undo: is_reversible() failed (SystemExit: 4)"
    )
    # The same events again: every remediation is finished, none is resumed or run twice.
    again = run_aios(env, *react)
    assert again.returncode == 0, again.stderr
    statuses = {o["playbook"]: o["reason"] for o in map(json.loads, again.stdout.splitlines())}
    assert statuses == {
        "exits": "already done (failed)",
        "undo": "already done (unverified)",
        "after": "already done (unverified)",
        "odd": "already done (failed)",
    }
    assert len(events_of(home, "type = 'action.started'")) == 6


def test_a_plugin_floor_that_raises_counts_as_high_risk_and_says_why(
    faulty_site: Path, home: HomePaths, tmp_path: Path
) -> None:
    folder = write_playbooks(
        tmp_path / "books",
        on("acme.floor", "no_floor", {"type": "acme.no_floor"}),
        on("acme.word", "word_floor", {"type": "acme.word_floor"}),
    )
    env = plugin_env(faulty_site, home)
    listed = run_aios(env, "playbooks", "list", "--json", "--playbooks", str(folder))
    assert listed.returncode == 0 and "Traceback" not in listed.stderr, listed.stderr
    [row] = [r for r in json.loads(listed.stdout) if r["id"] == "no_floor"]
    assert (row["risk"], row["effective_risk"], row["needs_approval"]) == ("low", "high", True)
    why = "acme.no_floor: floor() failed (RuntimeError: the risk table is missing)"
    assert row["risk_problems"] == [why]
    table = run_aios(env, "playbooks", "list", "--playbooks", str(folder))
    assert f"no_floor: counted as high risk: {why}" in " ".join(table.stderr.split())
    [word] = [r for r in json.loads(listed.stdout) if r["id"] == "word_floor"]
    assert (word["effective_risk"], word["needs_approval"]) == ("high", True)
    assert "floor() gave 'low', not an aios.actions.Risk" in word["risk_problems"][0]
    assert run_aios(env, "emit", "acme.floor").returncode == 0
    dry = run_aios(
        env, "react", "--once", "--dry-run", "--json", "--since", "1h", "--playbooks", str(folder)
    )
    assert dry.returncode == 0, dry.stderr
    [(_, _, matched, _)] = events_of(home, "type = 'playbook.matched'")
    assert matched["effective_risk"] == "high" and matched["needs_approval"] is True
    assert matched["risk_problems"] == [why]


IMPORT_ORDER = """\
import json, sys
if sys.argv[1] == "discovery first":
    from aios.plugins import discovery
    discovery.discover()
from aios.playbooks.model import Playbook
from aios.plugins import discovery
try:
    Playbook.model_validate(
        {"id": "p", "trigger": {"type": "a.b"}, "actions": [{"type": "acme.model_user"}]}
    )
    verdict = "valid"
except Exception as exc:
    verdict = f"{type(exc).__name__}: {exc}"
record = discovery.record("action", "acme.model_user")
print(json.dumps([verdict, record.status, record.error]))
"""


@pytest.mark.parametrize("order", ["discovery first", "model first"])
def test_a_plugin_importing_the_playbook_model_works_whichever_is_imported_first(
    faulty_site: Path, home: HomePaths, order: str
) -> None:
    done = subprocess.run(
        [sys.executable, "-c", IMPORT_ORDER, order],
        capture_output=True,
        text=True,
        env=plugin_env(faulty_site, home),
        cwd=PROJECT,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    assert json.loads(done.stdout) == ["valid", "loaded", None]


def exiting_collector(ctx: Any) -> list[dict[str, Any]]:
    raise SystemExit(5)


def spoofing_collector(ctx: Any) -> list[dict[str, Any]]:
    return [{"type": "remediation.finished", "source": "aios.reactor", "payload": {}}]


def test_a_collector_that_exits_or_claims_an_aios_source_is_reported_and_the_rest_run(
    home: HomePaths, monkeypatch: pytest.MonkeyPatch
) -> None:
    report = cycle_with_collectors(
        home,
        monkeypatch,
        ("acme.a_exits", "exiting_collector"),
        ("acme.b_spoof", "spoofing_collector"),
        ("acme.c_good", "good_collector"),
    )
    assert report.failed_steps == []
    failed = {p["plugin"]: p["error"] for _, _, p, _ in events_of(home, "type = 'plugin.failed'")}
    assert failed["acme.a_exits"] == "SystemExit: 5"
    assert "[0].source" in failed["acme.b_spoof"] and "belong to AIOS" in failed["acme.b_spoof"]
    assert events_of(home, "type = 'remediation.finished'") == []
    assert [s for _, s, _, _ in events_of(home, "type = 'acme.tick'")] == ["plugin.acme.c_good"]


def exiting_backend(paths: Any, config: Any) -> Any:
    raise SystemExit(6)


def test_a_memory_backend_that_exits_is_a_plugin_error(
    home: HomePaths, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aios.config import load_config
    from aios.memory.palace import make_backend
    from aios.plugins import PluginError

    found = records(
        "memory_backend", point("aios.memory_backends", "acme.exits", "exiting_backend")
    )
    monkeypatch.setattr(discovery, "_found", found)
    monkeypatch.setenv("AIOS_MEMORY__BACKEND", "acme.exits")
    with pytest.raises(PluginError, match=r"memory backend 'acme.exits' failed: SystemExit: 6"):
        make_backend(home, load_config(home))


class Exiter(PluginAgent):
    name = "acme_exiter"

    def run(self, context: Any) -> dict[str, Any]:
        raise SystemExit(7)


class Rememberer(PluginAgent):
    name = "acme_rememberer"

    def run(self, context: Any) -> dict[str, Any]:
        memory = context.memory()
        memory.store("own", "a note of my own")
        return {"agent": context.agent, "sees": sorted(m.key for m in memory.query("note", 5))}


def test_a_plugin_agent_that_exits_fails_its_run_and_its_memory_is_its_own_view(
    home: HomePaths, monkeypatch: pytest.MonkeyPatch
) -> None:
    import aios
    from aios.config import load_config
    from aios.memory.palace import MemoryPalace
    from aios.plugins import AgentContext, PluginError
    from aios.plugins.agents import run_agent

    monkeypatch.setenv("AIOS_MEMORY__BACKEND", "json")
    config = load_config(home)
    context = AgentContext(aios.bus(), home, config)
    with pytest.raises(PluginError, match=r"agent 'acme_exiter' exited: SystemExit: 7"):
        run_agent("acme_exiter", Exiter, context)
    [(_, _, failed, _)] = events_of(home, "type = 'task.failed'")
    assert "SystemExit: 7" in str(failed)

    operator = MemoryPalace.open(paths=home, config=config)
    operator.for_agent("acme_other").store("private", "a note of another agent")
    result = run_agent("acme_rememberer", Rememberer, context)
    assert result == {"agent": "acme_rememberer", "sees": ["own"]}  # not the other's note
    mine = operator.get("own")
    assert mine is not None and mine.owner == "acme_rememberer"
    named = AgentContext(aios.bus(), home, config, agent="acme_rememberer")
    with pytest.raises(PluginError, match="'lessons' collection is AIOS's own"):
        named.memory("lessons")  # lessons are read through the table's rules
