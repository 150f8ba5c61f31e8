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
