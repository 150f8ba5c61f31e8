"""Learner (Learn): playbook effectiveness, and lessons from repeated failures."""

from __future__ import annotations

from typing import Any

from prefect import flow

from flows import artifacts
from tasks.learn import (
    extract_lessons,
    learn_from_history,
    review_autonomy,
    suggest_score_weights,
)


@flow(name="aios-learner", log_prints=False)
def learner_flow() -> dict[str, Any]:
    """Record what changed; returns the effectiveness changes and the lesson pass."""
    report = learn_from_history()
    lessons = extract_lessons()
    autonomy = review_autonomy()
    weights = suggest_score_weights()
    sections = [report, lessons, autonomy, weights]
    artifacts.markdown(
        "aios-learner-changes",
        "\n".join(section.pop("markdown") for section in sections),
        "Playbook effectiveness, lessons, autonomy and score weights: what changed.",
    )
    return {**report, "lessons": lessons, "autonomy": autonomy, "score_weights": weights}
