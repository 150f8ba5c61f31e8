"""What AIOS suggests a person look at: the analyst's findings, playbooks that earned
promotion, score weights that would track incidents better, and agent changes proposed or
judged. Each suggestion is gone once acted on (promoted, accepted, judged)."""

from __future__ import annotations

from typing import Any

import duckdb
import orjson


def suggestions(con: duckdb.DuckDBPyConnection, limit: int = 20) -> list[dict[str, Any]]:
    """Newest first: ``time``, ``kind``, ``subject``, ``text``."""
    out: list[dict[str, Any]] = []
    latest = con.execute(
        "SELECT time, payload FROM events WHERE type = 'analysis.reported' "
        "ORDER BY seq DESC LIMIT 1"
    ).fetchall()
    for time, payload in latest:
        for finding in orjson.loads(payload).get("findings", [])[:5]:
            text = finding.get("title", "")
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
        WHERE (type = 'autonomy.promotion_proposed' AND NOT EXISTS (
                  SELECT 1 FROM events p WHERE p.type = 'autonomy.promoted'
                    AND p.labels->>'playbook' = e.labels->>'playbook' AND p.seq > e.seq))
           OR (type = 'score.weights_suggested' AND NOT EXISTS (
                  SELECT 1 FROM events a WHERE a.type = 'score.weights_accepted'
                    AND a.seq > e.seq)
               AND seq = (SELECT max(seq) FROM events WHERE type = 'score.weights_suggested'))
           OR type IN ('evolution.proposed', 'evolution.verdict')
        ORDER BY seq DESC LIMIT ?
        """,
        [limit],
    ).fetchall()
    for time, kind, subject, payload in rows:
        data = orjson.loads(payload)
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
