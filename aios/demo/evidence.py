"""The summary's rows, read back from the demo home's store after the scenario: each row says
what happened in the words of the events that record it, names them (type, id, time), and is
marked as not happened when they are not there.

The demo's home is fresh on every run, so every event in it belongs to this run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from aios.demo.agent_events import flow_run_of, flow_run_read, tool_task, tool_timeout
from aios.demo.identities import (
    APPROVER,
    CLEAN_TEMP,
    FLAKY_AGENT,
    FLAKY_TASK,
    IDLE_AGENT,
    KILL_IDLE,
    RAISE_TIMEOUT,
    START_TIMEOUT_S,
    TENFOLD_TIMEOUT,
    TOOL_LATENCY_S,
)
from aios.demo.scenario import Facts
from aios.event import Event
from aios.home import HomePaths
from aios.loop.signatures import signature
from aios.store import open_store
from aios.store.consumers import EVENT_COLUMNS, event_from_row

REACTOR = "aios.reactor"


def stored_events(paths: HomePaths) -> list[Event]:
    """Every event in the home's store, in log order (the store is brought up to date)."""
    with open_store(paths) as con:
        rows = con.execute(f"SELECT {EVENT_COLUMNS} FROM events ORDER BY seq").fetchall()
    return [event_from_row(row)[1] for row in rows]


@dataclass
class Row:
    """One stage of the summary."""

    stage: str
    happened: bool
    what: str
    evidence: list[Event] = field(default_factory=list)
    seconds: float | None = None  # measured by the demo where no events span the stage
    since: Event | None = None  # where the stage began, when not among the evidence

    @property
    def duration_s(self) -> float | None:
        if self.seconds is not None:
            return self.seconds
        if self.since is not None and self.evidence:
            return (max(e.time for e in self.evidence) - self.since.time).total_seconds()
        if len(self.evidence) < 2:
            return None
        times = [e.time for e in self.evidence]
        return (max(times) - min(times)).total_seconds()

    def to_dict(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "happened": self.happened,
            "what": self.what,
            "evidence": [
                {"type": e.type, "id": e.id, "time": e.time.isoformat()} for e in self.evidence
            ],
            "duration_s": None if self.duration_s is None else round(self.duration_s, 1),
        }


def _first(events: Iterable[Event], test: Callable[[Event], bool]) -> Event | None:
    return next((e for e in events if test(e)), None)


def _last(events: list[Event], test: Callable[[Event], bool]) -> Event | None:
    return _first(reversed(events), test)


def _kept(*events: Event | None) -> list[Event]:
    return [e for e in events if e is not None]


def _pct(value: Any) -> str:
    return f"{value:g}%" if isinstance(value, int | float) else f"{value}%"


@dataclass
class Remediation:
    """One playbook's remediation, as the reactor recorded it."""

    remediation_id: str
    steps: list[Event]

    def first(self, kind: str, **payload: Any) -> Event | None:
        return _first(
            self.steps,
            lambda e: e.type == kind and all(e.payload.get(k) == v for k, v in payload.items()),
        )

    @property
    def outcome(self) -> str | None:
        finished = self.first("remediation.finished")
        return None if finished is None else str(finished.payload.get("outcome"))


def remediation_of(events: list[Event], playbook: str) -> Remediation | None:
    """The first remediation ``playbook`` started, with every step recorded about it."""
    started = _first(
        events,
        lambda e: (
            e.type == "remediation.started"
            and e.source == REACTOR
            and e.payload.get("playbook") == playbook
        ),
    )
    if started is None:
        return None
    rid = started.payload.get("remediation_id")
    steps = [e for e in events if e.payload.get("remediation_id") == rid]
    return Remediation(str(rid), steps)


class Summary:
    """Builds the rows from the stored events and what the demo itself did."""

    def __init__(self, events: list[Event], facts: Facts) -> None:
        self.events = events
        self.facts = facts

    def rows(self) -> list[Row]:
        return [
            self.aios_up(),
            self.workload(),
            self.cpu_detected(),
            self.approval(),
            self.cpu_remediated(),
            self.timeouts_detected(),
            self.fix_rolled_back(),
            self.fix_verified(),
            self.disk_detected(),
            self.disk_remediated(),
            self.lesson(),
            self.score(),
        ]

    def find(self, test: Callable[[Event], bool]) -> Event | None:
        return _first(self.events, test)

    def resource_high(self, resource: str, **labels: str) -> Event | None:
        """The monitor's first ``resource.high`` for ``resource`` (with ``labels``)."""
        return self.find(
            lambda e: (
                e.type == "resource.high"
                and e.source == "aios.monitor"
                and e.payload.get("resource") == resource
                and all(e.labels.get(k) == v for k, v in labels.items())
            )
        )

    def aios_up(self) -> Row:
        endpoints = self.facts.endpoints
        measured = self.find(lambda e: e.type == "host.metrics" and e.source == "aios.monitor")
        dispatched = self.find(lambda e: e.type == "scheduler.dispatched")
        if endpoints is None:
            return Row("AIOS up", False, "aios up did not come up")
        what = (
            f"Prefect server and UI {endpoints.ui_url}, Chroma {endpoints.chroma_url or '-'}, "
            "deployments served by its runner"
            + (" (a monitor run measured the host)" if measured else "")
            + (", the event watcher started the reactor" if dispatched else "")
        )
        return Row(
            "AIOS up",
            measured is not None,
            what,
            _kept(measured, dispatched),
            self.facts.up_seconds,
        )

    def workload(self) -> Row:
        seen_idle = self.find(
            lambda e: (
                e.type == "agent.metrics"
                and e.labels.get("agent") == IDLE_AGENT
                and int(e.payload.get("processes") or 0) > 0
            )
        )
        failed = self.find(tool_task("task.failed"))
        facts = self.facts
        burners = len(facts.burner_pids)
        what = (
            f"idle agent pid {facts.idle_agent_pid}"
            + (
                f" (the monitor saw it: {seen_idle.payload.get('cpu_percent')}% CPU)"
                if seen_idle
                else " (not seen by the monitor)"
            )
            + f"; {burners} CPU burner(s); {FLAKY_AGENT} pid {facts.flaky_agent_pid}, a "
            f"Prefect flow whose {FLAKY_TASK} tool takes {TOOL_LATENCY_S:g} s vs a timeout of "
            f"{START_TIMEOUT_S:g} s"
            + (
                f": {failed.payload.get('error')} in flow run {flow_run_of(failed)}"
                if failed
                else ": no failure recorded"
            )
        )
        return Row(
            "Workload", seen_idle is not None and failed is not None, what, _kept(seen_idle, failed)
        )

    def cpu_detected(self) -> Row:
        high = self.resource_high("cpu")
        if high is None:
            return Row("Detect: CPU high", False, "no resource.high for CPU was recorded")
        cpu = self.facts.cpu
        lowered = " (threshold lowered for the demo)" if cpu is not None and cpu.lowered else ""
        what = (
            f"monitor: CPU {_pct(high.payload.get('value'))} >= "
            f"{_pct(high.payload.get('threshold'))}{lowered}: resource.high, "
            f"{high.severity.value} ({high.priority.value})"
        )
        return Row("Detect: CPU high", True, what, [high])

    def approval(self) -> Row:
        requested = self.find(
            lambda e: e.type == "approval.requested" and e.payload.get("playbook") == KILL_IDLE
        )
        rid = requested.payload.get("remediation_id") if requested else None
        waiting = self.find(
            lambda e: e.type == "approval.waiting" and e.payload.get("remediation_id") == rid
        )
        decided = self.find(
            lambda e: (
                e.type in ("approval.granted", "approval.denied", "approval.expired")
                and e.source == REACTOR
                and e.payload.get("remediation_id") == rid
            )
        )
        if requested is None:
            return Row("Approval (demo mode)", False, f"{KILL_IDLE} never asked for approval")
        granted = (
            decided is not None
            and decided.type == "approval.granted"
            and decided.payload.get("approver") == APPROVER
        )
        what = (
            f"{KILL_IDLE}: {requested.payload.get('risk')} risk, asked a person"
            + (f"; flow run {waiting.payload.get('flow_run_id')} paused" if waiting else "")
            + (
                f"; {decided.type.split('.')[1]} by {decided.payload.get('approver')!r}"
                + (" automatically, because this is the demo" if granted else "")
                if decided
                else "; no decision was recorded"
            )
        )
        return Row("Approval (demo mode)", granted, what, _kept(requested, waiting, decided))

    def cpu_remediated(self) -> Row:
        done = remediation_of(self.events, KILL_IDLE)
        if done is None:
            return Row("Remediate: idle agent", False, f"{KILL_IDLE} did not run")
        action = done.first("action.completed", action="process.kill")
        verified = done.first("verify.passed") or done.first("verify.failed")
        finished = done.first("remediation.finished")
        killed = (
            [p.get("pid") for p in ((action.payload.get("undo") or {}).get("killed") or [])]
            if action
            else []
        )
        what = (
            f"process.kill of pid(s) {killed or 'none'}"
            + (f"; {verified.type}: {verified.payload.get('reason')}" if verified else "")
            + f"; outcome {done.outcome or 'unfinished'}"
        )
        return Row(
            "Remediate: idle agent",
            done.outcome == "succeeded" and bool(killed),
            what,
            _kept(action, verified, finished),
            since=done.first("remediation.started"),
        )

    def timeouts_detected(self) -> Row:
        failures = [e for e in self.events if tool_timeout(e)]
        # The monitor reads runs in batches, newest first: the earliest is the first to fail.
        runs_failed = sorted(
            (e for e in self.events if flow_run_read("task.failed")(e)), key=lambda e: e.time
        )
        matched = self.find(
            lambda e: e.type == "playbook.matched" and e.payload.get("playbook") == RAISE_TIMEOUT
        )
        if not failures:
            return Row("Detect: tool timeouts", False, f"no timeout of {FLAKY_AGENT} recorded")
        sample = failures[0]
        what = (
            f"{len(failures)} timeouts of {FLAKY_AGENT} "
            f"({signature('TimeoutError', str(sample.payload.get('error')))!r})"
            + (
                f"; Prefect recorded {len(runs_failed)} of its flow runs as Failed (read back "
                f"by the monitor; the first: flow run {flow_run_of(runs_failed[0])})"
                if runs_failed
                else "; no failed flow run was read from Prefect"
            )
            + (
                f"; the executor matched {RAISE_TIMEOUT} on the third"
                if matched
                else "; no playbook was matched"
            )
        )
        return Row(
            "Detect: tool timeouts",
            len(failures) >= 3 and matched is not None,
            what,
            _kept(
                failures[0],
                failures[2] if len(failures) > 2 else None,
                runs_failed[0] if runs_failed else None,
                matched,
            ),
        )

    def _config_change(self, done: Remediation) -> tuple[Event | None, str]:
        action = done.first("action.completed", action="config.update")
        if action is None:
            return None, "config.update did not complete"
        undo = action.payload.get("undo") or {}
        return action, f"tools.timeout_s {undo.get('old')!r} -> {undo.get('new')!r}"

    def fix_rolled_back(self) -> Row:
        done = remediation_of(self.events, RAISE_TIMEOUT)
        if done is None:
            return Row("Fix that failed: rolled back", False, f"{RAISE_TIMEOUT} did not run")
        action, change = self._config_change(done)
        failed = done.first("verify.failed")
        restored = done.first("rollback.completed", action="config.update")
        finished = done.first("remediation.finished")
        still = None
        if action is not None and failed is not None:
            tool_failed = tool_task("task.failed")
            still = _first(
                self.events,
                lambda e: tool_failed(e) and action.time <= e.time <= failed.time,
            )
        what = (
            f"{RAISE_TIMEOUT}: {change}"
            + (f"; the tool still timed out ({still.payload.get('error')})" if still else "")
            + (f"; verify failed: {failed.payload.get('reason')}" if failed else "")
            + (f"; rolled back: {restored.payload.get('restored')}" if restored else "")
            + f"; outcome {done.outcome or 'unfinished'}"
        )
        return Row(
            "Fix that failed: rolled back",
            done.outcome == "rolled_back" and restored is not None,
            what,
            _kept(action, still, failed, restored, finished),
            since=done.first("remediation.started"),
        )

    def fix_verified(self) -> Row:
        done = remediation_of(self.events, TENFOLD_TIMEOUT)
        if done is None:
            return Row("Second fix: verified", False, f"{TENFOLD_TIMEOUT} did not run")
        action, change = self._config_change(done)
        passed = done.first("verify.passed")
        finished = done.first("remediation.finished")
        completed = run_completed = None
        if finished is not None:
            tool_completed = tool_task("task.completed")
            completed = _first(self.events, lambda e: tool_completed(e) and e.time <= finished.time)
        if action is not None:
            read_completed = flow_run_read("task.completed")
            run_completed = min(
                (e for e in self.events if read_completed(e) and e.time >= action.time),
                key=lambda e: e.time,
                default=None,
            )
        what = (
            f"{TENFOLD_TIMEOUT}: {change}"
            + (f"; verify passed: {passed.payload.get('reason')}" if passed else "")
            + ("; the tool answers in time again (task.completed)" if completed else "")
            + (
                f"; Prefect recorded flow run {flow_run_of(run_completed)} as Completed (read "
                "back by the monitor)"
                if run_completed
                else ""
            )
            + f"; outcome {done.outcome or 'unfinished'}"
        )
        return Row(
            "Second fix: verified",
            done.outcome == "succeeded",
            what,
            _kept(action, passed, completed, run_completed, finished),
            since=done.first("remediation.started"),
        )

    def disk_detected(self) -> Row:
        disk = self.facts.disk
        if disk is None:
            reason = self.facts.disk_skipped or "the disk stage did not run"
            return Row("Detect: disk filling", False, reason)
        high = self.resource_high("disk", mount=disk.mount)
        if high is None:
            return Row("Detect: disk filling", False, f"no resource.high for {disk.mount}")
        filled = self.facts.filled_bytes or 0
        what = (
            f"{filled / 2**20:.0f} MB of temp files; monitor: {disk.mount} at "
            f"{_pct(high.payload.get('value'))} >= {_pct(high.payload.get('threshold'))} "
            f"(threshold set by the demo from {_pct(disk.percent_before)}; AIOS's default is 90%)"
        )
        return Row("Detect: disk filling", True, what, [high])

    def disk_remediated(self) -> Row:
        done = remediation_of(self.events, CLEAN_TEMP)
        if done is None:
            return Row("Remediate: temp dir", False, f"{CLEAN_TEMP} did not run")
        action = done.first("action.completed", action="files.cleanup")
        undo = (action.payload.get("undo") or {}) if action else {}
        verified = done.first("verify.passed") or done.first("verify.failed")
        finished = done.first("remediation.finished")
        what = (
            f"files.cleanup moved {len(undo.get('removed') or [])} file(s), "
            f"{int(undo.get('bytes') or 0) / 2**20:.0f} MB, to the trash"
            + (f"; {verified.type}: {verified.payload.get('reason')}" if verified else "")
            + f"; outcome {done.outcome or 'unfinished'}"
        )
        return Row(
            "Remediate: temp dir",
            done.outcome == "succeeded",
            what,
            _kept(action, verified, finished),
            since=done.first("remediation.started"),
        )

    def lesson(self) -> Row:
        created = self.find(lambda e: e.type == "lesson.created")
        if created is None:
            return Row("Learn: a lesson", False, "no lesson was made")
        lesson_id = created.payload.get("lesson_id")
        verified = self.find(
            lambda e: e.type == "lesson.verified" and e.payload.get("lesson_id") == lesson_id
        )
        fix = created.payload.get("fix") or {}
        # Prefect's record of a failed run carries the tool's error too: counted alike.
        before = self.events[: self.events.index(created)]
        with_runs = any(flow_run_read("task.failed")(e) for e in before)
        what = (
            f"lesson {lesson_id}: {created.payload.get('signature')!r}, seen "
            f"{created.payload.get('count')} times"
            + (
                " (the agent's own task.failed and its failed flow runs read from Prefect)"
                if with_runs
                else ""
            )
            + f"; fix {fix.get('playbook') or fix.get('kind') or 'none known yet'}"
            + (f"; verified ({verified.payload.get('reason')})" if verified else "; a draft")
        )
        return Row("Learn: a lesson", True, what, _kept(created, verified))

    def score(self) -> Row:
        latest = _last(self.events, lambda e: e.type == "score.updated")
        if latest is None:
            return Row("Score", False, "no score was recorded")
        parts = []
        for component in latest.payload.get("components") or []:
            value = component.get("value")
            shown = "no data" if value is None else f"{value:.2f}"
            parts.append(f"{component.get('name')} {shown}")
        value = latest.payload.get("score")
        what = (
            f"{'no score' if value is None else f'{value:.2f}'} ({latest.payload.get('grade')}, "
            f"{latest.payload.get('preset')}): " + ", ".join(parts)
        )
        after_lesson = self.find(lambda e: e.type == "lesson.created")
        recent = after_lesson is None or latest.time >= after_lesson.time
        return Row("Score", value is not None and recent, what, [latest])


def summary_rows(paths: HomePaths, facts: Facts) -> list[Row]:
    return Summary(stored_events(paths), facts).rows()
