"""``aios.track``: record a unit of agent work as ``task.started`` then ``task.completed`` or
``task.failed``, with the agent, latency, error type and message, and optional tokens and cost.

    with aios.track("summarise", agent="writer") as t:
        reply = llm(prompt)
        t.tokens, t.cost = reply.usage.total_tokens, 0.002

    @aios.track(agent="writer")          # the task is named after the function
    async def summarise(text): ...

The task's events share one correlation id (the ``task.started`` event's id). Exceptions are
recorded and re-raised, never swallowed. If the log cannot be written, the work still runs and
the failure to record it is logged.
"""

from __future__ import annotations

import functools
import inspect
import logging
import time
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any, TypeVar, cast

from aios.bus import EventBus, make_event
from aios.errors import InputError
from aios.event import Event, Severity, check_json_value, new_event_id

logger = logging.getLogger("aios.track")
F = TypeVar("F", bound=Callable[..., Any])


class track:  # noqa: N801 - used like a function: `with aios.track(...)`, `@aios.track(...)`
    """Context manager and decorator recording one task of an agent."""

    def __init__(
        self,
        task: str | None = None,
        *,
        agent: str,
        labels: Mapping[str, str] | None = None,
        source: str | None = None,
        failure_severity: Severity | str = Severity.MEDIUM,
        bus: EventBus | None = None,
    ) -> None:
        if not isinstance(agent, str) or not agent.strip():
            raise InputError("track: agent must be a non-empty string")
        try:
            self.failure_severity = Severity(failure_severity)
        except ValueError:
            raise InputError(
                f"track: failure_severity {failure_severity!r} is not one of "
                "info, low, medium, high, critical"
            ) from None
        self.task = task
        self.agent = agent
        self.labels = dict(labels or {})
        self.source = source or agent
        self._bus = bus
        self.task_id: str | None = None
        self.tokens: int | None = None
        self.cost: float | None = None
        self.extra: dict[str, Any] = {}
        self.outcome: str | None = None
        self.latency_ms: float | None = None
        self._start = 0.0

    def set(self, **fields: Any) -> None:
        """Add JSON fields to the completed/failed event's payload (model name, retries, ...).

        Raises EventValidationError naming the field if a value is not plain JSON.
        """
        for key, value in fields.items():
            check_json_value(value, f"payload.{key}")
        self.extra.update(fields)

    # ----------------------------------------------------------- decorator
    def __call__(self, func: F) -> F:
        name = self.task or func.__qualname__

        def fresh() -> track:  # one tracker per call, so concurrent calls do not share state
            return track(
                name,
                agent=self.agent,
                labels=self.labels,
                source=self.source,
                failure_severity=self.failure_severity,
                bus=self._bus,
            )

        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                async with fresh():
                    return await func(*args, **kwargs)

            return cast(F, async_wrapper)

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with fresh():
                return func(*args, **kwargs)

        return cast(F, wrapper)

    # ------------------------------------------------------- context manager
    def __enter__(self) -> track:
        self._started()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._finished(exc)

    async def __aenter__(self) -> track:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._finished(exc)

    # ------------------------------------------------------------ internals
    @property
    def bus(self) -> EventBus:
        if self._bus is None:
            from aios.runtime import default_bus

            self._bus = default_bus()
        return self._bus

    def _labels(self) -> dict[str, str]:
        return {**self.labels, "agent": self.agent, "task": self.task or "task"}

    def _started(self) -> None:
        if self.task is None:
            raise InputError("track: name the task, e.g. track('summarise', agent='writer')")
        self._start = time.perf_counter()
        # The started event's id is the task id and the correlation id of all its events.
        self.task_id = new_event_id()
        self._emit("task.started", {"task": self.task}, Severity.INFO, None, event_id=self.task_id)

    def _finished(self, exc: BaseException | None) -> None:
        self.latency_ms = round((time.perf_counter() - self._start) * 1000, 3)
        payload: dict[str, Any] = {
            "task": self.task,
            "task_id": self.task_id,
            "latency_ms": self.latency_ms,
        }
        if self.tokens is not None:
            payload["tokens"] = self.tokens
        if self.cost is not None:
            payload["cost"] = self.cost
        payload.update(self.extra)
        if exc is None:
            self.outcome = "completed"
            self._emit("task.completed", payload, Severity.INFO, self.task_id)
        else:
            self.outcome = "failed"
            payload["error_type"] = type(exc).__name__
            payload["error"] = str(exc)[:4000]
            self._emit("task.failed", payload, self.failure_severity, self.task_id)

    def _emit(
        self,
        event_type: str,
        payload: dict[str, Any],
        severity: Severity,
        cause: str | None,
        event_id: str | None = None,
    ) -> Event | None:
        try:
            event = make_event(
                event_type,
                payload,
                source=self.source,
                severity=severity,
                labels=self._labels(),
                correlation_id=self.task_id,
                causation_id=cause,
            )
            if event_id is not None:
                event = event.model_copy(update={"id": event_id})
            return self.bus.publish([event])[0]
        except Exception:
            logger.exception("aios.track could not record %s for agent %s", event_type, self.agent)
            return None
