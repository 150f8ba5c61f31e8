"""Validator (Verify): roll back what was left half done; did the fixes hold?"""

from __future__ import annotations

from typing import Any

from prefect import flow

from flows import artifacts
from tasks.verify import validate_outcomes


def verdict_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    rows = [
        {
            "remediation": o["remediation_id"],
            "playbook": o["playbook"],
            "verdict": f"interrupted: {o['status']}",
            "before": None,
            "after": None,
            "detail": o["reason"],
        }
        for o in report["interrupted"]
    ]
    rows += [
        {
            "remediation": v["remediation_id"],
            "playbook": v["playbook"],
            "verdict": v["verdict"],
            "before": v["before"],
            "after": v["after"],
            "detail": v["detail"],
        }
        for v in report["verdicts"]
    ]
    return rows


@flow(name="aios-validator", log_prints=False)
def validator_flow(window_hours: float = 24.0) -> dict[str, Any]:
    """Verdicts on the remediations of the last ``window_hours``."""
    report = validate_outcomes(window_hours)
    artifacts.table(
        "aios-validator-verdicts",
        verdict_rows(report),
        f"{len(report['verdicts'])} verdict(s); {len(report['interrupted'])} interrupted "
        "remediation(s) rolled back.",
    )
    return report
