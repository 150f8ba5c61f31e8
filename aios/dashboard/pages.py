"""The data behind each dashboard page, as JSON-ready dicts, from one store connection.

Overview (score, grade, trend, timeline, top issues), Agents, Evolution (score and components
over time, lessons, playbook effectiveness, suggestions), Performance (event rates,
remediation latency and MTTR, throughput) and Approvals (waiting, with links into the Prefect
UI; recent decisions; answers refused). Times in series are epoch seconds (what the charts
take); elsewhere ISO strings.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import duckdb
import orjson
import pandas as pd

from aios import insights
from aios.agents.registry import agent_views
from aios.loop.analyst import top_issues

PAGES = ("overview", "agents", "evolution", "performance", "approvals")
SCORE_WINDOW = timedelta(days=2)
HISTORY_WINDOW = timedelta(days=7)
RATES_WINDOW = timedelta(hours=24)
LESSONS_SHOWN = 50
REFUSED_SHOWN = 20


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as dicts: timestamps as ISO strings, NaN and NaT as None."""
    if frame.empty:
        return []
    data: list[dict[str, Any]] = orjson.loads(frame.to_json(orient="records", date_format="iso"))
    return data


def series(frame: pd.DataFrame, time_column: str, columns: list[str]) -> dict[str, list[Any]]:
    """Columns as lists for a chart: ``t`` (epoch seconds) and each column (None for NaN)."""
    out: dict[str, list[Any]] = {"t": []}
    for column in columns:
        out[column] = []
    if frame.empty:
        return out
    times = pd.to_datetime(frame[time_column], utc=True)
    out["t"] = [round(t.timestamp(), 3) for t in times]
    for column in columns:
        values = frame[column] if column in frame else [None] * len(frame)
        out[column] = [_number(v) for v in values]
    return out


def _number(value: Any) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else round(number, 4)


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None and not pd.isna(value) else None


def overview(con: duckdb.DuckDBPyConnection, now: datetime, preset: str) -> dict[str, Any]:
    scores = insights.score_history(con, preset, since=now - SCORE_WINDOW)
    latest = None
    if not scores.empty:
        row = scores.iloc[-1]
        latest = {
            "value": _number(row["score"]),
            "grade": row["grade"],
            "trend": row["trend"],
            "time": _iso(row["time"]),
        }
    day = now - RATES_WINDOW
    counts = con.execute(
        """
        SELECT count(*), count(*) FILTER (WHERE priority IN ('P0', 'P1')),
               count(*) FILTER (WHERE type = 'remediation.finished' AND source = 'aios.reactor'),
               count(*) FILTER (WHERE type = 'remediation.finished' AND source = 'aios.reactor'
                                AND payload->>'outcome' = 'succeeded')
        FROM events WHERE time >= ?
        """,
        [day],
    ).fetchall()[0]
    issues = [
        {
            "type": i.type,
            "subject": i.subject,
            "severity": i.severity,
            "count": i.count,
            "last": i.last.isoformat(),
        }
        for i in top_issues(con, day, now + timedelta(seconds=1))
    ]
    return {
        "preset": preset,
        "score": latest,
        "bands": insights.GRADE_BANDS.get(preset, []),
        "series": series(scores, "time", ["score"]),
        "counts": {
            "events_24h": int(counts[0]),
            "urgent_24h": int(counts[1]),
            "remediations_24h": int(counts[2]),
            "fixed_24h": int(counts[3]),
            "waiting_approvals": int((~insights.waiting_approvals(con, now)["overdue"]).sum()),
        },
        "timeline": records(insights.recent_events(con, limit=30)),
        "top_issues": issues,
    }


def agents(con: duckdb.DuckDBPyConnection, now: datetime, preset: str) -> dict[str, Any]:
    return {
        "agents": [view.to_dict() for view in agent_views(con, now)],
        "recent_tasks": records(insights.recent_tasks(con, limit=30)),
    }


def evolution(con: duckdb.DuckDBPyConnection, now: datetime, preset: str) -> dict[str, Any]:
    since = now - HISTORY_WINDOW
    scores = insights.score_history(con, preset, since=since)
    components = insights.score_components(con, preset, since=since)
    names = [c for c in components.columns if c != "time"]
    return {
        "preset": preset,
        "bands": insights.GRADE_BANDS.get(preset, []),
        "score": series(scores, "time", ["score"]),
        "components": series(components, "time", names),
        "lessons": records(insights.lessons(con, limit=LESSONS_SHOWN)),
        "playbooks": records(insights.playbook_effectiveness(con, since)),
        "suggestions": [
            {**s, "time": _iso(s["time"])} for s in insights.suggestions(con, now, limit=15)
        ],
    }


def performance(con: duckdb.DuckDBPyConnection, now: datetime, preset: str) -> dict[str, Any]:
    """Latency is split: automatic remediations (event to action is AIOS's own speed) and
    those a person approved (the wait for the answer dominates). MTTR counts each
    remediation that verified, from its triggering event to its end."""
    day = now - RATES_WINDOW
    rates = insights.event_rates(con, since=day, every="10 minutes")
    work = insights.throughput(con, since=day, every="10 minutes")
    fixes = insights.remediations(con, since=now - HISTORY_WINDOW)
    started = fixes[fixes["started"].notna()]
    automatic = started[started["requested"].isna()]
    approved = started[started["requested"].notna()]
    resolved = fixes[(fixes["outcome"] == "succeeded") & fixes["resolve_s"].notna()]
    mttr = insights.mttr_of(fixes, every="1 hour")
    return {
        "rates": series(rates, "bucket", ["P0", "P1", "P2", "P3"]),
        "throughput": series(
            work, "bucket", ["completed", "failed", "latency_p50_ms", "latency_p95_ms"]
        ),
        "remediation": {
            "count": len(started),
            "automatic": len(automatic),
            "approved": len(approved),
            "latency_p50_s": _quantile(automatic["latency_s"], 0.5),
            "latency_p95_s": _quantile(automatic["latency_s"], 0.95),
            "approved_latency_p50_s": _quantile(approved["latency_s"], 0.5),
            "mttr_s": _number(resolved["resolve_s"].mean()) if len(resolved) else None,
            "resolved": len(resolved),
        },
        "mttr": series(mttr, "bucket", ["mttr_s", "finished"]),
        "latency": series(started, "started", ["latency_s", "resolve_s"]),
    }


def _quantile(values: pd.Series, q: float) -> float | None:
    values = values.dropna()
    return _number(values.quantile(q)) if len(values) else None


def approvals(
    con: duckdb.DuckDBPyConnection, now: datetime, preset: str, ui_url: str | None = None
) -> dict[str, Any]:
    waiting = records(insights.waiting_approvals(con, now))
    for item in waiting:
        run = item.get("flow_run_id")
        item["link"] = f"{ui_url}/runs/flow-run/{run}" if ui_url and run else None
    fixes = insights.remediations(con, since=now - HISTORY_WINDOW)
    decided = fixes[fixes["decision"].notna()].tail(20).iloc[::-1]
    return {
        "ui_url": ui_url,
        "waiting": waiting,
        "recent": records(
            decided[["remediation_id", "playbook", "risk", "requested", "decision", "approver"]]
        ),
        "refused": records(
            insights.refused_answers(con, since=now - HISTORY_WINDOW, limit=REFUSED_SHOWN)
        ),
    }


Builder = Callable[[duckdb.DuckDBPyConnection, datetime, str], dict[str, Any]]
BUILDERS: dict[str, Builder] = {
    "overview": overview,
    "agents": agents,
    "evolution": evolution,
    "performance": performance,
}
