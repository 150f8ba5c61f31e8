"""Choosing processes to act on: by name or command-line glob, user, idleness, memory and age.

Some processes are never chosen, whatever a playbook says: pid 1, AIOS itself (this process,
its ancestors and anything running the ``aios`` command), the Prefect and Chroma servers, and
whatever matches ``[reactor] protected_patterns``. ``target: agents`` and ``target:
idle_agents`` restrict the choice to processes matching ``[agents] patterns``.
"""

from __future__ import annotations

import contextlib
import fnmatch
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

    def describe(self) -> str:
        cpu = "" if self.cpu_percent is None else f", cpu {self.cpu_percent:.1f}%"
        return f"pid {self.pid} {self.name} ({self.cmdline[:80]}{cpu}, {self.rss_mb:.0f} MB)"

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
        }


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


def select(
    selector: Selector,
    agent_patterns: tuple[str, ...],
    protected_patterns: tuple[str, ...] = (),
) -> list[Chosen]:
    """The processes ``selector`` picks, never a protected one, most memory first."""
    protected = BUILTIN_PROTECTED + protected_patterns
    # [agents] patterns may name their agent (``writer=*writer_agent.py*``): match the glob.
    agent_patterns = tuple(glob for _, glob in parse_patterns(list(agent_patterns)))
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
        if matches_any(name, cmdline, protected):
            continue
        is_agent = bool(agent_patterns) and matches_any(name, cmdline, agent_patterns)
        if selector.agents_only and not is_agent:
            continue
        if selector.name and not fnmatch.fnmatchcase(name, selector.name):
            continue
        if selector.cmdline and not fnmatch.fnmatchcase(cmdline, selector.cmdline):
            continue
        username = info.get("username") or ""
        if selector.user and username != selector.user:
            continue
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
        if not proc.is_running():
            continue
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
            )
        )
    chosen.sort(key=lambda c: c.rss_mb, reverse=True)
    return chosen[: selector.limit] if selector.limit else chosen


def same_process(chosen: Chosen) -> psutil.Process | None:
    """The process if it is still the one chosen (same pid and start time), else None.

    An exited process (a zombie not yet reaped) counts as gone. The start time is compared
    within a second: psutil derives it from the boot time, which a clock step can move, while
    a pid is not reused within a second on Linux short of exhausting pid_max.
    """
    try:
        proc = psutil.Process(chosen.pid)
        if abs(proc.create_time() - chosen.create_time) > 1.0:
            return None  # the pid was reused by another process
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        return proc
    except psutil.Error:
        return None
