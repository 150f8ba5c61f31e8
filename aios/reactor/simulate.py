"""Replaying history against the current playbooks: how often would each fire, and on what?

Nothing is executed and the real log is not touched: the reactor runs on a scratch log in a
temporary directory, pretending each remediation it would start ran (so throttles, run limits
and flapping take effect as they would have). Outcomes cannot be known, so breakers that open
on failures are not simulated; the report says so.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aios.actions.base import ActionPlan
from aios.bus import EventBus
from aios.event import Event
from aios.home import HomePaths
from aios.log import EventLog
from aios.playbooks.matcher import PlaybookIndex
from aios.playbooks.model import Playbook
from aios.reactor.approval import PolicyApprover
from aios.reactor.engine import Outcome, Reactor, ReactorSettings, _Chain
from aios.reactor.state import REACTOR_SOURCE


@dataclass
class PlaybookSimulation:
    playbook: str
    fires: int = 0
    approvals_needed: int = 0
    targets: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)
    waiting: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "playbook": self.playbook,
            "fires": self.fires,
            "approvals_needed": self.approvals_needed,
            "targets": self.targets,
            "breakers_opened": self.skipped.get("breaker_open", 0),
            "skipped": self.skipped,
            "below_threshold": self.waiting,
        }


@dataclass
class SimulationReport:
    events: int = 0
    playbooks: dict[str, PlaybookSimulation] = field(default_factory=dict)
    note: str = (
        "simulated: nothing was executed; every remediation is assumed to have run, so "
        "breakers that open on failures are not simulated"
    )

    def to_dict(self) -> dict[str, Any]:
        return {
            "events": self.events,
            "note": self.note,
            "playbooks": [p.to_dict() for p in self.playbooks.values()],
        }


class _SimulatingReactor(Reactor):
    """Records what it would do on a scratch log instead of acting."""

    def _run(
        self,
        playbook: Playbook,
        trigger: Event,
        rid: str,
        target: str,
        contexts: Any,
        plans: list[ActionPlan],
        chain: _Chain,
        base: dict[str, Any],
        risk: Any,
    ) -> Outcome:
        for index, action in enumerate(playbook.actions):
            chain.emit(
                "action.completed",
                {**base, "index": index, "action": action.type, "undo": {}, "target": target},
            )  # base carries decided_at: the trigger's own time in a simulation
        chain.emit("remediation.finished", {**base, "outcome": "simulated"})
        self._refresh()
        return Outcome(playbook.id, "simulated", "would run", rid, risk.value)


def simulate(
    index: PlaybookIndex, history: Iterable[Event], settings: ReactorSettings
) -> SimulationReport:
    """Run ``history`` (oldest first) through ``index`` without acting."""
    report = SimulationReport(playbooks={pid: PlaybookSimulation(pid) for pid in index.playbooks})
    with tempfile.TemporaryDirectory(prefix="aios-simulate-") as scratch:
        root = Path(scratch)
        log = EventLog(root / "events")
        bus = EventBus(log)
        scratch_settings = ReactorSettings(
            HomePaths(root),
            settings.allowed_roots,
            settings.agent_patterns,
            settings.protected_patterns,
            settings.approval_timeout_s,
            settings.approve_from,
        )
        reactor = _SimulatingReactor(
            index, bus, scratch_settings, PolicyApprover(True), plan_actions=False, clock=None
        )
        for event in history:
            if event.source == REACTOR_SOURCE:
                continue  # what really happened is replaced by what would happen now
            report.events += 1
            for outcome in reactor.process(event):
                entry = report.playbooks[outcome.playbook]
                if outcome.status == "simulated":
                    entry.fires += 1
                    playbook = index.playbooks[outcome.playbook]
                    if playbook.needs_approval(settings.approve_from):
                        entry.approvals_needed += 1
                    target = _target_of(reactor, outcome)
                    entry.targets[target] = entry.targets.get(target, 0) + 1
                elif outcome.status == "waiting":
                    entry.waiting += 1
                else:
                    reason = outcome.reason.split(":", 1)[0]
                    entry.skipped[reason] = entry.skipped.get(reason, 0) + 1
        log.close()
    return report


def _target_of(reactor: Reactor, outcome: Outcome) -> str:
    record = reactor.state.record(outcome.remediation_id or "")
    return record.target if record else "?"
