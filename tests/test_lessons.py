"""Lessons on a real log, store and Chroma: repeated failures become draft lessons (one per
owner) found by other words, fixes that verified become their fix, remediations verify, harden
and demote them, and the CLI shows and shares them."""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import aios
from aios.event import Event
from aios.home import HomePaths
from aios.lessons.extract import LIFECYCLE_CONSUMER, ExtractReport, run_pass
from aios.lessons.index import LessonIndex
from aios.lessons.model import lesson_id
from aios.lessons.projection import read_lessons
from aios.loop.signatures import signature
from aios.playbooks.model import Playbook
from aios.reactor.approval import ApprovalDecision
from aios.store import open_store
from aios.store.consumers import set_position
from tests.conftest import run_aios
from tests.loop_helpers import breaks, failures, fixes, remediate

SEARCH = "TimeoutError: tool search timed out after <n>s (req <hex>)"
WRITERS = lesson_id(SEARCH, "writer")  # the writer's lesson of the search timeouts


@pytest.fixture(autouse=True)
def hash_embedding(home: HomePaths, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIOS_MEMORY__EMBEDDING", "hash")  # after home clears AIOS_*


def cli(home: HomePaths, *args: str) -> subprocess.CompletedProcess[str]:
    return run_aios(*args, home=home, env={"AIOS_MEMORY__EMBEDDING": "hash"})


def extract(home: HomePaths) -> ExtractReport:
    return run_pass(home)


def lesson(home: HomePaths, sig: str = SEARCH, owner: str = "writer") -> Any:
    with open_store(home) as con:
        [found] = read_lessons(con, ids=[lesson_id(sig, owner)])
    return found


def kinds(prefix: str = "lesson.") -> list[str]:
    return [e.type for e in aios.bus().log.events() if e.type.startswith(prefix)]


# Many runs of one fix in a row here are the test, not flapping.
LIMITS = {"max_runs": 50, "flap_count": 100, "failures_to_open": 10}
TIMEOUT_TRIGGER = {
    "type": "task.failed",
    "conditions": [{"path": "payload.error_type", "op": "eq", "value": "TimeoutError"}],
}


@pytest.fixture(autouse=True)
def shipped(
    home: HomePaths, tmp_path: Path, config_file: Path, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """The operator's playbook directory, holding the timeout fix (lessons name loaded
    playbooks only)."""
    directory = tmp_path / "playbooks"
    directory.mkdir()
    data = timeout_fix(config_file).model_dump(mode="json", exclude_none=True)
    (directory / "raise_interval.json").write_text(json.dumps(data))
    monkeypatch.setenv("AIOS_REACTOR__PLAYBOOK_DIRS", json.dumps([str(directory)]))
    return directory


def timeout_fix(config_file: Path, pid: str = "raise_interval", **fields: Any) -> Playbook:
    """A playbook for the search timeouts that works (it sets and checks a config value)."""
    return fixes(config_file, pid, trigger=TIMEOUT_TRIGGER, limits=LIMITS, **fields)


def timeout_break(config_file: Path, pid: str = "raise_interval") -> Playbook:
    """The same playbook id, but its verify never passes this time: rolled back."""
    return breaks(config_file, pid, trigger={"type": "task.failed"}, limits=LIMITS)


# ------------------------------------------------------------------ making lessons
def test_three_repeats_become_a_draft_lesson_found_by_other_words(home: HomePaths) -> None:
    for n in range(3):
        with contextlib.suppress(TimeoutError), aios.track("lookup", agent="writer"):
            raise TimeoutError(f"tool web_search timed out after {30 + n}s")
    made = cli(home, "lessons", "extract", "--json")
    assert made.returncode == 0, made.stderr
    [created] = json.loads(made.stdout)["created"]
    assert created["signature"] == "TimeoutError: tool web_search timed out after <n>s"
    assert created["state"] == "draft" and created["count"] == 3
    assert created["agents"] == ["writer"] and created["fix"] is None
    found = cli(
        home, "lessons", "search", "the search tool did not respond within the deadline", "--json"
    )
    assert found.returncode == 0, found.stderr
    hits = json.loads(found.stdout)
    assert hits[0]["lesson_id"] == created["lesson_id"] and hits[0]["state"] == "draft"
    shown = cli(home, "lessons", "show", created["lesson_id"][:12], "--json")
    assert json.loads(shown.stdout)["history"][0]["type"] == "lesson.created"


def test_too_few_or_too_old_make_no_lesson_and_repeats_update_it(home: HomePaths) -> None:
    now = datetime.now(UTC)
    failures(3, start=now - timedelta(hours=5))
    failures(2, agent="reader", error_type="KeyError", message="no key {n}", start=now)
    failures(
        3, agent="old", error_type="OSError", message="disk {n} full", start=now - timedelta(days=9)
    )
    first = extract(home)
    assert [made.signature for made in first.created] == [SEARCH]
    again = extract(home)
    assert again.created == [] and again.updated == []  # nothing new: nothing recorded
    failures(2, agent="summariser", start=now - timedelta(minutes=30))
    assert extract(home).updated == []  # another agent's failures are not the writer's lesson
    failures(1, start=now - timedelta(minutes=20))
    third = extract(home)
    assert [seen.lesson_id for seen in third.updated] == [WRITERS]
    current = lesson(home)
    assert current.count == 4 and current.agents == ["writer"] and current.owner == "writer"
    assert kinds() == ["lesson.created", "lesson.updated"]


# ------------------------------------------------------------------ fixes and lifecycle
def test_a_playbook_that_verified_on_the_failure_becomes_its_fix(
    home: HomePaths, root: Path, config_file: Path
) -> None:
    now = datetime.now(UTC)
    pb = timeout_fix(config_file)
    for event in failures(3, start=now - timedelta(hours=1)):
        assert remediate(home, root, pb, event).status == "succeeded"
    report = extract(home)
    [made] = report.created
    assert made.fix == {
        "kind": "playbook",
        "playbook": "raise_interval",
        "risk": "low",
        "evidence": "verified 3 time(s) on this failure",
    }
    assert [c["to"] for c in report.changes] == ["verified", "verified", "verified"]
    assert lesson(home).state == "verified" and lesson(home).successes == 3


def test_verified_hardened_demoted_and_each_remediation_counted_once(
    home: HomePaths, root: Path, config_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIOS_LESSONS__HARDENED_AFTER", "2")
    now = datetime.now(UTC)
    good, bad = timeout_fix(config_file), timeout_break(config_file)
    seen = failures(8, start=now - timedelta(hours=2))
    assert remediate(home, root, good, seen[0]).status == "succeeded"
    extract(home)  # the lesson, its fix, verified by that first success
    assert lesson(home).state == "verified"

    def step(pb: Playbook, event: Event) -> str:
        config_file.write_text('{"heartbeat": {"interval": 60}, "retries": 1}\n')
        remediate(home, root, pb, event)
        extract(home)
        return str(lesson(home).state)

    states = [
        step(good, seen[3]),
        step(bad, seen[4]),
        step(bad, seen[5]),
        step(bad, seen[6]),
        step(good, seen[7]),
    ]
    assert states == ["hardened", "verified", "draft", "draft", "verified"]
    assert kinds()[1:] == [
        "lesson.verified",
        "lesson.hardened",
        "lesson.demoted",
        "lesson.demoted",
        "lesson.fix_failed",
        "lesson.verified",
    ]
    final = lesson(home)
    assert (final.successes, final.failures) == (3, 3)
    # A pass that ran again from the start (its place lost) counts nothing twice.
    with open_store(home) as con:
        set_position(con, LIFECYCLE_CONSUMER, 0)
    assert extract(home).changes == []
    assert (lesson(home).successes, lesson(home).failures) == (3, 3)


def test_a_similar_proven_lesson_lends_its_fix(
    home: HomePaths, root: Path, config_file: Path
) -> None:
    now = datetime.now(UTC)
    pb = timeout_fix(config_file)
    for event in failures(3, start=now - timedelta(hours=3)):
        remediate(home, root, pb, event)
    extract(home)
    assert lesson(home).state == "verified"
    failures(  # the writer's own: its lessons may lend it their fixes (tests/test_memory_isolation)
        3,
        message="tool web_search timed out waiting {n}s for a reply",
        start=now - timedelta(hours=1),
    )
    [made] = extract(home).created
    assert made.signature == signature(
        "TimeoutError", "tool web_search timed out waiting 1s for a reply"
    )
    assert made.fix is not None and made.fix["playbook"] == "raise_interval"
    assert made.fix["evidence"].startswith(f"worked on the similar lesson {WRITERS}")
    failures(
        3,
        agent="crawler",
        error_type="PermissionError",
        message="cannot write {n}",
        start=now - timedelta(minutes=10),
    )
    unrelated = [m for m in extract(home).created if m.signature.startswith("PermissionError")]
    assert unrelated and unrelated[0].fix is None  # nothing proven is like it


# ------------------------------------------------------------------ the index and the CLI
def test_a_lost_index_is_rebuilt_from_the_log(home: HomePaths) -> None:
    failures(3, start=datetime.now(UTC) - timedelta(hours=1))
    extract(home)
    index = LessonIndex.open(home)
    assert index.similar("search tool timeout", 1)[0].lesson_id == WRITERS
    shutil.rmtree(home.root / "chroma")
    rebuilt = cli(home, "lessons", "reindex")
    assert rebuilt.returncode == 0 and "1 lesson(s) indexed" in rebuilt.stdout
    assert LessonIndex.open(home).similar("search tool timeout", 1)[0].lesson_id == WRITERS


def test_the_cli_lists_and_refuses_what_it_cannot_show(home: HomePaths) -> None:
    empty = cli(home, "lessons", "list")
    assert empty.returncode == 0 and "no lessons yet" in empty.stdout
    failures(3, start=datetime.now(UTC) - timedelta(hours=1))
    assert cli(home, "lessons", "extract").returncode == 0
    listed = json.loads(cli(home, "lessons", "list", "--state", "draft", "--json").stdout)
    assert [item["signature"] for item in listed] == [SEARCH]
    table = cli(home, "lessons", "list")
    assert WRITERS in table.stdout and "none known yet" in table.stdout
    bad_state = cli(home, "lessons", "list", "--state", "done")
    assert bad_state.returncode == 2 and "--state 'done'" in bad_state.stderr
    missing = cli(home, "lessons", "show", "lesson-nothing")
    assert missing.returncode == 2 and "no such lesson" in missing.stderr


# ------------------------------------------------------------------ applying lessons
WRITER_ONLY = {
    "type": "task.failed",
    "conditions": [{"path": "labels.agent", "op": "eq", "value": "writer"}],
}


def proven_lesson(
    home: HomePaths, root: Path, config_file: Path, shipped: Path, times: int
) -> Playbook:
    """A fix written for the writer's timeouts, verified ``times`` times: a proven lesson of
    the writer's, which the operator shares with the crawler, so its like failure may use it
    (the reader's same failure shares nothing)."""
    pb = fixes(config_file, "raise_interval", trigger=WRITER_ONLY, limits=LIMITS)
    (shipped / "raise_interval.json").write_text(
        json.dumps(pb.model_dump(mode="json", exclude_none=True))
    )
    start = datetime.now(UTC) - timedelta(hours=3)
    failures(1, agent="reader", start=start - timedelta(minutes=5))
    for event in failures(max(times, 3), start=start)[:times]:
        config_file.write_text('{"heartbeat": {"interval": 60}, "retries": 1}\n')
        assert remediate(home, root, pb, event).status == "succeeded"
    extract(home)
    shared = cli(home, "lessons", "share", WRITERS, "crawler")
    assert shared.returncode == 0 and f"crawler now sees {WRITERS} (writer's)" in shared.stdout
    return pb


def plan_for(home: HomePaths, root: Path, pb: Playbook) -> Any:
    from aios.config import load_config
    from aios.lessons.apply import ProvenFixes
    from aios.loop.optimizer import make_plan
    from aios.playbooks.matcher import PlaybookIndex
    from tests.loop_helpers import settings

    index = PlaybookIndex([pb])
    threshold = load_config(home).lessons.similarity or 0.4
    return make_plan(
        aios.bus(),
        home,
        index,
        settings(home, root),
        now=datetime.now(UTC) + timedelta(seconds=1),
        after_seq=0,
        lessons=ProvenFixes(LessonIndex.open(home), index, threshold),
    )


def crawler_timeout() -> Event:
    """The same kind of failure, from an agent the playbook was not written for."""
    [event] = failures(
        1,
        agent="crawler",
        message="tool search timed out after {n}s waiting for the index",
        start=datetime.now(UTC) - timedelta(minutes=1),
    )
    return event


def test_a_lesson_is_applied_to_a_new_similar_failure_and_verified(
    home: HomePaths, root: Path, config_file: Path, shipped: Path
) -> None:
    from aios.lessons.apply import current_fix
    from aios.playbooks.matcher import PlaybookIndex
    from aios.reactor import runner
    from aios.reactor.approval import PolicyApprover
    from tests.loop_helpers import settings

    pb = proven_lesson(home, root, config_file, shipped, times=3)
    assert lesson(home).state == "verified"
    config_file.write_text('{"heartbeat": {"interval": 60}, "retries": 1}\n')
    event = crawler_timeout()
    assert not PlaybookIndex([pb]).match(event), "the playbook itself does not name it"
    [item] = [i for i in plan_for(home, root, pb).items if i.event_id == event.id]
    assert item.playbook == "raise_interval" and item.lesson_id == WRITERS
    assert item.status == "proposed" and item.needs_approval  # verified, not hardened
    assert item.similarity is not None and item.similarity >= 0.4
    fix = current_fix(home, WRITERS, item.similarity)
    assert fix is not None and fix.state == "verified"
    [(_, waiting)] = runner.react_to(
        aios.bus(),
        home,
        PlaybookIndex([pb]),
        settings(home, root),
        PolicyApprover(False),
        [event.id],
        defer_approvals=True,
        lesson=fix,
    )
    assert waiting.status == "awaiting_approval" and waiting.request is not None
    assert f"Suggested by lesson {WRITERS} (verified" in waiting.request.description
    assert (
        runner.record_decision(
            aios.bus(),
            PlaybookIndex([pb]),
            settings(home, root),
            event.id,
            waiting.request,
            ApprovalDecision(True, "ops", "the lesson fits"),
        )
        is None
    )
    [(_, done)] = runner.react_to(
        aios.bus(),
        home,
        PlaybookIndex([pb]),
        settings(home, root),
        PolicyApprover(False),
        [event.id],
        defer_approvals=True,
        lesson=fix,
    )
    assert done.status == "succeeded"
    [finished] = [
        e
        for e in aios.bus().log.events()
        if e.type == "remediation.finished" and e.correlation_id == event.id
    ]
    assert finished.payload["lesson_id"] == WRITERS
    [change] = extract(home).changes
    assert change["lesson_id"] == WRITERS and change["remediation_id"] == done.remediation_id
    assert lesson(home).successes == 4


def test_a_hardened_lesson_with_a_low_risk_fix_runs_without_a_person(
    home: HomePaths, root: Path, config_file: Path, shipped: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aios.lessons.apply import current_fix
    from aios.playbooks.matcher import PlaybookIndex
    from aios.reactor import runner
    from aios.reactor.approval import PolicyApprover
    from tests.loop_helpers import settings

    monkeypatch.setenv("AIOS_LESSONS__HARDENED_AFTER", "2")
    pb = proven_lesson(home, root, config_file, shipped, times=2)
    assert lesson(home).state == "hardened"
    config_file.write_text('{"heartbeat": {"interval": 60}, "retries": 1}\n')
    event = crawler_timeout()
    [item] = [i for i in plan_for(home, root, pb).items if i.event_id == event.id]
    assert item.lesson_id == WRITERS and not item.needs_approval
    fix = current_fix(home, WRITERS, item.similarity or 0.0)
    [(_, done)] = runner.react_to(
        aios.bus(),
        home,
        PlaybookIndex([pb]),
        settings(home, root),
        PolicyApprover(False, "nobody may be asked"),
        [event.id],
        defer_approvals=True,
        lesson=fix,
    )
    assert done.status == "succeeded"
    assert not [e for e in aios.bus().log.events() if e.type == "approval.requested"]


def test_a_demoted_lesson_is_not_applied(
    home: HomePaths, root: Path, config_file: Path, shipped: Path
) -> None:
    from aios.lessons.apply import current_fix

    pb = proven_lesson(home, root, config_file, shipped, times=3)
    broken = breaks(config_file, "raise_interval", trigger=WRITER_ONLY, limits=LIMITS)
    [later] = failures(1, start=datetime.now(UTC) - timedelta(minutes=5))
    remediate(home, root, broken, later)
    extract(home)
    assert lesson(home).state == "draft"
    assert current_fix(home, WRITERS, 0.9) is None
    event = crawler_timeout()
    assert not [i for i in plan_for(home, root, pb).items if i.event_id == event.id]
