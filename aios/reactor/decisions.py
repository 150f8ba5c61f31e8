"""Where a remediation's approval stands, as the log and the Prefect server tell it.

``DecisionWatch`` follows the log from a place and reports the first sealed decision about a
remediation (granted for the same plan, denied or expired), so a run waiting for a person can
stop when the answer was given to another run. ``other_paused_runs`` lists the flow runs
paused for a remediation right now (from ``approval.waiting`` and the server), so only one run
asks about it at a time. ``orphaned_requests`` finds the requests nobody can answer any more
(the runs that asked were cancelled when ``aios up`` stopped, or crashed).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

# approval.waiting is believed only from the paused flow runs' source: an event of that type
# from anyone else says nothing about which runs wait.
from aios.approvers import SOURCE as WAITING_SOURCE
from aios.event import Event
from aios.home import HomePaths
from aios.log import Cursor, EventLog
from aios.prefect_api import PrefectAPI, PrefectAPIError, PrefectNotFoundError
from aios.reactor.approval import ApprovalDecision
from aios.reactor.seal import sealed
from aios.reactor.state import REACTOR_SOURCE
from aios.store import open_store

VERDICTS = {
    "approval.granted": "granted",
    "approval.denied": "denied",
    "approval.expired": "expired",
}


def decision_of(paths: HomePaths, event: Event, rid: str, digest: str) -> ApprovalDecision | None:
    """The decision ``event`` records about remediation ``rid``'s plan ``digest``, if it is one
    (sealed by the reactor; a grant only for that very plan)."""
    verdict = VERDICTS.get(event.type)
    payload = event.payload
    if verdict is None or event.source != REACTOR_SOURCE or payload.get("remediation_id") != rid:
        return None
    if not sealed(paths, verdict, dict(payload)):
        return None
    if verdict == "granted" and str(payload.get("digest") or "") != digest:
        return None
    return ApprovalDecision(
        verdict == "granted",
        str(payload.get("approver", "")),
        str(payload.get("reason", "")),
        expired=verdict == "expired",
    )


class DecisionWatch:
    """The first decision about ``rid`` recorded after ``cursor``; reads only what is new."""

    def __init__(self, paths: HomePaths, rid: str, digest: str, cursor: Cursor) -> None:
        self.paths, self.rid, self.digest = paths, rid, digest
        self.log = EventLog(paths.events)
        self.cursor = cursor
        self.found: ApprovalDecision | None = None

    def __call__(self) -> ApprovalDecision | None:
        if self.found is None:
            for event, after in self.log.read(cursor=self.cursor):
                self.cursor = after
                found = decision_of(self.paths, event, self.rid, self.digest)
                if found is not None:
                    self.found = found
                    break
        return self.found


def other_paused_runs(paths: HomePaths, api: PrefectAPI, rid: str, mine: str) -> list[str]:
    """Flow runs other than ``mine`` that are paused right now asking about ``rid``."""
    with open_store(paths) as con:
        rows = con.execute(
            "SELECT DISTINCT payload->>'flow_run_id' FROM events "
            "WHERE type = 'approval.waiting' AND source = ? AND payload->>'remediation_id' = ?",
            [WAITING_SOURCE, rid],
        ).fetchall()
    paused = []
    for (run_id,) in rows:
        if not run_id or run_id == mine:
            continue
        try:
            if api.read_flow_run(str(run_id)).get("state_type") == "PAUSED":
                paused.append(str(run_id))
        except PrefectAPIError:
            continue  # gone, or the server cannot say: not known to be waiting
    return paused


LIVE_STATES = frozenset({"SCHEDULED", "PENDING", "RUNNING", "PAUSED"})


@dataclass(frozen=True)
class Orphan:
    """A request for approval that nobody can answer any more: the runs that asked are gone
    (``aios up`` stopped, a run crashed) and nothing was decided."""

    remediation_id: str
    playbook: str
    trigger_id: str
    requested_at: datetime
    request: dict[str, Any]


def orphaned_requests(paths: HomePaths, api: PrefectAPI) -> list[Orphan]:
    """Undecided approval requests of unfinished remediations whose asking runs are all over."""
    with open_store(paths) as con:
        rows = con.execute(
            """
            WITH requests AS (
                SELECT payload->>'remediation_id' AS rid, arg_max(payload, seq) AS payload,
                       arg_max(correlation_id, seq) AS trigger_id, max(seq) AS seq,
                       max(time) AS time
                FROM events WHERE type = 'approval.requested' AND source = ?
                GROUP BY 1
            )
            SELECT r.rid, r.payload, r.trigger_id, r.time,
                   (SELECT list(DISTINCT w.payload->>'flow_run_id') FROM events w
                    WHERE w.type = 'approval.waiting' AND w.source = ?
                      AND w.payload->>'remediation_id' = r.rid) AS runs
            FROM requests r
            WHERE NOT EXISTS (
                SELECT 1 FROM events d
                WHERE d.seq > r.seq AND d.source = ? AND d.payload->>'remediation_id' = r.rid
                  AND d.type IN ('approval.granted', 'approval.denied', 'approval.expired',
                                 'remediation.finished', 'playbook.skipped'))
            """,
            [REACTOR_SOURCE, WAITING_SOURCE, REACTOR_SOURCE],
        ).fetchall()
    found = []
    for rid, payload, trigger_id, at, runs in rows:
        if not trigger_id or any(_live(api, str(run)) for run in runs or [] if run):
            continue
        request = orjson.loads(payload)
        found.append(Orphan(str(rid), str(request.get("playbook")), str(trigger_id), at, request))
    return found


def _live(api: PrefectAPI, run_id: str) -> bool:
    try:
        return api.read_flow_run(run_id).get("state_type") in LIVE_STATES
    except PrefectNotFoundError:
        return False
    except PrefectAPIError:
        return True  # the server cannot say: do not take it from a run that may be waiting
