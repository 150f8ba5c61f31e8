"""Learner (Learn): playbook effectiveness, lessons, earned autonomy, score weights and agent
evolution."""

from __future__ import annotations

from typing import Any

from prefect import flow

from flows import artifacts
from flows.remediation import remediate
from flows.runtime import ui_url
from tasks.learn import (
    evolve_agents,
    extract_lessons,
    learn_from_history,
    review_autonomy,
    suggest_score_weights,
)
from tasks.policy import run_context


@flow(name="aios-learner", log_prints=False)
def learner_flow() -> dict[str, Any]:
    """Record what changed: playbook effectiveness, lessons, autonomy, score weights, and
    the agents' changes proposed, made (through the approval gate) and judged."""
    report = learn_from_history()
    lessons = extract_lessons()
    autonomy = review_autonomy()
    weights = suggest_score_weights()
    evolution = evolve_agents()
    proposed = [item["event_id"] for item in evolution["proposed"]]
    evolution["outcomes"] = (
        remediate(proposed, run_context().config, ui_url=ui_url()) if proposed else []
    )
    evolution["markdown"] += "".join(
        f"- {o['playbook']}: {o['status']} ({o.get('reason', '')})\n" for o in evolution["outcomes"]
    )
    sections = [report, lessons, autonomy, weights, evolution]
    artifacts.markdown(
        "aios-learner-changes",
        "\n".join(section.pop("markdown") for section in sections),
        "Playbook effectiveness, lessons, autonomy, score weights and agent evolution.",
    )
    return {
        **report,
        "lessons": lessons,
        "autonomy": autonomy,
        "score_weights": weights,
        "evolution": evolution,
    }
