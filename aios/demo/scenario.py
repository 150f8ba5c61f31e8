"""The demo's stages: start AIOS, start the workload, then for each part of the workload wait
for AIOS to detect it and deal with it, starting AIOS's flows now where they would otherwise
wait for their schedule.

Every wait has a deadline; one that passes is said at once, recorded, and the demo goes on with
the next stage. What the summary claims is read back from the store afterwards (``evidence``),
not taken from what was seen here.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from aios.demo import embedded_up
from aios.demo.agent_events import flow_run_of, tool_timeout
from aios.demo.child_processes import Child, Children, clean_environment, program
from aios.demo.config_file import CpuPlan, set_disk_threshold
from aios.demo.demo_home import DemoSite
from aios.demo.deployment_runs import EXECUTOR, LEARNER, MONITOR, DeploymentRuns
from aios.demo.disk_plan import DiskPlan, plan_disk
from aios.demo.embedded_up import Endpoints, UpError
from aios.demo.identities import (
    APPROVAL_REASON,
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
from aios.demo.log_follow import LogFollower
from aios.demo.playbooks import clean_temp_dir, write_playbook
from aios.demo.progress_view import StageView
from aios.event import Event

T = TypeVar("T")
STAGES = 6
UP_TIMEOUT_S = 180.0
MONITOR_ATTEMPTS = 3
TIMEOUTS_BEFORE_EXECUTOR = 6  # the second timeout playbook fires at the sixth
# Between the flaky agent's flow runs (a failed one takes about 1 s, a completed one 3 s): each
# run writes to the Prefect server's SQLite database, which AIOS's own flows share, and under
# load SQLite can hold every writer for its 60 s busy timeout. Waits on Prefect allow for that.
FLOW_RUN_PAUSE_S = 3.0
PREFECT_WAIT_S = 90.0


@dataclass
class Facts:
    """What the demo itself did (not what AIOS did): shown beside the evidence."""

    port: int = 0
    up_seconds: float | None = None
    endpoints: Endpoints | None = None
    idle_agent_pid: int | None = None
    flaky_agent_pid: int | None = None
    burner_pids: list[int] = field(default_factory=list)
    cpu: CpuPlan | None = None
    disk: DiskPlan | None = None
    disk_skipped: str | None = None
    filled_bytes: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "prefect_port": self.port,
            "up_seconds": None if self.up_seconds is None else round(self.up_seconds, 1),
            "idle_agent_pid": self.idle_agent_pid,
            "flaky_agent_pid": self.flaky_agent_pid,
            "cpu_burner_pids": self.burner_pids,
            "cpu": None
            if self.cpu is None
            else {
                "cpus": self.cpu.cpus,
                "burners": self.cpu.burners,
                "raise": self.cpu.raise_at,
                "lowered": self.cpu.lowered,
            },
            "disk": None if self.disk is None else self.disk.to_dict(),
            "disk_skipped": self.disk_skipped,
            "filled_bytes": self.filled_bytes,
        }


def _is(event: Event, kind: str, **payload: Any) -> bool:
    return event.type == kind and all(event.payload.get(k) == v for k, v in payload.items())


class Scenario:
    """Runs the stages against one demo home; ``missed`` lists every deadline that passed."""

    def __init__(
        self, site: DemoSite, children: Children, view: StageView, cpu: CpuPlan, port: int
    ) -> None:
        self.site = site
        self.children = children
        self.view = view
        self.follower = LogFollower(site.paths.events)
        self.facts = Facts(port=port, cpu=cpu)
        self.missed: list[str] = []
        self.up: Child | None = None
        self._api: DeploymentRuns | None = None

    # ------------------------------------------------------------------ plumbing
    @property
    def api(self) -> DeploymentRuns:
        if self._api is None:
            assert self.facts.endpoints is not None
            self._api = DeploymentRuns(self.facts.endpoints.api_url)
        return self._api

    def close(self) -> None:
        if self._api is not None:
            self._api.close()
            self._api = None

    def _check_up(self) -> None:
        if self.up is not None and not self.up.running():
            raise UpError(
                f"aios up exited with code {self.up.process.returncode} during the demo; see "
                f"{self.site.up_log}"
            )

    def wait(self, what: str, check: Callable[[], T | None], deadline_s: float) -> T | None:
        """Poll ``check`` (after reading new events) until it returns something; None, said
        and recorded, once ``deadline_s`` passed."""
        began = time.monotonic()
        while True:
            self.follower.poll()
            found = check()
            if found is not None:
                return found
            self._check_up()
            if time.monotonic() - began > deadline_s:
                self.view.missed(f"{what}: did not happen within {deadline_s:.0f} s")
                self.missed.append(what)
                return None
            self.view.step(what)
            time.sleep(0.3)

    def _await_outcome(self, what: str, deadline_s: float, after: int, **payload: Any) -> None:
        """Wait for the reactor's ``remediation.finished`` whose payload has ``payload``
        (its playbook or remediation id), and say how it ended."""

        def finished() -> Event | None:
            return self.follower.find(
                lambda e: _is(e, "remediation.finished", **payload) and e.source == "aios.reactor",
                after=after,
            )

        found = self.wait(what, finished, deadline_s)
        if found is not None:
            self.view.done(
                f"{found.payload.get('playbook')}: {found.payload.get('outcome')} "
                f"({found.payload.get('reason')})"
            )

    def _run_monitor_until(
        self, what: str, predicate: Callable[[Event], bool], after: int
    ) -> Event | None:
        """Start monitor runs (up to MONITOR_ATTEMPTS) until one raises an event that
        satisfies ``predicate``."""
        for attempt in range(1, MONITOR_ATTEMPTS + 1):
            run_id = self.api.run_deployment(MONITOR)

            def seen_or_done(run_id: str = run_id) -> Event | bool | None:
                # Read "finished" first: what the run wrote before it finished is read next.
                done = self.api.finished(run_id)
                self.follower.poll()
                found = self.follower.find(predicate, after=after)
                return found if found is not None else (False if done else None)

            result = self.wait(f"{what} (monitor run {attempt})", seen_or_done, 90.0)
            if isinstance(result, Event):
                return result
            if result is None:  # the deadline passed: already said and recorded
                return None
            if attempt < MONITOR_ATTEMPTS:
                self.view.note("the monitor run did not see it; starting another one")
        self.view.missed(f"{what}: not seen in {MONITOR_ATTEMPTS} monitor runs")
        self.missed.append(what)
        return None

    # -------------------------------------------------------------------- stages
    def play(self) -> None:
        self.start_aios()
        self.start_workload()
        self.cpu_stage()
        self.timeout_stage()
        self.disk_stage()
        self.learn_stage()

    def start_aios(self) -> None:
        with self.view.stage(1, "Start AIOS (aios up: Prefect, Chroma, deployments, watcher)"):
            began = time.monotonic()
            self.up = embedded_up.start(self.site, self.children, self.facts.port)
            endpoints = embedded_up.wait_until_up(
                self.site, self.up, UP_TIMEOUT_S, tick=self.view.step
            )
            self.facts.endpoints = endpoints
            self.facts.up_seconds = time.monotonic() - began
            self.view.done(
                f"AIOS is up in {self.facts.up_seconds:.0f} s: Prefect UI {endpoints.ui_url}, "
                f"Chroma {endpoints.chroma_url or '(none)'}, every deployment served, the "
                "event watcher follows the log"
            )

    def start_workload(self) -> None:
        with self.view.stage(2, "Start the workload"):
            site, cpu = self.site, self.facts.cpu
            assert cpu is not None
            env = clean_environment(site.root)
            config = {"tools": {"timeout_s": START_TIMEOUT_S}, "model": "demo"}
            site.agent_config.write_text(json.dumps(config, indent=2) + "\n")
            idle = self.children.start(
                "idle agent",
                program("idle_agent", "--home", str(site.root), "--agent", IDLE_AGENT),
                env,
                site.logs / "idle-agent.log",
            )
            self.facts.idle_agent_pid = idle.pid
            self.view.done(f"idle agent {IDLE_AGENT} {idle.pid}: an agent that does nothing")
            endpoints = self.facts.endpoints
            assert endpoints is not None
            # The agent's flow runs go to the demo's own Prefect server, so they are in its UI.
            flow_env = {
                **env,
                "PREFECT_API_URL": endpoints.api_url,
                "PREFECT_HOME": str(site.agent_prefect_home),
            }
            flaky = self.children.start(
                "flaky agent",
                program(
                    "flaky_agent",
                    "--config",
                    str(site.agent_config),
                    "--latency",
                    str(TOOL_LATENCY_S),
                    "--pause",
                    str(FLOW_RUN_PAUSE_S),
                ),
                flow_env,
                site.logs / "flaky-agent.log",
            )
            self.facts.flaky_agent_pid = flaky.pid
            self.view.done(
                f"flaky agent {FLAKY_AGENT} {flaky.pid}: a Prefect flow, run again "
                f"{FLOW_RUN_PAUSE_S:g} s after each run ends; its {FLAKY_TASK} task calls a "
                f"tool that answers in {TOOL_LATENCY_S:g} s with a timeout of "
                f"{START_TIMEOUT_S:g} s ({site.agent_config})"
            )
            for number in range(cpu.burners):
                burner = self.children.start(
                    f"cpu burner {number}",
                    program("cpu_burner", "--home", str(site.root)),
                    env,
                    site.logs / "cpu-burners.log",
                )
                self.facts.burner_pids.append(burner.pid)
            self.view.done(
                f"{cpu.burners} CPU burner(s) on {cpu.cpus} CPU(s), at the lowest priority"
            )
            if cpu.lowered:
                self.view.note(
                    f"CPU threshold lowered to {cpu.raise_at:g}% for this demo (AIOS's default "
                    f"is 80%): {cpu.burners} burners can keep only "
                    f"{100 * cpu.burners / cpu.cpus:.0f}% of {cpu.cpus} CPUs busy"
                )
            first = self.wait(
                "the flaky agent's first tool timeout",
                lambda: self.follower.find(tool_timeout),
                PREFECT_WAIT_S,  # the agent imports Prefect, then creates its first run
            )
            if first is not None:
                self.view.done(
                    f"{FLAKY_AGENT}: {first.payload.get('error')} (task.failed, in flow run "
                    f"{flow_run_of(first)})"
                )

    def _stop_burners(self) -> None:
        burners = [c for c in self.children.named("cpu burner") if c.running()]
        for burner in burners:
            self.children.stop(burner)
        if burners:
            self.view.note("the CPU load was the demo's own burners: stopped now")

    def cpu_stage(self) -> None:
        with self.view.stage(3, "CPU high, an agent idle: detect, approve, remediate, verify"):
            try:
                self._cpu_stage()
            finally:
                self._stop_burners()

    def _cpu_stage(self) -> None:
        mark = self.follower.mark()
        high = self._run_monitor_until(
            "the monitor raises resource.high for CPU",
            lambda e: _is(e, "resource.high", resource="cpu") and e.source == "aios.monitor",
            mark,
        )
        if high is None:
            return
        self.view.done(
            f"monitor: CPU {high.payload.get('value')}% >= {high.payload.get('threshold')}%: "
            f"resource.high ({high.severity.value}, so the watcher starts the reactor at once)"
        )
        waiting = self.wait(
            "the reactor asks for approval",
            lambda: self.follower.find(
                lambda e: _is(e, "approval.waiting", playbook=KILL_IDLE), after=mark
            ),
            90.0,
        )
        if waiting is None:
            return
        rid = str(waiting.payload["remediation_id"])
        flow_run_id = str(waiting.payload["flow_run_id"])
        self.view.done(
            f"{KILL_IDLE} is {waiting.payload.get('risk')} risk: flow run {flow_run_id} is "
            "paused for approval (the Resume form in the Prefect UI)"
        )
        paused = self.wait(
            "the flow run shows Paused",
            lambda: True if self.api.state_of(flow_run_id) == "PAUSED" else None,
            PREFECT_WAIT_S,
        )
        if paused is None:
            return
        assert self.facts.endpoints is not None
        self.view.note(
            f"DEMO MODE: approving it automatically as {APPROVER!r}, because this is the demo. "
            f"In real use a person approves it in the Prefect UI ({self.facts.endpoints.ui_url}) "
            "or with `aios approvals approve`."
        )
        answer = subprocess.run(
            [
                sys.executable,
                "-m",
                "aios.cli.main",
                "approvals",
                "approve",
                flow_run_id,
                "--reason",
                APPROVAL_REASON,
                "--approver",
                APPROVER,
            ],
            env={**clean_environment(self.site.root), "NO_COLOR": "1", "COLUMNS": "200"},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        said = " ".join((answer.stdout + answer.stderr).split())
        if answer.returncode != 0:
            self.view.missed(f"aios approvals approve exited {answer.returncode}: {said}")
            self.missed.append("the approval is recorded")
            return
        self.view.done(f"aios approvals approve: {said}")
        self._await_outcome("the remediation runs and is verified", 90.0, mark, remediation_id=rid)

    def timeout_stage(self) -> None:
        with self.view.stage(4, "Tool timeouts: a fix that fails is rolled back, another holds"):
            enough = self.wait(
                f"{TIMEOUTS_BEFORE_EXECUTOR} tool timeouts of {FLAKY_AGENT}",
                lambda: (
                    True if self.follower.count(tool_timeout) >= TIMEOUTS_BEFORE_EXECUTOR else None
                ),
                90.0,
            )
            if enough is None:
                return
            mark = self.follower.mark()
            self.api.run_deployment(EXECUTOR)
            self.view.done(
                f"{self.follower.count(tool_timeout)} timeouts so far (task.failed, "
                "medium: work for the executor); started aios-executor now instead of at its "
                "30-minute schedule"
            )
            for playbook in (RAISE_TIMEOUT, TENFOLD_TIMEOUT):
                self._await_outcome(
                    f"{playbook} runs and is verified", 120.0, mark, playbook=playbook
                )

    def disk_stage(self) -> None:
        with self.view.stage(5, "A temp directory fills the disk: detect, clean up, verify"):
            plan = plan_disk(self.site.temp_dir)
            if isinstance(plan, str):
                self.facts.disk_skipped = plan
                self.view.missed(f"the disk stage cannot run here: {plan}")
                self.missed.append("the temp directory fills the disk")
                return
            self.facts.disk = plan
            set_disk_threshold(self.site, plan.raise_at, plan.clear_at)
            write_playbook(self.site, clean_temp_dir(plan.mount, self.site.temp_dir, plan.raise_at))
            self.view.note(
                f"disk threshold set to {plan.raise_at:g}% for this demo (AIOS's default is "
                f"90%): {plan.mount} is at {plan.percent_before:g}%, and about "
                f"{plan.fill_bytes / 2**20:.0f} MB of temp files take it past that"
            )
            mark = self.follower.mark()
            filler = self.children.start(
                "temp filler",
                program(
                    "temp_filler",
                    "--dir",
                    str(self.site.temp_dir),
                    "--until-percent",
                    f"{plan.fill_until:g}",
                    "--max-bytes",
                    str(plan.max_bytes),
                ),
                clean_environment(self.site.root),
                self.site.logs / "temp-filler.log",
            )
            filled = self.wait(
                f"the temp directory fills to {plan.fill_until:g}% of {plan.mount}",
                lambda: filler.process.returncode if filler.process.poll() is not None else None,
                180.0,
            )
            self.facts.filled_bytes = sum(
                p.stat().st_size for p in self.site.temp_dir.glob("*.tmp") if p.is_file()
            )
            if filled != 0:
                if filled is not None:
                    self.view.missed(f"the temp filler stopped at its cap (exit {filled})")
                    self.missed.append("the temp directory fills the disk")
                self.children.stop(filler)
                return
            self.view.done(
                f"{self.facts.filled_bytes / 2**20:.0f} MB of temp files in {self.site.temp_dir}"
            )
            high = self._run_monitor_until(
                f"the monitor raises resource.high for the disk at {plan.mount}",
                lambda e: (
                    _is(e, "resource.high", resource="disk") and e.labels.get("mount") == plan.mount
                ),
                mark,
            )
            if high is None:
                return
            self.view.done(
                f"monitor: {plan.mount} at {high.payload.get('value')}% >= "
                f"{high.payload.get('threshold')}%: resource.high, the reactor starts at once"
            )
            self._await_outcome(
                f"{CLEAN_TEMP} runs and is verified", 120.0, mark, playbook=CLEAN_TEMP
            )

    def learn_stage(self) -> None:
        with self.view.stage(6, "Learn a lesson, record the score"):
            mark = self.follower.mark()
            learner = self.api.run_deployment(LEARNER)
            self.view.done("started aios-learner now instead of at its daily schedule")
            created = self.wait(
                "the learner makes a lesson of the repeated timeouts",
                lambda: self.follower.find(lambda e: e.type == "lesson.created", after=mark),
                150.0,
            )
            if created is not None:
                fix = created.payload.get("fix") or {}
                self.view.done(
                    f"lesson {created.payload.get('lesson_id')}: "
                    f"{created.payload.get('signature')!r} seen "
                    f"{created.payload.get('count')} times; fix: "
                    f"{fix.get('playbook') or fix.get('kind') or 'none known yet'}"
                )
            self.wait(
                "the learner run finishes",
                lambda: True if self.api.finished(learner) else None,
                150.0,
            )
            verified = self.follower.find(lambda e: e.type == "lesson.verified", after=mark)
            if verified is not None:
                self.view.done(f"lesson verified: {verified.payload.get('reason')}")
            mark = self.follower.mark()
            self.api.run_deployment(MONITOR)
            score = self.wait(
                "the monitor records the score",
                lambda: self.follower.find(lambda e: e.type == "score.updated", after=mark),
                90.0,
            )
            if score is not None:
                self.view.done(
                    f"score {score.payload.get('score')} ({score.payload.get('grade')}, "
                    f"{score.payload.get('preset')} preset)"
                )

    def stop_workload(self) -> None:
        """Stop the workload's programs (``aios up`` stays)."""
        stopped = 0
        for child in self.children.named(""):
            if child is not self.up and child.running():
                self.children.stop(child)
                stopped += 1
        if stopped:
            self.view.note(f"the workload is stopped ({stopped} of its processes still ran)")
