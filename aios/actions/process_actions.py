"""``process.kill``, ``process.signal``, ``process.renice``: act on chosen processes.

Choose with ``target: idle_agents`` (processes matching ``[agents] patterns`` using less CPU
than ``idle_cpu_below`` over ``sample``), ``target: agents``, or ``name`` / ``cmdline`` globs,
``user``, ``pid``, ``memory_above_mb`` and ``older_than``. Acting only on agents carries low
risk; any other choice at least medium. Agents are chosen among the processes of the user AIOS
runs as, unless ``user`` names another (a glob: ``"*"`` for anyone). Just before it is signalled
or reniced, each process is pinned and checked again: the same pid *and* start (so a reused pid
is never hit), and still matching the choice (so a process that renamed itself or exec'd into
something else since is left alone).

A kill cannot be undone and says so; a renice is undone by restoring the old niceness; of the
signals, only SIGSTOP has an undo (SIGCONT).
"""

from __future__ import annotations

import signal as signals
from collections.abc import Iterator
from datetime import timedelta
from typing import Any, ClassVar, Literal

import psutil
from pydantic import Field, model_validator

from aios.actions.base import (
    ActionContext,
    ActionError,
    ActionPlan,
    ActionSpec,
    IrreversibleError,
    Risk,
    render,
)
from aios.actions.process_select import (
    Chosen,
    Held,
    Selector,
    hold,
    same_process,
    select,
    still_matching,
)
from aios.durations import Duration


class ProcessAction(ActionSpec):
    """Shared selection parameters."""

    target: Literal["agents", "idle_agents"] | None = Field(
        default=None, description="agents, or idle_agents (agents below idle_cpu_below)."
    )
    name: str | None = Field(default=None, description="Process name glob.")
    cmdline: str | None = Field(default=None, description="Command-line glob.")
    user: str | None = Field(
        default=None,
        description="Only processes of this user (a glob; * for any). target: agents and "
        "idle_agents default to the user AIOS runs as.",
    )
    pid: int | str | None = Field(default=None, description="One pid, e.g. ${payload.pid}.")
    idle_cpu_below: float | None = Field(
        default=None, ge=0, description="CPU percent below which a process counts as idle."
    )
    sample: Duration = Field(
        default=timedelta(seconds=1), description="How long to sample CPU for idleness."
    )
    memory_above_mb: float | None = Field(default=None, ge=0, description="RSS above this.")
    older_than: Duration | None = Field(default=None, description="Running longer than this.")
    max_processes: int = Field(default=10, ge=1, description="Act on at most this many.")

    @model_validator(mode="after")
    def _needs_a_choice(self) -> ProcessAction:
        if not (self.target or self.name or self.cmdline or self.pid is not None):
            raise ValueError("choose processes with target, name, cmdline or pid")
        return self

    def floor(self) -> Risk:
        return Risk.LOW if self.target else Risk.MEDIUM

    def selector(self, ctx: ActionContext) -> Selector:
        pid = render(self.pid, ctx.event) if self.pid is not None else None
        if pid is not None:
            try:
                pid = int(pid)
            except (TypeError, ValueError):
                raise ActionError(f"pid {pid!r} is not a number") from None
        idle = self.idle_cpu_below
        if self.target == "idle_agents" and idle is None:
            idle = 2.0
        return Selector(
            name=render(self.name, ctx.event) if self.name else None,
            cmdline=render(self.cmdline, ctx.event) if self.cmdline else None,
            user=str(render(self.user, ctx.event)) if self.user else None,
            pid=pid,
            agents_only=self.target is not None,
            idle_below=idle,
            sample_seconds=self.sample.total_seconds(),
            memory_above_mb=self.memory_above_mb,
            older_than_s=self.older_than.total_seconds() if self.older_than else None,
            limit=self.max_processes,
        )

    def choose(self, ctx: ActionContext) -> list[Chosen]:
        if self.target and not ctx.agent_patterns:
            raise ActionError(
                f"target: {self.target} needs [agents] patterns in config.toml; none are set"
            )
        return select(self.selector(ctx), ctx.agent_patterns, ctx.protected_patterns)

    def held(self, ctx: ActionContext) -> Iterator[tuple[Chosen, Held | None, str]]:
        """Each chosen process, pinned, with why it is left alone when it is (then None).

        Chosen afresh, then checked one by one right before the caller acts on it: a process
        is acted on only while it is the one chosen and still matches the choice.
        """
        selector = self.selector(ctx)
        for item in self.choose(ctx):
            target = hold(item)
            if target is None:
                yield item, None, "gone or pid reused"
                continue
            why = still_matching(target, selector, ctx.agent_patterns, ctx.protected_patterns)
            if why is not None:
                target.close()
                yield item, None, f"no longer matches: {why}"
                continue
            yield item, target, ""

    def _plan(self, ctx: ActionContext, verb: str) -> ActionPlan:
        chosen = self.choose(ctx)
        summary = (
            f"{verb} {len(chosen)} process(es): " + "; ".join(c.describe() for c in chosen)
            if chosen
            else f"{verb}: no process matches"
        )
        return ActionPlan(
            self.type,
            summary,
            targets=[f"pid {c.pid}" for c in chosen],
            reversible=self.is_reversible(),
            risk=self.floor(),
            details={"processes": [c.to_dict() for c in chosen]},
        )


class ProcessKill(ProcessAction):
    """Terminate the chosen processes: SIGTERM, then SIGKILL after ``grace``. Irreversible."""

    type: Literal["process.kill"] = "process.kill"
    grace: Duration = Field(
        default=timedelta(seconds=5), description="Wait this long after SIGTERM before SIGKILL."
    )
    reversible: ClassVar[bool] = False

    def plan(self, ctx: ActionContext) -> ActionPlan:
        return self._plan(ctx, "kill (irreversible)")

    def execute(self, ctx: ActionContext) -> dict[str, Any]:
        alive: list[Held] = []
        skipped: list[dict[str, Any]] = []
        forced: list[int] = []
        try:
            for item, target, why in self.held(ctx):
                if target is None:
                    skipped.append({**item.to_dict(), "why": why})
                    continue
                try:
                    target.send(signals.SIGTERM)
                    alive.append(target)
                except psutil.Error as exc:
                    target.close()
                    skipped.append({**item.to_dict(), "why": str(exc)})
            procs = {target.proc: target for target in alive}
            _gone, still = psutil.wait_procs(list(procs), timeout=self.grace.total_seconds())
            killed = []
            for proc in still:
                try:
                    procs[proc].send(signals.SIGKILL)  # pinned: never a newcomer on its pid
                    forced.append(proc.pid)
                    killed.append(proc)
                except psutil.Error:
                    pass  # it exited meanwhile (its pid may already be another's: not waited on)
            psutil.wait_procs(killed, timeout=5)
        finally:
            for target in alive:
                target.close()
        return {
            "irreversible": True,
            "killed": [target.chosen.to_dict() for target in alive],
            "forced_sigkill": forced,
            "skipped": skipped,
        }

    def rollback(self, undo: dict[str, Any], ctx: ActionContext) -> str:
        pids = [p["pid"] for p in undo.get("killed", [])]
        raise IrreversibleError(f"killed processes cannot be brought back (pids {pids})")


_SIGNALS = {
    name: getattr(signals, name)
    for name in ("SIGHUP", "SIGINT", "SIGTERM", "SIGUSR1", "SIGUSR2", "SIGSTOP", "SIGCONT")
}


class ProcessSignal(ProcessAction):
    """Send ``signal`` to the chosen processes. Only SIGSTOP can be undone (with SIGCONT)."""

    type: Literal["process.signal"] = "process.signal"
    signal: Literal["SIGHUP", "SIGINT", "SIGTERM", "SIGUSR1", "SIGUSR2", "SIGSTOP", "SIGCONT"] = (
        Field(description="The signal to send.")
    )

    def is_reversible(self) -> bool:
        return self.signal == "SIGSTOP"

    def plan(self, ctx: ActionContext) -> ActionPlan:
        return self._plan(ctx, f"send {self.signal} to")

    def execute(self, ctx: ActionContext) -> dict[str, Any]:
        sent, skipped, notes = [], [], []
        for item, target, why in self.held(ctx):
            if target is None:
                skipped.append(item.pid)
                notes.append(f"pid {item.pid}: {why}")
                continue
            try:
                was_stopped = target.proc.status() == psutil.STATUS_STOPPED
                target.send(_SIGNALS[self.signal])
                sent.append({**item.to_dict(), "was_stopped": was_stopped})
            except psutil.Error as exc:
                skipped.append(item.pid)
                notes.append(f"pid {item.pid}: {exc}")
            finally:
                target.close()
        return {"signal": self.signal, "sent": sent, "skipped": skipped, "notes": notes}

    def rollback(self, undo: dict[str, Any], ctx: ActionContext) -> str:
        if undo.get("signal") != "SIGSTOP":
            raise IrreversibleError(f"{undo.get('signal')} cannot be undone")
        resumed, left = [], []
        for entry in undo.get("sent", []):
            if entry.get("was_stopped"):
                left.append(entry["pid"])  # stopped before AIOS acted: leave it so
                continue
            target = hold(_chosen_from(entry))
            if target is None:
                continue
            try:
                target.send(signals.SIGCONT)
                resumed.append(entry["pid"])
            except psutil.Error:
                continue
            finally:
                target.close()
        text = f"sent SIGCONT to {len(resumed)} process(es) AIOS had stopped: {resumed}"
        return text + (f"; left stopped as found: {left}" if left else "")


class ProcessRenice(ProcessAction):
    """Set the niceness of the chosen processes; undone by restoring the old values."""

    type: Literal["process.renice"] = "process.renice"
    nice: int = Field(ge=-20, le=19, description="New niceness (higher is lower priority).")

    def plan(self, ctx: ActionContext) -> ActionPlan:
        return self._plan(ctx, f"renice to {self.nice}")

    def execute(self, ctx: ActionContext) -> dict[str, Any]:
        changed, skipped, notes = [], [], []
        for item, target, why in self.held(ctx):
            if target is None:
                skipped.append(item.pid)
                notes.append(f"pid {item.pid}: {why}")
                continue
            try:
                old = target.proc.nice()
                target.proc.nice(self.nice)  # psutil checks the start time right before
                changed.append({**item.to_dict(), "old_nice": old})
            except psutil.Error as exc:
                skipped.append(item.pid)
                notes.append(f"pid {item.pid}: {exc}")
            finally:
                target.close()
        return {"nice": self.nice, "changed": changed, "skipped": skipped, "notes": notes}

    def rollback(self, undo: dict[str, Any], ctx: ActionContext) -> str:
        restored, gone = [], []
        for entry in undo.get("changed", []):
            proc = same_process(_chosen_from(entry))
            if proc is None:
                gone.append(entry["pid"])
                continue
            try:
                proc.nice(entry["old_nice"])
            except psutil.NoSuchProcess:
                gone.append(entry["pid"])
                continue
            except psutil.Error as exc:
                raise ActionError(
                    f"cannot restore the niceness of pid {entry['pid']}: {exc}"
                ) from None
            restored.append(f"pid {entry['pid']} nice {entry['old_nice']}")
        text = "restored " + (", ".join(restored) or "nothing")
        return text + (f"; gone since: {gone}" if gone else "")


def _chosen_from(entry: dict[str, Any]) -> Chosen:
    return Chosen(
        pid=entry["pid"],
        name=entry.get("name", ""),
        cmdline=entry.get("cmdline", ""),
        username=entry.get("username", ""),
        create_time=entry["create_time"],
        cpu_percent=entry.get("cpu_percent"),
        rss_mb=entry.get("rss_mb", 0.0),
        is_agent=entry.get("is_agent", False),
        start_ticks=entry.get("start_ticks"),
    )
