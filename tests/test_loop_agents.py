"""The loop's agents on a real log and store: the analyst's report, error signatures, the
optimizer's plan, the validator's verdicts, the learner's records and the heartbeat."""

from __future__ import annotations

import json
import os
import socket
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import aios
from aios.event import Event, Severity
from aios.home import HomePaths
from aios.loop import analyst, heartbeat, learner, optimizer, validator
from aios.loop.analyst import AnalystReport, Finding, analyse, render_markdown
from aios.loop.signatures import MAX_LENGTH, normalise, signature
from aios.playbooks.matcher import PlaybookIndex
from aios.playbooks.model import Playbook
from aios.reactor.engine import action_context, remediation_id
from aios.reactor.state import REACTOR_SOURCE
from aios.store import open_store
from aios.store.consumers import last_seq, set_position
from tests.loop_helpers import (
    backlog,
    book,
    breaks,
    failures,
    fixes,
    remediate,
    settings,
    verify_value,
)


def events_of(kind: str) -> list[Event]:
    return [e for e in aios.bus().log.events() if e.type == kind]


def report(until: datetime | None = None, window: timedelta = timedelta(hours=24)) -> AnalystReport:
    with open_store() as con:
        return analyse(con, until or datetime.now(UTC) + timedelta(seconds=1), window)


# ------------------------------------------------------------------ signatures
@pytest.mark.parametrize(
    ("message", "normalised"),
    [
        (
            "tool search timed out after 30.5s (req 8f3a1b2c9d0e1f22)",
            "tool search timed out after <n>s (req <hex>)",
        ),
        (
            "job 0f8fa0a4-3b1e-4c5a-9d2e-1a2b3c4d5e6f failed at 2026-11-21T10:00:01.123Z",
            "job <id> failed at <time>",
        ),
        ("connect to 10.0.0.12:5432 refused", "connect to <addr> refused"),
        ("GET https://api.example.com/v1/x?y=1 returned 503", "GET <url> returned <n>"),
        ("cannot open /var/lib/agent/state-7.json", "cannot open <path>"),
        ("KeyError: 'user_42'", "KeyError: <str>"),
        ("segfault at 0xdeadbeef", "segfault at <hex>"),
        ("retry 3 of 5", "retry <n> of <n>"),
        ("model gpt4 said -3", "model gpt4 said <n>"),
        ("  lots   of\n  spaces  ", "lots of spaces"),
    ],
)
def test_normalise_replaces_what_varies_between_occurrences(message: str, normalised: str) -> None:
    assert normalise(message) == normalised


def test_the_same_failure_with_other_details_has_one_signature() -> None:
    a = signature("TimeoutError", "tool search timed out after 30.5s (req 8f3a1b2c9d0e1f22)")
    b = signature("TimeoutError", "tool search timed out after 2s (req 0011aabbccddeeff00)")
    assert a == b == "TimeoutError: tool search timed out after <n>s (req <hex>)"
    assert signature("ValueError", "tool search timed out after 2s") != a
    assert signature("TimeoutError", "tool fetch timed out after 2s") != a


@pytest.mark.parametrize(
    ("error_type", "message", "expected"),
    [
        (None, None, "unknown error"),
        ("  ", "   ", "unknown error"),
        ("KeyError", None, "KeyError"),
        (None, "boom 3 times", "boom <n> times"),
        (" OSError ", "disk 9 full", "OSError: disk <n> full"),
    ],
)
def test_a_signature_has_whatever_parts_are_known(
    error_type: str | None, message: str | None, expected: str
) -> None:
    assert signature(error_type, message) == expected


def test_a_long_message_is_cut() -> None:
    assert len(normalise("word " * 200)) == MAX_LENGTH


# ------------------------------------------------------------------ analyst
def test_task_failures_are_grouped_by_signature_with_agents_and_times(home: HomePaths) -> None:
    now = datetime.now(UTC)
    older = now - timedelta(hours=3)
    # Published out of time order: a late batch of older failures after newer ones.
    newer = failures(2, agent="reader", start=now - timedelta(hours=1))
    late = failures(3, agent="writer", start=older)
    failures(1, agent="writer", error_type="KeyError", message="no key 'x'", start=older)
    found = report(now).failure_patterns
    assert [(p.signature, p.count) for p in found] == [
        ("TimeoutError: tool search timed out after <n>s (req <hex>)", 5),
        ("KeyError: no key <str>", 1),
    ]
    timeouts = found[0]
    assert sorted(timeouts.agents) == ["reader", "writer"]
    assert timeouts.first == late[0].time
    assert timeouts.last == newer[-1].time
    assert timeouts.sample_event_id == newer[-1].id
    assert "timed out" in timeouts.sample


@pytest.mark.parametrize(
    ("count", "severity"), [(2, None), (3, "medium"), (9, "medium"), (10, "high")]
)
def test_a_repeated_failure_becomes_a_finding_by_how_often(
    home: HomePaths, count: int, severity: str | None
) -> None:
    now = datetime.now(UTC)
    failures(count, start=now - timedelta(hours=2))
    found = [f for f in report(now).findings if f.kind == "failure_pattern"]
    if severity is None:
        assert found == []
        return
    [finding] = found
    assert finding.severity == severity
    assert finding.title == f"TimeoutError: tool search timed out after <n>s (req <hex>) (x{count})"
    assert finding.detail.startswith("agents: writer; latest: tool search timed out")


def test_top_issues_leave_out_aios_own_steps_and_measurements(home: HomePaths) -> None:
    now = datetime.now(UTC)
    bus = aios.bus()
    for _ in range(2):
        bus.emit("disk.full", {"resource": "disk"}, severity="critical", labels={"host": "db1"})
    bus.emit("remediation.escalated", {"x": 1}, severity="high", source=REACTOR_SOURCE)
    bus.emit("host.metrics", {"cpu": 99}, severity="high", source="aios.monitor")
    bus.emit("queue.backlog", {"depth": 9}, severity="low", labels={"host": "web1"})
    for _ in range(5):
        bus.emit("agent.slow", {"ms": 900}, severity="medium", labels={"agent": "reader"})
    bus.emit("agent.slow", {"ms": 900}, severity="medium", labels={"agent": "writer"})
    result = report(now + timedelta(seconds=1))
    assert [(i.type, i.subject, i.severity, i.count) for i in result.top_issues] == [
        ("agent.slow", "reader", "medium", 5),
        ("disk.full", "disk", "critical", 2),
        ("agent.slow", "writer", "medium", 1),
    ]
    titles = {f.title: f.severity for f in result.findings if f.kind == "recurring_issue"}
    assert titles == {"agent.slow on reader (x5)": "medium", "disk.full on disk (x2)": "high"}
    assert result.low_priority == {"queue.backlog": 1}


def test_totals_compare_the_window_with_the_one_before(home: HomePaths) -> None:
    now = datetime.now(UTC)
    failures(1, start=now - timedelta(hours=30))
    failures(6, start=now - timedelta(hours=5))
    aios.bus().publish(
        [
            Event.create(
                type="task.completed",
                source="writer",
                time=now - timedelta(hours=1),
                labels={"agent": "writer"},
            ),
            Event.create(
                type="task.completed", source="aios.optimizer", time=now - timedelta(hours=1)
            ),
            Event.create(type="disk.full", severity="critical", time=now - timedelta(hours=2)),
            Event.create(type="at.the.end", time=now),  # the window is [since, until)
        ]
    )
    result = report(now)
    assert result.totals["events"] == 9
    assert (result.totals["p0"], result.totals["p2"], result.totals["p3"]) == (1, 6, 2)
    assert result.totals["tasks_completed"] == 1  # AIOS's own tasks are not counted
    assert result.totals["tasks_failed"] == 6
    assert result.previous["tasks_failed"] == 1
    [rising] = [f for f in result.findings if f.kind == "failures_rising"]
    assert rising.title == "task failures rose from 1 to 6"


def test_remediation_outcomes_per_playbook_and_the_findings_they_raise(
    home: HomePaths, root: Path, config_file: Path
) -> None:
    good, bad = fixes(config_file), breaks(config_file)
    risky = book("risky_fix", risk="high")
    irreversible = book(
        "run_script",
        actions=[
            {"type": "config.update", "file": str(config_file), "key": "retries", "value": 7},
            {"type": "command.run", "argv": ["/bin/true"]},
        ],
        verify=verify_value(config_file, "retries", "==0"),
    )
    assert remediate(home, root, good, backlog("a")).status == "succeeded"
    for host in ("b", "c"):
        assert remediate(home, root, bad, backlog(host)).status == "rolled_back"
    assert remediate(home, root, risky, backlog("d"), approve=False).status == "skipped"
    assert remediate(home, root, irreversible, backlog("e")).status == "rolled_back"
    result = report()
    stats = {s.playbook: (s.runs, s.outcomes) for s in result.playbooks}
    assert stats == {
        "bad_fix": (2, {"rolled_back": 2}),
        "raise_interval": (1, {"succeeded": 1}),
        "run_script": (1, {"rolled_back": 1, "escalated": 1}),
        "risky_fix": (0, {"denied": 1}),
    }
    assert result.totals["remediations"] == 4
    assert result.totals["remediations_succeeded"] == 1
    assert result.totals["approvals_requested"] == 2
    findings = [(f.kind, f.title, f.severity) for f in result.findings]
    assert ("playbook_failing", "playbook bad_fix: 2 of 2 runs failed", "high") in findings
    assert ("escalated", "playbook run_script escalated", "high") in findings
    assert not [f for f in findings if "raise_interval" in f[1] or "risky_fix" in f[1]]
    markdown = render_markdown(result)
    assert "| bad_fix | 2 | rolled_back 2 |" in markdown
    assert "| risky_fix | 0 | denied 1 |" in markdown
    assert "- remediations: 4 finished, 1 succeeded; approvals requested: 2" in markdown


def score_event(value: float | None, grade: str | None, trend: str, at: datetime) -> Event:
    return Event.create(
        type="score.updated",
        source="aios.score",
        time=at,
        labels={"preset": "evolution"},
        payload={
            "preset": "evolution",
            "score": value,
            "grade": grade,
            "trend": trend,
            "window_s": 3600.0,
        },
    )


@pytest.mark.parametrize(
    ("value", "grade", "trend", "finding", "line"),
    [
        (
            0.35,
            "critical",
            "degrading",
            ("evolution score 0.35 (critical, degrading)", "high"),
            "- score (evolution): 0.35 critical, degrading",
        ),
        (
            0.55,
            "degraded",
            "stable",
            ("evolution score 0.55 (degraded, stable)", "medium"),
            "- score (evolution): 0.55 degraded, stable",
        ),
        (0.9, "excellent", "improving", None, "- score (evolution): 0.90 excellent, improving"),
    ],
)
def test_the_latest_score_is_reported_and_a_bad_one_is_a_finding(
    home: HomePaths,
    value: float,
    grade: str,
    trend: str,
    finding: tuple[str, str] | None,
    line: str,
) -> None:
    now = datetime.now(UTC)
    aios.bus().publish(
        [
            score_event(0.8, "excellent", "stable", now - timedelta(hours=2)),
            score_event(value, grade, trend, now - timedelta(hours=1)),
        ]
    )
    result = report(now)
    assert result.score is not None
    assert (result.score["score"], result.score["previous"]) == (value, 0.8)
    scores = [(f.title, f.severity) for f in result.findings if f.kind == "score"]
    assert scores == ([finding] if finding else [])
    assert line in render_markdown(result)


def test_the_report_of_a_quiet_window_says_so(home: HomePaths) -> None:
    markdown = render_markdown(report())
    for needle in (
        "- events: 0 (P0 0, P1 0, P2 0, P3 0); window before: 0",
        "- score: no data yet",
        "Nothing needs attention.",
        "No task failures.",
        "No medium or worse events.",
        "No remediation finished in this window.",
    ):
        assert needle in markdown
    assert "## Low priority" not in markdown


def test_the_markdown_tables_list_patterns_and_issues_with_cells_escaped(home: HomePaths) -> None:
    now = datetime.now(UTC)
    failures(
        3,
        agent="writer",
        error_type="ParseError",
        message="bad row a|b\nline {n}",
        start=now - timedelta(hours=1),
    )
    aios.bus().emit("agent.slow", {"ms": 1}, severity="high", labels={"agent": "reader"})
    markdown = render_markdown(report())
    lines = markdown.splitlines()
    assert lines[0].startswith("# Analyst report: ")
    patterns = lines.index("## Failure patterns")
    assert lines[patterns + 2 : patterns + 4] == [
        "| count | signature | agents | last |",
        "|---:|---|---|---|",
    ]
    row = lines[patterns + 4]
    assert row.startswith("| 3 | ParseError: bad row a\\|b line <n> | writer | ")
    issues = lines.index("## Top issues")
    assert lines[issues + 2] == "| count | type | subject | severity |"
    assert "| 1 | agent.slow | reader | high |" in lines
    assert "- **high** agent.slow on reader (x1): last at " in markdown
    assert "- **medium** ParseError: bad row a|b line <n> (x3): agents: writer" in markdown


def test_record_writes_the_report_as_an_event(home: HomePaths) -> None:
    now = datetime.now(UTC)
    failures(4, start=now - timedelta(hours=1))
    result = report()
    event = analyst.record(aios.bus(), result, top=1)
    assert event.type == "analysis.reported" and event.source == "aios.analyst"
    assert event.payload["totals"] == result.totals
    assert event.payload["failure_patterns"] == 1
    [finding] = event.payload["findings"]
    assert finding["title"].endswith("(x4)") and finding["severity"] == "medium"
    assert events_of("analysis.reported") == [event]
    assert json.loads(json.dumps(result.to_dict()))["findings"][0]["count"] == 4


# ------------------------------------------------------------------ optimizer
def plan(home: HomePaths, root: Path, playbooks: list[Playbook], **kw: Any) -> optimizer.Plan:
    return optimizer.make_plan(
        aios.bus(),
        home,
        PlaybookIndex(playbooks),
        settings(home, root),
        kw.pop("findings", None),
        now=kw.pop("now", datetime.now(UTC)),
        **kw,
    )


def test_the_plan_proposes_what_would_run_for_pending_p2_events_and_runs_nothing(
    home: HomePaths, root: Path, config_file: Path
) -> None:
    before = config_file.read_bytes()
    low = fixes(config_file)
    medium = book("page_owner", risk="medium")
    first = backlog("web1")
    backlog("web1", severity="high")  # the reactor's, not the executor's
    backlog("web1", severity="low")  # the analyst's
    logged = sum(1 for _ in aios.bus().log.events())
    made = plan(home, root, [low, medium])
    assert made.events == 1
    assert [(i.event_id, i.playbook, i.status, i.needs_approval, i.risk) for i in made.items] == [
        (first.id, "raise_interval", "proposed", False, "low"),
        (first.id, "page_owner", "proposed", True, "medium"),
    ]
    item = made.items[0]
    assert item.event_type == "queue.backlog"
    assert item.remediation_id == remediation_id(first, low)
    assert len(item.actions) == 1 and item.actions[0].endswith(": 60 -> 120")
    assert [i.playbook for i in made.proposed] == ["raise_interval", "page_owner"]
    assert config_file.read_bytes() == before
    assert sum(1 for _ in aios.bus().log.events()) == logged  # a preview writes nothing


def test_the_plan_says_why_a_remediation_is_held_back(
    home: HomePaths, root: Path, config_file: Path
) -> None:
    throttled = book("note_backlog", {"type": "queue.backlog", "throttle": {"once_within": "1h"}})
    tripped = breaks(config_file, limits={"failures_to_open": 2, "cooldown": "1h", "max_runs": 9})
    counted = book(
        "after_five", {"type": "queue.backlog", "threshold": {"count": 5, "within": "1h"}}
    )
    assert remediate(home, root, throttled, backlog("web9")).status == "unverified"
    for _ in range(2):
        assert remediate(home, root, tripped, backlog("web1")).status == "rolled_back"
    with open_store(home) as con:
        after = last_seq(con)
    pending = backlog("web1")
    made = plan(home, root, [throttled, tripped, counted], after_seq=after)
    status = {i.playbook: i.status for i in made.items}
    assert status["note_backlog"].startswith("throttled: fired for * at ")
    assert status["bad_fix"].startswith("breaker_open: 2 consecutive failures; cooling down")
    assert "after_five" not in status
    assert made.below_threshold == 1
    assert made.proposed == []
    assert all(i.event_id == pending.id for i in made.items)


def test_one_plan_proposes_no_more_than_throttles_and_run_limits_let_through(
    home: HomePaths, root: Path
) -> None:
    throttled = book("note_backlog", {"type": "queue.backlog", "throttle": {"once_within": "1h"}})
    limited = book("drain_queue", limits={"max_runs": 2, "flap_count": 10})
    flapping = book(
        "restart_consumer",
        actions=[{"type": "event.emit", "event_type": "consumer.restart"}],
        limits={"max_runs": 10, "flap_count": 2, "flap_window": "1h"},
    )
    pending = [backlog("web1") for _ in range(3)]
    made = plan(home, root, [throttled, limited, flapping], after_seq=0)
    by_playbook: dict[str, list[str]] = {}
    for item in made.items:
        by_playbook.setdefault(item.playbook, []).append(item.status.split(":")[0])
    assert by_playbook == {
        "note_backlog": ["proposed", "throttled", "throttled"],
        "drain_queue": ["proposed", "proposed", "breaker_open"],
        "restart_consumer": ["proposed", "proposed", "breaker_open"],
    }
    limit = [i for i in made.items if i.playbook == "drain_queue"][2]
    assert limit.event_id == pending[2].id
    assert "2 runs on this target within 1d (limit 2)" in limit.status
    flap = [i for i in made.items if i.playbook == "restart_consumer"][2]
    assert "flapping: event.emit ran 2 times on labels.host=web1" in flap.status
    assert len(made.proposed) == 5


def test_the_plan_starts_at_the_executors_place_or_an_hour_back(
    home: HomePaths, root: Path
) -> None:
    pb = book("note_backlog")
    old = backlog(at=datetime.now(UTC) - timedelta(hours=2))
    recent = backlog(at=datetime.now(UTC) - timedelta(minutes=10))
    first = plan(home, root, [pb])
    assert [i.event_id for i in first.items] == [recent.id]
    assert old.id not in {i.event_id for i in first.items}
    with open_store(home) as con:
        set_position(con, optimizer.EXECUTOR, first.upto_seq)
    later = backlog()
    second = plan(home, root, [pb])
    assert second.after_seq == first.upto_seq
    assert [i.event_id for i in second.items] == [later.id]
    assert plan(home, root, [pb], after_seq=second.upto_seq).items == []


def test_a_recorded_plan_reads_back_the_same(
    home: HomePaths, root: Path, config_file: Path
) -> None:
    backlog()
    findings = [Finding("escalated", "playbook x escalated", "high", 1)]
    made = plan(
        home, root, [fixes(config_file), book("page_owner", risk="high")], findings=findings
    )
    event = optimizer.record_plan(aios.bus(), made)
    assert event.type == "plan.proposed" and event.source == "aios.optimizer"
    [stored] = events_of("plan.proposed")
    again = optimizer.Plan.from_dict(stored.payload)
    assert again == made
    assert again.to_dict() == made.to_dict()
    assert [r.kind for r in again.recommendations] == ["escalated"]


def test_failures_no_playbook_covers_are_recommended_for_a_playbook(
    home: HomePaths, root: Path, config_file: Path
) -> None:
    now = datetime.now(UTC)
    failures(4, start=now - timedelta(hours=2))
    failures(
        3,
        agent="reader",
        error_type="KeyError",
        message="no key {n}",
        start=now - timedelta(hours=2),
    )
    for _ in range(2):
        remediate(home, root, breaks(config_file), backlog())
    findings = report().findings
    only_key_errors = {"path": "payload.error_type", "op": "eq", "value": "KeyError"}
    covers_key_errors = book(
        "fix_key_errors", {"type": "task.failed", "conditions": [only_key_errors]}
    )
    made = plan(home, root, [covers_key_errors], findings=findings, after_seq=10**9)
    recs = [(r.kind, r.title, r.severity) for r in made.recommendations]
    assert (
        "uncovered",
        "no playbook handles task.failed: TimeoutError: tool search timed out after <n>s "
        "(req <hex>) (x4)",
        "medium",
    ) in recs
    assert not [r for r in recs if "KeyError" in r[1]]
    [review] = [r for r in made.recommendations if r.kind == "review_playbook"]
    assert review.title == "playbook bad_fix: 2 of 2 runs failed"
    assert review.detail.endswith("check its actions and verify, or disable it")
    assert ("failures_rising", "task failures rose from 0 to 7", "medium") in recs


def test_recommend_passes_score_and_escalations_on_and_ignores_unknown_samples() -> None:
    index = PlaybookIndex([book("anything", trigger="*")])
    findings = [
        Finding("score", "evolution score 0.30 (critical, degrading)", "high", 1),
        Finding("escalated", "playbook p escalated", "high", 1),
        Finding("failure_pattern", "X (x3)", "medium", 3, sample_event_id="not-in-the-store"),
        Finding("recurring_issue", "y on z (x5)", "medium", 5),
    ]
    recs = optimizer.recommend(index, findings, {})
    assert [(r.kind, r.severity) for r in recs] == [("score", "high"), ("escalated", "high")]
    assert recs[1].detail == "some actions could not be undone: a person must look"


# ------------------------------------------------------------------ validator
def validate(
    home: HomePaths, root: Path, playbooks: list[Playbook], **kw: Any
) -> validator.ValidationReport:
    return validator.validate(
        aios.bus(),
        home,
        PlaybookIndex(playbooks),
        settings(home, root),
        now=kw.pop("now", datetime.now(UTC) + timedelta(minutes=10)),
        **kw,
    )


def test_a_fix_that_held_and_one_that_recurred_on_its_target(
    home: HomePaths, root: Path, config_file: Path
) -> None:
    pb = fixes(config_file)
    now = datetime.now(UTC)
    for minutes in (8, 4):  # the problem before the fix
        backlog("web1", at=now - timedelta(minutes=minutes))
    backlog("web2", at=now - timedelta(minutes=3))  # another target
    held = remediate(home, root, pb, backlog("web1"))
    recurring = remediate(home, root, pb, backlog("web2"))
    assert (held.status, recurring.status) == ("succeeded", "succeeded")
    backlog("web2")  # came back after the fix
    result = validate(home, root, [pb])
    verdicts = {v.target: v for v in result.verdicts}
    assert set(verdicts) == {"labels.host=web1", "labels.host=web2"}
    web1, web2 = verdicts["labels.host=web1"], verdicts["labels.host=web2"]
    assert (web1.verdict, web1.before, web1.after, web1.recurrences) == ("held", 2, 0, 0)
    assert (web2.verdict, web2.before, web2.after, web2.recurrences) == ("recurred", 1, 1, 1)
    assert web1.remediation_id == held.remediation_id and web1.outcome == "succeeded"
    assert web1.span_s is not None and 500 < web1.span_s < 700
    recorded = {e.payload["remediation_id"]: e for e in events_of("validation.verdict")}
    assert recorded[recurring.remediation_id].severity is Severity.MEDIUM
    assert recorded[held.remediation_id].severity is Severity.INFO
    assert recorded[held.remediation_id].labels == {
        "playbook": "raise_interval",
        "remediation": held.remediation_id,
    }


def test_verdicts_for_rolled_back_unverified_and_escalated_remediations(
    home: HomePaths, root: Path, config_file: Path
) -> None:
    rolled = breaks(config_file)
    quiet = book("note_backlog")
    noisy = book("note_again", trigger="queue.backlog")
    irreversible = book(
        "run_script",
        actions=[{"type": "command.run", "argv": ["/bin/true"]}],
        verify=verify_value(config_file, "retries", "==0"),
    )
    assert remediate(home, root, rolled, backlog("a")).status == "rolled_back"
    assert remediate(home, root, quiet, backlog("b")).status == "unverified"
    assert remediate(home, root, noisy, backlog("c")).status == "unverified"
    assert remediate(home, root, irreversible, backlog("d")).status == "rolled_back"
    backlog("c")
    result = validate(home, root, [rolled, quiet, noisy, irreversible])
    verdicts = {v.playbook: v for v in result.verdicts}
    assert {p: v.verdict for p, v in verdicts.items()} == {
        "bad_fix": "rolled_back",
        "note_backlog": "quiet",
        "note_again": "recurred",
        "run_script": "escalated",
    }
    assert verdicts["bad_fix"].before is None  # nothing to measure: it was undone
    assert verdicts["note_backlog"].detail.startswith("no verify")
    assert verdicts["run_script"].detail == "some actions could not be undone"


def test_each_remediation_gets_one_verdict(home: HomePaths, root: Path, config_file: Path) -> None:
    pb = fixes(config_file)
    remediate(home, root, pb, backlog())
    assert len(validate(home, root, [pb]).verdicts) == 1
    assert validate(home, root, [pb]).verdicts == []
    remediate(home, root, pb, backlog("web2"))
    assert [v.target for v in validate(home, root, [pb]).verdicts] == ["labels.host=web2"]
    assert len(events_of("validation.verdict")) == 2


def test_a_verdict_without_its_playbook_is_unknown(
    home: HomePaths, root: Path, config_file: Path
) -> None:
    remediate(home, root, fixes(config_file), backlog())
    [verdict] = validate(home, root, [book("something_else")]).verdicts
    assert verdict.verdict == "unknown"
    assert verdict.detail == "the playbook is no longer loaded"


def start_by_hand(home: HomePaths, root: Path, pb: Playbook, trigger: Event) -> str:
    """A runner that died after the first action: started, one action done, never finished."""
    rid = remediation_id(trigger, pb)
    base = {"remediation_id": rid, "playbook": pb.id, "target": "labels.host=web1"}
    aios.bus().emit(
        "remediation.started",
        {**base, "trigger_id": trigger.id},
        source=REACTOR_SOURCE,
        correlation_id=trigger.id,
    )
    undo = pb.actions[0].execute(action_context(settings(home, root), trigger, rid, 0))
    aios.bus().emit(
        "action.completed",
        {**base, "index": 0, "action": pb.actions[0].type, "undo": undo},
        source=REACTOR_SOURCE,
        correlation_id=trigger.id,
    )
    return rid


def test_interrupted_remediations_are_rolled_back_once_they_are_old_enough(
    home: HomePaths, root: Path, config_file: Path
) -> None:
    before = config_file.read_bytes()
    pb = fixes(config_file)
    rid = start_by_hand(home, root, pb, backlog())
    assert config_file.read_bytes() != before
    young = validate(home, root, [pb], now=datetime.now(UTC) + timedelta(minutes=30))
    assert young.interrupted == [] and young.verdicts == []
    assert config_file.read_bytes() != before  # it may still be running
    later = datetime.now(UTC) + timedelta(hours=2)
    result = validate(home, root, [pb], now=later)
    [undone] = result.interrupted
    assert (undone.status, undone.remediation_id) == ("rolled_back", rid)
    assert "interrupted: no runner since more than 1h" in undone.reason
    assert config_file.read_bytes() == before
    [verdict] = result.verdicts
    assert (verdict.remediation_id, verdict.verdict) == (rid, "rolled_back")
    assert validate(home, root, [pb], now=later).interrupted == []


# ------------------------------------------------------------------ learner
def learn(**kw: Any) -> learner.LearnerReport:
    with open_store() as con:
        return learner.learn(aios.bus(), con, now=datetime.now(UTC) + timedelta(seconds=1), **kw)


def test_effectiveness_is_recorded_only_when_it_changed(
    home: HomePaths, root: Path, config_file: Path
) -> None:
    good, bad = fixes(config_file), breaks(config_file)
    risky = book("risky_fix", risk="high")
    remediate(home, root, good, backlog("a"))
    remediate(home, root, good, backlog("b"))
    remediate(home, root, bad, backlog("c"))
    remediate(home, root, risky, backlog("d"), approve=False)
    first = learn()
    by_playbook = {e.playbook: e for e in first.effectiveness}
    assert by_playbook["raise_interval"].success_rate == 1.0
    assert by_playbook["raise_interval"].runs == 2
    assert by_playbook["bad_fix"].success_rate == 0.0
    assert (by_playbook["bad_fix"].rolled_back, by_playbook["bad_fix"].runs) == (1, 1)
    assert (by_playbook["risky_fix"].denied, by_playbook["risky_fix"].runs) == (1, 0)
    assert by_playbook["risky_fix"].success_rate is None
    assert sorted(now.playbook for now, before in first.changed) == sorted(by_playbook)
    assert all(before is None for _, before in first.changed)
    recorded = events_of("playbook.effectiveness")
    assert {e.labels["playbook"] for e in recorded} == set(by_playbook)
    assert {e.source for e in recorded} == {"aios.learner"}

    assert learn().changed == []
    assert len(events_of("playbook.effectiveness")) == 3
    assert "No playbook's effectiveness changed." in learn().to_markdown()

    # A fix that did not hold lowers the rate; only that playbook is recorded again.
    remediate(home, root, good, backlog("e"))
    backlog("e")
    validate(home, root, [good, bad, risky])
    third = learn()
    [(now, before)] = third.changed
    assert now.playbook == "raise_interval"
    assert (now.runs, now.succeeded, now.recurred) == (3, 3, 1)
    assert now.success_rate == round(2 / 3, 4)
    assert before is not None and before["success_rate"] == 1.0
    markdown = third.to_markdown()
    assert "| raise_interval | 67% | 100% | 3 | 1 |" in markdown


def test_only_a_verified_fix_that_came_back_lowers_the_success_rate(
    home: HomePaths, root: Path, config_file: Path
) -> None:
    """The playbook was edited: one run with verify (it held), one without (it recurred)."""
    verified = fixes(config_file, "retune")
    unverified = book("retune")
    assert remediate(home, root, verified, backlog("a")).status == "succeeded"
    assert remediate(home, root, unverified, backlog("b")).status == "unverified"
    backlog("b")
    verdicts = validate(home, root, [unverified]).verdicts
    assert sorted(v.verdict for v in verdicts) == ["held", "recurred"]
    [item] = learn().effectiveness
    assert (item.runs, item.succeeded, item.unverified, item.recurred) == (2, 1, 1, 1)
    assert item.success_rate == 1.0


def test_another_denial_is_a_change_worth_recording(
    home: HomePaths, root: Path, config_file: Path
) -> None:
    risky = book("risky_fix", risk="high")
    remediate(home, root, risky, backlog("a"), approve=False)
    learn()
    remediate(home, root, risky, backlog("b"), approve=False)
    [(now, before)] = learn().changed
    assert (now.denied, before and before["denied"]) == (2, 1)


def test_the_learner_report_reads_as_a_table(home: HomePaths) -> None:
    quiet = learner.LearnerReport()
    assert quiet.to_markdown() == "# Learner changes\n\nNo playbook's effectiveness changed.\n"
    item = learner.Effectiveness("p", 4, 1, 1, 1, 1, 0, 0, 1 / 3)
    assert (
        "| p | 33% | n/a | 4 | 0 |" in learner.LearnerReport(changed=[(item, None)]).to_markdown()
    )


# ------------------------------------------------------------------ heartbeat
def test_a_heartbeat_says_who_is_up_and_for_how_long(home: HomePaths) -> None:
    started = time.time() - 42
    beat = heartbeat.beat(aios.bus(), started=started)
    assert beat.type == "system.heartbeat" and beat.source == "aios.heartbeat"
    assert beat.labels == {"host": socket.gethostname()}
    assert beat.payload["pid"] == os.getpid()
    assert beat.payload["version"] == aios.__version__
    assert 42 <= beat.payload["uptime_s"] < 60
    assert "uptime_s" not in heartbeat.beat(aios.bus()).payload
    assert events_of("system.heartbeat")[0] == beat
    # Bookkeeping, not an issue: the analyst does not list heartbeats as low-priority events.
    assert report().low_priority == {}
