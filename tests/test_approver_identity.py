"""Who may approve: configured approvers, their highest risk and one-time codes.

First the rule itself (``check_answer``), then the guard on a real home (codes spent across
processes, config.toml that others can read), the CLI that adds and removes approvers and the
terminal approver of ``aios react``; last, on a real Prefect server, every way around the
approval gate we know of, each refused and recorded, before an allowed approver's answer runs
the remediation.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyotp
import pytest

import aios
from aios.approvers import (
    MAX_WRONG_CODES,
    Answer,
    ApprovalGuard,
    Subject,
    check_answer,
    check_private,
    code_at,
    step_of,
)
from aios.config import ApproverSettings, load_config
from aios.errors import ConfigError
from aios.home import HomePaths
from aios.playbooks.matcher import PlaybookIndex
from aios.playbooks.model import Playbook
from aios.reactor.approval import TerminalApprover
from aios.reactor.engine import Reactor, ReactorSettings
from tests.conftest import run_aios
from tests.orchestration_helpers import (
    Background,
    Workspace,
    aios_cli,
    events_of,
    flow_run,
    remediations_finished,
    run_flow,
    wait_for,
)
from tests.test_approval_gate import started, waiting
from tests.test_browser_approval import Site, answer_in_the_ui, browser, site  # noqa: F401 (fixtures)

ANA = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"  # may approve high
BOB = "KRSXG5CTMVRXEZLUKRSXG5CTMVRXEZLU"  # may approve medium
NOW = datetime(2026, 11, 30, 12, 0, 10, tzinfo=UTC)
APPROVERS = {
    "ana": ApproverSettings.model_validate({"max_risk": "high", "totp_secret": ANA}),
    "bob": ApproverSettings.model_validate({"max_risk": "medium", "totp_secret": BOB}),
}


def config_text(**approvers: tuple[str, str]) -> str:
    lines = []
    for name, (risk, secret) in approvers.items():
        lines += [
            f"[approvals.approvers.{name}]",
            f'max_risk = "{risk}"',
            f'totp_secret = "{secret}"',
        ]
    return "\n".join(lines) + "\n"


def configure(home: HomePaths, mode: int = 0o600, **approvers: tuple[str, str]) -> None:
    home.config.write_text(config_text(**approvers))
    home.config.chmod(mode)


def fresh_code(secret: str, spent: int | None = None) -> str:
    """A code of ``secret`` that is valid now and later than the step ``spent``."""
    while True:
        now = datetime.now(UTC)
        wanted = max(step_of(now), (spent if spent is not None else -1) + 1)
        if wanted <= step_of(now) + 1:  # the code of the next step is accepted too
            return code_at(secret, now, wanted - step_of(now))
        time.sleep(1)


# ------------------------------------------------------------------ the rule
@pytest.mark.parametrize(
    ("approvers", "risk", "name", "code", "spent", "wrong", "refusal"),
    [
        ({}, "high", "Ada (browser)", "", None, 0, ""),  # nobody configured: anyone
        ({}, "high", "  ", "", None, 0, "no_name"),
        (APPROVERS, "medium", "mallory", code_at(ANA, NOW), None, 0, "unknown_approver"),
        (APPROVERS, "medium", "Ana", code_at(ANA, NOW), None, 0, "unknown_approver"),
        (APPROVERS, "high", "bob", code_at(BOB, NOW), None, 0, "risk_above_max"),
        (APPROVERS, "", "bob", code_at(BOB, NOW), None, 0, "risk_above_max"),  # unknown: high
        (APPROVERS, "high", "ana", "", None, 0, "code_missing"),
        (APPROVERS, "high", "ana", "12345", None, 0, "code_wrong"),
        (APPROVERS, "high", "ana", code_at(BOB, NOW), None, 0, "code_wrong"),  # bob's code
        (APPROVERS, "high", "ana", code_at(ANA, NOW, -2), None, 0, "code_wrong"),  # expired
        (APPROVERS, "high", "ana", code_at(ANA, NOW, 2), None, 0, "code_wrong"),
        (APPROVERS, "high", "ana", code_at(ANA, NOW), step_of(NOW), 0, "code_used"),
        (APPROVERS, "high", "ana", code_at(ANA, NOW, -1), step_of(NOW), 0, "code_used"),
        (
            APPROVERS,
            "high",
            "ana",
            code_at(ANA, NOW),
            None,
            MAX_WRONG_CODES,
            "too_many_wrong_codes",
        ),
        (APPROVERS, "high", "ana", code_at(ANA, NOW), step_of(NOW) - 1, 0, ""),
        (APPROVERS, "high", "ana", code_at(ANA, NOW, -1), None, 0, ""),  # one step either side
        (APPROVERS, "high", "ana", code_at(ANA, NOW, 1), None, 0, ""),
        (APPROVERS, "medium", "bob", code_at(BOB, NOW), None, MAX_WRONG_CODES - 1, ""),
        (
            APPROVERS,
            "low",
            "bob",
            " ".join([code_at(BOB, NOW)[:3], code_at(BOB, NOW)[3:]]),
            None,
            0,
            "",
        ),
    ],
)
def test_who_may_answer(
    approvers: dict[str, ApproverSettings],
    risk: str,
    name: str,
    code: str,
    spent: int | None,
    wrong: int,
    refusal: str,
) -> None:
    verdict = check_answer(
        approvers,
        risk=risk,
        approver=name,
        code=code,
        at=NOW,
        last_spent={name: spent} if spent is not None else {},
        wrong_codes={name: wrong},
    )
    assert (verdict.allowed, verdict.refusal) == (not refusal, refusal)
    assert verdict.verified == (not refusal and bool(approvers))
    if not refusal and approvers:
        assert verdict.step is not None and abs(verdict.step - step_of(NOW)) <= 1
    if refusal:
        assert verdict.reason
        assert not code.strip() or code.strip() not in verdict.reason, "never the code"


def test_a_code_refused_for_its_risk_is_still_spent() -> None:
    verdict = check_answer(APPROVERS, risk="high", approver="bob", code=code_at(BOB, NOW), at=NOW)
    assert verdict.refusal == "risk_above_max" and verdict.step == step_of(NOW)


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"max_risk": "high", "totp_secret": "JBSWY3DPEHPK3PXP"}, "base32"),  # 80 bits: short
        ({"max_risk": "high", "totp_secret": "01" * 16}, "base32"),
        ({"max_risk": "critical", "totp_secret": ANA}, "max_risk"),
        ({"max_risk": "high"}, "totp_secret"),
    ],
)
def test_a_bad_approver_entry_is_named(
    home: HomePaths, fields: dict[str, str], problem: str
) -> None:
    body = "\n".join(f'{k} = "{v}"' for k, v in fields.items())
    home.config.write_text(f"[approvals.approvers.ana]\n{body}\n")
    with pytest.raises(ConfigError) as raised:
        load_config(home)
    assert "approvals.approvers.ana" in str(raised.value) and problem in str(raised.value)


@pytest.mark.parametrize("name", ["a b", "aios (timeout)", "", "-x", "x" * 65])
def test_an_approver_name_must_be_plain(home: HomePaths, name: str) -> None:
    home.config.write_text(
        f'[approvals.approvers."{name}"]\nmax_risk = "low"\ntotp_secret = "{ANA}"\n'
    )
    with pytest.raises(ConfigError, match="approver name"):
        load_config(home)


# ------------------------------------------------------------------ the guard on a home
@pytest.mark.parametrize("mode", [0o640, 0o604, 0o620, 0o602, 0o660])
def test_secrets_that_others_can_reach_refuse_every_answer(home: HomePaths, mode: int) -> None:
    configure(home, mode, ana=("high", ANA))
    guard = ApprovalGuard(home)
    with pytest.raises(ConfigError) as raised:
        guard.approvers()
    assert str(home.config) in str(raised.value) and f"{mode:04o}" in str(raised.value)
    subject = Subject("r1", "pb", "medium")
    verdict = guard.judge(subject, Answer("ana", fresh_code(ANA), True))
    assert (verdict.allowed, verdict.refusal) == (False, "config")
    assert verdict.step is not None, "the valid code is spent even so"
    [refused] = events_of(home, "type = 'approval.refused'")[-1:]
    assert refused[2]["refusal"] == "config" and "chmod 600" in refused[2]["reason"]
    home.config.chmod(0o600)
    assert guard.approvers().keys() == {"ana"}


def test_secrets_owned_by_another_user_refuse_every_answer(home: HomePaths) -> None:
    configure(home, ana=("high", ANA))
    if os.geteuid() != 0:
        pytest.skip("changing a file's owner needs root")
    os.chown(home.config, 65534, -1)
    with pytest.raises(ConfigError, match="belongs to uid 65534"):
        check_private(home.config)


def test_no_file_and_no_approvers_need_no_check(home: HomePaths) -> None:
    check_private(home.config)  # missing: approvers, if any, come from the environment
    home.config.write_text("[reactor]\napproval_timeout = '1h'\n")
    home.config.chmod(0o644)
    assert ApprovalGuard(home).approvers() == {}  # nothing secret in it: its mode is no matter


def test_a_code_is_good_once_across_processes(home: HomePaths) -> None:
    configure(home, ana=("high", ANA))
    subject = Subject("r1", "disk", "high", via="terminal")
    code = fresh_code(ANA)
    first = ApprovalGuard(home).judge(subject, Answer("ana", code, True))
    assert first.allowed and first.verified
    # Another process (a second flow run, aios react) tries the same code.
    other = subprocess.run(
        [
            sys.executable,
            "-c",
            "from aios.approvers import *; from aios.home import HomePaths; "
            f"v = ApprovalGuard(HomePaths.current()).judge(Subject('r2', 'disk', 'high'), "
            f"Answer('ana', {code!r}, True)); print(v.refusal)",
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "AIOS_HOME": str(home.root)},
        timeout=60,
    )
    assert other.stdout.strip() == "code_used", other.stderr
    assert ApprovalGuard(home).judge(subject, Answer("ana", code, False)).refusal == "code_used"
    later = fresh_code(ANA, first.step)
    assert ApprovalGuard(home).judge(subject, Answer("ana", later, True)).allowed
    recorded = events_of(home, "type IN ('approval.verified', 'approval.refused')")
    assert [(t, p.get("refusal")) for t, _, p, _ in recorded] == [
        ("approval.verified", None),
        ("approval.refused", "code_used"),
        ("approval.refused", "code_used"),
        ("approval.verified", None),
    ]
    assert all(code not in json.dumps(p) and later not in json.dumps(p) for _, _, p, _ in recorded)
    assert recorded[0][2]["code_step"] == first.step


def test_guessing_codes_is_cut_off(home: HomePaths) -> None:
    configure(home, ana=("high", ANA))
    guard = ApprovalGuard(home)
    subject = Subject("r1", "disk", "high")
    right = fresh_code(ANA)
    wrong = f"{(int(right) + 1) % 1_000_000:06d}"
    refusals = [
        guard.judge(subject, Answer("ana", wrong, True)).refusal for _ in range(MAX_WRONG_CODES)
    ]
    assert refusals == ["code_wrong"] * MAX_WRONG_CODES
    assert guard.judge(subject, Answer("ana", right, True)).refusal == "too_many_wrong_codes"


def a_wrong_code(secret: str) -> tuple[str, str]:
    """(a valid code of ``secret``, one that is wrong)."""
    right = fresh_code(secret)
    return right, f"{(int(right) + 1) % 1_000_000:06d}"


@pytest.mark.parametrize("shown", ["other_remediation", "reserved_name", "config", "late"])
def test_wrong_codes_count_toward_the_lockout_whatever_refusal_is_shown(
    home: HomePaths, shown: str
) -> None:
    """An answer refused for another reason (about another remediation, a reserved name,
    config.toml others can read, after the deadline) still has its wrong code counted: those
    guesses do not escape the lockout."""
    from aios.reactor.approval import ApprovalRequest
    from flows.approval import record_late

    configure(home, 0o640 if shown == "config" else 0o600, ana=("high", ANA))
    guard = ApprovalGuard(home)
    request = ApprovalRequest("r1", "disk", "high", "", {}, [], {})
    right, wrong = a_wrong_code(ANA)
    for _ in range(MAX_WRONG_CODES):
        guess = Answer("ana", wrong, True)
        if shown == "late":
            verdict = record_late(guard, request, guess, "", "run-1")
        else:
            problem = None if shown == "config" else (shown, "refused for this")
            verdict = guard.judge(request.subject("prefect", "run-1"), guess, problem)
        assert verdict.refusal == shown
    home.config.chmod(0o600)
    locked = guard.judge(request.subject("prefect"), Answer("ana", right, True))
    assert locked.refusal == "too_many_wrong_codes"


def test_a_late_answer_spends_its_code_whatever_spaces_came_with_the_name(
    home: HomePaths,
) -> None:
    from aios.reactor.approval import ApprovalRequest
    from flows.approval import record_late

    configure(home, ana=("high", ANA))
    guard = ApprovalGuard(home)
    request = ApprovalRequest("r1", "disk", "high", "", {}, [], {})
    code = fresh_code(ANA)
    late = record_late(guard, request, Answer(" ana ", code, True), "too slow", "run-1")
    assert late.refusal == "late" and late.step is not None
    [(_, _, recorded, _)] = events_of(home, "type = 'approval.late'")
    assert (recorded["approver"], recorded["code_step"]) == ("ana", late.step)
    again = guard.judge(request.subject("prefect", "run-2"), Answer("ana", code, True))
    assert again.refusal == "code_used"


# ------------------------------------------------------------------ the CLI
def test_add_list_and_remove_an_approver(home: HomePaths) -> None:
    assert run_aios("init", home=home).returncode == 0
    home.config.chmod(0o644)  # as aios init leaves it: nothing secret in it yet
    added = run_aios("approvals", "add-approver", "ana", "--max-risk", "high", home=home)
    assert added.returncode == 0, added.stderr
    [uri] = [line.strip() for line in added.stdout.splitlines() if "otpauth://" in line]
    [secret] = [
        line.split(":", 1)[1].strip() for line in added.stdout.splitlines() if "secret:" in line
    ]
    assert pyotp.parse_uri(uri).secret == secret and "issuer=AIOS" in uri
    assert home.config.stat().st_mode & 0o777 == 0o600
    text = home.config.read_text()
    assert "# Who may answer approvals" in text and "[monitor.thresholds]" in text  # kept
    config = load_config(home)
    assert config.approvals.approvers["ana"].totp_secret.get_secret_value() == secret
    assert config.approvals.approvers["ana"].max_risk == "high"
    verdict = ApprovalGuard(home).check("high", Answer("ana", pyotp.TOTP(secret).now(), True))
    assert verdict.allowed and verdict.verified  # the app's codes are good
    assert (
        run_aios("approvals", "add-approver", "bob", "--max-risk", "medium", home=home).returncode
        == 0
    )
    listed = run_aios("approvals", "approvers", "--json", home=home)
    assert json.loads(listed.stdout) == [
        {"name": "ana", "max_risk": "high"},
        {"name": "bob", "max_risk": "medium"},
    ]
    assert secret not in listed.stdout + run_aios("approvals", "approvers", home=home).stdout
    again = run_aios("approvals", "add-approver", "ana", "--max-risk", "low", home=home)
    assert again.returncode == 2 and "already" in again.stderr
    for bad in (["a b", "--max-risk", "low"], ["carol", "--max-risk", "critical"]):
        assert run_aios("approvals", "add-approver", *bad, home=home).returncode == 2
    removed = run_aios("approvals", "remove-approver", "ana", home=home)
    assert removed.returncode == 0, removed.stderr
    assert list(load_config(home).approvals.approvers) == ["bob"]
    assert secret not in home.config.read_text()
    assert run_aios("approvals", "remove-approver", "ana", home=home).returncode == 2
    home.config.chmod(0o640)
    warned = run_aios("approvals", "approvers", home=home)
    assert "chmod 600" in warned.stderr and "0640" in warned.stderr


def test_the_cli_records_the_answers_it_turns_away_and_spends_their_codes(
    home: HomePaths,
) -> None:
    from aios.cli.approvals_cmd import _identity
    from aios.errors import InputError

    configure(home, ana=("high", ANA), bob=("medium", BOB))
    item = {
        "flow_run_id": "run-1",
        "remediation_id": "r1",
        "playbook": "disk",
        "risk": "high",
        "trigger_id": "t1",
    }
    bob_code = fresh_code(BOB)
    for name, code, said in [
        ("mallory", "123456", "'mallory' is not an approver"),
        ("bob", bob_code, "bob may approve up to medium risk"),
        ("ana", "12 34 5x", "--code must be 6 digits"),
    ]:
        with pytest.raises(InputError, match=said):
            _identity(item, name, code, True)
    recorded = events_of(home, "type = 'approval.refused'")
    assert [
        (p["approver"], p["refusal"], p["via"], p["flow_run_id"], c) for _, _, p, c in recorded
    ] == [
        ("mallory", "unknown_approver", "terminal", "run-1", "t1"),
        ("bob", "risk_above_max", "terminal", "run-1", "t1"),
        ("ana", "code_wrong", "terminal", "run-1", "t1"),
    ]
    assert all(bob_code not in json.dumps(p) for _, _, p, _ in recorded)
    # bob's code was spent by the refusal: given again to the run itself, it does not count.
    replayed = ApprovalGuard(home).judge(
        Subject("r1", "disk", "medium"), Answer("bob", bob_code, True)
    )
    assert replayed.refusal == "code_used"
    before = events_of(home, "TRUE")
    assert _identity(item, "ana", fresh_code(ANA), True)[0] == "ana"  # a good one passes on
    assert events_of(home, "TRUE") == before  # unspent: the run itself checks and spends it


def test_add_approver_without_a_config_file_makes_one_the_owner_alone_reads(
    home: HomePaths,
) -> None:
    added = run_aios("approvals", "add-approver", "ana", "--max-risk", "medium", home=home)
    assert added.returncode == 0, added.stderr
    assert home.config.stat().st_mode & 0o777 == 0o600
    assert load_config(home).approvals.approvers["ana"].max_risk == "medium"


# ------------------------------------------------------------------ aios react at a terminal
@pytest.fixture
def terminal() -> Iterator[tuple[Any, int]]:
    """A real pseudo-terminal: (its reading end as stdin, the fd a person types into)."""
    import pty

    typist, tty = pty.openpty()
    stdin = os.fdopen(tty, "r")
    try:
        yield stdin, typist
    finally:
        stdin.close()
        os.close(typist)


def terminal_reactor(
    home: HomePaths, root: Path, config_file: Path, stdin: Any, out: Any
) -> Reactor:
    """A reactor whose high-risk playbook (retries 1 -> 3) asks at ``stdin``."""
    pb = Playbook.model_validate(
        {
            "id": "restart_writer",
            "trigger": {"type": "writer.stuck"},
            "risk": "high",
            "actions": [
                {"type": "config.update", "file": str(config_file), "key": "retries", "value": 3}
            ],
        }
    )
    return Reactor(
        PlaybookIndex([pb]),
        aios.bus(),
        ReactorSettings(home, allowed_roots=(root,)),
        TerminalApprover(stdin=stdin, stdout=out),
    )


def test_the_terminal_asks_for_name_and_code_and_records_refusals(
    home: HomePaths, root: Path, config_file: Path, terminal: tuple[Any, int]
) -> None:
    configure(home, ana=("high", ANA), bob=("medium", BOB))
    stdin, typist = terminal
    out = io.StringIO()
    reactor = terminal_reactor(home, root, config_file, stdin, out)
    typed = ["y", "mallory", "123456", "y", "bob", fresh_code(BOB), "y", "ana", fresh_code(ANA)]
    os.write(typist, ("\n".join(typed) + "\n").encode())
    [outcome] = reactor.process(aios.emit("writer.stuck", {}, severity="high"))
    assert outcome.status == "unverified"
    assert json.loads(config_file.read_text())["retries"] == 3
    assert "May approve high risk: ana" in out.getvalue()
    refused = events_of(home, "type = 'approval.refused'")
    assert [p["refusal"] for _, _, p, _ in refused] == ["unknown_approver", "risk_above_max"]
    assert all(p["via"] == "terminal" for _, _, p, _ in refused)
    [(_, _, granted, _)] = events_of(home, "type = 'approval.granted'")
    assert granted["approver"] == "ana" and granted["verified"] is True
    assert isinstance(granted["code_step"], int)


def test_the_terminal_asks_again_when_no_approver_is_named(
    home: HomePaths, root: Path, config_file: Path, terminal: tuple[Any, int]
) -> None:
    configure(home, ana=("high", ANA))
    stdin, typist = terminal
    out = io.StringIO()
    reactor = terminal_reactor(home, root, config_file, stdin, out)
    typed = ["n", "", "y", "ana", fresh_code(ANA)]  # Enter at "Approver:" is no answer
    os.write(typist, ("\n".join(typed) + "\n").encode())
    [outcome] = reactor.process(aios.emit("writer.stuck", {}, severity="high"))
    assert outcome.status == "unverified"
    assert json.loads(config_file.read_text())["retries"] == 3
    assert "refused: an approver's name is required; answer again" in out.getvalue()
    [(_, _, nameless, _)] = events_of(home, "type = 'approval.refused'")
    assert (nameless["refusal"], nameless["via"], nameless["approve"]) == (
        "no_name",
        "terminal",
        False,
    )
    assert not events_of(home, "type = 'approval.denied'")
    [(_, _, granted, _)] = events_of(home, "type = 'approval.granted'")
    assert (granted["approver"], granted["verified"]) == ("ana", True)


def test_the_terminal_refuses_when_the_secrets_are_exposed(
    home: HomePaths, root: Path, config_file: Path, terminal: tuple[Any, int]
) -> None:
    configure(home, 0o644, ana=("high", ANA))
    reactor = terminal_reactor(home, root, config_file, terminal[0], io.StringIO())
    [outcome] = reactor.process(aios.emit("writer.stuck", {}, severity="high"))
    assert outcome.status == "skipped" and "chmod 600" in outcome.reason
    assert json.loads(config_file.read_text())["retries"] == 1


# ------------------------------------------------------------------ on a real Prefect server
def refused(home: HomePaths) -> list[dict[str, Any]]:
    return [p for _, _, p, _ in events_of(home, "type = 'approval.refused'")]


def ask(ws: Workspace, home: HomePaths, api: str, pid: str) -> tuple[Background, dict[str, Any]]:
    """Start a reactor run on a new ``test.<pid>`` event; (the run, what it waits for)."""
    from flows.reactor import reactor_flow

    event = aios.emit(f"test.{pid}", severity="high")
    running = Background(lambda: run_flow(reactor_flow, [event.id]))
    [item] = wait_for(lambda: waiting(home, api, pid), 60, f"the approval for {pid}")
    return running, item


def answer(
    home: HomePaths, api: str, verb: str, run: str, approver: str, code: str | None = None
) -> subprocess.CompletedProcess[str]:
    """``aios approvals approve|reject RUN --approver NAME [--code CODE]``."""
    extra = ["--code", code] if code is not None else []
    return aios_cli("approvals", verb, run, "--approver", approver, *extra, home=home, api_url=api)


def forged(rid: str, approver: str, code: str = "", approve: bool = True) -> dict[str, Any]:
    """A resume input as anyone may send it to Prefect's API, form or no form."""
    return {
        "approve": approve,
        "reason": "",
        "approver": approver,
        "code": code,
        "remediation_id": rid,
    }


def answer_and_see_it_refused(
    home: HomePaths, flow_run_id: str, body: dict[str, Any] | None, refusal: str
) -> dict[str, Any]:
    """Resume the run through Prefect's API with ``body`` (None: set it Running with no answer
    at all), wait until the refusal is recorded and the run asks again."""
    from prefect.client.orchestration import get_client
    from prefect.flow_runs import resume_flow_run
    from prefect.states import Running

    before = len(refused(home))
    if body is None:
        with get_client(sync_client=True) as client:
            client.set_flow_run_state(flow_run_id, Running(), force=True)
    else:
        resume_flow_run(uuid.UUID(flow_run_id), run_input=body)
    wait_for(
        lambda: len(refused(home)) > before and flow_run(flow_run_id).state.is_paused(),
        60,
        f"the answer to be refused ({refusal}) and asked again",
    )
    last = refused(home)[-1]
    assert last["refusal"] == refusal, last
    return last


def stored_answers(flow_run_id: str) -> list[dict[str, Any]]:
    """What anyone with access to the Prefect API can read back: the answers a run took."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        inputs = client.filter_flow_run_input(
            uuid.UUID(flow_run_id), key_prefix="paused-", limit=100, exclude_keys=set()
        )
    found = []
    for item in inputs:
        value = json.loads(item.value)
        if isinstance(value, dict) and "approver" in value:
            found.append(value)
    return found


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_server")
def test_every_way_around_the_gate_is_refused_and_recorded(
    ws: Workspace, home: HomePaths, prefect_server: str
) -> None:
    configure(home, ana=("high", ANA), bob=("medium", BOB))
    ws.playbook("guarded", risk="high")
    running, item = ask(ws, home, prefect_server, "guarded")
    run_id, rid = item["flow_run_id"], item["remediation_id"]

    def body(approver: str, code: str = "", approve: bool = True) -> dict[str, Any]:
        return forged(rid, approver, code, approve)

    # Straight to Prefect's resume API, past the form and the CLI.
    answer_and_see_it_refused(home, run_id, body("mallory", fresh_code(ANA)), "unknown_approver")
    answer_and_see_it_refused(home, run_id, body("bob", fresh_code(BOB)), "risk_above_max")
    answer_and_see_it_refused(home, run_id, body("ana", "000000"), "code_wrong")
    answer_and_see_it_refused(home, run_id, body("ana"), "code_missing")
    answer_and_see_it_refused(home, run_id, body("aios (timeout)", approve=False), "reserved_name")
    answer_and_see_it_refused(home, run_id, None, "no_answer")  # Running, and no answer at all
    denial = body("mallory", approve=False)
    assert answer_and_see_it_refused(home, run_id, denial, "unknown_approver")["approve"] is False
    # The CLI says so before asking the server, and records what it refused.
    for who, code, said in [
        ("bob", fresh_code(BOB), "may approve up to medium"),
        ("mallory", "123456", "not an approver"),
        ("ana", None, "--code"),
    ]:
        cli = answer(home, prefect_server, "approve", run_id, who, code)
        assert cli.returncode == 2 and said in cli.stderr, cli.stderr
    by_cli = [p for p in refused(home) if p["via"] == "terminal"]
    assert [(p["approver"], p["refusal"], p["flow_run_id"]) for p in by_cli] == [
        ("bob", "risk_above_max", run_id),
        ("mallory", "unknown_approver", run_id),
    ]
    bare = aios_cli("approvals", "approve", run_id, home=home, api_url=prefect_server)
    assert bare.returncode == 2 and "--approver" in bare.stderr
    assert ws.level() == 1 and started(home) == 0
    assert not events_of(home, "type IN ('approval.granted', 'approval.denied')")
    # ana, with her code: it runs.
    approved = aios_cli(
        "approvals", "approve", rid, "--approver", "ana", "--code", fresh_code(ANA),
        "--reason", "checked", home=home, api_url=prefect_server,
    )  # fmt: skip
    assert approved.returncode == 0, approved.stderr
    result, _ = running.join(120)
    assert [o["status"] for o in result["outcomes"]] == ["succeeded"] and ws.level() == 2
    [(_, _, granted, _)] = events_of(home, "type = 'approval.granted'")
    assert (granted["approver"], granted["verified"]) == ("ana", True)
    assert all("code" not in p for p in refused(home)) and len(refused(home)) == 9

    # Her answer is stored in Prefect for anyone to read: replayed, it is worth nothing.
    [used] = [a for a in stored_answers(run_id) if a["reason"] == "checked"]
    ws.reset()
    running, item = ask(ws, home, prefect_server, "guarded")
    answer_and_see_it_refused(home, item["flow_run_id"], used, "other_remediation")
    replayed = {**used, "remediation_id": item["remediation_id"]}
    answer_and_see_it_refused(home, item["flow_run_id"], replayed, "code_used")
    assert ws.level() == 1 and started(home) == 1
    later = fresh_code(ANA, granted["code_step"])
    rejected = answer(home, prefect_server, "reject", item["remediation_id"], "ana", later)
    assert rejected.returncode == 0, rejected.stderr
    result, _ = running.join(120)
    assert [o["status"] for o in result["outcomes"]] == ["skipped"] and ws.level() == 1
    [(_, _, denied, _)] = events_of(home, "type = 'approval.denied'")
    assert (denied["approver"], denied["verified"]) == ("ana", True)


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_server")
def test_a_playbook_that_lowers_its_risk_while_it_waits_is_asked_about_again(
    ws: Workspace, home: HomePaths, prefect_server: str
) -> None:
    configure(home, ana=("high", ANA), bob=("medium", BOB))
    ws.playbook("lowered", risk="high")
    running, shown = ask(ws, home, prefect_server, "lowered")
    assert shown["risk"] == "high"
    # bob may not approve high risk; the playbook's file now says medium, but what was asked
    # (and what any approval would be for) is the high-risk plan.
    ws.playbook("lowered", risk="medium")
    forced = forged(shown["remediation_id"], "bob", fresh_code(BOB))
    answer_and_see_it_refused(home, shown["flow_run_id"], forced, "risk_above_max")
    too_low = answer(home, prefect_server, "approve", shown["flow_run_id"], "bob", fresh_code(BOB))
    assert too_low.returncode == 2 and "may approve up to medium" in too_low.stderr
    bob_spent = max(p.get("code_step", 0) for p in refused(home) if p["approver"] == "bob")
    # ana approves what she was shown, the high-risk plan: that is not the plan any more.
    by_ana = answer(home, prefect_server, "approve", shown["flow_run_id"], "ana", fresh_code(ANA))
    assert by_ana.returncode == 0, by_ana.stderr
    [again] = wait_for(
        lambda: (
            events_of(home, "type = 'approval.stale'") and waiting(home, prefect_server, "lowered")
        ),
        90,
        "the new plan to be asked about",
    )
    assert again["risk"] == "medium" and ws.level() == 1 and started(home) == 0
    [(_, _, stale, _)] = events_of(home, "type = 'approval.stale'")
    assert stale["digest"] != stale["approved_digest"]
    code = fresh_code(BOB, bob_spent)
    by_bob = answer(home, prefect_server, "approve", again["flow_run_id"], "bob", code)
    assert by_bob.returncode == 0, by_bob.stderr
    result, _ = running.join(120)
    assert [o["status"] for o in result["outcomes"]] == ["succeeded"] and ws.level() == 2
    granted = [p for _, _, p, _ in events_of(home, "type = 'approval.granted'")]
    assert [(p["approver"], p["verified"]) for p in granted] == [("ana", True), ("bob", True)]


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_server")
def test_a_refused_answer_tells_the_cli_why(
    ws: Workspace, home: HomePaths, prefect_server: str
) -> None:
    """The CLI's own check passes (the name and risk are right) but the flow's does not: the
    code was spent already. The CLI says so and the run keeps waiting."""
    configure(home, ana=("high", ANA))
    ws.playbook("told", risk="medium")
    running, item = ask(ws, home, prefect_server, "told")
    code = fresh_code(ANA)
    spent = ApprovalGuard(home).judge(Subject("elsewhere", "x", "low"), Answer("ana", code, True))
    assert spent.allowed
    said = answer(home, prefect_server, "approve", item["flow_run_id"], "ana", code)
    assert said.returncode == 1 and "code was used already" in said.stderr, said.stderr
    assert flow_run(item["flow_run_id"]).state.is_paused() and ws.level() == 1
    later = fresh_code(ANA, spent.step)
    assert (
        answer(home, prefect_server, "approve", item["flow_run_id"], "ana", later).returncode == 0
    )
    result, _ = running.join(120)
    assert [o["status"] for o in result["outcomes"]] == ["succeeded"]


def paused_keyset(flow_run_id: str) -> dict[str, str]:
    """The run input keys of the pause the run is in now (its form, its answer)."""
    keyset = flow_run(flow_run_id).state.state_details.run_input_keyset
    assert keyset, "the run is not paused for input"
    return dict(keyset)


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_server")
def test_an_input_written_around_the_resume_api_is_refused_without_repeating_it(
    ws: Workspace, home: HomePaths, prefect_server: str
) -> None:
    """Input the form's schema does not accept, stored straight into the run's input as the
    resume API would store it: the refusal and the next form name the fields and the kind of
    error, never a value given (a code among them)."""
    from prefect.client.orchestration import get_client
    from prefect.states import Running

    configure(home, ana=("high", ANA))
    ws.playbook("garbled", risk="high")
    running, item = ask(ws, home, prefect_server, "garbled")
    run_id = item["flow_run_id"]
    code = fresh_code(ANA)
    garbled = {
        "approve": True,
        "code": int(code),  # a number where text is expected; the approver left out
        "remediation_id": item["remediation_id"],
        "note": f"ana {code}",
    }
    before = len(refused(home))
    with get_client(sync_client=True) as client:
        client.create_flow_run_input(
            uuid.UUID(run_id), key=paused_keyset(run_id)["response"], value=json.dumps(garbled)
        )
        client.set_flow_run_state(run_id, Running(), force=True)
    wait_for(
        lambda: len(refused(home)) > before and flow_run(run_id).state.is_paused(),
        60,
        "the input to be refused and the run to ask again",
    )
    last = refused(home)[-1]
    assert last["refusal"] == "no_answer"
    for problem in ("approver: missing", "code: string_type", "an unknown field: extra_forbidden"):
        assert problem in last["reason"], last["reason"]
    with get_client(sync_client=True) as client:
        form = client.read_flow_run_input(uuid.UUID(run_id), paused_keyset(run_id)["description"])
    assert "approver: missing" in form
    assert code not in last["reason"] and code not in form
    assert code not in json.dumps([p for _, _, p, _ in events_of(home, "TRUE")])
    done = answer(home, prefect_server, "approve", run_id, "ana", fresh_code(ANA))
    assert done.returncode == 0, done.stderr
    result, _ = running.join(120)
    assert [o["status"] for o in result["outcomes"]] == ["succeeded"]


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_server")
def test_a_late_answer_spends_its_code_under_the_name_it_was_checked_by(
    ws: Workspace, home: HomePaths, prefect_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prefect.flow_runs import resume_flow_run

    import flows.approval as gate
    from blocks.aios_settings import forget_cached

    def unreachable(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("the server is busy")  # the deadline cannot resume the run itself

    monkeypatch.setattr(gate, "resume_flow_run", unreachable)
    monkeypatch.setenv("AIOS_REACTOR__APPROVAL_TIMEOUT", "4s")
    forget_cached()
    configure(home, ana=("high", ANA))
    ws.playbook("slowpoke", risk="high")
    running, item = ask(ws, home, prefect_server, "slowpoke")
    deadline = datetime.fromisoformat(item["deadline"])
    wait_for(lambda: datetime.now(UTC) > deadline, 30, "the deadline to pass")
    code = fresh_code(ANA)
    resume_flow_run(uuid.UUID(item["flow_run_id"]), forged(item["remediation_id"], " ana ", code))
    result, _ = running.join(120)
    [outcome] = result["outcomes"]
    assert outcome["status"] == "skipped" and "answered after the deadline" in outcome["reason"]
    [(_, _, late, _)] = events_of(home, "type = 'approval.late'")
    assert late["approver"] == "ana" and isinstance(late["code_step"], int)
    again = ApprovalGuard(home).judge(Subject("r2", "disk", "high"), Answer("ana", code, True))
    assert again.refusal == "code_used"
    assert ws.level() == 1


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_server")
def test_the_cli_fails_when_no_decision_is_recorded(
    home: HomePaths, prefect_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run resumed that records no decision (it was not the AIOS gate that took the answer):
    the CLI says it cannot tell whether the answer counted, and exits non-zero."""
    from aios.cli import approvals_cmd
    from aios.errors import AIOSError

    monkeypatch.setenv("PREFECT_API_URL", prefect_server)
    monkeypatch.setattr(approvals_cmd, "RECORDED_WAIT_S", 3.0)
    running = Background(lambda: run_flow(silent_pause()))
    [item] = wait_for(
        lambda: [w for w in approvals_cmd._waiting() if w["playbook"] == "silent"],
        60,
        "the silent run to pause",
    )
    with pytest.raises(AIOSError) as raised:
        approvals_cmd._answer(item["flow_run_id"], True, None, "ops", None)
    assert raised.value.exit_code != 0
    assert "no decision about remediation silent-1 was recorded within 3 s" in str(raised.value)
    result, _ = running.join(60)
    assert result == "ops"


def silent_pause() -> Any:
    """A flow that announces an approval as the gate does, then takes the answer and records
    nothing."""
    from prefect import flow
    from prefect.context import FlowRunContext
    from prefect.flow_runs import pause_flow_run

    from aios.reactor.approval import ApprovalRequest
    from flows.approval import RemediationApproval, announce_waiting

    @flow(name="aios-test-silent-pause")
    def silent() -> str:
        context = FlowRunContext.get()
        assert context is not None and context.flow_run is not None
        request = ApprovalRequest("silent-1", "silent", "low", "", {}, [], {})
        announce_waiting(request, str(context.flow_run.id), 60)
        answer = pause_flow_run(wait_for_input=RemediationApproval, timeout=60, poll_interval=1)
        return str(answer.approver)

    return silent


# ------------------------------------------------------------------ in the Prefect UI itself
@pytest.mark.slow
def test_an_approver_answers_in_the_prefect_ui_with_a_code(request: pytest.FixtureRequest) -> None:
    # test_browser_approval's fixtures: aios up with its own Prefect server and UI; Chromium.
    ui: Site = request.getfixturevalue("site")
    chromium = request.getfixturevalue("browser")
    configure(ui.home, ana=("high", ANA))
    ui.ws.playbook("ui_coded", risk="high")
    ui.ws.reset()
    event = ui.bus.emit("test.ui_coded", {}, source="test", severity="high")
    [item] = wait_for(lambda: ui.waiting("ui_coded"), 120, "the run to pause")
    run_id = item["flow_run_id"]
    shown = answer_in_the_ui(chromium, ui, run_id, True, "", "ana", "000000")
    assert "May approve high risk: ana" in shown
    wait_for(
        lambda: refused(ui.home) and flow_run_state(ui, run_id) == "PAUSED",
        90,
        "the wrong code to be refused",
    )
    [wrong] = refused(ui.home)
    assert (wrong["refusal"], wrong["via"]) == ("code_wrong", "prefect")
    again = answer_in_the_ui(chromium, ui, run_id, True, "", "ana", fresh_code(ANA))
    assert "That answer was refused: wrong or expired code for ana" in again
    finished = remediations_finished(ui.home, event.id)
    assert finished[-1][2]["outcome"] == "succeeded" and ui.ws.level() == 2
    [(_, _, granted, _)] = events_of(
        ui.home, "type = 'approval.granted' AND correlation_id = ?", [event.id]
    )
    assert (granted["approver"], granted["verified"]) == ("ana", True)


def flow_run_state(at: Site, flow_run_id: str) -> str:
    import httpx

    found = httpx.get(f"{at.up.api_url}/flow_runs/{flow_run_id}", timeout=10).json()
    return str((found.get("state") or {}).get("type"))
