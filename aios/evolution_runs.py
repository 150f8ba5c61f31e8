"""Running agent evolution: propose changes, make them through the reactor, judge them by A/B,
roll back the ones that made things worse (see ``aios.evolution`` for the rules).

``evolve`` is one pass, as ``aios evolve`` and the learner flow run it. Changes go through
the reactor like any remediation (approval when the risk asks for it; with
``defer_approvals`` the ones waiting for a person come back as ``awaiting_approval``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aios.bus import EventBus
from aios.config import AIOSConfig
from aios.event import Event
from aios.evolution import (
    PROPOSED,
    SOURCE,
    VERDICT,
    Applied,
    applied_changes,
    compare,
    playbook_for,
    propose,
    side,
    verdict_payload,
)
from aios.home import HomePaths
from aios.lessons.extract import record_judgement
from aios.lessons.model import UPDATED, lesson_id, owner_of
from aios.lessons.projection import read_lessons
from aios.playbooks.matcher import PlaybookIndex
from aios.reactor.approval import Approver
from aios.reactor.engine import Outcome
from aios.reactor.runner import react_to, revert, settings_from
from aios.store import open_store
from aios.store.consumers import events_with_ids


@dataclass
class EvolutionReport:
    proposed: list[dict[str, Any]] = field(default_factory=list)
    outcomes: list[tuple[Event, Outcome]] = field(default_factory=list)
    verdicts: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "proposed": self.proposed,
            "outcomes": [
                {"event_id": e.id, **o.to_dict(), "request": None} for e, o in self.outcomes
            ],
            "verdicts": self.verdicts,
        }

    def to_markdown(self) -> str:
        lines = ["## Agent evolution", ""]
        for item in self.proposed:
            lines.append(
                f"- proposed for {item['agent']}: {item['rule'].replace('_', ' ')} "
                f"({item['key']}) after {item['failures']} failures"
            )
        for _event, outcome in self.outcomes:
            lines.append(f"- {outcome.playbook}: {outcome.status} ({outcome.reason})")
        for verdict in self.verdicts:
            kept = "rolled back" if verdict.get("reverted") is not None else "kept"
            lines.append(
                f"- {verdict['agent']} {verdict['key']}: {verdict['verdict']}, {kept} "
                f"({verdict['why']})"
            )
        if len(lines) == 2:
            lines.append("No agent changed, and no change was judged.")
        return "\n".join(lines) + "\n"


def evolution_index(paths: HomePaths, config: AIOSConfig, base: PlaybookIndex) -> PlaybookIndex:
    """``base`` with the playbooks of every change proposed and not yet judged."""
    with open_store(paths) as con:
        open_ids = [
            str(row[0])
            for row in con.execute(
                """
                SELECT p.id FROM events p WHERE p.type = ? AND p.source = ?
                  AND NOT EXISTS (SELECT 1 FROM events v WHERE v.type = ? AND v.source = ?
                                  AND v.payload->>'proposal_id' = p.id::VARCHAR)
                """,
                [PROPOSED, SOURCE, VERDICT, SOURCE],
            ).fetchall()
        ]
        events = [event for _, event in events_with_ids(con, open_ids)]
    extra = {pb.id: pb for pb in (playbook_for(e, config) for e in events)}
    return PlaybookIndex([*base.playbooks.values(), *extra.values()])


def evolve(
    bus: EventBus,
    paths: HomePaths,
    config: AIOSConfig,
    base: PlaybookIndex,
    approver: Approver,
    *,
    now: datetime,
    defer_approvals: bool = False,
    parameters: Callable[[str], dict[str, Any]] | None = None,
) -> EvolutionReport:
    """Judge the changes whose time has come, then propose and make new ones."""
    report = EvolutionReport()
    report.verdicts = judge(bus, paths, config, base, now=now)
    report.proposed = record_proposals(bus, paths, config, now=now, parameters=parameters)
    for item in report.proposed:
        with open_store(paths) as con:
            [(_, event)] = events_with_ids(con, [item["event_id"]])
        index = PlaybookIndex([*base.playbooks.values(), playbook_for(event, config)])
        report.outcomes += react_to(
            bus,
            paths,
            index,
            settings_from(config, paths),
            approver,
            [event.id],
            defer_approvals=defer_approvals,
        )
    return report


def record_proposals(
    bus: EventBus,
    paths: HomePaths,
    config: AIOSConfig,
    *,
    now: datetime,
    parameters: Callable[[str], dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """Propose a change for each agent that keeps failing: ``evolution.proposed`` events (the
    change itself is the reactor's to make); returns them with their event ids."""
    with open_store(paths) as con:
        proposals = propose(con, config, now, parameters)
    recorded = []
    for proposal in proposals:
        payload = proposal.payload()
        event = bus.emit(
            PROPOSED,
            payload,
            source=SOURCE,
            severity="low",  # made through the reactor here: not the executor's to take
            labels={"agent": proposal.agent},
        )
        recorded.append({"event_id": event.id, **payload})
    return recorded


def judge(
    bus: EventBus,
    paths: HomePaths,
    config: AIOSConfig,
    base: PlaybookIndex,
    *,
    now: datetime,
) -> list[dict[str, Any]]:
    """A verdict for each change whose ``observe`` window after it has passed."""
    settings = config.evolution
    verdicts = []
    with open_store(paths) as con:
        applied = applied_changes(con)
        ready: list[tuple[Applied, Any, Any]] = []
        for change in applied:
            if now < change.at + settings.observe:
                continue
            agent = str(change.proposal.payload["agent"])
            before = side(con, agent, change.at - settings.observe, change.at)
            after = side(con, agent, change.at, change.at + settings.observe)
            ready.append((change, before, after))
    for change, before, after in ready:
        verdict, z, why = compare(before, after, settings.min_samples)
        if verdict == "too_few" and now < change.at + 2 * settings.observe:
            continue  # give it one more window to gather tasks
        if verdict == "too_few":
            verdict = "inconclusive"
        payload = verdict_payload(change, verdict, z, why, before, after)
        if verdict == "worse":
            playbook = playbook_for(change.proposal, config)
            payload["reverted"] = revert(
                bus,
                paths,
                settings_from(config, paths),
                playbook,
                change.proposal,
                change.remediation_id,
                f"judged worse after the change: {why}",
            )
        bus.emit(
            VERDICT,
            payload,
            source=SOURCE,
            severity="medium" if verdict == "worse" else "info",
            labels={"agent": payload["agent"]},
            correlation_id=change.proposal.id,
        )
        _teach(bus, paths, config, change, verdict, why)
        verdicts.append(payload)
    return verdicts


def _teach(
    bus: EventBus, paths: HomePaths, config: AIOSConfig, change: Applied, verdict: str, why: str
) -> None:
    """The lesson of the failure the change was for learns from its verdict."""
    if verdict not in ("better", "worse"):
        return
    p = change.proposal.payload
    sig = str(p.get("signature") or "")
    with open_store(paths) as con:
        found = read_lessons(con, ids=[lesson_id(sig, owner_of(p.get("agent")))])
    if not found:
        return
    lesson = found[0]
    if lesson.fix is None or lesson.fix.get("kind") == "evolution":
        fix = {
            "kind": "evolution",
            "playbook": change.playbook,
            "agent": p["agent"],
            "rule": p["rule"],
            "key": p["key"],
            "risk": "low" if p.get("file") else "medium",
            "evidence": f"A/B: {why}",
        }
        bus.emit(
            UPDATED,
            {"lesson_id": lesson.lesson_id, "fix": fix},
            source="aios.lessons",
            labels={"lesson": lesson.lesson_id},
        )
    record_judgement(
        bus,
        lesson,
        verdict == "better",
        change.remediation_id,
        f"evolution of {p['agent']} ({p['key']}) judged {verdict}: {why}",
        config.lessons.hardened_after,
        playbook=change.playbook,
    )
