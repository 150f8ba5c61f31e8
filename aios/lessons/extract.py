"""Knowledge extraction: repeated failures become lessons, and remediations move them along.

One pass (``extract_lessons``) does three things:

1. Groups the task failures of the window by owner (the failing agent, or ``shared`` for
   failures that name no usable agent) and normalised error signature; a signature one owner
   saw at least ``[lessons] min_count`` times becomes that owner's draft lesson (symptom,
   counts, first and last time, all of its own failures) with a candidate fix: the playbook
   that verified most often on the owner's failures with the same signature (else on shared
   ones), else the fix of a proven lesson the owner sees similar enough to it. A lesson that
   was seen again, or found a fix, is updated. Another agent with the same failure gets a
   lesson of its own: nothing of one agent's failures reaches another's view.
2. Judges every remediation that finished since the last pass: one that ran a lesson's fix on
   a failure of that lesson's owner (or was started by the lesson) verifies it (hardened after
   ``[lessons] hardened_after`` successes in a row); one that failed or was rolled back
   demotes it.
   Each remediation counts once, even when a pass is repeated.
3. Brings the lesson index (the memory palace's ``lessons`` collection) level with the table.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import duckdb
import orjson

from aios.bus import EventBus
from aios.config import AIOSConfig
from aios.home import HomePaths
from aios.lessons.index import LessonIndex
from aios.lessons.model import (
    CONFIRMED,
    CREATED,
    DEMOTED,
    FIX_FAILED,
    HARDENED,
    JUDGEMENTS,
    SOURCE,
    UPDATED,
    VERIFIED,
    Fix,
    Lesson,
    lesson_id,
    owner_of,
)
from aios.lessons.projection import read_lessons
from aios.loop.analyst import AGENT_OF, FailurePattern, failure_patterns
from aios.loop.signatures import signature
from aios.memory.records import SHARED
from aios.playbooks.matcher import PlaybookIndex
from aios.store import open_store
from aios.store.consumers import get_position, last_seq, set_position

LIFECYCLE_CONSUMER = "lessons.lifecycle"
FIX_HISTORY = timedelta(days=30)  # how far back a verified fix is looked for
JUDGED = ("succeeded", "failed", "rolled_back")
_DEMOTE = {"hardened": "verified", "verified": "draft", "draft": "draft"}


@dataclass
class ExtractReport:
    created: list[Lesson] = field(default_factory=list)
    updated: list[Lesson] = field(default_factory=list)
    changes: list[dict[str, Any]] = field(default_factory=list)  # verified / hardened / demoted
    indexed: int = 0

    def to_markdown(self) -> str:
        lines = ["## Lessons", ""]
        if not (self.created or self.updated or self.changes):
            return "\n".join([*lines, "No lesson was made or changed.", ""])
        if self.created:
            lines += ["| new lesson | seen | agents | candidate fix |", "|---|---:|---|---|"]
            for lesson in self.created:
                fix = (lesson.fix or {}).get("playbook") or "none known yet"
                lines.append(
                    f"| {_cell(lesson.signature)} | {lesson.count} | "
                    f"{_cell(', '.join(lesson.agents))} | {_cell(fix)} |"
                )
            lines.append("")
        for change in self.changes:
            lines.append(
                f"- {change['lesson_id']}: {change['from']} -> {change['to']} "
                f"({_cell(change['reason'])})"
            )
        if self.updated:
            lines.append(f"- {len(self.updated)} lesson(s) seen again or given a fix")
        return "\n".join(lines) + "\n"

    def to_dict(self) -> dict[str, Any]:
        return {
            "created": [lesson.to_dict() for lesson in self.created],
            "updated": [lesson.to_dict() for lesson in self.updated],
            "changes": self.changes,
            "indexed": self.indexed,
        }


def extract_lessons(
    bus: EventBus,
    paths: HomePaths,
    config: AIOSConfig,
    playbooks: PlaybookIndex,
    index: LessonIndex,
    *,
    now: datetime,
) -> ExtractReport:
    """One extraction pass (see the module docstring); returns what it did."""
    settings = config.lessons
    report = ExtractReport()
    with open_store(paths) as con:
        patterns = [
            p
            for p in failure_patterns(con, now - settings.window, now, limit=None, by_owner=True)
            if p.count >= settings.min_count
        ]
        known = {(lesson.owner, lesson.signature): lesson for lesson in read_lessons(con)}
        verified = _verified_fixes(con, now - FIX_HISTORY, now, playbooks)
    events: list[dict[str, Any]] = []
    for pattern in patterns:
        owner = pattern.owner or SHARED
        lesson = known.get((owner, pattern.signature))
        fix = verified.get((owner, pattern.signature)) or verified.get((SHARED, pattern.signature))
        if fix is None and (lesson is None or lesson.fix is None):
            threshold = settings.similarity or index.palace.embedding.default_similarity
            fix = _similar_fix(index, pattern, threshold, owner)
        if lesson is None:
            made = _new_lesson(pattern, fix, now)
            if made.fix is None:  # no playbook known to work: the evolution rule, if any
                made.fix = evolution_candidate(config, pattern)
            report.created.append(made)
            events.append(_event(CREATED, made, _created_payload(made)))
            continue
        change: dict[str, Any] = {}
        if pattern.count > lesson.count or pattern.last > lesson.last_seen:
            change.update(
                count=max(pattern.count, lesson.count),
                last=max(pattern.last, lesson.last_seen).isoformat(),
            )
        # A draft takes a better-evidenced fix; a proven lesson keeps the fix that proved it.
        new_fix = fix is not None and (lesson.fix or {}).get("playbook") != fix.playbook
        if fix is not None and new_fix and (lesson.fix is None or lesson.state == "draft"):
            change["fix"] = fix.to_dict()
        if change:
            report.updated.append(lesson)
            events.append(_event(UPDATED, lesson, {"lesson_id": lesson.lesson_id, **change}))
    if events:
        bus.emit_many(events)
    report.changes = judge_remediations(bus, paths, config)
    report.indexed = index.sync(paths)
    return report


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")[:160]


def _event(kind: str, lesson: Lesson, payload: dict[str, Any]) -> dict[str, Any]:
    labels = {"lesson": lesson.lesson_id}
    if lesson.owner != SHARED:
        labels["agent"] = lesson.owner
    return {"type": kind, "source": SOURCE, "labels": labels, "payload": payload}


def _new_lesson(pattern: FailurePattern, fix: Fix | None, now: datetime) -> Lesson:
    owner = pattern.owner or SHARED
    return Lesson(
        lesson_id=lesson_id(pattern.signature, owner),
        signature=pattern.signature,
        symptom=pattern.sample,
        state="draft",
        count=pattern.count,
        agents=sorted(pattern.agents),
        first_seen=pattern.first,
        last_seen=pattern.last,
        fix=fix.to_dict() if fix else None,
        owner=owner,
        sample_event_id=pattern.sample_event_id,
        created=now,
        updated=now,
    )


def _created_payload(lesson: Lesson) -> dict[str, Any]:
    return {
        "lesson_id": lesson.lesson_id,
        "owner": lesson.owner,
        "signature": lesson.signature,
        "symptom": lesson.symptom,
        "count": lesson.count,
        "agents": lesson.agents,
        "first": lesson.first_seen.isoformat(),
        "last": lesson.last_seen.isoformat(),
        "sample_event_id": lesson.sample_event_id,
        "fix": lesson.fix,
    }


def _triggers(con: duckdb.DuckDBPyConnection, ids: list[str]) -> dict[str, tuple[str, str]]:
    """Trigger event id -> (its owner as a lesson's, its error signature or '' when it is not
    a task failure)."""
    if not ids:
        return {}
    rows = con.execute(
        f"""
        SELECT id, type, payload->>'error_type', payload->>'error', {AGENT_OF} FROM events
        WHERE id IN (SELECT unnest(?::UUID[]))
        """,
        [ids],
    ).fetchall()
    return {
        str(eid): (owner_of(agent), signature(kind_, text) if kind == "task.failed" else "")
        for eid, kind, kind_, text, agent in rows
    }


def _verified_fixes(
    con: duckdb.DuckDBPyConnection, since: datetime, until: datetime, playbooks: PlaybookIndex
) -> dict[tuple[str, str], Fix]:
    """(Owner, signature) -> the loaded playbook that verified most often on that owner's
    failures with it."""
    rows = con.execute(
        """
        SELECT correlation_id, payload->>'playbook' FROM events
        WHERE type = 'remediation.finished' AND source = 'aios.reactor'
          AND payload->>'outcome' = 'succeeded' AND time >= ? AND time < ?
        """,
        [since, until],
    ).fetchall()
    triggers = _triggers(con, [str(c) for c, _ in rows if c])
    tally: dict[tuple[str, str], dict[str, int]] = {}
    for trigger, playbook in rows:
        owner, sig = triggers.get(str(trigger), (SHARED, ""))
        if sig and playbook in playbooks.playbooks:
            by_playbook = tally.setdefault((owner, sig), {})
            by_playbook[playbook] = by_playbook.get(playbook, 0) + 1
    found = {}
    for key, counts in tally.items():
        playbook, times = max(counts.items(), key=lambda item: (item[1], item[0]))
        risk = playbooks.playbooks[playbook].effective_risk().value
        found[key] = Fix(playbook, risk, f"verified {times} time(s) on this failure")
    return found


def _similar_fix(
    index: LessonIndex, pattern: FailurePattern, threshold: float, owner: str
) -> Fix | None:
    """The fix of the most similar verified or hardened lesson, if similar enough, among the
    owner's own and the shared ones (not those only shared with it: its lesson would name
    them): a lesson never passes on another agent's."""
    text = f"{pattern.signature}\n{pattern.sample}"
    for hit in index.similar(text, 3, proven_only=True, agent=owner):
        fix = hit.fix
        if hit.owner not in (owner, SHARED):
            continue
        if hit.similarity >= threshold and fix and fix.get("playbook"):
            return Fix(
                str(fix["playbook"]),
                str(fix.get("risk", "medium")),
                f"worked on the similar lesson {hit.lesson_id} (similarity {hit.similarity:.2f})",
            )
    return None


def judge_remediations(bus: EventBus, paths: HomePaths, config: AIOSConfig) -> list[dict[str, Any]]:
    """Verify, harden or demote lessons by the remediations finished since the last pass."""
    hardened_after = config.lessons.hardened_after
    with open_store(paths) as con:
        upto = last_seq(con)
        after = get_position(con, LIFECYCLE_CONSUMER) or 0
        rows = con.execute(
            """
            SELECT seq, correlation_id, payload FROM events
            WHERE seq > ? AND seq <= ? AND type = 'remediation.finished'
              AND source = 'aios.reactor'
            ORDER BY seq
            """,
            [after, upto],
        ).fetchall()
        finished = [(seq, str(c or ""), orjson.loads(p)) for seq, c, p in rows]
        finished = [f for f in finished if f[2].get("outcome") in JUDGED]
        triggers = _triggers(con, [c for _, c, _ in finished if c])
        lessons = {lesson.lesson_id: lesson for lesson in read_lessons(con)}
        by_sig = {(lesson.owner, lesson.signature): lesson for lesson in lessons.values()}
        done = _already_judged(con)
    changes: list[dict[str, Any]] = []
    for _, trigger, payload in finished:
        rid = str(payload.get("remediation_id", ""))
        if not rid or rid in done:
            continue
        lesson = lessons.get(str(payload.get("lesson_id") or ""))
        if lesson is None:
            candidate = by_sig.get(triggers.get(trigger, (SHARED, "")))
            fix = (candidate.fix or {}) if candidate else {}
            if candidate is not None and fix.get("playbook") == payload.get("playbook"):
                lesson = candidate
        if lesson is None:
            continue
        succeeded = payload["outcome"] == "succeeded"
        reason = (
            f"{payload.get('playbook')} verified on {trigger or 'its trigger'}"
            if succeeded
            else f"{payload.get('playbook')} {payload['outcome']}: {payload.get('reason', '')}"
        )
        changes.append(
            record_judgement(
                bus,
                lesson,
                succeeded,
                rid,
                reason,
                hardened_after,
                playbook=payload.get("playbook"),
                trigger=trigger or None,
            )
        )
        done.add(rid)
    with open_store(paths) as con:
        set_position(con, LIFECYCLE_CONSUMER, upto)
    return changes


def _already_judged(con: duckdb.DuckDBPyConnection) -> set[str]:
    rows = con.execute(
        """
        SELECT DISTINCT payload->>'remediation_id' FROM events
        WHERE source = ? AND type IN (SELECT unnest(?::VARCHAR[]))
        """,
        [SOURCE, list(JUDGEMENTS)],
    ).fetchall()
    return {str(row[0]) for row in rows if row[0]}


def run_pass(
    paths: HomePaths | None = None,
    *,
    config: AIOSConfig | None = None,
    now: datetime | None = None,
) -> ExtractReport:
    """One extraction pass on this home, as ``aios lessons extract`` and the learner run it."""
    from datetime import UTC

    from aios.config import load_config
    from aios.reactor.runner import load_index
    from aios.runtime import default_bus

    paths = paths or HomePaths.current()
    config = config or load_config(paths)
    playbooks, _ = load_index(config, strict=False)
    return extract_lessons(
        default_bus(),
        paths,
        config,
        playbooks,
        LessonIndex.open(paths, config),
        now=now or datetime.now(UTC),
    )


def record_judgement(
    bus: EventBus,
    lesson: Lesson,
    succeeded: bool,
    rid: str,
    reason: str,
    hardened_after: int,
    *,
    playbook: Any = None,
    trigger: str | None = None,
) -> dict[str, Any]:
    """Move ``lesson`` one step for a fix that worked (or did not), and record it."""
    before = lesson.state
    if succeeded:
        lesson.successes += 1
        lesson.streak += 1
        after_state = "verified" if before == "draft" else before
        if lesson.streak >= hardened_after:
            after_state = "hardened"
        kind = (
            CONFIRMED
            if after_state == before
            else (HARDENED if after_state == "hardened" else VERIFIED)
        )
    else:
        lesson.failures += 1
        lesson.streak = 0
        after_state = _DEMOTE[before]
        kind = DEMOTED if after_state != before else FIX_FAILED
    lesson.state = after_state
    change = {
        "lesson_id": lesson.lesson_id,
        "from": before,
        "to": after_state,
        "remediation_id": rid,
        "playbook": playbook,
        "successes": lesson.successes,
        "failures": lesson.failures,
        "streak": lesson.streak,
        "reason": reason.strip()[:500],
    }
    bus.emit(
        kind,
        change,
        source=SOURCE,
        labels={"lesson": lesson.lesson_id},
        correlation_id=trigger,
    )
    return {"type": kind, **change}


def evolution_candidate(config: AIOSConfig, pattern: FailurePattern) -> dict[str, Any] | None:
    """The change agent evolution would make for this failure (an agent of it is configured
    and a rule fits), as a lesson's candidate fix; None otherwise."""
    from aios.evolution import key_for, rule_for

    rule = rule_for(pattern.signature)
    for agent in sorted(pattern.agents):
        spec = config.evolution.agents.get(agent)
        key = key_for(spec, rule) if spec is not None else None
        if spec is not None and rule is not None and key is not None:
            return {
                "kind": "evolution",
                "agent": agent,
                "rule": rule,
                "key": key,
                "risk": "low" if spec.file else "medium",
                "evidence": f"the evolution rule for {rule.replace('_', ' ')} (not tried yet)",
            }
    return None
