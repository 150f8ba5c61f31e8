"""The managed agents: their processes (by ``[agents] patterns``) and their tasks (by events).

A pattern ``writer=*writer_agent.py*`` names its agent ``writer``; a bare glob names it after
the glob without wildcards (``*reader.py*`` -> ``reader.py``). In events, an agent is the
``agent`` label of ``task.*`` events, or their source when there is no such label.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import duckdb

from aios.observe.host import ProcessInfo

AGENT_OF = "coalesce(labels->>'agent', source)"


def parse_patterns(patterns: list[str]) -> list[tuple[str, str]]:
    """``[(agent name, glob)]`` from ``[agents] patterns``."""
    out = []
    for pattern in patterns:
        name, sep, glob = pattern.partition("=")
        if sep and name.strip() and "*" not in name:
            out.append((name.strip(), glob.strip()))
        else:
            bare = pattern.replace("*", "").replace("?", "").strip().split("/")[-1]
            out.append((bare or pattern, pattern))
    return out


@dataclass
class AgentProcesses:
    agent: str
    processes: list[ProcessInfo] = field(default_factory=list)

    @property
    def cpu_percent(self) -> float:
        return round(sum(p.cpu_percent for p in self.processes), 2)

    @property
    def rss_mb(self) -> float:
        return round(sum(p.rss_mb for p in self.processes), 1)

    def payload(self) -> dict[str, Any]:
        return {
            "agent": self.agent,
            "processes": len(self.processes),
            "pids": [p.pid for p in self.processes],
            "cpu_percent": self.cpu_percent,
            "rss_mb": self.rss_mb,
        }


def agent_processes(table: list[ProcessInfo], patterns: list[str]) -> dict[str, AgentProcesses]:
    """The processes of each configured agent (an agent with none is listed, empty)."""
    named = parse_patterns(patterns)
    found = {name: AgentProcesses(name) for name, _ in named}
    for proc in table:
        for name, glob in named:
            if fnmatch.fnmatchcase(proc.name, glob) or fnmatch.fnmatchcase(proc.cmdline, glob):
                found[name].processes.append(proc)
                break
    return found


@dataclass
class AgentTasks:
    agent: str
    completed: int
    failed: int
    last_seen: datetime | None
    last_error: str | None

    @property
    def success_rate(self) -> float | None:
        total = self.completed + self.failed
        return self.completed / total if total else None


def agent_tasks(con: duckdb.DuckDBPyConnection, since: datetime) -> dict[str, AgentTasks]:
    """Task outcomes per agent since ``since`` (agents seen in events)."""
    rows = con.execute(
        f"""
        SELECT {AGENT_OF} AS agent,
               count(*) FILTER (WHERE type = 'task.completed'),
               count(*) FILTER (WHERE type = 'task.failed'),
               max(time),
               arg_max(payload->>'error', seq) FILTER (WHERE type = 'task.failed')
        FROM events
        WHERE type IN ('task.started', 'task.completed', 'task.failed') AND time >= ?
        GROUP BY 1
        """,
        [since],
    ).fetchall()
    return {
        agent: AgentTasks(agent, int(done), int(failed), seen, error)
        for agent, done, failed, seen, error in rows
    }
