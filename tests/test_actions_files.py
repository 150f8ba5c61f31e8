"""config.update and files.cleanup on real files: formats kept, confinement, undo, trash."""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import shutil
import stat
import time
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from aios.actions.base import (
    ActionContext,
    ActionError,
    ConfinementError,
    IrreversibleError,
    Risk,
)
from aios.actions.config_update import ConfigUpdate
from aios.actions.files_cleanup import Candidate, FilesCleanup, purge_trash
from aios.errors import InputError
from aios.event import Event
from aios.home import HomePaths

DAY = 86400

# ---------------------------------------------------------------------------------------------
# helpers


@pytest.fixture(autouse=True)
def _umask_022() -> Iterator[None]:
    """A known umask, so the mode checks do not depend on who runs the tests."""
    old = os.umask(0o022)
    yield
    os.umask(old)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """The one allowed root."""
    path = tmp_path / "root"
    path.mkdir()
    return path


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A directory next to the root, holding things no action may touch."""
    path = tmp_path / "outside"
    path.mkdir()
    return path


def make_ctx(
    tmp_path: Path,
    roots: tuple[Path, ...],
    *,
    labels: dict[str, str] | None = None,
    payload: dict[str, Any] | None = None,
) -> ActionContext:
    event = Event.create(type="test.trigger", labels=labels or {}, payload=payload or {})
    return ActionContext(
        event=event,
        paths=HomePaths(tmp_path / "home"),
        remediation_id="r1",
        allowed_roots=roots,
        index=0,
    )


def make_file(
    path: Path, data: bytes | str, *, age_days: float = 0.0, mode: int | None = None
) -> Path:
    """Write ``path`` (creating its directory) with an mtime ``age_days`` ago, whole seconds."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    if mode is not None:
        path.chmod(mode)
    when = int(time.time() - age_days * DAY)
    os.utime(path, (when, when))
    return path


def make_link(link: Path, target: Path, *, age_days: float = 0.0) -> Path:
    """A symlink whose own mtime is ``age_days`` ago (old enough to be chosen if followed)."""
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(target)
    when = int(time.time() - age_days * DAY)
    os.utime(link, (when, when), follow_symlinks=False)
    return link


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def snapshot(top: Path) -> dict[str, tuple[object, ...]]:
    """Everything under ``top`` without following symlinks: kind, content, mode, mtime."""
    found: dict[str, tuple[object, ...]] = {}
    for dirpath, dirnames, filenames in os.walk(top):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            info = path.lstat()
            rel = str(path.relative_to(top))
            if stat.S_ISLNK(info.st_mode):
                found[rel] = ("link", os.readlink(path))
            elif stat.S_ISDIR(info.st_mode):
                found[rel] = ("dir", stat.S_IMODE(info.st_mode))
            else:
                found[rel] = ("file", path.read_bytes(), mode_of(path), info.st_mtime_ns)
    return found


def load(path: Path) -> Any:
    """The file's data, parsed by an independent reader."""
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        return json.loads(text)
    if path.suffix in (".yaml", ".yml"):
        return YAML(typ="safe").load(text)
    return tomllib.loads(text)


# ---------------------------------------------------------------------------------------------
# config.update

SAMPLES: dict[str, tuple[str, str]] = {
    "json": (
        "json",
        "{\n"
        '    "name": "agent-é",\n'
        '    "heartbeat": {\n'
        '        "interval": 60,\n'
        '        "jitter": 0.25,\n'
        '        "extra": {}\n'
        "    },\n"
        '    "zeta": true,\n'
        '    "alpha": null\n'
        "}\n",
    ),
    "json-no-final-newline": (
        "json",
        '{\n   "zeta": 1,\n   "heartbeat": {\n      "interval": 60\n   },\n   "alpha": "a"\n}',
    ),
    "yaml": (
        "yaml",
        "# AIOS agent settings\n"
        'name: "agent-é"   # quoted\n'
        "\n"
        "heartbeat:\n"
        "  # how often\n"
        "  interval: 60  # seconds\n"
        "  jitter: 0.25\n"
        "tags: [a, b]\n"
        "zeta: 'single'\n"
        "alpha: yes\n",
    ),
    "toml": (
        "toml",
        "# AIOS agent settings\n"
        'name = "agent-é"   # quoted\n'
        "\n"
        "[heartbeat]\n"
        "# how often\n"
        "interval   =   60  # seconds\n"
        "jitter = 0.25\n"
        "\n"
        "[tags]\n"
        "list = [ 1,2 ,3 ]\n",
    ),
}


def write_sample(root: Path, sample: str, *, mode: int = 0o640) -> Path:
    suffix, text = SAMPLES[sample]
    return make_file(root / "conf" / f"agent.{suffix}", text, mode=mode)


def load_text(data: bytes, sample: str) -> Any:
    """The bytes of a file in SAMPLES[sample]'s format, parsed by an independent reader."""
    suffix, _ = SAMPLES[sample]
    if suffix == "json":
        return json.loads(data)
    if suffix == "yaml":
        return YAML(typ="safe").load(data)
    return tomllib.loads(data.decode())


def changed_lines(before: str, after: str) -> list[tuple[str, str]]:
    """The (before, after) pairs of lines that differ; both texts must have as many lines."""
    old, new = before.splitlines(), after.splitlines()
    assert len(old) == len(new), f"line count changed:\n{before}\n---\n{after}"
    return [(a, b) for a, b in zip(old, new, strict=True) if a != b]


@pytest.mark.parametrize("sample", list(SAMPLES))
def test_update_sets_the_key_keeps_the_rest_and_rollback_restores_the_bytes(
    sample: str, tmp_path: Path, root: Path
) -> None:
    path = write_sample(root, sample, mode=0o640)
    before = path.read_bytes()
    ctx = make_ctx(tmp_path, (root,))
    action = ConfigUpdate(file=str(path), key="heartbeat.interval", value=120)

    undo = action.execute(ctx)

    after = path.read_bytes()
    assert load(path)["heartbeat"]["interval"] == 120
    diff = changed_lines(before.decode(), after.decode())
    assert len(diff) == 1, diff
    old_line, new_line = diff[0]
    assert "60" in old_line
    assert "120" in new_line
    assert "60" not in new_line
    if "#" in old_line:
        assert new_line.endswith("# seconds")
    assert after.endswith(b"\n") == before.endswith(b"\n")
    assert mode_of(path) == 0o640
    assert (undo["old"], undo["new"], undo["key"]) == (60, 120, "heartbeat.interval")
    backup = Path(undo["backup"])
    assert backup.parent == tmp_path / "home" / "backups" / "r1"
    assert backup.read_bytes() == before
    Event.create(type="action.completed", payload={"undo": undo})  # storable as plain JSON

    message = action.rollback(undo, ctx)

    assert path.read_bytes() == before
    assert mode_of(path) == 0o640
    assert "heartbeat.interval" in message


def test_the_seed_alias_path_names_the_key(tmp_path: Path, root: Path) -> None:
    path = write_sample(root, "json")
    action = ConfigUpdate.model_validate(
        {"file": str(path), "path": "heartbeat.interval", "value": 30}
    )
    assert action.key == "heartbeat.interval"
    action.execute(make_ctx(tmp_path, (root,)))
    assert load(path)["heartbeat"]["interval"] == 30


@pytest.mark.parametrize("sample", ["json", "yaml", "toml"])
def test_plan_shows_old_and_new_and_changes_nothing(
    sample: str, tmp_path: Path, root: Path
) -> None:
    path = write_sample(root, sample)
    before = snapshot(tmp_path)
    action = ConfigUpdate(file=str(path), key="heartbeat.interval", value=120)

    plan = action.plan(make_ctx(tmp_path, (root,)))

    assert (plan.details["old"], plan.details["new"]) == (60, 120)
    assert "60 -> 120" in plan.summary
    assert plan.targets == [str(path)]
    assert plan.reversible
    assert plan.risk is Risk.LOW
    assert snapshot(tmp_path) == before  # no write, no backup, no home directory


def test_file_comes_from_the_event_labels(tmp_path: Path, root: Path) -> None:
    path = write_sample(root, "json")
    ctx = make_ctx(tmp_path, (root,), labels={"config_file": str(path)}, payload={"interval": 90})
    action = ConfigUpdate(
        file="${labels.config_file}", key="heartbeat.interval", value="${payload.interval}"
    )

    assert action.plan(ctx).targets == [str(path)]
    undo = action.execute(ctx)

    assert undo["file"] == str(path)
    assert load(path)["heartbeat"]["interval"] == 90  # a number, not the string "90"


def test_file_template_inside_a_longer_string(tmp_path: Path, root: Path) -> None:
    path = write_sample(root, "toml")
    ctx = make_ctx(tmp_path, (root,), labels={"agent": "agent"})
    action = ConfigUpdate(
        file=f"{root}/conf/${{labels.agent}}.toml", key="heartbeat.interval", value=5
    )
    action.execute(ctx)
    assert load(path)["heartbeat"]["interval"] == 5


def test_a_missing_label_is_a_clear_error_and_changes_nothing(tmp_path: Path, root: Path) -> None:
    write_sample(root, "json")
    ctx = make_ctx(tmp_path, (root,), labels={"agent": "a1"})
    action = ConfigUpdate(file="${labels.config_file}", key="heartbeat.interval", value=1)
    before = snapshot(tmp_path)

    for step in (action.plan, action.execute):
        with pytest.raises(InputError, match=r"labels\.config_file"):
            step(ctx)

    assert snapshot(tmp_path) == before


@pytest.mark.parametrize(
    ("op", "value", "start", "bounds", "expected"),
    [
        ("multiply", 2, 40, {"max": 60}, 60),
        ("multiply", 2, 20, {"max": 60}, 40),
        ("multiply", 1.5, 40, {}, 60),
        ("multiply", 0.5, 45, {}, 22.5),
        ("add", 5, 40, {"max": 100}, 45),
        ("add", -30, 40, {"min": 15}, 15),
        ("add", 0.5, 1.5, {}, 2.0),
    ],
)
def test_add_and_multiply_with_clamps(
    op: str,
    value: float,
    start: float,
    bounds: dict[str, float],
    expected: float,
    tmp_path: Path,
    root: Path,
) -> None:
    path = make_file(root / "tool.json", json.dumps({"tool": {"timeout": start}}, indent=2))
    ctx = make_ctx(tmp_path, (root,))
    action = ConfigUpdate.model_validate(
        {"file": str(path), "key": "tool.timeout", "value": value, "op": op, **bounds}
    )

    assert action.plan(ctx).details["new"] == expected
    undo = action.execute(ctx)

    written = load(path)["tool"]["timeout"]
    assert written == expected
    assert type(written) is type(expected)  # 40 * 1.5 is written as 60, not 60.0
    assert undo["old"] == start


@pytest.mark.parametrize(
    ("current", "value"),
    [("30s", 2), (True, 2), ([1, 2], 2), (None, 2), (30, "2"), (30, True)],
)
def test_an_op_on_a_non_number_is_an_error(
    current: Any, value: Any, tmp_path: Path, root: Path
) -> None:
    path = make_file(root / "tool.json", json.dumps({"tool": {"timeout": current}}))
    before = snapshot(tmp_path)
    ctx = make_ctx(tmp_path, (root,))
    action = ConfigUpdate(file=str(path), key="tool.timeout", value=value, op="add")

    for step in (action.plan, action.execute):
        with pytest.raises(ActionError):
            step(ctx)

    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("sample", ["json", "yaml", "toml"])
def test_a_missing_key_is_an_error_unless_create(sample: str, tmp_path: Path, root: Path) -> None:
    path = write_sample(root, sample)
    original = path.read_bytes()
    before = snapshot(tmp_path)
    ctx = make_ctx(tmp_path, (root,))

    for key in ("heartbeat.grace", "watchdog.grace"):
        refused = ConfigUpdate(file=str(path), key=key, value=5)
        for step in (refused.plan, refused.execute):
            with pytest.raises(ActionError, match="not found"):
                step(ctx)
    assert snapshot(tmp_path) == before

    created = ConfigUpdate(file=str(path), key="heartbeat.grace", value=5, create=True)
    assert created.plan(ctx).details["old"] is None
    undo = created.execute(ctx)
    data = load(path)
    assert data["heartbeat"] == {**load_text(original, sample)["heartbeat"], "grace": 5}
    assert data["name"] == "agent-é"
    assert undo["old"] is None

    created.rollback(undo, ctx)
    assert path.read_bytes() == original


def test_create_makes_missing_tables(tmp_path: Path, root: Path) -> None:
    path = write_sample(root, "toml")
    ConfigUpdate(file=str(path), key="watchdog.limits.grace", value=5, create=True).execute(
        make_ctx(tmp_path, (root,))
    )
    data = load(path)
    assert data["watchdog"] == {"limits": {"grace": 5}}
    assert data["heartbeat"]["interval"] == 60


# Each builds a refused target: returns (file, allowed roots). The real file is at
# outside/agent.json (or root/agent.json where the refusal is not about where it lies).
Refusal = Callable[[Path, Path], tuple[str, tuple[Path, ...]]]


def _outside_the_roots(root: Path, outside: Path) -> tuple[str, tuple[Path, ...]]:
    return str(outside / "agent.json"), (root,)


def _dotdot_escape(root: Path, outside: Path) -> tuple[str, tuple[Path, ...]]:
    return f"{root}/conf/../../{outside.name}/agent.json", (root,)


def _symlink_to_an_outside_file(root: Path, outside: Path) -> tuple[str, tuple[Path, ...]]:
    make_link(root / "agent.json", outside / "agent.json")
    return str(root / "agent.json"), (root,)


def _symlink_to_an_inside_file(root: Path, outside: Path) -> tuple[str, tuple[Path, ...]]:
    make_file(root / "real.json", '{"heartbeat": {"interval": 60}}')
    make_link(root / "agent.json", root / "real.json")
    return str(root / "agent.json"), (root,)


def _symlinked_directory(root: Path, outside: Path) -> tuple[str, tuple[Path, ...]]:
    make_link(root / "linked", outside)
    return str(root / "linked" / "agent.json"), (root,)


def _no_allowed_roots(root: Path, outside: Path) -> tuple[str, tuple[Path, ...]]:
    make_file(root / "agent.json", '{"heartbeat": {"interval": 60}}')
    return str(root / "agent.json"), ()


def _relative_path(root: Path, outside: Path) -> tuple[str, tuple[Path, ...]]:
    make_file(root / "agent.json", '{"heartbeat": {"interval": 60}}')
    return os.path.relpath(root / "agent.json"), (root,)  # names the real file from the cwd


def _sibling_sharing_the_prefix(root: Path, outside: Path) -> tuple[str, tuple[Path, ...]]:
    evil = make_file(root.parent / f"{root.name}-evil" / "agent.json", '{"heartbeat": {}}')
    return str(evil), (root,)


REFUSALS: dict[str, Refusal] = {
    "outside the roots": _outside_the_roots,
    "dotdot escape": _dotdot_escape,
    "symlink to an outside file": _symlink_to_an_outside_file,
    "symlink to an inside file": _symlink_to_an_inside_file,
    "symlinked directory": _symlinked_directory,
    "no allowed roots": _no_allowed_roots,
    "relative path": _relative_path,
    "sibling sharing the prefix": _sibling_sharing_the_prefix,
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_update_refuses_paths_out_of_the_roots(
    case: str, tmp_path: Path, root: Path, outside: Path
) -> None:
    make_file(outside / "agent.json", '{"heartbeat": {"interval": 60}}')
    file, roots = REFUSALS[case](root, outside)
    before = snapshot(tmp_path)
    ctx = make_ctx(tmp_path, roots)
    action = ConfigUpdate(file=file, key="heartbeat.interval", value=1)

    for step in (action.plan, action.execute):
        with pytest.raises(ConfinementError):
            step(ctx)

    assert snapshot(tmp_path) == before


def test_a_hard_link_to_an_outside_file_is_replaced_not_written_through(
    tmp_path: Path, root: Path, outside: Path
) -> None:
    target = make_file(outside / "agent.json", '{"heartbeat": {"interval": 60}}\n')
    os.link(target, root / "agent.json")
    before = target.read_bytes()

    ConfigUpdate(file=str(root / "agent.json"), key="heartbeat.interval", value=1).execute(
        make_ctx(tmp_path, (root,))
    )

    assert load(root / "agent.json")["heartbeat"]["interval"] == 1
    assert target.read_bytes() == before


def test_rollback_keeps_a_later_change(tmp_path: Path, root: Path) -> None:
    path = write_sample(root, "yaml")
    original = path.read_bytes()
    ctx = make_ctx(tmp_path, (root,))
    action = ConfigUpdate(file=str(path), key="heartbeat.interval", value=120)
    undo = action.execute(ctx)
    later = path.read_bytes().replace(b"jitter: 0.25", b"jitter: 0.75")
    path.write_bytes(later)

    with pytest.raises(ActionError, match="changed after the update"):
        action.rollback(undo, ctx)

    assert path.read_bytes() == later
    assert Path(undo["backup"]).read_bytes() == original  # the original is still kept


def test_backup_of_the_same_file_by_two_remediations_is_kept_apart(
    tmp_path: Path, root: Path
) -> None:
    path = write_sample(root, "json")
    first = make_ctx(tmp_path, (root,))
    second = ActionContext(
        event=first.event, paths=first.paths, remediation_id="r2", allowed_roots=(root,)
    )
    undo1 = ConfigUpdate(file=str(path), key="heartbeat.interval", value=1).execute(first)
    undo2 = ConfigUpdate(file=str(path), key="heartbeat.interval", value=2).execute(second)
    assert Path(undo1["backup"]).parent.name == "r1"
    assert Path(undo2["backup"]).parent.name == "r2"
    assert load_text(Path(undo2["backup"]).read_bytes(), "json")["heartbeat"]["interval"] == 1


def test_the_backup_of_a_private_file_is_private(tmp_path: Path, root: Path) -> None:
    path = make_file(root / "secret.json", '{"token": "s3cret", "interval": 1}\n', mode=0o600)
    undo = ConfigUpdate(file=str(path), key="interval", value=2).execute(
        make_ctx(tmp_path, (root,))
    )
    assert mode_of(Path(undo["backup"])) & 0o077 == 0


@pytest.mark.parametrize(
    ("text", "key", "value"),
    [
        ("ratio: 0.5\n", "ratio", 0.75),
        ('name: "quoted"\n', "name", "other"),
        ("big: 1_000\n", "big", 5),
    ],
    ids=["float", "quoted string", "underscored int"],
)
def test_yaml_undo_record_is_plain_json(
    text: str, key: str, value: Any, tmp_path: Path, root: Path
) -> None:
    path = make_file(root / "agent.yaml", text)
    undo = ConfigUpdate(file=str(path), key=key, value=value).execute(make_ctx(tmp_path, (root,)))
    Event.create(type="action.completed", payload={"undo": undo})


YAML_LAYOUTS = {
    "4-space mappings": ("heartbeat:\n    interval: 60\n    jitter: 1\n", "heartbeat.interval"),
    "indented sequences": ("tags:\n  - a\n  - b\ninterval: 60\n", "interval"),
    "long line": ("interval: 60\nnote: " + " ".join(["word"] * 25) + "\n", "interval"),
    "document start": ("---\ninterval: 60\n", "interval"),
    "tilde null": ("interval: 60\nunset: ~\n", "interval"),
}


@pytest.mark.parametrize("layout", list(YAML_LAYOUTS))
def test_yaml_layout_is_kept(layout: str, tmp_path: Path, root: Path) -> None:
    text, key = YAML_LAYOUTS[layout]
    path = make_file(root / "agent.yaml", text)
    ConfigUpdate(file=str(path), key=key, value=120).execute(make_ctx(tmp_path, (root,)))
    assert path.read_text() == text.replace("interval: 60", "interval: 120")


JSON_LAYOUTS = {
    "tab indentation": '{\n\t"interval": 60,\n\t"name": "x"\n}\n',
    "inline array": '{\n  "interval": 60,\n  "tags": ["a", "b"]\n}\n',
}


@pytest.mark.parametrize("layout", list(JSON_LAYOUTS))
def test_json_layout_is_kept(layout: str, tmp_path: Path, root: Path) -> None:
    text = JSON_LAYOUTS[layout]
    path = make_file(root / "agent.json", text)
    ConfigUpdate(file=str(path), key="interval", value=120).execute(make_ctx(tmp_path, (root,)))
    assert path.read_text() == text.replace('"interval": 60', '"interval": 120')


# ---------------------------------------------------------------------------------------------
# files.cleanup


def trash_of(tmp_path: Path) -> Path:
    return tmp_path / "home" / "trash" / "r1"


def removed_paths(undo: dict[str, Any]) -> list[str]:
    return [record["path"] for record in undo["removed"]]


def test_cleanup_removes_only_old_matching_files(tmp_path: Path, root: Path) -> None:
    logs = root / "logs"
    old = make_file(logs / "old.log", "o" * 100, age_days=3)
    deep = make_file(logs / "sub" / "deep.log", "d" * 50, age_days=2)
    new = make_file(logs / "new.log", "n" * 100, age_days=0.01)
    other = make_file(logs / "old.txt", "t" * 100, age_days=3)
    upper = make_file(logs / "OLD.LOG", "u" * 100, age_days=3)  # globs are case-sensitive
    ctx = make_ctx(tmp_path, (root,))
    action = FilesCleanup(paths=[str(logs)], patterns=["*.log"], older_than="1d")

    undo = action.execute(ctx)

    assert removed_paths(undo) == [str(old), str(deep)]  # oldest first
    assert undo["bytes"] == 150
    assert not old.exists()
    assert not deep.exists()
    for kept in (new, other, upper):
        assert kept.exists()
    assert (logs / "sub").is_dir()  # directories are never removed


def test_cleanup_not_recursive_stays_in_the_directory(tmp_path: Path, root: Path) -> None:
    top = make_file(root / "a.log", "a", age_days=3)
    deep = make_file(root / "sub" / "b.log", "b", age_days=3)
    FilesCleanup(paths=[str(root)], patterns=["*.log"], recursive=False).execute(
        make_ctx(tmp_path, (root,))
    )
    assert not top.exists()
    assert deep.exists()


@pytest.mark.parametrize(
    ("caps", "removed"),
    [({"max_bytes": 250}, 2), ({"max_bytes": 300}, 3), ({"max_files": 3}, 3), ({}, 4)],
)
def test_cleanup_takes_the_oldest_first_within_the_caps(
    caps: dict[str, int], removed: int, tmp_path: Path, root: Path
) -> None:
    # names in the opposite order to the ages, so directory order cannot pass for age order
    ages = [("d", 5), ("c", 4), ("b", 3), ("a", 2)]
    files = [make_file(root / f"{name}.log", "x" * 100, age_days=age) for name, age in ages]
    ctx = make_ctx(tmp_path, (root,))
    action = FilesCleanup.model_validate({"paths": [str(root)], "patterns": ["*.log"], **caps})

    plan = action.plan(ctx)
    undo = action.execute(ctx)

    expected = [str(f) for f in files[:removed]]
    assert plan.targets == expected
    assert removed_paths(undo) == expected
    assert [f.exists() for f in files] == [False] * removed + [True] * (4 - removed)


def test_cleanup_plan_lists_files_and_bytes_and_deletes_nothing(tmp_path: Path, root: Path) -> None:
    a = make_file(root / "a.log", "a" * 10, age_days=5)
    b = make_file(root / "deep" / "b.log", "b" * 32, age_days=4)
    make_file(root / "c.log", "c" * 7, age_days=0)
    before = snapshot(tmp_path)

    plan = FilesCleanup(patterns=["*.log"], older_than="1d").plan(make_ctx(tmp_path, (root,)))

    assert plan.targets == [str(a), str(b)]
    assert plan.details["files"] == [str(a), str(b)]
    assert plan.details["bytes"] == 42
    assert "2 file(s), 42 bytes" in plan.summary
    assert plan.reversible
    assert plan.risk is Risk.LOW
    assert snapshot(tmp_path) == before


def test_trash_keeps_gzip_copies_and_rollback_restores_content_mode_and_mtime(
    tmp_path: Path, root: Path
) -> None:
    files = {
        make_file(root / "app.log", b"line\n" * 1000, age_days=5, mode=0o640): 0o640,
        make_file(root / "private.log", b"secret\n" * 10, age_days=4, mode=0o600): 0o600,
        make_file(root / "nested" / "ro.log", bytes(range(256)), age_days=3, mode=0o444): 0o444,
        make_file(root / "empty.log", b"", age_days=2, mode=0o644): 0o644,
    }
    before = {path: (path.read_bytes(), path.stat().st_mtime) for path in files}
    ctx = make_ctx(tmp_path, (root,))
    action = FilesCleanup(paths=[str(root)], patterns=["*.log"], older_than="1d")

    undo = action.execute(ctx)

    assert sorted(removed_paths(undo)) == sorted(str(p) for p in files)
    assert undo["bytes"] == sum(len(content) for content, _ in before.values())
    for record in undo["removed"]:
        path = Path(record["path"])
        kept = Path(record["kept"])
        assert not path.exists()
        assert kept.is_relative_to(trash_of(tmp_path))
        assert gzip.decompress(kept.read_bytes()) == before[path][0]
    assert (root / "nested").is_dir()
    Event.create(type="action.completed", payload={"undo": undo})  # storable as plain JSON

    message = action.rollback(undo, ctx)

    assert "restored 4 file(s)" in message
    for path, (content, mtime) in before.items():
        assert path.read_bytes() == content
        assert mode_of(path) == files[path]
        assert path.stat().st_mtime == mtime
    assert sorted(p.name for p in root.rglob("*") if p.is_file()) == sorted(
        p.name for p in files
    )  # no temporary files left behind


def test_rollback_leaves_a_recreated_file_alone(tmp_path: Path, root: Path) -> None:
    a = make_file(root / "a.log", "old a", age_days=3)
    b = make_file(root / "b.log", "old b", age_days=3)
    ctx = make_ctx(tmp_path, (root,))
    action = FilesCleanup(patterns=["*.log"])
    undo = action.execute(ctx)
    b.write_text("new b, written by the app after the cleanup")

    with pytest.raises(ActionError, match="taken by new files"):
        action.rollback(undo, ctx)

    assert a.read_text() == "old a"
    assert b.read_text() == "new b, written by the app after the cleanup"
    record = next(r for r in undo["removed"] if r["path"] == str(b))
    assert gzip.decompress(Path(record["kept"]).read_bytes()) == b"old b"  # still in the trash
    assert sorted(p.name for p in root.iterdir()) == ["a.log", "b.log"]


def test_trash_false_deletes_for_good(tmp_path: Path, root: Path) -> None:
    path = make_file(root / "a.log", "a" * 10, age_days=3)
    ctx = make_ctx(tmp_path, (root,))
    action = FilesCleanup(patterns=["*.log"], trash=False)

    plan = action.plan(ctx)
    assert not plan.reversible
    assert plan.risk is Risk.MEDIUM
    assert "delete for good" in plan.summary

    undo = action.execute(ctx)

    assert not path.exists()
    assert undo["irreversible"]
    assert not (tmp_path / "home" / "trash").exists()
    with pytest.raises(IrreversibleError):
        action.rollback(undo, ctx)
    assert not path.exists()


def test_risk_floor_depends_on_the_trash() -> None:
    assert FilesCleanup(trash=False).floor() is Risk.MEDIUM
    assert not FilesCleanup(trash=False).is_reversible()
    assert FilesCleanup().floor() is Risk.LOW
    assert FilesCleanup().is_reversible()


def test_symlinks_are_never_followed_nor_deleted(tmp_path: Path, root: Path, outside: Path) -> None:
    make_file(outside / "secret.log", "outside file", age_days=10)
    make_file(outside / "dir" / "inner.log", "outside dir file", age_days=10)
    make_file(root / "data" / "target.dat", "inside target", age_days=10)
    make_file(root / "data" / "keep" / "x.log", "inside dir file", age_days=0)
    links = [
        make_link(root / "to-outside-file.log", outside / "secret.log", age_days=10),
        make_link(root / "to-outside-dir", outside / "dir", age_days=10),
        make_link(root / "to-inside-file.log", root / "data" / "target.dat", age_days=10),
        make_link(root / "data" / "loop", root, age_days=10),
        make_link(root / "dangling.log", outside / "nothing", age_days=10),
    ]
    outside_before = snapshot(outside)
    root_before = snapshot(root)
    ctx = make_ctx(tmp_path, (root,))
    action = FilesCleanup(patterns=["*.log", "*.dat"], older_than="1d")

    plan = action.plan(ctx)
    undo = action.execute(ctx)

    assert plan.targets == [str(root / "data" / "target.dat")]
    assert removed_paths(undo) == [str(root / "data" / "target.dat")]
    assert sum("skipped symlink" in note for note in undo["notes"]) == len(links)
    for link in links:
        assert link.is_symlink()
    assert snapshot(outside) == outside_before
    del root_before["data/target.dat"]
    assert snapshot(root) == root_before


def test_hard_linked_files_are_skipped(tmp_path: Path, root: Path, outside: Path) -> None:
    twin = make_file(outside / "twin.log", "shared", age_days=10)
    inside = root / "twin.log"
    os.link(twin, inside)
    plain = make_file(root / "plain.log", "plain", age_days=10)

    undo = FilesCleanup(patterns=["*.log"]).execute(make_ctx(tmp_path, (root,)))

    assert removed_paths(undo) == [str(plain)]
    assert inside.read_text() == "shared"
    assert twin.stat().st_nlink == 2
    assert any("hard-linked" in note for note in undo["notes"])


@pytest.mark.parametrize("where", ["outside", "dotdot", "symlinked dir", "relative"])
def test_cleanup_refuses_directories_out_of_the_roots(
    where: str, tmp_path: Path, root: Path, outside: Path
) -> None:
    make_file(outside / "a.log", "a", age_days=10)
    make_link(root / "linked", outside)
    paths = {
        "outside": str(outside),
        "dotdot": f"{root}/../{outside.name}",
        "symlinked dir": str(root / "linked"),
        "relative": os.path.relpath(root),
    }
    before = snapshot(tmp_path)
    action = FilesCleanup(paths=[paths[where]], patterns=["*"])
    ctx = make_ctx(tmp_path, (root,))

    for step in (action.plan, action.execute):
        with pytest.raises(ConfinementError):
            step(ctx)

    assert snapshot(tmp_path) == before


def test_cleanup_with_no_roots_and_no_paths_is_an_error(tmp_path: Path, root: Path) -> None:
    make_file(root / "a.log", "a", age_days=10)
    with pytest.raises(ActionError, match="no allowed roots"):
        FilesCleanup().plan(make_ctx(tmp_path, ()))
    with pytest.raises(ConfinementError):
        FilesCleanup(paths=[str(root)]).execute(make_ctx(tmp_path, ()))
    assert (root / "a.log").exists()


def test_a_file_swapped_for_a_symlink_after_the_plan_is_not_followed(
    tmp_path: Path, root: Path, outside: Path
) -> None:
    secret = make_file(outside / "victim.log", "outside, must stay", age_days=10)
    path = make_file(root / "app.log", "old", age_days=10)
    ctx = make_ctx(tmp_path, (root,))
    action = FilesCleanup(patterns=["*.log"])
    assert action.plan(ctx).targets == [str(path)]

    path.unlink()
    make_link(path, secret, age_days=10)
    undo = action.execute(ctx)

    assert undo["removed"] == []
    assert path.is_symlink()
    assert secret.read_text() == "outside, must stay"


def racing_cleanup(between: Callable[[], None], **params: Any) -> FilesCleanup:
    """A files.cleanup that runs ``between`` after choosing and before removing (the race)."""

    class Racing(FilesCleanup):
        def choose(self, ctx: ActionContext) -> tuple[list[Candidate], list[str]]:
            chosen = super().choose(ctx)
            between()
            return chosen

    return Racing(**params)


def test_a_file_swapped_for_a_symlink_during_execute_is_not_followed(
    tmp_path: Path, root: Path, outside: Path
) -> None:
    secret = make_file(outside / "app.log", "outside, must stay", age_days=10)
    path = make_file(root / "app.log", "old", age_days=10)
    other = make_file(root / "other.log", "other", age_days=9)

    def swap() -> None:
        path.unlink()
        path.symlink_to(secret)

    undo = racing_cleanup(swap, patterns=["*.log"]).execute(make_ctx(tmp_path, (root,)))

    assert removed_paths(undo) == [str(other)]
    assert any("changed or gone" in note for note in undo["notes"])
    assert path.is_symlink()
    assert secret.read_text() == "outside, must stay"


def _swap_directory(root: Path, outside: Path) -> Callable[[], None]:
    def swap() -> None:
        shutil.rmtree(root / "b")
        (root / "b").symlink_to(outside)

    return swap


def _two_directories(root: Path, outside: Path) -> tuple[Path, Path]:
    first = make_file(root / "a" / "app.log", "first", age_days=10)
    second = make_file(root / "b" / "app.log", "second", age_days=9)
    make_file(outside / "app.log", "outside, must stay", age_days=10)
    return first, second


def test_a_directory_swapped_for_a_symlink_during_execute_is_not_followed(
    tmp_path: Path, root: Path, outside: Path
) -> None:
    _two_directories(root, outside)
    before = snapshot(outside)
    action = racing_cleanup(_swap_directory(root, outside), patterns=["*.log"])

    with contextlib.suppress(ActionError):
        action.execute(make_ctx(tmp_path, (root,)))

    assert snapshot(outside) == before
    assert (root / "b").is_symlink()


def test_a_directory_swapped_during_execute_still_returns_the_undo(
    tmp_path: Path, root: Path, outside: Path
) -> None:
    first, _ = _two_directories(root, outside)
    ctx = make_ctx(tmp_path, (root,))
    action = racing_cleanup(_swap_directory(root, outside), patterns=["*.log"])

    undo = action.execute(ctx)  # raises today: the removal of a/app.log is lost

    assert removed_paths(undo) == [str(first)]
    action.rollback(undo, ctx)
    assert first.read_text() == "first"


def test_omitted_paths_walk_every_allowed_root(tmp_path: Path) -> None:
    one = tmp_path / "one"
    two = tmp_path / "two"
    elsewhere = tmp_path / "elsewhere"
    a = make_file(one / "a.log", "a", age_days=3)
    b = make_file(two / "deep" / "b.log", "b", age_days=2)
    c = make_file(elsewhere / "c.log", "c", age_days=4)

    undo = FilesCleanup(patterns=["*.log"], older_than="1d").execute(make_ctx(tmp_path, (one, two)))

    assert removed_paths(undo) == [str(a), str(b)]
    assert c.exists()


def test_paths_can_come_from_the_event(tmp_path: Path, root: Path) -> None:
    path = make_file(root / "agent7" / "a.log", "a", age_days=3)
    keep = make_file(root / "agent8" / "a.log", "a", age_days=3)
    ctx = make_ctx(tmp_path, (root,), labels={"agent": "agent7"})
    undo = FilesCleanup(paths=[f"{root}/${{labels.agent}}"]).execute(ctx)
    assert removed_paths(undo) == [str(path)]
    assert keep.exists()


def test_overlapping_paths_count_each_file_once(tmp_path: Path, root: Path) -> None:
    make_file(root / "sub" / "a.log", "a" * 10, age_days=3)
    action = FilesCleanup(paths=[str(root), str(root / "sub")], patterns=["*.log"])
    plan = action.plan(make_ctx(tmp_path, (root,)))
    assert plan.targets == [str(root / "sub" / "a.log")]
    assert plan.details["bytes"] == 10


def test_rollback_restores_modes_the_umask_would_strip(tmp_path: Path, root: Path) -> None:
    path = make_file(root / "shared.log", "group writable", age_days=3, mode=0o664)
    ctx = make_ctx(tmp_path, (root,))
    action = FilesCleanup(patterns=["*.log"])
    action.rollback(action.execute(ctx), ctx)
    assert mode_of(path) == 0o664


def test_the_trash_copy_of_a_private_file_is_private(tmp_path: Path, root: Path) -> None:
    make_file(root / "private.log", "secret", age_days=3, mode=0o600)
    undo = FilesCleanup(patterns=["*.log"]).execute(make_ctx(tmp_path, (root,)))
    assert mode_of(Path(undo["removed"][0]["kept"])) & 0o077 == 0


def test_purge_trash_removes_only_old_remediation_dirs(tmp_path: Path, outside: Path) -> None:
    trash = tmp_path / "home" / "trash"
    old = make_file(trash / "r-old" / "0" / "0-a.log.gz", "x").parent.parent
    new = make_file(trash / "r-new" / "0" / "0-a.log.gz", "y").parent.parent
    stray = make_file(trash / "stray-file", "z", age_days=30)
    make_file(outside / "keep.txt", "outside", age_days=30)
    link = make_link(trash / "r-link", outside, age_days=30)
    long_ago = int(time.time() - 10 * DAY)
    os.utime(old, (long_ago, long_ago))
    os.utime(outside, (long_ago, long_ago))

    assert purge_trash(trash, 7 * DAY) == 1

    assert not old.exists()
    assert new.is_dir()
    assert stray.exists()
    assert link.is_symlink()
    assert (outside / "keep.txt").read_text() == "outside"
    assert purge_trash(tmp_path / "no-trash-here", 7 * DAY) == 0


def test_purge_trash_after_a_cleanup(tmp_path: Path, root: Path) -> None:
    make_file(root / "a.log", "a", age_days=3)
    FilesCleanup(patterns=["*.log"]).execute(make_ctx(tmp_path, (root,)))
    trash = tmp_path / "home" / "trash"
    assert purge_trash(trash, 7 * DAY) == 0
    assert trash_of(tmp_path).is_dir()
    long_ago = int(time.time() - 8 * DAY)
    os.utime(trash_of(tmp_path), (long_ago, long_ago))
    assert purge_trash(trash, 7 * DAY) == 1
    assert not trash_of(tmp_path).exists()
