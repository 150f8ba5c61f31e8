"""Optimizer (Decide): a plan of remediations for the executor, with recommendations."""

from __future__ import annotations

from typing import Any

from prefect import flow

from flows import artifacts
from tasks.analyse import analyse_history
from tasks.plan import plan_remediations


def plan_rows(plan: dict[str, Any]) -> list[dict[str, Any]]:
    rows = [
        {
            "what": "remediation",
            "playbook": item["playbook"],
            "event": f"{item['event_type']} {item['event_id'][:8]}",
            "risk": item["risk"],
            "needs approval": item["needs_approval"],
            "status": item["status"],
            "actions": "; ".join(item["actions"]),
        }
        for item in plan["items"]
    ]
    rows += [
        {
            "what": f"recommendation ({r['kind']})",
            "playbook": "",
            "event": "",
            "risk": r["severity"],
            "needs approval": "",
            "status": r["title"],
            "actions": r["detail"],
        }
        for r in plan["recommendations"]
    ]
    return rows


@flow(name="aios-optimizer", log_prints=False)
def optimizer_flow(findings: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The plan for the executor's pending events; the analyst's findings (given, or made
    now) become recommendations."""
    if findings is None:
        findings = analyse_history()["findings"]
    plan = plan_remediations(findings)
    artifacts.table(
        "aios-optimizer-plan",
        plan_rows(plan),
        f"Plan {plan['plan_id'][:8]}: {len(plan['items'])} remediation(s) over "
        f"{plan['events']} pending event(s); {len(plan['recommendations'])} recommendation(s).",
    )
    return plan
