"""The event bus: append durably to the log, then hand each event to the subscribers.

Subscribers match by type glob (``resource.*``, ``*``) and may be plain or ``async`` functions.
A handler that raises never loses the event (it is already on disk) and never stops the other
handlers; its failure becomes a ``bus.handler_failed`` event. Subscribers live in one process;
other processes see the same events by reading the log from a cursor.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import logging
import os
import threading
import traceback
import weakref
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar, cast, overload

from pydantic import ValidationError

from aios.errors import EventValidationError, InputError
from aios.event import Event, Severity, event_error
from aios.event_filter import EventFilter, compile_glob
from aios.log import START, Cursor, EventLog

logger = logging.getLogger("aios.bus")

Handler = Callable[[Event], Any]
H = TypeVar("H", bound=Handler)
_replaying: contextvars.ContextVar[bool] = contextvars.ContextVar("aios_replaying", default=False)


def is_replay() -> bool:
    """True while a handler is being called by ``replay`` rather than by a new emit."""
    return _replaying.get()


@dataclass
class Subscription:
    """A handler bound to a type glob; ``cancel()`` removes it."""

    pattern: str
    handler: Handler
    name: str
    bus: EventBus = field(repr=False)
    is_async: bool = False

    def matches(self, event_type: str) -> bool:
        return compile_glob(self.pattern).match(event_type) is not None

    def cancel(self) -> None:
        self.bus.unsubscribe(self)


_Failure = tuple["Subscription", Event, Exception]
_buses: weakref.WeakSet[EventBus] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for bus in list(_buses):
        bus._after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)


@dataclass
class ReplayReport:
    """What a replay did: events seen, deliveries per handler, and handler failures."""

    events: int = 0
    delivered: dict[str, int] = field(default_factory=dict)
    failures: list[dict[str, Any]] = field(default_factory=list)
    cursor: str = str(START)


class _LoopThread:
    """A private event loop on a daemon thread, for async handlers called from sync code."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="aios-bus", daemon=True)
        self.thread.start()

    def run(self, awaitable: Awaitable[Any]) -> Any:
        """Run ``awaitable`` on the loop and wait for it; the replay flag goes along."""
        if threading.current_thread() is self.thread:
            raise RuntimeError("sync emit called from an async handler; use 'await bus.aemit'")
        coro = _with_replay_flag(awaitable, is_replay())
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()


async def _with_replay_flag(awaitable: Awaitable[Any], replaying: bool) -> Any:
    token = _replaying.set(replaying)
    try:
        return await awaitable
    finally:
        _replaying.reset(token)


def make_event(
    event_type: str,
    payload: Mapping[str, Any] | None = None,
    *,
    source: str = "app",
    severity: Severity | str = Severity.INFO,
    labels: Mapping[str, str] | None = None,
    correlation_id: str | None = None,
    causation_id: str | None = None,
    time: datetime | None = None,
) -> Event:
    """Validate the parts of an event; raises EventValidationError naming the bad field."""
    fields: dict[str, Any] = {
        "type": event_type,
        "source": source,
        "severity": severity,
        "labels": dict(labels or {}),
        "payload": dict(payload or {}),
        "correlation_id": correlation_id,
        "causation_id": causation_id,
    }
    if time is not None:
        fields["time"] = time
    try:
        return Event(**fields)
    except ValidationError as exc:
        raise event_error(exc) from None


def coerce_event(item: Event | Mapping[str, Any]) -> Event:
    """An Event from an Event or a mapping of its fields (``type`` required)."""
    if type(item) is dict and "priority" not in item:  # the common case, checked first
        try:
            return Event.model_validate(item)
        except ValidationError as exc:
            raise event_error(exc) from None
    if isinstance(item, Event):
        return item
    if not isinstance(item, Mapping):
        raise EventValidationError(f"expected an event or a mapping, got {type(item).__name__}")
    # priority is derived from severity; accepted on input and ignored
    fields = {k: v for k, v in item.items() if k != "priority"}
    try:
        return Event.model_validate(fields)
    except ValidationError as exc:
        raise event_error(exc) from None


class EventBus:
    """Publishes events to the log and to in-process subscribers."""

    def __init__(self, log: EventLog) -> None:
        self.log = log
        self._subs: list[Subscription] = []
        self._lock = threading.Lock()
        self._loop: _LoopThread | None = None
        _buses.add(self)

    def _after_fork(self) -> None:
        # The loop thread does not exist in a forked child; start a new one when needed.
        self._lock = threading.Lock()
        self._loop = None

    # ------------------------------------------------------------ subscribing
    @overload
    def subscribe(
        self, pattern: str, handler: None = None, *, name: str | None = None
    ) -> Callable[[H], H]: ...

    @overload
    def subscribe(
        self, pattern: str, handler: Handler, *, name: str | None = None
    ) -> Subscription: ...

    def subscribe(
        self, pattern: str, handler: Handler | None = None, *, name: str | None = None
    ) -> Subscription | Callable[[H], H]:
        """Call ``handler(event)`` for each event whose type matches ``pattern``.

        Returns the Subscription; without ``handler`` it is a decorator returning the function.
        """
        compile_glob(pattern)

        def register(func: Handler) -> Subscription:
            sub = Subscription(
                pattern,
                func,
                name or str(getattr(func, "__qualname__", repr(func))),
                self,
                inspect.iscoroutinefunction(func),
            )
            with self._lock:
                self._subs.append(sub)
            return sub

        if handler is None:

            def decorate(func: H) -> H:
                register(func)
                return func

            return decorate
        return register(handler)

    def unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            if sub in self._subs:
                self._subs.remove(sub)

    @property
    def subscriptions(self) -> list[Subscription]:
        with self._lock:
            return list(self._subs)

    # -------------------------------------------------------------- emitting
    def emit(
        self,
        type: str,
        payload: Mapping[str, Any] | None = None,
        *,
        source: str = "app",
        severity: Severity | str = Severity.INFO,
        labels: Mapping[str, str] | None = None,
        correlation_id: str | None = None,
        causation_id: str | None = None,
        time: datetime | None = None,
    ) -> Event:
        """Append one event durably (fsync'd before returning), then dispatch it.

        Raises EventValidationError naming the bad field; nothing is written then.
        """
        event = make_event(
            type,
            payload,
            source=source,
            severity=severity,
            labels=labels,
            correlation_id=correlation_id,
            causation_id=causation_id,
            time=time,
        )
        return self.publish([event])[0]

    def emit_many(self, items: Iterable[Event | Mapping[str, Any]]) -> list[Event]:
        """Append many events as one group commit (all or none), then dispatch them in order.

        Every item is validated first; one bad item raises EventValidationError naming its
        index and field, and nothing is written.
        """
        batch = list(items)
        try:
            events = [coerce_event(item) for item in batch]
        except EventValidationError:
            for index, item in enumerate(batch):  # find and name the first bad item
                try:
                    coerce_event(item)
                except EventValidationError as exc:
                    raise exc.within(f"[{index}]") from None
            raise
        return self.publish(events)

    def publish(self, events: Sequence[Event]) -> list[Event]:
        """Append already-built events as one group, then dispatch them (and any notices)."""
        result = self.log.append(events)
        if self._subs:
            self.dispatch([*result.notices, *result.written])
        return result.written

    async def aemit(self, type: str, payload: Mapping[str, Any] | None = None, **kw: Any) -> Event:
        """``emit`` for async code: the append runs in a worker thread; handlers are awaited."""
        event = make_event(type, payload, **kw)
        result = await asyncio.to_thread(self.log.append, [event])
        await self.adispatch([*result.notices, *result.written])
        return result.written[0]

    # ------------------------------------------------------------ dispatching
    def dispatch(self, events: Sequence[Event]) -> None:
        """Hand ``events`` to the matching subscribers, in order.

        Handler failures are recorded after every event has been delivered, so subscribers
        see events in the order the log holds them.
        """
        subs = self.subscriptions
        if not subs:
            return
        failures: list[_Failure] = []
        for event in events:
            for sub in subs:
                if sub.matches(event.type):
                    error = self._call(sub, event)
                    if error is not None:
                        failures.append((sub, event, error))
        self._record_failures(failures)

    async def adispatch(self, events: Sequence[Event]) -> None:
        """``dispatch`` for async code: async handlers are awaited in the caller's loop."""
        failures: list[_Failure] = []
        for event in events:
            for sub in self.subscriptions:
                if not sub.matches(event.type):
                    continue
                try:
                    result = sub.handler(event)
                    if inspect.isawaitable(result):
                        await result
                except Exception as exc:
                    failures.append((sub, event, exc))
        if failures:
            await asyncio.to_thread(self._record_failures, failures)

    def _call(self, sub: Subscription, event: Event) -> Exception | None:
        """Call one handler; returns what it raised, if anything."""
        try:
            result = sub.handler(event)
            if inspect.isawaitable(result):
                self._loop_thread().run(result)
        except Exception as exc:
            return exc
        return None

    def _loop_thread(self) -> _LoopThread:
        with self._lock:
            if self._loop is None:
                self._loop = _LoopThread()
            return self._loop

    def _record_failures(self, failures: list[_Failure]) -> None:
        """Append a ``bus.handler_failed`` event per failure (as one batch) and dispatch them."""
        records = []
        for sub, event, exc in failures:
            if event.type == "bus.handler_failed":
                # Never answer a failure about a failure with another event: that could loop.
                logger.error(
                    "handler %s failed on bus.handler_failed %s: %r", sub.name, event.id, exc
                )
                continue
            records.append(
                make_event(
                    "bus.handler_failed",
                    {
                        "handler": sub.name,
                        "pattern": sub.pattern,
                        "event_id": event.id,
                        "event_type": event.type,
                        "error_type": type(exc).__name__,
                        "error": str(exc)[:2000],
                        "traceback": "".join(traceback.format_exception(exc)[-8:])[-4000:],
                        "replay": is_replay(),
                    },
                    source="aios.bus",
                    severity=Severity.MEDIUM,
                    labels={"handler": sub.name[:200]},
                    correlation_id=event.correlation_id or event.id,
                    causation_id=event.id,
                )
            )
        if not records:
            return
        try:
            if is_replay():
                # A replay delivers stored events only; its failures are recorded, not dispatched.
                self.log.append(records)
            else:
                self.publish(records)
        except Exception:  # the log itself failed: say so, do not raise into emit's caller
            logger.exception("could not record %d handler failure(s)", len(records))

    # -------------------------------------------------------------- replaying
    def replay(
        self,
        flt: EventFilter | None = None,
        *,
        cursor: Cursor = START,
        handlers: Sequence[Subscription] | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> ReplayReport:
        """Re-dispatch stored events passing ``flt`` (after ``cursor``) to the subscribers.

        ``handlers`` limits delivery to those subscriptions. Handlers can tell a replay from a
        live event with ``is_replay()``. Failures are recorded as ``bus.handler_failed`` events.
        """
        subs = list(handlers) if handlers is not None else self.subscriptions
        report = ReplayReport(delivered={s.name: 0 for s in subs}, cursor=str(cursor))
        token = _replaying.set(True)
        try:
            for event, after in self.log.read(flt, cursor):
                report.events += 1
                failures: list[_Failure] = []
                for sub in subs:
                    if not sub.matches(event.type):
                        continue
                    error = self._call(sub, event)
                    if error is None:
                        report.delivered[sub.name] += 1
                        continue
                    failures.append((sub, event, error))
                    report.failures.append(
                        {"handler": sub.name, "event_id": event.id, "error": repr(error)}
                    )
                self._record_failures(failures)
                report.cursor = str(after)
                if progress is not None:
                    progress(report.events)
        finally:
            _replaying.reset(token)
        return report


def load_handler(spec: str) -> Handler:
    """Import ``module:function`` (or ``module.function``) as a handler; InputError if missing."""
    import importlib

    module_name, sep, attr = spec.partition(":")
    if not sep:
        module_name, _, attr = spec.rpartition(".")
    if not module_name or not attr:
        raise InputError(f"handler {spec!r} is not MODULE:FUNCTION")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise InputError(f"handler {spec!r}: cannot import {module_name}: {exc}") from None
    handler = getattr(module, attr, None)
    if not callable(handler):
        raise InputError(f"handler {spec!r}: {module_name} has no callable {attr!r}")
    return cast(Handler, handler)
