"""Keeping ``$AIOS_HOME`` in shape: log retention, a store checkpoint and daily snapshot, pruning
old remediation backups and the trash. Each step runs on its own; one ``maintenance.completed``
event says what every step did and which failed.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aios.actions.files_cleanup import purge_trash
from aios.bus import EventBus
from aios.config import AIOSConfig
from aios.durations import format_duration
from aios.errors import InputError
from aios.event import Event
from aios.home import HomePaths
from aios.locking import file_lock
from aios.log.retention import apply_retention
from aios.store import open_store
from aios.store.sync import read_state

SOURCE = "aios.maintenance"
SNAPSHOTS = "snapshots"  # under $AIOS_HOME/backups, beside the remediations' directories
_STAMP = "%Y%m%dT%H%M%SZ"
_STAMP_NAME = re.compile(r"^\d{8}T\d{6}Z$")
_REACTOR_SOURCE = "aios.reactor"
logger = logging.getLogger("aios.maintenance")

# (result, detail, summary): result is "done" or "skipped"; a step that raises is "failed".
_Outcome = tuple[str, dict[str, Any], str]


@dataclass(frozen=True)
class StepResult:
    """One step: ``done``, ``skipped`` or ``failed``, what it did, and that in a sentence."""

    step: str
    result: str
    detail: dict[str, Any]
    summary: str


@dataclass
class MaintenanceReport:
    """Every step's result and the events the run emitted."""

    steps: list[StepResult] = field(default_factory=list)
    emitted: list[Event] = field(default_factory=list)

    @property
    def failed_steps(self) -> list[str]:
        return [s.step for s in self.steps if s.result == "failed"]

    def step(self, name: str) -> StepResult:
        """The result of step ``name``; raises KeyError if it did not run."""
        return next(s for s in self.steps if s.step == name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "steps": {
                s.step: {"result": s.result, "summary": s.summary, **s.detail} for s in self.steps
            },
            "failed_steps": self.failed_steps,
        }

    def rows(self) -> list[tuple[str, str, str]]:
        """(step, result, detail) for a table."""
        return [(s.step, s.result, s.summary) for s in self.steps]


def run_maintenance(
    bus: EventBus, paths: HomePaths, config: AIOSConfig, now: datetime | None = None
) -> MaintenanceReport:
    """Run every maintenance step once; returns what each did.

    A step that fails (a locked or broken store, a full disk) becomes a
    ``maintenance.step_failed`` event and the others still run. Runs are serialised by
    ``$AIOS_HOME/maintenance.lock``. Raises InputError when ``bus`` writes to another home, and
    LogError when even the ``maintenance.completed`` event cannot be appended.
    """
    if bus.log.directory.resolve() != paths.events.resolve():
        raise InputError(f"the bus writes to {bus.log.directory}, not to {paths.events}")
    at = (now or datetime.now(UTC)).astimezone(UTC)
    settings = config.maintenance
    report = MaintenanceReport()

    def step(name: str, work: Callable[[], _Outcome]) -> None:
        try:
            result, detail, summary = work()
        except Exception as exc:  # recorded; the run goes on
            logger.exception("maintenance step %s failed", name)
            error = {"error_type": type(exc).__name__, "error": str(exc)[:2000]}
            report.steps.append(StepResult(name, "failed", error, f"{type(exc).__name__}: {exc}"))
            _record_failure(bus, report, name, error)
            return
        report.steps.append(StepResult(name, result, detail, summary))

    paths.root.mkdir(parents=True, exist_ok=True)
    with file_lock(paths.root / "maintenance.lock"):
        step(
            "log_retention", lambda: _log_retention(bus, paths, settings.log_retention, at, report)
        )
        step("checkpoint", lambda: _checkpoint(paths))
        step("snapshot", lambda: _snapshot(paths, settings.keep_snapshots, at))
        step("backups", lambda: _prune_backups(paths, settings.backup_retention, at))
        step("trash", lambda: _purge_trash(paths, config.reactor.trash_retention))
        summary = report.to_dict()
        report.emitted += bus.emit_many(
            [
                {
                    "type": "maintenance.completed",
                    "source": SOURCE,
                    "severity": "medium" if report.failed_steps else "info",
                    "payload": summary,
                }
            ]
        )
    return report


def _record_failure(
    bus: EventBus, report: MaintenanceReport, name: str, error: dict[str, Any]
) -> None:
    try:
        report.emitted += bus.emit_many(
            [
                {
                    "type": "maintenance.step_failed",
                    "source": SOURCE,
                    "severity": "medium",
                    "labels": {"step": name},
                    "payload": {"step": name, **error},
                }
            ]
        )
    except Exception:  # the log itself may be what failed; the report still has it
        logger.exception("cannot record the failure of maintenance step %s", name)


def _log_retention(
    bus: EventBus,
    paths: HomePaths,
    retention: timedelta | None,
    at: datetime,
    report: MaintenanceReport,
) -> _Outcome:
    if retention is None:
        return "skipped", {"retention": "off"}, "off: the log is kept whole"
    # The store lock is held throughout, so no rebuild can fall behind the log meanwhile.
    with open_store(paths) as con:
        applied = read_state(con)
        result = apply_retention(
            bus.log, retention=retention, applied_below=applied.segment, now=at
        )
    if result.appended is not None:
        appended = [*result.appended.notices, *result.appended.written]
        report.emitted += result.appended.written
        bus.dispatch(appended)
    anchor = result.anchor
    detail = {
        "retention": format_duration(retention),
        "removed_segments": result.removed,
        "removed_events": result.events,
        "removed_bytes": result.bytes,
        "resumed": result.resumed,
        "first_segment": anchor.first_segment if anchor else None,
        "total_removed_events": anchor.removed_events if anchor else 0,
    }
    if not result.removed:
        return "done", detail, f"nothing older than {format_duration(retention)} to remove"
    summary = (
        f"removed {len(result.removed)} segment(s), {result.events} event(s), "
        f"{_human(result.bytes)}"
    )
    if result.resumed:
        summary += f" ({len(result.resumed)} left by an interrupted run)"
    if anchor is not None:
        summary += f"; the log starts at {anchor.first_segment}"
    return "done", detail, summary


def _store_bytes(paths: HomePaths) -> int:
    """The database file and its write-ahead log, as they take up disk."""
    wal = paths.duckdb.with_name(paths.duckdb.name + ".wal")
    return sum(p.stat().st_size for p in (paths.duckdb, wal) if p.exists())


def _checkpoint(paths: HomePaths) -> _Outcome:
    with open_store(paths) as con:
        before = _store_bytes(paths)
        con.execute("CHECKPOINT")
        after = _store_bytes(paths)
    detail = {"bytes_before": before, "bytes_after": after}
    return "done", detail, f"{_human(before)} -> {_human(after)}"


def _snapshot(paths: HomePaths, keep: int, at: datetime) -> _Outcome:
    """Once a UTC day: a copy of the store and config.toml; then only the newest ``keep`` stay."""
    root = paths.backups / SNAPSHOTS
    root.mkdir(parents=True, exist_ok=True)
    for stale in root.glob(".*.tmp"):  # a copy a crashed run never finished
        shutil.rmtree(stale, ignore_errors=True)
    day = at.strftime("%Y%m%d")
    taken: str | None = None
    copied: list[str] = []
    size = 0
    if not any(p.name.startswith(day) for p in _snapshots(root)):
        taken = at.strftime(_STAMP)
        tmp = root / f".{taken}.tmp"
        tmp.mkdir()
        with file_lock(paths.duckdb_lock):
            with open_store(paths) as con:
                con.execute("CHECKPOINT")
            # Closed and still locked: no process changes the file while it is copied, and the
            # copy needs no write-ahead log (one is copied too should a caller hold it open).
            for source in (paths.duckdb, paths.duckdb.with_name(paths.duckdb.name + ".wal")):
                if source.exists():
                    size += _copy_durable(source, tmp / source.name)
                    copied.append(source.name)
        if paths.config.exists():
            size += _copy_durable(paths.config, tmp / paths.config.name)
            copied.append(paths.config.name)
        _fsync_dir(tmp)
        tmp.rename(root / taken)
        _fsync_dir(root)
    snapshots = _snapshots(root)
    removed = [p.name for p in snapshots[: max(len(snapshots) - keep, 0)]]
    for name in removed:
        shutil.rmtree(root / name)
    kept = [p.name for p in snapshots if p.name not in removed]
    detail = {"taken": taken, "files": copied, "bytes": size, "removed": removed, "kept": kept}
    if taken is None:
        return "skipped", detail, f"already taken today; {len(kept)} kept"
    summary = f"{taken}: {', '.join(copied)} ({_human(size)}); {len(kept)} kept"
    if removed:
        summary += f", {len(removed)} removed"
    return "done", detail, summary


def _snapshots(root: Path) -> list[Path]:
    """Finished snapshots, oldest first (their names sort by time)."""
    return sorted(p for p in root.iterdir() if p.is_dir() and _STAMP_NAME.match(p.name))


def _copy_durable(source: Path, target: Path) -> int:
    shutil.copy2(source, target)
    with target.open("rb") as handle:
        os.fsync(handle.fileno())
    return target.stat().st_size


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_REMEDIATIONS = """
SELECT rid,
       bool_or(type = 'remediation.finished') AS finished,
       coalesce(max(time) FILTER (WHERE type = 'remediation.finished') < ?, false) AS expired
FROM (
    SELECT json_extract_string(payload, '$.remediation_id') AS rid, type, time
    FROM events WHERE source = ?
)
WHERE rid IS NOT NULL
GROUP BY rid
"""


def _prune_backups(paths: HomePaths, retention: timedelta, at: datetime) -> _Outcome:
    """Remove backups of remediations finished longer than ``retention`` ago.

    Those of a remediation that never finished stay (it may still be rolled back); a directory
    no remediation in the store names goes once it has not changed for ``retention``.
    """
    root = paths.backups
    dirs = [p for p in root.iterdir() if p.is_dir() and not p.is_symlink()] if root.is_dir() else []
    dirs = [p for p in dirs if p.name != SNAPSHOTS and not p.name.startswith(".")]
    cutoff = at - retention
    if dirs:
        with open_store(paths) as con:
            rows = con.execute(_REMEDIATIONS, [cutoff, _REACTOR_SOURCE]).fetchall()
    else:
        rows = []
    known = {str(rid): (bool(finished), bool(expired)) for rid, finished, expired in rows}
    removed: list[str] = []
    unfinished: list[str] = []
    for directory in sorted(dirs):
        if directory.name in known:
            finished, expired = known[directory.name]
        else:  # no remediation names it: judged by when it last changed
            finished, expired = True, directory.stat().st_mtime < cutoff.timestamp()
        if not finished:
            unfinished.append(directory.name)
        elif expired:
            shutil.rmtree(directory)
            removed.append(directory.name)
    kept = len(dirs) - len(removed)
    detail = {
        "retention": format_duration(retention),
        "removed": removed,
        "kept": kept,
        "unfinished": unfinished,
    }
    return "done", detail, f"removed {len(removed)}, kept {kept} ({len(unfinished)} unfinished)"


def _purge_trash(paths: HomePaths, retention: timedelta) -> _Outcome:
    purged = purge_trash(paths.root / "trash", retention.total_seconds())
    detail = {"retention": format_duration(retention), "purged": purged}
    return "done", detail, f"purged {purged} remediation(s) older than {format_duration(retention)}"


def _human(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"
