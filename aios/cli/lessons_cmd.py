"""``aios lessons``: extract lessons from the history, list them, find them by meaning, show
one with its history, share one agent's lesson with another, rebuild the index; as the operator
(everything) or as one agent sees them (``--agent``: its own lessons, the shared ones and those
shared with it; ``--agent shared``: the shared ones only)."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.text import Text

from aios.cli.output import console, print_json, rows_table
from aios.errors import InputError

app = typer.Typer(help="Lessons learnt from repeated failures.", no_args_is_help=True)
STATES = ("draft", "verified", "hardened")
AgentOption = Annotated[
    str | None,
    typer.Option(
        "--agent",
        help="Only what this agent sees: its own lessons, the shared ones and those shared "
        "with it (`shared`: the shared ones only).",
    ),
]


def _agent(agent: str | None) -> str | None:
    """The view ``--agent`` names: an agent, or ``shared`` (what every agent sees)."""
    from aios.memory.access import check_agent
    from aios.memory.records import SHARED

    if agent is None or agent == SHARED:
        return agent
    return check_agent(agent, "--agent")


def _fix(fix: dict[str, Any] | None) -> str:
    if not fix:
        return "none known yet"
    if fix.get("kind") == "evolution":
        return f"evolve {fix.get('agent')}: {fix.get('rule')} ({fix.get('key')})"
    return f"{fix.get('playbook')} ({fix.get('risk')} risk)"


@app.command()
def extract(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """One pass: repeated failures become lessons; finished remediations verify or demote them."""
    from aios.lessons.extract import run_pass

    report = run_pass()
    if as_json:
        print_json(report.to_dict())
        return
    console.print(
        f"{len(report.created)} new, {len(report.updated)} updated, "
        f"{len(report.changes)} verified/demoted; {report.indexed} indexed"
    )
    for lesson in report.created:
        console.print(Text(f"  new {lesson.lesson_id}: {lesson.signature} (x{lesson.count})"))
    for change in report.changes:
        console.print(
            Text(
                f"  {change['lesson_id']}: {change['from']} -> {change['to']} ({change['reason']})"
            )
        )


@app.command("list")
def list_lessons(
    state: Annotated[
        str | None, typer.Option(help="Only lessons in this state: draft, verified, hardened.")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many.")] = 100,
    agent: AgentOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """The lessons, most recently changed first."""
    from aios.lessons.projection import read_lessons
    from aios.store import open_store

    if state is not None and state not in STATES:
        raise InputError(f"--state {state!r}: one of {', '.join(STATES)}")
    with open_store() as con:
        lessons = read_lessons(con, state=state, limit=limit, agent=_agent(agent))
    if as_json:
        print_json([lesson.to_dict() for lesson in lessons])
        return
    if not lessons:
        console.print("no lessons yet: `aios lessons extract` makes them from repeated failures")
        return
    console.print(
        rows_table(
            ["id", "owner", "state", "seen", "signature", "fix", "ok/failed"],
            [
                (
                    lesson.lesson_id,
                    lesson.owner,
                    lesson.state,
                    lesson.count,
                    lesson.signature,
                    _fix(lesson.fix),
                    f"{lesson.successes}/{lesson.failures}",
                )
                for lesson in lessons
            ],
        )
    )


@app.command()
def search(
    text: Annotated[str, typer.Argument(help="What happened, in any words.")],
    top: Annotated[int, typer.Option(min=1, max=100, help="How many lessons.")] = 5,
    proven: Annotated[
        bool, typer.Option("--proven", help="Only verified and hardened lessons.")
    ] = False,
    agent: AgentOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """The lessons most similar to TEXT, best first, with their similarity (1 is identical)."""
    from aios.lessons.index import LessonIndex

    hits = LessonIndex.open().similar(text, top, proven_only=proven, agent=_agent(agent))
    if as_json:
        print_json(
            [
                {
                    "lesson_id": h.lesson_id,
                    "similarity": round(h.similarity, 4),
                    "owner": h.owner,
                    "state": h.state,
                    "signature": h.signature,
                    "fix": h.fix,
                }
                for h in hits
            ]
        )
        return
    if not hits:
        console.print("no lessons to search")
        return
    console.print(
        rows_table(
            ["similarity", "id", "owner", "state", "signature", "fix"],
            [
                (f"{h.similarity:.2f}", h.lesson_id, h.owner, h.state, h.signature, _fix(h.fix))
                for h in hits
            ],
        )
    )


@app.command()
def show(
    lesson_id: Annotated[str, typer.Argument(help="The lesson's id (or a unique prefix).")],
    agent: AgentOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """One lesson: symptom, counts, fix, state, owner, and every change to it."""
    from aios.lessons.projection import find_lesson, lesson_history
    from aios.store import open_store

    view = _agent(agent)
    with open_store() as con:
        lesson = find_lesson(con, lesson_id, view)
        lesson.history = lesson_history(con, lesson.lesson_id, view)
    if as_json:
        print_json(lesson.to_dict())
        return
    console.print(Text(f"{lesson.lesson_id}  {lesson.state}", style="bold"))
    for label, value in (
        ("signature", lesson.signature),
        ("symptom", lesson.symptom),
        ("seen", f"{lesson.count} times, {lesson.first_seen} .. {lesson.last_seen}"),
        ("agents", ", ".join(lesson.agents) or "-"),
        ("owner", lesson.owner),
        ("shared with", ", ".join(lesson.shared_with) or "-"),
        ("fix", _fix(lesson.fix) + (f": {lesson.fix['evidence']}" if lesson.fix else "")),
        ("record", f"{lesson.successes} verified, {lesson.failures} failed"),
    ):
        console.print(Text(f"  {label:<10} {value}"))
    console.print(
        rows_table(
            ["time", "change", "detail"],
            [
                (h["time"], h["type"], h["payload"].get("reason") or h["payload"].get("to") or "")
                for h in lesson.history
            ],
        )
    )


@app.command()
def share(
    lesson_id: Annotated[str, typer.Argument(help="The lesson's id (or a unique prefix).")],
    agent: Annotated[str, typer.Argument(help="The agent that may see it too.")],
) -> None:
    """Let AGENT see another agent's lesson too: its lookups, and the fixes offered for its
    failures, include it until `aios lessons unshare`."""
    _share(lesson_id, agent, share=True)


@app.command()
def unshare(
    lesson_id: Annotated[str, typer.Argument(help="The lesson's id (or a unique prefix).")],
    agent: Annotated[str, typer.Argument(help="The agent it was shared with.")],
) -> None:
    """Take back `aios lessons share`: AGENT no longer sees the lesson."""
    _share(lesson_id, agent, share=False)


def _share(lesson_id: str, agent: str, *, share: bool) -> None:
    from aios.home import HomePaths
    from aios.lessons.index import LessonIndex
    from aios.lessons.share import share_lesson, unshare_lesson
    from aios.runtime import default_bus

    paths = HomePaths.current()
    change = share_lesson if share else unshare_lesson
    lesson = change(default_bus(), paths, lesson_id, agent)
    LessonIndex.open(paths).sync(paths)
    done = "now sees" if share else "no longer sees"
    console.print(Text(f"{agent} {done} {lesson.lesson_id} ({lesson.owner}'s)"))


@app.command()
def reindex() -> None:
    """Rebuild the lesson index (Chroma or JSON) from the lessons table."""
    from aios.home import HomePaths
    from aios.lessons.index import LessonIndex

    paths = HomePaths.current()
    done = LessonIndex.open(paths).rebuild(paths)
    console.print(f"{done} lesson(s) indexed")
