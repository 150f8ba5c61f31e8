"""``aios deploy --pool NAME``: the same deployments, on a work pool, for workers anywhere.

Each machine that runs a worker (``prefect worker start --pool NAME``) needs this project at
the same path and the same ``AIOS_HOME`` layout; the Prefect server is shared (PostgreSQL for
many machines). The pool is created as a ``process`` pool when missing.
"""

from __future__ import annotations

from typing import Any

from aios.prefect_api import HttpPrefectAPI
from deployments.definitions import DEPLOYMENT_NAME, PROJECT_ROOT, TAG, all_deployments


def deploy_to_pool(pool: str, api_url: str, *, max_remediations: int = 3) -> list[dict[str, Any]]:
    """Create or update every deployment on ``pool``; returns (name, id, schedule) records."""
    from prefect import Flow
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectNotFound

    from tasks.remediate import REMEDIATION_LIMIT

    with get_client(sync_client=True) as client:
        try:
            client.read_work_pool(pool)
        except ObjectNotFound:
            client.create_work_pool(WorkPoolCreate(name=pool, type="process"))
    with HttpPrefectAPI(api_url) as api:
        if api.read_concurrency_limit(REMEDIATION_LIMIT) is None:
            api.upsert_concurrency_limit(REMEDIATION_LIMIT, max_remediations)
    done = []
    for spec in all_deployments():
        flow: Any = Flow.from_source(source=str(PROJECT_ROOT), entrypoint=spec.entrypoint)
        deployment_id = flow.deploy(
            name=DEPLOYMENT_NAME,
            work_pool_name=pool,
            build=False,
            push=False,
            interval=spec.interval_s,
            cron=spec.cron,
            parameters=spec.parameters or None,
            description=spec.description,
            tags=[TAG],
            concurrency_limit=spec.concurrency_limit,
            print_next_steps=False,
            ignore_warnings=True,
        )
        done.append(
            {"name": spec.full_name, "id": str(deployment_id), "schedule": spec.schedule_text()}
        )
    return done
