"""The inbox: other programs drop JSON-lines files of events into ``$AIOS_HOME/inbox/``.

Write a file under a name starting with ``.`` and rename it to ``*.jsonl`` when complete;
only complete ``*.jsonl`` files are taken. Each is consumed exactly once: it is claimed by a
rename into ``inbox/processing/``, its valid lines are appended as one group commit together
with an ``ingest.file_consumed`` event carrying the file's SHA-256 (so after a crash a file
already in the log is recognised and not ingested again), bad lines go to
``inbox/rejected/`` with the reason for each, and the file ends in ``inbox/done/``.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from aios.atomic import write_atomic
from aios.bus import EventBus, coerce_event
from aios.errors import EventValidationError
from aios.event import Event, check_outside_source
from aios.home import HomePaths
from aios.store import open_store

MAX_FILE_BYTES = 32 * 2**20
SOURCE = "aios.inbox"


@dataclass
class InboxReport:
    files: int = 0
    accepted: int = 0
    rejected: int = 0
    skipped_already_consumed: int = 0
    details: list[dict[str, Any]] = field(default_factory=list)


def inbox_dir(paths: HomePaths) -> Path:
    return paths.root / "inbox"


def _consumed(paths: HomePaths, digest: str) -> bool:
    with open_store(paths) as con:
        rows = con.execute(
            "SELECT 1 FROM events WHERE type = 'ingest.file_consumed' "
            "AND payload->>'sha256' = ? LIMIT 1",
            [digest],
        ).fetchall()
    return bool(rows)


def _parse(data: bytes, name: str) -> tuple[list[Event], list[dict[str, Any]]]:
    events, rejected = [], []
    for number, raw in enumerate(data.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            record = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            rejected.append(
                {
                    "line": number,
                    "reason": f"not JSON: {exc}",
                    "raw": raw.decode("utf-8", "replace")[:2000],
                }
            )
            continue
        if not isinstance(record, dict):
            rejected.append(
                {
                    "line": number,
                    "reason": "not a JSON object",
                    "raw": raw.decode("utf-8", "replace")[:2000],
                }
            )
            continue
        if "id" in record:
            rejected.append(
                {
                    "line": number,
                    "reason": "id: ids are assigned by AIOS",
                    "raw": raw.decode("utf-8", "replace")[:2000],
                }
            )
            continue
        record.setdefault("source", f"inbox:{name}"[:200])
        try:
            event = coerce_event(record)
            check_outside_source(event.source)
            events.append(event)
        except EventValidationError as exc:
            rejected.append(
                {"line": number, "reason": str(exc), "raw": raw.decode("utf-8", "replace")[:2000]}
            )
    return events, rejected


def ingest_inbox(bus: EventBus, paths: HomePaths) -> InboxReport:
    """Take every complete file in the inbox (and any a crash left half-done)."""
    root = inbox_dir(paths)
    processing, done, rejected_dir = root / "processing", root / "done", root / "rejected"
    for directory in (root, processing, done, rejected_dir):
        directory.mkdir(parents=True, exist_ok=True)
    for candidate in sorted(root.glob("*.jsonl")):
        if candidate.name.startswith(".") or not candidate.is_file():
            continue
        try:
            os.rename(candidate, processing / candidate.name)  # the claim: only one taker wins
        except FileNotFoundError:
            continue
    report = InboxReport()
    for claimed in sorted(processing.glob("*.jsonl")):
        report.files += 1
        data = claimed.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        if _consumed(paths, digest):
            report.skipped_already_consumed += 1
            os.replace(claimed, done / f"{stamp}-{claimed.name}")
            continue
        if len(data) > MAX_FILE_BYTES:
            events: list[Event] = []
            bad = [{"line": None, "reason": f"file larger than {MAX_FILE_BYTES} bytes"}]
        else:
            events, bad = _parse(data, claimed.name)
        if bad:
            lines = b"".join(orjson.dumps(entry) + b"\n" for entry in bad)
            write_atomic(rejected_dir / f"{stamp}-{claimed.name}.rejected.jsonl", lines)
        marker = Event(
            type="ingest.file_consumed",
            source=SOURCE,
            severity="medium" if bad else "info",
            labels={"file": claimed.name[:100]},
            payload={
                "file": claimed.name,
                "sha256": digest,
                "accepted": len(events),
                "rejected": len(bad),
                "rejected_file": f"rejected/{stamp}-{claimed.name}.rejected.jsonl" if bad else None,
            },
        )
        bus.publish([*events, marker])  # one group commit: all of the file, or none
        os.replace(claimed, done / f"{stamp}-{claimed.name}")
        report.accepted += len(events)
        report.rejected += len(bad)
        report.details.append(marker.payload)
    return report
