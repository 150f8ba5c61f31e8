"""process.kill, process.signal and process.renice against real child processes (no mocks).

Every child runs ``python -c <code> <marker> ...``: the marker (unique per test) is an extra
argv element, so it shows in the command line and globs built on it only ever match this test's
own children. Agents carry ``aios-test-agent-<uid>-<role>`` (matched by the context's
``agent_patterns``); bystanders carry ``aios-test-bystander-<uid>-<role>`` (not agents).

Each child is started through a small "reaper" parent whose own command line holds no marker.
The reaper waits for the child and prints its exit status, which is how a test can tell SIGTERM
from SIGKILL: if the child were our own direct child, psutil's ``wait_procs`` inside
``process.kill`` would reap it and ``Popen.returncode`` would read 0. The reaper also kills its
child as soon as its stdin closes, so no child outlives the test, even if pytest itself dies.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from pydantic import ValidationError

from aios.actions.base import ActionContext, ActionError, IrreversibleError, Risk
from aios.actions.process_actions import ProcessKill, ProcessRenice, ProcessSignal
from aios.actions.process_select import Chosen, escape_glob, same_process
from aios.event import Event
from aios.home import HomePaths

IDLE = "import time; print('ready', flush=True); time.sleep(60)"
BUSY = (
    "import time\n"
    "print('ready', flush=True)\n"
    "end = time.monotonic() + 60\n"
    "while time.monotonic() < end:\n"
    "    pass\n"
)
IGNORES_SIGTERM = (
    "import signal, time\n"
    "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "print('ready', flush=True)\n"
    "time.sleep(60)\n"
)
BIG = "import time\nb = b'x' * (60 * 2**20)\nprint('ready', flush=True)\ntime.sleep(60)\n"

# The reaper: starts the child from the argv in its environment, reports the child's pid and
# readiness, kills the child when its own stdin closes, and prints the child's exit status.
_REAPER = """\
import json, os, subprocess, sys, threading
child = subprocess.Popen(
    json.loads(os.environ["AIOS_TEST_CHILD_ARGV"]), stdout=subprocess.PIPE, text=True
)
print(child.pid, flush=True)
print(child.stdout.readline().strip(), flush=True)

def stop_child_when_orphaned():
    sys.stdin.read()
    child.kill()

threading.Thread(target=stop_child_when_orphaned, daemon=True).start()
print(child.wait(), flush=True)
"""


def wait_until(predicate: Callable[[], bool], timeout: float = 3.0) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` seconds pass; its last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


@dataclasses.dataclass
class Child:
    """A child process started through a reaper, identified by pid and start time."""

    pid: int
    create_time: float
    marker: str
    reaper: subprocess.Popen[str]
    exit_status: int | None = None

    def alive(self) -> bool:
        """Whether this very process still runs (not gone, not a zombie, pid not reused)."""
        try:
            proc = psutil.Process(self.pid)
            return proc.create_time() == self.create_time and proc.status() != psutil.STATUS_ZOMBIE
        except psutil.Error:
            return False

    def status(self) -> str:
        return str(psutil.Process(self.pid).status())

    def nice(self) -> int:
        return int(psutil.Process(self.pid).nice())

    def returncode(self, timeout: float = 10.0) -> int:
        """The child's exit status (negative signal number when a signal ended it)."""
        if self.exit_status is None:
            assert wait_until(lambda: not self.alive(), timeout), f"pid {self.pid} still runs"
            self.reaper.wait(timeout)
            assert self.reaper.stdout is not None
            self.exit_status = int(self.reaper.stdout.read().strip())
        return self.exit_status

    def stop(self) -> None:
        """End the child and its reaper, whatever state they are in."""
        if self.reaper.stdin is not None and not self.reaper.stdin.closed:
            self.reaper.stdin.close()  # the reaper SIGKILLs the child and exits
        try:
            self.reaper.wait(5)
        except subprocess.TimeoutExpired:
            if self.alive():
                psutil.Process(self.pid).kill()
            self.reaper.kill()
            self.reaper.wait(5)
        if self.reaper.stdout is not None:
            self.reaper.stdout.close()


class Spawner:
    """Starts marked children for one test and ends them all at teardown."""

    def __init__(self, uid: str) -> None:
        self.uid = uid
        self.children: list[Child] = []

    def __call__(self, code: str, role: str, *extra: str, agent: bool = True) -> Child:
        kind = "agent" if agent else "bystander"
        marker = f"aios-test-{kind}-{self.uid}-{role}"
        argv = [sys.executable, "-c", code, marker, *extra]
        reaper = subprocess.Popen(
            [sys.executable, "-c", _REAPER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "AIOS_TEST_CHILD_ARGV": json.dumps(argv)},
        )
        assert reaper.stdout is not None
        pid_line = reaper.stdout.readline()
        ready = reaper.stdout.readline().strip()
        if not pid_line.strip() or ready != "ready":
            reaper.kill()
            reaper.wait()
            raise RuntimeError(f"child {marker} did not start ({pid_line!r}, {ready!r})")
        pid = int(pid_line)
        child = Child(pid, psutil.Process(pid).create_time(), marker, reaper)
        self.children.append(child)
        return child

    def stop_all(self) -> None:
        for child in self.children:
            child.stop()


@pytest.fixture
def uid() -> str:
    return uuid.uuid4().hex[:12]


@pytest.fixture
def spawn(uid: str) -> Iterator[Spawner]:
    spawner = Spawner(uid)
    try:
        yield spawner
    finally:
        spawner.stop_all()


@pytest.fixture
def ctx(tmp_path: Path, uid: str) -> ActionContext:
    return ActionContext(
        event=Event.create(type="test.trigger"),
        paths=HomePaths(tmp_path / "home"),
        remediation_id="r1",
        agent_patterns=(f"*aios-test-agent-{uid}*",),
        index=0,
    )


def pids_of(records: list[dict[str, Any]]) -> list[int]:
    return [int(record["pid"]) for record in records]


def idle_agent_kill() -> ProcessKill:
    return ProcessKill(target="idle_agents", idle_cpu_below=5, sample="0.5s", grace="1s")


# --- process.kill: target idle_agents ---------------------------------------------------------


def test_idle_agents_kills_the_idle_agent_only(spawn: Spawner, ctx: ActionContext) -> None:
    idle = spawn(IDLE, "idle")
    busy = spawn(BUSY, "busy")
    bystander = spawn(IDLE, "idle", agent=False)

    undo = idle_agent_kill().execute(ctx)

    assert pids_of(undo["killed"]) == [idle.pid]
    assert undo["irreversible"] is True
    assert undo["forced_sigkill"] == []
    assert undo["skipped"] == []
    assert undo["killed"][0]["is_agent"] is True
    assert undo["killed"][0]["create_time"] == idle.create_time
    assert idle.returncode() == -signal.SIGTERM
    assert busy.alive(), "a busy agent was killed"
    assert bystander.alive(), "an idle process that is not an agent was killed"


def test_named_agent_patterns_choose_by_their_glob(
    spawn: Spawner, ctx: ActionContext, uid: str
) -> None:
    """``[agents] patterns`` as the README writes them: ``name=glob``."""
    idle = spawn(IDLE, "idle")
    bystander = spawn(IDLE, "idle", agent=False)
    named = dataclasses.replace(ctx, agent_patterns=(f"tester=*aios-test-agent-{uid}*",))

    undo = idle_agent_kill().execute(named)

    assert pids_of(undo["killed"]) == [idle.pid]
    assert bystander.alive()


def test_plan_lists_the_idle_agent_and_kills_nothing(spawn: Spawner, ctx: ActionContext) -> None:
    idle = spawn(IDLE, "idle")
    busy = spawn(BUSY, "busy")
    bystander = spawn(IDLE, "idle", agent=False)

    plan = idle_agent_kill().plan(ctx)

    assert plan.action == "process.kill"
    assert plan.targets == [f"pid {idle.pid}"]
    assert pids_of(plan.details["processes"]) == [idle.pid]
    assert plan.reversible is False
    assert "irreversible" in plan.summary
    assert f"pid {idle.pid}" in plan.summary
    assert plan.risk is Risk.LOW
    assert plan.to_dict()["reversible"] is False
    assert idle.alive() and busy.alive() and bystander.alive()


def test_a_child_ignoring_sigterm_is_sigkilled_after_grace(
    spawn: Spawner, ctx: ActionContext, uid: str
) -> None:
    stubborn = spawn(IGNORES_SIGTERM, "stubborn")

    started = time.monotonic()
    undo = ProcessKill(cmdline=f"*{uid}*", grace="1s").execute(ctx)
    took = time.monotonic() - started

    assert pids_of(undo["killed"]) == [stubborn.pid]
    assert undo["forced_sigkill"] == [stubborn.pid]
    assert stubborn.returncode() == -signal.SIGKILL
    assert took >= 0.9, f"SIGKILL came before the 1s grace ({took:.2f}s)"


def test_rollback_of_a_kill_is_irreversible_and_names_the_pids(
    spawn: Spawner, ctx: ActionContext, uid: str
) -> None:
    first = spawn(IDLE, "first")
    second = spawn(IDLE, "second")
    action = ProcessKill(cmdline=f"*{uid}*", grace="1s")
    undo = action.execute(ctx)
    assert sorted(pids_of(undo["killed"])) == sorted([first.pid, second.pid])

    with pytest.raises(IrreversibleError) as caught:
        action.rollback(undo, ctx)

    assert str(first.pid) in str(caught.value)
    assert str(second.pid) in str(caught.value)
    assert first.returncode() == second.returncode() == -signal.SIGTERM
    assert action.is_reversible() is False


# --- protected processes ----------------------------------------------------------------------


def test_pid_1_is_never_chosen(ctx: ActionContext) -> None:
    assert ProcessKill(pid=1, cmdline="*").plan(ctx).targets == []
    # SIGCONT is harmless, so executing for real shows the choice without risking anything.
    assert ProcessSignal(pid=1, cmdline="*", signal="SIGCONT").execute(ctx)["sent"] == []


def test_the_test_process_and_its_parents_are_never_chosen(
    spawn: Spawner, ctx: ActionContext
) -> None:
    ordinary = spawn(IDLE, "ordinary")
    # Control: a matching glob with a pid picks an ordinary process...
    assert ProcessKill(pid=ordinary.pid, cmdline="*").plan(ctx).targets == [f"pid {ordinary.pid}"]
    # ...but never this process or any of its ancestors.
    own = [os.getpid(), *(p.pid for p in psutil.Process().parents())]
    for pid in own:
        plan = ProcessKill(pid=pid, cmdline="*").plan(ctx)
        assert plan.targets == [], f"pid {pid} (this test or a parent) was chosen"
        undo = ProcessSignal(pid=pid, cmdline="*", signal="SIGCONT").execute(ctx)
        assert undo["sent"] == [], f"pid {pid} (this test or a parent) was signalled"
    assert psutil.Process(os.getpid()).is_running()


@pytest.mark.parametrize(
    "extra",
    [
        ("prefect server start",),
        ("chroma", "run", "--path", "/tmp/chroma"),
        ("/opt/venv/bin/aios", "reactor", "run"),
    ],
    ids=["prefect-server", "chroma-run", "aios-command"],
)
def test_builtin_protected_command_lines_are_never_killed(
    spawn: Spawner, ctx: ActionContext, uid: str, extra: tuple[str, ...]
) -> None:
    ordinary = spawn(IDLE, "ordinary")
    protected = spawn(IDLE, "server", *extra)

    action = ProcessKill(cmdline=f"*{uid}*", grace="1s")
    assert action.plan(ctx).targets == [f"pid {ordinary.pid}"]
    undo = action.execute(ctx)

    assert pids_of(undo["killed"]) == [ordinary.pid]
    assert ordinary.returncode() == -signal.SIGTERM
    assert protected.alive(), f"protected process {' '.join(extra)!r} was killed"


def test_ctx_protected_patterns_are_never_killed(
    spawn: Spawner, ctx: ActionContext, uid: str
) -> None:
    ordinary = spawn(IDLE, "ordinary")
    precious = spawn(IDLE, "precious")
    ctx = dataclasses.replace(ctx, protected_patterns=(f"*{uid}-precious*",))

    undo = ProcessKill(target="agents", grace="1s").execute(ctx)

    assert pids_of(undo["killed"]) == [ordinary.pid]
    assert ordinary.returncode() == -signal.SIGTERM
    assert precious.alive()


# --- risk, validation, configuration ----------------------------------------------------------


def test_floor_is_low_for_agents_and_medium_otherwise() -> None:
    assert ProcessKill(target="agents").floor() is Risk.LOW
    assert ProcessKill(target="idle_agents").floor() is Risk.LOW
    assert ProcessSignal(target="agents", signal="SIGSTOP").floor() is Risk.LOW
    assert ProcessKill(name="python*").floor() is Risk.MEDIUM
    assert ProcessKill(cmdline="*agent*").floor() is Risk.MEDIUM
    assert ProcessKill(pid=1234).floor() is Risk.MEDIUM
    assert ProcessKill(pid="${payload.pid}").floor() is Risk.MEDIUM
    assert ProcessRenice(cmdline="*x*", nice=10).floor() is Risk.MEDIUM


def test_a_process_action_without_a_selector_is_refused() -> None:
    with pytest.raises(ValidationError, match="choose processes"):
        ProcessKill()
    with pytest.raises(ValidationError, match="choose processes"):
        ProcessKill(user="root", memory_above_mb=100)
    with pytest.raises(ValidationError, match="choose processes"):
        ProcessSignal(signal="SIGSTOP")
    with pytest.raises(ValidationError, match="choose processes"):
        ProcessRenice(nice=10)
    with pytest.raises(ValidationError):
        ProcessKill(target="everything")
    with pytest.raises(ValidationError):
        ProcessSignal(target="agents", signal="SIGKILL")
    with pytest.raises(ValidationError):
        ProcessRenice(target="agents", nice=20)


def test_the_seed_alias_kill_process_is_process_kill() -> None:
    action = ProcessKill.model_validate({"type": "kill_process", "target": "idle_agents"})
    assert action.type == "process.kill"


def test_target_agents_without_agent_patterns_is_an_action_error(
    spawn: Spawner, ctx: ActionContext
) -> None:
    agent = spawn(IDLE, "agent")
    bare = dataclasses.replace(ctx, agent_patterns=())

    with pytest.raises(ActionError, match="patterns"):
        ProcessSignal(target="agents", signal="SIGSTOP").execute(bare)
    with pytest.raises(ActionError, match="patterns"):
        ProcessSignal(target="agents", signal="SIGSTOP").plan(bare)
    with pytest.raises(ActionError, match="patterns"):
        idle_agent_kill().execute(bare)

    assert agent.alive()
    assert agent.status() != psutil.STATUS_STOPPED


def test_pid_from_the_event_and_a_pid_that_is_not_a_number(
    spawn: Spawner, ctx: ActionContext
) -> None:
    target = spawn(IDLE, "target")
    other = spawn(IDLE, "other")
    event = Event.create(type="test.trigger", payload={"pid": target.pid})
    action = ProcessSignal(pid="${payload.pid}", signal="SIGSTOP")

    undo = action.execute(dataclasses.replace(ctx, event=event))
    try:
        assert pids_of(undo["sent"]) == [target.pid]
        assert wait_until(lambda: target.status() == psutil.STATUS_STOPPED)
        assert other.status() != psutil.STATUS_STOPPED
    finally:
        action.rollback(undo, ctx)

    bad = Event.create(type="test.trigger", payload={"pid": "not-a-number"})
    with pytest.raises(ActionError, match="not a number"):
        action.plan(dataclasses.replace(ctx, event=bad))


def test_user_may_come_from_the_event(spawn: Spawner, ctx: ActionContext, uid: str) -> None:
    child = spawn(IDLE, "mine")
    me = psutil.Process().username()
    # A literal user selects the child...
    assert ProcessKill(cmdline=f"*{uid}*", user=me).plan(ctx).targets == [f"pid {child.pid}"]
    # ...and so should the same user taken from the triggering event.
    event = Event.create(type="test.trigger", labels={"user": me})
    templated = ProcessKill(cmdline=f"*{uid}*", user="${labels.user}")
    assert templated.plan(dataclasses.replace(ctx, event=event)).targets == [f"pid {child.pid}"]


@pytest.mark.parametrize("text", ["*", "?", "[", "]", "[!a]", "a*b[c]?d", "[]", "plain", ""])
def test_an_escaped_glob_matches_exactly_its_text(text: str) -> None:
    pattern = escape_glob(text)
    assert fnmatch.fnmatchcase(text, pattern)
    for other in ("x", "xx" + text, text + "x", "a", "]", "[", "*-anything"):
        if other != text:
            assert not fnmatch.fnmatchcase(other, pattern), (text, pattern, other)


# --- pid reuse --------------------------------------------------------------------------------


def fabricated(child: Child, create_time: float) -> Chosen:
    return Chosen(
        pid=child.pid,
        name="python",
        cmdline=child.marker,
        username="",
        create_time=create_time,
        cpu_percent=None,
        rss_mb=0.0,
        is_agent=True,
    )


def test_same_process_rejects_a_different_start_time(spawn: Spawner) -> None:
    child = spawn(IDLE, "reused")

    found = same_process(fabricated(child, child.create_time))
    assert found is not None and found.pid == child.pid
    assert same_process(fabricated(child, child.create_time + 10)) is None
    assert same_process(fabricated(child, child.create_time - 10)) is None


def test_signal_rollback_never_hits_a_reused_pid(
    spawn: Spawner, ctx: ActionContext, uid: str
) -> None:
    child = spawn(IDLE, "stopped")
    action = ProcessSignal(cmdline=f"*{uid}*", signal="SIGSTOP")
    undo = action.execute(ctx)
    assert pids_of(undo["sent"]) == [child.pid]
    assert wait_until(lambda: child.status() == psutil.STATUS_STOPPED)

    # The same pid, started 10 s off: another process that happens to reuse the pid.
    reused = {
        **undo,
        "sent": [{**entry, "create_time": entry["create_time"] - 10} for entry in undo["sent"]],
    }
    message = action.rollback(reused, ctx)
    assert "SIGCONT to 0 process(es)" in message
    time.sleep(0.2)
    assert child.status() == psutil.STATUS_STOPPED, "SIGCONT reached a process with another start"

    assert str(child.pid) in action.rollback(undo, ctx)
    assert wait_until(lambda: child.status() != psutil.STATUS_STOPPED)


# --- process.signal ---------------------------------------------------------------------------


def test_sigstop_then_rollback_resumes_the_agent(spawn: Spawner, ctx: ActionContext) -> None:
    agent = spawn(BUSY, "busy")
    bystander = spawn(IDLE, "idle", agent=False)
    action = ProcessSignal(target="agents", signal="SIGSTOP")

    plan = action.plan(ctx)
    assert plan.targets == [f"pid {agent.pid}"]
    assert plan.reversible is True
    assert plan.risk is Risk.LOW

    undo = action.execute(ctx)
    assert undo["signal"] == "SIGSTOP"
    assert pids_of(undo["sent"]) == [agent.pid]
    assert wait_until(lambda: agent.status() == psutil.STATUS_STOPPED)
    assert bystander.status() != psutil.STATUS_STOPPED

    message = action.rollback(undo, ctx)
    assert str(agent.pid) in message
    assert wait_until(lambda: agent.status() == psutil.STATUS_RUNNING)
    assert agent.alive()


def test_sigterm_by_signal_kills_and_has_no_rollback(
    spawn: Spawner, ctx: ActionContext, uid: str
) -> None:
    child = spawn(IDLE, "term")
    action = ProcessSignal(cmdline=f"*{uid}*", signal="SIGTERM")
    assert action.is_reversible() is False
    assert action.plan(ctx).reversible is False

    undo = action.execute(ctx)

    assert pids_of(undo["sent"]) == [child.pid]
    assert child.returncode() == -signal.SIGTERM
    with pytest.raises(IrreversibleError, match="SIGTERM"):
        action.rollback(undo, ctx)


def test_sigstop_rollback_leaves_an_already_stopped_process_stopped(
    spawn: Spawner, ctx: ActionContext, uid: str
) -> None:
    child = spawn(IDLE, "paused")
    os.kill(child.pid, signal.SIGSTOP)  # someone paused it on purpose, before AIOS acted
    assert wait_until(lambda: child.status() == psutil.STATUS_STOPPED)
    action = ProcessSignal(cmdline=f"*{uid}*", signal="SIGSTOP")

    action.rollback(action.execute(ctx), ctx)

    time.sleep(0.2)
    assert child.status() == psutil.STATUS_STOPPED, "rollback resumed a process AIOS never paused"


# --- process.renice ---------------------------------------------------------------------------


def test_renice_and_rollback_restore_the_old_niceness(
    spawn: Spawner, ctx: ActionContext, uid: str
) -> None:
    child = spawn(IDLE, "renice")
    before = child.nice()
    assert before != 10
    action = ProcessRenice(cmdline=f"*{uid}*", nice=10)
    plan = action.plan(ctx)
    assert plan.targets == [f"pid {child.pid}"]
    assert plan.reversible is True
    assert plan.risk is Risk.MEDIUM

    undo = action.execute(ctx)

    assert child.nice() == 10
    assert pids_of(undo["changed"]) == [child.pid]
    assert undo["changed"][0]["old_nice"] == before
    message = action.rollback(undo, ctx)
    assert child.nice() == before
    assert f"pid {child.pid} nice {before}" in message
    assert "gone" not in message


def test_renice_rollback_reports_an_exited_process_as_gone(
    spawn: Spawner, ctx: ActionContext, uid: str
) -> None:
    child = spawn(IDLE, "short")
    action = ProcessRenice(cmdline=f"*{uid}*", nice=10)
    undo = action.execute(ctx)
    assert pids_of(undo["changed"]) == [child.pid]
    child.stop()
    assert not child.alive()

    message = action.rollback(undo, ctx)

    assert "gone" in message
    assert str(child.pid) in message
    assert message.startswith("restored nothing")


def test_renice_rollback_reports_an_exited_unreaped_process_as_gone(
    ctx: ActionContext, uid: str
) -> None:
    marker = f"aios-test-agent-{uid}-zombie"
    code = "import sys; print('ready', flush=True); sys.stdin.read()"
    proc = subprocess.Popen(
        [sys.executable, "-c", code, marker],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdin is not None
        assert proc.stdout.readline().strip() == "ready"
        action = ProcessRenice(cmdline=f"*{marker}*", nice=10)
        undo = action.execute(ctx)
        assert pids_of(undo["changed"]) == [proc.pid]
        proc.stdin.close()  # the child exits; its parent (this test) has not reaped it yet
        assert wait_until(lambda: psutil.Process(proc.pid).status() == psutil.STATUS_ZOMBIE)

        message = action.rollback(undo, ctx)

        assert "gone" in message, message
    finally:
        proc.kill()
        proc.wait(5)
        if proc.stdout is not None:
            proc.stdout.close()


# --- filters ----------------------------------------------------------------------------------


def test_memory_above_mb_picks_the_big_process(
    spawn: Spawner, ctx: ActionContext, uid: str
) -> None:
    big = spawn(BIG, "big")
    small = spawn(IDLE, "small")
    assert psutil.Process(big.pid).memory_info().rss > 55 * 2**20
    assert psutil.Process(small.pid).memory_info().rss < 40 * 2**20

    plan = ProcessKill(cmdline=f"*{uid}*", memory_above_mb=40).plan(ctx)
    assert plan.targets == [f"pid {big.pid}"]
    assert plan.details["processes"][0]["rss_mb"] > 55

    undo = ProcessKill(target="agents", memory_above_mb=40, grace="1s").execute(ctx)
    assert pids_of(undo["killed"]) == [big.pid]
    assert big.returncode() == -signal.SIGTERM
    assert small.alive()


def test_older_than_picks_the_older_process(spawn: Spawner, ctx: ActionContext, uid: str) -> None:
    old = spawn(IDLE, "old")
    # psutil's start times lean up to 1 s early (boot time is whole seconds): keep a margin.
    time.sleep(2.1)
    new = spawn(IDLE, "new")

    plan = ProcessKill(cmdline=f"*{uid}*", older_than="2s").plan(ctx)
    assert plan.targets == [f"pid {old.pid}"]
    assert ProcessKill(cmdline=f"*{uid}*", older_than="1h").plan(ctx).targets == []

    undo = ProcessKill(target="agents", older_than="2s", grace="1s").execute(ctx)
    assert pids_of(undo["killed"]) == [old.pid]
    assert old.returncode() == -signal.SIGTERM
    assert new.alive()


def test_max_processes_caps_how_many_are_acted_on(spawn: Spawner, ctx: ActionContext) -> None:
    children = [spawn(IDLE, f"many{i}") for i in range(3)]

    assert len(ProcessKill(target="agents", max_processes=2).plan(ctx).targets) == 2
    undo = ProcessKill(target="agents", max_processes=2, grace="1s").execute(ctx)

    killed = pids_of(undo["killed"])
    assert len(killed) == 2
    assert set(killed) <= {c.pid for c in children}
    survivors = [c for c in children if c.pid not in killed]
    assert len(survivors) == 1 and survivors[0].alive()
    for child in children:
        if child.pid in killed:
            assert child.returncode() == -signal.SIGTERM
