"""Matching events to playbooks, indexed by event type, with explanations.

Exact trigger types sit in a dictionary; globs are filed under their literal first segment
(``resource.*`` under ``resource``) so an event is only compared with the playbooks that could
match its type, however many unrelated playbooks there are. Globs that start with a wildcard
are checked for every event.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from aios.event import Event
from aios.event_filter import compile_glob
from aios.playbooks.conditions import (
    ConditionResult,
    Predicate,
    compile_condition,
    explain_condition,
)
from aios.playbooks.model import Playbook

_WILDCARDS = "*?["


@dataclass(frozen=True)
class Compiled:
    playbook: Playbook
    predicate: Predicate | None
    exact: bool


@dataclass
class Explanation:
    """Why a playbook did or did not match an event (state checks are added by the reactor)."""

    playbook: str
    matched: bool
    type_matched: bool
    event_type: str
    trigger_type: str
    conditions: ConditionResult | None = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "playbook": self.playbook,
            "matched": self.matched,
            "type_matched": self.type_matched,
            "event_type": self.event_type,
            "trigger_type": self.trigger_type,
            "conditions": self.conditions.to_dict() if self.conditions else None,
            "notes": self.notes,
        }

    def lines(self) -> list[str]:
        mark = "✓" if self.type_matched else "✗"
        out = [f"{mark} type {self.event_type!r} against {self.trigger_type!r}"]
        if self.conditions is not None:
            out.extend(self.conditions.lines())
        elif self.type_matched:
            out.append("✓ no conditions")
        out.extend(self.notes)
        return out


class PlaybookIndex:
    """The playbooks, ready for matching."""

    def __init__(self, playbooks: Iterable[Playbook]) -> None:
        self.playbooks: dict[str, Playbook] = {}
        self._exact: dict[str, list[Compiled]] = {}
        self._by_segment: dict[str, list[Compiled]] = {}
        self._anywhere: list[Compiled] = []
        for playbook in playbooks:
            self.playbooks[playbook.id] = playbook
            condition = playbook.condition()
            pattern = playbook.trigger.type
            exact = not any(ch in pattern for ch in _WILDCARDS)
            compiled = Compiled(
                playbook, compile_condition(condition) if condition else None, exact
            )
            if exact:
                self._exact.setdefault(pattern, []).append(compiled)
                continue
            literal = pattern[: min(pattern.find(ch) for ch in _WILDCARDS if ch in pattern)]
            if "." in literal:
                self._by_segment.setdefault(literal.split(".", 1)[0], []).append(compiled)
            else:
                self._anywhere.append(compiled)

    def __len__(self) -> int:
        return len(self.playbooks)

    def candidates(self, event_type: str) -> list[Compiled]:
        """Playbooks whose trigger type matches ``event_type`` (conditions not yet checked)."""
        found = list(self._exact.get(event_type, ()))
        first = event_type.split(".", 1)[0]
        for compiled in (*self._by_segment.get(first, ()), *self._anywhere):
            if compile_glob(compiled.playbook.trigger.type).match(event_type):
                found.append(compiled)
        return found

    def match(self, event: Event) -> list[Playbook]:
        """Playbooks whose type and conditions match ``event`` (enabled or not)."""
        return [
            c.playbook
            for c in self.candidates(event.type)
            if c.predicate is None or c.predicate(event)
        ]

    def match_explained(self, event: Event) -> list[tuple[Playbook, Explanation]]:
        """The matching playbooks, each with the explanation of its conditions."""
        return [(p, self.explain(p.id, event)) for p in self.match(event)]

    def explain(self, playbook_id: str, event: Event) -> Explanation:
        """Evaluate every condition of one playbook against ``event``; KeyError if unknown."""
        playbook = self.playbooks[playbook_id]
        type_matched = compile_glob(playbook.trigger.type).match(event.type) is not None
        condition = playbook.condition()
        result = explain_condition(condition, event) if condition else None
        matched = type_matched and (result is None or result.verdict)
        explanation = Explanation(
            playbook.id, matched, type_matched, event.type, playbook.trigger.type, result
        )
        if not playbook.enabled:
            explanation.notes.append("! the playbook is disabled: it matches but never runs")
        return explanation
