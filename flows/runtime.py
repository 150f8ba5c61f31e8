"""What a flow run needs to know about where it runs: the API and UI addresses."""

from __future__ import annotations

from prefect.client.orchestration import get_client
from prefect.settings import PREFECT_UI_URL


def api_url() -> str:
    """The Prefect API this run talks to."""
    with get_client(sync_client=True) as client:
        return str(client.api_url).rstrip("/")


def ui_url() -> str | None:
    value = PREFECT_UI_URL.value()
    return str(value).rstrip("/") if value else None


def flow_run_url(flow_run_id: str) -> str | None:
    base = ui_url()
    return f"{base}/runs/flow-run/{flow_run_id}" if base else None
