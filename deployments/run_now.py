"""``aios run FLOW``: run one AIOS flow now, in this process, and return its result.

It uses the Prefect server ``PREFECT_API_URL`` names, else the one ``aios up`` started; with
neither, a temporary server for this run alone (recorded in ``$AIOS_HOME/run.json`` meanwhile,
so ``aios approvals`` can answer a remediation that waits for a person).
"""

from __future__ import annotations

import contextlib
import inspect
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import orjson

from aios.atomic import write_atomic
from aios.errors import InputError
from aios.home import HomePaths
from aios.prefect_api import recorded_api_url, run_file, up_file


@contextmanager
def prefect_server(paths: HomePaths) -> Iterator[str]:
    """The API URL to use, starting a temporary server when none is known."""
    url = os.environ.get("PREFECT_API_URL", "").strip()
    if not url:  # the server of a running aios up (a file left by one that died is ignored)
        url = recorded_api_url(up_file(paths)) or ""
    if url:
        os.environ["PREFECT_API_URL"] = url
        yield url
        return
    os.environ.setdefault("PREFECT_HOME", str(paths.root / "prefect"))
    os.makedirs(os.environ["PREFECT_HOME"], exist_ok=True)
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    from prefect.server.api.server import SubprocessASGIServer

    server = SubprocessASGIServer()
    server.start(timeout=60)
    os.environ["PREFECT_API_URL"] = server.api_url
    # Recorded for `aios approvals`, unless another live `aios run` recorded its own.
    mine = recorded_api_url(run_file(paths)) is None
    if mine:
        record = {"pid": os.getpid(), "api_url": server.api_url, "started": _now()}
        write_atomic(run_file(paths), orjson.dumps(record))
    try:
        yield server.api_url
    finally:
        if mine and recorded_api_url(run_file(paths)) == server.api_url.rstrip("/"):
            run_file(paths).unlink(missing_ok=True)
        _flush_logs()
        server.stop()


def _flush_logs() -> None:
    """Send the run's logs before the temporary server goes away."""
    from prefect.logging.handlers import APILogWorker

    with contextlib.suppress(Exception):  # logs are a convenience; the result stands
        APILogWorker.drain_all(timeout=5)


def _now() -> str:
    return datetime.now(UTC).isoformat()


def run_flow(name: str, parameters: dict[str, Any], paths: HomePaths | None = None) -> Any:
    """Run agent flow ``name`` with ``parameters``; returns what the flow returned."""
    paths = paths or HomePaths.current()
    os.environ["AIOS_HOME"] = str(paths.root)
    with prefect_server(paths):
        from prefect import tags

        from deployments.definitions import TAG, spec_for

        flow = spec_for(name).load_flow()
        accepted = set(inspect.signature(flow.fn).parameters)
        unknown = sorted(set(parameters) - accepted)
        if unknown:
            raise InputError(
                f"aios-{name} has no parameter {', '.join(unknown)}; it takes: "
                f"{', '.join(sorted(accepted)) or 'none'}"
            )
        from prefect.exceptions import ParameterTypeError

        try:
            with tags(TAG):  # AIOS's own run: the flow-run health check leaves it out
                return flow(**parameters)
        except ParameterTypeError as exc:
            raise InputError(f"aios-{name}: {exc}") from None
