"""command.run with values from events: a label may fill an argument, never turn into an option
(``-rf``) or a pattern (``*``) of the program run. Real child processes, real files."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from aios.actions.base import ActionError
from aios.actions.simple_actions import CommandRun
from tests.test_actions_files import make_ctx

# Writes its arguments, one per line, to the file named by the first.
WRITE_ARGS = "import sys; open(sys.argv[1], 'w').write('\\n'.join(sys.argv[2:]))"


def test_a_label_fills_an_argument(tmp_path: Path) -> None:
    out = tmp_path / "args.txt"
    argv = [sys.executable, "-c", WRITE_ARGS, str(out), "${labels.agent}", "--name=${labels.agent}"]
    action = CommandRun(argv=argv)

    result = action.execute(make_ctx(tmp_path, (), labels={"agent": "writer"}))

    assert result["exit_code"] == 0
    assert out.read_text().splitlines() == ["writer", "--name=writer"]


@pytest.mark.parametrize("label", ["-rf", "--all", "*", "writer*", "w?iter", "[a-z]", "a]b"])
def test_a_label_that_is_an_option_or_a_pattern_is_refused(tmp_path: Path, label: str) -> None:
    out = tmp_path / "args.txt"
    action = CommandRun(argv=[sys.executable, "-c", WRITE_ARGS, str(out), "${labels.agent}"])
    ctx = make_ctx(tmp_path, (), labels={"agent": label})

    with pytest.raises(ActionError, match=r"\$\{labels.agent\}") as caught:
        action.plan(ctx)
    assert repr(label) in str(caught.value)
    with pytest.raises(ActionError, match=r"may not start with '-' or hold \* \? \[ \]"):
        action.execute(ctx)
    assert not out.exists(), "the command ran with the refused argument"


def test_a_refused_undo_argument_stops_the_command_before_it_runs(tmp_path: Path) -> None:
    """The undo is checked first: nothing runs that could not be undone as written."""
    out = tmp_path / "args.txt"
    action = CommandRun(
        argv=[sys.executable, "-c", WRITE_ARGS, str(out), "done"],
        undo=[sys.executable, "-c", WRITE_ARGS, str(out), "${labels.agent}"],
    )

    with pytest.raises(ActionError, match="may not start with '-'"):
        action.execute(make_ctx(tmp_path, (), labels={"agent": "-f"}))
    assert not out.exists()


def test_options_the_playbook_writes_itself_stay_allowed(tmp_path: Path) -> None:
    """Only values from the event are checked; the playbook is trusted."""
    out = tmp_path / "args.txt"
    action = CommandRun(argv=[sys.executable, "-c", WRITE_ARGS, str(out), "-v", "*.log"])

    action.execute(make_ctx(tmp_path, ()))

    assert out.read_text().splitlines() == ["-v", "*.log"]
