"""Learner (Learn): playbook effectiveness, and lessons from repeated failures."""

from __future__ import annotations

from typing import Any

from prefect import flow

from flows import artifacts
from tasks.learn import extract_lessons, learn_from_history


@flow(name="aios-learner", log_prints=False)
def learner_flow() -> dict[str, Any]:
    """Record what changed; returns the effectiveness changes and the lesson pass."""
    report = learn_from_history()
    lessons = extract_lessons()
    artifacts.markdown(
        "aios-learner-changes",
        report.pop("markdown") + "\n" + lessons.pop("markdown"),
        "Playbook effectiveness that changed, and lessons made, verified or demoted.",
    )
    return {**report, "lessons": lessons}
