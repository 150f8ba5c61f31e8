"""Deciding: the optimizer's plan of remediations for the executor."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aios.lessons.apply import ProvenFixes
from aios.lessons.index import LessonIndex
from aios.loop.analyst import Finding
from aios.loop.optimizer import make_plan, record_plan
from aios.reactor.runner import settings_from
from tasks.policy import aios_task, run_context
from tasks.remediate import loaded_playbooks


@aios_task("make-plan")
def plan_remediations(findings: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Preview the pending P2 events through the playbooks; record ``plan.proposed``."""
    ctx = run_context()
    index = loaded_playbooks(ctx.config)
    lessons = LessonIndex.open(ctx.paths, ctx.config)
    threshold = ctx.config.lessons.similarity or lessons.palace.embedding.default_similarity
    plan = make_plan(
        ctx.bus,
        ctx.paths,
        index,
        settings_from(ctx.config, ctx.paths),
        [Finding(**f) for f in findings or []],
        now=datetime.now(UTC),
        lessons=ProvenFixes(lessons, index, threshold),
    )
    record_plan(ctx.bus, plan)
    return plan.to_dict()
