"""Learner (Learn): playbook effectiveness and lesson candidates."""

from __future__ import annotations

from typing import Any

from prefect import flow

from flows import artifacts
from tasks.learn import learn_from_history


@flow(name="aios-learner", log_prints=False)
def learner_flow() -> dict[str, Any]:
    """Record what changed; returns the changes and the new candidates."""
    report = learn_from_history()
    artifacts.markdown(
        "aios-learner-changes",
        report.pop("markdown"),
        "Playbook effectiveness that changed, and new lesson candidates.",
    )
    return report
