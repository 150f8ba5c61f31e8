"""``aios approvals``: list, approve and reject remediations waiting for a person, through the
Prefect API (the same answer as the Resume form in the Prefect UI); add, remove and list the
approvers allowed to answer (``[approvals.approvers]`` in config.toml, see ``aios.approvers``).
"""

from __future__ import annotations

import getpass
import socket
import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

from aios.actions.base import Risk
from aios.approvers import SOURCE as WAITING_SOURCE
from aios.cli.output import console, err_console, print_json, rows_table
from aios.errors import AIOSError, InputError
from aios.home import HomePaths

if TYPE_CHECKING:
    from aios.approvers import Answer

app = typer.Typer(
    help="Remediations waiting for a person: list, approve, reject; who may approve them."
)
WAITING_TYPE = "approval.waiting"


def _waiting() -> list[dict[str, Any]]:
    """Paused AIOS approval runs, newest first, with what the log says about each."""
    import orjson

    from aios.prefect_api import HttpPrefectAPI, paused_filter
    from aios.store import open_store

    with HttpPrefectAPI() as api:
        runs = api.read_flow_runs(paused_filter())
    if not runs:
        return []
    ids = [str(run["id"]) for run in runs]
    with open_store() as con:
        rows = con.execute(
            """
            SELECT w.payload, r.payload->>'description', r.correlation_id FROM events w
            LEFT JOIN events r ON r.type = 'approval.requested' AND r.source = 'aios.reactor'
                 AND r.payload->>'remediation_id' = w.payload->>'remediation_id'
            WHERE w.type = ? AND w.source = ?
              AND w.payload->>'flow_run_id' IN (SELECT unnest(?::VARCHAR[]))
            ORDER BY w.seq, r.seq
            """,
            [WAITING_TYPE, WAITING_SOURCE, ids],
        ).fetchall()
    known = {}
    for payload, description, trigger_id in rows:  # the newest wait and request win
        data = orjson.loads(payload)
        known[str(data["flow_run_id"])] = {
            **data,
            "description": description or "",
            "trigger_id": trigger_id,
        }
    found = []
    for run in runs:
        info = known.get(str(run["id"]))
        if info is None:
            continue  # paused for something else than an AIOS approval
        state = run.get("state") or {}
        found.append(
            {
                "flow_run_id": str(run["id"]),
                "flow_run_name": run.get("name"),
                "paused_since": state.get("timestamp"),
                "remediation_id": info["remediation_id"],
                "playbook": info["playbook"],
                "risk": info["risk"],
                "deadline": info["deadline"],
                "description": info["description"],
                "trigger_id": info["trigger_id"],
            }
        )
    return found


@app.command("list")
def list_approvals(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Remediations waiting for a person."""
    found = _waiting()
    if as_json:
        print_json(found)
        return
    if not found:
        console.print("no remediation is waiting for approval")
        return
    console.print(
        rows_table(
            ["run", "playbook", "risk", "waiting since", "denied at", "remediation"],
            [
                (
                    item["flow_run_id"],
                    item["playbook"],
                    item["risk"],
                    str(item["paused_since"])[:19],
                    str(item["deadline"])[:19],
                    item["remediation_id"],
                )
                for item in found
            ],
        )
    )


def _resolve(run: str) -> dict[str, Any]:
    """A waiting approval by flow run id, remediation id, or a unique prefix of either."""
    found = _waiting()
    exact = [i for i in found if run in (i["flow_run_id"], i["remediation_id"])]
    matches = exact or [
        i for i in found if i["flow_run_id"].startswith(run) or i["remediation_id"].startswith(run)
    ]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise InputError(
            f"no remediation waiting for approval matches {run!r} (see aios approvals list)"
        )
    runs = ", ".join(f"{i['flow_run_id']} ({i['remediation_id']})" for i in matches)
    raise InputError(f"{run!r} matches {len(matches)} waiting approvals: {runs}; give the run id")


RECORDED_WAIT_S = 30.0


def _refuse(item: dict[str, Any], answer: Answer, refusal: str, reason: str) -> InputError:
    """Record the refusal of ``answer`` (``approval.refused``, via the terminal, with the flow
    run it was meant for); the error to raise. A valid code that came with it is spent and a
    wrong one counted toward the lockout, as the flow run would have: a refused answer cannot
    be given again elsewhere."""
    from aios.approvers import ApprovalGuard, Subject

    subject = Subject(
        str(item["remediation_id"]),
        str(item["playbook"]),
        str(item["risk"]),
        item.get("trigger_id") or None,
        via="terminal",
        flow_run_id=str(item["flow_run_id"]),
    )
    verdict = ApprovalGuard(HomePaths.current()).judge(subject, answer, (refusal, reason))
    return InputError(f"refused: {verdict.reason}")


def _identity(
    item: dict[str, Any], approver: str | None, code: str | None, approve: bool
) -> tuple[str, str]:
    """Who answers and with which code. With approvers configured, a configured name whose
    max_risk covers the remediation's risk and a code of the right form are required (asked
    for at a terminal); an answer that lacks one is refused here, and recorded as such.
    The flow run's own check is the one that lets an answer count."""
    from aios.approvers import DIGITS, Answer, ApprovalGuard, may_approve

    approvers = ApprovalGuard(HomePaths.current()).approvers()  # ConfigError when unsafe
    if not approvers:
        name = (approver or "").strip()
        return name or f"{getpass.getuser()}@{socket.gethostname()} (terminal)", code or ""
    interactive = sys.stdin.isatty()
    if not approver:
        if not interactive:
            raise InputError("--approver NAME is required: approvers are configured")
        approver = str(typer.prompt("Approver"))
    approver = approver.strip()
    if not approver:
        raise _refuse(
            item, Answer("", code or "", approve), "no_name", "an approver's name is required"
        )
    entry = approvers.get(approver)
    risk = str(item["risk"])
    if entry is None:
        raise _refuse(
            item,
            Answer(approver, code or "", approve),
            "unknown_approver",
            f"{approver!r} is not an approver (see aios approvals approvers)",
        )
    if not may_approve(entry, risk):
        raise _refuse(
            item,
            Answer(approver, code or "", approve),
            "risk_above_max",
            f"{approver} may approve up to {entry.max_risk} risk; remediation "
            f"{item['remediation_id']} is {risk} risk",
        )
    code = "".join((code or "").split())
    if not code:
        if not interactive:
            raise InputError(f"--code CODE is required: {approver}'s current {DIGITS}-digit code")
        code = "".join(str(typer.prompt(f"{approver}'s {DIGITS}-digit code")).split())
    if len(code) != DIGITS or not code.isascii() or not code.isdigit():
        raise _refuse(
            item, Answer(approver, code, approve), "code_wrong", f"--code must be {DIGITS} digits"
        )
    return approver, code


def _answer(
    run: str, approve: bool, reason: str | None, approver: str | None, code: str | None
) -> None:
    import time

    from aios.prefect_api import HttpPrefectAPI, PrefectAPIError
    from aios.runtime import default_bus

    item = _resolve(run)
    who, code = _identity(item, approver, code, approve)
    verdict = "approved" if approve else "rejected"
    body = {
        "approve": approve,
        "reason": reason or f"{verdict} at the terminal",
        "approver": who,
        "code": code,
        "remediation_id": item["remediation_id"],  # the run asks again if it moved on
    }
    log = default_bus().log
    cursor = log.end()
    with HttpPrefectAPI() as api:
        result = api.resume_flow_run(item["flow_run_id"], body)
    status = str(result.get("status", "")).upper()
    if status != "ACCEPT":
        details = result.get("details") or {}
        raise PrefectAPIError(
            f"the server did not resume flow run {item['flow_run_id']}: "
            f"{details.get('reason') or status}"
        )
    # Say what was recorded, not what was asked: a deadline or another answer may have won.
    deadline = time.monotonic() + RECORDED_WAIT_S
    while time.monotonic() < deadline:
        for event, after in log.read(cursor=cursor):
            cursor = after
            if event.payload.get("remediation_id") != item["remediation_id"]:
                continue
            if event.type == "approval.late" and event.payload.get("approver") == who:
                raise AIOSError(
                    f"too late: remediation {item['remediation_id']} was no longer waiting "
                    "(its approval expired); nothing was run"
                )
            if (
                event.type == "approval.refused"
                and event.payload.get("approver") == who
                and event.payload.get("flow_run_id") == item["flow_run_id"]
            ):
                raise AIOSError(
                    f"refused: {event.payload.get('reason')}; remediation "
                    f"{item['remediation_id']} still waits for an answer"
                )
            if event.type in ("approval.granted", "approval.denied", "approval.expired"):
                recorded = event.type.split(".")[1]
                by = event.payload.get("approver")
                wanted = "granted" if approve else "denied"
                if recorded != wanted or by != who:
                    raise AIOSError(
                        f"remediation {item['remediation_id']} was {recorded} by {by}, not by "
                        "this answer"
                    )
                console.print(
                    f"{verdict} remediation {item['remediation_id']} ({item['playbook']}); "
                    f"recorded, flow run {item['flow_run_id']} goes on"
                )
                return
        time.sleep(0.5)
    raise AIOSError(
        f"flow run {item['flow_run_id']} was resumed, but no decision about remediation "
        f"{item['remediation_id']} was recorded within {RECORDED_WAIT_S:.0f} s: whether it "
        "counted is unknown (see aios events tail)"
    )


RunArg = Annotated[str, typer.Argument(help="Flow run id or remediation id (or a prefix).")]
ReasonOpt = Annotated[str | None, typer.Option(help="Why (recorded).")]
ApproverOpt = Annotated[
    str | None,
    typer.Option(help="Who: a configured approver's name (without approvers: any; user@host)."),
]
CodeOpt = Annotated[
    str | None,
    typer.Option(
        help="The approver's current 6-digit code, when approvers are configured (asked for "
        "at a terminal)."
    ),
]


@app.command()
def approve(
    run: RunArg,
    reason: ReasonOpt = None,
    approver: ApproverOpt = None,
    code: CodeOpt = None,
) -> None:
    """Approve a waiting remediation: it runs."""
    _answer(run, True, reason, approver, code)


@app.command()
def reject(
    run: RunArg,
    reason: ReasonOpt = None,
    approver: ApproverOpt = None,
    code: CodeOpt = None,
) -> None:
    """Reject a waiting remediation: it is skipped, and the run ends cleanly. With approvers
    configured a rejection needs an approver and code too: a forged one would deny a fix."""
    _answer(run, False, reason, approver, code)


def _edit_approvers(
    paths: HomePaths, *, add: tuple[str, str, str] | None = None, remove: str | None = None
) -> None:
    """Add (name, max_risk, secret) or remove an approver in config.toml: comments and layout
    kept, the file replaced atomically and left readable by its owner alone (it holds the
    secrets). A configuration that does not load is refused before anything is written."""
    import os
    import tomllib

    import tomlkit
    from pydantic import ValidationError
    from tomlkit.items import Table

    from aios.atomic import write_atomic
    from aios.config import APPROVER_NAME, AIOSConfig, config_template, load_config
    from aios.errors import ConfigError
    from aios.locking import file_lock

    name = add[0] if add else str(remove)
    if add and not APPROVER_NAME.match(name):
        raise InputError(f"approver name {name!r}: letters, digits and . _ @ - only (at most 64)")
    with file_lock(paths.root / "config.toml.lock"):  # one edit at a time
        if paths.config.exists():
            if paths.config.stat().st_uid != os.geteuid():
                raise ConfigError("belongs to another user: not edited", path=str(paths.config))
            load_config(paths)  # names file, line and key of what is wrong already
            text = paths.config.read_text(encoding="utf-8")
        else:
            text = config_template()
        document = tomlkit.parse(text)
        approvals = document.get("approvals")
        if approvals is None:
            approvals = tomlkit.table()
            document.append("approvals", approvals)
        approvers = approvals.get("approvers")
        if approvers is None:
            approvers = tomlkit.table(is_super_table=True)
            approvals.append("approvers", approvers)
        if not isinstance(approvals, Table) or not isinstance(approvers, Table):
            raise ConfigError(
                "[approvals.approvers] is not a table here: edit it by hand",
                path=str(paths.config),
            )
        if remove is not None:
            if name not in approvers:
                raise InputError(f"{name!r} is not an approver (see aios approvals approvers)")
            del approvers[name]
        if add is not None:
            if name in approvers:
                raise InputError(
                    f"{name} is an approver already; remove-approver first to give a new secret"
                )
            entry = tomlkit.table()
            entry.add("max_risk", add[1])
            entry.add("totp_secret", add[2])
            entry.add(tomlkit.nl())
            approvers.append(name, entry)
        updated = tomlkit.dumps(document)
        try:
            AIOSConfig(**tomllib.loads(updated))
        except ValidationError as exc:
            raise ConfigError(f"the edit would not load: {exc}", path=str(paths.config)) from None
        write_atomic(paths.config, updated.encode(), mode=0o600)


@app.command("add-approver")
def add_approver(
    name: Annotated[str, typer.Argument(help="The approver's name (letters, digits, . _ @ -).")],
    max_risk: Annotated[
        Risk, typer.Option("--max-risk", help="The highest risk they may approve.")
    ],
) -> None:
    """Add an approver: a new one-time-code secret, written into config.toml (made 0600).

    Prints the otpauth:// URI and the secret once, for an authenticator app.
    """
    from aios.approvers import new_secret, provisioning_uri

    paths = HomePaths.current()
    secret = new_secret()
    _edit_approvers(paths, add=(name, max_risk.value, secret))
    console.print(
        f"added approver {name} (max risk {max_risk.value}) to {paths.config} (mode 0600)",
        markup=False,
    )
    # Plain lines, never wrapped: they are copied into an authenticator app.
    typer.echo("Add it to an authenticator app now; the secret is not shown again:")
    typer.echo(f"  {provisioning_uri(name, secret)}")
    typer.echo(f"  secret: {secret}")


@app.command("remove-approver")
def remove_approver(
    name: Annotated[str, typer.Argument(help="The approver to remove.")],
) -> None:
    """Remove an approver: their codes stop counting at once."""

    paths = HomePaths.current()
    _edit_approvers(paths, remove=name)
    console.print(f"removed approver {name} from {paths.config}", markup=False)


@app.command("approvers")
def list_approvers(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """The approvers and the highest risk each may approve (never their secrets)."""
    from aios.approvers import check_private
    from aios.config import load_config

    paths = HomePaths.current()
    approvers = load_config(paths).approvals.approvers
    found = [{"name": n, "max_risk": a.max_risk} for n, a in sorted(approvers.items())]
    if approvers:
        try:
            check_private(paths.config)
        except AIOSError as exc:
            err_console.print(f"warning: {exc}", markup=False)
    if as_json:
        print_json(found)
        return
    if not found:
        console.print("no approvers configured: anyone may approve, the name given is recorded")
        return
    console.print(rows_table(["approver", "max risk"], [(a["name"], a["max_risk"]) for a in found]))
