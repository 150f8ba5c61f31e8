"""The `aios` command as a user runs it: the installed entry point, in subprocesses.

Events a test only needs to *read* are seeded in-process through ``EventLog`` (fast); everything
under test goes through ``run_aios``. Exit codes: 0 ok, 1 a check failed, 2 bad input or usage.
"""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import tomllib
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import duckdb
import pytest

import aios
from aios.event import Event
from aios.home import HomePaths
from aios.log import EventLog
from aios.log.segments import list_segments
from aios.log.writer import DEFAULT_SEGMENT_MAX_BYTES
from tests.conftest import run_aios

Result = subprocess.CompletedProcess[str]

OLD = datetime(2020, 1, 1, tzinfo=UTC)
MIDDLE = datetime(2024, 6, 1, tzinfo=UTC)

HANDLERS_MODULE = '''\
"""Replay handlers for the CLI tests: each delivery appends the event id to $REPLAY_RECORD."""

import os
from pathlib import Path


def record(event):
    with Path(os.environ["REPLAY_RECORD"]).open("a") as handle:
        handle.write(event.id + "\\n")


def fail_on_boom(event):
    record(event)
    if event.payload.get("boom"):
        raise RuntimeError("boom in handler")
'''


# --------------------------------------------------------------------------- helpers
def flat(text: str) -> str:
    """Output with every run of whitespace made one space (rich may wrap long lines)."""
    return " ".join(text.split())


def args_id(value: object) -> str | None:
    """A readable test id for a list of command-line arguments (default id otherwise)."""
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return " ".join(value) or "(no arguments)"
    return None


def ev(event_type: str, **fields: Any) -> Event:
    return Event.create(type=event_type, **fields)


def seed(
    home: HomePaths,
    events: Sequence[Event],
    *,
    segment_max_bytes: int = DEFAULT_SEGMENT_MAX_BYTES,
) -> list[Event]:
    """Append ``events`` in-process, one batch each (so small segments rotate); return them."""
    log = EventLog(home.events, segment_max_bytes=segment_max_bytes)
    try:
        return [log.append([event]).written[0] for event in events]
    finally:
        log.close()


def logged(home: HomePaths) -> list[Event]:
    """Every committed event in the log of ``home``, oldest first."""
    log = EventLog(home.events)
    try:
        return list(log.events())
    finally:
        log.close()


def ids(events: Sequence[Event]) -> list[str]:
    return [event.id for event in events]


def json_out(result: Result) -> Any:
    assert result.returncode in (0, 1), result.stderr
    return json.loads(result.stdout)


def assert_exit(result: Result, code: int) -> None:
    assert result.returncode == code, (
        f"exit {result.returncode}, wanted {code}\nstdout: {result.stdout}\nstderr: {result.stderr}"
    )


def tamper(segment: Path, line: int) -> None:
    """Change one byte inside ``line`` (from 1) of ``segment``: the first letter of the source."""
    lines = segment.read_bytes().split(b"\n")
    body = bytearray(lines[line - 1])
    at = body.index(b'"source":"') + len(b'"source":"')
    body[at : at + 1] = bytes(body[at : at + 1]).swapcase()
    lines[line - 1] = bytes(body)
    segment.write_bytes(b"\n".join(lines))


def store_state(home: HomePaths) -> tuple[int, set[str]]:
    """(rows in events, table names) read straight from the DuckDB file."""
    con = duckdb.connect(str(home.duckdb), read_only=True)
    try:
        count = con.execute("SELECT count(*) FROM events").fetchall()[0][0]
        tables = {row[0] for row in con.execute("SHOW TABLES").fetchall()}
    finally:
        con.close()
    return int(count), tables


@pytest.fixture
def handlers(tmp_path: Path) -> dict[str, str]:
    """Env for run_aios: a handler module on PYTHONPATH and the file it records deliveries in."""
    module_dir = tmp_path / "mods"
    module_dir.mkdir()
    (module_dir / "cli_test_handlers.py").write_text(HANDLERS_MODULE)
    path = [str(module_dir), *filter(None, [os.environ.get("PYTHONPATH")])]
    return {"PYTHONPATH": os.pathsep.join(path), "REPLAY_RECORD": str(tmp_path / "record.txt")}


def recorded(env: dict[str, str]) -> list[str] | None:
    """The ids delivered to the test handlers, or None when nothing was delivered at all."""
    path = Path(env["REPLAY_RECORD"])
    return path.read_text().split() if path.exists() else None


# ------------------------------------------------------------------------------ init
def test_init_writes_a_commented_config_and_keeps_it_on_a_second_run(home: HomePaths) -> None:
    first = run_aios("init", home=home)
    assert_exit(first, 0)
    text = home.config.read_text()
    assert text.lstrip().startswith("#")
    assert tomllib.loads(text)["log"]["segment_max_bytes"] > 0
    assert home.events.is_dir()
    assert str(home.config) in flat(first.stdout)

    before = home.config.read_bytes()
    second = run_aios("init", home=home)
    assert_exit(second, 0)
    assert home.config.read_bytes() == before
    assert "kept existing" in second.stdout


def test_init_creates_a_missing_home_directory(home: HomePaths, tmp_path: Path) -> None:
    root = tmp_path / "not" / "yet" / "there"
    result = run_aios("init", home=home, env={"AIOS_HOME": str(root)})
    assert_exit(result, 0)
    assert (root / "config.toml").is_file()
    assert (root / "events").is_dir()
    for made in (root, root / "events"):  # other users cannot read the log
        assert made.stat().st_mode & 0o777 == 0o700, made
    emitted = tmp_path / "first-by-emit"
    assert_exit(run_aios("emit", "a.b", home=home, env={"AIOS_HOME": str(emitted)}), 0)
    assert emitted.stat().st_mode & 0o777 == 0o700
    assert (emitted / "events").stat().st_mode & 0o777 == 0o700


@pytest.mark.parametrize(
    ("content", "line", "words"),
    [
        ("[log]\nsegment_max_bytes = 67108864\n\n[bus\n", 4, "not valid TOML"),
        ("# comment\n[log]\nsegment_max_bytes = 10\n", 3, "log.segment_max_bytes"),
        ("[bus]\nsubscribers = []\n[log]\nbogus = 1\n", 4, "log.bogus: unknown key"),
    ],
    ids=["syntax", "bad-value", "unknown-key"],
)
def test_init_reports_a_broken_config_by_file_and_line_and_leaves_it(
    home: HomePaths, content: str, line: int, words: str
) -> None:
    home.config.write_text(content)
    result = run_aios("init", home=home)
    assert_exit(result, 2)
    assert f"{home.config}:{line}" in result.stderr
    assert words in result.stderr
    assert home.config.read_text() == content


def test_init_names_the_line_when_the_section_header_has_a_comment(home: HomePaths) -> None:
    home.config.write_text("[log]  # rotation\nsegment_max_bytes = 10\n")
    result = run_aios("init", home=home)
    assert_exit(result, 2)
    assert f"{home.config}:2" in result.stderr


# ------------------------------------------------------------------------------ emit
def test_emit_prints_the_new_id_and_the_event_is_in_the_log(home: HomePaths) -> None:
    result = run_aios("emit", "test.hello", home=home)
    assert_exit(result, 0)
    event_id = result.stdout.strip()
    assert uuid.UUID(event_id).version == 7
    [event] = logged(home)
    assert (event.id, event.type, event.source, event.severity) == (
        event_id,
        "test.hello",
        "cli",
        "info",
    )


@pytest.mark.parametrize(
    ("severity", "priority"),
    [("critical", "P0"), ("high", "P1"), ("medium", "P2"), ("low", "P3"), ("info", "P3")],
)
def test_emit_json_prints_the_whole_event_with_its_priority(
    home: HomePaths, severity: str, priority: str
) -> None:
    printed = json_out(run_aios("emit", "test.sev", "--severity", severity, "--json", home=home))
    assert (printed["severity"], printed["priority"]) == (severity, priority)
    assert [e.id for e in logged(home)] == [printed["id"]]


def test_emit_fields_become_numbers_when_they_parse_and_round_trip_through_tail(
    home: HomePaths,
) -> None:
    emitted = run_aios(
        "emit",
        "resource.high",
        "--source",
        "monitor",
        "--label",
        "host=web1",
        "-l",
        "agent=writer",
        "-p",
        "count=42",
        "-p",
        "ratio=2.5",
        "-p",
        "delta=-3",
        "-p",
        "big=1e3",
        "-p",
        "name=web1",
        "-p",
        "empty=",
        "-p",
        "expr=a=b",
        "-p",
        "zip=007",
        "-p",
        "grouped=1_000",
        "--json",
        home=home,
    )
    printed = json_out(emitted)
    payload = printed["payload"]
    assert payload == {
        "count": 42,
        "ratio": 2.5,
        "delta": -3,
        "big": 1000.0,
        "name": "web1",
        "empty": "",
        "expr": "a=b",
        "zip": "007",  # not a JSON number: stays a string
        "grouped": "1_000",
    }
    assert type(payload["count"]) is int and type(payload["delta"]) is int
    assert type(payload["ratio"]) is float and type(payload["big"]) is float
    assert printed["labels"] == {"host": "web1", "agent": "writer"}
    assert printed["source"] == "monitor"

    tailed = json_out(run_aios("events", "tail", "--json", home=home))
    assert tailed == [printed]


def test_emit_takes_the_payload_as_a_json_object(home: HomePaths) -> None:
    payload = {"nested": {"list": [1, 2.5, "x", None, True]}, "none": None}
    printed = json_out(
        run_aios("emit", "test.payload", "--payload", json.dumps(payload), "--json", home=home)
    )
    assert printed["payload"] == payload
    [event] = logged(home)
    assert event.payload == payload


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["Bad"], "type"),
        (["test"], "type"),
        (["test.x", "--severity", "huge"], "severity"),
        (["test.x", "--payload", "{bad"], "--payload: bad JSON"),
        (["test.x", "--payload", "[1, 2]"], "JSON object"),
        (["test.x", "--label", "nolabel"], "'nolabel' is not KEY=VALUE"),
        (["test.x", "--label", "bad key!=v"], "label"),
        (["test.x", "--payload", "{}", "-p", "a=1"], "not both"),
        (["test.x", "-p", "novalue"], "'novalue' is not KEY=VALUE"),
        (["test.x", "--source", " "], "source"),
        (["test.x", "-p", "big=99999999999999999999"], "payload.big"),
        (["test.x", "--bogus"], "No such option: --bogus"),
        ([], "Missing argument 'TYPE'"),
    ],
    ids=args_id,
)
def test_emit_rejects_bad_input_with_exit_2_and_writes_nothing(
    home: HomePaths, args: list[str], needle: str
) -> None:
    result = run_aios("emit", *args, home=home)
    assert_exit(result, 2)
    assert needle in flat(result.stderr)
    assert result.stdout == ""
    assert logged(home) == []
    assert list_segments(home.events) == []


def test_emit_with_a_broken_config_exits_2_naming_it_and_writes_nothing(home: HomePaths) -> None:
    home.config.write_text("[log]\nsegment_max_bytes = 10\n")
    result = run_aios("emit", "test.x", home=home)
    assert_exit(result, 2)
    assert f"{home.config}:2" in result.stderr
    assert logged(home) == []


# ---------------------------------------------------------------------- events tail
def test_tail_shows_the_newest_n_oldest_first(home: HomePaths) -> None:
    events = seed(home, [ev("test.tail", payload={"n": n}) for n in range(5)])

    assert [
        e["id"] for e in json_out(run_aios("events", "tail", "-n", "3", "--json", home=home))
    ] == ids(events[2:])
    everything = json_out(run_aios("events", "tail", "--json", home=home))
    assert [e["id"] for e in everything] == ids(events)
    assert everything[0]["priority"] == "P3"

    table = run_aios("events", "tail", "-n", "2", home=home)
    assert_exit(table, 0)
    assert table.stdout.count("test.tail") == 2


def test_tail_of_an_empty_home_is_an_empty_list(home: HomePaths) -> None:
    assert json_out(run_aios("events", "tail", "--json", home=home)) == []


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--type", "test.*"], [0, 1]),
        (["--type", "other.c"], [2]),
        (["--type", "test.a", "--type", "other.*"], [0, 2]),
        (["--since", "2024-01-01T00:00Z"], [1, 2]),
        (["--since", "1d"], [2]),
        (["--source", "agent"], [1]),
        (["--label", "host=web1", "-n", "1"], [2]),
    ],
    ids=args_id,
)
def test_tail_filters(home: HomePaths, args: list[str], expected: list[int]) -> None:
    events = seed(
        home,
        [
            ev("test.a", source="monitor", labels={"host": "web1"}, time=OLD),
            ev("test.b", source="agent", labels={"host": "web2"}, time=MIDDLE),
            ev("other.c", source="monitor", labels={"host": "web1"}),
        ],
    )
    shown = json_out(run_aios("events", "tail", *args, "--json", home=home))
    assert [e["id"] for e in shown] == [events[i].id for i in expected]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--since", "yesterday"], "'yesterday'"),
        (["--since", "2026-13-45"], "'2026-13-45'"),
        (["-n", "0"], "-n"),
        (["--type", "a b"], "'a b'"),
    ],
    ids=["since-word", "since-bad-date", "n-zero", "type-space"],
)
def test_tail_rejects_bad_input_with_exit_2(home: HomePaths, args: list[str], needle: str) -> None:
    result = run_aios("events", "tail", *args, home=home)
    assert_exit(result, 2)
    assert needle in flat(result.stderr)


def test_tail_reads_across_segments(home: HomePaths) -> None:
    events = seed(
        home,
        [ev("test.seg", payload={"n": n, "pad": "x" * 300}) for n in range(24)],
        segment_max_bytes=4096,
    )
    assert len(list_segments(home.events)) > 2
    shown = json_out(run_aios("events", "tail", "-n", "10", "--json", home=home))
    assert [e["id"] for e in shown] == ids(events[-10:])


# -------------------------------------------------------------------- events verify
def test_verify_an_intact_log(home: HomePaths) -> None:
    seed(home, [ev("test.ok") for _ in range(3)])
    result = run_aios("events", "verify", home=home)
    assert_exit(result, 0)
    assert "intact: 3 events" in flat(result.stdout)

    report = json_out(run_aios("events", "verify", "--json", home=home))
    assert report["ok"] is True
    assert report["events"] == 3
    assert report["first_break"] is None


def test_verify_names_the_segment_and_line_of_a_modified_byte(home: HomePaths) -> None:
    seed(
        home,
        [ev("test.seg", source="seed", payload={"pad": "x" * 300}) for _ in range(24)],
        segment_max_bytes=4096,
    )
    segments = list_segments(home.events)
    assert len(segments) > 2
    broken = segments[1]
    tamper(broken.path, 2)
    before_break = segments[0].path.read_bytes().count(b"\n") + 1

    result = run_aios("events", "verify", home=home)
    assert_exit(result, 1)
    message = flat(result.stdout + result.stderr)
    assert f"{broken.name} line 2" in message
    assert "modified" in message

    report = json_out(run_aios("events", "verify", "--json", home=home))
    assert report["ok"] is False
    assert report["events"] == before_break
    assert report["first_break"]["segment"] == broken.name
    assert report["first_break"]["line"] == 2
    assert report["first_break"]["kind"] == "modified"


# -------------------------------------------------------------------- events replay
def test_replay_handlers_get_exactly_the_matching_events(
    home: HomePaths, handlers: dict[str, str]
) -> None:
    events = seed(
        home,
        [
            ev("test.a", time=OLD),
            ev("other.b", time=MIDDLE),
            ev("test.a"),
            ev("test.c"),
        ],
    )
    cases: list[tuple[list[str], list[Event]]] = [
        (["--type", "test.*"], [events[0], events[2], events[3]]),
        (["--since", "2024-01-01T00:00Z", "--type", "test.a"], [events[2]]),
    ]
    for args, wanted in cases:
        Path(handlers["REPLAY_RECORD"]).unlink(missing_ok=True)
        result = run_aios(
            "events",
            "replay",
            *args,
            "--handler",
            "cli_test_handlers:record",
            "--json",
            home=home,
            env=handlers,
        )
        report = json_out(result)
        assert_exit(result, 0)
        assert recorded(handlers) == ids(wanted), args
        assert report["events"] == len(wanted)
        assert list(report["delivered"].values()) == [len(wanted)]
        assert report["failures"] == []
    assert logged(home) == events


def test_replay_dry_run_counts_and_delivers_nothing(
    home: HomePaths, handlers: dict[str, str]
) -> None:
    seed(home, [ev("test.a"), ev("test.a"), ev("other.b")])
    handler = ("--handler", "cli_test_handlers:record")

    report = json_out(
        run_aios("events", "replay", *handler, "--dry-run", "--json", home=home, env=handlers)
    )
    assert report["dry_run"] is True
    assert report["events"] == 3
    assert report["by_type"] == {"test.a": 2, "other.b": 1}
    assert list(report["would_deliver"].values()) == [3]

    text = run_aios(
        "events", "replay", *handler, "--type", "test.*", "--dry-run", home=home, env=handlers
    )
    assert_exit(text, 0)
    assert "dry run: 2 events match" in flat(text.stdout)
    assert recorded(handlers) is None
    assert len(logged(home)) == 3


def test_replay_uses_the_subscribers_from_config_toml(
    home: HomePaths, handlers: dict[str, str]
) -> None:
    events = seed(home, [ev("test.a"), ev("other.b"), ev("other.c")])
    home.config.write_text(
        '[bus]\nsubscribers = [{ pattern = "other.*", handler = "cli_test_handlers:record" }]\n'
    )
    result = run_aios("events", "replay", home=home, env=handlers)
    assert_exit(result, 0)
    assert "replayed 3 events" in result.stdout
    assert recorded(handlers) == ids(events[1:])


def test_replay_a_failing_handler_exits_1_and_logs_handler_failed(
    home: HomePaths, handlers: dict[str, str]
) -> None:
    events = seed(home, [ev("test.a"), ev("test.a", payload={"boom": True}), ev("test.a")])
    result = run_aios(
        "events",
        "replay",
        "--type",
        "test.*",
        "--handler",
        "cli_test_handlers:fail_on_boom",
        home=home,
        env=handlers,
    )
    assert_exit(result, 1)
    assert events[1].id in result.stderr
    assert "boom in handler" in result.stderr
    # Every stored event reached the handler: one failure does not stop the replay.
    assert recorded(handlers) == ids(events)

    after = logged(home)
    assert after[:3] == events
    [failure] = [e for e in after if e.type == "bus.handler_failed"]
    assert failure.causation_id == events[1].id
    assert failure.payload["event_id"] == events[1].id
    assert failure.payload["replay"] is True
    assert failure.payload["error_type"] == "RuntimeError"


def test_replay_with_a_failing_catch_all_handler_delivers_only_stored_events(
    home: HomePaths, handlers: dict[str, str]
) -> None:
    events = seed(home, [ev("test.a"), ev("test.a", payload={"boom": True}), ev("test.a")])
    result = run_aios(
        "events",
        "replay",
        "--handler",
        "cli_test_handlers:fail_on_boom",
        "--json",
        home=home,
        env=handlers,
    )
    report = json_out(result)
    assert_exit(result, 1)
    assert report["events"] == 3
    assert recorded(handlers) == ids(events)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        ([], "no handlers to replay to"),
        (["--handler", "no_such_module_xyz:run"], "cannot import no_such_module_xyz"),
        (["--handler", "cli_test_handlers:missing"], "no callable 'missing'"),
        (["--handler", "nocolon"], "is not MODULE:FUNCTION"),
        (["--handler", "cli_test_handlers:record", "--since", "soon"], "'soon'"),
    ],
    ids=["no-handler", "no-module", "no-function", "no-colon", "bad-since"],
)
def test_replay_rejects_bad_handlers_with_exit_2(
    home: HomePaths, handlers: dict[str, str], args: list[str], needle: str
) -> None:
    seed(home, [ev("test.a")])
    result = run_aios("events", "replay", *args, home=home, env=handlers)
    assert_exit(result, 2)
    assert needle in flat(result.stderr)
    assert recorded(handlers) is None
    assert len(logged(home)) == 1


# ----------------------------------------------------------------------- events sql
@pytest.fixture
def sample(home: HomePaths) -> list[Event]:
    return seed(
        home,
        [
            ev("resource.high", labels={"host": "web1"}, payload={"value": 93.5, "unit": "%"}),
            ev("resource.high", labels={"host": "web2"}, payload={"value": 40}),
            ev("task.failed", severity="critical", labels={"host": "web1"}, payload={"n": 1}),
        ],
    )


def test_sql_json_gives_row_objects_with_json_columns_as_objects(
    home: HomePaths, sample: list[Event]
) -> None:
    rows = json_out(
        run_aios(
            "events",
            "sql",
            "SELECT id, type, priority, labels, payload FROM events ORDER BY seq",
            "--json",
            home=home,
        )
    )
    assert rows == [
        {
            "id": e.id,
            "type": e.type,
            "priority": e.priority.value,
            "labels": e.labels,
            "payload": e.payload,
        }
        for e in sample
    ]


def test_sql_can_query_inside_labels_and_payload(home: HomePaths, sample: list[Event]) -> None:
    query = (
        "SELECT labels->>'host' AS host, CAST(payload->>'value' AS DOUBLE) AS value "
        "FROM events WHERE labels->>'host' = 'web1' AND payload->>'value' IS NOT NULL"
    )
    assert json_out(run_aios("events", "sql", query, "--json", home=home)) == [
        {"host": "web1", "value": 93.5}
    ]


def test_sql_csv_has_a_header_row(home: HomePaths, sample: list[Event]) -> None:
    result = run_aios(
        "events", "sql", "SELECT type, severity FROM events ORDER BY seq", "--csv", home=home
    )
    assert_exit(result, 0)
    assert list(csv.reader(io.StringIO(result.stdout))) == [
        ["type", "severity"],
        ["resource.high", "info"],
        ["resource.high", "info"],
        ["task.failed", "critical"],
    ]


def test_sql_table_output_counts_rows(home: HomePaths, sample: list[Event]) -> None:
    result = run_aios(
        "events", "sql", "SELECT type, count(*) AS n FROM events GROUP BY type", home=home
    )
    assert_exit(result, 0)
    assert "task.failed" in result.stdout
    assert "2 row(s)" in result.stdout


@pytest.mark.parametrize(
    ("statement", "kind"),
    [
        ("INSERT INTO events SELECT * FROM events", "INSERT"),
        ("DELETE FROM events", "DELETE"),
        ("UPDATE events SET type = 'hacked.type'", "UPDATE"),
        ("CREATE TABLE stolen AS SELECT * FROM events", "CREATE"),
        ("DROP TABLE events", "DROP"),
        ("COPY (SELECT * FROM events) TO '{tmp}/out.csv'", "COPY"),
        ("ATTACH '{tmp}/other.duckdb' AS other", "ATTACH"),
    ],
    ids=["insert", "delete", "update", "create", "drop", "copy", "attach"],
)
def test_sql_refuses_statements_that_write_and_changes_nothing(
    home: HomePaths, sample: list[Event], tmp_path: Path, statement: str, kind: str
) -> None:
    run_aios("events", "sql", "SELECT 1", home=home)  # the store exists, projections and all
    _, tables_before = store_state(home)
    result = run_aios("events", "sql", statement.format(tmp=tmp_path), home=home)
    assert_exit(result, 2)
    assert "only reading statements" in flat(result.stderr)
    assert kind in result.stderr
    count, tables = store_state(home)
    assert count == len(sample)
    assert {"events", "_aios_sync", "_aios_projections"} <= tables
    assert tables == tables_before and "stolen" not in tables
    assert not (tmp_path / "out.csv").exists()
    assert not (tmp_path / "other.duckdb").exists()
    assert logged(home) == sample


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["SELECT * FROM no_such_table"], "no_such_table"),
        (["SELEC 1"], "does not parse"),
        (["SELECT 1; SELECT 2"], "exactly one statement"),
        (["SELECT 1", "--json", "--csv"], "one of --json and --csv"),
    ],
    ids=["missing-table", "syntax", "two-statements", "json-and-csv"],
)
def test_sql_bad_queries_exit_2(
    home: HomePaths, sample: list[Event], args: list[str], needle: str
) -> None:
    result = run_aios("events", "sql", *args, home=home)
    assert_exit(result, 2)
    assert needle in flat(result.stderr)


# ------------------------------------------------------------------- events rebuild
def test_rebuild_keeps_the_event_count(home: HomePaths, sample: list[Event]) -> None:
    count = "SELECT count(*) AS n FROM events"
    assert json_out(run_aios("events", "sql", count, "--json", home=home)) == [{"n": 3}]
    result = run_aios("events", "rebuild", home=home)
    assert_exit(result, 0)
    assert "3 events" in result.stdout
    assert json_out(run_aios("events", "sql", count, "--json", home=home)) == [{"n": 3}]


def test_rebuild_of_an_unknown_projection_exits_2_naming_it(home: HomePaths) -> None:
    result = run_aios("events", "rebuild", "nonesuch", home=home)
    assert_exit(result, 2)
    assert "nonesuch" in result.stderr


# --------------------------------------------------------------------------- doctor
NO_PREFECT_API = {"PREFECT_API_URL": ""}


def test_doctor_passes_on_an_initialised_home(home: HomePaths) -> None:
    assert_exit(run_aios("init", home=home), 0)
    table = run_aios("doctor", home=home, env=NO_PREFECT_API)
    assert_exit(table, 0)
    assert "AIOS_HOME" in table.stdout

    report = json_out(run_aios("doctor", "--json", home=home, env=NO_PREFECT_API))
    assert report["ok"] is True
    names = {check["name"]: check["status"] for check in report["checks"]}
    assert names["AIOS_HOME"] == names["config"] == names["DuckDB store"] == "ok"
    assert all(check["status"] != "fail" for check in report["checks"])


def test_doctor_fails_with_a_fix_hint_when_home_is_missing(home: HomePaths, tmp_path: Path) -> None:
    missing = tmp_path / "missing-home"
    env = {"AIOS_HOME": str(missing), **NO_PREFECT_API}
    table = run_aios("doctor", home=home, env=env)
    assert_exit(table, 1)
    assert "aios init" in table.stdout

    result = run_aios("doctor", "--json", home=home, env=env)
    assert_exit(result, 1)
    report = json.loads(result.stdout)
    assert report["ok"] is False
    [check] = [c for c in report["checks"] if c["name"] == "AIOS_HOME"]
    assert check["status"] == "fail"
    assert "does not exist" in check["detail"]
    assert "aios init" in check["fix"]
    assert not missing.exists(), "doctor must only check, never create AIOS_HOME"


# ------------------------------------------------------------------- up, version, help
def test_version(home: HomePaths) -> None:
    result = run_aios("--version", home=home)
    assert_exit(result, 0)
    assert result.stdout.strip() == f"aios {aios.__version__}"
    assert aios.__version__ == metadata.version("aios-framework")


@pytest.mark.parametrize(
    ("args", "commands"),
    [
        (["--help"], ["init", "emit", "events", "doctor", "up"]),
        (["events", "--help"], ["tail", "verify", "replay", "sql", "rebuild"]),
    ],
    ids=["aios", "events"],
)
def test_help_lists_the_commands(home: HomePaths, args: list[str], commands: list[str]) -> None:
    result = run_aios(*args, home=home)
    assert_exit(result, 0)
    assert "Usage:" in result.stdout
    words = set(result.stdout.replace("│", " ").split())
    assert set(commands) <= words


def test_an_unknown_command_is_a_usage_error(home: HomePaths) -> None:
    result = run_aios("bogus", home=home)
    assert_exit(result, 2)
    assert "No such command 'bogus'" in flat(result.stderr)


# ------------------------------------------- user text is printed, not read as markup
@pytest.mark.parametrize("note", ["[x] done", "[/x] closing"], ids=["open-tag", "close-tag"])
def test_tail_table_prints_payload_text_verbatim(home: HomePaths, note: str) -> None:
    seed(home, [ev("test.note", payload={"note": note})])
    result = run_aios("events", "tail", home=home)
    assert_exit(result, 0)
    assert note in result.stdout


def test_sql_table_prints_values_verbatim(home: HomePaths) -> None:
    seed(home, [ev("test.note", payload={"note": "[/x] closing"})])
    result = run_aios("events", "sql", "SELECT payload->>'note' AS note FROM events", home=home)
    assert_exit(result, 0)
    assert "[/x] closing" in result.stdout


def test_init_prints_a_home_path_with_brackets_verbatim(home: HomePaths, tmp_path: Path) -> None:
    root = tmp_path / "[prod]" / "home"
    result = run_aios("init", home=home, env={"AIOS_HOME": str(root)})
    assert_exit(result, 0)
    assert (root / "config.toml").is_file()
    assert str(root / "config.toml") in flat(result.stdout)
