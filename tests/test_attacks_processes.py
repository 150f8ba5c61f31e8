"""Attacks on process.kill, process.signal and process.renice with real processes: no wrong
process is signalled or reniced.

A wrong process could be hit in three ways, each tested here in both directions:
- the chosen process changes what it looks like between the choice and the act (writes
  ``/proc/self/comm``, or exec's another command line: same pid, same start);
- the chosen process exits and another takes its pid (forced with
  ``/proc/sys/kernel/ns_last_pid``, which needs root), before the signal, during the grace
  before SIGKILL, or before a rollback;
- a process of another user matches the agent patterns (children run as ``nobody``: root
  only).
Also: event labels that steer ``${...}`` globs (a label ``*`` must match only a ``*``),
rollbacks of processes that became protected since, a process that starts matching between
the plan (what a person approves) and the execution, and a renice of a process that exits
after it was pinned. Playbooks with non-finite numbers are refused when loaded.
The attacker's move is made right after the choice by a hook (AIOS's selection step wrapped);
the processes are real children of the test, ended at teardown.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
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

import aios
from aios.actions import process_actions, process_select
from aios.actions.base import ActionContext, ActionError, Risk
from aios.actions.process_actions import ProcessAction, ProcessKill, ProcessRenice, ProcessSignal
from aios.actions.process_select import Chosen, Held
from aios.event import Event
from aios.home import HomePaths
from aios.playbooks.loader import PlaybookError, load_playbooks
from aios.playbooks.matcher import PlaybookIndex
from aios.playbooks.model import Playbook
from aios.reactor.approval import ApprovalRequest, PolicyApprover
from aios.reactor.engine import Reactor, ReactorSettings
from tests.test_actions_files import make_ctx
from tests.test_actions_processes import wait_until

NOBODY = 65534
NS_LAST_PID = Path("/proc/sys/kernel/ns_last_pid")

# The child: a marked command line (argv[1]); SIGUSR1 makes it exec another command line (its
# BECOME), SIGUSR2 renames it (writes its RENAME to /proc/self/comm). SIGTERM ends it unless
# IGNORE_TERM is set.
CHILD = """\
import os, signal, sys, time
def become(*_):
    code = "import time\\nwhile True: time.sleep(60)"
    os.execv(sys.executable, [sys.executable, "-c", code, os.environ["BECOME"]])
def rename(*_):
    with open("/proc/self/comm", "w") as handle:
        handle.write(os.environ["RENAME"])
signal.signal(signal.SIGUSR1, become)
signal.signal(signal.SIGUSR2, rename)
if os.environ.get("IGNORE_TERM"):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
print("ready", flush=True)
while True:
    time.sleep(60)
"""


@functools.cache
def python_for(uid: int) -> str | None:
    """An interpreter user ``uid`` can run (this virtualenv's may sit in a private home)."""
    for candidate in (sys.executable, "/usr/bin/python3"):
        try:
            done = subprocess.run(
                [candidate, "-c", "pass"], user=uid, group=uid, extra_groups=[], timeout=30
            )
        except (OSError, subprocess.SubprocessError):
            continue
        if done.returncode == 0:
            return candidate
    return None


@dataclasses.dataclass
class Child:
    """A marked child process, told apart from any later process on its pid by its start."""

    popen: subprocess.Popen[str]
    marker: str
    create_time: float

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        try:
            proc = psutil.Process(self.pid)
            return proc.create_time() == self.create_time and proc.status() != "zombie"
        except psutil.Error:
            return False

    def stopped(self) -> bool:
        return self.alive() and psutil.Process(self.pid).status() == psutil.STATUS_STOPPED

    def nice(self) -> int:
        return int(psutil.Process(self.pid).nice())

    def cmdline(self) -> str:
        return " ".join(psutil.Process(self.pid).cmdline())

    def name(self) -> str:
        return str(psutil.Process(self.pid).name())

    def end(self) -> None:
        """Kill and reap it (its pid is free afterwards)."""
        with contextlib.suppress(ProcessLookupError):
            self.popen.kill()
        self.popen.wait(10)
        if self.popen.stdout is not None:
            self.popen.stdout.close()


class Spawner:
    """Starts marked children for one test and ends them all at teardown."""

    def __init__(self, uid: str) -> None:
        self.uid = uid
        self.children: list[Child] = []

    def marker(self, role: str, *, agent: bool = True) -> str:
        return f"aios-test-{'agent' if agent else 'bystander'}-{self.uid}-{role}"

    def __call__(
        self,
        role: str,
        *,
        agent: bool = True,
        become: str = "",
        rename: str = "",
        user: int | None = None,
        ignore_term: bool = False,
        pid: int | None = None,
    ) -> Child:
        """A child marked as an agent (or a bystander) for ``role``; ``pid`` forces its pid."""
        python = sys.executable if user is None else python_for(user)
        if python is None:
            pytest.skip(f"no Python interpreter that uid {user} may run")
        marker = self.marker(role, agent=agent)
        env = {**os.environ, "BECOME": become, "RENAME": rename}
        if ignore_term:
            env["IGNORE_TERM"] = "1"
        ids: dict[str, Any] = {} if user is None else {"user": user, "group": user}
        if pid is not None:
            NS_LAST_PID.write_text(str(pid - 1))  # the next pid handed out is ``pid``
        popen = subprocess.Popen(
            [python, "-c", CHILD, marker],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
            extra_groups=[] if user is not None else None,
            **ids,
        )
        assert popen.stdout is not None
        if popen.stdout.readline().strip() != "ready":
            popen.kill()
            popen.wait()
            raise RuntimeError(f"child {marker} did not start")
        child = Child(popen, marker, psutil.Process(popen.pid).create_time())
        self.children.append(child)
        return child

    def on_pid_of(self, gone: Child, role: str) -> Child:
        """A new agent on the pid ``gone`` had (``gone`` is ended first); skips if it cannot."""
        if os.geteuid() != 0 or not os.access(NS_LAST_PID, os.W_OK):
            pytest.skip("forcing a pid needs root (writes /proc/sys/kernel/ns_last_pid)")
        pid = gone.pid
        gone.end()
        for _ in range(50):  # another process on the machine may take the pid first
            try:
                child = self(role, pid=pid)
            except OSError:
                pytest.skip("ns_last_pid cannot be written here")
            if child.pid == pid:
                return child
            child.end()
        pytest.skip(f"pid {pid} was taken by other processes 50 times running")

    def close(self) -> None:
        for child in self.children:
            child.end()


@pytest.fixture
def spawn() -> Iterator[Spawner]:
    with contextlib.closing(Spawner(uuid.uuid4().hex[:12])) as spawner:
        yield spawner


@pytest.fixture
def ctx(tmp_path: Path, spawn: Spawner) -> ActionContext:
    """The agents are this test's children marked as agents, and nothing else."""
    return dataclasses.replace(make_ctx(tmp_path, ()), agent_patterns=(f"*{spawn.marker('')}*",))


def after_the_choice(monkeypatch: pytest.MonkeyPatch, move: Callable[[list[Chosen]], None]) -> None:
    """Make ``move`` right after the action chooses its processes, before it acts on them."""
    original = process_select.select
    done: list[bool] = []

    def choose_then_move(*args: Any, **kwargs: Any) -> list[Chosen]:
        chosen = original(*args, **kwargs)
        if not done:
            done.append(True)
            move(chosen)
        return chosen

    monkeypatch.setattr(process_actions, "select", choose_then_move)


ACTIONS: dict[str, Callable[[], ProcessAction]] = {
    "signal": lambda: ProcessSignal(target="agents", signal="SIGSTOP"),
    "kill": lambda: ProcessKill(target="agents", grace="1s"),
    "renice": lambda: ProcessRenice(target="agents", nice=15),
}
ACTED = {"signal": "sent", "kill": "killed", "renice": "changed"}


def untouched(child: Child, nice: int = 0) -> bool:
    """Still running, not stopped, its niceness as it was."""
    return child.alive() and not child.stopped() and child.nice() == nice


def acted_on(undo: dict[str, Any], kind: str) -> list[int]:
    return [int(record["pid"]) for record in undo[ACTED[kind]]]


# --- a chosen process that changes what it looks like ----------------------------------------


@pytest.mark.parametrize("kind", list(ACTIONS))
def test_an_agent_that_execs_another_command_after_the_choice_is_left_alone(
    kind: str, spawn: Spawner, ctx: ActionContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Same pid, same start, but no longer an agent: the one AIOS chose is not what runs now."""
    agent = spawn("shifter", become=spawn.marker("shifter", agent=False))

    def exec_away(chosen: list[Chosen]) -> None:
        assert [c.pid for c in chosen] == [agent.pid]
        os.kill(agent.pid, signal.SIGUSR1)
        assert wait_until(lambda: "bystander" in agent.cmdline())

    after_the_choice(monkeypatch, exec_away)
    undo = ACTIONS[kind]().execute(ctx)

    assert acted_on(undo, kind) == []
    time.sleep(0.2)
    assert untouched(agent)
    assert agent.alive(), "exec kept the pid and the start: this is still the chosen process"


def test_an_agent_that_renames_itself_to_look_protected_is_left_alone(
    spawn: Spawner, ctx: ActionContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    agent = spawn("renamer", rename="chroma run")  # matches the built-in *chroma run*

    def rename(chosen: list[Chosen]) -> None:
        os.kill(agent.pid, signal.SIGUSR2)
        assert wait_until(lambda: agent.name() == "chroma run")

    after_the_choice(monkeypatch, rename)
    undo = ProcessSignal(target="agents", signal="SIGSTOP").execute(ctx)

    assert undo["sent"] == []
    assert any("no longer matches: protected" in note for note in undo["notes"])
    time.sleep(0.2)
    assert untouched(agent)


def test_an_agent_renaming_only_its_name_is_still_the_agent(
    spawn: Spawner, ctx: ActionContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The name is cosmetic: the command line still matches the pattern, the process is the
    one chosen, so renaming does not let it dodge the action."""
    agent = spawn("cosmetic", rename="evil")

    def rename(chosen: list[Chosen]) -> None:
        os.kill(agent.pid, signal.SIGUSR2)
        assert wait_until(lambda: agent.name() == "evil")

    after_the_choice(monkeypatch, rename)
    action = ProcessSignal(target="agents", signal="SIGSTOP")
    undo = action.execute(ctx)

    assert [c["pid"] for c in undo["sent"]] == [agent.pid]
    assert wait_until(agent.stopped)
    action.rollback(undo, ctx)
    assert wait_until(lambda: not agent.stopped())


def test_a_bystander_that_turns_into_an_agent_after_the_choice_is_not_signalled(
    spawn: Spawner, ctx: ActionContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The other direction: it was not chosen, so whatever it becomes it is not acted on."""
    agent = spawn("real")
    bystander = spawn("late", agent=False, become=spawn.marker("late"))

    def exec_into_agent(chosen: list[Chosen]) -> None:
        assert [c.pid for c in chosen] == [agent.pid]
        os.kill(bystander.pid, signal.SIGUSR1)
        assert wait_until(lambda: "aios-test-agent" in bystander.cmdline())

    after_the_choice(monkeypatch, exec_into_agent)
    undo = ProcessSignal(target="agents", signal="SIGSTOP").execute(ctx)

    try:
        assert [c["pid"] for c in undo["sent"]] == [agent.pid]
        time.sleep(0.2)
        assert untouched(bystander)
    finally:
        os.kill(agent.pid, signal.SIGCONT)


# --- a pid reused by another process ---------------------------------------------------------


@pytest.mark.parametrize("kind", list(ACTIONS))
def test_a_pid_reused_between_the_choice_and_the_act_is_not_hit(
    kind: str, spawn: Spawner, ctx: ActionContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The newcomer looks exactly like the agent and starts well within a second of it."""
    agent = spawn("reused")
    newcomer: list[Child] = []

    def reuse(chosen: list[Chosen]) -> None:
        assert [c.pid for c in chosen] == [agent.pid]
        newcomer.append(spawn.on_pid_of(agent, "reused"))

    after_the_choice(monkeypatch, reuse)
    undo = ACTIONS[kind]().execute(ctx)

    [new] = newcomer
    assert new.pid == agent.pid and new.create_time - agent.create_time < 1.0
    assert acted_on(undo, kind) == []
    time.sleep(0.2)
    assert untouched(new)


def test_a_pid_reused_during_the_kill_grace_gets_no_sigkill(
    spawn: Spawner, ctx: ActionContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The agent ignores SIGTERM, then exits in the grace; a newcomer takes its pid."""
    agent = spawn("stubborn", ignore_term=True)
    newcomer: list[Child] = []
    original = psutil.wait_procs

    def grace_then_reuse(procs: list[psutil.Process], timeout: float | None = None) -> Any:
        gone, still = original(procs, timeout=timeout)
        if not newcomer and [p.pid for p in still] == [agent.pid]:
            newcomer.append(spawn.on_pid_of(agent, "stubborn"))
        return gone, still

    monkeypatch.setattr(psutil, "wait_procs", grace_then_reuse)
    undo = ProcessKill(target="agents", grace="0.5s").execute(ctx)

    [new] = newcomer
    assert [c["pid"] for c in undo["killed"]] == [agent.pid]
    assert undo["forced_sigkill"] == []
    time.sleep(0.2)
    assert new.alive(), "the SIGKILL meant for the agent hit the process that took its pid"


def test_a_rollback_after_pid_reuse_leaves_the_newcomer_as_it_is(
    spawn: Spawner, ctx: ActionContext
) -> None:
    agent = spawn("undo")
    renice = ProcessRenice(target="agents", nice=15)
    stop = ProcessSignal(target="agents", signal="SIGSTOP")
    reniced = renice.execute(ctx)
    stopped = stop.execute(ctx)
    assert acted_on(reniced, "renice") == acted_on(stopped, "signal") == [agent.pid]

    new = spawn.on_pid_of(agent, "undo")
    psutil.Process(new.pid).nice(5)  # its owner's own setting, which no rollback may undo
    os.kill(new.pid, signal.SIGSTOP)
    assert wait_until(new.stopped)

    renice.rollback(reniced, ctx)
    stop.rollback(stopped, ctx)

    time.sleep(0.2)
    assert new.nice() == 5, "the rollback put the old agent's niceness on the newcomer"
    assert new.stopped(), "the rollback resumed a process AIOS never stopped"


# --- processes of other users ----------------------------------------------------------------

needs_root = pytest.mark.skipif(
    os.geteuid() != 0, reason="needs root to start another user's child"
)


@needs_root
def test_agents_are_chosen_among_aios_own_users_processes_by_default(
    spawn: Spawner, ctx: ActionContext
) -> None:
    """A process of another user that looks like an agent (by accident or on purpose) is not
    acted on by a low-risk, unasked action."""
    mine = spawn("mine")
    theirs = spawn("theirs", user=NOBODY)
    action = ProcessSignal(target="agents", signal="SIGSTOP")

    assert action.plan(ctx).targets == [f"pid {mine.pid}"]
    undo = action.execute(ctx)
    try:
        assert [c["pid"] for c in undo["sent"]] == [mine.pid]
        time.sleep(0.2)
        assert untouched(theirs)
    finally:
        action.rollback(undo, ctx)


@needs_root
@pytest.mark.parametrize("user", ["nobody", "*"])
def test_agents_of_another_user_are_chosen_when_the_playbook_names_them(
    user: str, spawn: Spawner, ctx: ActionContext
) -> None:
    mine = spawn("mine")
    theirs = spawn("theirs", user=NOBODY)
    expected = {theirs.pid} | ({mine.pid} if user == "*" else set())

    plan = ProcessRenice(target="agents", user=user, nice=15).plan(ctx)

    assert {int(t.split()[1]) for t in plan.targets} == expected
    assert "of nobody" in plan.summary  # the approver sees whose process it is


@needs_root
def test_a_choice_by_command_line_shows_the_user_to_the_approver(
    spawn: Spawner, ctx: ActionContext
) -> None:
    """Not by agent: at least medium risk, so a person approves the plan; it names the user."""
    theirs = spawn("other", agent=False, user=NOBODY)

    plan = ProcessKill(cmdline=f"*{theirs.marker}*").plan(ctx)

    assert plan.targets == [f"pid {theirs.pid}"]
    assert plan.risk.value == "medium"
    assert f"pid {theirs.pid}" in plan.summary and "of nobody" in plan.summary
    assert theirs.alive()


# --- values from events in the globs ---------------------------------------------------------


# A playbook's glob around a label; the children's own code holds a ``*`` (``def f(*_)``), so
# the label goes after the marker's fixed start.
BY_LABEL = "*aios-test-agent-${labels.agent}*"


def with_labels(ctx: ActionContext, **labels: str) -> ActionContext:
    return dataclasses.replace(ctx, event=Event.create(type="test.trigger", labels=labels))


def test_a_label_chooses_the_agent_it_names(spawn: Spawner, ctx: ActionContext) -> None:
    """Control for the attacks below: the label picks one agent out of two."""
    alpha, beta = spawn("alpha"), spawn("beta")
    action = ProcessSignal(target="agents", cmdline=BY_LABEL, signal="SIGSTOP")

    alpha_ctx = with_labels(ctx, agent=f"{spawn.uid}-alpha")
    assert action.plan(alpha_ctx).targets == [f"pid {alpha.pid}"]
    undo = action.execute(alpha_ctx)
    try:
        assert acted_on(undo, "signal") == [alpha.pid]
        time.sleep(0.2)
        assert untouched(beta)
    finally:
        action.rollback(undo, alpha_ctx)


@pytest.mark.parametrize("label", ["*", "?*", "[0-9a-f]*", "*-alpha", "*alpha"])
def test_a_wildcard_label_matches_only_literally(
    label: str, spawn: Spawner, ctx: ActionContext
) -> None:
    """A label that is a glob would otherwise choose every agent, at low risk, unasked."""
    alpha, beta = spawn("alpha"), spawn("beta")
    action = ProcessSignal(target="agents", cmdline=BY_LABEL, signal="SIGSTOP")
    steered = with_labels(ctx, agent=label)

    assert action.plan(steered).targets == []
    undo = action.execute(steered)

    assert undo["sent"] == []
    time.sleep(0.2)
    assert untouched(alpha) and untouched(beta)


@pytest.mark.parametrize("label", ["", "  "])
def test_an_empty_label_in_a_glob_is_refused(
    label: str, spawn: Spawner, ctx: ActionContext
) -> None:
    """``*${labels.agent}*`` with an empty label is ``**``: every agent."""
    agent = spawn("any")
    action = ProcessSignal(target="agents", cmdline="*${labels.agent}*", signal="SIGSTOP")

    with pytest.raises(ActionError, match="empty"):
        action.plan(with_labels(ctx, agent=label))
    with pytest.raises(ActionError, match="empty"):
        action.execute(with_labels(ctx, agent=label))
    assert untouched(agent)


def test_a_user_from_the_event_is_asked_about() -> None:
    """The event then decides whose processes are reached: a person approves it."""
    templated = ProcessRenice(target="agents", user="${labels.user}", nice=10)
    fixed = ProcessRenice(target="agents", user="nobody", nice=10)
    playbook = Playbook.model_validate(
        {
            "id": "renice_by_label",
            "trigger": {"type": "agent.slow"},
            "actions": [templated.model_dump(mode="json")],
        }
    )

    assert templated.floor() is Risk.MEDIUM
    assert fixed.floor() is Risk.LOW
    assert playbook.effective_risk() is Risk.MEDIUM
    assert playbook.needs_approval("medium")


@needs_root
def test_a_wildcard_user_label_reaches_no_other_user(spawn: Spawner, ctx: ActionContext) -> None:
    mine = spawn("mine")
    theirs = spawn("theirs", user=NOBODY)
    action = ProcessRenice(target="agents", user="${labels.user}", nice=15)

    steered = with_labels(ctx, user="*")
    assert action.plan(steered).targets == []
    assert action.execute(steered)["changed"] == []
    named = action.plan(with_labels(ctx, user="nobody"))
    assert named.targets == [f"pid {theirs.pid}"]
    assert named.risk is Risk.MEDIUM
    time.sleep(0.2)
    assert untouched(mine) and untouched(theirs)


# --- rollbacks of processes that changed since -----------------------------------------------


def test_a_renice_rollback_leaves_a_process_that_became_protected_and_fails(
    spawn: Spawner, ctx: ActionContext
) -> None:
    """Same pid, same start, but it exec'd into the Chroma server: AIOS no longer touches it."""
    agent = spawn("renice-exec", become=f"{spawn.marker('renice-exec')} chroma run")
    action = ProcessRenice(target="agents", nice=10)
    undo = action.execute(ctx)
    assert acted_on(undo, "renice") == [agent.pid]
    assert agent.nice() == 10

    os.kill(agent.pid, signal.SIGUSR1)
    assert wait_until(lambda: "chroma run" in agent.cmdline())
    with pytest.raises(ActionError) as failed:  # not undone: a person is told, not "done"
        action.rollback(undo, ctx)

    assert agent.nice() == 10, "the rollback reniced a protected process"
    assert f"pid {agent.pid} (protected)" in str(failed.value)
    assert str(failed.value).startswith("restored nothing")


def test_a_sigstop_rollback_leaves_a_process_that_became_protected_stopped_and_fails(
    spawn: Spawner, ctx: ActionContext
) -> None:
    agent = spawn("stop-exec", become=f"{spawn.marker('stop-exec')} prefect server start")
    action = ProcessSignal(target="agents", signal="SIGSTOP")
    undo = action.execute(ctx)
    assert acted_on(undo, "signal") == [agent.pid]
    assert wait_until(agent.stopped)

    # Resumed by someone else, it execs into the Prefect server, and is stopped again.
    os.kill(agent.pid, signal.SIGCONT)
    os.kill(agent.pid, signal.SIGUSR1)
    assert wait_until(lambda: "prefect server start" in agent.cmdline())
    os.kill(agent.pid, signal.SIGSTOP)
    assert wait_until(agent.stopped)
    with pytest.raises(ActionError) as failed:  # not undone: a person is told, not "done"
        action.rollback(undo, ctx)

    time.sleep(0.2)
    assert agent.stopped(), "the rollback resumed a protected process"
    assert "SIGCONT to 0 process(es)" in str(failed.value)
    assert f"pid {agent.pid} (protected)" in str(failed.value)


# --- an approval covers the processes it listed ----------------------------------------------


@pytest.mark.parametrize("kind", list(ACTIONS))
def test_a_process_matching_only_after_the_plan_is_left_alone(
    kind: str, spawn: Spawner, ctx: ActionContext
) -> None:
    planned = spawn("planned")
    action = ACTIONS[kind]()
    assert action.plan(ctx).targets == [f"pid {planned.pid}"]

    late = spawn("late")  # an agent too, started while a person looked at the plan
    undo = action.execute(ctx)
    try:
        assert acted_on(undo, kind) == [planned.pid]
        assert [entry["pid"] for entry in undo["left_alone"]] == [late.pid]
        assert "not in the plan" in undo["left_alone"][0]["why"]
        time.sleep(0.2)
        assert untouched(late)
    finally:
        if kind != "kill":
            action.rollback(undo, ctx)


def test_a_planned_process_that_no_longer_matches_is_named(
    spawn: Spawner, ctx: ActionContext
) -> None:
    planned = spawn("gone")
    action = ProcessSignal(target="agents", signal="SIGSTOP")
    assert action.plan(ctx).targets == [f"pid {planned.pid}"]
    planned.end()

    undo = action.execute(ctx)

    assert undo["sent"] == []
    assert [entry["pid"] for entry in undo["left_alone"]] == [planned.pid]
    assert "no longer chosen" in undo["left_alone"][0]["why"]


class StartsOneWhileAsked(PolicyApprover):
    """Approves, but while the person looks, a process that matches too is started."""

    def __init__(self, start: Callable[[], Child]) -> None:
        super().__init__(True, "alice")
        self.start = start
        self.started: list[Child] = []

    def request(self, request: ApprovalRequest) -> Any:
        self.started.append(self.start())
        return super().request(request)


def test_the_reactor_acts_only_on_the_processes_a_person_approved(
    home: HomePaths, spawn: Spawner
) -> None:
    planned = spawn("approved", agent=False)
    glob = f"*{spawn.marker('', agent=False)}*"
    playbook = Playbook.model_validate(
        {
            "id": "kill_bystanders",
            "trigger": {"type": "test.kill"},
            "actions": [{"type": "process.kill", "cmdline": glob, "grace": "1s"}],
        }
    )
    approver = StartsOneWhileAsked(lambda: spawn("started-while-asked", agent=False))
    reactor = Reactor(PlaybookIndex([playbook]), aios.bus(), ReactorSettings(home), approver)

    [outcome] = reactor.process(aios.emit("test.kill", {}))

    [late] = approver.started
    [request] = approver.requests
    assert request.plan[0]["targets"] == [f"pid {planned.pid}"]
    assert outcome.status == "unverified", outcome
    assert wait_until(lambda: not planned.alive())
    assert late.alive(), "a process the person never saw was killed"
    [completed] = [e for e in aios.bus().log.events() if e.type == "action.completed"]
    assert [k["pid"] for k in completed.payload["undo"]["killed"]] == [planned.pid]
    assert [k["pid"] for k in completed.payload["undo"]["left_alone"]] == [late.pid]


# --- a renice through the pinned process -----------------------------------------------------


def test_a_process_that_exits_right_before_the_renice_is_not_reniced(
    spawn: Spawner, ctx: ActionContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    """It exits (unreaped, its pid about to be free) after the last check, before the renice."""
    agent = spawn("exits")
    original = process_select.still_matching

    def check_then_exit(held: Held, *args: Any) -> str | None:
        why = original(held, *args)
        os.kill(agent.pid, signal.SIGKILL)
        assert wait_until(lambda: psutil.Process(agent.pid).status() == psutil.STATUS_ZOMBIE)
        return why

    monkeypatch.setattr(process_actions, "still_matching", check_then_exit)
    undo = ProcessRenice(target="agents", nice=15).execute(ctx)

    assert undo["changed"] == []
    assert undo["skipped"] == [agent.pid]
    assert any("exited before the renice" in note for note in undo["notes"]), undo["notes"]


def test_a_renice_works_with_a_thousand_descriptors_open(
    spawn: Spawner, ctx: ActionContext
) -> None:
    """A long-running AIOS may hold many descriptors; the pidfd's number is then above what
    select() takes."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 1200:
        pytest.skip(f"the hard limit on open files is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 1200), hard))
    opened: list[int] = []
    try:
        while not opened or opened[-1] < 1030:
            opened.append(os.open(os.devnull, os.O_RDONLY))
        agent = spawn("many-fds")
        action = ProcessRenice(target="agents", nice=12)
        undo = action.execute(ctx)
        assert acted_on(undo, "renice") == [agent.pid] and agent.nice() == 12
        action.rollback(undo, ctx)
        assert agent.nice() == 0
    finally:
        for fd in opened:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


# --- numbers a playbook may not hold ---------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "field"),
    [
        ("idle_cpu_below: .inf", "idle_cpu_below"),
        ("idle_cpu_below: .nan", "idle_cpu_below"),
        ("memory_above_mb: .inf", "memory_above_mb"),
        ("sample: 0", "sample"),
        ("sample: 1ms", "sample"),
    ],
)
def test_a_playbook_with_a_number_that_means_nothing_is_refused(
    tmp_path: Path, line: str, field: str
) -> None:
    """``idle_cpu_below: .inf`` made every agent idle; ``sample: 0`` read a busy one as 0%."""
    path = tmp_path / "bad.yaml"
    path.write_text(
        "id: kill_idle\n"
        "trigger: {type: resource.high}\n"
        "actions:\n"
        "  - type: process.kill\n"
        "    target: idle_agents\n"
        f"    {line}\n"
    )

    with pytest.raises(PlaybookError) as info:
        load_playbooks([path])

    [problem] = info.value.problems
    assert problem.field == f"actions[0].{field}", problem
    assert problem.line == 6


def test_a_verify_pattern_takes_the_event_value_literally(spawn: Spawner) -> None:
    """agent_memory_leak verifies with ``*${labels.agent}*``: a label ``*`` must not make the
    reading cover every process (and so pass or fail for the wrong ones)."""
    from aios.event import Event
    from aios.probes import PROBES, ProbeContext
    from aios.reactor.engine import _render_param

    spawn("verified")
    marker = spawn.marker("verified")
    count = PROBES["process_count"].read
    ctx = ProbeContext((), list)

    def counted(label: str) -> int:
        event = Event.create(type="agent.memory_leak", labels={"agent": label})
        pattern = _render_param("*${labels.agent}*", event, glob=True)
        return int(count({"pattern": pattern}, ctx))

    assert counted(marker) == 1
    # As globs each would match the child; taken literally no process has these names.
    for label in (marker[:-3] + "*", marker[:-1] + "?", marker[:-1] + "[a-z]"):
        assert counted(label) == 0, label
    assert counted(" ") == 0  # blank: the template itself, which matches nothing
