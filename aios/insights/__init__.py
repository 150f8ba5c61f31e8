"""What the history says, as pandas frames: scores over time, remediations and MTTR, playbook
effectiveness, error signatures, approval load and refused answers, event rates and throughput.

The dashboard and the notebooks both read through here; every function takes a connection
from ``aios.store.open_store`` (``open_home`` picks the home and opens it).
"""

from aios.insights.activity import event_rates, recent_events, recent_tasks, throughput
from aios.insights.incidents import (
    approval_load,
    lessons,
    mttr,
    mttr_of,
    playbook_effectiveness,
    refused_answers,
    remediations,
    top_signatures,
    waiting_approvals,
)
from aios.insights.scores import GRADE_BANDS, score_components, score_history
from aios.insights.source import chosen_home, open_home
from aios.insights.suggestions import suggestions

__all__ = [
    "GRADE_BANDS",
    "approval_load",
    "chosen_home",
    "event_rates",
    "lessons",
    "mttr",
    "mttr_of",
    "open_home",
    "playbook_effectiveness",
    "recent_events",
    "recent_tasks",
    "refused_answers",
    "remediations",
    "score_components",
    "score_history",
    "suggestions",
    "throughput",
    "top_signatures",
    "waiting_approvals",
]
