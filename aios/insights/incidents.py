"""Incidents and what AIOS did about them: remediations with their latency and time to
resolve (MTTR), playbook effectiveness, the most frequent error signatures, approval load,
the approvals waiting right now, the answers refused, and the lessons learned."""

from __future__ import annotations

from datetime import UTC, datetime

import duckdb
import pandas as pd

from aios.approvers import SOURCE as WAITING_SOURCE
from aios.loop.analyst import failure_patterns, playbook_stats
from aios.reactor.state import REACTOR_SOURCE

_FAR_PAST = datetime(1970, 1, 1, tzinfo=UTC)
DECISIONS = ("approval.granted", "approval.denied", "approval.expired")


def remediations(con: duckdb.DuckDBPyConnection, since: datetime | None = None) -> pd.DataFrame:
    """One row per remediation (started, or asked about), oldest first.

    Columns: ``remediation_id``, ``playbook``, ``risk``, ``trigger_type``, ``triggered`` (the
    triggering event's time), ``requested`` (approval asked), ``decision`` (granted, denied,
    expired or None), ``approver``, ``started``, ``finished``, ``outcome`` (succeeded,
    rolled_back, failed, unverified; None while running or when denied), ``latency_s``
    (trigger to start) and ``resolve_s`` (trigger to finish).
    """
    frame: pd.DataFrame = con.execute(
        """
        WITH chain AS (
            SELECT payload->>'remediation_id' AS rid, type, time, seq, payload, correlation_id
            FROM events
            WHERE source = ? AND payload->>'remediation_id' IS NOT NULL
              AND type IN ('remediation.started', 'remediation.finished',
                           'approval.requested', 'approval.granted', 'approval.denied',
                           'approval.expired')
        ),
        r AS (
            SELECT rid,
                   any_value(payload->>'playbook') AS playbook,
                   max(payload->>'risk') AS risk,
                   min(time) FILTER (WHERE type = 'approval.requested') AS requested,
                   arg_max(split_part(type, '.', 2), seq)
                       FILTER (WHERE type IN ('approval.granted', 'approval.denied',
                                              'approval.expired')) AS decision,
                   arg_max(payload->>'approver', seq)
                       FILTER (WHERE type IN ('approval.granted', 'approval.denied',
                                              'approval.expired')) AS approver,
                   min(time) FILTER (WHERE type = 'remediation.started') AS started,
                   max(time) FILTER (WHERE type = 'remediation.finished') AS finished,
                   arg_max(payload->>'outcome', seq)
                       FILTER (WHERE type = 'remediation.finished') AS outcome,
                   any_value(payload->>'trigger_id')
                       FILTER (WHERE type = 'remediation.started') AS trigger_id,
                   min(seq) AS first_seq
            FROM chain GROUP BY rid
        ),
        causes AS (
            SELECT c.rid, any_value(e.type) AS trigger_type, any_value(e.time) AS triggered
            FROM (SELECT DISTINCT rid, correlation_id FROM chain) c
            JOIN events e ON e.id = c.correlation_id
            WHERE e.source <> ?
            GROUP BY c.rid
        )
        SELECT r.rid AS remediation_id, r.playbook, r.risk, causes.trigger_type,
               causes.triggered, r.requested, r.decision, r.approver, r.started, r.finished,
               r.outcome,
               epoch(r.started - causes.triggered) AS latency_s,
               epoch(r.finished - causes.triggered) AS resolve_s
        FROM r LEFT JOIN causes USING (rid)
        WHERE coalesce(r.started, r.requested) >= ?
        ORDER BY r.first_seq
        """,
        [REACTOR_SOURCE, REACTOR_SOURCE, since or _FAR_PAST],
    ).df()
    return frame


def mttr(
    con: duckdb.DuckDBPyConnection, since: datetime | None = None, every: str = "1 day"
) -> pd.DataFrame:
    """Per ``every`` bucket (``"1 hour"``, ``"1 day"``): remediations finished, how many
    succeeded, and the mean and median seconds from trigger to a verified fix (MTTR)."""
    return mttr_of(remediations(con, since), every)


def mttr_of(frame: pd.DataFrame, every: str = "1 day") -> pd.DataFrame:
    """``mttr`` of a ``remediations`` frame already read."""
    frame = frame[frame["finished"].notna()].copy()
    columns = ["bucket", "finished", "succeeded", "mttr_s", "median_s"]
    if frame.empty:
        return pd.DataFrame(columns=columns)
    frame["bucket"] = pd.to_datetime(frame["finished"], utc=True).dt.floor(pd.Timedelta(every))
    frame["ok_s"] = frame["resolve_s"].where(frame["outcome"] == "succeeded")
    grouped = frame.groupby("bucket")
    out = pd.DataFrame(
        {
            "finished": grouped.size(),
            "succeeded": grouped["outcome"].apply(lambda s: int((s == "succeeded").sum())),
            "mttr_s": grouped["ok_s"].mean(),
            "median_s": grouped["ok_s"].median(),
        }
    ).reset_index()
    return out[columns]


def playbook_effectiveness(
    con: duckdb.DuckDBPyConnection, since: datetime | None = None
) -> pd.DataFrame:
    """Per playbook: runs, each outcome's count, denials, and ``success_rate`` (verified
    successes over runs); most runs first."""
    stats = playbook_stats(con, since or _FAR_PAST, datetime.now(UTC))
    records = []
    for s in stats:
        record: dict[str, object] = {"playbook": s.playbook, "runs": s.runs}
        for outcome in ("succeeded", "rolled_back", "failed", "unverified", "denied"):
            record[outcome] = s.outcomes.get(outcome, 0)
        record["success_rate"] = s.outcomes.get("succeeded", 0) / s.runs if s.runs else None
        records.append(record)
    columns = ["playbook", "runs", "succeeded", "rolled_back", "failed", "unverified"]
    return pd.DataFrame.from_records(records, columns=[*columns, "denied", "success_rate"])


def top_signatures(
    con: duckdb.DuckDBPyConnection, since: datetime | None = None, limit: int = 10
) -> pd.DataFrame:
    """The most frequent normalised error signatures of task failures: ``signature``,
    ``count``, ``agents``, ``first``, ``last``, ``sample``."""
    patterns = failure_patterns(con, since or _FAR_PAST, datetime.now(UTC), limit=limit)
    return pd.DataFrame.from_records(
        [
            {
                "signature": p.signature,
                "count": p.count,
                "agents": ", ".join(p.agents),
                "first": p.first,
                "last": p.last,
                "sample": p.sample,
            }
            for p in patterns
        ],
        columns=["signature", "count", "agents", "first", "last", "sample"],
    )


def approval_load(
    con: duckdb.DuckDBPyConnection, since: datetime | None = None, every: str = "1 day"
) -> pd.DataFrame:
    """Per bucket: approvals requested, granted, denied, expired, answered late, and the
    median minutes a person took to answer."""
    frame: pd.DataFrame = con.execute(
        """
        WITH asked AS (
            SELECT payload->>'remediation_id' AS rid, min(time) AS at FROM events
            WHERE source = ? AND type = 'approval.requested' GROUP BY 1
        ),
        decided AS (
            SELECT payload->>'remediation_id' AS rid, arg_max(type, seq) AS type,
                   max(time) AS at
            FROM events WHERE source = ? AND type IN (SELECT unnest(?::VARCHAR[]))
            GROUP BY 1
        ),
        late AS (
            SELECT time_bucket(?::INTERVAL, time) AS bucket, count(*) AS late FROM events
            WHERE type = 'approval.late' AND time >= ? GROUP BY 1
        ),
        load AS (
            SELECT time_bucket(?::INTERVAL, asked.at) AS bucket,
                   count(*) AS requested,
                   count(*) FILTER (WHERE decided.type = 'approval.granted') AS granted,
                   count(*) FILTER (WHERE decided.type = 'approval.denied') AS denied,
                   count(*) FILTER (WHERE decided.type = 'approval.expired') AS expired,
                   median(epoch(decided.at - asked.at) / 60.0)
                       FILTER (WHERE decided.type <> 'approval.expired') AS answer_min
            FROM asked LEFT JOIN decided USING (rid)
            WHERE asked.at >= ?
            GROUP BY 1
        )
        SELECT coalesce(load.bucket, late.bucket) AS bucket,
               coalesce(requested, 0) AS requested, coalesce(granted, 0) AS granted,
               coalesce(denied, 0) AS denied, coalesce(expired, 0) AS expired,
               coalesce(late, 0) AS late, answer_min
        FROM load FULL JOIN late ON load.bucket = late.bucket
        ORDER BY 1
        """,
        [
            REACTOR_SOURCE,
            REACTOR_SOURCE,
            list(DECISIONS),
            every,
            since or _FAR_PAST,
            every,
            since or _FAR_PAST,
        ],
    ).df()
    return frame


def waiting_approvals(con: duckdb.DuckDBPyConnection, now: datetime | None = None) -> pd.DataFrame:
    """Approvals asked in a paused flow run and not answered yet, oldest first:
    ``remediation_id``, ``playbook``, ``risk``, ``flow_run_id``, ``since``, ``deadline``, and
    ``overdue``: past the deadline with no decision recorded (AIOS was not running to expire
    it; the next ``aios up`` does), so nobody can answer it any more."""
    frame: pd.DataFrame = con.execute(
        """
        WITH waiting AS (
            SELECT payload->>'remediation_id' AS remediation_id,
                   arg_max(payload->>'playbook', seq) AS playbook,
                   arg_max(payload->>'risk', seq) AS risk,
                   arg_max(payload->>'flow_run_id', seq) AS flow_run_id,
                   min(time) AS since,
                   TRY_CAST(arg_max(payload->>'deadline', seq) AS TIMESTAMPTZ) AS deadline,
                   max(seq) AS seq
            FROM events WHERE type = 'approval.waiting' AND source = ? GROUP BY 1
        ),
        ended AS (
            SELECT payload->>'remediation_id' AS remediation_id, max(seq) AS seq FROM events
            WHERE source = ? AND (type IN (SELECT unnest(?::VARCHAR[]))
                                  OR type IN ('remediation.finished', 'playbook.skipped',
                                              'approval.stale'))
            GROUP BY 1
        )
        SELECT w.remediation_id, w.playbook, w.risk, w.flow_run_id, w.since, w.deadline,
               coalesce(w.deadline < ?, false) AS overdue
        FROM waiting w LEFT JOIN ended e USING (remediation_id)
        WHERE e.seq IS NULL OR e.seq < w.seq
        ORDER BY w.since
        """,
        [WAITING_SOURCE, REACTOR_SOURCE, list(DECISIONS), now or datetime.now(UTC)],
    ).df()
    return frame


def refused_answers(
    con: duckdb.DuckDBPyConnection, since: datetime | None = None, limit: int | None = None
) -> pd.DataFrame:
    """Approval answers that did not count (``approval.refused``: an unknown approver, a risk
    above theirs, a wrong or spent code), newest first: ``time``, ``approver`` (the name
    given), ``playbook``, ``risk``, ``via`` (prefect or terminal), ``refusal`` (a stable
    word), ``reason``, ``remediation_id``."""
    frame: pd.DataFrame = con.execute(
        """
        SELECT time, payload->>'approver' AS approver, payload->>'playbook' AS playbook,
               payload->>'risk' AS risk, payload->>'via' AS via,
               payload->>'refusal' AS refusal, payload->>'reason' AS reason,
               payload->>'remediation_id' AS remediation_id
        FROM events
        WHERE type = 'approval.refused' AND source = ? AND time >= ?
        ORDER BY seq DESC LIMIT ?
        """,
        [WAITING_SOURCE, since or _FAR_PAST, limit],
    ).df()
    return frame


def lessons(con: duckdb.DuckDBPyConnection, limit: int | None = None) -> pd.DataFrame:
    """The lessons learned (the ``limit`` latest, or all), most recently updated first:
    ``lesson_id``, ``symptom``, ``state`` (draft, verified, hardened), ``count``,
    ``successes``, ``failures``, ``last_seen``, ``updated``, ``owner`` (the agent whose
    lesson it is, or ``shared``)."""
    frame: pd.DataFrame = con.execute(
        "SELECT lesson_id, symptom, state, count, successes, failures, last_seen, updated, "
        "owner FROM lessons ORDER BY updated DESC LIMIT ?",
        [limit],
    ).df()
    return frame
