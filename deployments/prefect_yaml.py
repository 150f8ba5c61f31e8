"""``deployments/prefect.yaml``, rendered from the definitions.

``python -m deployments.prefect_yaml`` rewrites the file; a test checks that the file in the
repository is exactly what this renders. Deploy with
``prefect deploy --all --prefect-file deployments/prefect.yaml`` from the project root, after
``prefect work-pool create aios --type process``. Plugin agents' deployments are left out: the
file describes AIOS itself, whatever is installed where it is rendered.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

from deployments.definitions import DEPLOYMENT_NAME, DEPLOYMENTS, TAG, DeploymentSpec

PATH = Path(__file__).resolve().parent / "prefect.yaml"
WORK_POOL = "aios"
HEADER = """\
# AIOS deployments for `prefect deploy --all --prefect-file deployments/prefect.yaml`, run from
# the project root after `prefect work-pool create aios --type process`; start workers with
# `prefect worker start --pool aios` on every machine that has this project.
# Rendered from deployments/definitions.py by `python -m deployments.prefect_yaml`: edit the
# definitions, not this file (a test keeps the two identical).
"""


def _schedules(spec: DeploymentSpec) -> list[dict[str, Any]]:
    if spec.interval_s:
        return [{"interval": spec.interval_s}]
    if spec.cron:
        return [{"cron": spec.cron, "timezone": "UTC"}]
    return []


def document() -> dict[str, Any]:
    """prefect.yaml as data."""
    return {
        "name": "aios",
        "prefect-version": "3.8.8",
        "build": None,
        "push": None,
        "pull": [
            {
                "prefect.deployments.steps.set_working_directory": {
                    "directory": "{{ $PWD }}",
                }
            }
        ],
        "deployments": [
            {
                "name": DEPLOYMENT_NAME,
                "flow_name": spec.flow_name,
                "entrypoint": spec.entrypoint,
                "description": spec.description,
                "tags": [TAG],
                "parameters": dict(spec.parameters),
                "concurrency_limit": spec.concurrency_limit,
                "schedules": _schedules(spec),
                "work_pool": {"name": WORK_POOL, "work_queue_name": None, "job_variables": {}},
            }
            for spec in DEPLOYMENTS
        ],
    }


def render() -> str:
    body = yaml.safe_dump(document(), sort_keys=False, default_flow_style=False, width=100)
    return HEADER + body


def main() -> int:
    from aios.atomic import write_atomic

    write_atomic(PATH, render().encode())
    sys.stdout.write(f"wrote {PATH}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
