"""``process.kill``, ``process.signal``, ``process.renice``: act on chosen processes.

Choose with ``target: idle_agents`` (processes matching ``[agents] patterns`` using less CPU
than ``idle_cpu_below`` over ``sample``), ``target: agents``, or ``name`` / ``cmdline`` globs,
``user``, ``pid``, ``memory_above_mb`` and ``older_than``. Acting only on agents carries low
risk; any other choice, or a ``user`` taken from the event, at least medium. Agents are chosen
among the processes of the user AIOS runs as, unless ``user`` names another (a glob: ``"*"``
for anyone). Values an event puts into ``name``, ``cmdline`` or ``user`` match literally.

Executing after a plan acts only on the processes that plan listed (what a person approved);
one that came to match since is left alone and named. Just before it is signalled or reniced,
each process is pinned and checked again: the same pid *and* start (so a reused pid is never
hit), and still matching the choice (so a process that renamed itself or exec'd into something
else since is left alone). Rollbacks make the same checks.

A kill cannot be undone and says so; a renice is undone by restoring the old niceness; of the
signals, only SIGSTOP has an undo (SIGCONT).
"""

from __future__ import annotations

import dataclasses
import signal as signals
from collections.abc import Iterator
from datetime import timedelta
from typing import Any, ClassVar, Literal

import psutil
from pydantic import Field, field_validator, model_validator

from aios.actions.base import (
    _TEMPLATE,
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
    escape_glob,
    hold,
    select,
    still_matching,
)
from aios.durations import Duration
from aios.event import Event

# Where ``plan`` leaves its choice in the context, for ``execute`` to keep to it.
_PLANNED = "process_plan"
# CPU is sampled for at least this long: over shorter spans psutil's figures mean little (a
# busy process can read as 0%).
_MIN_SAMPLE_S, _MAX_SAMPLE_S = 0.1, 300.0


def render_glob(raw: str, event: Event, field: str) -> str:
    """``raw`` with each ``${path}`` replaced by the event's value, escaped so that it matches
    only literally (a label ``*`` matches a ``*``, not everything).

    Raises ActionError when a value is empty or blank (``*${labels.agent}*`` would then match
    every process), InputError when the event lacks it.
    """
    parts: list[str] = []
    pos = 0
    for match in _TEMPLATE.finditer(raw):
        value = str(render(match.group(0), event))
        if not value.strip():
            raise ActionError(
                f"{field}: {match.group(0)} is empty in the event; refusing a pattern that "
                "would match any process"
            )
        parts += [raw[pos : match.start()], escape_glob(value)]
        pos = match.end()
    parts.append(raw[pos:])
    return "".join(parts)


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
        default=None,
        ge=0,
        description="CPU percent below which a process counts as idle.",
    )
    sample: Duration = Field(
        default=timedelta(seconds=1),
        description="How long to sample CPU for idleness.",
    )
    memory_above_mb: float | None = Field(default=None, ge=0, description="RSS above this.")
    older_than: Duration | None = Field(default=None, description="Running longer than this.")
    max_processes: int = Field(default=10, ge=1, description="Act on at most this many.")

    @field_validator("sample")
    @classmethod
    def _sample_span(cls, sample: timedelta) -> timedelta:
        seconds = sample.total_seconds()
        if not _MIN_SAMPLE_S <= seconds <= _MAX_SAMPLE_S:
            raise ValueError(
                f"must be between {_MIN_SAMPLE_S:g}s and {_MAX_SAMPLE_S:g}s, not {seconds:g}s"
            )
        return sample

    @model_validator(mode="after")
    def _needs_a_choice(self) -> ProcessAction:
        if not (self.target or self.name or self.cmdline or self.pid is not None):
            raise ValueError("choose processes with target, name, cmdline or pid")
        return self

    def floor(self) -> Risk:
        """Low for agents of a user the playbook fixes; medium for any other choice, and when
        the event names the user (the event then decides whose processes are reached)."""
        if not self.target or (self.user is not None and _TEMPLATE.search(self.user)):
            return Risk.MEDIUM
        return Risk.LOW

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
            name=render_glob(self.name, ctx.event, "name") if self.name else None,
            cmdline=render_glob(self.cmdline, ctx.event, "cmdline") if self.cmdline else None,
            user=render_glob(self.user, ctx.event, "user") if self.user else None,
            pid=pid,
            agents_only=self.target is not None,
            idle_below=idle,
            sample_seconds=self.sample.total_seconds(),
            memory_above_mb=self.memory_above_mb,
            older_than_s=self.older_than.total_seconds() if self.older_than else None,
            limit=self.max_processes,
        )

    def choose(self, ctx: ActionContext, *, limited: bool = True) -> list[Chosen]:
        """The processes chosen now (at most ``max_processes`` when ``limited``)."""
        if self.target and not ctx.agent_patterns:
            raise ActionError(
                f"target: {self.target} needs [agents] patterns in config.toml; none are set"
            )
        selector = self.selector(ctx)
        if not limited:
            selector = dataclasses.replace(selector, limit=None)
        return select(selector, ctx.agent_patterns, ctx.protected_patterns)

    def _planned(self, ctx: ActionContext) -> list[Chosen] | None:
        """The processes this action's plan chose in ``ctx``; None if it was not planned."""
        found = ctx.extra.get(_PLANNED)
        if not isinstance(found, tuple) or found[0] != self.model_dump(mode="json"):
            return None
        return list(found[1])

    def targets(self, ctx: ActionContext) -> tuple[list[Chosen], list[dict[str, Any]]]:
        """The processes to act on, and those left alone because of the plan, with why.

        After a plan (in the same context) only the processes it listed that are still chosen
        now, so an approval covers exactly what the person saw; the ones that came to match
        since are left alone and named, and so are planned ones no longer chosen. Without a
        plan, the choice now.
        """
        planned = self._planned(ctx)
        if planned is None:
            return self.choose(ctx), []
        now = self.choose(ctx, limited=False)
        keep = [c for c in planned if any(c.is_same(n) for n in now)]
        left = [
            {**c.to_dict(), "why": "no longer chosen since the plan (gone or changed)"}
            for c in planned
            if not any(c.is_same(k) for k in keep)
        ]
        left += [
            {**n.to_dict(), "why": "not in the plan that was approved: left alone"}
            for n in now
            if not any(n.is_same(c) for c in planned)
        ]
        return keep, left

    def held(
        self, ctx: ActionContext, chosen: list[Chosen]
    ) -> Iterator[tuple[Chosen, Held | None, str]]:
        """Each process of ``chosen``, pinned, with why it is left alone when it is (then
        None).

        Checked one by one right before the caller acts on it: a process is acted on only
        while it is the one chosen and still matches the choice.
        """
        selector = self.selector(ctx)
        for item in chosen:
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

    def _rollback_selector(self, undo: dict[str, Any], ctx: ActionContext) -> Selector:
        """What a process must still match for a rollback to touch it."""
        recorded = undo.get("selection")
        if isinstance(recorded, dict):
            return Selector.from_identity(recorded)
        return self.selector(ctx)

    def _plan(self, ctx: ActionContext, verb: str) -> ActionPlan:
        chosen = self.choose(ctx)
        ctx.extra[_PLANNED] = (self.model_dump(mode="json"), tuple(chosen))
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
        chosen, left_alone = self.targets(ctx)
        alive: list[Held] = []
        skipped: list[dict[str, Any]] = []
        forced: list[int] = []
        try:
            for item, target, why in self.held(ctx, chosen):
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
            "left_alone": left_alone,
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
        chosen, left_alone = self.targets(ctx)
        sent, skipped, notes = [], [], []
        for item, target, why in self.held(ctx, chosen):
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
        notes += [f"pid {entry['pid']}: {entry['why']}" for entry in left_alone]
        return {
            "signal": self.signal,
            "sent": sent,
            "skipped": skipped,
            "notes": notes,
            "left_alone": left_alone,
            "selection": self.selector(ctx).identity(),
        }

    def rollback(self, undo: dict[str, Any], ctx: ActionContext) -> str:
        """SIGCONT to each process AIOS stopped that is still the one stopped and still
        matches the selection. One that no longer matches (protected now, say) is left as it
        is and the rollback fails naming it, so a person looks rather than AIOS resuming it."""
        if undo.get("signal") != "SIGSTOP":
            raise IrreversibleError(f"{undo.get('signal')} cannot be undone")
        selector = self._rollback_selector(undo, ctx)
        resumed, left, changed = [], [], []
        for entry in undo.get("sent", []):
            if entry.get("was_stopped"):
                left.append(entry["pid"])  # stopped before AIOS acted: leave it so
                continue
            target = hold(_chosen_from(entry))
            if target is None:
                continue
            try:
                why = still_matching(target, selector, ctx.agent_patterns, ctx.protected_patterns)
                if why is not None:
                    changed.append(f"pid {entry['pid']} ({why})")
                    continue
                target.send(signals.SIGCONT)
                resumed.append(entry["pid"])
            except psutil.Error:
                continue
            finally:
                target.close()
        text = f"sent SIGCONT to {len(resumed)} process(es) AIOS had stopped: {resumed}"
        text += f"; left stopped as found: {left}" if left else ""
        if changed:  # not undone: a person must look (rollback.failed, escalated)
            raise ActionError(
                f"{text}; left stopped, no longer matching the selection: {', '.join(changed)}"
            )
        return text


class ProcessRenice(ProcessAction):
    """Set the niceness of the chosen processes; undone by restoring the old values."""

    type: Literal["process.renice"] = "process.renice"
    nice: int = Field(ge=-20, le=19, description="New niceness (higher is lower priority).")

    def plan(self, ctx: ActionContext) -> ActionPlan:
        return self._plan(ctx, f"renice to {self.nice}")

    def execute(self, ctx: ActionContext) -> dict[str, Any]:
        chosen, left_alone = self.targets(ctx)
        changed, skipped, notes = [], [], []
        for item, target, why in self.held(ctx, chosen):
            if target is None:
                skipped.append(item.pid)
                notes.append(f"pid {item.pid}: {why}")
                continue
            try:
                old = target.set_nice(self.nice)
                changed.append({**item.to_dict(), "old_nice": old})
            except psutil.Error as exc:
                skipped.append(item.pid)
                notes.append(f"pid {item.pid}: {exc}")
            finally:
                target.close()
        notes += [f"pid {entry['pid']}: {entry['why']}" for entry in left_alone]
        return {
            "nice": self.nice,
            "changed": changed,
            "skipped": skipped,
            "notes": notes,
            "left_alone": left_alone,
            "selection": self.selector(ctx).identity(),
        }

    def rollback(self, undo: dict[str, Any], ctx: ActionContext) -> str:
        """The old niceness back on each process AIOS reniced that is still the one reniced
        and still matches the selection. One that no longer matches is left as it is and the
        rollback fails naming it, so a person looks."""
        selector = self._rollback_selector(undo, ctx)
        restored, gone, changed = [], [], []
        for entry in undo.get("changed", []):
            target = hold(_chosen_from(entry))
            if target is None:
                gone.append(entry["pid"])
                continue
            try:
                why = still_matching(target, selector, ctx.agent_patterns, ctx.protected_patterns)
                if why is not None:
                    changed.append(f"pid {entry['pid']} ({why})")
                    continue
                target.set_nice(entry["old_nice"])
            except psutil.NoSuchProcess:
                gone.append(entry["pid"])
                continue
            except psutil.Error as exc:
                raise ActionError(
                    f"cannot restore the niceness of pid {entry['pid']}: {exc}"
                ) from None
            finally:
                target.close()
            restored.append(f"pid {entry['pid']} nice {entry['old_nice']}")
        text = "restored " + (", ".join(restored) or "nothing")
        text += f"; gone since: {gone}" if gone else ""
        if changed:  # not undone: a person must look (rollback.failed, escalated)
            raise ActionError(
                f"{text}; left reniced, no longer matching the selection: {', '.join(changed)}"
            )
        return text


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
