"""Building a reactor from the configuration and running it over the log, without Prefect.

``react`` handles the events after the reactor's position (kept in the store), first warming
its state up on the window of history before that position, and moves the position forward
as it goes (not in a dry run). ``react_to`` handles given events (by id) with a reactor warmed
up on the history before the first of them, the other events between them counted toward
thresholds where they fall: what the Prefect flows call.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import orjson

from aios.autonomy import AutonomyPolicy, autonomy_of
from aios.bus import EventBus
from aios.config import AIOSConfig
from aios.errors import InputError
from aios.event import Event
from aios.home import HomePaths
from aios.playbooks.loader import LoadResult, load_playbooks
from aios.playbooks.matcher import PlaybookIndex
from aios.playbooks.model import Playbook
from aios.reactor.approval import ApprovalDecision, ApprovalRequest, Approver, PolicyApprover
from aios.reactor.engine import LessonFix, Outcome, Reactor, ReactorSettings, longest_window
from aios.reactor.state import REACTOR_SOURCE, REACTOR_TYPES
from aios.store import open_store
from aios.store.consumers import (
    events_after,
    events_between,
    events_with_ids,
    get_position,
    last_seq,
    seq_at,
    set_position,
)

CONSUMER = "reactor"


def playbook_dirs(config: AIOSConfig, extra: Sequence[Path] | None = None) -> list[Path]:
    """``--playbooks`` directories when given, else ``[reactor] playbook_dirs``."""
    return list(extra) if extra else list(config.reactor.playbook_dirs)


def load_index(
    config: AIOSConfig, extra: Sequence[Path] | None = None, *, strict: bool = True
) -> tuple[PlaybookIndex, LoadResult]:
    result = load_playbooks(playbook_dirs(config, extra), strict=strict)
    return PlaybookIndex(result.playbooks), result


def settings_from(config: AIOSConfig, paths: HomePaths) -> ReactorSettings:
    return ReactorSettings(
        paths=paths,
        allowed_roots=tuple(config.reactor.allowed_roots),
        agent_patterns=tuple(config.agents.patterns),
        protected_patterns=tuple(config.reactor.protected_patterns),
        approval_timeout_s=config.reactor.approval_timeout.total_seconds(),
        approve_from=config.reactor.approve_from,
        remediation_timeout_s=config.orchestration.remediation_timeout.total_seconds(),
        autonomy=AutonomyPolicy(
            demote_after=config.autonomy.demote_after, promote_after=config.autonomy.promote_after
        ),
    )


def state_window(playbooks: Iterable[Playbook]) -> timedelta:
    """How much history the reactor's state depends on."""
    return max([timedelta(minutes=5), *(longest_window(p) for p in playbooks)])


def warm_up(
    reactor: Reactor,
    paths: HomePaths,
    upto_seq: int,
    now: datetime,
    *,
    exclude: set[str] | None = None,
) -> int:
    """Rebuild ``reactor``'s state; returns how many events it read.

    The reactor's own steps are read up to the end of the log (a remediation a crashed run
    started after ``upto_seq`` must be seen, or its actions would run again) and as far back as
    the reactor keeps them (``reactor.keep``, days, not only the state window of minutes): a
    remediation a person was asked about still waits for a person, a denial still stands, and
    a remediation granted and done is not run again when its trigger is handled again later
    (a retried run, orphan recovery). The triggers counted toward thresholds are read for the
    state window, only up to ``upto_seq`` (those after it will be processed). ``exclude``
    leaves out events by id.
    """
    since = now - state_window(reactor.index.playbooks.values())
    kept_since = min(since, now - reactor.keep)
    triggers = [p.trigger.type for p in reactor.index.playbooks.values() if p.trigger.threshold]
    with open_store(paths) as con:
        end = last_seq(con)
        own = [
            *events_between(con, kept_since, end, REACTOR_TYPES, source=REACTOR_SOURCE),
            *events_between(con, since, end, REACTOR_TYPES),  # others' of these types: recent
        ]
        counted = list(events_between(con, since, upto_seq, triggers)) if triggers else []
        reactor.autonomy = autonomy_of(
            con, paths, reactor.index.playbooks.values(), reactor.settings.autonomy
        )
    merged = {seq: event for seq, event in own + counted if event.id not in (exclude or ())}
    reactor.warm_up(merged[seq] for seq in sorted(merged))
    return len(merged)


def _purge_trash(bus: EventBus, paths: HomePaths, retention: timedelta) -> None:
    """Drop files.cleanup's kept copies once the retention has passed (and say so)."""
    from aios.actions.files_cleanup import purge_trash

    purged = purge_trash(paths.root / "trash", retention.total_seconds())
    if purged:
        bus.emit(
            "trash.purged",
            {"remediations": purged, "retention_s": retention.total_seconds()},
            source="aios.reactor.maintenance",
        )


def _save(paths: HomePaths, position: int) -> None:
    with open_store(paths, sync_first=False) as con:
        set_position(con, CONSUMER, position)


@dataclass
class ReactReport:
    events: int = 0
    outcomes: list[tuple[Event, Outcome]] = field(default_factory=list)
    start_seq: int = 0
    end_seq: int = 0
    warmed_up: int = 0


def react(
    bus: EventBus,
    paths: HomePaths,
    index: PlaybookIndex,
    settings: ReactorSettings,
    approver: Approver,
    *,
    dry_run: bool = False,
    since: datetime | None = None,
    once: bool = True,
    poll_s: float = 1.0,
    on_outcome: Callable[[Event, Outcome], None] | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    trash_retention: timedelta = timedelta(days=7),
) -> ReactReport:
    """Process events after the reactor's position (or since ``since``) through ``index``."""
    report = ReactReport()
    with open_store(paths) as con:
        if since is not None:
            start = seq_at(con, since)
        else:
            stored = get_position(con, CONSUMER)
            start = stored if stored is not None else last_seq(con)
            if stored is None and not dry_run:
                set_position(con, CONSUMER, start)  # a first run starts at the end of the log
    report.start_seq = report.end_seq = start
    if not dry_run:
        _purge_trash(bus, paths, trash_retention)
    reactor = Reactor(index, bus, settings, approver, dry_run=dry_run)
    reactor.start_following(bus.log.end())  # before the warm-up: nothing falls in between
    report.warmed_up = warm_up(reactor, paths, start, datetime.now().astimezone())
    position = start
    while True:
        with open_store(paths) as con:
            batch = events_after(con, position, limit=1000)
        for seq, event in batch:
            report.events += 1
            acted = False
            for outcome in reactor.process(event):  # its own steps only update its state
                report.outcomes.append((event, outcome))
                acted = acted or outcome.status != "waiting"
                if on_outcome is not None:
                    on_outcome(event, outcome)
            position = seq
            if acted and not dry_run:  # a remediation ran: keep the place at once
                _save(paths, position)
        if batch and not dry_run:
            _save(paths, position)
        report.end_seq = position
        if batch:
            continue
        if once or should_stop():
            return report
        time.sleep(poll_s)


def react_to(
    bus: EventBus,
    paths: HomePaths,
    index: PlaybookIndex,
    settings: ReactorSettings,
    approver: Approver,
    event_ids: Sequence[str],
    *,
    only: Collection[str] | None = None,
    defer_approvals: bool = False,
    run_guard: Callable[[], AbstractContextManager[object]] | None = None,
    dry_run: bool = False,
    lesson: LessonFix | None = None,
) -> list[tuple[Event, Outcome]]:
    """Handle the events ``event_ids`` (in log order) through ``index`` (its playbooks in
    ``only``, when given; ``lesson``'s fix too); returns each event with what happened for
    each playbook.

    Raises InputError naming an id that is not in the log. The same ids again (a retried run)
    repeat nothing that is done: see ``Reactor``.
    """
    wanted = list(dict.fromkeys(event_ids))
    with open_store(paths) as con:
        found = events_with_ids(con, wanted)
    missing = set(wanted) - {event.id for _, event in found}
    if missing:
        raise InputError(f"no event with id {sorted(missing)[0]} in the log")
    reactor = Reactor(
        index,
        bus,
        settings,
        approver,
        dry_run=dry_run,
        defer_approvals=defer_approvals,
        run_guard=run_guard,
    )
    reactor.start_following(bus.log.end())
    between: list[tuple[int, Event]] = []
    if found:
        now = datetime.now().astimezone()
        warm_up(reactor, paths, found[0][0] - 1, now, exclude=set(wanted))
        between = _counted_between(reactor, paths, found[0][0], found[-1][0], now, set(wanted))
    # The other triggers between the given events count toward thresholds where they fall,
    # as they did when the events were first decided (the executor hands over several at once).
    counted = iter(between)
    upcoming = next(counted, None)
    results = []
    for seq, event in found:
        while upcoming is not None and upcoming[0] < seq:
            reactor.warm_up([upcoming[1]])
            upcoming = next(counted, None)
        for outcome in reactor.process(event, only=only, lesson=lesson):
            results.append((event, outcome))
    return results


def _counted_between(
    reactor: Reactor,
    paths: HomePaths,
    after_seq: int,
    before_seq: int,
    now: datetime,
    exclude: set[str],
) -> list[tuple[int, Event]]:
    """Events strictly between two seqs that a threshold playbook counts, oldest first."""
    triggers = [p.trigger.type for p in reactor.index.playbooks.values() if p.trigger.threshold]
    if not triggers or before_seq - after_seq < 2:
        return []
    since = now - state_window(reactor.index.playbooks.values())
    with open_store(paths) as con:
        rows = list(events_between(con, since, before_seq - 1, triggers))
    return [(seq, e) for seq, e in rows if seq > after_seq and e.id not in exclude]


def record_decision(
    bus: EventBus,
    index: PlaybookIndex,
    settings: ReactorSettings,
    trigger_id: str,
    request: ApprovalRequest,
    decision: ApprovalDecision,
) -> Outcome | None:
    """Record a person's answer to a deferred approval request (see ``Reactor``)."""
    with open_store(settings.paths) as con:
        found = events_with_ids(con, [trigger_id])
    if not found:
        raise InputError(f"no event with id {trigger_id} in the log")
    reactor = Reactor(index, bus, settings, PolicyApprover(False, "unused"))
    return reactor.record_decision(found[0][1], request, decision)


def revert(
    bus: EventBus,
    paths: HomePaths,
    settings: ReactorSettings,
    playbook: Playbook,
    trigger: Event,
    rid: str,
    reason: str,
) -> list[str]:
    """Undo remediation ``rid`` (finished) with the undo records its actions left in the log;
    returns what was restored."""
    with open_store(paths) as con:
        rows = con.execute(
            "SELECT payload FROM events WHERE type = 'action.completed' AND source = ? "
            "AND payload->>'remediation_id' = ? ORDER BY seq",
            [REACTOR_SOURCE, rid],
        ).fetchall()
    undos = []
    for (raw,) in rows:
        payload = orjson.loads(raw)
        undos.append((int(payload.get("index", -1)), dict(payload.get("undo") or {})))
    reactor = Reactor(PlaybookIndex([playbook]), bus, settings, PolicyApprover(False, "unused"))
    return reactor.revert(playbook, trigger, rid, undos, reason)
