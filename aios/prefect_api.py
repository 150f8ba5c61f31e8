"""The Prefect API port: what the core asks of a Prefect server, over its REST API.

The core never imports Prefect (``import prefect`` costs ~1.3 s and ~250 MB), so what it needs
from the server (paused runs and their resume input, flow-run health, deployments, global
concurrency limits) goes through ``PrefectAPI``: ``HttpPrefectAPI`` talks to a real server
with httpx; ``MemoryPrefectAPI`` keeps the same records in memory for tests and demos, with a
``flaky`` switch that makes calls fail like an unreachable server.

Records are the server's JSON objects, plus ``flow_name`` on deployments and flow runs (the
server gives only ``flow_id``). Where the server is: ``PREFECT_API_URL`` when set, else the
address ``aios up`` recorded in ``$AIOS_HOME/up.json``.
"""

from __future__ import annotations

import base64
import contextlib
import os
import random
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import quote

import orjson

from aios.errors import AIOSError
from aios.home import HomePaths

if TYPE_CHECKING:
    import httpx


class PrefectAPIError(AIOSError):
    """The Prefect server answered with an error; ``status`` and ``url`` say where."""

    def __init__(self, message: str, *, status: int | None = None, url: str = "") -> None:
        self.status, self.url = status, url
        where = f"{url}: " if url else ""
        code = f"HTTP {status}: " if status is not None else ""
        super().__init__(f"Prefect API {where}{code}{message}")


class PrefectUnavailableError(PrefectAPIError):
    """No Prefect server answered (not running, wrong address), or it stayed busy (503) through
    every retry: worth retrying later."""


class PrefectNotFoundError(PrefectAPIError):
    """The server has no such object (flow run, deployment, limit)."""


def up_file(paths: HomePaths) -> Path:
    """Where ``aios up`` records its pid and the server's addresses."""
    return paths.root / "up.json"


def read_up(paths: HomePaths) -> dict[str, Any] | None:
    """What ``aios up`` recorded about itself (pid, api_url, ui_url), or None."""
    try:
        data = orjson.loads(up_file(paths).read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def run_file(paths: HomePaths) -> Path:
    """Where ``aios run`` records the temporary server it started, while it runs."""
    return paths.root / "run.json"


def recorded_api_url(path: Path) -> str | None:
    """The API URL recorded in ``path`` (up.json, run.json) if the process that wrote it is
    alive, else None."""
    try:
        data = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("api_url"), str):
        return None
    pid = data.get("pid")
    if isinstance(pid, int):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None  # left behind by a process that is gone
        except PermissionError:
            pass
    return str(data["api_url"]).rstrip("/")


def auth_headers() -> dict[str, str]:
    """What Prefect's own client sends: Basic auth from ``PREFECT_API_AUTH_STRING`` (a server
    started with ``PREFECT_SERVER_API_AUTH_STRING``), else a Bearer ``PREFECT_API_KEY``."""
    auth = os.environ.get("PREFECT_API_AUTH_STRING", "")
    if auth:
        return {"Authorization": "Basic " + base64.b64encode(auth.encode()).decode()}
    key = os.environ.get("PREFECT_API_KEY", "")
    return {"Authorization": f"Bearer {key}"} if key else {}


def api_url(paths: HomePaths | None = None) -> str:
    """``PREFECT_API_URL``, else the server ``aios up`` started, else the temporary one of a
    running ``aios run``; raises PrefectUnavailableError."""
    url = os.environ.get("PREFECT_API_URL", "").strip()
    if url:
        return url.rstrip("/")
    paths = paths or HomePaths.current()
    for path in (up_file(paths), run_file(paths)):
        found = recorded_api_url(path)
        if found:
            return found
    raise PrefectUnavailableError(
        "no Prefect server is known: run `aios up`, or set PREFECT_API_URL to a server's API "
        "(e.g. http://127.0.0.1:4200/api)"
    )


class PrefectAPI(Protocol):
    """The calls AIOS makes to a Prefect server. Records are the server's JSON objects."""

    url: str

    def health(self) -> bool: ...
    def read_flow_runs(self, flt: Mapping[str, Any], limit: int = 200) -> list[dict[str, Any]]: ...
    def count_flow_runs(self, flt: Mapping[str, Any]) -> int: ...
    def read_flow_run(self, flow_run_id: str) -> dict[str, Any]: ...
    def set_flow_run_state(
        self, flow_run_id: str, state: Mapping[str, Any], *, force: bool = False
    ) -> dict[str, Any]: ...
    def resume_flow_run(
        self, flow_run_id: str, run_input: Mapping[str, Any] | None
    ) -> dict[str, Any]: ...
    def read_flow_run_input(self, flow_run_id: str, key: str) -> str | None: ...
    def read_deployments(self) -> list[dict[str, Any]]: ...
    def read_deployment(self, deployment_id: str) -> dict[str, Any]: ...
    def read_deployment_by_name(self, name: str) -> dict[str, Any]: ...
    def update_deployment(self, deployment_id: str, changes: Mapping[str, Any]) -> None: ...
    def set_deployment_paused(self, deployment_id: str, paused: bool) -> None: ...
    def read_concurrency_limit(self, name: str) -> dict[str, Any] | None: ...
    def upsert_concurrency_limit(self, name: str, limit: int) -> dict[str, Any]: ...
    def delete_concurrency_limit(self, name: str) -> None: ...


def paused_filter() -> dict[str, Any]:
    return {"flow_runs": {"state": {"type": {"any_": ["PAUSED"]}}}}


# Answers that mean "try again": what Prefect's own client retries.
RETRY_CODES = frozenset({408, 429, 502, 503})
RETRIES = 5
RETRY_BASE_S = 0.25
RETRY_MAX_S = 10.0
RETRY_JITTER = 0.2

# The server refuses a page larger than this (HTTP 422, PREFECT_API_DEFAULT_LIMIT).
PAGE = 200
FINAL_STATES = frozenset({"COMPLETED", "FAILED", "CRASHED", "CANCELLED"})


def _segment(value: str) -> str:
    """One path segment: names may hold spaces and other characters a URL must escape."""
    return quote(value, safe="")


class HttpPrefectAPI:
    """``PrefectAPI`` over HTTP; errors become PrefectAPIError (PrefectUnavailableError when the
    server cannot be reached, PrefectNotFoundError for a 404)."""

    def __init__(self, url: str | None = None, *, timeout: float = 15.0) -> None:
        import httpx  # ~0.1 s: only where a server is called

        self.url = (url or api_url()).rstrip("/")
        self._client = httpx.Client(
            base_url=self.url + "/", timeout=timeout, headers=auth_headers()
        )

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> HttpPrefectAPI:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _send(self, method: str, path: str, body: Any = None) -> httpx.Response:
        import httpx

        url = f"{self.url}/{path}"
        for attempt in range(RETRIES + 1):
            try:
                response = self._client.request(
                    method,
                    path,
                    content=orjson.dumps(body) if body is not None else None,
                    headers={"Content-Type": "application/json"} if body is not None else None,
                )
            except httpx.HTTPError as exc:
                raise PrefectUnavailableError(f"{type(exc).__name__}: {exc}", url=url) from None
            if response.status_code not in RETRY_CODES or attempt == RETRIES:
                break
            # The server's way of saying "busy, ask again" (a locked SQLite database is a
            # 503): its own client retries these too, and so does this one.
            time.sleep(_retry_delay(attempt, response.headers.get("Retry-After")))
        if response.status_code == 404:
            raise PrefectNotFoundError(_detail(response), status=404, url=url)
        if response.status_code in RETRY_CODES:  # still busy after every retry: later
            raise PrefectUnavailableError(_detail(response), status=response.status_code, url=url)
        if response.status_code == 401:
            raise PrefectAPIError(
                "the Prefect server wants credentials: set PREFECT_API_AUTH_STRING to its "
                "PREFECT_SERVER_API_AUTH_STRING (user:password)"
                if not os.environ.get("PREFECT_API_AUTH_STRING")
                else "the Prefect server refused PREFECT_API_AUTH_STRING",
                status=401,
                url=url,
            )
        if response.status_code >= 400:
            raise PrefectAPIError(_detail(response), status=response.status_code, url=url)
        return response

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        response = self._send(method, path, body)
        if not response.content:
            return None
        try:
            return orjson.loads(response.content)
        except orjson.JSONDecodeError:
            raise PrefectAPIError("the answer is not JSON", url=f"{self.url}/{path}") from None

    def _pages(self, path: str, body: Mapping[str, Any], limit: int) -> list[dict[str, Any]]:
        """Up to ``limit`` records of a filter endpoint, a page of at most PAGE at a time."""
        found: list[dict[str, Any]] = []
        while len(found) < limit:
            size = min(PAGE, limit - len(found))
            page = self._call("POST", path, {**body, "limit": size, "offset": len(found)}) or []
            found += page
            if len(page) < size:
                break
        return found

    def _flow_names(self, flow_ids: Iterable[str]) -> dict[str, str]:
        ids = sorted({i for i in flow_ids if i})
        names: dict[str, str] = {}
        for start in range(0, len(ids), PAGE):
            chunk = ids[start : start + PAGE]
            flows = self._call("POST", "flows/filter", {"flows": {"id": {"any_": chunk}}})
            names.update({f["id"]: f["name"] for f in flows or []})
        return names

    def _with_flow_names(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        names = self._flow_names(r.get("flow_id") or "" for r in records)
        for record in records:
            record["flow_name"] = names.get(record.get("flow_id") or "")
        return records

    def health(self) -> bool:
        try:
            return bool(self._call("GET", "health"))
        except PrefectAPIError:
            return False

    def read_flow_runs(self, flt: Mapping[str, Any], limit: int = 200) -> list[dict[str, Any]]:
        body = dict(flt)
        body.setdefault("sort", "EXPECTED_START_TIME_DESC")
        return self._with_flow_names(self._pages("flow_runs/filter", body, limit))

    def count_flow_runs(self, flt: Mapping[str, Any]) -> int:
        return int(self._call("POST", "flow_runs/count", dict(flt)) or 0)

    def read_flow_run(self, flow_run_id: str) -> dict[str, Any]:
        run = dict(self._call("GET", f"flow_runs/{_segment(flow_run_id)}"))
        return self._with_flow_names([run])[0]

    def set_flow_run_state(
        self, flow_run_id: str, state: Mapping[str, Any], *, force: bool = False
    ) -> dict[str, Any]:
        body = {"state": dict(state), "force": force}
        return dict(self._call("POST", f"flow_runs/{_segment(flow_run_id)}/set_state", body))

    def resume_flow_run(
        self, flow_run_id: str, run_input: Mapping[str, Any] | None
    ) -> dict[str, Any]:
        body = {"run_input": dict(run_input) if run_input is not None else None}
        return dict(self._call("POST", f"flow_runs/{_segment(flow_run_id)}/resume", body))

    def read_flow_run_input(self, flow_run_id: str, key: str) -> str | None:
        # The server answers with the stored text as it is (plain text, usually JSON).
        path = f"flow_runs/{_segment(flow_run_id)}/input/{_segment(key)}"
        try:
            return self._send("GET", path).text
        except PrefectNotFoundError:
            return None

    def read_deployments(self) -> list[dict[str, Any]]:
        records = self._pages("deployments/filter", {"sort": "NAME_ASC"}, limit=10_000)
        return self._with_flow_names(records)

    def read_deployment(self, deployment_id: str) -> dict[str, Any]:
        record = dict(self._call("GET", f"deployments/{_segment(deployment_id)}"))
        return self._with_flow_names([record])[0]

    def read_deployment_by_name(self, name: str) -> dict[str, Any]:
        flow, sep, deployment = name.partition("/")
        if not sep or not flow or not deployment:
            raise PrefectAPIError(f"{name!r}: a deployment is named FLOW/DEPLOYMENT")
        path = f"deployments/name/{_segment(flow)}/{_segment(deployment)}"
        return {**self._call("GET", path), "flow_name": flow}

    def update_deployment(self, deployment_id: str, changes: Mapping[str, Any]) -> None:
        self._call("PATCH", f"deployments/{_segment(deployment_id)}", dict(changes))

    def set_deployment_paused(self, deployment_id: str, paused: bool) -> None:
        # What Prefect's own client does; pausing also deletes the auto-scheduled runs.
        self.update_deployment(deployment_id, {"paused": paused})

    def read_secret(self, name: str) -> str:
        """The value of the Secret block ``name``; PrefectNotFoundError when there is none."""
        found = self._call(
            "GET",
            f"block_types/slug/secret/block_documents/name/{_segment(name)}?include_secrets=true",
        )
        value = (found or {}).get("data", {}).get("value")
        if not isinstance(value, str):
            raise PrefectAPIError(f"the Secret block {name!r} holds no text", url=self.url)
        return value

    def read_concurrency_limit(self, name: str) -> dict[str, Any] | None:
        try:
            return dict(self._call("GET", f"v2/concurrency_limits/{_segment(name)}"))
        except PrefectNotFoundError:
            return None

    def upsert_concurrency_limit(self, name: str, limit: int) -> dict[str, Any]:
        # Create only when absent: a duplicate create is a 409 that the server logs as an error.
        if self.read_concurrency_limit(name) is None:
            try:
                self._call(
                    "POST", "v2/concurrency_limits/", {"name": name, "limit": limit, "active": True}
                )
            except PrefectAPIError as exc:
                if exc.status != 409:  # made meanwhile by someone else: update it below
                    raise
                self._call("PATCH", f"v2/concurrency_limits/{_segment(name)}", {"limit": limit})
        else:
            self._call("PATCH", f"v2/concurrency_limits/{_segment(name)}", {"limit": limit})
        found = self.read_concurrency_limit(name)
        if found is None:
            raise PrefectNotFoundError(f"concurrency limit {name!r} vanished", url=self.url)
        return found

    def delete_concurrency_limit(self, name: str) -> None:
        self._call("DELETE", f"v2/concurrency_limits/{_segment(name)}")


def _retry_delay(attempt: int, retry_after: str | None) -> float:
    """Seconds to wait before retry ``attempt`` (0-based): the server's Retry-After when it
    gives one in seconds, else exponential backoff; with jitter, at most RETRY_MAX_S."""
    delay = RETRY_BASE_S * 2.0**attempt
    if retry_after:
        with contextlib.suppress(ValueError):
            delay = float(retry_after)
    return min(RETRY_MAX_S, delay) * random.uniform(1.0, 1.0 + RETRY_JITTER)


def _detail(response: httpx.Response) -> str:
    try:
        data = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return response.text[:500] or response.reason_phrase
    if isinstance(data, dict) and "detail" in data:
        return str(data["detail"])[:500]
    if isinstance(data, dict) and "exception_detail" in data:  # the server's 422
        return str(data["exception_detail"])[:500]
    return str(data)[:500]


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _result(status: str, state: dict[str, Any] | None, reason: str = "") -> dict[str, Any]:
    """An orchestration result shaped like the server's."""
    details: dict[str, Any] = {"type": f"{status.lower()}_details"}
    if reason:
        details["reason"] = reason
    return {"status": status, "state": state, "details": details}


@dataclass
class MemoryPrefectAPI:
    """``PrefectAPI`` in memory: flow runs, deployments and limits are plain dicts.

    ``flaky`` makes every call raise PrefectUnavailableError, like a server that is down. Only the
    filters AIOS uses are understood (state type and name, deployment id, tags, end and expected
    start time), and only the orchestration rules AIOS meets: a final run cannot be paused,
    crashed or cancelled; a run without a deployment cannot be rescheduled; cancelling a
    scheduled run without a process cancels it at once; only a paused run resumes. Resume input
    is stored under the paused state's keyset without checking it against the schema.
    """

    url: str = "memory://prefect"
    flow_runs: dict[str, dict[str, Any]] = field(default_factory=dict)
    deployments: dict[str, dict[str, Any]] = field(default_factory=dict)
    limits: dict[str, dict[str, Any]] = field(default_factory=dict)
    inputs: dict[tuple[str, str], str] = field(default_factory=dict)
    flaky: bool = False

    def _check(self) -> None:
        if self.flaky:
            raise PrefectUnavailableError("the server is down (flaky switch)", url=self.url)

    def add_deployment(self, flow: str, name: str, **fields: Any) -> dict[str, Any]:
        record = {
            "id": str(uuid.uuid4()),
            "name": name,
            "flow_id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"flow:{flow}")),
            "flow_name": flow,
            "paused": False,
            "parameters": {},
            "tags": [],
            **fields,
        }
        self.deployments[record["id"]] = record
        return record

    def add_flow_run(
        self,
        state_type: str,
        *,
        state_name: str | None = None,
        deployment: Mapping[str, Any] | None = None,
        **fields: Any,
    ) -> dict[str, Any]:
        """A flow run in that state, of ``deployment`` (from ``add_deployment``) when given."""
        flow = deployment["flow_name"] if deployment else fields.pop("flow_name", "memory-flow")
        message = fields.pop("message", None)
        final = state_type in FINAL_STATES
        record = {
            "id": str(uuid.uuid4()),
            "name": fields.pop("name", "memory-run"),
            "flow_id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"flow:{flow}")),
            "flow_name": flow,
            "deployment_id": deployment["id"] if deployment else None,
            "run_count": 1 if final or state_type == "RUNNING" else 0,
            "expected_start_time": _now(),
            "start_time": _now() if final or state_type == "RUNNING" else None,
            "end_time": _now() if final else None,
            "infrastructure_pid": None,
            "tags": list(deployment.get("tags", [])) if deployment else [],
            **fields,
        }
        self.flow_runs[record["id"]] = record
        self._set_state(record, {"type": state_type, "name": state_name, "message": message})
        return record

    @staticmethod
    def _set_state(run: dict[str, Any], state: Mapping[str, Any]) -> dict[str, Any]:
        kind = str(state["type"])
        name = str(state.get("name") or kind.title())
        run.update(
            state_type=kind,
            state_name=name,
            state={
                "state_details": {},
                **state,
                "id": str(uuid.uuid4()),
                "type": kind,
                "name": name,
                "timestamp": _now(),
            },
        )
        return dict(run["state"])

    def health(self) -> bool:
        return not self.flaky

    def _matching(self, flt: Mapping[str, Any]) -> list[dict[str, Any]]:
        runs = flt.get("flow_runs") or {}
        state = runs.get("state") or {}
        types = (state.get("type") or {}).get("any_")
        names = (state.get("name") or {}).get("any_")
        deployments = (runs.get("deployment_id") or {}).get("any_")
        tags = (runs.get("tags") or {}).get("all_")
        ended_after = (runs.get("end_time") or {}).get("after_")
        expected_after = (runs.get("expected_start_time") or {}).get("after_")
        found = []
        for run in self.flow_runs.values():
            if types and run["state_type"] not in types:
                continue
            if names and run["state_name"] not in names:
                continue
            if deployments and run.get("deployment_id") not in deployments:
                continue
            if tags and not set(tags) <= set(run.get("tags") or []):
                continue
            if ended_after and not (
                run.get("end_time") and _at(run["end_time"]) >= _at(ended_after)
            ):
                continue
            if expected_after and _at(run["expected_start_time"]) < _at(expected_after):
                continue
            found.append(dict(run))
        return found

    def read_flow_runs(self, flt: Mapping[str, Any], limit: int = 200) -> list[dict[str, Any]]:
        self._check()
        return self._matching(flt)[:limit]

    def count_flow_runs(self, flt: Mapping[str, Any]) -> int:
        self._check()
        return len(self._matching(flt))

    def read_flow_run(self, flow_run_id: str) -> dict[str, Any]:
        self._check()
        if flow_run_id not in self.flow_runs:
            raise PrefectNotFoundError("Flow run not found", status=404, url=self.url)
        return dict(self.flow_runs[flow_run_id])

    def set_flow_run_state(
        self, flow_run_id: str, state: Mapping[str, Any], *, force: bool = False
    ) -> dict[str, Any]:
        self._check()
        run = self.flow_runs.get(flow_run_id)
        if run is None:
            raise PrefectNotFoundError("Flow run not found", status=404, url=self.url)
        current, kind = run["state_type"], str(state["type"])
        status, reason = "ACCEPT", ""
        if not force and current in FINAL_STATES:
            if kind in ("CANCELLING", "PAUSED", "CRASHED"):
                return _result("ABORT", None, f"Run is already in terminal state {current}.")
            if kind == "SCHEDULED" and not run.get("deployment_id"):
                reason = "Cannot reschedule a run without an associated deployment."
                return _result("ABORT", None, reason)
        if not force and current == "CANCELLING" and kind != "CANCELLED":
            reason = "Cannot transition flows that are cancelling to a state other than Cancelled."
            return _result("REJECT", dict(run["state"]), reason)
        if not force and kind == "CANCELLING":
            details = run["state"].get("state_details") or {}
            no_process = current == "SCHEDULED" and not run.get("infrastructure_pid")
            suspended = current == "PAUSED" and details.get("pause_reschedule")
            if no_process or suspended or run["state_name"] == "Resuming":
                state = {"type": "CANCELLED", "name": "Cancelled"}
                which = "Suspended" if suspended else "Scheduled"
                status, reason = "REJECT", f"{which} flow run has no infrastructure to terminate."
        kind = str(state["type"])
        if kind in FINAL_STATES:
            run["start_time"] = run.get("start_time") or _now()
            run["end_time"] = run.get("end_time") or _now()
        elif current in FINAL_STATES:
            run["end_time"] = None
        if kind == "RUNNING":
            run["start_time"] = run.get("start_time") or _now()
            run["run_count"] = run.get("run_count", 0) + 1
        return _result(status, self._set_state(run, state), reason)

    def resume_flow_run(
        self, flow_run_id: str, run_input: Mapping[str, Any] | None
    ) -> dict[str, Any]:
        run = self.read_flow_run(flow_run_id)
        if run["state_type"] != "PAUSED":
            return _result("ABORT", None, "Cannot resume a flow run that is not paused.")
        keyset = (run["state"].get("state_details") or {}).get("run_input_keyset")
        if keyset:
            if (flow_run_id, keyset["schema"]) not in self.inputs:
                return _result("REJECT", run["state"], "Run input schema not found.")
            if run_input:
                self.inputs[(flow_run_id, keyset["response"])] = orjson.dumps(
                    dict(run_input)
                ).decode()
        return self.set_flow_run_state(flow_run_id, {"type": "RUNNING", "name": "Running"})

    def read_flow_run_input(self, flow_run_id: str, key: str) -> str | None:
        self._check()
        return self.inputs.get((flow_run_id, key))

    def read_deployments(self) -> list[dict[str, Any]]:
        self._check()
        return [dict(d) for d in self.deployments.values()]

    def read_deployment(self, deployment_id: str) -> dict[str, Any]:
        self._check()
        if deployment_id not in self.deployments:
            raise PrefectNotFoundError("Deployment not found", status=404, url=self.url)
        return dict(self.deployments[deployment_id])

    def read_deployment_by_name(self, name: str) -> dict[str, Any]:
        self._check()
        flow, sep, deployment = name.partition("/")
        if not sep or not flow or not deployment:
            raise PrefectAPIError(f"{name!r}: a deployment is named FLOW/DEPLOYMENT")
        for record in self.deployments.values():
            if record["flow_name"] == flow and record["name"] == deployment:
                return dict(record)
        raise PrefectNotFoundError("Deployment not found", status=404, url=self.url)

    def update_deployment(self, deployment_id: str, changes: Mapping[str, Any]) -> None:
        self.read_deployment(deployment_id)
        self.deployments[deployment_id].update(dict(changes))

    def set_deployment_paused(self, deployment_id: str, paused: bool) -> None:
        self.update_deployment(deployment_id, {"paused": paused})

    def read_concurrency_limit(self, name: str) -> dict[str, Any] | None:
        self._check()
        found = self.limits.get(name)
        return dict(found) if found else None

    def upsert_concurrency_limit(self, name: str, limit: int) -> dict[str, Any]:
        self._check()
        record = self.limits.setdefault(
            name, {"id": str(uuid.uuid4()), "name": name, "active": True, "active_slots": 0}
        )
        record["limit"] = limit
        return dict(record)

    def delete_concurrency_limit(self, name: str) -> None:
        self._check()
        if self.limits.pop(name, None) is None:
            raise PrefectNotFoundError("Concurrency Limit not found", status=404, url=self.url)


def _at(value: str | datetime) -> datetime:
    """A time from the server's ISO text (or a datetime), always aware."""
    at = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    return at if at.tzinfo else at.replace(tzinfo=UTC)
