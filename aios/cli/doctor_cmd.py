"""``aios doctor``: check the environment; say what is missing and how to fix it."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import urllib.request
from dataclasses import asdict, dataclass
from importlib import metadata
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from aios.cli.output import console, print_json
from aios.errors import AIOSError
from aios.home import HomePaths

PINNED = {"prefect": "3.8.8"}


@dataclass
class Check:
    name: str
    status: str  # ok | warn | fail
    detail: str
    fix: str = ""


def _python() -> Check:
    ok = sys.version_info >= (3, 11)
    return Check(
        "python",
        "ok" if ok else "fail",
        sys.version.split()[0],
        "" if ok else "install Python 3.11+",
    )


def _home(paths: HomePaths) -> Check:
    if not paths.root.exists():
        return Check("AIOS_HOME", "fail", f"{paths.root} does not exist", "run `aios init`")
    if not os.access(paths.root, os.W_OK):
        return Check("AIOS_HOME", "fail", f"{paths.root} is not writable", "fix its permissions")
    return Check("AIOS_HOME", "ok", str(paths.root))


def _config(paths: HomePaths) -> Check:
    from aios.config import load_config

    if not paths.config.exists():
        return Check(
            "config", "warn", f"{paths.config} missing (defaults apply)", "run `aios init`"
        )
    try:
        load_config(paths)
    except AIOSError as exc:
        return Check("config", "fail", str(exc), "correct the named key")
    return Check("config", "ok", str(paths.config))


def _fsync(paths: HomePaths) -> Check:
    if not paths.root.exists():
        return Check("durable writes", "fail", "no AIOS_HOME to test in", "run `aios init`")
    try:
        with tempfile.NamedTemporaryFile(dir=paths.root, prefix=".doctor-") as handle:
            handle.write(b"x")
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as exc:
        return Check("durable writes", "fail", f"fsync failed: {exc}", "use a local filesystem")
    return Check("durable writes", "ok", "fsync works in AIOS_HOME")


def _disk(paths: HomePaths) -> Check:
    where = paths.root if paths.root.exists() else paths.root.parent
    while not where.exists():
        where = where.parent
    free = shutil.disk_usage(where).free
    gib = free / 2**30
    if gib < 1:
        return Check("disk", "warn", f"{gib:.2f} GiB free under {where}", "free some space")
    return Check("disk", "ok", f"{gib:.1f} GiB free")


def _log(paths: HomePaths) -> Check:
    from aios.log import EventLog

    if not paths.events.exists():
        return Check("event log", "warn", "no events yet", "`aios emit test.hello` writes one")
    report = EventLog(paths.events).verify()
    if report.ok:
        return Check(
            "event log", "ok", f"intact: {report.events} events, {report.segments} segments"
        )
    return Check("event log", "fail", str(report.first_break), "see `aios events verify`")


def _store(paths: HomePaths) -> Check:
    if not paths.root.exists():
        return Check("DuckDB store", "fail", "no AIOS_HOME", "run `aios init`")
    try:
        from aios.store import open_store

        with open_store(paths) as con:
            rows = con.execute("SELECT count(*) FROM events").fetchall()
    except Exception as exc:
        return Check("DuckDB store", "fail", f"{type(exc).__name__}: {exc}", "see the message")
    return Check("DuckDB store", "ok", f"{paths.duckdb}: {rows[0][0]} events projected")


def _playbooks(paths: HomePaths) -> Check:
    from aios.config import load_config
    from aios.playbooks.loader import load_playbooks

    try:
        config = load_config(paths)
    except AIOSError as exc:
        return Check("playbooks", "fail", f"config: {exc}", "correct config.toml")
    result = load_playbooks(config.reactor.playbook_dirs, strict=False)
    if result.problems:
        more = f" (+{len(result.problems) - 1} more)" if len(result.problems) > 1 else ""
        return Check(
            "playbooks", "fail", f"{result.problems[0]}{more}", "see `aios playbooks validate`"
        )
    roots = config.reactor.allowed_roots
    detail = f"{len(result.playbooks)} valid; allowed roots: {', '.join(map(str, roots)) or 'none'}"
    if not roots:
        return Check("playbooks", "warn", detail, "set [reactor] allowed_roots for file actions")
    return Check("playbooks", "ok", detail)


def _packages() -> list[Check]:
    checks = []
    for name in ("duckdb", "pydantic", "prefect"):
        try:
            version = metadata.version(name)
        except metadata.PackageNotFoundError:
            checks.append(
                Check(name, "fail", "not installed", "run `make run` or `pip install -e .`")
            )
            continue
        pin = PINNED.get(name)
        if pin and version != pin:
            checks.append(
                Check(
                    name,
                    "warn",
                    f"{version} (AIOS is tested with {pin})",
                    f"pip install {name}=={pin}",
                )
            )
        else:
            checks.append(Check(name, "ok", version))
    return checks


def _prefect_api() -> Check:
    url = os.environ.get("PREFECT_API_URL", "")
    if not url:
        return Check("Prefect API", "ok", "PREFECT_API_URL unset: `aios up` starts a local server")
    try:
        with urllib.request.urlopen(url.rstrip("/") + "/health", timeout=3) as response:
            healthy = response.status == 200
    except OSError as exc:
        return Check(
            "Prefect API",
            "fail",
            f"{url} unreachable: {exc}",
            "start the server or unset PREFECT_API_URL",
        )
    return Check("Prefect API", "ok" if healthy else "fail", url)


def doctor(
    as_json: Annotated[bool, typer.Option("--json", help="Print the checks as JSON.")] = False,
) -> None:
    """Check the environment; exit 1 if anything is missing, saying how to fix it."""
    paths = HomePaths.current()
    checks = [_python(), _home(paths), _config(paths), _fsync(paths), _disk(paths)]
    checks += [_log(paths), _store(paths), _playbooks(paths), *_packages(), _prefect_api()]
    failed = any(c.status == "fail" for c in checks)
    if as_json:
        print_json({"ok": not failed, "checks": [asdict(c) for c in checks]})
    else:
        table = Table(title="aios doctor")
        for column in ("check", "status", "detail", "fix"):
            table.add_column(column)
        style = {"ok": "green", "warn": "yellow", "fail": "bold red"}
        for c in checks:
            table.add_row(
                Text(c.name), Text(c.status, style=style[c.status]), Text(c.detail), Text(c.fix)
            )
        console.print(table)
    raise typer.Exit(1 if failed else 0)
