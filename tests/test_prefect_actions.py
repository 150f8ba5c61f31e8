"""The prefect.* actions and the Prefect API port: in memory first, then on a real server."""

from __future__ import annotations

import contextlib
import copy
import http.server
import json
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

import orjson
import pytest

from aios.actions import ActionContext, ActionSpec, Risk
from aios.actions.base import ActionError, IrreversibleError
from aios.actions.prefect_actions import (
    ConcurrencyLimitSet,
    DeploymentPause,
    DeploymentResume,
    DeploymentSetParameters,
    FlowRunCancel,
    FlowRunRetry,
)
from aios.errors import InputError
from aios.event import Event
from aios.home import HomePaths
from aios.playbooks.model import Playbook
from aios.prefect_api import (
    RETRIES,
    HttpPrefectAPI,
    MemoryPrefectAPI,
    PrefectAPI,
    PrefectNotFoundError,
    PrefectUnavailableError,
    up_file,
)

if TYPE_CHECKING:
    from prefect.client.orchestration import SyncPrefectClient
    from prefect.client.schemas.objects import State


def context(home: HomePaths, api: PrefectAPI | None = None, **payload: Any) -> ActionContext:
    event = Event(type="task.failed", payload=payload, labels={"agent": "etl/nightly"})
    extra: dict[str, Any] = {"prefect_api": api} if api is not None else {}
    return ActionContext(event=event, paths=home, remediation_id="r-1", extra=extra)


# ------------------------------------------------------------------ in memory
@pytest.fixture
def memory() -> MemoryPrefectAPI:
    api = MemoryPrefectAPI()
    nightly = api.add_deployment("etl", "nightly", parameters={"batch": 100, "mode": "full"})
    api.add_flow_run("SCHEDULED", deployment=nightly)
    api.add_flow_run("SCHEDULED", deployment=nightly)
    api.add_deployment("etl", "hourly", paused=True)
    api.upsert_concurrency_limit("remediations", 3)
    return api


def a_failed_run(api: MemoryPrefectAPI) -> str:
    nightly = api.read_deployment_by_name("etl/nightly")
    return str(api.add_flow_run("FAILED", deployment=nightly, message="boom")["id"])


ALL_ACTIONS: list[tuple[str, Callable[[MemoryPrefectAPI], ActionSpec]]] = [
    ("pause", lambda api: DeploymentPause(deployment="etl/nightly")),
    ("resume", lambda api: DeploymentResume(deployment="etl/hourly")),
    (
        "set_parameters",
        lambda api: DeploymentSetParameters(deployment="etl/nightly", parameters={"batch": 10}),
    ),
    ("retry", lambda api: FlowRunRetry(flow_run=a_failed_run(api))),
    ("cancel", lambda api: FlowRunCancel(flow_run=a_failed_run(api))),
    ("concurrency_limit", lambda api: ConcurrencyLimitSet(name="remediations", limit=1)),
]


@pytest.mark.parametrize(("name", "make"), ALL_ACTIONS, ids=[n for n, _ in ALL_ACTIONS])
def test_a_plan_reads_the_server_and_changes_nothing(
    home: HomePaths, memory: MemoryPrefectAPI, name: str, make: Callable[..., ActionSpec]
) -> None:
    action = make(memory)
    before = copy.deepcopy(memory.__dict__)
    plan = action.plan(context(home, memory))
    assert memory.__dict__ == before
    assert plan.summary and plan.action == action.type
    assert plan.risk is action.risk_floor
    assert plan.reversible is action.reversible


@pytest.mark.parametrize(("name", "make"), ALL_ACTIONS, ids=[n for n, _ in ALL_ACTIONS])
def test_a_server_that_is_down_is_an_action_error_that_says_so(
    home: HomePaths, memory: MemoryPrefectAPI, name: str, make: Callable[..., ActionSpec]
) -> None:
    action = make(memory)
    memory.flaky = True
    for step in (action.plan, action.execute):
        with pytest.raises(ActionError, match="the Prefect server did not answer"):
            step(context(home, memory))


@pytest.mark.parametrize(
    ("cls", "floor", "reversible"),
    [
        (DeploymentPause, Risk.MEDIUM, True),
        (DeploymentResume, Risk.LOW, True),
        (DeploymentSetParameters, Risk.MEDIUM, True),
        (FlowRunRetry, Risk.LOW, False),
        (FlowRunCancel, Risk.MEDIUM, False),
        (ConcurrencyLimitSet, Risk.MEDIUM, True),
    ],
)
def test_risk_floors_and_reversibility(
    cls: type[ActionSpec], floor: Risk, reversible: bool
) -> None:
    assert cls.risk_floor is floor
    assert cls.reversible is reversible


def test_pause_plan_says_what_is_there_and_rollback_resumes(
    home: HomePaths, memory: MemoryPrefectAPI
) -> None:
    action, ctx = DeploymentPause(deployment="etl/nightly"), context(home, memory)
    assert action.plan(ctx).summary == "pause deployment etl/nightly (now active, 2 scheduled runs)"
    undo = action.execute(ctx)
    assert memory.read_deployment_by_name("etl/nightly")["paused"] is True
    assert action.rollback(undo, ctx) == "resumed deployment etl/nightly again"
    assert memory.read_deployment_by_name("etl/nightly")["paused"] is False


def test_pausing_a_paused_deployment_changes_nothing_and_its_undo_leaves_it_paused(
    home: HomePaths, memory: MemoryPrefectAPI
) -> None:
    action, ctx = DeploymentPause(deployment="etl/hourly"), context(home, memory)
    assert "already paused" in action.plan(ctx).summary
    undo = action.execute(ctx)
    assert undo["changed"] is False
    assert "left as it is" in action.rollback(undo, ctx)
    assert memory.read_deployment_by_name("etl/hourly")["paused"] is True


def test_resume_by_id_and_rollback_pauses_again(home: HomePaths, memory: MemoryPrefectAPI) -> None:
    hourly = memory.read_deployment_by_name("etl/hourly")
    action, ctx = DeploymentResume(deployment=hourly["id"]), context(home, memory)
    undo = action.execute(ctx)
    assert memory.read_deployment(hourly["id"])["paused"] is False
    assert action.rollback(undo, ctx) == "paused deployment etl/hourly again"
    assert memory.read_deployment(hourly["id"])["paused"] is True


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        ("etl/missing", "deployment etl/missing: not found"),
        ("missing", "give FLOW/DEPLOYMENT"),
        (str(uuid.UUID(int=7)), f"deployment {uuid.UUID(int=7)}: not found"),
    ],
)
def test_a_missing_deployment_is_named(
    home: HomePaths, memory: MemoryPrefectAPI, ref: str, message: str
) -> None:
    with pytest.raises(ActionError, match=message):
        DeploymentPause(deployment=ref).plan(context(home, memory))


def test_set_parameters_merges_and_rollback_restores_exactly(
    home: HomePaths, memory: MemoryPrefectAPI
) -> None:
    action = DeploymentSetParameters(
        deployment="${labels.agent}", parameters={"batch": "${payload.batch}", "extra": [1, 2]}
    )
    ctx = context(home, memory, batch=25)
    plan = action.plan(ctx)
    assert plan.summary == (
        "set parameters of deployment etl/nightly: batch: 100 -> 25, extra: (unset) -> [1, 2]"
    )
    undo = action.execute(ctx)
    nightly = memory.read_deployment_by_name("etl/nightly")
    assert nightly["parameters"] == {"batch": 25, "mode": "full", "extra": [1, 2]}
    assert "restored the parameters" in action.rollback(undo, ctx)
    assert memory.read_deployment_by_name("etl/nightly")["parameters"] == {
        "batch": 100,
        "mode": "full",
    }


def test_set_parameters_rollback_does_not_overwrite_a_later_change(
    home: HomePaths, memory: MemoryPrefectAPI
) -> None:
    action = DeploymentSetParameters(deployment="etl/nightly", parameters={"batch": 5})
    ctx = context(home, memory)
    undo = action.execute(ctx)
    nightly = memory.read_deployment_by_name("etl/nightly")
    memory.update_deployment(nightly["id"], {"parameters": {"batch": 7}})
    with pytest.raises(ActionError, match="changed after the update"):
        action.rollback(undo, ctx)
    assert memory.read_deployment(nightly["id"])["parameters"] == {"batch": 7}


@pytest.mark.parametrize("state", ["FAILED", "CRASHED", "CANCELLED"])
def test_retry_sets_a_finished_run_awaiting_retry(
    home: HomePaths, memory: MemoryPrefectAPI, state: str
) -> None:
    nightly = memory.read_deployment_by_name("etl/nightly")
    run = memory.add_flow_run(state, deployment=nightly, name="brave-fox")
    ctx = context(home, memory, flow_run_id=run["id"])
    action = FlowRunRetry()  # the flow run comes from ${payload.flow_run_id}
    assert action.plan(ctx).summary.startswith("retry flow run brave-fox")
    undo = action.execute(ctx)
    after = memory.read_flow_run(run["id"])
    assert (after["state_type"], after["state_name"]) == ("SCHEDULED", "AwaitingRetry")
    assert undo["previous_state"] == state.title()
    with pytest.raises(IrreversibleError):
        action.rollback(undo, ctx)


@pytest.mark.parametrize("state", ["RUNNING", "COMPLETED", "SCHEDULED", "PAUSED"])
def test_retry_refuses_a_run_that_did_not_fail(
    home: HomePaths, memory: MemoryPrefectAPI, state: str
) -> None:
    nightly = memory.read_deployment_by_name("etl/nightly")
    run = memory.add_flow_run(state, deployment=nightly)
    ctx = context(home, memory, flow_run_id=run["id"])
    assert "would not retry" in FlowRunRetry().plan(ctx).summary
    with pytest.raises(ActionError, match="only a Failed, Crashed or Cancelled run"):
        FlowRunRetry().execute(ctx)
    assert memory.read_flow_run(run["id"])["state_type"] == state


def test_retry_refuses_a_run_without_deployment(home: HomePaths, memory: MemoryPrefectAPI) -> None:
    run = memory.add_flow_run("FAILED", flow_name="adhoc")
    ctx = context(home, memory, flow_run_id=run["id"])
    with pytest.raises(ActionError, match="it has no deployment"):
        FlowRunRetry().execute(ctx)
    assert memory.read_flow_run(run["id"])["state_type"] == "FAILED"


def test_retry_needs_a_flow_run_id(home: HomePaths, memory: MemoryPrefectAPI) -> None:
    with pytest.raises(InputError, match=r"the event has no payload\.flow_run_id"):
        FlowRunRetry().plan(context(home, memory))
    with pytest.raises(ActionError, match="is not a flow run id"):
        FlowRunRetry(flow_run="last-night").plan(context(home, memory))


@pytest.mark.parametrize(
    ("state", "infrastructure_pid", "result"),
    [
        ("RUNNING", 4321, "CANCELLING"),
        ("SCHEDULED", None, "CANCELLED"),
        ("PAUSED", 4321, "CANCELLING"),
    ],
)
def test_cancel_stops_a_run_as_prefect_does(
    home: HomePaths,
    memory: MemoryPrefectAPI,
    state: str,
    infrastructure_pid: int | None,
    result: str,
) -> None:
    nightly = memory.read_deployment_by_name("etl/nightly")
    run = memory.add_flow_run(state, deployment=nightly, infrastructure_pid=infrastructure_pid)
    ctx = context(home, memory, flow_run_id=run["id"])
    undo = FlowRunCancel().execute(ctx)
    assert memory.read_flow_run(run["id"])["state_type"] == result
    with pytest.raises(IrreversibleError):
        FlowRunCancel().rollback(undo, ctx)


def test_cancel_refuses_a_finished_run(home: HomePaths, memory: MemoryPrefectAPI) -> None:
    run_id = a_failed_run(memory)
    ctx = context(home, memory, flow_run_id=run_id)
    assert "would not cancel" in FlowRunCancel().plan(ctx).summary
    with pytest.raises(ActionError, match=r"already finished \(Failed\)"):
        FlowRunCancel().execute(ctx)


def test_concurrency_limit_update_then_rollback_restores_the_old_limit(
    home: HomePaths, memory: MemoryPrefectAPI
) -> None:
    action, ctx = ConcurrencyLimitSet(name="remediations", limit=1), context(home, memory)
    assert action.plan(ctx).summary == (
        "set global concurrency limit 'remediations' from 3 to 1 slots (0 in use now)"
    )
    undo = action.execute(ctx)
    assert memory.read_concurrency_limit("remediations")["limit"] == 1  # type: ignore[index]
    assert (
        action.rollback(undo, ctx) == "set global concurrency limit 'remediations' back to 3 slots"
    )
    assert memory.read_concurrency_limit("remediations")["limit"] == 3  # type: ignore[index]


def test_concurrency_limit_created_is_deleted_by_rollback(
    home: HomePaths, memory: MemoryPrefectAPI
) -> None:
    action, ctx = ConcurrencyLimitSet(name="etl-slots", limit=2), context(home, memory)
    assert action.plan(ctx).summary == "create global concurrency limit 'etl-slots' with 2 slots"
    undo = action.execute(ctx)
    assert memory.read_concurrency_limit("etl-slots") is not None
    assert "deleted global concurrency limit 'etl-slots'" in action.rollback(undo, ctx)
    assert memory.read_concurrency_limit("etl-slots") is None


def test_without_a_known_server_the_action_says_how_to_get_one(
    home: HomePaths, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    with pytest.raises(ActionError, match="aios up"):
        DeploymentPause(deployment="etl/nightly").plan(context(home))


def test_playbooks_accept_the_prefect_actions_and_their_floors_raise_the_risk() -> None:
    playbook = Playbook.model_validate(
        {
            "id": "retry_failed_etl",
            "trigger": {
                "type": "task.failed",
                "conditions": [{"path": "source", "op": "eq", "value": "aios.prefect"}],
            },
            "actions": [
                {"type": "prefect.flow_run.retry"},
                {"type": "prefect.concurrency_limit.set", "name": "etl", "limit": 1},
            ],
            "risk": "low",
        }
    )
    assert [a.type for a in playbook.actions] == [
        "prefect.flow_run.retry",
        "prefect.concurrency_limit.set",
    ]
    assert playbook.effective_risk() is Risk.MEDIUM


# ---------------------------------------------------------------- real server
@dataclass
class Server:
    """Prefect's own client on the test server, and what a test made there (removed after)."""

    url: str
    client: SyncPrefectClient
    runs: list[uuid.UUID] = field(default_factory=list)
    deployments: list[uuid.UUID] = field(default_factory=list)
    limits: list[str] = field(default_factory=list)

    def deployment(self, name: str = "nightly", **fields: Any) -> tuple[str, str]:
        """A new deployment of a new flow: (id, FLOW/DEPLOYMENT)."""
        flow = f"etl-{uuid.uuid4().hex[:8]}"
        flow_id = self.client.create_flow_from_name(flow)
        deployment_id = self.client.create_deployment(flow_id=flow_id, name=name, **fields)
        self.deployments.append(deployment_id)
        return str(deployment_id), f"{flow}/{name}"

    def run(self, deployment_id: str, *states: State[Any]) -> str:
        run = self.client.create_flow_run_from_deployment(uuid.UUID(deployment_id))
        self.runs.append(run.id)
        for state in states:
            self.client.set_flow_run_state(run.id, state, force=True)
        return str(run.id)

    def state(self, run_id: str) -> tuple[str, str]:
        state = self.client.read_flow_run(uuid.UUID(run_id)).state
        assert state is not None
        return state.type.value, str(state.name)

    def cleanup(self) -> None:
        from prefect.exceptions import ObjectNotFound

        removals: list[Callable[[], object]] = [
            *(partial(self.client.delete_flow_run, r) for r in self.runs),
            *(partial(self.client.delete_deployment, d) for d in self.deployments),
            *(partial(self.client.delete_global_concurrency_limit_by_name, n) for n in self.limits),
        ]
        for remove in removals:
            with contextlib.suppress(ObjectNotFound):
                remove()


@pytest.fixture
def server(prefect_server: str) -> Iterator[Server]:
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with (
        temporary_settings({PREFECT_API_URL: prefect_server}),
        get_client(sync_client=True) as client,
    ):
        made = Server(prefect_server, client)
        yield made
        made.cleanup()


@pytest.fixture
def api(server: Server) -> Iterator[HttpPrefectAPI]:
    with HttpPrefectAPI(server.url) as http:
        yield http


def _states() -> Any:
    import prefect.states

    return prefect.states


def test_port_reads_deployments_and_runs_with_their_flow_names(
    server: Server, api: HttpPrefectAPI
) -> None:
    states = _states()
    deployment_id, name = server.deployment(tags=["etl"], parameters={"batch": 1})
    flow = name.split("/")[0]
    run_id = server.run(deployment_id, states.Running(), states.Failed(message="boom"))
    assert api.health() is True
    by_name = api.read_deployment_by_name(name)
    by_id = api.read_deployment(deployment_id)
    listed = {d["id"]: d for d in api.read_deployments()}
    for record in (by_name, by_id, listed[deployment_id]):
        assert (record["id"], record["flow_name"], record["name"]) == (
            deployment_id,
            flow,
            "nightly",
        )
        assert record["parameters"] == {"batch": 1} and record["tags"] == ["etl"]
    run = api.read_flow_run(run_id)
    assert (run["flow_name"], run["deployment_id"], run["state_type"]) == (
        flow,
        deployment_id,
        "FAILED",
    )
    assert run["state"]["message"] == "boom" and run["end_time"]
    failed = {
        "flow_runs": {
            "deployment_id": {"any_": [deployment_id]},
            "state": {"type": {"any_": ["FAILED"]}},
        }
    }
    assert [r["id"] for r in api.read_flow_runs(failed, limit=500)] == [run_id]
    assert api.count_flow_runs(failed) == 1


def test_port_pages_through_more_runs_than_one_page(
    server: Server, api: HttpPrefectAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    deployment_id, _ = server.deployment()
    made = {server.run(deployment_id) for _ in range(5)}
    monkeypatch.setattr("aios.prefect_api.PAGE", 2)
    mine = {"flow_runs": {"deployment_id": {"any_": [deployment_id]}}}
    assert {r["id"] for r in api.read_flow_runs(mine, limit=10)} == made
    assert len(api.read_flow_runs(mine, limit=3)) == 3


def test_port_updates_deployments(server: Server, api: HttpPrefectAPI) -> None:
    deployment_id, _ = server.deployment(parameters={"a": 1})
    api.set_deployment_paused(deployment_id, True)
    api.update_deployment(deployment_id, {"parameters": {"b": [2]}})
    record = server.client.read_deployment(uuid.UUID(deployment_id))
    assert record.paused is True and record.parameters == {"b": [2]}


def test_port_sets_states_as_the_server_orchestrates_them(
    server: Server, api: HttpPrefectAPI
) -> None:
    states = _states()
    deployment_id, _ = server.deployment()
    scheduled = server.run(deployment_id)
    result = api.set_flow_run_state(scheduled, {"type": "CANCELLING"})
    assert (result["status"], result["state"]["type"]) == ("REJECT", "CANCELLED")
    done = server.run(deployment_id, states.Running(), states.Completed())
    result = api.set_flow_run_state(done, {"type": "CANCELLING"})
    assert result["status"] == "ABORT"
    assert "terminal state" in result["details"]["reason"]
    assert server.state(done) == ("COMPLETED", "Completed")


def test_port_resumes_a_paused_run_with_input_checked_by_the_server(
    server: Server, api: HttpPrefectAPI
) -> None:
    from prefect.input.run_input import keyset_from_base_key

    states = _states()
    deployment_id, _ = server.deployment()
    keyset = keyset_from_base_key("paused-approval")
    schema = {
        "type": "object",
        "properties": {"approve": {"type": "boolean"}},
        "required": ["approve"],
    }

    def paused_run() -> str:
        paused = states.Paused(pause_key="approval")
        paused.state_details.run_input_keyset = keyset
        run_id = server.run(deployment_id, states.Running(), paused)
        server.client.create_flow_run_input(uuid.UUID(run_id), keyset["schema"], json.dumps(schema))
        return run_id

    refused = paused_run()
    result = api.resume_flow_run(refused, {"approve": "maybe"})
    assert result["status"] == "REJECT" and server.state(refused)[0] == "PAUSED"
    assert api.read_flow_run_input(refused, keyset["response"]) is None

    approved = paused_run()
    result = api.resume_flow_run(approved, {"approve": True})
    assert result["status"] == "ACCEPT" and server.state(approved)[0] == "RUNNING"
    stored = api.read_flow_run_input(approved, keyset["response"])
    assert stored is not None and orjson.loads(stored) == {"approve": True}
    assert api.resume_flow_run(approved, None)["status"] == "ABORT"  # no longer paused


def test_port_sets_and_deletes_global_concurrency_limits(
    server: Server, api: HttpPrefectAPI
) -> None:
    name = f"etl slots {uuid.uuid4().hex[:6]}"  # a space must be escaped in the URL
    server.limits.append(name)
    assert api.read_concurrency_limit(name) is None
    assert api.upsert_concurrency_limit(name, 2)["limit"] == 2
    assert api.upsert_concurrency_limit(name, 4)["limit"] == 4
    assert server.client.read_global_concurrency_limit_by_name(name).limit == 4
    api.delete_concurrency_limit(name)
    assert api.read_concurrency_limit(name) is None
    with pytest.raises(PrefectNotFoundError, match="Concurrency Limit not found"):
        api.delete_concurrency_limit(name)


def test_port_names_what_is_missing_and_when_nothing_answers(
    server: Server, api: HttpPrefectAPI
) -> None:
    with pytest.raises(PrefectNotFoundError, match="Deployment not found"):
        api.read_deployment_by_name("etl/missing")
    with pytest.raises(PrefectNotFoundError, match="Flow run not found"):
        api.read_flow_run(str(uuid.UUID(int=1)))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with HttpPrefectAPI(f"http://127.0.0.1:{port}/api", timeout=2) as down:
        assert down.health() is False
        with pytest.raises(PrefectUnavailableError):
            down.read_deployments()


class _BusyThenOk(http.server.BaseHTTPRequestHandler):
    """Answers 503 (a locked database, as Prefect's server says it) ``busy`` times, then 200."""

    busy = 0
    seen = 0

    def do_GET(self) -> None:
        type(self).seen += 1
        code = 503 if type(self).seen <= type(self).busy else 200
        body = b'{"exception_message": "Service Unavailable"}' if code == 503 else b"[]"
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if code == 503:
            self.send_header("Retry-After", "0")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.mark.parametrize(("busy", "ok"), [(3, True), (99, False)])
def test_a_busy_server_is_asked_again_then_named(busy: int, ok: bool) -> None:
    handler: type[_BusyThenOk] = type("Handler", (_BusyThenOk,), {"busy": busy, "seen": 0})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with HttpPrefectAPI(f"http://127.0.0.1:{server.server_port}/api", timeout=5) as api:
            if ok:
                assert api.read_flow_run_input("run", "key") == "[]"  # the answer after them
                assert handler.seen == busy + 1
            else:
                with pytest.raises(PrefectUnavailableError, match="HTTP 503"):
                    api.read_deployment("x")
                assert handler.seen == RETRIES + 1  # asked again, then gave up with the status
    finally:
        server.shutdown()
        server.server_close()


def test_pause_and_resume_round_trip_on_the_server(
    home: HomePaths, server: Server, api: HttpPrefectAPI
) -> None:
    deployment_id, name = server.deployment()
    server.run(deployment_id)
    server.run(deployment_id)
    ctx = context(home, api)
    pause = DeploymentPause(deployment=name)
    assert pause.plan(ctx).summary == f"pause deployment {name} (now active, 2 scheduled runs)"
    assert server.client.read_deployment(uuid.UUID(deployment_id)).paused is False
    undo = pause.execute(ctx)
    assert server.client.read_deployment(uuid.UUID(deployment_id)).paused is True
    resume = DeploymentResume(deployment=deployment_id)
    assert "resume deployment" in resume.plan(ctx).summary
    resume_undo = resume.execute(ctx)
    assert server.client.read_deployment(uuid.UUID(deployment_id)).paused is False
    assert resume.rollback(resume_undo, ctx) == f"paused deployment {name} again"
    assert server.client.read_deployment(uuid.UUID(deployment_id)).paused is True
    assert pause.rollback(undo, ctx) == f"resumed deployment {name} again"
    assert server.client.read_deployment(uuid.UUID(deployment_id)).paused is False


def test_the_server_is_found_from_prefect_api_url_or_up_json(
    home: HomePaths, server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    deployment_id, name = server.deployment()
    monkeypatch.setenv("PREFECT_API_URL", server.url)
    assert DeploymentPause(deployment=name).plan(context(home)).details["paused"] is False
    monkeypatch.delenv("PREFECT_API_URL")
    up_file(home).write_text(json.dumps({"api_url": server.url}))
    DeploymentPause(deployment=name).execute(context(home))
    assert server.client.read_deployment(uuid.UUID(deployment_id)).paused is True


def test_a_missing_deployment_is_named_by_the_server(
    home: HomePaths, server: Server, api: HttpPrefectAPI
) -> None:
    ctx = context(home, api)
    with pytest.raises(ActionError, match="deployment etl/nowhere: not found"):
        DeploymentPause(deployment="etl/nowhere").execute(ctx)
    with pytest.raises(ActionError, match="deployment etl/nowhere: not found"):
        DeploymentSetParameters(deployment="etl/nowhere", parameters={"a": 1}).plan(ctx)


def test_retry_on_the_server_ends_awaiting_retry(
    home: HomePaths, server: Server, api: HttpPrefectAPI
) -> None:
    states = _states()
    deployment_id, _ = server.deployment()
    run_id = server.run(deployment_id, states.Running(), states.Failed(message="boom"))
    ctx = context(home, api, flow_run_id=run_id)
    plan = FlowRunRetry().plan(ctx)
    assert "(now Failed)" in plan.summary and "AwaitingRetry" in plan.summary
    assert server.state(run_id) == ("FAILED", "Failed")
    FlowRunRetry().execute(ctx)
    assert server.state(run_id) == ("SCHEDULED", "AwaitingRetry")


@pytest.mark.parametrize("final", ["Running", "Completed"])
def test_retry_on_the_server_refuses_a_running_or_completed_run(
    home: HomePaths, server: Server, api: HttpPrefectAPI, final: str
) -> None:
    states = _states()
    deployment_id, _ = server.deployment()
    steps = [states.Running()] + ([states.Completed()] if final == "Completed" else [])
    run_id = server.run(deployment_id, *steps)
    ctx = context(home, api, flow_run_id=run_id)
    assert f"it is {final}" in FlowRunRetry().plan(ctx).summary
    with pytest.raises(ActionError, match=f"not retrying flow run .* it is {final}"):
        FlowRunRetry().execute(ctx)
    assert server.state(run_id) == (final.upper(), final)


def test_cancel_on_the_server(home: HomePaths, server: Server, api: HttpPrefectAPI) -> None:
    states = _states()
    deployment_id, _ = server.deployment()
    running = server.run(deployment_id, states.Running())
    scheduled = server.run(deployment_id)
    assert "Cancelling" in FlowRunCancel().plan(context(home, api, flow_run_id=running)).summary
    assert server.state(running) == ("RUNNING", "Running")
    FlowRunCancel().execute(context(home, api, flow_run_id=running))
    assert server.state(running) == ("CANCELLING", "Cancelling")
    undo = FlowRunCancel().execute(context(home, api, flow_run_id=scheduled))
    assert server.state(scheduled) == ("CANCELLED", "Cancelled")
    assert undo["state"] == "Cancelled"
    with pytest.raises(ActionError, match="already finished"):
        FlowRunCancel().execute(context(home, api, flow_run_id=scheduled))


def test_set_parameters_round_trip_on_the_server_restores_exactly(
    home: HomePaths, server: Server, api: HttpPrefectAPI
) -> None:
    original = {"batch": 100, "nested": {"a": [1, 2.5, None]}, "name": "x"}
    deployment_id, name = server.deployment(parameters=original)
    action = DeploymentSetParameters(deployment=name, parameters={"batch": 10, "new": True})
    ctx = context(home, api)
    action.plan(ctx)
    assert server.client.read_deployment(uuid.UUID(deployment_id)).parameters == original
    undo = action.execute(ctx)
    changed = server.client.read_deployment(uuid.UUID(deployment_id)).parameters
    assert changed == {**original, "batch": 10, "new": True}
    action.rollback(undo, ctx)
    assert server.client.read_deployment(uuid.UUID(deployment_id)).parameters == original


def test_concurrency_limit_on_the_server_created_then_deleted_by_rollback(
    home: HomePaths, server: Server, api: HttpPrefectAPI
) -> None:
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
    from prefect.exceptions import ObjectNotFound

    created, existing = f"new-{uuid.uuid4().hex[:6]}", f"old-{uuid.uuid4().hex[:6]}"
    server.limits += [created, existing]
    server.client.create_global_concurrency_limit(
        GlobalConcurrencyLimitCreate(name=existing, limit=3)
    )
    ctx = context(home, api)
    make = ConcurrencyLimitSet(name=created, limit=2)
    assert make.plan(ctx).summary == f"create global concurrency limit {created!r} with 2 slots"
    with pytest.raises(ObjectNotFound):
        server.client.read_global_concurrency_limit_by_name(created)
    undo = make.execute(ctx)
    assert server.client.read_global_concurrency_limit_by_name(created).limit == 2
    make.rollback(undo, ctx)
    with pytest.raises(ObjectNotFound):
        server.client.read_global_concurrency_limit_by_name(created)

    change = ConcurrencyLimitSet(name=existing, limit=1)
    undo = change.execute(ctx)
    assert server.client.read_global_concurrency_limit_by_name(existing).limit == 1
    change.rollback(undo, ctx)
    assert server.client.read_global_concurrency_limit_by_name(existing).limit == 3
