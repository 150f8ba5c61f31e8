"""What AIOS suggests a person look at: the analyst's latest findings, playbooks that earned
promotion, score weights that would track incidents better, and agent changes proposed and
not yet judged (and the latest verdicts). Only AIOS's own events count: nothing another
program emits can put a suggestion here. A suggestion is gone once acted on (promoted,
accepted, judged) or, for findings, once a week old."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import duckdb
import orjson

from aios.autonomy import SOURCE as AUTONOMY
from aios.evolution import SOURCE as EVOLUTION
from aios.loop.analyst import SOURCE as ANALYST

LEARNER = "aios.learner"
FINDINGS_FOR = timedelta(days=7)


def suggestions(
    con: duckdb.DuckDBPyConnection, now: datetime, limit: int = 20
) -> list[dict[str, Any]]:
    """Newest first: ``time``, ``kind``, ``subject``, ``text``."""
    out: list[dict[str, Any]] = []
    latest = con.execute(
        "SELECT time, payload FROM events WHERE type = 'analysis.reported' AND source = ? "
        "AND time >= ? ORDER BY seq DESC LIMIT 1",
        [ANALYST, now - FINDINGS_FOR],
    ).fetchall()
    for time, payload in latest:
        findings = orjson.loads(payload).get("findings")
        for finding in findings[:5] if isinstance(findings, list) else []:
            if not isinstance(finding, dict):
                continue
            text = str(finding.get("title", ""))
            if finding.get("detail"):
                text += f": {finding['detail']}"
            out.append(
                {"time": time, "kind": "finding", "subject": finding.get("kind"), "text": text}
            )
    rows = con.execute(
        """
        SELECT time, type, coalesce(labels->>'playbook', labels->>'agent', '') AS subject,
               payload
        FROM events e
        WHERE (type = 'autonomy.promotion_proposed' AND source = ? AND NOT EXISTS (
                  SELECT 1 FROM events p WHERE p.type = 'autonomy.promoted' AND p.source = ?
                    AND p.labels->>'playbook' = e.labels->>'playbook' AND p.seq > e.seq))
           OR (type = 'score.weights_suggested' AND source = ? AND NOT EXISTS (
                  SELECT 1 FROM events a WHERE a.type = 'score.weights_accepted'
                    AND a.source = 'aios.score' AND a.seq > e.seq)
               AND seq = (SELECT max(seq) FROM events
                          WHERE type = 'score.weights_suggested' AND source = ?))
           OR (type = 'evolution.proposed' AND source = ? AND NOT EXISTS (
                  SELECT 1 FROM events v WHERE v.type = 'evolution.verdict' AND v.source = ?
                    AND v.correlation_id = e.id::VARCHAR))
           OR (type = 'evolution.verdict' AND source = ? AND time >= ?)
        ORDER BY seq DESC LIMIT ?
        """,
        [
            AUTONOMY,
            AUTONOMY,
            LEARNER,
            LEARNER,
            EVOLUTION,
            EVOLUTION,
            EVOLUTION,
            now - FINDINGS_FOR,
            limit,
        ],
    ).fetchall()
    for time, kind, subject, payload in rows:
        data = orjson.loads(payload)
        data = data if isinstance(data, dict) else {}
        out.append({"time": time, "kind": kind, "subject": subject, "text": _text(kind, data)})
    out.sort(key=lambda s: s["time"], reverse=True)
    return out[:limit]


def _text(kind: str, data: dict[str, Any]) -> str:
    if kind == "score.weights_suggested":
        return (
            f"weights {data.get('suggested')} would track incidents better "
            f"({data.get('reason', '')}): aios score --accept-weights"
        )
    if kind == "evolution.proposed":
        return (
            f"{data.get('rule')} ({data.get('key')}) after {data.get('failures')} failures "
            f"like {data.get('signature')}"
        )
    if kind == "evolution.verdict":
        return f"{data.get('rule')} judged {data.get('verdict')}: {data.get('why', '')}"
    return str(data.get("reason") or kind)
