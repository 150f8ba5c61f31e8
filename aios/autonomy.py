"""Earned autonomy: a playbook's record moves what it may do without a person.

Derived from the whole log, per playbook, in order:

- ``[autonomy] demote_after`` (2) failed verifications in a row (a remediation rolled back or
  failed) demote it: from then on it asks a person, whatever its risk;
- ``promote_after`` (5) remediations in a row that a person approved and that then verified
  propose a promotion (``autonomy.promotion_proposed``), which a person confirms with
  ``aios playbooks promote ID`` (``autonomy.promoted``, sealed like an approval with the
  playbook's digest, so editing the playbook afterwards makes it stale and asks for a new
  confirmation; with approvers configured, one allowed the playbook's risk, with their
  code). A promoted
  playbook whose effective risk is medium runs without asking (with ``auto_execute``, and
  unless the risk policy asks for everything); high risk always asks. A promotion lifts a
  demotion; a demotion takes a promotion away. A denial, or a failure, starts the count again.

``autonomy.demoted`` and ``autonomy.promotion_proposed`` are recorded by the learner's pass
for people to see; the decision itself is derived, so it holds across processes and restarts.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

import duckdb
import orjson

from aios.actions.base import Risk
from aios.bus import EventBus
from aios.home import HomePaths
from aios.playbooks.model import Playbook
from aios.reactor.seal import seal, sealed

SOURCE = "aios.autonomy"
PROMOTED = "autonomy.promoted"
DEMOTED = "autonomy.demoted"
PROPOSED = "autonomy.promotion_proposed"
FAILED = ("rolled_back", "failed")


@dataclass(frozen=True)
class AutonomyPolicy:
    demote_after: int = 2
    promote_after: int = 5


@dataclass
class Autonomy:
    """A playbook's record and what it earns."""

    playbook: str
    verified: int = 0
    failed: int = 0
    granted: int = 0
    denied: int = 0
    failures_in_a_row: int = 0
    approved_in_a_row: int = 0
    demoted: bool = False
    promoted: bool = False
    proposal_due: bool = False  # a promotion is earned and nobody has been told yet
    demotion_due: bool = False  # a demotion happened and nobody has been told yet
    earned: bool = False  # approved_in_a_row reached promote_after (and not promoted)
    # Promoted for another version of the playbook (edited since): not promoted, and a person
    # may confirm the promotion again for this version.
    stale_promotion: bool = False

    def level(self, playbook: Playbook, approve_from: str) -> str:
        if self.demoted:
            return "demoted"
        if self.promoted:
            return "earned"
        return "asks" if playbook.needs_approval(approve_from) else "auto"

    def needs_approval(self, playbook: Playbook, approve_from: str) -> bool:
        if self.demoted:
            return True
        if self.promoted and approve_from != "low":
            return playbook.effective_risk() is Risk.HIGH or not playbook.auto_execute
        return playbook.needs_approval(approve_from)

    def describe(self, playbook: Playbook, approve_from: str, policy: AutonomyPolicy) -> str:
        level = self.level(playbook, approve_from)
        what = {
            "demoted": f"demoted after {policy.demote_after} failed verifications in a row: "
            "asks a person until a promotion is confirmed",
            "earned": "promoted by a person: runs without asking unless its risk is high",
            "asks": "asks a person",
            "auto": "runs without asking",
        }[level]
        return (
            f"Autonomy: {what}. Record: {self.verified} verified, {self.failed} failed, "
            f"{self.granted} approved, {self.denied} denied; {self.approved_in_a_row} of "
            f"{policy.promote_after} approved-and-verified runs in a row toward a promotion."
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def autonomy_of(
    con: duckdb.DuckDBPyConnection,
    paths: HomePaths,
    playbooks: Iterable[Playbook],
    policy: AutonomyPolicy,
) -> dict[str, Autonomy]:
    """Each playbook's autonomy from its whole history in the store."""
    wanted = {p.id: p for p in playbooks}
    found = {pid: Autonomy(pid) for pid in wanted}
    if not wanted:
        return found
    rows = con.execute(
        """
        SELECT type, source, payload FROM events
        WHERE payload->>'playbook' IN (SELECT unnest(?::VARCHAR[]))
          AND ((source = 'aios.reactor' AND type IN ('remediation.finished', 'approval.granted',
                                                     'approval.denied', 'approval.expired'))
               OR source = ?)
        ORDER BY seq
        """,
        [list(wanted), SOURCE],
    ).fetchall()
    approved: set[str] = set()
    digests = {pid: playbook_digest(playbook) for pid, playbook in wanted.items()}
    for kind, _source, raw in rows:
        payload = orjson.loads(raw)
        state = found[str(payload["playbook"])]
        risk_high = wanted[state.playbook].effective_risk() is Risk.HIGH
        if kind == "approval.granted":
            if payload.get("by_person", True) is not False:  # a policy's grant earns nothing
                approved.add(str(payload.get("remediation_id")))
                state.granted += 1
        elif kind in ("approval.denied", "approval.expired"):
            state.denied += 1
            state.approved_in_a_row = 0
            state.earned = False
        elif kind == "remediation.finished":
            outcome = payload.get("outcome")
            if outcome == "succeeded":
                state.verified += 1
                state.failures_in_a_row = 0
                if str(payload.get("remediation_id")) in approved:
                    state.approved_in_a_row += 1
                    if (
                        state.approved_in_a_row >= policy.promote_after
                        and not state.promoted
                        and not risk_high
                        and not state.earned
                    ):
                        state.earned = state.proposal_due = True
            elif outcome in FAILED:
                state.failed += 1
                state.failures_in_a_row += 1
                state.approved_in_a_row = 0
                state.earned = state.proposal_due = False
                if state.failures_in_a_row >= policy.demote_after and not state.demoted:
                    state.demoted = state.demotion_due = True
                    state.promoted = False
        elif kind == PROMOTED:
            if not sealed(paths, "promoted", _seal_fields(payload)):
                continue
            state.demoted = state.demotion_due = False
            state.failures_in_a_row = state.approved_in_a_row = 0
            if payload.get("digest") == digests[state.playbook]:
                state.promoted, state.earned, state.proposal_due = True, False, False
                state.stale_promotion = False
            else:  # confirmed for another version: that person did not see this one
                state.promoted = False
                state.earned = state.proposal_due = state.stale_promotion = True
        elif kind == PROPOSED:
            state.proposal_due = False
        elif kind == DEMOTED:
            state.demotion_due = False
    return found


def _seal_fields(payload: dict[str, Any]) -> dict[str, Any]:
    return {**payload, "remediation_id": f"autonomy:{payload.get('playbook')}"}


def announce(
    bus: EventBus,
    found: dict[str, Autonomy],
    policy: AutonomyPolicy,
) -> list[dict[str, Any]]:
    """Record the demotions and the promotions earned that nobody was told about."""
    events: list[dict[str, Any]] = []
    for state in found.values():
        record = {
            "playbook": state.playbook,
            "verified": state.verified,
            "failed": state.failed,
            "approved_in_a_row": state.approved_in_a_row,
            "failures_in_a_row": state.failures_in_a_row,
        }
        if state.demotion_due:
            events.append(
                {
                    "type": DEMOTED,
                    "source": SOURCE,
                    "severity": "medium",
                    "labels": {"playbook": state.playbook},
                    "payload": {
                        **record,
                        "reason": f"{state.failures_in_a_row} failed verifications in a row",
                    },
                }
            )
        if state.proposal_due:
            events.append(
                {
                    "type": PROPOSED,
                    "source": SOURCE,
                    "labels": {"playbook": state.playbook},
                    "payload": {
                        **record,
                        "reason": (
                            "edited since a person confirmed its promotion"
                            if state.stale_promotion
                            else f"{state.approved_in_a_row} approved and verified runs in a "
                            f"row (promote_after {policy.promote_after})"
                        )
                        + f": confirm with aios playbooks promote {state.playbook}",
                    },
                }
            )
    if events:
        bus.emit_many(events)
    return events


def playbook_digest(playbook: Playbook) -> str:
    """What a promotion is for: the playbook's trigger, actions, risk (as declared and as
    effective), approval and verify settings and limits. Its description, tags and whether it
    is enabled do not count; any other edit makes a promotion stale."""
    document = {
        "playbook": playbook.model_dump(mode="json", exclude={"description", "tags", "enabled"}),
        "effective_risk": playbook.effective_risk().value,
    }
    return hashlib.sha256(orjson.dumps(document, option=orjson.OPT_SORT_KEYS)).hexdigest()[:32]


def promote(
    bus: EventBus,
    paths: HomePaths,
    playbook: Playbook,
    approver: str,
    reason: str,
    *,
    verified: bool = False,
) -> None:
    """A person confirms a promotion of ``playbook`` as it is now: ``autonomy.promoted``,
    sealed with its digest, so an edit afterwards makes the promotion stale. ``verified`` says
    an approver's code proved who (``aios.approvers``); otherwise the name is as given."""
    digest = playbook_digest(playbook)
    rid = f"autonomy:{playbook.id}"
    payload: dict[str, Any] = {
        "playbook": playbook.id,
        "approver": approver,
        "reason": reason,
        "verified": verified,
        "risk": playbook.effective_risk().value,
        "digest": digest,
        "seal": seal(paths, rid, "promoted", approver, digest),
    }
    bus.emit(PROMOTED, payload, source=SOURCE, labels={"playbook": playbook.id})


def review(
    bus: EventBus, paths: HomePaths, playbooks: Iterable[Playbook], policy: AutonomyPolicy
) -> tuple[dict[str, Autonomy], list[dict[str, Any]]]:
    """Each playbook's autonomy, and the demotions and earned promotions now recorded."""
    from aios.store import open_store

    with open_store(paths) as con:
        found = autonomy_of(con, paths, playbooks, policy)
    return found, announce(bus, found, policy)
