"""``aios approvals``: list, approve and reject remediations waiting for a person, through the
Prefect API (the same answer as the Resume form in the Prefect UI)."""

from __future__ import annotations

import getpass
import socket
from typing import Annotated, Any

import typer

from aios.cli.output import console, print_json, rows_table
from aios.errors import AIOSError, InputError

app = typer.Typer(help="Remediations waiting for a person: list, approve, reject.")
WAITING_TYPE = "approval.waiting"
WAITING_SOURCE = "aios.approvals"


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
            SELECT w.payload, r.payload->>'description' FROM events w
            LEFT JOIN events r ON r.type = 'approval.requested' AND r.source = 'aios.reactor'
                 AND r.payload->>'remediation_id' = w.payload->>'remediation_id'
            WHERE w.type = ? AND w.source = ?
              AND w.payload->>'flow_run_id' IN (SELECT unnest(?::VARCHAR[]))
            ORDER BY w.seq
            """,
            [WAITING_TYPE, WAITING_SOURCE, ids],
        ).fetchall()
    known = {}
    for payload, description in rows:  # the newest wait of a run wins
        data = orjson.loads(payload)
        known[str(data["flow_run_id"])] = {**data, "description": description or ""}
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


def _answer(run: str, approve: bool, reason: str | None, approver: str | None) -> None:
    import time

    from aios.prefect_api import HttpPrefectAPI, PrefectAPIError
    from aios.runtime import default_bus

    item = _resolve(run)
    who = approver or f"{getpass.getuser()}@{socket.gethostname()} (terminal)"
    verdict = "approved" if approve else "rejected"
    body = {
        "approve": approve,
        "reason": reason or f"{verdict} at the terminal",
        "approver": who,
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
    console.print(
        f"{verdict} remediation {item['remediation_id']} ({item['playbook']}); flow run "
        f"{item['flow_run_id']} resumed, but no decision was recorded within "
        f"{RECORDED_WAIT_S:.0f} s: see aios events tail"
    )


@app.command()
def approve(
    run: Annotated[str, typer.Argument(help="Flow run id or remediation id (or a prefix).")],
    reason: Annotated[str | None, typer.Option(help="Why (recorded).")] = None,
    approver: Annotated[str | None, typer.Option(help="Who (default: user@host).")] = None,
) -> None:
    """Approve a waiting remediation: it runs."""
    _answer(run, True, reason, approver)


@app.command()
def reject(
    run: Annotated[str, typer.Argument(help="Flow run id or remediation id (or a prefix).")],
    reason: Annotated[str | None, typer.Option(help="Why (recorded).")] = None,
    approver: Annotated[str | None, typer.Option(help="Who (default: user@host).")] = None,
) -> None:
    """Reject a waiting remediation: it is skipped, and the run ends cleanly."""
    _answer(run, False, reason, approver)
