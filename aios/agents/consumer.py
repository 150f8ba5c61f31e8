"""Running the lifecycle over the log: new events in, ``agent.state_changed`` events out.

The lifecycle keeps its place in the store (consumer ``lifecycle``) and resumes from the
recorded states and each agent's run of consecutive failures, so it needs no memory of its own.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from aios.agents.lifecycle import SOURCE, Lifecycle
from aios.agents.registry import current_states
from aios.bus import EventBus
from aios.event import Event
from aios.home import HomePaths
from aios.store import open_store
from aios.store.consumers import events_after, get_position, set_position

CONSUMER = "lifecycle"
_TRAILING_FAILURES = """
WITH last_ok AS (
    SELECT coalesce(labels->>'agent', source) AS agent, max(seq) AS seq
    FROM events WHERE type IN ('task.completed', 'agent.reset') AND seq <= ? GROUP BY 1
)
SELECT coalesce(e.labels->>'agent', e.source) AS agent, count(*)
FROM events e LEFT JOIN last_ok ON last_ok.agent = coalesce(e.labels->>'agent', e.source)
WHERE e.type = 'task.failed' AND e.seq <= ? AND e.seq > coalesce(last_ok.seq, 0)
GROUP BY 1
"""


_SINCE_ENTERED = """
WITH entered AS (
    SELECT payload->>'agent' AS agent, max(seq) AS seq FROM events
    WHERE type = 'agent.state_changed' AND source = $1 GROUP BY 1
)
SELECT coalesce(e.labels->>'agent', e.source), e.type, e.payload->>'from', e.payload->>'to',
       e.time
FROM events e JOIN entered ON entered.agent = coalesce(e.labels->>'agent', e.source)
WHERE e.seq > entered.seq AND e.seq <= $2
  AND ((e.type = 'agent.transition_refused' AND e.source = $1)
       OR e.type IN ('agent.memory_high', 'agent.resource_exhausted'))
ORDER BY e.seq
"""


def run_lifecycle(
    bus: EventBus, paths: HomePaths, now: datetime, cooldown: timedelta = timedelta(minutes=5)
) -> list[Event]:
    """Feed the events since the lifecycle's place; emit the transitions; return them."""
    lifecycle = Lifecycle(cooldown)
    with open_store(paths) as con:
        position = get_position(con, CONSUMER) or 0
        for agent, (state, since) in current_states(con).items():
            current = lifecycle.state(agent)
            current.state, current.since = state, since
        for agent, failures in con.execute(_TRAILING_FAILURES, [position, position]).fetchall():
            lifecycle.state(agent).consecutive_failures = int(failures)
        # What happened since each state was entered: refusals already said, and the latest
        # sign of exhaustion of a blocked agent (its cooldown runs from there).
        rows = con.execute(_SINCE_ENTERED, [SOURCE, position]).fetchall()
        for agent, kind, payload_from, payload_to, time in rows:
            current = lifecycle.state(agent)
            if kind == "agent.transition_refused":
                current.refused.add((payload_from, payload_to))
            elif current.state == "blocked" and current.since is not None:
                current.since = max(current.since, time)
    emitted: list[Event] = []
    while True:
        with open_store(paths) as con:
            batch = events_after(con, position, limit=5000)
        if not batch:
            break
        changes = []
        for seq, event in batch:
            changes.extend(lifecycle.feed(event))
            position = seq
        if changes:
            emitted += bus.emit_many([{**change.event(), "source": SOURCE} for change in changes])
        with open_store(paths, sync_first=False) as con:
            set_position(con, CONSUMER, position)
    due = lifecycle.tick(now)
    if due:
        emitted += bus.emit_many([{**change.event(), "source": SOURCE} for change in due])
    return emitted
