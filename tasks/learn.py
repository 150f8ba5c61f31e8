"""Learning: playbook effectiveness and lesson candidates from the history."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aios.loop.learner import learn
from aios.store import open_store
from tasks.policy import aios_task, run_context


@aios_task("learn-from-history")
def learn_from_history() -> dict[str, Any]:
    """Record what changed (``playbook.effectiveness``, ``lesson.candidate``)."""
    ctx = run_context()
    with open_store(ctx.paths) as con:
        report = learn(ctx.bus, con, now=datetime.now(UTC))
    return {**report.to_dict(), "markdown": report.to_markdown()}
