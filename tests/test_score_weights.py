"""Score weight learning on a generated history: the component that drops in incident hours
gets the weight, the suggestion changes nothing until a person accepts it, and too little
history says so."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta

import aios
from aios.config import load_config
from aios.event import Event
from aios.home import HomePaths
from aios.score.weights import accept_weights, suggest_weights
from aios.store import open_store
from tests.conftest import run_aios

NOW = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)


def history(hours: int, incidents: set[int]) -> None:
    """``hours`` hours back from now: CPU high in the incident hours (each confirmed by a
    person), tool calls failing at random in all of them."""
    rng = random.Random(7)
    events = []
    for h in range(hours):
        at = NOW - timedelta(hours=hours - h) + timedelta(minutes=10)
        hot = h in incidents
        events.append(
            Event.create(
                type="host.metrics",
                source="aios.monitor",
                time=at,
                payload={"cpu": 96.0 if hot else 20.0, "memory": 40.0, "disk_max": 50.0},
            )
        )
        for n in range(6):
            kind = "task.failed" if rng.random() < 0.3 else "task.completed"
            events.append(
                Event.create(
                    type=kind,
                    source="writer",
                    time=at + timedelta(minutes=n),
                    labels={"agent": "writer", "tool": "search"},
                    payload={"latency_ms": 200 + rng.random() * 100},
                )
            )
        if hot:
            events.append(
                Event.create(
                    type="incident.confirmed",
                    source="ops",
                    severity="high",
                    time=at + timedelta(minutes=20),
                    payload={"what": "the crawler pinned the CPU"},
                )
            )
    aios.bus().publish(events)


def test_the_component_that_tracks_incidents_gets_the_weight(home: HomePaths) -> None:
    history(48, incidents={3, 8, 13, 19, 24, 30, 36, 41})
    with open_store(home) as con:
        found = suggest_weights(con, preset="ops", now=NOW)
    assert found.incident_hours == 8 and found.other_hours == 40
    assert found.suggested is not None, found.reason
    assert found.suggested["headroom"] > found.current["headroom"] == 0.1
    assert found.suggested_auc is not None and found.current_auc is not None
    assert found.suggested_auc >= found.current_auc + 0.05
    assert abs(sum(found.suggested.values()) - 1.0) < 1e-6
    assert load_config(home).score.weights == {}  # nothing changed


def test_accepting_writes_config_toml_and_keeps_its_comments(home: HomePaths) -> None:
    home.config.write_text('# my settings\n[score]\npreset = "ops"  # we run ops\n')
    history(48, incidents={2, 9, 15, 22, 27, 33, 40, 45})
    shown = run_aios("score", "--suggest-weights", "--json", home=home)
    assert shown.returncode == 0, shown.stderr
    suggestion = json.loads(shown.stdout)
    assert suggestion["worth_it"] and not suggestion["accepted"]
    with open_store(home) as con:
        found = suggest_weights(con, preset="ops", now=NOW)
    path = accept_weights(aios.bus(), found, home)
    text = path.read_text()
    assert "# my settings" in text and "# we run ops" in text
    assert load_config(home).score.weights["ops"] == found.suggested
    [accepted] = [e for e in aios.bus().log.events() if e.type == "score.weights_accepted"]
    assert accepted.payload["after"] == found.suggested


def test_too_little_history_says_so_and_suggests_nothing(home: HomePaths) -> None:
    history(6, incidents={1, 4})
    result = run_aios("score", "--accept-weights", home=home)
    assert result.returncode == 0, result.stderr
    assert "not enough history: 2 incident and 4 other hours" in result.stdout
    assert "nothing written" in result.stdout
    assert not home.config.exists() or "weights" not in home.config.read_text()
