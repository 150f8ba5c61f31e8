"""One line of the event log: the canonical event JSON, sealed into the hash chain.

A line is ``{<event fields>,"commit":C,"prev_hash":"P","hash":"H"}`` plus a newline, where:

- the event part is the canonical serialisation: orjson, keys sorted at every level, UTF-8, no
  whitespace, time in RFC 3339 UTC with a ``Z`` (microseconds unless they are zero);
- ``C`` is 1 on the last line of each appended batch (the group commit point), 0 before it;
- ``P`` is the previous line's hash (64 zeros at the very start of the log);
- ``H`` is SHA-256 of the line up to ``,"hash":`` with the closing ``}`` appended, so it covers
  the event, the commit flag and the previous hash.

The trailer has a fixed width, so checking a line needs no JSON parsing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from aios.errors import EventValidationError, LogIntegrityError
from aios.event import Event, Severity

GENESIS_HASH = "0" * 64
_HASH_KEY = b',"hash":"'
_PREV_KEY = b',"prev_hash":"'
_COMMIT_KEY = b',"commit":'
# ,"commit":C,"prev_hash":"<64>","hash":"<64>"}\n
HASH_TAIL = len(_HASH_KEY) + 64 + 3  # ,"hash":"<64>"}\n
PREV_TAIL = len(_PREV_KEY) + 64 + 1  # ,"prev_hash":"<64>"
COMMIT_TAIL = len(_COMMIT_KEY) + 1  # ,"commit":C
TRAILER = COMMIT_TAIL + PREV_TAIL + HASH_TAIL
_COMMIT_0 = _COMMIT_KEY + b"0" + _PREV_KEY
_COMMIT_1 = _COMMIT_KEY + b"1" + _PREV_KEY
MAX_EVENT_BYTES = 1 << 20


_DUMP_OPTIONS = orjson.OPT_SORT_KEYS | orjson.OPT_UTC_Z


def event_record(event: Event) -> dict[str, Any]:
    """The fields stored for an event (priority is derived, so it is not stored)."""
    return {
        "id": event.id,
        "time": event.time,
        "type": event.type,
        "source": event.source,
        "severity": event.severity,
        "labels": event.labels,
        "payload": event.payload,
        "correlation_id": event.correlation_id,
        "causation_id": event.causation_id,
    }


def canonical_body(event: Event) -> bytes:
    """The canonical serialisation of ``event``; raises EventValidationError if too large."""
    try:
        # The model's __dict__ holds exactly the stored fields (priority is computed).
        body = orjson.dumps(event.__dict__, option=_DUMP_OPTIONS)
    except TypeError as exc:  # e.g. a lone surrogate in a string: name the field it is in
        raise EventValidationError(str(exc), field=_unserialisable_field(event)) from None
    if len(body) > MAX_EVENT_BYTES:
        raise EventValidationError(
            f"event is {len(body)} bytes serialised; the limit is {MAX_EVENT_BYTES}",
            field="payload",
        )
    return body


def canonical_bodies(events: Sequence[Event]) -> list[bytes]:
    """``canonical_body`` of each event (one pass for the common case, the same errors)."""
    dumps, option = orjson.dumps, _DUMP_OPTIONS
    try:
        bodies = [dumps(event.__dict__, option=option) for event in events]
    except TypeError:
        return [canonical_body(event) for event in events]  # find and name the bad one
    if bodies and max(map(len, bodies)) > MAX_EVENT_BYTES:
        return [canonical_body(event) for event in events]
    return bodies


def _unserialisable_field(event: Event) -> str:
    for name, value in event.__dict__.items():
        try:
            orjson.dumps(value, option=_DUMP_OPTIONS)
        except TypeError:
            return name
    return "payload"


def seal(body: bytes, prev_hash: str, commit: bool) -> tuple[bytes, str]:
    """Chain ``body`` after ``prev_hash``: returns the log line (with newline) and its hash."""
    parts: list[bytes] = []
    prev = prev_hash.encode()
    digest = seal_all(parts, [body], prev) if commit else _seal_open(parts, body, prev)
    return b"".join(parts), digest.decode()


def _seal_open(parts: list[bytes], body: bytes, prev_hash: bytes) -> bytes:
    head = body[:-1]
    mid = _COMMIT_0 + prev_hash + b'"'
    hasher = hashlib.sha256(head)
    hasher.update(mid)
    hasher.update(b"}")
    digest = hasher.hexdigest().encode()
    parts += (head, mid, _HASH_KEY, digest, b'"}\n')
    return digest


def seal_all(parts: list[bytes], bodies: Sequence[bytes], prev_hash: bytes) -> bytes:
    """Seal ``bodies`` as one batch (the last line carries the commit flag) into ``parts``.

    Returns the last line's hash. The loop is written out because it runs for every event.
    """
    sha256 = hashlib.sha256
    last = len(bodies) - 1
    for index, body in enumerate(bodies):
        head = body[:-1]
        mid = (_COMMIT_1 if index == last else _COMMIT_0) + prev_hash + b'"'
        hasher = sha256(head)
        hasher.update(mid)
        hasher.update(b"}")
        prev_hash = hasher.hexdigest().encode()
        parts += (head, mid, _HASH_KEY, prev_hash, b'"}\n')
    return prev_hash


@dataclass(frozen=True, slots=True)
class LineCheck:
    """What checking one line found: its hashes and commit flag, or why it is broken."""

    ok: bool
    hash: str = ""
    prev_hash: str = ""
    commit: bool = False
    problem: str = ""


def check_line(line: bytes) -> LineCheck:
    """Check one line (with or without its newline) against its own hash; no JSON parsing."""
    if not line.endswith(b"\n"):
        line += b"\n"
    if len(line) < TRAILER + 2 or not line.startswith(b"{") or not line.endswith(b'"}\n'):
        return LineCheck(False, problem="not a sealed event line (malformed or cut short)")
    hash_at = len(line) - HASH_TAIL
    prev_at = hash_at - PREV_TAIL
    commit_at = prev_at - COMMIT_TAIL
    if (
        line[hash_at : hash_at + len(_HASH_KEY)] != _HASH_KEY
        or line[prev_at : prev_at + len(_PREV_KEY)] != _PREV_KEY
        or line[commit_at : commit_at + len(_COMMIT_KEY)] != _COMMIT_KEY
    ):
        return LineCheck(False, problem="the commit/prev_hash/hash trailer is malformed")
    flag = line[commit_at + len(_COMMIT_KEY) : prev_at]
    if flag not in (b"0", b"1"):
        return LineCheck(False, problem="the commit flag is neither 0 nor 1")
    stored = line[hash_at + len(_HASH_KEY) : hash_at + len(_HASH_KEY) + 64]
    prev = line[prev_at + len(_PREV_KEY) : prev_at + len(_PREV_KEY) + 64]
    try:
        stored_hash, prev_hash = stored.decode("ascii"), prev.decode("ascii")
    except UnicodeDecodeError:
        return LineCheck(False, problem="the hash fields are not hexadecimal")
    digest = hashlib.sha256(line[:hash_at] + b"}").hexdigest()
    if digest != stored_hash:
        return LineCheck(
            False,
            hash=stored_hash,
            prev_hash=prev_hash,
            commit=flag == b"1",
            problem="content does not match its hash (the line was modified)",
        )
    return LineCheck(True, hash=stored_hash, prev_hash=prev_hash, commit=flag == b"1")


def is_commit_line(line: bytes) -> bool:
    """Whether a complete line (ending in newline) closes its batch; cheap, trusts the layout."""
    pos = len(line) - HASH_TAIL - PREV_TAIL - 1
    return pos > 0 and line[pos : pos + 1] == b"1"


def line_hash(line: bytes) -> str:
    """The stored hash of a complete line, read from its fixed-width trailer."""
    end = len(line) - 3
    return line[end - 64 : end].decode("ascii")


def line_links(line: bytes) -> tuple[bytes, bytes]:
    """(prev_hash, hash) of a complete line, as stored; cheap, trusts the layout."""
    end = len(line) - 3
    prev_end = end - HASH_TAIL + 3 - 1
    return line[prev_end - 64 : prev_end], line[end - 64 : end]


def event_from_record(record: dict[str, Any]) -> Event:
    """Rebuild an Event from a parsed log line without re-validating it (the writer did)."""
    return Event.model_construct(
        id=record["id"],
        time=datetime.fromisoformat(record["time"]),
        type=record["type"],
        source=record["source"],
        severity=Severity(record["severity"]),
        labels=record["labels"],
        payload=record["payload"],
        correlation_id=record["correlation_id"],
        causation_id=record["causation_id"],
    )


def parse_line(
    line: bytes, *, segment: str | None = None, line_no: int | None = None, offset: int = -1
) -> Event:
    """The Event a log line holds; LogIntegrityError (naming ``segment`` and ``line_no`` or
    the byte ``offset`` when given) if the line holds no event.

    The reader trusts the writer's layout and does not check each hash, so a line changed on
    disk can reach here: it is reported as the log's fault, not as a crash in the reader.
    """
    try:
        return event_from_record(orjson.loads(line))
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        at = f"the line at byte {offset}" if offset >= 0 else "a line"
        raise LogIntegrityError(
            f"{at} does not hold an event ({type(exc).__name__}: {exc}); run `aios events verify`",
            segment=segment,
            line=line_no or None,
        ) from None
