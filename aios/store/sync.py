"""Bringing DuckDB up to date with the event log, incrementally and idempotently.

The sync reads committed lines after the position it recorded, loads them through an Arrow
table (DuckDB parses the JSON, vectorised), and in one transaction inserts the rows into
``events``, moves the recorded position and applies every registered projection. Running it
twice applies nothing twice. If the log no longer holds the line the position points after
(the log was replaced or restored), the store is rebuilt from the log.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa

from aios.log.line_format import HASH_TAIL, check_line, line_hash
from aios.log.segments import Segment, list_segments
from aios.store.projections import Projection, registered_projections

logger = logging.getLogger("aios.store")

SCHEMA_VERSION = 1
CHUNK_BYTES = 64 * 1024 * 1024  # a whole default segment per transaction

EVENTS_DDL = """
CREATE TABLE IF NOT EXISTS events (
    seq            BIGINT      NOT NULL,  -- position in the log, from 1
    id             UUID        NOT NULL,
    time           TIMESTAMPTZ NOT NULL,
    type           VARCHAR     NOT NULL,
    source         VARCHAR     NOT NULL,
    severity       VARCHAR     NOT NULL,
    priority       VARCHAR     NOT NULL,
    labels         JSON        NOT NULL,
    payload        JSON        NOT NULL,
    correlation_id VARCHAR,
    causation_id   VARCHAR,
    segment        INTEGER     NOT NULL,  -- segment number of the log file
    line           INTEGER     NOT NULL   -- line in that segment, from 1
)
"""
STATE_DDL = """
CREATE TABLE IF NOT EXISTS _aios_sync (
    singleton      BOOLEAN PRIMARY KEY DEFAULT TRUE,
    schema_version INTEGER NOT NULL,
    segment        INTEGER NOT NULL,
    byte_offset    BIGINT  NOT NULL,
    line           INTEGER NOT NULL,
    last_hash      VARCHAR,
    seq            BIGINT  NOT NULL
);
CREATE TABLE IF NOT EXISTS _aios_projections (
    name        VARCHAR PRIMARY KEY,
    version     INTEGER NOT NULL,
    applied_seq BIGINT  NOT NULL
);
"""
_JSON_SHAPE = (
    '{"id":"VARCHAR","time":"VARCHAR","type":"VARCHAR","source":"VARCHAR",'
    '"severity":"VARCHAR","labels":"JSON","payload":"JSON","correlation_id":"VARCHAR",'
    '"causation_id":"VARCHAR"}'
)
# Parse each line once into a temporary table (referring to one json_transform result from
# several columns would parse the line again for each), then cast and insert.
_PARSE = f"""
CREATE OR REPLACE TEMP TABLE _aios_parsed AS
SELECT seq, segment, line,
       unnest(CASE WHEN json_valid(text) THEN json_transform(text, '{_JSON_SHAPE}') END)
FROM _aios_staged
"""
_INSERT = """
INSERT INTO events
SELECT * FROM (
    SELECT seq, TRY_CAST(id AS UUID) AS id, TRY_CAST(time AS TIMESTAMPTZ) AS time, type, source,
           severity,
           CASE severity WHEN 'critical' THEN 'P0' WHEN 'high' THEN 'P1'
                         WHEN 'medium' THEN 'P2' ELSE 'P3' END AS priority,
           labels, payload, correlation_id, causation_id, segment, line
    FROM _aios_parsed
)
WHERE id IS NOT NULL AND time IS NOT NULL AND type IS NOT NULL AND source IS NOT NULL
  AND severity IS NOT NULL AND labels IS NOT NULL AND payload IS NOT NULL
"""


@dataclass
class SyncState:
    segment: int = 0
    byte_offset: int = 0
    line: int = 1
    last_hash: str | None = None
    seq: int = 0


@dataclass
class SyncReport:
    """What one sync did."""

    events: int = 0
    skipped_lines: int = 0
    rebuilt: bool = False
    projections_applied: dict[str, int] = field(default_factory=dict)
    seq: int = 0


def ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(EVENTS_DDL)
    con.execute(STATE_DDL)
    row = con.execute("SELECT schema_version FROM _aios_sync").fetchall()
    if not row:
        con.execute("INSERT INTO _aios_sync VALUES (TRUE, ?, 0, 0, 1, NULL, 0)", [SCHEMA_VERSION])
    elif row[0][0] != SCHEMA_VERSION:
        logger.warning("store schema %s -> %s: rebuilding from the log", row[0][0], SCHEMA_VERSION)
        con.execute("DROP TABLE events")
        con.execute(EVENTS_DDL)
        _reset_state(con)


def _reset_state(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(
        "UPDATE _aios_sync SET schema_version = ?, segment = 0, byte_offset = 0, line = 1, "
        "last_hash = NULL, seq = 0",
        [SCHEMA_VERSION],
    )


def read_state(con: duckdb.DuckDBPyConnection) -> SyncState:
    segment, offset, line, last_hash, seq = con.execute(
        "SELECT segment, byte_offset, line, last_hash, seq FROM _aios_sync"
    ).fetchall()[0]
    return SyncState(segment, offset, line, last_hash, seq)


def rebuild(con: duckdb.DuckDBPyConnection, names: list[str] | None = None) -> None:
    """Forget ``names`` (projections) or everything, so the next sync rebuilds it from the log."""
    con.execute("BEGIN")
    try:
        if names is None:
            con.execute("DELETE FROM events")
            _reset_state(con)
            con.execute("UPDATE _aios_projections SET applied_seq = 0, version = -1")
        else:
            con.execute(
                "UPDATE _aios_projections SET applied_seq = 0, version = -1 WHERE name IN "
                f"({', '.join('?' for _ in names)})",
                names,
            )
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise


def sync(
    con: duckdb.DuckDBPyConnection,
    log_dir: Path,
    *,
    progress: Callable[[int], None] | None = None,
) -> SyncReport:
    """Apply the committed log lines DuckDB has not seen, and bring projections level."""
    ensure_schema(con)
    report = SyncReport()
    projections = registered_projections()
    _prepare_projections(con, projections)
    segments = list_segments(log_dir)
    state = read_state(con)
    if not _position_valid(state, segments):
        logger.warning("the event log no longer matches the store; rebuilding from the log")
        rebuild(con)
        _prepare_projections(con, projections)
        state = read_state(con)
        report.rebuilt = True
    for segment in segments:
        if segment.seq < state.segment:
            continue
        if segment.seq > state.segment:
            state = SyncState(segment.seq, 0, 1, state.last_hash, state.seq)
        while True:
            chunk = _read_committed(segment.path, state.byte_offset)
            if chunk is None:
                break
            state = _apply_chunk(con, segment, state, chunk, projections, report)
            if progress is not None:
                progress(report.events)
    _catch_up(con, projections, state.seq, report)
    report.seq = state.seq
    return report


def _position_valid(state: SyncState, segments: list[Segment]) -> bool:
    """Whether the line the store last applied is still in the log where it was."""
    if state.seq == 0:
        return True
    segment = next((s for s in segments if s.seq == state.segment), None)
    if segment is None:
        # Retention may remove old segments, never the newest one.
        return bool(segments) and state.segment < segments[0].seq
    if state.byte_offset < HASH_TAIL:
        return state.byte_offset == 0
    try:
        with segment.path.open("rb") as handle:
            handle.seek(state.byte_offset - HASH_TAIL)
            trailer = handle.read(HASH_TAIL)
    except OSError:
        return False
    return trailer.endswith(b"\n") and line_hash(trailer) == state.last_hash


def _read_committed(path: Path, offset: int) -> bytes | None:
    """The committed lines of ``path`` from ``offset`` (whole batches), or None if none."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        size = os.fstat(fd).st_size
        want = CHUNK_BYTES
        while offset < size:
            data = os.pread(fd, min(want, size - offset), offset)
            end = _last_commit_end(data)
            if end:
                return data[:end]
            if offset + len(data) >= size:
                return None  # an unfinished batch (or damage) at the end; nothing new yet
            want *= 4
        return None
    finally:
        os.close(fd)


def _last_commit_end(data: bytes) -> int:
    """Bytes of ``data`` up to and including its last intact commit line (0 if none)."""
    pos = data.rfind(b"\n") + 1
    while pos > 0:
        start = data.rfind(b"\n", 0, pos - 1) + 1
        check = check_line(data[start:pos])
        if check.ok and check.commit:
            return pos
        pos = start
    return 0


def _apply_chunk(
    con: duckdb.DuckDBPyConnection,
    segment: Segment,
    state: SyncState,
    chunk: bytes,
    projections: list[Projection],
    report: SyncReport,
) -> SyncState:
    text = _line_array(chunk)
    count = len(text)
    first_seq = state.seq + 1
    staged = pa.table(
        {
            "seq": pa.array(np.arange(first_seq, first_seq + count, dtype=np.int64)),
            "segment": pa.array(np.full(count, segment.seq, dtype=np.int32)),
            "line": pa.array(np.arange(state.line, state.line + count, dtype=np.int32)),
            "text": text,
        }
    )
    new_state = SyncState(
        segment.seq,
        state.byte_offset + len(chunk),
        state.line + count,
        line_hash(chunk[chunk.rfind(b"\n", 0, len(chunk) - 1) + 1 :]),
        state.seq + count,
    )
    con.execute("BEGIN")
    try:
        con.register("_aios_staged", staged)
        con.execute(_PARSE)
        inserted = int(con.execute(_INSERT).fetchall()[0][0])
        con.execute("DROP TABLE _aios_parsed")
        con.unregister("_aios_staged")
        con.execute(
            "UPDATE _aios_sync SET segment = ?, byte_offset = ?, line = ?, last_hash = ?, seq = ?",
            [
                new_state.segment,
                new_state.byte_offset,
                new_state.line,
                new_state.last_hash,
                new_state.seq,
            ],
        )
        _apply_projections(con, projections, new_state.seq, report)
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    report.events += inserted
    report.skipped_lines += count - inserted
    if count != inserted:
        logger.warning("%s: %d lines did not parse as events", segment.name, count - inserted)
    return new_state


def _line_array(chunk: bytes) -> pa.StringArray:
    """The lines of ``chunk`` as an Arrow string array sharing its buffer (newlines kept)."""
    try:
        chunk.decode("utf-8")
    except UnicodeDecodeError:  # damaged bytes: replace them so the rest still loads
        chunk = chunk.decode("utf-8", errors="replace").encode("utf-8")
    ends = np.flatnonzero(np.frombuffer(chunk, dtype=np.uint8) == 10) + 1
    offsets = np.concatenate(([0], ends)).astype(np.int32 if len(chunk) < 2**31 else np.int64)
    kind = pa.string() if offsets.dtype == np.int32 else pa.large_string()
    return pa.Array.from_buffers(
        kind, len(ends), [None, pa.py_buffer(offsets), pa.py_buffer(chunk)]
    )


def _prepare_projections(con: duckdb.DuckDBPyConnection, projections: list[Projection]) -> None:
    """Create projection tables; rebuild those whose version changed."""
    known = dict(con.execute("SELECT name, version FROM _aios_projections").fetchall())
    for projection in projections:
        version = known.get(projection.name)
        if version == projection.version:
            continue
        con.execute("BEGIN")
        try:
            if version is not None:
                for table in projection.tables:
                    con.execute(f'DROP TABLE IF EXISTS "{table}"')
            projection.create(con)
            con.execute(
                "INSERT OR REPLACE INTO _aios_projections VALUES (?, ?, 0)",
                [projection.name, projection.version],
            )
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise


def _apply_projections(
    con: duckdb.DuckDBPyConnection, projections: list[Projection], upto: int, report: SyncReport
) -> None:
    """Apply each projection from where it stopped up to ``upto`` (inside a transaction)."""
    applied = dict(con.execute("SELECT name, applied_seq FROM _aios_projections").fetchall())
    for projection in projections:
        after = int(applied.get(projection.name, 0))
        if after >= upto:
            continue
        projection.apply(con, after, upto)
        con.execute(
            "UPDATE _aios_projections SET applied_seq = ? WHERE name = ?", [upto, projection.name]
        )
        report.projections_applied[projection.name] = (
            report.projections_applied.get(projection.name, 0) + upto - after
        )


def _catch_up(
    con: duckdb.DuckDBPyConnection, projections: list[Projection], upto: int, report: SyncReport
) -> None:
    if not projections:
        return
    con.execute("BEGIN")
    try:
        _apply_projections(con, projections, upto, report)
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
