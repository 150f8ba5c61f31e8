"""Executor (Act): run the plan; low risk at once, the rest through the approval gate."""

from __future__ import annotations

from typing import Any

from prefect import flow

from flows import artifacts
from flows.remediation import remediate
from flows.runtime import ui_url
from tasks.plan import plan_remediations
from tasks.policy import run_context
from tasks.remediate import advance_executor


def result_rows(outcomes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "playbook": o["playbook"],
            "event": f"{o.get('event_type', '')} {o['event_id'][:8]}",
            "status": o["status"],
            "risk": o.get("risk"),
            "reason": o.get("reason", ""),
            "remediation": o.get("remediation_id"),
        }
        for o in outcomes
    ]


@flow(name="aios-executor", log_prints=False)
def executor_flow(plan: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run ``plan`` (the optimizer's, or a new one for the pending events) and move the
    executor's place past it; returns every outcome."""
    if plan is None:
        plan = plan_remediations()
    config = run_context().config
    by_playbook: dict[str, list[str]] = {}
    by_lesson: list[dict[str, Any]] = []
    for item in plan["items"]:
        if item["status"] != "proposed":
            continue
        if item.get("lesson_id"):
            by_lesson.append(item)
        else:
            by_playbook.setdefault(item["playbook"], []).append(item["event_id"])
    outcomes: list[dict[str, Any]] = []
    for playbook, event_ids in by_playbook.items():
        outcomes += remediate(event_ids, config, only=[playbook], ui_url=ui_url())
    for item in by_lesson:  # a proven lesson's fix, the lesson read again as it is now
        lesson = {"lesson_id": item["lesson_id"], "similarity": item["similarity"]}
        outcomes += remediate(
            [item["event_id"]], config, only=[item["playbook"]], ui_url=ui_url(), lesson=lesson
        )
    position = advance_executor(plan["upto_seq"])
    artifacts.table(
        "aios-executor-results",
        result_rows(outcomes),
        f"Plan {plan['plan_id'][:8]}: {len(outcomes)} remediation outcome(s).",
    )
    return {"plan_id": plan["plan_id"], "outcomes": outcomes, "position": position}
