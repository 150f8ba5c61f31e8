"""Agent evolution: an agent that keeps failing gets a change of its settings, and the change
is kept only if the numbers say it helped.

``propose`` looks at each agent named in ``[evolution] agents`` (where its tunables live: keys
of its config file, or parameters of its Prefect deployment). One that failed at least
``failures`` times within ``window`` gets a rule from its most frequent failure: timeouts raise
its timeout (times ``timeout_factor``, at most ``max_timeout``); rate limits lower its
concurrency by one; connection and other transient errors add a retry (at most
``max_retries``). The proposal is an ``evolution.proposed`` event, and the change is a playbook
made from it (``evolve-<agent>-<rule>``) that the reactor runs like any other: low risk (a
config file) at once, a deployment parameter (medium) after a person approves it.

``judge`` compares the agent's tasks in ``observe`` before the change with ``observe`` after
it (success rate and median latency, each side at least ``min_samples`` tasks). A success rate
that moved by a two-proportion z-test at 95% decides; otherwise a median latency that moved by
more than a quarter; otherwise it is inconclusive and kept. A worse change is rolled back
automatically. The verdict (``evolution.verdict``) updates the lesson of that failure.
"""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import duckdb
import orjson

from aios.config import AIOSConfig, EvolvedAgent
from aios.event import Event
from aios.loop.signatures import signature
from aios.playbooks.model import Playbook

SOURCE = "aios.evolution"
PROPOSED = "evolution.proposed"
VERDICT = "evolution.verdict"
AGENT_OF = "coalesce(labels->>'agent', source)"
Z_95 = 1.96
LATENCY_MOVE = 0.25

_RULES = (
    ("timeout", re.compile(r"time\s*-?\s*out|timed out|deadline|took too long", re.I)),
    ("rate_limit", re.compile(r"rate\s*-?\s*limit|too many requests|\b429\b|throttl", re.I)),
    (
        "transient",
        re.compile(
            r"connection|refused|reset|unreachable|unavailable|\b50[234]\b|temporar|transient",
            re.I,
        ),
    ),
)


def rule_for(sig: str) -> str | None:
    """Which change fits a failure signature: timeout, rate_limit, transient, or none."""
    for name, pattern in _RULES:
        if pattern.search(sig):
            return name
    return None


@dataclass
class Proposal:
    agent: str
    rule: str
    key: str
    signature: str
    failures: int
    file: str | None = None
    deployment: str | None = None
    value: Any = None  # a deployment parameter's new value (a file's is computed when applied)

    def payload(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


def _failures(
    con: duckdb.DuckDBPyConnection, agent: str, since: datetime, until: datetime
) -> list[str]:
    rows = con.execute(
        f"""
        SELECT payload->>'error_type', payload->>'error' FROM events
        WHERE type = 'task.failed' AND {AGENT_OF} = ? AND time >= ? AND time < ?
        """,
        [agent, since, until],
    ).fetchall()
    return [signature(kind, text) for kind, text in rows]


def _open(con: duckdb.DuckDBPyConnection) -> set[str]:
    """Agents with a change proposed and no verdict yet."""
    rows = con.execute(
        """
        SELECT p.payload->>'agent' FROM events p
        WHERE p.type = ? AND p.source = ?
          AND NOT EXISTS (SELECT 1 FROM events v WHERE v.type = ? AND v.source = ?
                          AND v.payload->>'proposal_id' = p.id::VARCHAR)
        """,
        [PROPOSED, SOURCE, VERDICT, SOURCE],
    ).fetchall()
    return {str(row[0]) for row in rows}


def propose(
    con: duckdb.DuckDBPyConnection,
    config: AIOSConfig,
    now: datetime,
    parameters: Callable[[str], dict[str, Any]] | None = None,
) -> list[Proposal]:
    """A change for each configured agent that keeps failing (one at a time per agent).
    ``parameters`` reads a deployment's parameters (for agents that are deployments)."""
    settings = config.evolution
    busy = _open(con)
    found = []
    for agent, spec in sorted(settings.agents.items()):
        if agent in busy:
            continue
        seen = _failures(con, agent, now - settings.window, now)
        if len(seen) < settings.failures:
            continue
        top = max(set(seen), key=lambda s: (seen.count(s), s))
        rule = rule_for(top)
        key = key_for(spec, rule)
        if rule is None or key is None:
            continue  # no rule for this failure, or nowhere to change it
        value = None
        if spec.deployment is not None:
            if parameters is None:
                continue
            value = _next(rule, parameters(spec.deployment).get(key), settings)
            if value is None:
                continue  # not a number, or at its limit already
        found.append(
            Proposal(
                agent,
                rule,
                key,
                top,
                len(seen),
                str(spec.file) if spec.file else None,
                spec.deployment,
                value,
            )
        )
    return found


def _next(rule: str, current: Any, settings: Any) -> float | int | None:
    """The new value of a deployment parameter, or None when there is nothing to do."""
    if isinstance(current, bool) or not isinstance(current, int | float):
        return None
    if rule == "timeout":
        new: float = min(current * settings.timeout_factor, settings.max_timeout)
    elif rule == "rate_limit":
        new = max(current - 1, 1)
    else:
        new = min(current + 1, settings.max_retries)
    if new == current:
        return None
    return int(new) if isinstance(current, int) and float(new).is_integer() else new


def key_for(spec: EvolvedAgent, rule: str | None) -> str | None:
    """Which of the agent's keys the rule changes (None: not configured)."""
    if rule == "timeout":
        return spec.timeout
    if rule == "rate_limit":
        return spec.concurrency
    if rule == "transient":
        return spec.retries
    return None


def playbook_for(proposal: Event, config: AIOSConfig) -> Playbook:
    """The playbook that makes the change an ``evolution.proposed`` event proposes."""
    p = proposal.payload
    settings = config.evolution
    agent, rule, key = str(p["agent"]), str(p["rule"]), str(p["key"])
    change: dict[str, Any] = {
        "timeout": {
            "op": "multiply",
            "value": settings.timeout_factor,
            "max": settings.max_timeout,
        },
        "rate_limit": {"op": "add", "value": -1, "min": 1},
        "transient": {"op": "add", "value": 1, "max": settings.max_retries},
    }[rule]
    trigger = {
        "type": PROPOSED,
        "conditions": [
            {"path": "payload.agent", "op": "eq", "value": agent},
            {"path": "payload.rule", "op": "eq", "value": rule},
        ],
    }
    data: dict[str, Any] = {
        "id": f"evolve-{_slug(agent)}-{rule.replace('_', '-')}",
        "description": f"Evolve {agent}: {rule.replace('_', ' ')} ({key}), judged by A/B.",
        "trigger": trigger,
        "limits": {"max_runs": 10, "window": "24h"},
        "tags": ["evolution"],
    }
    if p.get("file"):
        data["actions"] = [{"type": "config.update", "file": p["file"], "key": key, **change}]
        data["risk"] = "low"
    else:
        data["actions"] = [
            {
                "type": "prefect.deployment.set_parameters",
                "deployment": p["deployment"],
                "parameters": {key: "${payload.value}"},
            }
        ]
        data["risk"] = "medium"
    return Playbook.model_validate(data)


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "agent"


@dataclass
class Side:
    tasks: int
    failed: int
    latency_p50_ms: float | None

    @property
    def success_rate(self) -> float | None:
        return None if self.tasks == 0 else (self.tasks - self.failed) / self.tasks


def side(con: duckdb.DuckDBPyConnection, agent: str, since: datetime, until: datetime) -> Side:
    rows = con.execute(
        f"""
        SELECT type, TRY_CAST(payload->>'latency_ms' AS DOUBLE) FROM events
        WHERE type IN ('task.completed', 'task.failed') AND {AGENT_OF} = ?
          AND time >= ? AND time < ?
        """,
        [agent, since, until],
    ).fetchall()
    latencies = [lat for kind, lat in rows if kind == "task.completed" and lat is not None]
    return Side(
        len(rows),
        sum(1 for kind, _ in rows if kind == "task.failed"),
        statistics.median(latencies) if latencies else None,
    )


def compare(before: Side, after: Side, min_samples: int) -> tuple[str, float | None, str]:
    """better, worse, inconclusive or too_few; the z statistic; why."""
    if before.tasks < min_samples or after.tasks < min_samples:
        return "too_few", None, f"{before.tasks} tasks before, {after.tasks} after"
    p1, p2 = before.success_rate or 0.0, after.success_rate or 0.0
    pooled = (before.tasks - before.failed + after.tasks - after.failed) / (
        before.tasks + after.tasks
    )
    spread = math.sqrt(pooled * (1 - pooled) * (1 / before.tasks + 1 / after.tasks))
    z = (p2 - p1) / spread if spread > 0 else 0.0
    rates = f"success {p1:.0%} -> {p2:.0%} (z {z:.2f}, {before.tasks}/{after.tasks} tasks)"
    if z >= Z_95:
        return "better", z, rates
    if z <= -Z_95:
        return "worse", z, rates
    old, new = before.latency_p50_ms, after.latency_p50_ms
    if old and new:
        move = (new - old) / old
        latency = f"; median latency {old:.0f} -> {new:.0f} ms"
        if move <= -LATENCY_MOVE:
            return "better", z, rates + latency
        if move >= LATENCY_MOVE:
            return "worse", z, rates + latency
        return "inconclusive", z, rates + latency
    return "inconclusive", z, rates


@dataclass
class Applied:
    """A change that was made: its proposal, its remediation, and when it ended."""

    proposal: Event
    remediation_id: str
    playbook: str
    at: datetime


def applied_changes(con: duckdb.DuckDBPyConnection) -> list[Applied]:
    """Changes made (their remediation succeeded or ran unverified) without a verdict yet."""
    from aios.store.consumers import event_from_row

    rows = con.execute(
        """
        SELECT p.seq, p.id, p.time, p.type, p.source, p.severity, p.labels, p.payload,
               p.correlation_id, p.causation_id,
               f.payload->>'remediation_id', f.payload->>'playbook', f.time
        FROM events p
        JOIN events f ON f.type = 'remediation.finished' AND f.source = 'aios.reactor'
             AND f.correlation_id = p.id
             AND f.payload->>'outcome' IN ('succeeded', 'unverified')
        WHERE p.type = ? AND p.source = ?
          AND NOT EXISTS (SELECT 1 FROM events v WHERE v.type = ? AND v.source = ?
                          AND v.payload->>'proposal_id' = p.id::VARCHAR)
        ORDER BY p.seq
        """,
        [PROPOSED, SOURCE, VERDICT, SOURCE],
    ).fetchall()
    found = []
    for row in rows:
        _, event = event_from_row(row[:10])
        found.append(Applied(event, str(row[10]), str(row[11]), row[12]))
    return found


def verdict_payload(
    applied: Applied, verdict: str, z: float | None, why: str, before: Side, after: Side
) -> dict[str, Any]:
    p = applied.proposal.payload
    return {
        "proposal_id": applied.proposal.id,
        "agent": p["agent"],
        "rule": p["rule"],
        "key": p["key"],
        "signature": p.get("signature"),
        "remediation_id": applied.remediation_id,
        "verdict": verdict,
        "z": None if z is None else round(z, 3),
        "why": why,
        "before": {**asdict(before), "success_rate": before.success_rate},
        "after": {**asdict(after), "success_rate": after.success_rate},
    }


def proposals_json(proposals: list[Proposal]) -> bytes:
    return orjson.dumps([p.payload() for p in proposals])
