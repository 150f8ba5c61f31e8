"""The DuckDB store: incremental, idempotent sync; projections; read-only SQL."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import duckdb
import pytest

import aios
from aios.errors import SQLRefusedError
from aios.home import HomePaths
from aios.store import SyncReport, open_store, register_projection
from aios.store.projections import unregister_projection
from aios.store.readonly_sql import run_readonly


def count(home: HomePaths, sql: str = "SELECT count(*) FROM events") -> int:
    with open_store(home) as con:
        return int(con.execute(sql).fetchall()[0][0])


def test_sync_brings_events_in_and_running_it_again_applies_nothing(home: HomePaths) -> None:
    aios.emit(
        "resource.high",
        {"resource": "cpu", "value": 93.5},
        labels={"host": "web1"},
        severity="high",
    )
    aios.emit_many([{"type": "task.completed", "payload": {"n": i}} for i in range(99)])
    first, second = SyncReport(), SyncReport()
    with open_store(home, report=first) as con:
        assert con.execute("SELECT count(*) FROM events").fetchall() == [(100,)]
    with open_store(home, report=second) as con:
        assert con.execute("SELECT count(*) FROM events").fetchall() == [(100,)]
        row = con.execute(
            "SELECT type, priority, payload->>'resource', (payload->>'value')::DOUBLE, "
            "labels->>'host', seq, segment, line FROM events ORDER BY seq LIMIT 1"
        ).fetchall()
    assert (first.events, second.events) == (100, 0)
    assert row == [("resource.high", "P1", "cpu", 93.5, "web1", 1, 1, 1)]


def test_the_store_follows_the_log_across_segments(home: HomePaths) -> None:
    (home.root / "config.toml").write_text("[log]\nsegment_max_bytes = 8192\n")
    for i in range(10):
        aios.emit_many([{"type": "test.event", "payload": {"i": i, "j": j}} for j in range(10)])
        assert count(home) == (i + 1) * 10
    with open_store(home) as con:
        segments = con.execute("SELECT count(DISTINCT segment) FROM events").fetchall()[0][0]
        seqs = [r[0] for r in con.execute("SELECT seq FROM events ORDER BY seq").fetchall()]
    assert segments > 3
    assert seqs == list(range(1, 101))


@dataclass
class TypeCounts:
    """A test projection: events per type, applied incrementally."""

    name: str = "type_counts"
    version: int = 1
    tables: tuple[str, ...] = ("type_counts",)
    calls: list[tuple[int, int]] = field(default_factory=list)

    def create(self, con: duckdb.DuckDBPyConnection) -> None:
        con.execute("CREATE TABLE IF NOT EXISTS type_counts (type VARCHAR PRIMARY KEY, n BIGINT)")

    def apply(self, con: duckdb.DuckDBPyConnection, after_seq: int, upto_seq: int) -> None:
        self.calls.append((after_seq, upto_seq))
        con.execute(
            "INSERT INTO type_counts SELECT type, count(*) FROM events "
            "WHERE seq > ? AND seq <= ? GROUP BY type "
            "ON CONFLICT (type) DO UPDATE SET n = n + excluded.n",
            [after_seq, upto_seq],
        )


@pytest.fixture
def type_counts() -> Iterator[TypeCounts]:
    projection = TypeCounts()
    register_projection(projection)
    yield projection
    unregister_projection(projection.name)


def counts_of(home: HomePaths) -> dict[str, int]:
    with open_store(home) as con:
        return dict(con.execute("SELECT type, n FROM type_counts").fetchall())


def test_a_registered_projection_is_applied_once_per_event(
    home: HomePaths, type_counts: TypeCounts
) -> None:
    aios.emit_many([{"type": "a.one"}, {"type": "a.one"}, {"type": "b.two"}])
    assert counts_of(home) == {"a.one": 2, "b.two": 1}
    assert counts_of(home) == {"a.one": 2, "b.two": 1}  # a second sync applies nothing
    aios.emit("b.two")
    assert counts_of(home) == {"a.one": 2, "b.two": 2}
    assert type_counts.calls == [(0, 3), (3, 4)]


def test_a_projection_added_later_catches_up_from_the_start(home: HomePaths) -> None:
    aios.emit_many([{"type": "a.one"}] * 5)
    assert count(home) == 5
    projection = TypeCounts()
    register_projection(projection)
    try:
        assert counts_of(home) == {"a.one": 5}
    finally:
        unregister_projection(projection.name)


def test_bumping_the_version_rebuilds_the_projection(
    home: HomePaths, type_counts: TypeCounts
) -> None:
    aios.emit_many([{"type": "a.one"}] * 4)
    assert counts_of(home) == {"a.one": 4}
    type_counts.version = 2
    assert counts_of(home) == {"a.one": 4}
    assert type_counts.calls[-1] == (0, 4)


def test_a_failing_projection_rolls_back_the_whole_chunk(
    home: HomePaths, type_counts: TypeCounts
) -> None:
    aios.emit_many([{"type": "a.one"}] * 3)

    def broken(con: duckdb.DuckDBPyConnection, after: int, upto: int) -> None:
        raise RuntimeError("projection bug")

    original = type_counts.apply
    type_counts.apply = broken  # type: ignore[method-assign,assignment]
    with pytest.raises(RuntimeError, match="projection bug"), open_store(home):
        pass
    type_counts.apply = original  # type: ignore[method-assign]
    # Neither the events nor the projection moved forward alone: the retry applies both once.
    assert counts_of(home) == {"a.one": 3}
    assert count(home) == 3


def test_a_replaced_log_makes_the_store_rebuild_from_it(home: HomePaths, tmp_path) -> None:
    aios.emit_many([{"type": "old.event"}] * 3)
    assert count(home) == 3
    aios.runtime.reset()
    shutil.rmtree(home.events)
    (home.root / "events").mkdir()
    home.events.with_name("events.head").unlink(missing_ok=True)
    aios.emit_many([{"type": "new.event"}] * 2)
    report = SyncReport()
    with open_store(home, report=report) as con:
        rows = con.execute("SELECT type, count(*) FROM events GROUP BY type").fetchall()
    assert report.rebuilt
    assert dict(rows) == {"new.event": 2}


def test_threads_sharing_the_store_never_collide(home: HomePaths) -> None:
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(20):
                aios.emit("thread.event", {"t": n, "i": i})
                with open_store(home) as con:
                    con.execute("SELECT count(*) FROM events").fetchall()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert count(home) == 80


def test_nested_use_in_one_thread_shares_the_connection(home: HomePaths) -> None:
    aios.emit("a.one")
    with open_store(home) as outer, open_store(home) as inner:
        assert inner is outer
        assert inner.execute("SELECT count(*) FROM events").fetchall() == [(1,)]


def test_readonly_sql_reads(home: HomePaths) -> None:
    aios.emit("resource.high", {"value": 91}, labels={"host": "db1"})
    result = run_readonly("SELECT type, labels->>'host' AS host, payload FROM events", home)
    assert result.columns == ["type", "host", "payload"]
    assert result.rows == [("resource.high", "db1", '{"value":91}')]
    described = run_readonly("DESCRIBE events", home)
    assert "payload" in [row[0] for row in described.rows]


@pytest.mark.parametrize(
    "sql",
    [
        "INSERT INTO events SELECT * FROM events",
        "DELETE FROM events",
        "UPDATE events SET type = 'x.y'",
        "DROP TABLE events",
        "CREATE TABLE t AS SELECT 1",
        "COPY events TO '{tmp}/out.csv'",
        "ATTACH '{tmp}/other.duckdb' AS other",
        "SELECT 1; DELETE FROM events",
        "SELECT * FROM read_csv('/etc/passwd')",
        "SET enable_external_access = true",
        "SELECT * FROM no_such_table",
        "SELEKT 1",
    ],
)
def test_readonly_sql_refuses_anything_else_and_changes_nothing(
    home: HomePaths, tmp_path, sql: str
) -> None:
    aios.emit("a.one")
    assert count(home) == 1
    with pytest.raises(SQLRefusedError):
        run_readonly(sql.format(tmp=tmp_path), home)
    assert count(home) == 1
    assert not (tmp_path / "out.csv").exists()
    assert not (tmp_path / "other.duckdb").exists()


def test_explain_analyze_is_refused(home: HomePaths) -> None:
    aios.emit("a.one")
    with pytest.raises(SQLRefusedError, match="EXPLAIN ANALYZE"):
        run_readonly("EXPLAIN ANALYZE CREATE TABLE t AS SELECT 1", home)


def test_a_runaway_query_is_stopped(home: HomePaths) -> None:
    aios.emit("a.one")
    with pytest.raises(SQLRefusedError, match="stopped after"):
        run_readonly("SELECT count(*) FROM range(1000000000000)", home, timeout=1)
    assert count(home) == 1  # the store is usable again


def test_asyncio_tasks_each_get_their_own_connection(home: HomePaths) -> None:
    import asyncio

    aios.emit("a.one")

    async def use(delay: float) -> int:
        with open_store(home) as con:
            await asyncio.sleep(delay)
            return int(con.execute("SELECT count(*) FROM events").fetchall()[0][0])

    async def both() -> list[int]:
        return list(await asyncio.gather(use(0.05), use(0.01)))

    assert asyncio.run(both()) == [1, 1]
