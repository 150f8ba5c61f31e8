"""What a plugin of each kind provides: probes, collectors, memory backends and agent types.

Actions need nothing new: a plugin action is an ``aios.actions.ActionSpec`` subclass (see
``aios.plugins`` for the whole list with examples).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from pydantic import BaseModel

if TYPE_CHECKING:
    from aios.bus import EventBus
    from aios.config import AIOSConfig
    from aios.home import HomePaths
    from aios.memory.palace import MemoryPalace
    from aios.memory.records import MemoryBackend
    from aios.probes import ProbeContext


@dataclass(frozen=True)
class ProbePlugin:
    """A verify probe: ``read(params, ctx)`` returns the number the expectation is tested on.

    ``params`` is a pydantic model: a playbook's ``verify:`` parameters are validated against it
    when the playbook loads, and ``read`` gets the validated instance. ``read`` raises
    ``aios.probes.ProbeError`` when it cannot take a reading (any other exception counts as
    one too). Example::

        class QueueParams(BaseModel):
            queue: str = Field(description="Queue name.")

        def queue_depth(params: QueueParams, ctx: ProbeContext) -> float:
            return float(my_broker.depth(params.queue))

        probe = ProbePlugin("acme.queue_depth", QueueParams, queue_depth, "messages")
    """

    name: str
    params: type[BaseModel]
    read: Callable[[Any, ProbeContext], float]
    unit: str = ""
    description: str = ""


@dataclass(frozen=True)
class CollectorContext:
    """What a collector may use during one monitor cycle."""

    paths: HomePaths
    config: AIOSConfig
    now: datetime
    host: str


class Collector(Protocol):
    """Called once per monitor cycle; returns event dicts (``type`` required; ``source``
    defaults to ``plugin.<entry point name>``). They are validated like any event: one bad
    event, or an exception, is reported as a ``plugin.failed`` event and the cycle goes on.
    Example::

        def heartbeat(ctx: CollectorContext) -> list[dict[str, Any]]:
            return [{"type": "acme.heartbeat", "labels": {"host": ctx.host}}]
    """

    def __call__(self, ctx: CollectorContext) -> Iterable[Mapping[str, Any]]: ...


class MemoryBackendFactory(Protocol):
    """Makes the memory backend ``[memory] backend = "<entry point name>"`` selects; the object
    must satisfy ``aios.memory.records.MemoryBackend``. Example::

        def redis_backend(paths: HomePaths, config: AIOSConfig) -> MemoryBackend:
            return RedisBackend(url=os.environ["ACME_REDIS_URL"])
    """

    def __call__(self, paths: HomePaths, config: AIOSConfig) -> MemoryBackend: ...


@dataclass(frozen=True)
class Schedule:
    """When a plugin agent's own deployment runs: every ``interval_s`` seconds, or ``cron``
    (UTC). Exactly one of the two."""

    interval_s: int | None = None
    cron: str | None = None

    def __post_init__(self) -> None:
        if (self.interval_s is None) == (self.cron is None):
            raise ValueError("a schedule is an interval_s or a cron, not both or neither")
        if self.interval_s is not None and self.interval_s < 10:
            raise ValueError("interval_s: at least 10 seconds")


@dataclass(frozen=True)
class AgentContext:
    """What a plugin agent's ``run`` gets: the bus to emit events on, the home's paths, the
    effective configuration, the result of the stage before it (an empty dict when it runs on
    its own), and ``agent``, the name it runs as (set by ``aios.plugins.agents.run_agent``)."""

    bus: EventBus
    paths: HomePaths
    config: AIOSConfig
    previous: dict[str, Any] = field(default_factory=dict)
    agent: str = ""

    def memory(self, collection: str = "memories") -> MemoryPalace:
        """This agent's view of the memory palace (``MemoryPalace.for_agent``): its own
        memories, the shared ones and those shared with it, never another agent's. Raises
        PluginError when the context names no agent."""
        from aios.lessons.model import COLLECTION as LESSONS
        from aios.memory.palace import MemoryPalace
        from aios.plugins.discovery import PluginError

        if not self.agent:
            raise PluginError("this agent context names no agent: it has no memory view")
        if collection == LESSONS:  # read through the table's rules, not the index beneath
            raise PluginError(
                f"the {LESSONS!r} collection is AIOS's own: look lessons up with "
                "aios.lessons.index.LessonIndex.similar(..., agent=...)"
            )
        palace = MemoryPalace.open(collection, paths=self.paths, config=self.config, bus=self.bus)
        return palace.for_agent(self.agent)


class PluginAgent:
    """Base of agent types. Subclasses set ``name`` (lowercase letters, digits and ``_``),
    implement ``run`` (plain Python, no Prefect), and choose ``schedule`` (their own
    deployment, served by ``aios up``) and ``in_dag`` (run by the orchestrator after the six
    built-in stages, getting the stage before it as ``context.previous``). Example::

        class Auditor(PluginAgent):
            name = "acme_auditor"
            schedule = Schedule(interval_s=3600)
            in_dag = True

            def run(self, context: AgentContext) -> dict[str, Any]:
                context.bus.emit("acme.audited", {"ok": True}, source="acme.auditor")
                return {"ok": True}

    Register it with the ``aios.agents`` entry point group, or in code with
    ``AgentRegistry.register("acme_auditor", Auditor)``.
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    schedule: ClassVar[Schedule | None] = None
    in_dag: ClassVar[bool] = False

    def run(self, context: AgentContext) -> dict[str, Any]:
        raise NotImplementedError
