"""Playbooks: golden files of events that must and must not match, loading errors, the index."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from aios.bus import coerce_event
from aios.playbooks.conditions import ConditionResult
from aios.playbooks.loader import PlaybookError, load_playbooks
from aios.playbooks.matcher import PlaybookIndex
from aios.playbooks.model import Playbook

GOLDEN = sorted((Path(__file__).parent / "playbooks").glob("*.yaml"))
SHIPPED = Path(__file__).resolve().parent.parent / "playbooks"


def leaves(result: ConditionResult | None) -> list[dict[str, Any]]:
    if result is None:
        return []
    if result.kind == "compare":
        return [result.to_dict()]
    return [leaf for child in result.children for leaf in leaves(child)]


def golden_cases() -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    cases = []
    for path in GOLDEN:
        data = yaml.safe_load(path.read_text())
        for case in data["cases"]:
            cases.append((f"{path.stem}: {case['name']}", data, case))
    return cases


@pytest.mark.parametrize(
    ("name", "golden", "case"), golden_cases(), ids=[c[0] for c in golden_cases()]
)
def test_golden_events_match_or_not_with_the_expected_explanation(
    name: str, golden: dict[str, Any], case: dict[str, Any]
) -> None:
    playbook = Playbook.model_validate(golden["playbook"])
    index = PlaybookIndex([playbook])
    event = coerce_event(case["event"])
    matched = [p.id for p in index.match(event)]
    assert (matched == [playbook.id]) is case["matches"], name
    explanation = index.explain(playbook.id, event)
    assert explanation.matched is case["matches"]
    expected = case.get("explanation")
    if expected is not None:
        got = leaves(explanation.conditions)
        assert len(got) == len(expected)
        for leaf, want in zip(got, expected, strict=True):
            for key, value in want.items():
                assert leaf[key] == value, (name, key, leaf)


WITH_MEANING = [p for p in GOLDEN if "means" in yaml.safe_load(p.read_text())]


@pytest.mark.parametrize("path", WITH_MEANING, ids=[p.stem for p in WITH_MEANING])
def test_golden_playbooks_mean_what_they_say(path: Path) -> None:
    golden = yaml.safe_load(path.read_text())
    means = golden["means"]
    playbook = Playbook.model_validate(golden["playbook"])
    assert [a.type for a in playbook.actions] == means["actions"]
    assert playbook.effective_risk().value == means["effective_risk"]
    assert playbook.needs_approval() is means["needs_approval"]
    verify = playbook.verify
    assert verify is not None
    dumped = verify.model_dump(mode="json")
    for key, value in means["verify"].items():
        assert dumped[key] == value


def test_the_seed_json_loads_from_a_file_as_it_is(tmp_path: Path) -> None:
    seed = {
        "id": "cpu_high_kill_idle",
        "trigger": {
            "event_type": "resource.high",
            "conditions": {"resource": "cpu", "threshold": 80},
        },
        "actions": [{"type": "kill_process", "target": "idle_agents"}],
        "validation": {"check": "cpu_below_threshold", "threshold": 70},
    }
    (tmp_path / "playbooks.json").write_text(json.dumps([seed], indent=2))
    loaded = load_playbooks([tmp_path]).playbooks
    assert [p.id for p in loaded] == ["cpu_high_kill_idle"]
    assert loaded[0].source == f"{tmp_path / 'playbooks.json'}:2"  # where its object starts


def test_the_shipped_playbooks_are_valid() -> None:
    loaded = load_playbooks([SHIPPED]).playbooks
    ids = {p.id for p in loaded}
    assert {
        "cpu_high_kill_idle",
        "reduce_heartbeat_freq",
        "disk_nearly_full",
        "agent_memory_leak",
        "idle_agents_while_cpu_high",
        "tool_timeouts_raise_timeout",
    } <= ids
    assert all(p.verify is not None for p in loaded)


# ------------------------------------------------------------- loading errors
BAD = [
    (
        "unknown operator",
        """id: p1
trigger:
  type: a.b
  conditions:
    - {path: payload.x, op: eq, value: 1}
    - {path: payload.y, op: bogus, value: 1}
actions: [{type: wait, duration: 1s}]
""",
        6,
        "p1",
        "trigger.conditions.all[1].op",
        "unknown operator 'bogus'",
    ),
    (
        "unknown action type",
        """id: p2
trigger: {type: a.b}
actions:
  - {type: wait, duration: 1s}
  - {type: reboot_everything}
""",
        5,
        "p2",
        "actions[1]",
        "unknown action type 'reboot_everything'",
    ),
    (
        "unknown probe",
        """id: p3
trigger: {type: a.b}
actions: [{type: wait, duration: 1s}]
verify:
  probe: vibes
  expect: good
""",
        4,
        "p3",
        "verify",
        "unknown probe 'vibes'",
    ),
    (
        "bad duration",
        """id: p4
trigger: {type: a.b}
actions:
  - type: files.cleanup
    paths: [/srv/x]
    older_than: soon
""",
        6,
        "p4",
        "actions[0].older_than",
        "not a duration",
    ),
    (
        "a shell string for command.run",
        """id: p5
trigger: {type: a.b}
actions:
  - type: command.run
    argv: "rm -rf /tmp/x"
""",
        5,
        "p5",
        "actions[0].argv",
        "not a shell string",
    ),
    (
        "a path outside the event",
        """id: p6
trigger:
  type: a.b
  conditions: {path: environ.HOME, op: exists}
actions: [{type: wait, duration: 1s}]
""",
        4,
        "p6",
        "trigger.conditions.path",
        "must start with one of",
    ),
    (
        "an unknown field",
        """id: p7
trigger: {type: a.b}
actions: [{type: wait, duration: 1s}]
risk: low
retries: 3
""",
        5,
        "p7",
        "retries",
        "Extra inputs are not permitted",
    ),
    (
        "a bad risk",
        """id: p8
trigger: {type: a.b}
actions: [{type: wait, duration: 1s}]
risk: extreme
""",
        4,
        "p8",
        "risk",
        "'low', 'medium' or 'high'",
    ),
]


@pytest.mark.parametrize(
    ("what", "text", "line", "playbook", "field", "message"), BAD, ids=[b[0] for b in BAD]
)
def test_load_errors_name_file_line_playbook_and_field(
    tmp_path: Path, what: str, text: str, line: int, playbook: str, field: str, message: str
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(PlaybookError) as info:
        load_playbooks([path])
    problem = info.value.problems[0]
    assert problem.file == str(path)
    assert (problem.line, problem.playbook, problem.field) == (line, playbook, field), problem
    assert message in problem.message
    assert str(path) in str(info.value)


def test_duplicate_ids_across_files_are_errors(tmp_path: Path) -> None:
    body = "id: same\ntrigger: {type: a.b}\nactions: [{type: wait, duration: 1s}]\n"
    (tmp_path / "a.yaml").write_text(body)
    (tmp_path / "b.yaml").write_text("# another\n" + body)
    result = load_playbooks([tmp_path], strict=False)
    assert [p.id for p in result.playbooks] == ["same"]
    assert len(result.problems) == 1
    problem = result.problems[0]
    assert problem.file.endswith("b.yaml") and problem.playbook == "same"
    assert "duplicate id" in problem.message and "a.yaml:1" in problem.message


def test_syntax_errors_name_the_line(tmp_path: Path) -> None:
    (tmp_path / "broken.yaml").write_text("id: x\ntrigger: {type: a.b\nactions: []\n")
    (tmp_path / "broken.json").write_text('{"id": "y",\n "trigger": }')
    problems = load_playbooks([tmp_path], strict=False).problems
    by_file = {Path(p.file).name: p for p in problems}
    assert by_file["broken.json"].line == 2
    assert "not valid JSON" in by_file["broken.json"].message
    assert by_file["broken.yaml"].line is not None
    assert "not valid YAML" in by_file["broken.yaml"].message


def test_alias_bombs_and_huge_files_are_refused(tmp_path: Path) -> None:
    lines = ['a: &a ["x","x","x","x","x","x","x","x","x","x"]']
    for level in "bcdefgh":
        previous = chr(ord(level) - 1)
        lines.append(f"{level}: &{level} [" + ",".join([f"*{previous}"] * 10) + "]")
    (tmp_path / "bomb.yaml").write_text("\n".join(lines) + "\n")
    (tmp_path / "huge.yaml").write_text("# " + "x" * (2 << 20))
    problems = {
        Path(p.file).name: p.message for p in load_playbooks([tmp_path], strict=False).problems
    }
    assert "expands to more than" in problems["bomb.yaml"]
    assert "larger than" in problems["huge.yaml"]


def test_python_tags_are_not_constructed(tmp_path: Path) -> None:
    (tmp_path / "evil.yaml").write_text(
        "id: !!python/object/apply:os.system ['touch /tmp/aios-pwned']\n"
        "trigger: {type: a.b}\nactions: [{type: wait, duration: 1s}]\n"
    )
    problems = load_playbooks([tmp_path], strict=False).problems
    assert problems and "not valid YAML" in problems[0].message
    assert not Path("/tmp/aios-pwned").exists()


# ----------------------------------------------------------------- the index
def make_playbook(pid: str, trigger_type: str, **trigger: Any) -> Playbook:
    return Playbook.model_validate(
        {
            "id": pid,
            "trigger": {"type": trigger_type, **trigger},
            "actions": [{"type": "wait", "duration": "1s"}],
        }
    )


def test_unrelated_playbooks_are_not_even_looked_at() -> None:
    playbooks = [make_playbook(f"p{i}", f"noise{i}.event") for i in range(500)]
    playbooks += [
        make_playbook("exact", "resource.high"),
        make_playbook("glob", "resource.*"),
        make_playbook("anything", "*"),
        make_playbook("other_glob", "task.*"),
    ]
    index = PlaybookIndex(playbooks)
    candidates = {c.playbook.id for c in index.candidates("resource.high")}
    assert candidates == {"exact", "glob", "anything"}
    assert {c.playbook.id for c in index.candidates("noise7.event")} == {"p7", "anything"}


def test_a_disabled_playbook_matches_and_says_it_never_runs() -> None:
    playbook = Playbook.model_validate(
        {
            "id": "off",
            "enabled": False,
            "trigger": {"type": "a.b"},
            "actions": [{"type": "wait", "duration": "1s"}],
        }
    )
    index = PlaybookIndex([playbook])
    explanation = index.explain("off", coerce_event({"type": "a.b"}))
    assert explanation.matched
    assert any("disabled" in note for note in explanation.notes)


def test_effective_risk_is_raised_by_the_action_floors() -> None:
    declared_low = Playbook.model_validate(
        {
            "id": "sneaky",
            "risk": "low",
            "trigger": {"type": "a.b"},
            "actions": [{"type": "command.run", "argv": ["/bin/true"]}],
        }
    )
    assert declared_low.effective_risk().value == "high"
    assert declared_low.needs_approval()
    not_agents = Playbook.model_validate(
        {
            "id": "kills_anything",
            "trigger": {"type": "a.b"},
            "actions": [{"type": "process.kill", "name": "python*"}],
        }
    )
    assert not_agents.effective_risk().value == "medium"
    assert not_agents.needs_approval()
    manual = Playbook.model_validate(
        {
            "id": "manual",
            "auto_execute": False,
            "trigger": {"type": "a.b"},
            "actions": [{"type": "wait", "duration": "1s"}],
        }
    )
    assert manual.effective_risk().value == "low" and manual.needs_approval()


def test_the_readme_reference_is_the_generated_one() -> None:
    from aios.playbooks.reference import BEGIN, END, render

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    start, end = readme.index(BEGIN), readme.index(END) + len(END)
    assert readme[start:end] == render(), "run: python -m aios.playbooks.reference"


def test_match_explained_gives_each_match_its_explanation() -> None:
    index = PlaybookIndex(
        [
            make_playbook(
                "hot",
                "resource.high",
                conditions={"path": "payload.value", "op": "gte", "value": 80},
            ),
            make_playbook(
                "cold",
                "resource.high",
                conditions={"path": "payload.value", "op": "lt", "value": 10},
            ),
        ]
    )
    [(playbook, explanation)] = index.match_explained(
        coerce_event({"type": "resource.high", "payload": {"value": 93}})
    )
    assert playbook.id == "hot"
    assert explanation.conditions is not None
    assert explanation.conditions.to_dict()["seen"] == 93
