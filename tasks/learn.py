"""Learning: playbook effectiveness, and lessons from repeated failures."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aios.lessons.extract import run_pass
from aios.loop.learner import learn
from aios.store import open_store
from tasks.policy import aios_task, run_context


@aios_task("learn-from-history")
def learn_from_history() -> dict[str, Any]:
    """Record playbook effectiveness that changed (``playbook.effectiveness``)."""
    ctx = run_context()
    with open_store(ctx.paths) as con:
        report = learn(ctx.bus, con, now=datetime.now(UTC))
    return {**report.to_dict(), "markdown": report.to_markdown()}


@aios_task("extract-lessons")
def extract_lessons() -> dict[str, Any]:
    """One lesson pass: new lessons, lessons seen again, verified or demoted by remediations."""
    ctx = run_context()
    report = run_pass(ctx.paths, config=ctx.config)
    return {**report.to_dict(), "markdown": report.to_markdown()}


@aios_task("review-autonomy")
def review_autonomy() -> dict[str, Any]:
    """Each playbook's earned autonomy; record demotions and promotions earned."""
    from aios.autonomy import review
    from aios.reactor.runner import settings_from
    from tasks.remediate import loaded_playbooks

    ctx = run_context()
    index = loaded_playbooks(ctx.config)
    found, recorded = review(
        ctx.bus, ctx.paths, index.playbooks.values(), settings_from(ctx.config, ctx.paths).autonomy
    )
    lines = ["## Autonomy", ""]
    for event in recorded:
        lines.append(
            f"- {event['payload']['playbook']}: {event['type']} ({event['payload']['reason']})"
        )
    if not recorded:
        lines.append("No playbook was demoted or earned a promotion.")
    return {
        "playbooks": {pid: state.to_dict() for pid, state in found.items()},
        "recorded": [e["type"] for e in recorded],
        "markdown": "\n".join(lines) + "\n",
    }


@aios_task("suggest-score-weights")
def suggest_score_weights() -> dict[str, Any]:
    """Weights of the score's preset that would track incident hours better; recorded as
    ``score.weights_suggested`` when new, applied only when a person accepts them."""
    import orjson

    from aios.score.weights import suggest_weights

    ctx = run_context()
    preset = ctx.config.score.preset
    with open_store(ctx.paths) as con:
        found = suggest_weights(
            con,
            preset=preset,
            now=datetime.now(UTC),
            current=ctx.config.score.weights.get(preset),
            latency_budget_ms=ctx.config.score.latency_budget_ms,
        )
        last = con.execute(
            "SELECT arg_max(payload, seq) FROM events WHERE type = 'score.weights_suggested'"
        ).fetchone()
    previous = orjson.loads(last[0]).get("suggested") if last and last[0] else None
    if found.suggested is not None and found.suggested != previous:
        ctx.bus.emit("score.weights_suggested", found.to_dict(), source="aios.learner")
    line = f"- {preset}: {found.reason}"
    if found.suggested is not None:
        line += f"; suggested {found.suggested} (accept with `aios score --accept-weights`)"
    return {**found.to_dict(), "markdown": "## Score weights\n\n" + line + "\n"}


@aios_task("evolve-agents")
def evolve_agents() -> dict[str, Any]:
    """Judge the changes whose A/B window has passed (rolling back the worse ones), and
    propose changes for the agents that keep failing; returns the proposals' event ids for
    the flow to remediate (through the approval gate when they need a person)."""
    from aios.evolution_runs import EvolutionReport, judge, record_proposals
    from aios.prefect_api import HttpPrefectAPI, api_url
    from tasks.remediate import loaded_playbooks

    ctx = run_context()
    now = datetime.now(UTC)

    def parameters(name: str) -> dict[str, Any]:
        with HttpPrefectAPI(api_url(ctx.paths)) as api:
            return dict(api.read_deployment_by_name(name).get("parameters") or {})

    report = EvolutionReport()
    report.verdicts = judge(ctx.bus, ctx.paths, ctx.config, loaded_playbooks(ctx.config), now=now)
    report.proposed = record_proposals(
        ctx.bus, ctx.paths, ctx.config, now=now, parameters=parameters
    )
    return {**report.to_dict(), "markdown": report.to_markdown()}
