"""How AIOS tasks retry and what they share: the context of a run (home, config, bus).

Transient failures (the store or the Prefect server briefly unavailable) are retried with
exponential backoff and jitter; anything else fails the task at once. Results are never cached:
every task reads the live log.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar

import duckdb
from prefect import Task, task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import State, TaskRun
from prefect.tasks import exponential_backoff

from aios.bus import EventBus
from aios.config import AIOSConfig
from aios.errors import StoreError
from aios.home import HomePaths
from aios.prefect_api import PrefectUnavailableError

TRANSIENT: tuple[type[BaseException], ...] = (
    StoreError,
    PrefectUnavailableError,
    duckdb.IOException,
    ConnectionError,
)
RETRIES = 3
BACKOFF_S = 2.0
JITTER = 0.5

P = ParamSpec("P")
R = TypeVar("R")


def is_transient(task: Task[Any, Any], task_run: TaskRun, state: State[Any]) -> bool:
    """Retry only what may pass by itself (see ``TRANSIENT``)."""
    try:
        state.result()
    except TRANSIENT:
        return True
    except BaseException:
        return False
    return False


def aios_task(
    name: str, *, retries: int = RETRIES, timeout_s: float | None = None
) -> Callable[[Callable[P, R]], Task[P, R]]:
    """``@task`` with AIOS's retry policy and no result caching."""
    return task(
        name=name,
        retries=retries,
        retry_delay_seconds=exponential_backoff(backoff_factor=BACKOFF_S),
        retry_jitter_factor=JITTER,
        retry_condition_fn=is_transient,
        timeout_seconds=timeout_s,
        cache_policy=NO_CACHE,
        persist_result=False,
    )


@dataclass
class RunContext:
    """What a flow run works on: ``$AIOS_HOME``, the effective settings and the bus."""

    paths: HomePaths
    config: AIOSConfig
    bus: EventBus


def run_context() -> RunContext:
    """The context of this process: config.toml and AIOS_* variables, overridden by a saved
    ``AIOSSettings`` block when there is one. Raises ConfigError (the run fails, naming the
    block's field) when the block is invalid or would loosen a security setting."""
    from aios.runtime import default_bus
    from blocks.aios_settings import effective_config

    paths = HomePaths.current()
    return RunContext(paths, effective_config(paths), default_bus())
