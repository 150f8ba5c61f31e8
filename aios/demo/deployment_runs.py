"""Starting AIOS's served deployments now instead of on their schedule, through the Prefect
REST API (what ``prefect deployment run`` does), and reading how their runs went."""

from __future__ import annotations

from typing import Any

from aios.prefect_api import FINAL_STATES, HttpPrefectAPI

MONITOR = "aios-monitor/aios"
EXECUTOR = "aios-executor/aios"
LEARNER = "aios-learner/aios"
REACTOR = "aios-reactor/aios"
NEEDED = (MONITOR, EXECUTOR, LEARNER, REACTOR)


# The Prefect server's SQLite database makes a writer wait up to 60 s for a lock (its
# busy_timeout), and under load every request can wait that long: the demo waits longer than
# that for an answer instead of taking a slow one for a server that is gone.
ANSWER_TIMEOUT_S = 90.0


class DeploymentRuns(HttpPrefectAPI):
    """The Prefect API port, plus creating a run of a deployment."""

    def __init__(self, url: str, *, timeout: float = ANSWER_TIMEOUT_S) -> None:
        super().__init__(url, timeout=timeout)

    def run_deployment(self, name: str, parameters: dict[str, Any] | None = None) -> str:
        """Create a run of deployment ``name`` (FLOW/DEPLOYMENT) to start now; returns its id.
        The runner of ``aios up`` picks it up within a second. Raises PrefectAPIError."""
        deployment = self.read_deployment_by_name(name)
        body = {"parameters": parameters or {}, "tags": ["aios", "aios-demo"]}
        run = self._call("POST", f"deployments/{deployment['id']}/create_flow_run", body)
        return str(run["id"])

    def state_of(self, flow_run_id: str) -> str:
        """The run's state type (SCHEDULED, RUNNING, PAUSED, COMPLETED, ...)."""
        return str(self.read_flow_run(flow_run_id).get("state_type") or "")

    def finished(self, flow_run_id: str) -> bool:
        return self.state_of(flow_run_id) in FINAL_STATES
