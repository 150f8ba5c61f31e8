"""The inbox: other programs drop JSON-lines files of events into ``$AIOS_HOME/inbox/``.

Write a file under a name starting with ``.`` and rename it to ``*.jsonl`` when complete;
only complete ``*.jsonl`` files are taken. Each is consumed exactly once:

- it is claimed by a rename to a name no other file can have (``processing/<claim>-name``),
  so a new file of the same name never overwrites one being processed;
- only one process works on the inbox at a time (an inter-process lock; a second monitor
  skips it);
- its valid lines are appended as one group commit together with an ``ingest.file_consumed``
  event naming the claim, so after a crash a claim already in the log is not ingested again,
  while a new file with the same bytes is;
- bad lines go to ``inbox/rejected/<claim>-name.rejected.jsonl`` (owner-only) with the reason
  for each; the file ends in ``inbox/done/``.

Symlinks are never followed (a link dropped in the inbox is rejected, not read), and a file
over the size limit is rejected without being read.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from aios.atomic import write_atomic
from aios.bus import EventBus, coerce_event
from aios.errors import EventValidationError
from aios.event import Event, check_outside_source, new_event_id
from aios.home import HomePaths
from aios.locking import file_lock
from aios.log.line_format import canonical_body
from aios.store import open_store

MAX_FILE_BYTES = 32 * 2**20
SOURCE = "aios.inbox"
_BOM = b"\xef\xbb\xbf"
_CLAIM = 36  # the length of a uuid


@dataclass
class InboxReport:
    files: int = 0
    accepted: int = 0
    rejected: int = 0
    skipped_already_consumed: int = 0
    busy: bool = False
    details: list[dict[str, Any]] = field(default_factory=list)


def inbox_dir(paths: HomePaths) -> Path:
    return paths.root / "inbox"


def _consumed(paths: HomePaths, claim: str) -> bool:
    with open_store(paths) as con:
        rows = con.execute(
            "SELECT 1 FROM events WHERE type = 'ingest.file_consumed' AND source = ? "
            "AND payload->>'claim' = ? LIMIT 1",
            [SOURCE, claim],
        ).fetchall()
    return bool(rows)


def _raw(line: bytes) -> str:
    return line.decode("utf-8", "replace")[:2000]


def _parse(data: bytes, name: str) -> tuple[list[Event], list[dict[str, Any]]]:
    events, rejected = [], []
    data = data.removeprefix(_BOM)
    for number, raw in enumerate(data.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            record = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            rejected.append({"line": number, "reason": f"not JSON: {exc}", "raw": _raw(raw)})
            continue
        if not isinstance(record, dict):
            rejected.append({"line": number, "reason": "not a JSON object", "raw": _raw(raw)})
            continue
        if "id" in record:
            rejected.append(
                {"line": number, "reason": "id: ids are assigned by AIOS", "raw": _raw(raw)}
            )
            continue
        record.setdefault("source", f"inbox:{name}"[:200])
        try:
            event = coerce_event(record)
            check_outside_source(event.source)
            # Too large for the log: caught here, or the whole file would fail to append on
            # every pass and stay in processing/ for ever.
            canonical_body(event)
            events.append(event)
        except EventValidationError as exc:
            rejected.append({"line": number, "reason": str(exc), "raw": _raw(raw)})
    return events, rejected


def _read(path: Path) -> bytes | str:
    """The file's bytes, or why it was not read (a symlink, not a file, too large)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "a symlink: symlinks are never followed"
        return f"unreadable: {exc.strerror}"
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return "not a regular file"
        if info.st_size > MAX_FILE_BYTES:
            return f"larger than {MAX_FILE_BYTES} bytes"
        chunks = []
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def ingest_inbox(bus: EventBus, paths: HomePaths) -> InboxReport:
    """Take every complete file in the inbox, and any a crashed run left half-done."""
    root = inbox_dir(paths)
    processing, done, rejected_dir = root / "processing", root / "done", root / "rejected"
    for directory in (root, processing, done, rejected_dir):
        directory.mkdir(parents=True, exist_ok=True)
    rejected_dir.chmod(0o700)
    report = InboxReport()
    lock = file_lock(root / ".lock")
    if not lock.try_acquire():
        report.busy = True  # another monitor is on it
        return report
    try:
        for candidate in sorted(root.glob("*.jsonl")):
            if candidate.name.startswith("."):
                continue
            try:  # the claim: a unique name, so nothing is ever overwritten
                os.rename(candidate, processing / f"{new_event_id()}-{candidate.name}")
            except FileNotFoundError:
                continue
        for claimed in sorted(processing.glob("*.jsonl")):
            _ingest_one(bus, paths, claimed, done, rejected_dir, report)
    finally:
        lock.release()
    return report


def _ingest_one(
    bus: EventBus,
    paths: HomePaths,
    claimed: Path,
    done: Path,
    rejected_dir: Path,
    report: InboxReport,
) -> None:
    claim, name = claimed.name[:_CLAIM], claimed.name[_CLAIM + 1 :]  # "<uuid>-<name>"
    # A name that is not UTF-8 arrives with surrogates, which the log cannot store: the
    # events record it with U+FFFD in their place.
    name = os.fsencode(name).decode("utf-8", "replace")
    report.files += 1
    if _consumed(paths, claim):
        report.skipped_already_consumed += 1
        os.replace(claimed, done / claimed.name)
        return
    data = _read(claimed)
    if isinstance(data, str):
        events: list[Event] = []
        bad = [{"line": None, "reason": data}]
    else:
        events, bad = _parse(data, name)
    rejected_name = f"{claimed.name}.rejected.jsonl"
    if bad:
        lines = b"".join(orjson.dumps(entry) + b"\n" for entry in bad)
        write_atomic(rejected_dir / rejected_name, lines, mode=0o600)
    marker = Event(
        type="ingest.file_consumed",
        source=SOURCE,
        severity="medium" if bad else "info",
        labels={"file": name[:100]},
        payload={
            "file": name,
            "claim": claim,
            "accepted": len(events),
            "rejected": len(bad),
            "rejected_file": f"rejected/{claim}-{name}.rejected.jsonl" if bad else None,
        },
    )
    bus.publish([*events, marker])  # one group commit: all of the file, or none
    os.replace(claimed, done / claimed.name)
    report.accepted += len(events)
    report.rejected += len(bad)
    report.details.append(marker.payload)
