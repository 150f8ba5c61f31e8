"""Actions on the Prefect server: pause or resume a deployment, set its parameters, retry or
cancel a flow run, set a global concurrency limit. The server is ``ctx.extra["prefect_api"]``
when given, else ``HttpPrefectAPI`` at ``api_url``; its errors become ActionError naming the target.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, ClassVar, Literal

from pydantic import Field

from aios.actions.base import (
    ActionContext,
    ActionError,
    ActionPlan,
    ActionSpec,
    IrreversibleError,
    Risk,
    render,
)
from aios.event import check_json_value
from aios.prefect_api import (
    FINAL_STATES,
    HttpPrefectAPI,
    PrefectAPI,
    PrefectAPIError,
    PrefectNotFoundError,
    PrefectUnavailableError,
    api_url,
)

RETRYABLE = ("FAILED", "CRASHED", "CANCELLED")


@contextmanager
def prefect_api(ctx: ActionContext, what: str) -> Iterator[PrefectAPI]:
    """The API to use for ``what`` (e.g. "deployment etl/nightly"); its errors name ``what``."""
    given = ctx.extra.get("prefect_api")
    try:
        if given is not None:
            yield given
            return
        with HttpPrefectAPI(api_url(ctx.paths)) as api:
            yield api
    except PrefectNotFoundError as exc:
        raise ActionError(f"{what}: not found on the Prefect server {exc.url}".rstrip()) from None
    except PrefectUnavailableError as exc:
        raise ActionError(f"{what}: the Prefect server did not answer ({exc})") from None
    except PrefectAPIError as exc:
        raise ActionError(f"{what}: {exc}") from None


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def _text(value: Any, ctx: ActionContext, what: str) -> str:
    text = str(render(value, ctx.event)).strip()
    if not text:
        raise ActionError(f"{what} is empty")
    return text


def _deployment(api: PrefectAPI, ref: str) -> dict[str, Any]:
    if _is_uuid(ref):
        return api.read_deployment(ref)
    if "/" not in ref:
        raise ActionError(f"deployment {ref!r}: give FLOW/DEPLOYMENT or the deployment's id")
    return api.read_deployment_by_name(ref)


def full_name(deployment: Mapping[str, Any]) -> str:
    """``FLOW/DEPLOYMENT``, the name Prefect shows and ``prefect deployment run`` takes."""
    return f"{deployment.get('flow_name') or '?'}/{deployment['name']}"


def _scheduled_runs(api: PrefectAPI, deployment_id: str) -> int:
    return api.count_flow_runs(
        {
            "flow_runs": {
                "deployment_id": {"any_": [deployment_id]},
                "state": {"type": {"any_": ["SCHEDULED"]}},
            }
        }
    )


class _DeploymentPauseBase(ActionSpec):
    deployment: str = Field(
        description="FLOW/DEPLOYMENT name or deployment id; ${...} allowed.",
    )
    pause: ClassVar[bool]

    def _ref(self, ctx: ActionContext) -> str:
        return _text(self.deployment, ctx, "deployment")

    def plan(self, ctx: ActionContext) -> ActionPlan:
        ref = self._ref(ctx)
        with prefect_api(ctx, f"deployment {ref}") as api:
            record = _deployment(api, ref)
            scheduled = _scheduled_runs(api, record["id"])
        name, paused = full_name(record), bool(record["paused"])
        verb = "pause" if self.pause else "resume"
        now = f"now {'paused' if paused else 'active'}, {scheduled} scheduled runs"
        summary = f"{verb} deployment {name} ({now})"
        if paused == self.pause:
            summary = f"deployment {name} is already {verb}d ({now}): nothing to do"
        return ActionPlan(
            self.type,
            summary,
            targets=[name],
            reversible=True,
            risk=self.floor(),
            details={
                "deployment_id": record["id"],
                "deployment": name,
                "paused": paused,
                "scheduled_runs": scheduled,
            },
        )

    def execute(self, ctx: ActionContext) -> dict[str, Any]:
        ref = self._ref(ctx)
        with prefect_api(ctx, f"deployment {ref}") as api:
            record = _deployment(api, ref)
            was_paused = bool(record["paused"])
            if was_paused != self.pause:
                api.set_deployment_paused(record["id"], self.pause)
        return {
            "deployment_id": record["id"],
            "deployment": full_name(record),
            "was_paused": was_paused,
            "changed": was_paused != self.pause,
        }

    def rollback(self, undo: dict[str, Any], ctx: ActionContext) -> str:
        name = undo["deployment"]
        if not undo["changed"]:
            state = "paused" if undo["was_paused"] else "active"
            return f"deployment {name} was already {state}; left as it is"
        with prefect_api(ctx, f"deployment {name}") as api:
            api.set_deployment_paused(undo["deployment_id"], undo["was_paused"])
        return f"{'paused' if undo['was_paused'] else 'resumed'} deployment {name} again"


class DeploymentPause(_DeploymentPauseBase):
    """Pause a deployment's schedules (Prefect deletes its auto-scheduled runs)."""

    type: Literal["prefect.deployment.pause"] = "prefect.deployment.pause"
    pause: ClassVar[bool] = True
    risk_floor: ClassVar[Risk] = Risk.MEDIUM


class DeploymentResume(_DeploymentPauseBase):
    """Resume a paused deployment's schedules."""

    type: Literal["prefect.deployment.resume"] = "prefect.deployment.resume"
    pause: ClassVar[bool] = False
    risk_floor: ClassVar[Risk] = Risk.LOW


def _describe_run(run: Mapping[str, Any]) -> str:
    return f"flow run {run.get('name') or '?'} ({run['id']}) of {run.get('flow_name') or '?'}"


class _FlowRunAction(ActionSpec):
    flow_run: str = Field(
        default="${payload.flow_run_id}",
        description="The flow run's id; ${...} allowed.",
    )
    reversible: ClassVar[bool] = False

    def _id(self, ctx: ActionContext) -> str:
        run_id = _text(self.flow_run, ctx, "flow_run")
        if not _is_uuid(run_id):
            raise ActionError(f"flow_run {run_id!r} is not a flow run id")
        return run_id

    def refusal(self, run: Mapping[str, Any]) -> str | None:
        """Why this run cannot be acted on, or None."""
        raise NotImplementedError

    def _read(self, ctx: ActionContext) -> dict[str, Any]:
        run_id = self._id(ctx)
        with prefect_api(ctx, f"flow run {run_id}") as api:
            return api.read_flow_run(run_id)

    def rollback(self, undo: dict[str, Any], ctx: ActionContext) -> str:
        raise IrreversibleError(f"{self.type} cannot be undone ({undo.get('flow_run', '')})")


def _propose(
    ctx: ActionContext,
    run: Mapping[str, Any],
    state: dict[str, Any],
    accepted: tuple[tuple[str, str], ...],
) -> dict[str, Any]:
    """Propose ``state`` as the UI does (orchestration rules apply) and return the state the
    run got; ActionError unless the answer is one of ``accepted`` (status, state type)."""
    what = _describe_run(run)
    with prefect_api(ctx, what) as api:
        result = api.set_flow_run_state(run["id"], state, force=False)
    new = result.get("state") or {}
    if (result.get("status"), new.get("type")) not in accepted:
        reason = (result.get("details") or {}).get("reason") or result.get("status")
        raise ActionError(f"Prefect refused to set {what} to {state['type']}: {reason}")
    return dict(new)


class FlowRunRetry(_FlowRunAction):
    """Retry a failed, crashed or cancelled flow run, as the UI's Retry does (AwaitingRetry)."""

    type: Literal["prefect.flow_run.retry"] = "prefect.flow_run.retry"
    risk_floor: ClassVar[Risk] = Risk.LOW

    def refusal(self, run: Mapping[str, Any]) -> str | None:
        state = run.get("state_name") or run.get("state_type")
        if run.get("state_type") not in RETRYABLE:
            return f"it is {state}; only a Failed, Crashed or Cancelled run is retried"
        if not run.get("deployment_id"):
            return "it has no deployment, and Prefect reschedules only runs of a deployment"
        return None

    def plan(self, ctx: ActionContext) -> ActionPlan:
        run = self._read(ctx)
        what, why = _describe_run(run), self.refusal(run)
        state = run.get("state_name") or run.get("state_type")
        summary = (
            f"would not retry {what}: {why}"
            if why
            else f"retry {what} (now {state}): set it to AwaitingRetry so its deployment runs "
            f"it again (run {int(run.get('run_count') or 0) + 1})"
        )
        return ActionPlan(
            self.type,
            summary,
            targets=[run["id"]],
            reversible=False,
            risk=self.floor(),
            details={"flow_run_id": run["id"], "state": state, "refused": why},
        )

    def execute(self, ctx: ActionContext) -> dict[str, Any]:
        run = self._read(ctx)
        why = self.refusal(run)
        if why:
            raise ActionError(f"not retrying {_describe_run(run)}: {why}")
        message = f"Retry by AIOS (remediation {ctx.remediation_id})"
        state = {"type": "SCHEDULED", "name": "AwaitingRetry", "message": message}
        new = _propose(ctx, run, state, (("ACCEPT", "SCHEDULED"),))
        return {
            "flow_run": run["id"],
            "flow_run_name": run.get("name"),
            "previous_state": run.get("state_name"),
            "state": new.get("name"),
        }


class FlowRunCancel(_FlowRunAction):
    """Cancel a flow run: Cancelling (its runner stops it), or Cancelled when it has no process."""

    type: Literal["prefect.flow_run.cancel"] = "prefect.flow_run.cancel"
    risk_floor: ClassVar[Risk] = Risk.MEDIUM

    def refusal(self, run: Mapping[str, Any]) -> str | None:
        state = run.get("state_name") or run.get("state_type")
        if run.get("state_type") in FINAL_STATES:
            return f"it has already finished ({state})"
        if run.get("state_type") == "CANCELLING":
            return "it is already being cancelled"
        return None

    def plan(self, ctx: ActionContext) -> ActionPlan:
        run = self._read(ctx)
        what, why = _describe_run(run), self.refusal(run)
        state = run.get("state_name") or run.get("state_type")
        if why:
            summary = f"would not cancel {what}: {why}"
        elif run.get("state_type") == "SCHEDULED" and not run.get("infrastructure_pid"):
            summary = f"cancel {what} (now {state}, no process yet): Prefect sets it Cancelled"
        else:
            summary = (
                f"cancel {what} (now {state}): Prefect sets it Cancelling; its runner stops it"
            )
        return ActionPlan(
            self.type,
            summary,
            targets=[run["id"]],
            reversible=False,
            risk=self.floor(),
            details={"flow_run_id": run["id"], "state": state, "refused": why},
        )

    def execute(self, ctx: ActionContext) -> dict[str, Any]:
        run = self._read(ctx)
        why = self.refusal(run)
        if why:
            raise ActionError(f"not cancelling {_describe_run(run)}: {why}")
        message = f"Cancelled by AIOS (remediation {ctx.remediation_id})"
        state = {"type": "CANCELLING", "message": message}
        # With no process to stop, the server rejects Cancelling and sets Cancelled instead.
        new = _propose(ctx, run, state, (("ACCEPT", "CANCELLING"), ("REJECT", "CANCELLED")))
        return {
            "flow_run": run["id"],
            "flow_run_name": run.get("name"),
            "previous_state": run.get("state_name"),
            "state": new.get("name"),
        }


class DeploymentSetParameters(ActionSpec):
    """Merge ``parameters`` into a deployment's default parameters (undo restores them exactly)."""

    type: Literal["prefect.deployment.set_parameters"] = "prefect.deployment.set_parameters"
    deployment: str = Field(description="FLOW/DEPLOYMENT name or deployment id; ${...} allowed.")
    parameters: dict[str, Any] = Field(
        min_length=1,
        description="Parameters to set (merged over the current ones); ${...} allowed.",
    )
    risk_floor: ClassVar[Risk] = Risk.MEDIUM

    def _target(self, ctx: ActionContext) -> tuple[str, dict[str, Any]]:
        ref = _text(self.deployment, ctx, "deployment")
        changes = render(self.parameters, ctx.event)
        check_json_value(changes, "parameters")
        return ref, changes

    def plan(self, ctx: ActionContext) -> ActionPlan:
        ref, changes = self._target(ctx)
        with prefect_api(ctx, f"deployment {ref}") as api:
            record = _deployment(api, ref)
        old = dict(record.get("parameters") or {})
        shown = ", ".join(
            f"{key}: {old[key]!r} -> {value!r}" if key in old else f"{key}: (unset) -> {value!r}"
            for key, value in changes.items()
        )
        name = full_name(record)
        return ActionPlan(
            self.type,
            f"set parameters of deployment {name}: {shown}",
            targets=[name],
            reversible=True,
            risk=self.floor(),
            details={"deployment_id": record["id"], "old": old, "new": {**old, **changes}},
        )

    def execute(self, ctx: ActionContext) -> dict[str, Any]:
        ref, changes = self._target(ctx)
        with prefect_api(ctx, f"deployment {ref}") as api:
            record = _deployment(api, ref)
            old = dict(record.get("parameters") or {})
            new = {**old, **changes}
            api.update_deployment(record["id"], {"parameters": new})
        return {
            "deployment_id": record["id"],
            "deployment": full_name(record),
            "old_parameters": old,
            "new_parameters": new,
        }

    def rollback(self, undo: dict[str, Any], ctx: ActionContext) -> str:
        name, old = undo["deployment"], undo["old_parameters"]
        with prefect_api(ctx, f"deployment {name}") as api:
            current = api.read_deployment(undo["deployment_id"]).get("parameters") or {}
            if current != undo["new_parameters"]:
                raise ActionError(
                    f"the parameters of deployment {name} changed after the update (now "
                    f"{current!r}); not overwriting that change with {old!r}"
                )
            api.update_deployment(undo["deployment_id"], {"parameters": old})
        return f"restored the parameters of deployment {name} to {old!r}"


class ConcurrencyLimitSet(ActionSpec):
    """Set a global concurrency limit, creating it when missing (undo: old limit, or delete)."""

    type: Literal["prefect.concurrency_limit.set"] = "prefect.concurrency_limit.set"
    name: str = Field(description="The global concurrency limit's name; ${...} allowed.")
    limit: int = Field(ge=0, description="How many slots it allows.")
    risk_floor: ClassVar[Risk] = Risk.MEDIUM

    def plan(self, ctx: ActionContext) -> ActionPlan:
        name = _text(self.name, ctx, "name")
        with prefect_api(ctx, f"concurrency limit {name!r}") as api:
            found = api.read_concurrency_limit(name)
        if found is None:
            summary = f"create global concurrency limit {name!r} with {self.limit} slots"
        else:
            summary = (
                f"set global concurrency limit {name!r} from {found.get('limit')} to "
                f"{self.limit} slots ({found.get('active_slots', 0)} in use now)"
            )
        return ActionPlan(
            self.type,
            summary,
            targets=[name],
            reversible=True,
            risk=self.floor(),
            details={"name": name, "old": found.get("limit") if found else None, "new": self.limit},
        )

    def execute(self, ctx: ActionContext) -> dict[str, Any]:
        name = _text(self.name, ctx, "name")
        with prefect_api(ctx, f"concurrency limit {name!r}") as api:
            found = api.read_concurrency_limit(name)
            api.upsert_concurrency_limit(name, self.limit)
        return {
            "name": name,
            "created": found is None,
            "old_limit": found.get("limit") if found else None,
            "new_limit": self.limit,
        }

    def rollback(self, undo: dict[str, Any], ctx: ActionContext) -> str:
        name = undo["name"]
        with prefect_api(ctx, f"concurrency limit {name!r}") as api:
            if api.read_concurrency_limit(name) is None:
                if undo["created"]:
                    return f"global concurrency limit {name!r} is already gone; nothing to undo"
                raise ActionError(
                    f"concurrency limit {name!r} no longer exists; not creating it again"
                )
            if undo["created"]:
                api.delete_concurrency_limit(name)
                return f"deleted global concurrency limit {name!r} (it did not exist before)"
            api.upsert_concurrency_limit(name, int(undo["old_limit"]))
        return f"set global concurrency limit {name!r} back to {undo['old_limit']} slots"
