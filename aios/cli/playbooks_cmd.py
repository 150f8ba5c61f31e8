"""``aios playbooks ...`` and ``aios react``: load, check, explain, try and run playbooks."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.markup import escape
from rich.text import Text

from aios.cli.output import console, err_console, print_json, rows_table
from aios.errors import InputError

app = typer.Typer(
    help="Load, validate, explain, test and simulate playbooks.", no_args_is_help=True
)

PlaybooksOpt = Annotated[
    list[Path] | None,
    typer.Option("--playbooks", help="Playbook directory or file (repeatable); default: config."),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]
EventOpt = Annotated[
    str, typer.Option("--event", help="The event as JSON, or @FILE holding it (type required).")
]


def _config() -> Any:
    from aios.config import load_config

    return load_config()


def _index(playbooks: list[Path] | None) -> Any:
    from aios.reactor.runner import load_index

    index, _ = load_index(_config(), playbooks)
    return index


def _event(text: str) -> Any:
    from aios.bus import coerce_event

    if text.startswith("@"):
        try:
            text = Path(text[1:]).read_text(encoding="utf-8")
        except OSError as exc:
            raise InputError(f"--event {text}: {exc.strerror}") from None
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise InputError(f"--event: bad JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InputError("--event must be a JSON object with at least a type")
    return coerce_event(data)


def _playbook(index: Any, playbook_id: str) -> Any:
    if playbook_id not in index.playbooks:
        known = ", ".join(sorted(index.playbooks)) or "none"
        raise InputError(f"no playbook {playbook_id!r} (loaded: {known})")
    return index.playbooks[playbook_id]


def _autonomy(index: Any) -> tuple[dict[str, Any], Any, str]:
    """Each playbook's earned autonomy (from the store), the policy, and the risk policy."""
    from aios.autonomy import AutonomyPolicy, autonomy_of
    from aios.home import HomePaths
    from aios.store import open_store

    config = _config()
    policy = AutonomyPolicy(config.autonomy.demote_after, config.autonomy.promote_after)
    paths = HomePaths.current()
    with open_store(paths) as con:
        found = autonomy_of(con, paths, index.playbooks.values(), policy)
    return found, policy, config.reactor.approve_from


@app.command("list")
def list_playbooks(playbooks: PlaybooksOpt = None, as_json: JsonOpt = False) -> None:
    """The loaded playbooks: trigger, actions, risk, approval (as earned), verify, record."""
    index = _index(playbooks)
    autonomy, policy, approve_from = _autonomy(index)
    rows = []
    for playbook in index.playbooks.values():
        earned = autonomy[playbook.id]
        rows.append(
            {
                "id": playbook.id,
                "enabled": playbook.enabled,
                "trigger": playbook.trigger.type,
                "actions": [a.type for a in playbook.actions],
                "risk": playbook.risk.value,
                "effective_risk": playbook.effective_risk().value,
                "risk_problems": playbook.risk_problems(),
                "needs_approval": earned.needs_approval(playbook, approve_from),
                "autonomy": earned.level(playbook, approve_from),
                "promotion_earned": earned.earned,
                "record": earned.to_dict(),
                "verify": f"{playbook.verify.probe} {playbook.verify.expect}"
                if playbook.verify
                else None,
                "source": playbook.source,
            }
        )
    if as_json:
        print_json(rows)
        return
    console.print(
        rows_table(
            ["id", "on", "trigger", "actions", "risk", "approval", "record", "verify", "source"],
            [
                (
                    r["id"],
                    "yes" if r["enabled"] else "no",
                    r["trigger"],
                    ", ".join(r["actions"]),
                    r["effective_risk"]
                    + ("" if r["risk"] == r["effective_risk"] else f" (declared {r['risk']})"),
                    ("ask" if r["needs_approval"] else "auto")
                    + ("" if r["autonomy"] in ("asks", "auto") else f" ({r['autonomy']})")
                    + (
                        ", promoted for an earlier version: confirm again"
                        if r["record"]["stale_promotion"]
                        else ", promotion earned"
                        if r["promotion_earned"]
                        else ""
                    ),
                    f"{r['record']['verified']} ok, {r['record']['failed']} failed, "
                    f"{r['record']['approved_in_a_row']}/{policy.promote_after} approved in a row",
                    r["verify"] or "none (unverified)",
                    r["source"],
                )
                for r in rows
            ],
        )
    )
    for r in rows:
        for why in r["risk_problems"]:
            err_console.print(Text(f"{r['id']}: counted as high risk: {why}", style="yellow"))


@app.command()
def promote(
    playbook_id: Annotated[str, typer.Argument(metavar="ID", help="The playbook to promote.")],
    reason: Annotated[str | None, typer.Option(help="Why (recorded).")] = None,
    approver: Annotated[
        str | None,
        typer.Option(
            help="Who: a configured approver whose max_risk covers the playbook's risk "
            "(without approvers: any; default user@host)."
        ),
    ] = None,
    code: Annotated[
        str | None,
        typer.Option(
            help="The approver's current 6-digit code, when approvers are configured (asked "
            "for at a terminal)."
        ),
    ] = None,
    playbooks: PlaybooksOpt = None,
) -> None:
    """Confirm a promotion a playbook earned: it then runs without asking unless high risk.

    A promotion answers every future approval of the playbook at once, so with approvers
    configured it takes one of them, with their current code, allowed the playbook's risk.
    """
    import getpass
    import socket

    from aios.autonomy import promote as record_promotion
    from aios.home import HomePaths
    from aios.runtime import default_bus

    index = _index(playbooks)
    playbook = _playbook(index, playbook_id)
    autonomy, policy, _ = _autonomy(index)
    earned = autonomy[playbook.id]
    if earned.promoted:
        raise InputError(f"{playbook.id} is promoted already")
    risk = playbook.effective_risk().value
    if risk == "high":
        raise InputError(f"{playbook.id} is high risk: it always asks a person")
    if not earned.earned:
        raise InputError(
            f"{playbook.id} has not earned a promotion: {earned.approved_in_a_row} of "
            f"{policy.promote_after} approved and verified runs in a row"
        )
    paths = HomePaths.current()
    bus = default_bus()
    verified = _promotion_approver(paths, bus, playbook.id, risk, approver, code)
    who = verified or approver or f"{getpass.getuser()}@{socket.gethostname()}"
    record_promotion(
        bus, paths, playbook, who, reason or "confirmed at the terminal", verified=bool(verified)
    )
    console.print(f"{playbook.id} promoted by {escape(who)}: it runs without asking a person")


def _promotion_approver(
    paths: Any, bus: Any, playbook_id: str, risk: str, approver: str | None, code: str | None
) -> str:
    """With approvers configured: the approver whose code proved this promotion (the answer
    recorded as ``approval.verified`` or ``approval.refused``, its code spent either way);
    a refusal raises. Without approvers: "" (the name given is recorded, not checked)."""
    import sys

    from aios.approvers import DIGITS, Answer, ApprovalGuard, Subject

    guard = ApprovalGuard(paths, emit=bus.emit)
    if not guard.approvers():  # ConfigError (exit 2) when the file is not the owner's alone
        return ""
    interactive = sys.stdin.isatty()
    if not approver:
        if not interactive:
            raise InputError("--approver NAME is required: approvers are configured")
        approver = str(typer.prompt("Approver")).strip()
    if not code:
        if not interactive:
            raise InputError(f"--code CODE is required: {approver}'s current {DIGITS}-digit code")
        code = str(typer.prompt(f"{approver}'s {DIGITS}-digit code"))
    subject = Subject(
        remediation_id=f"autonomy:{playbook_id}", playbook=playbook_id, risk=risk, via="terminal"
    )
    verdict = guard.judge(subject, Answer(approver, code, True))
    if not verdict.allowed:
        raise InputError(f"promotion of {playbook_id} refused: {verdict.reason}")
    return verdict.approver


@app.command()
def validate(
    paths: Annotated[
        list[Path] | None, typer.Argument(help="Files or directories (default: configured).")
    ] = None,
    playbooks: PlaybooksOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Check playbooks; exit 1 naming file, line, playbook and field of every problem."""
    from aios.playbooks.loader import load_playbooks
    from aios.reactor.runner import playbook_dirs

    targets = list(paths or []) + list(playbooks or []) or playbook_dirs(_config())
    result = load_playbooks(targets, strict=False)
    if as_json:
        print_json(
            {
                "ok": not result.problems,
                "playbooks": [p.id for p in result.playbooks],
                "files": result.files,
                "problems": [p.to_dict() for p in result.problems],
            }
        )
    elif result.problems:
        for problem in result.problems:
            err_console.print(Text(str(problem), style="red"))
        err_console.print(f"{len(result.problems)} problem(s) in {len(result.files)} file(s)")
    else:
        console.print(f"{len(result.playbooks)} playbook(s) valid in {len(result.files)} file(s)")
    raise typer.Exit(1 if result.problems else 0)


@app.command()
def schema() -> None:
    """Print the playbook JSON Schema (for editors)."""
    from aios.playbooks.model import Playbook

    print_json(Playbook.model_json_schema())


def _state_checks(playbook: Any, event: Any) -> dict[str, Any]:
    """Threshold, throttle and breaker for ``event`` as the log stands now."""
    from aios.home import HomePaths
    from aios.playbooks.matcher import PlaybookIndex
    from aios.reactor.approval import PolicyApprover
    from aios.reactor.engine import Reactor
    from aios.reactor.runner import settings_from, warm_up
    from aios.reactor.state import target_key
    from aios.runtime import default_bus
    from aios.store import open_store
    from aios.store.consumers import last_seq

    paths = HomePaths.current()
    reactor = Reactor(
        PlaybookIndex([playbook]),
        default_bus(),
        settings_from(_config(), paths),
        PolicyApprover(False),
    )
    with open_store(paths) as con:
        upto = last_seq(con)
    warm_up(reactor, paths, upto, datetime.now(UTC), exclude={event.id})
    state = reactor.state
    now = min(event.time, datetime.now(UTC))
    reached, count, group = state.count_match(playbook, event, now)
    throttled, throttle_group, last = state.throttled(playbook, event, now)
    target = target_key(event, playbook)
    breaker = state.breaker(playbook, target, now)
    threshold = playbook.trigger.threshold
    return {
        "threshold": None
        if threshold is None
        else {"reached": reached, "count": count, "needed": threshold.count, "group": group},
        "throttle": {
            "throttled": throttled,
            "group": throttle_group,
            "last_fired": last.isoformat() if last else None,
        },
        "target": target,
        "breaker": breaker.to_dict(),
    }


@app.command()
def explain(
    playbook_id: Annotated[str, typer.Argument(metavar="ID")],
    event: EventOpt,
    playbooks: PlaybooksOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Why a playbook would or would not fire for an event: every condition, value and verdict.

    Exit 0 if it would fire, 1 if not.
    """
    index = _index(playbooks)
    playbook = _playbook(index, playbook_id)
    the_event = _event(event)
    explanation = index.explain(playbook_id, the_event)
    checks = _state_checks(playbook, the_event) if explanation.matched else {}
    fires = explanation.matched and playbook.enabled and _passes(checks)
    if as_json:
        print_json({**explanation.to_dict(), "state": checks, "would_fire": fires})
    else:
        for line in explanation.lines():
            console.print(Text(line))
        for line in _state_lines(checks):
            console.print(Text(line))
        console.print(Text(f"=> {'would fire' if fires else 'would not fire'}", style="bold"))
    raise typer.Exit(0 if fires else 1)


def _passes(checks: dict[str, Any]) -> bool:
    threshold = checks.get("threshold")
    return (
        (threshold is None or threshold["reached"])
        and not checks["throttle"]["throttled"]
        and not checks["breaker"]["open"]
    )


def _state_lines(checks: dict[str, Any]) -> list[str]:
    if not checks:
        return []
    out = []
    threshold = checks["threshold"]
    if threshold is not None:
        mark = "✓" if threshold["reached"] else "✗"
        out.append(
            f"{mark} threshold: {threshold['count']} of {threshold['needed']} events in the "
            f"window, counting this one ({threshold['group']})"
        )
    throttle = checks["throttle"]
    if throttle["throttled"]:
        out.append(f"✗ throttled: fired for {throttle['group']} at {throttle['last_fired']}")
    breaker = checks["breaker"]
    mark = "✗" if breaker["open"] else "✓"
    out.append(
        f"{mark} breaker for {checks['target']}: "
        + (breaker["reason"] if breaker["open"] else "closed")
    )
    return out


@app.command()
def test(
    playbook_id: Annotated[str, typer.Argument(metavar="ID")],
    event: EventOpt,
    playbooks: PlaybooksOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The full dry-run plan for an event: what would be done, at what risk. Nothing runs."""
    from aios.home import HomePaths
    from aios.reactor.engine import action_context, remediation_id
    from aios.reactor.runner import settings_from

    index = _index(playbooks)
    playbook = _playbook(index, playbook_id)
    the_event = _event(event)
    explanation = index.explain(playbook_id, the_event)
    settings = settings_from(_config(), HomePaths.current())
    rid = remediation_id(the_event, playbook)
    contexts = [action_context(settings, the_event, rid, i) for i in range(len(playbook.actions))]
    plans, errors = [], []
    for action, ctx in zip(playbook.actions, contexts, strict=True):
        try:
            plans.append(action.plan(ctx).to_dict())
        except (Exception, SystemExit) as exc:  # a plan that fails is what the user needs to see
            errors.append(f"{action.type}: {exc}")
            plans.append({"action": action.type, "summary": f"cannot plan: {exc}"})
    result = {
        "playbook": playbook.id,
        "matched": explanation.matched,
        "explanation": explanation.to_dict(),
        "effective_risk": playbook.effective_risk().value,
        "needs_approval": playbook.needs_approval(),
        "plan": plans,
        "verify": playbook.verify.model_dump(mode="json") if playbook.verify else None,
        "errors": errors,
        "executed": False,
    }
    if as_json:
        print_json(result)
    else:
        for line in explanation.lines():
            console.print(Text(line))
        console.print(
            f"risk {result['effective_risk']}; "
            + ("needs approval" if result["needs_approval"] else "runs without asking")
        )
        for number, plan in enumerate(plans, start=1):
            console.print(Text(f"  {number}. {plan['summary']}"))
        verify = playbook.verify
        console.print(
            Text(
                f"verify: {verify.probe} expected {verify.expect} within {verify.within}"
                if verify
                else "verify: none (the outcome would be unverified)"
            )
        )
        console.print("dry run: nothing was executed")
    raise typer.Exit(1 if errors else 0)


@app.command()
def simulate(
    since: Annotated[str, typer.Option(help="History to replay: a duration (7d) or ISO time.")],
    playbooks: PlaybooksOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Replay history against the current playbooks: fires, targets, approvals, breakers."""
    from aios.durations import parse_time
    from aios.home import HomePaths
    from aios.reactor.runner import settings_from
    from aios.reactor.simulate import simulate as run_simulation
    from aios.store import open_store
    from aios.store.consumers import events_between, last_seq

    start = parse_time(since)
    index = _index(playbooks)
    paths = HomePaths.current()
    with open_store(paths) as con:
        history = [e for _, e in events_between(con, start, last_seq(con))]
    report = run_simulation(index, history, settings_from(_config(), paths))
    if as_json:
        print_json(report.to_dict())
        return
    console.print(f"replayed {report.events} events since {start:%Y-%m-%d %H:%M}Z")
    console.print(
        rows_table(
            [
                "playbook",
                "fires",
                "targets",
                "approvals",
                "breakers opened",
                "throttled",
                "below threshold",
            ],
            [
                (
                    p.playbook,
                    p.fires,
                    ", ".join(f"{t} ×{n}" for t, n in sorted(p.targets.items())) or "-",
                    p.approvals_needed,
                    p.skipped.get("breaker_open", 0),
                    p.skipped.get("throttled", 0),
                    p.waiting,
                )
                for p in report.playbooks.values()
            ],
        )
    )
    console.print(escape(report.note), style="dim")


def react(
    once: Annotated[bool, typer.Option("--once", help="Handle what is there, then stop.")] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Plan and record, execute nothing.")
    ] = False,
    since: Annotated[
        str | None,
        typer.Option(help="Start from events since (24h, ISO) instead of the saved place."),
    ] = None,
    playbooks: PlaybooksOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Run the reactor on the log without Prefect: match, approve, act, verify, roll back."""
    from aios.durations import parse_time
    from aios.home import HomePaths
    from aios.reactor.approval import TerminalApprover
    from aios.reactor.runner import react as run_reactor
    from aios.reactor.runner import settings_from
    from aios.runtime import default_bus

    config = _config()
    from aios.reactor.runner import load_index

    index, _ = load_index(config, playbooks)
    paths = HomePaths.current()
    start = parse_time(since) if since else None

    def show(event: Any, outcome: Any) -> None:
        if as_json:
            print_json({"event": event.id, "type": event.type, **outcome.to_dict()}, indent=False)
        else:
            console.print(
                Text(
                    f"{event.type} {event.id[:8]} -> {outcome.playbook}: {outcome.status}"
                    + (f" ({outcome.reason})" if outcome.reason else "")
                )
            )

    try:
        report = run_reactor(
            default_bus(),
            paths,
            index,
            settings_from(config, paths),
            TerminalApprover(),
            dry_run=dry_run,
            since=start,
            once=once,
            on_outcome=show,
            trash_retention=config.reactor.trash_retention,
        )
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    if not as_json:
        console.print(
            f"handled {report.events} event(s) (seq {report.start_seq}..{report.end_seq}); "
            f"{len(index)} playbook(s)" + ("; dry run: nothing executed" if dry_run else "")
        )
