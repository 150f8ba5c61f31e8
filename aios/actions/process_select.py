"""Choosing processes to act on: by name or command-line glob, user, idleness, memory and age.

Some processes are never chosen, whatever a playbook says: pid 1, AIOS itself (this process,
its ancestors and anything running the ``aios`` command), the Prefect and Chroma servers, and
whatever matches ``[reactor] protected_patterns``. ``target: agents`` and ``target:
idle_agents`` restrict the choice to processes matching ``[agents] patterns``, run by the user
AIOS runs as unless the playbook names another ``user``.

A chosen process is acted on only through ``hold``: it pins the process (a pidfd, where the
kernel has them) and confirms it is the one chosen, by pid and exact start time, so a pid
reused in between is never hit; the action then checks it still matches (a process that made
itself look like something else since is left alone).

Values taken from events go into the globs through ``escape_glob``, so they match only
literally: a label ``*`` names a process called ``*``, not every process.
"""

from __future__ import annotations

import contextlib
import fnmatch
import functools
import glob
import os
import select as readiness
import signal as signals
import time
from dataclasses import dataclass

import psutil

from aios.observe.agents import parse_patterns

# Command lines of processes that are never targets (globs over the joined command line).
BUILTIN_PROTECTED = (
    "*prefect server*",
    "*prefect.server*",
    "*uvicorn*prefect*",
    "*prefect worker*",
    "*chroma run*",
    "*/bin/aios *",
    "*/bin/aios",
    "* -m aios*",
)


@dataclass(frozen=True)
class Chosen:
    """A process picked for an action, with what identifies it against pid reuse."""

    pid: int
    name: str
    cmdline: str
    username: str
    create_time: float
    cpu_percent: float | None
    rss_mb: float
    is_agent: bool
    start_ticks: int | None = None  # clock ticks from boot to its start: exact, unlike the time

    def describe(self) -> str:
        cpu = "" if self.cpu_percent is None else f", cpu {self.cpu_percent:.1f}%"
        return (
            f"pid {self.pid} {self.name} of {self.username or '?'} "
            f"({self.cmdline[:80]}{cpu}, {self.rss_mb:.0f} MB)"
        )

    def is_same(self, other: Chosen) -> bool:
        """Whether ``other`` is this very process: the same pid and start (to the clock tick
        when both recorded it, else within a second)."""
        if self.pid != other.pid:
            return False
        if self.start_ticks is not None and other.start_ticks is not None:
            return self.start_ticks == other.start_ticks
        return abs(self.create_time - other.create_time) <= 1.0

    def to_dict(self) -> dict[str, object]:
        return {
            "pid": self.pid,
            "name": self.name,
            "cmdline": self.cmdline[:500],
            "username": self.username,
            "create_time": self.create_time,
            "cpu_percent": self.cpu_percent,
            "rss_mb": round(self.rss_mb, 1),
            "is_agent": self.is_agent,
            "start_ticks": self.start_ticks,
        }


def escape_glob(text: str) -> str:
    """A glob that matches exactly ``text``: each of ``* ? [`` becomes a one-character set
    (``glob.escape``; a lone ``]`` is literal to ``fnmatch`` already)."""
    return glob.escape(text)


def matches_any(name: str, cmdline: str, patterns: tuple[str, ...]) -> bool:
    """Whether the process name or its command line matches one of the globs."""
    return any(
        fnmatch.fnmatchcase(name, pattern) or fnmatch.fnmatchcase(cmdline, pattern)
        for pattern in patterns
    )


def _own_pids() -> set[int]:
    me = psutil.Process()
    pids = {1, me.pid}
    with contextlib.suppress(psutil.Error):
        pids.update(p.pid for p in me.parents())
    return pids


@dataclass(frozen=True)
class Selector:
    """Which processes to choose."""

    name: str | None = None
    cmdline: str | None = None
    user: str | None = None
    pid: int | None = None
    agents_only: bool = False
    idle_below: float | None = None  # cpu percent
    sample_seconds: float = 1.0
    memory_above_mb: float | None = None
    older_than_s: float | None = None
    limit: int | None = None

    def identity(self) -> dict[str, object]:
        """What a process must keep matching (its name, command line, user, being an agent),
        as plain data for an undo record; ``from_identity`` reads it back."""
        return {
            "name": self.name,
            "cmdline": self.cmdline,
            "user": self.user,
            "agents_only": self.agents_only,
        }

    @classmethod
    def from_identity(cls, data: dict[str, object]) -> Selector:
        def text(key: str) -> str | None:
            value = data.get(key)
            return value if isinstance(value, str) else None

        return cls(
            name=text("name"),
            cmdline=text("cmdline"),
            user=text("user"),
            agents_only=bool(data.get("agents_only")),
        )


@functools.cache
def _own_user() -> str:
    with contextlib.suppress(psutil.Error):
        return str(psutil.Process().username())
    return str(os.getuid())


def refusal(
    selector: Selector,
    name: str,
    cmdline: str,
    username: str,
    agent_globs: tuple[str, ...],
    protected: tuple[str, ...],
) -> str | None:
    """Why a process with this name, command line and user is not to be chosen; None if it is.

    ``agent_globs`` are the globs of ``[agents] patterns``; ``protected`` includes the built-in
    patterns. Resource filters (idleness, memory, age) are not judged here.
    """
    if matches_any(name, cmdline, protected):
        return "protected"
    if selector.agents_only and not (agent_globs and matches_any(name, cmdline, agent_globs)):
        return "not an agent"
    if selector.name and not fnmatch.fnmatchcase(name, selector.name):
        return f"name is not {selector.name}"
    if selector.cmdline and not fnmatch.fnmatchcase(cmdline, selector.cmdline):
        return f"command line is not {selector.cmdline}"
    # An agent pattern matches whoever runs a matching command; left to its default, an action
    # on agents (low risk, run without asking) stays with AIOS's own user's processes.
    user = selector.user or (_own_user() if selector.agents_only else None)
    if user and not fnmatch.fnmatchcase(username, user):
        return f"user {username or '?'} is not {user}"
    return None


def select(
    selector: Selector,
    agent_patterns: tuple[str, ...],
    protected_patterns: tuple[str, ...] = (),
) -> list[Chosen]:
    """The processes ``selector`` picks, never a protected one, most memory first."""
    protected = BUILTIN_PROTECTED + protected_patterns
    # [agents] patterns may name their agent (``writer=*writer_agent.py*``): match the glob.
    agent_globs = agent_globs_of(agent_patterns)
    own = _own_pids()
    now = time.time()
    candidates: list[tuple[psutil.Process, str, str, str, float, float, bool]] = []
    attrs = ["pid", "name", "cmdline", "username", "create_time", "memory_info"]
    for proc in psutil.process_iter(attrs):
        info = proc.info
        pid = info["pid"]
        if pid in own or (selector.pid is not None and pid != selector.pid):
            continue
        name = info.get("name") or ""
        cmdline = " ".join(info.get("cmdline") or [])
        username = info.get("username") or ""
        if refusal(selector, name, cmdline, username, agent_globs, protected):
            continue
        is_agent = bool(agent_globs) and matches_any(name, cmdline, agent_globs)
        created = info.get("create_time") or now
        if selector.older_than_s is not None and now - created < selector.older_than_s:
            continue
        memory = info.get("memory_info")
        rss_mb = memory.rss / 2**20 if memory else 0.0
        if selector.memory_above_mb is not None and rss_mb <= selector.memory_above_mb:
            continue
        candidates.append((proc, name, cmdline, username, created, rss_mb, is_agent))
    cpu: dict[int, float | None] = {}
    if selector.idle_below is not None and candidates:
        for proc, *_ in candidates:
            with contextlib.suppress(psutil.Error):
                proc.cpu_percent(None)
        time.sleep(selector.sample_seconds)
        for proc, *_ in candidates:
            try:
                cpu[proc.pid] = proc.cpu_percent(None)
            except psutil.Error:
                cpu[proc.pid] = None
    chosen = []
    for proc, name, cmdline, username, created, rss_mb, is_agent in candidates:
        usage = cpu.get(proc.pid)
        if selector.idle_below is not None and (usage is None or usage >= selector.idle_below):
            continue
        ticks = start_ticks(proc.pid)
        if not proc.is_running():
            continue  # gone, or its pid reused: then the ticks just read are not its own
        chosen.append(
            Chosen(
                pid=proc.pid,
                name=name,
                cmdline=cmdline,
                username=username,
                create_time=created,
                cpu_percent=usage,
                rss_mb=rss_mb,
                is_agent=is_agent,
                start_ticks=ticks,
            )
        )
    chosen.sort(key=lambda c: c.rss_mb, reverse=True)
    return chosen[: selector.limit] if selector.limit else chosen


def agent_globs_of(agent_patterns: tuple[str, ...]) -> tuple[str, ...]:
    """The globs of ``[agents] patterns`` (``name=glob`` or a bare glob)."""
    return tuple(glob for _, glob in parse_patterns(list(agent_patterns)))


def start_ticks(pid: int) -> int | None:
    """When ``pid`` started, in clock ticks since boot (Linux); None where it cannot be read.

    Unlike a start time in seconds since the epoch, which psutil derives from the boot time
    and which moves when the clock is set, this never changes for a process and tells apart
    two processes started more than a tick (10 ms) apart on the same pid.
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            fields = handle.read().rsplit(b")", 1)[1].split()
        return int(fields[19])  # field 22 of the file; the name before ")" may hold spaces
    except (OSError, IndexError, ValueError):
        return None


def same_process(chosen: Chosen) -> psutil.Process | None:
    """The process if it is still the one chosen (same pid and start), else None.

    An exited process (a zombie not yet reaped) counts as gone. The start time is compared
    within a second (psutil derives it from the boot time, which a clock step can move), and,
    when the choice recorded them, the clock ticks from boot to the start exactly: a pid
    reused within that second is told apart too.
    """
    try:
        proc = psutil.Process(chosen.pid)
        if abs(proc.create_time() - chosen.create_time) > 1.0:
            return None  # the pid was reused by another process
        # Read after the Process was made: if these are the chosen process's ticks, it held
        # the pid all along, so ``proc`` is it too.
        if chosen.start_ticks is not None and start_ticks(chosen.pid) != chosen.start_ticks:
            return None
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        return proc
    except psutil.Error:
        return None


class Held:
    """A chosen process confirmed to be the one chosen and pinned until ``close``.

    With a pidfd, a signal reaches this very process or none: its pid may be reused after the
    check and the signal still cannot hit the newcomer. Without one (an old kernel), psutil
    checks the start time again right before each signal.
    """

    def __init__(self, chosen: Chosen, proc: psutil.Process, pidfd: int | None) -> None:
        self.chosen, self.proc, self._pidfd = chosen, proc, pidfd

    @property
    def pid(self) -> int:
        return self.chosen.pid

    def exited(self) -> bool:
        """Whether the process has exited (a zombie counts). Without a pidfd: whether its pid
        no longer holds the process chosen."""
        if self._pidfd is None:
            return same_process(self.chosen) is None
        poller = readiness.poll()  # not select(): it refuses descriptors above 1023
        poller.register(self._pidfd, readiness.POLLIN)
        return bool(poller.poll(0))

    def set_nice(self, value: int) -> int:
        """Set the niceness to ``value``; the niceness it had.

        ``setpriority`` takes a pid, not a pidfd, so the pidfd is asked before and after: a
        pid is reused only once its process has exited, so a process that had not exited
        after the call still held its pid throughout it. Raises psutil.NoSuchProcess when it
        exited before or during the call (saying so when another process holds the pid now
        and may have been reached), psutil.AccessDenied when not allowed.
        """
        if self._pidfd is None:
            old = int(self.proc.nice())
            self.proc.nice(value)  # psutil checks the start time right before
            return old
        try:
            old = os.getpriority(os.PRIO_PROCESS, self.pid)
            if self.exited():
                raise psutil.NoSuchProcess(self.pid, msg="exited before the renice")
            os.setpriority(os.PRIO_PROCESS, self.pid, value)
        except ProcessLookupError:
            raise psutil.NoSuchProcess(self.pid) from None
        except PermissionError:
            raise psutil.AccessDenied(self.pid) from None
        if self.exited():
            ticks = start_ticks(self.pid)
            if ticks is not None and ticks != self.chosen.start_ticks:
                raise psutil.NoSuchProcess(
                    self.pid,
                    msg=f"exited while being reniced; its pid now holds another process "
                    f"(started at tick {ticks}), which may have been reniced: check it",
                )
            raise psutil.NoSuchProcess(self.pid, msg="exited while being reniced")
        return old

    def send(self, sig: int) -> None:
        """Send ``sig``; psutil.NoSuchProcess if it has exited, AccessDenied if not allowed."""
        if self._pidfd is None:
            self.proc.send_signal(sig)
            return
        try:
            signals.pidfd_send_signal(self._pidfd, sig)
        except ProcessLookupError:
            raise psutil.NoSuchProcess(self.pid) from None
        except PermissionError:
            raise psutil.AccessDenied(self.pid) from None

    def close(self) -> None:
        if self._pidfd is not None:
            os.close(self._pidfd)
            self._pidfd = None


def hold(chosen: Chosen) -> Held | None:
    """The chosen process, pinned, if it is still the one chosen; None if gone or pid reused."""
    pidfd = None
    try:
        pidfd = os.pidfd_open(chosen.pid)
    except ProcessLookupError:
        return None
    except (AttributeError, OSError):
        pidfd = None  # no pidfd here: psutil's own check before each signal remains
    # Checked after pinning: if the pid now belongs to the chosen process, so did the pidfd.
    proc = same_process(chosen)
    if proc is None:
        if pidfd is not None:
            os.close(pidfd)
        return None
    return Held(chosen, proc, pidfd)


def still_matching(
    held: Held,
    selector: Selector,
    agent_patterns: tuple[str, ...],
    protected_patterns: tuple[str, ...],
) -> str | None:
    """Why the held process no longer matches ``selector`` (it changed its name or command
    line, for one, by writing /proc/self/comm or exec'ing); None if it still does."""
    try:
        with held.proc.oneshot():
            name = held.proc.name()
            cmdline = " ".join(held.proc.cmdline())
            username = held.proc.username()
    except psutil.Error as exc:
        return f"cannot be read again: {exc}"
    return refusal(
        selector,
        name,
        cmdline,
        username,
        agent_globs_of(agent_patterns),
        BUILTIN_PROTECTED + protected_patterns,
    )
