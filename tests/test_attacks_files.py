"""Attacks on config.update and files.cleanup with real files: nothing outside the roots changes.

The attacker owns the allowed root (can create, rename and link anything in it), controls the
triggering event's labels and payload, and races the action: a symlink, a hard link, another
file or a FIFO put in place at the worst moment, or a directory moved out of the root while
AIOS holds it open. The race is won on purpose: a hook (an internal step of AIOS replaced by a
wrapper) makes the attacker's move at that moment; the filesystem is real. Attacks that need no
race (``..``, absolute paths, symlinks or hard links placed beforehand) are in
test_actions_files.py; these extend them.

After every attack the outside tree is compared, byte for byte and inode for inode, with what the
attacker left there, and no file of AIOS's (temporary or restored) may have appeared in it.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import re
import shutil
import stat
import threading
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from aios.actions import config_update, confine, files_cleanup
from aios.actions.base import ActionContext, ActionError, ConfinementError
from aios.actions.config_formats import MAX_CONFIG_BYTES, MAX_NODES
from aios.actions.config_update import ConfigUpdate
from aios.actions.files_cleanup import MAX_WALK_DEPTH, FilesCleanup
from aios.config import load_config
from aios.errors import ConfigError
from aios.event import check_json_value
from aios.home import HomePaths
from aios.playbooks.loader import PlaybookError, load_playbooks
from tests.test_actions_files import load, make_ctx, make_file, racing_cleanup, snapshot
from tests.test_fuzz_config_files import billion_laughs, bounded

CONFIG = b'{\n  "heartbeat": {\n    "interval": 60\n  }\n}\n'
WRITTEN = b'{\n  "heartbeat": {\n    "interval": 1\n  }\n}\n'  # what the update below writes
VICTIM = b'{\n  "heartbeat": {\n    "interval": 60\n  },\n  "owner": "outside"\n}\n'


def made(directory: Path) -> Path:
    directory.mkdir()
    return directory


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """The one allowed root; the attacker may do anything inside it."""
    return made(tmp_path / "root")


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """Next to the root: nothing here may be read into, written, deleted or created by AIOS."""
    return made(tmp_path / "outside")


def tree(top: Path) -> dict[str, tuple[object, ...]]:
    """``snapshot`` of ``top`` with each entry's inode: a file replaced by an equal copy shows."""
    return {rel: (*entry, (top / rel).lstat().st_ino) for rel, entry in snapshot(top).items()}


class Attack:
    """Replaces ``module.name`` by a wrapper that calls it, then makes the attacker's move once.

    ``when`` picks the call to strike after (by its arguments and result); ``after`` is the tree
    of the outside directory right after the move, which is what must still be there at the end.
    """

    def __init__(
        self,
        monkeypatch: pytest.MonkeyPatch,
        module: Any,
        name: str,
        move: Callable[[], None],
        outside: Path,
        when: Callable[..., bool] = lambda *args, **kwargs: True,
    ) -> None:
        self.struck = False
        self.after: dict[str, tuple[object, ...]] | None = None
        original = getattr(module, name)

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            result = original(*args, **kwargs)
            if not self.struck and when(*args, result=result, **kwargs):
                self.struck = True
                move()
                self.after = tree(outside)
            return result

        monkeypatch.setattr(module, name, wrapper)

    def check(self, outside: Path) -> None:
        """Outside is as the attacker left it. A temporary file AIOS made in a directory that
        was then moved out is AIOS's own: it must have removed it again."""
        assert self.struck, "the attack never ran: the hook point is not on the action's path"
        assert self.after is not None
        expected = {k: v for k, v in self.after.items() if ".aios-" not in Path(k).name}
        assert tree(outside) == expected, "something outside the root changed"


def leftovers(top: Path) -> list[str]:
    """AIOS's temporary files under ``top`` (none may be left behind, anywhere).

    AIOS only ever makes regular files: a symlink with such a name is the attacker's.
    """
    return sorted(
        str(p.relative_to(top))
        for p in top.rglob("*")
        if ".aios" in p.name and not p.is_symlink() and p.is_file()
    )


def within_seconds(seconds: float, step: Callable[[], Any], unblock: Callable[[], None]) -> Any:
    """Run ``step``; fail (after calling ``unblock`` to free it) if it is still stuck later."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = step()
        except BaseException as exc:  # handed to the test below
            outcome["error"] = exc

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        unblock()
        worker.join(5)
        pytest.fail(f"the action hung for {seconds}s (blocked on a FIFO)")
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


def open_fifo_writer(path: Path) -> Callable[[], None]:
    """What frees a reader blocked opening the FIFO at ``path``."""

    def unblock() -> None:
        with contextlib.suppress(OSError):
            os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))

    return unblock


# ---------------------------------------------------------------------------------------------
# config.update


@pytest.fixture
def config(root: Path) -> Path:
    return make_file(root / "conf" / "agent.json", CONFIG, mode=0o640)


def update(path: Path | str) -> ConfigUpdate:
    return ConfigUpdate(file=str(path), key="heartbeat.interval", value=1)


@pytest.mark.parametrize("kind", ["config.update", "files.cleanup"])
@pytest.mark.parametrize(
    ("directory", "labels"),
    [
        ("{root}/${{labels.agent}}", {"agent": "../outside"}),
        ("{root}/${{labels.agent}}", {"agent": "conf/../../outside"}),
        ("${{labels.dir}}", {"dir": "{outside}"}),
        ("{root}/${{labels.agent}}", {"agent": "conf\x00/../../outside"}),
    ],
    ids=["dotdot label", "dotdot inside a label", "absolute label", "nul"],
)
def test_event_data_cannot_steer_an_action_out_of_the_roots(
    kind: str,
    directory: str,
    labels: dict[str, str],
    tmp_path: Path,
    root: Path,
    outside: Path,
    config: Path,
) -> None:
    """Labels and payloads come from whoever emits the event: they are confined like the rest."""
    make_file(outside / "agent.json", VICTIM, age_days=10)
    labels = {k: v.format(outside=outside) for k, v in labels.items()}
    ctx = make_ctx(tmp_path, (root,), labels=labels)
    where = directory.format(root=root)
    action = (
        update(f"{where}/agent.json") if kind == "config.update" else FilesCleanup(paths=[where])
    )
    before = tree(outside)

    for step in (action.plan, action.execute):
        with pytest.raises(ConfinementError):
            step(ctx)

    assert tree(outside) == before
    assert config.read_bytes() == CONFIG


def _fifo(path: Path, outside: Path) -> None:
    os.mkfifo(path)


def _directory(path: Path, outside: Path) -> None:
    (path / "inner").mkdir(parents=True)


def _symlink_to_an_outside_directory(path: Path, outside: Path) -> None:
    (outside / "dir").mkdir()
    path.symlink_to(outside / "dir")


@pytest.mark.parametrize(
    "make", [_fifo, _directory, _symlink_to_an_outside_directory], ids=lambda f: f.__name__[1:]
)
def test_config_update_refuses_what_is_not_a_regular_file_without_hanging(
    make: Callable[[Path, Path], None], tmp_path: Path, root: Path, outside: Path
) -> None:
    path = root / "agent.json"
    make(path, outside)
    ctx = make_ctx(tmp_path, (root,))
    before = tree(outside)
    kind = stat.S_IFMT(path.lstat().st_mode)

    action = update(path)
    for step in (action.plan, action.execute):
        with pytest.raises(ActionError, match=re.escape(str(path))):
            within_seconds(5, partial(step, ctx), open_fifo_writer(path))

    assert tree(outside) == before
    assert stat.S_IFMT(path.lstat().st_mode) == kind
    assert not (tmp_path / "home" / "backups").exists()


def test_a_symlink_swapped_in_between_plan_and_execute_is_not_followed(
    tmp_path: Path, root: Path, outside: Path, config: Path
) -> None:
    victim = make_file(outside / "agent.json", VICTIM)
    ctx = make_ctx(tmp_path, (root,))
    action = update(config)
    assert action.plan(ctx).details["old"] == 60
    config.unlink()
    config.symlink_to(victim)
    before = tree(outside)

    with pytest.raises(ConfinementError, match="symlink"):
        action.execute(ctx)

    assert tree(outside) == before
    assert config.is_symlink()


def _file_to_symlink(config: Path, outside: Path) -> None:
    config.unlink()
    config.symlink_to(outside / "agent.json")


def _file_to_hard_link(config: Path, outside: Path) -> None:
    config.unlink()
    os.link(outside / "agent.json", config)


def _file_replaced(config: Path, outside: Path) -> None:
    newer = config.with_name("newer.json")
    newer.write_bytes(b'{"heartbeat": {"interval": 30}, "by": "the app"}\n')
    newer.replace(config)


def _file_edited_in_place(config: Path, outside: Path) -> None:
    with config.open("ab") as handle:
        handle.write(b"\n")


def _directory_moved_out(config: Path, outside: Path) -> None:
    config.parent.rename(outside / "conf")


def _directory_moved_out_and_linked(config: Path, outside: Path) -> None:
    config.parent.rename(outside / "conf")
    config.parent.symlink_to(outside / "conf")


MID_UPDATE = [
    _file_to_symlink,
    _file_to_hard_link,
    _file_replaced,
    _file_edited_in_place,
    _directory_moved_out,
    _directory_moved_out_and_linked,
]


@pytest.mark.parametrize("move", MID_UPDATE, ids=lambda f: f.__name__[1:])
@pytest.mark.parametrize("during", ["update", "rollback"])
def test_a_swap_after_the_read_and_before_the_write_is_refused(
    during: str,
    move: Callable[[Path, Path], None],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    root: Path,
    outside: Path,
    config: Path,
) -> None:
    # Before a rollback the outside file holds what the update wrote, so a rollback that
    # followed a link to it would find "its" bytes there and go ahead.
    make_file(outside / "agent.json", VICTIM if during == "update" else WRITTEN)
    ctx = make_ctx(tmp_path, (root,))
    action = update(config)
    undo = action.execute(ctx) if during == "rollback" else None
    attack = Attack(monkeypatch, config_update, "read_all", lambda: move(config, outside), outside)

    with pytest.raises(ActionError, match=re.escape(str(config))):
        action.execute(ctx) if undo is None else action.rollback(undo, ctx)

    attack.check(outside)
    assert leftovers(tmp_path) == []
    if undo is not None:
        assert Path(undo["backup"]).read_bytes() == CONFIG  # the original is kept for a person


@pytest.mark.parametrize(
    "move",
    [_file_to_symlink, _directory_moved_out_and_linked],
    ids=["file became a symlink", "directory became a symlink"],
)
def test_rollback_refuses_a_path_that_leads_out_since_the_update(
    move: Callable[[Path, Path], None], tmp_path: Path, root: Path, outside: Path, config: Path
) -> None:
    # The outside file holds exactly what the update wrote, so a rollback that followed the
    # link would find "its" bytes there and overwrite them with the backup.
    make_file(outside / "agent.json", WRITTEN)
    ctx = make_ctx(tmp_path, (root,))
    action = update(config)
    undo = action.execute(ctx)
    move(config, outside)  # a moved directory takes the updated file, WRITTEN, with it
    before = tree(outside)

    with pytest.raises(ConfinementError, match="symlink"):
        action.rollback(undo, ctx)

    assert tree(outside) == before


def test_a_hard_link_to_an_outside_file_survives_update_and_rollback(
    tmp_path: Path, root: Path, outside: Path
) -> None:
    victim = make_file(outside / "agent.json", VICTIM)
    inside = root / "agent.json"
    os.link(victim, inside)
    before = tree(outside)
    ctx = make_ctx(tmp_path, (root,))
    action = update(inside)

    undo = action.execute(ctx)

    assert tree(outside) == before
    assert inside.stat().st_ino != victim.stat().st_ino  # the link was replaced, not written
    assert load(inside)["heartbeat"]["interval"] == 1
    action.rollback(undo, ctx)
    assert tree(outside) == before
    assert inside.read_bytes() == VICTIM
    assert inside.stat().st_ino != victim.stat().st_ino


def test_rollback_through_a_hard_link_made_after_the_update_leaves_the_outside_file(
    tmp_path: Path, root: Path, outside: Path, config: Path
) -> None:
    # The link's content matches what the update wrote, so the rollback goes ahead: it must
    # replace the link, never write the backup into the outside inode.
    victim = make_file(outside / "agent.json", WRITTEN)
    ctx = make_ctx(tmp_path, (root,))
    action = update(config)
    undo = action.execute(ctx)
    config.unlink()
    os.link(victim, config)
    before = tree(outside)

    action.rollback(undo, ctx)

    assert tree(outside) == before
    assert config.read_bytes() == CONFIG


def test_a_planted_temporary_name_does_not_redirect_the_write(
    tmp_path: Path, root: Path, outside: Path, config: Path
) -> None:
    victim = make_file(outside / "agent.json", VICTIM)
    # The name the write's temporary file would have if it were predictable from the pid.
    (config.parent / f".agent.json.aios-{os.getpid()}.tmp").symlink_to(victim)
    before = tree(outside)

    update(config).execute(make_ctx(tmp_path, (root,)))

    assert tree(outside) == before
    assert load(config)["heartbeat"]["interval"] == 1


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to own files as another user")
def test_the_owner_of_the_file_is_kept_when_aios_runs_as_root(
    tmp_path: Path, root: Path, config: Path
) -> None:
    """Otherwise the agent could no longer read its own config, and AIOS would own it."""
    os.chown(config, 65534, 65534)
    config.chmod(0o600)
    ctx = make_ctx(tmp_path, (root,))
    action = update(config)

    undo = action.execute(ctx)
    info = config.stat()
    assert (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)) == (65534, 65534, 0o600)

    action.rollback(undo, ctx)
    info = config.stat()
    assert (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)) == (65534, 65534, 0o600)
    assert config.read_bytes() == CONFIG


def test_rollback_refuses_a_directory_moved_out_since_the_update(
    tmp_path: Path, root: Path, outside: Path, config: Path
) -> None:
    """Its path now leads nowhere in the root: the moved file (now outside) is not written."""
    ctx = make_ctx(tmp_path, (root,))
    action = update(config)
    undo = action.execute(ctx)
    config.parent.rename(outside / "conf")
    before = tree(outside)

    with pytest.raises(ConfinementError, match=re.escape(str(config))):
        action.rollback(undo, ctx)

    assert tree(outside) == before
    assert (outside / "conf" / "agent.json").read_bytes() == WRITTEN


# Config files the agent wrote to hurt the reactor: each is refused with an ActionError naming
# the file, and nothing is written (no new file, no backup).


def refused_without_writing(path: Path, tmp_path: Path, root: Path, **params: Any) -> str:
    """Plan and execute ``config.update`` on ``path``: both must raise ActionError naming it,
    and the file must keep its bytes, inode and times. Returns the execute's message."""
    before = path.lstat()
    data = path.read_bytes()
    ctx = make_ctx(tmp_path, (root,))
    action = ConfigUpdate(file=str(path), **{"key": "heartbeat.interval", "value": 1, **params})
    with pytest.raises(ActionError) as planned:
        action.plan(ctx)
    with pytest.raises(ActionError) as executed:
        action.execute(ctx)
    for error in (planned, executed):
        assert str(path) in str(error.value)
    after = path.lstat()
    assert path.read_bytes() == data
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]
    assert not list(ctx.paths.backups.rglob("*-*")), "a backup was written"
    return str(executed.value)


def test_an_alias_bomb_in_the_config_file_is_refused_quickly_in_little_memory(
    tmp_path: Path, root: Path
) -> None:
    path = make_file(root / "conf" / "agent.yaml", billion_laughs(8))  # 43 million strings
    assert path.stat().st_size < 500
    with bounded(5, 20):
        message = refused_without_writing(path, tmp_path, root)
    assert f"more than {MAX_NODES} keys and values" in message


def _oversized(root: Path) -> Path:
    padding = b" " * MAX_CONFIG_BYTES
    return make_file(root / "conf" / "agent.json", b'{"heartbeat": {"interval": 60}}' + padding)


HOSTILE_FILES: dict[str, tuple[str, bytes, str]] = {
    # what: (file name, content, what the error says)
    "larger than the cap": ("agent.json", b"", f"larger than {MAX_CONFIG_BYTES} bytes"),
    "JSON nested 5000 deep": (
        "agent.json",
        b'{"heartbeat": {"interval": 60}, "x": ' + b"[" * 5000 + b"]" * 5000 + b"}",
        "nested deeper than 100 levels",
    ),
    "JSON nested 150 deep": (
        "agent.json",
        b'{"heartbeat": {"interval": 60}, "x": ' + b"[" * 150 + b"]" * 150 + b"}",
        "nested deeper than 100 levels",
    ),
    "YAML nested 5000 deep": (
        "agent.yaml",
        b"heartbeat: {interval: 60}\nx: " + b"[" * 5000 + b"]" * 5000 + b"\n",
        "nested deeper than 100 levels",
    ),
    "YAML alias to itself": (
        "agent.yaml",
        b"heartbeat: {interval: 60}\nx: &x [1, *x]\n",
        "alias *x refers to a node that contains it",
    ),
    "JSON integer of 5000 digits": (
        "agent.json",
        b'{"heartbeat": {"interval": 60}, "x": ' + b"7" * 5000 + b"}",
        "4300 digits",
    ),
    "YAML integer of 5000 digits": (
        "agent.yaml",
        b"heartbeat: {interval: 60}\nx: " + b"7" * 5000 + b"\n",
        "4300 digits",
    ),
    "YAML timestamp that is no date": (
        "agent.yaml",
        b"heartbeat: {interval: 60}\nx: !!timestamp 2024-13-45\n",
        "not valid YAML",
    ),
    "YAML omap of a scalar": (
        "agent.yaml",
        b"heartbeat: {interval: 60}\nx: !!omap 1\n",
        "not valid YAML",
    ),
    "YAML omap with a key twice": (
        "agent.yaml",
        b"heartbeat: {interval: 60}\nx: !!omap [a: 1, a: 2]\n",
        "not valid YAML",
    ),
    "YAML bool that is none": (
        "agent.yaml",
        b"heartbeat: {interval: 60}\nx: !!bool maybe\n",
        "not valid YAML",
    ),
    "not UTF-8": ("agent.json", b'{"heartbeat": {"interval": 60}, "x": "\xff"}', "not UTF-8"),
}


@pytest.mark.parametrize("what", list(HOSTILE_FILES))
def test_a_hostile_config_file_is_refused_naming_it_and_nothing_is_written(
    what: str, tmp_path: Path, root: Path
) -> None:
    name, content, says = HOSTILE_FILES[what]
    if what == "larger than the cap":
        path = _oversized(root)
    else:
        path = make_file(root / "conf" / name, content)

    message = refused_without_writing(path, tmp_path, root)

    assert says in message


@pytest.mark.parametrize(
    ("content", "op", "value", "says"),
    [
        (b"heartbeat:\n  interval: " + b"9" * 400 + b"\n", "multiply", 2.5, "too large for a"),
        (b"heartbeat:\n  interval: " + b"9" * 400 + b"\n", "add", 0.5, "too large for a"),
        (b"heartbeat:\n  interval: " + b"9" * 400 + b"\n", "add", 1, "signed 64-bit range"),
        (b"heartbeat:\n  interval: 9223372036854775807\n", "multiply", 2, "signed 64-bit range"),
        (b"heartbeat:\n  interval: .nan\n", "add", 1, "not a finite number"),
        (b"heartbeat:\n  interval: .inf\n", "multiply", 2, "not a finite number"),
        (b"heartbeat:\n  interval: 1.0e308\n", "multiply", 10, "not a finite number"),
    ],
    ids=["huge*float", "huge+float", "huge+int", "past 64 bits", "nan", "inf", "overflows"],
)
def test_an_op_whose_result_is_no_finite_number_in_range_writes_nothing(
    content: bytes, op: str, value: float, says: str, tmp_path: Path, root: Path
) -> None:
    path = make_file(root / "conf" / "agent.yaml", content)

    message = refused_without_writing(path, tmp_path, root, op=op, value=value)

    assert says in message


def test_an_old_value_events_cannot_carry_is_recorded_as_text(tmp_path: Path, root: Path) -> None:
    """A NaN or a huge integer read from the file must not keep the plan or the undo record
    out of the event log."""
    path = make_file(root / "conf" / "agent.yaml", b"heartbeat:\n  interval: .nan\n")
    ctx = make_ctx(tmp_path, (root,))
    action = ConfigUpdate(file=str(path), key="heartbeat.interval", value=60)

    plan = action.plan(ctx).to_dict()
    undo = action.execute(ctx)

    check_json_value(plan, "plan")
    check_json_value(undo, "undo")
    assert undo["old"] == "nan"
    assert path.read_text() == "heartbeat:\n  interval: 60\n"
    action.rollback(undo, ctx)
    assert path.read_text() == "heartbeat:\n  interval: .nan\n"


PLAYBOOK = """\
id: raise_timeout
trigger: {{type: task.failed}}
actions:
  - type: config.update
    file: /srv/agent/config.yaml
    key: tools.timeout_s
    op: multiply
{params}
"""


@pytest.mark.parametrize(
    ("params", "field", "line"),
    [
        ("    value: 2\n    max: .nan\n", "actions[0].max", 9),
        ("    value: 2\n    min: -.inf\n", "actions[0].min", 9),
        ("    value: .nan\n", "actions[0].value", 8),
        ("    value: {a: [1, .inf]}\n", "actions[0].value", 8),
    ],
    ids=["max nan", "min -inf", "value nan", "value nested inf"],
)
def test_a_playbook_with_a_non_finite_number_does_not_load(
    params: str, field: str, line: int, tmp_path: Path
) -> None:
    """max: .nan would turn the limit off (min(nan, 300) is nan), and NaN would be written."""
    path = tmp_path / "raise_timeout.yaml"
    path.write_text(PLAYBOOK.format(params=params))

    with pytest.raises(PlaybookError) as error:
        load_playbooks([path])

    problem = error.value.problems[0]
    assert (problem.file, problem.line, problem.field) == (str(path), line, field)
    assert "finite" in problem.message


# ---------------------------------------------------------------------------------------------
# files.cleanup

OLD = 10.0  # days: every file below is old enough to be chosen


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to own files as another user")
def test_a_file_put_back_from_the_trash_keeps_its_owner_when_aios_runs_as_root(
    tmp_path: Path, root: Path
) -> None:
    path = make_file(root / "app.log", "the agent's log", age_days=OLD, mode=0o640)
    os.chown(path, 65534, 65534)
    ctx = make_ctx(tmp_path, (root,))
    action = FilesCleanup(patterns=["*.log"])

    action.rollback(action.execute(ctx), ctx)

    info = path.stat()
    assert (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)) == (65534, 65534, 0o640)


@pytest.mark.parametrize("pattern", ["../*.log", "logs/*.log", "/etc/*", "..", ".", "a\x00b"])
def test_patterns_are_file_names_not_paths(pattern: str) -> None:
    with pytest.raises(ValidationError, match="pattern"):
        FilesCleanup(patterns=["*.log", pattern])


def _two_logs(root: Path, outside: Path) -> None:
    make_file(root / "a" / "app.log", "inside a", age_days=OLD)
    make_file(root / "b" / "app.log", "inside b", age_days=OLD)
    make_file(outside / "app.log", "outside", age_days=OLD)
    make_file(outside / "b-elsewhere" / "app.log", "outside, in a directory", age_days=OLD)


def opening_directory(name: str) -> Callable[..., bool]:
    """Strike when the walk opens the subdirectory ``name``."""
    return lambda dir_fd, entry, *args, **kwargs: entry == name


@pytest.mark.parametrize("linked", [False, True], ids=["moved out", "moved out and linked"])
def test_a_directory_moved_out_of_the_root_during_the_walk_is_not_cleaned(
    linked: bool,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    root: Path,
    outside: Path,
) -> None:
    """The walk holds ``b`` open when it leaves the root: what is in it is outside now."""
    _two_logs(root, outside)

    def move() -> None:
        (root / "b").rename(outside / "b")
        if linked:
            (root / "b").symlink_to(outside / "b")

    attack = Attack(
        monkeypatch, files_cleanup, "open_file", move, outside, when=opening_directory("b")
    )
    undo = FilesCleanup(patterns=["*.log"]).execute(make_ctx(tmp_path, (root,)))

    attack.check(outside)
    assert [r["path"] for r in undo["removed"]] == [str(root / "a" / "app.log")]


def test_a_directory_swapped_for_a_symlink_just_before_the_walk_enters_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, root: Path, outside: Path
) -> None:
    _two_logs(root, outside)
    original = confine.open_file

    def swap_then_open(dir_fd: int, name: str, *args: Any, **kwargs: Any) -> int:
        if name == "b" and not (root / "b").is_symlink():
            shutil.rmtree(root / "b")
            (root / "b").symlink_to(outside / "b-elsewhere")
        return original(dir_fd, name, *args, **kwargs)

    monkeypatch.setattr(files_cleanup, "open_file", swap_then_open)
    before = tree(outside)

    undo = FilesCleanup(patterns=["*.log"]).execute(make_ctx(tmp_path, (root,)))

    assert tree(outside) == before
    assert [r["path"] for r in undo["removed"]] == [str(root / "a" / "app.log")]
    assert any(str(root / "b") in note for note in undo["notes"])


def _parent_moved_out(path: Path, outside: Path) -> None:
    path.parent.rename(outside / "moved")


def _parent_moved_out_and_linked(path: Path, outside: Path) -> None:
    path.parent.rename(outside / "moved")
    path.parent.symlink_to(outside / "moved")


def _name_now_a_hard_link_outside(path: Path, outside: Path) -> None:
    spare = path.with_name("spare")
    os.link(outside / "app.log", spare)
    spare.replace(path)  # the chosen file is gone; its name is a link to the outside file


def _name_now_another_file(path: Path, outside: Path) -> None:
    spare = path.with_name("spare")
    spare.write_text("written after the choice")
    spare.replace(path)


@pytest.mark.parametrize(
    "move",
    [
        _parent_moved_out,
        _parent_moved_out_and_linked,
        _name_now_a_hard_link_outside,
        _name_now_another_file,
    ],
    ids=lambda f: f.__name__[1:],
)
def test_a_swap_after_the_check_and_before_the_unlink_removes_nothing_else(
    move: Callable[[Path, Path], None],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    root: Path,
    outside: Path,
) -> None:
    """The trash copy is written between the check and the unlink: the attacker strikes then."""
    chosen = make_file(root / "logs" / "app.log", "chosen", age_days=OLD)
    make_file(outside / "app.log", "outside", age_days=OLD)
    attack = Attack(
        monkeypatch, files_cleanup, "_keep_compressed", lambda: move(chosen, outside), outside
    )
    ctx = make_ctx(tmp_path, (root,))

    undo = FilesCleanup(patterns=["*.log"]).execute(ctx)

    attack.check(outside)
    assert undo["removed"] == []
    assert any("changed or gone" in note for note in undo["notes"])
    if chosen.parent.is_dir() and not chosen.parent.is_symlink():
        assert chosen.exists() or chosen.is_symlink()  # whatever is there now, left alone
    assert not list((tmp_path / "home" / "trash").rglob("*.gz"))  # no copy of what was kept


def test_a_hard_link_made_after_the_choice_keeps_the_file(
    tmp_path: Path, root: Path, outside: Path
) -> None:
    chosen = make_file(root / "app.log", "chosen", age_days=OLD)

    def link_out() -> None:
        os.link(chosen, outside / "twin.log")

    undo = racing_cleanup(link_out, patterns=["*.log"]).execute(make_ctx(tmp_path, (root,)))

    assert undo["removed"] == []
    assert chosen.read_text() == "chosen"
    assert (outside / "twin.log").read_text() == "chosen"
    assert chosen.stat().st_nlink == 2


def test_a_fifo_swapped_in_after_the_choice_does_not_hang_the_cleanup(
    tmp_path: Path, root: Path
) -> None:
    chosen = make_file(root / "app.log", "chosen", age_days=OLD)
    other = make_file(root / "other.log", "other", age_days=OLD)

    def to_fifo() -> None:
        chosen.unlink()
        os.mkfifo(chosen)

    action = racing_cleanup(to_fifo, patterns=["*.log"])
    undo = within_seconds(
        5, lambda: action.execute(make_ctx(tmp_path, (root,))), open_fifo_writer(chosen)
    )

    assert [r["path"] for r in undo["removed"]] == [str(other)]
    assert stat.S_ISFIFO(chosen.lstat().st_mode)


@pytest.fixture
def cleaned(tmp_path: Path, root: Path) -> tuple[FilesCleanup, ActionContext, dict[str, Any]]:
    """Two files in two directories, cleaned into the trash: ready for a rollback."""
    make_file(root / "a" / "app.log", "first", age_days=OLD)
    make_file(root / "b" / "app.log", "second", age_days=OLD - 1)
    ctx = make_ctx(tmp_path, (root,))
    action = FilesCleanup(patterns=["*.log"])
    undo = action.execute(ctx)
    assert len(undo["removed"]) == 2
    return action, ctx, undo


def _directory_now_a_symlink(root: Path, outside: Path) -> None:
    shutil.rmtree(root / "a")
    (root / "a").symlink_to(outside)


def _name_now_a_symlink(root: Path, outside: Path) -> None:
    (root / "a" / "app.log").symlink_to(outside / "app.log")


def _temporary_name_planted(root: Path, outside: Path) -> None:
    # The name the restore's temporary file would have if it were predictable from the pid.
    (root / "a" / f".app.log.aios-restore-{os.getpid()}").symlink_to(outside / "app.log")


@pytest.mark.parametrize(
    ("prepare", "refused"),
    [
        (_directory_now_a_symlink, True),
        (_name_now_a_symlink, True),
        (_temporary_name_planted, False),
    ],
    ids=["directory now a symlink", "name now a symlink", "temporary name planted"],
)
def test_rollback_into_a_path_that_leads_out_since_writes_nothing_outside(
    prepare: Callable[[Path, Path], None],
    refused: bool,
    cleaned: tuple[FilesCleanup, ActionContext, dict[str, Any]],
    tmp_path: Path,
    root: Path,
    outside: Path,
) -> None:
    action, ctx, undo = cleaned
    make_file(outside / "app.log", "outside", age_days=OLD)
    prepare(root, outside)
    before = tree(outside)
    restored = root / "a" / "app.log"

    if refused:
        with pytest.raises(ActionError, match="restored 1 file") as error:
            action.rollback(undo, ctx)
        assert str(restored) in str(error.value)
    else:
        action.rollback(undo, ctx)
        assert restored.read_text() == "first"

    assert tree(outside) == before
    assert (root / "b" / "app.log").read_text() == "second"  # the rest is still restored
    assert leftovers(tmp_path) == []


def _temporary_to_symlink(directory: Path, outside: Path) -> None:
    [temporary] = [p for p in directory.iterdir() if ".aios" in p.name]
    temporary.unlink()
    temporary.symlink_to(outside / "app.log")


def _temporary_to_hard_link(directory: Path, outside: Path) -> None:
    [temporary] = [p for p in directory.iterdir() if ".aios" in p.name]
    temporary.unlink()
    os.link(outside / "app.log", temporary)


def _restore_directory_moved_out(directory: Path, outside: Path) -> None:
    directory.rename(outside / "moved")
    directory.symlink_to(outside / "moved")


@pytest.mark.parametrize(
    "move",
    [_temporary_to_symlink, _temporary_to_hard_link, _restore_directory_moved_out],
    ids=lambda f: f.__name__[1:],
)
def test_a_swap_while_a_file_is_restored_puts_nothing_outside_and_links_nothing_in(
    move: Callable[[Path, Path], None],
    cleaned: tuple[FilesCleanup, ActionContext, dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    root: Path,
    outside: Path,
) -> None:
    action, ctx, undo = cleaned
    victim = make_file(outside / "app.log", "outside", age_days=OLD)
    attack = Attack(
        monkeypatch,
        files_cleanup,
        "_copy_from_trash",
        lambda: move(root / "a", outside),
        outside,
    )

    with pytest.raises(ActionError, match=re.escape(str(root / "a" / "app.log"))):
        action.rollback(undo, ctx)

    attack.check(outside)
    restored = root / "a" / "app.log"
    if restored.exists():
        assert restored.lstat().st_ino != victim.stat().st_ino, "linked an outside file in"
    assert victim.stat().st_nlink == 1 + int(move is _temporary_to_hard_link)
    assert (root / "b" / "app.log").read_text() == "second"
    kept = next(r["kept"] for r in undo["removed"] if r["path"] == str(restored))
    assert gzip.decompress(Path(kept).read_bytes()) == b"first"  # still in the trash


def test_confine_refuses_a_nul_byte_by_name() -> None:
    with pytest.raises(ConfinementError, match="NUL"):
        confine.find_root("/srv/root/a\x00b", (Path("/srv/root"),))


def nested_directories(top: Path, depth: int) -> Path:
    """``top/d/d/.../d``, ``depth`` levels below ``top`` (made through descriptors: the path
    grows past what one system call may take)."""
    fd = os.open(top, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for _ in range(depth):
            os.mkdir("d", dir_fd=fd)
            child = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = child
    finally:
        os.close(fd)
    return top.joinpath(*["d"] * depth)


def remove_nested(top: Path) -> None:
    """Remove the chain ``top/d/d/...`` a level at a time: shutil.rmtree (and so pytest's
    clean-up of old temporary directories) recurses once per level and would fail on it."""
    chain, lifted = top / "d", top / "lifted"
    while chain.is_dir():
        if (chain / "d").is_dir():
            (chain / "d").rename(lifted)
        shutil.rmtree(chain)
        if lifted.is_dir():
            lifted.rename(chain)


@pytest.fixture
def deep_root(root: Path) -> Iterator[Path]:
    """The root with 1200 nested directories in it, removed again afterwards."""
    nested_directories(root, 1200)
    yield root
    remove_nested(root)


def open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_a_tree_too_deep_to_walk_is_skipped_and_the_rest_is_cleaned(
    tmp_path: Path, deep_root: Path
) -> None:
    """1200 nested directories used to stop every cleanup of the root with a RecursionError."""
    root = deep_root
    shallow = make_file(root / "app.log", "top", age_days=OLD)
    walked = make_file(root.joinpath(*["d"] * MAX_WALK_DEPTH, "app.log"), "deep", age_days=OLD)
    beyond = root.joinpath(*["d"] * (MAX_WALK_DEPTH + 1))
    make_file(beyond / "app.log", "beyond", age_days=OLD)
    ctx = make_ctx(tmp_path, (root,))
    action = FilesCleanup(patterns=["*.log"])
    before = open_descriptors()

    plan = action.plan(ctx)
    undo = action.execute(ctx)

    assert open_descriptors() == before
    assert sorted(r["path"] for r in undo["removed"]) == sorted([str(walked), str(shallow)])
    assert plan.targets == [r["path"] for r in undo["removed"]]
    [note] = [n for n in undo["notes"] if "deep" in n]
    assert note.startswith(f"skipped {beyond}: more than {MAX_WALK_DEPTH} directories deep")
    assert (beyond / "app.log").exists()
    action.rollback(undo, ctx)
    assert walked.read_text() == "deep"


def test_a_file_gone_between_listing_and_reading_is_skipped_and_the_rest_cleaned(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A log rotated away while the directory is read used to stop the whole cleanup."""
    from aios.actions import files_cleanup

    root = tmp_path / "root"
    rotated = make_file(root / "a.log", "rotated", age_days=OLD)
    kept = make_file(root / "b.log", "old", age_days=OLD)
    real = files_cleanup._kind_of

    def rotating(entry: Any) -> str:
        if entry.name == rotated.name and rotated.exists():
            rotated.unlink()  # rotated away after the listing, before the stat
        return real(entry)

    monkeypatch.setattr(files_cleanup, "_kind_of", rotating)
    ctx = make_ctx(tmp_path, (root,))
    undo = FilesCleanup(patterns=["*.log"]).execute(ctx)
    assert [r["path"] for r in undo["removed"]] == [str(kept)]
    assert any(n.startswith(f"skipped {rotated}") for n in undo["notes"]), undo["notes"]


@pytest.mark.parametrize("spelling", ["/tmp/..", "//", "/./", "/tmp/../.."])
def test_a_spelling_of_slash_is_refused_as_an_allowed_root(
    spelling: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """find_root resolves the roots: any of these would make the whole filesystem a root."""
    monkeypatch.delenv("AIOS_REACTOR__ALLOWED_ROOTS", raising=False)
    home = HomePaths(tmp_path / "home")
    home.root.mkdir()
    home.config.write_text(f'[reactor]\nallowed_roots = ["{spelling}"]\n')

    with pytest.raises(ConfigError) as error:
        load_config(home)

    assert error.value.key is not None and "allowed_roots" in error.value.key
    assert "/ cannot be an allowed root" in str(error.value)
    assert str(home.config) in str(error.value)


def test_a_root_that_resolves_to_slash_confines_nothing(tmp_path: Path) -> None:
    link = tmp_path / "everything"
    link.symlink_to("/")
    for root in (Path("/tmp/.."), link):
        with pytest.raises(ConfinementError, match="cannot be an allowed root"):
            confine.find_root("/etc/passwd", (root,))
