"""Earned autonomy on a real log: failed verifications demote a playbook to asking, approved
and verified runs earn a promotion a person confirms, and nothing unsealed counts."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

import aios
from aios.autonomy import AutonomyPolicy, autonomy_of, review
from aios.home import HomePaths
from aios.playbooks.matcher import PlaybookIndex
from aios.playbooks.model import Playbook
from aios.reactor.approval import ApprovalDecision, PolicyApprover
from aios.reactor.engine import Outcome, Reactor, ReactorSettings
from aios.store import open_store
from tests.conftest import run_aios

POLICY = AutonomyPolicy(demote_after=2, promote_after=3)
LIMITS = {"max_runs": 50, "flap_count": 100, "failures_to_open": 10}


def playbook(config_file: Path, *, risk: str = "low", expect: str = "==120") -> Playbook:
    """Sets the heartbeat interval to 120; verifies ``expect`` (==120 holds, ==999 never)."""
    return Playbook.model_validate(
        {
            "id": "retune",
            "risk": risk,
            "trigger": {"type": "writer.slow"},
            "limits": LIMITS,
            "actions": [
                {
                    "type": "config.update",
                    "file": str(config_file),
                    "key": "heartbeat.interval",
                    "value": 120,
                }
            ],
            "verify": {
                "probe": "file_value",
                "file": str(config_file),
                "key": "heartbeat.interval",
                "expect": expect,
                "within": "0.3s",
                "interval": "0.1s",
            },
        }
    )


def reactor(home: HomePaths, root: Path, pb: Playbook) -> Reactor:
    """A reactor as a flow builds it: deferred approvals, its autonomy read from the store."""
    from aios.reactor.runner import warm_up
    from aios.store.consumers import last_seq

    settings = ReactorSettings(home, allowed_roots=(root,), autonomy=POLICY)
    built = Reactor(
        PlaybookIndex([pb]), aios.bus(), settings, PolicyApprover(False), defer_approvals=True
    )
    with open_store(home) as con:
        upto = last_seq(con)
    warm_up(built, home, upto, datetime.now().astimezone())
    return built


def run(
    home: HomePaths, root: Path, pb: Playbook, config_file: Path, answer: bool = True
) -> Outcome:
    """One event, remediated; a person (alice) answers if it asks."""
    config_file.write_text('{"heartbeat": {"interval": 60}, "retries": 1}\n')
    event = aios.emit("writer.slow", {"queue": 1}, severity="medium")
    first = reactor(home, root, pb)
    [outcome] = first.process(event)
    if outcome.status != "awaiting_approval":
        return outcome
    assert outcome.request is not None
    decided = first.record_decision(event, outcome.request, ApprovalDecision(answer, "alice", "ok"))
    if decided is not None:
        return decided
    [done] = reactor(home, root, pb).process(event)
    return done


def earn(home: HomePaths, root: Path, pb: Playbook, config_file: Path) -> None:
    """As many approved and verified runs as a promotion takes."""
    for _ in range(POLICY.promote_after):
        assert run(home, root, pb, config_file).status == "succeeded"


def autonomy(home: HomePaths, pb: Playbook) -> Any:
    with open_store(home) as con:
        return autonomy_of(con, home, [pb], POLICY)[pb.id]


def kinds(prefix: str) -> list[str]:
    return [e.type for e in aios.bus().log.events() if e.type.startswith(prefix)]


def cli_env(pb: Playbook, root: Path, tmp_path: Path) -> dict[str, str]:
    """The environment under which ``aios`` loads ``pb`` from a directory, with this policy."""
    directory = tmp_path / "playbooks"
    directory.mkdir()
    (directory / f"{pb.id}.json").write_text(
        json.dumps(pb.model_dump(mode="json", exclude_none=True))
    )
    return {
        "AIOS_REACTOR__PLAYBOOK_DIRS": json.dumps([str(directory)]),
        "AIOS_REACTOR__ALLOWED_ROOTS": json.dumps([str(root)]),
        "AIOS_AUTONOMY__PROMOTE_AFTER": str(POLICY.promote_after),
    }


def test_failed_verifications_in_a_row_make_a_low_risk_playbook_ask(
    home: HomePaths, root: Path, config_file: Path
) -> None:
    good, bad = playbook(config_file), playbook(config_file, expect="==999")
    assert run(home, root, good, config_file).status == "succeeded"  # auto: low risk
    assert run(home, root, bad, config_file).status == "rolled_back"
    assert run(home, root, bad, config_file).status == "rolled_back"
    assert autonomy(home, good).demoted
    asked = run(home, root, good, config_file, answer=False)
    assert asked.status == "skipped" and "denied" in asked.reason
    [request] = [e for e in aios.bus().log.events() if e.type == "approval.requested"]
    assert "demoted: 2 failed verifications in a row" in request.payload["why"]
    assert "Autonomy: demoted" in request.payload["description"]
    _, recorded = review(aios.bus(), home, [good], POLICY)
    assert [e["type"] for e in recorded] == ["autonomy.demoted"]
    assert review(aios.bus(), home, [good], POLICY)[1] == []  # told once


def test_approved_and_verified_runs_earn_a_promotion_a_person_confirms(
    home: HomePaths, root: Path, config_file: Path, tmp_path: Path
) -> None:
    pb = playbook(config_file, risk="medium")
    env = cli_env(pb, root, tmp_path)
    early = run_aios("playbooks", "promote", "retune", home=home, env=env)
    assert early.returncode == 2 and "0 of 3 approved and verified runs" in early.stderr
    earn(home, root, pb, config_file)
    assert autonomy(home, pb).earned and not autonomy(home, pb).promoted
    _, recorded = review(aios.bus(), home, [pb], POLICY)
    assert [e["type"] for e in recorded] == ["autonomy.promotion_proposed"]
    listed = json.loads(run_aios("playbooks", "list", "--json", home=home, env=env).stdout)
    assert listed[0]["autonomy"] == "asks" and listed[0]["promotion_earned"]
    confirmed = run_aios("playbooks", "promote", "retune", "--approver", "bob", home=home, env=env)
    assert confirmed.returncode == 0, confirmed.stderr
    listed = json.loads(run_aios("playbooks", "list", "--json", home=home, env=env).stdout)
    assert listed[0]["autonomy"] == "earned" and not listed[0]["needs_approval"]
    before = len(kinds("approval.requested"))
    assert run(home, root, pb, config_file, answer=False).status == "succeeded"
    assert len(kinds("approval.requested")) == before  # nobody was asked
    # A failure streak takes the promotion away again.
    bad = playbook(config_file, risk="medium", expect="==999")
    run(home, root, bad, config_file)
    run(home, root, bad, config_file)
    state = autonomy(home, pb)
    assert state.demoted and not state.promoted


def test_a_denial_starts_the_count_again_and_policies_earn_nothing(
    home: HomePaths, root: Path, config_file: Path
) -> None:
    pb = playbook(config_file, risk="medium")
    run(home, root, pb, config_file)
    run(home, root, pb, config_file)
    run(home, root, pb, config_file, answer=False)
    assert autonomy(home, pb).approved_in_a_row == 0
    settings = ReactorSettings(home, allowed_roots=(root,), autonomy=POLICY)
    by_policy = Reactor(PlaybookIndex([pb]), aios.bus(), settings, PolicyApprover(True))
    for _ in range(3):
        config_file.write_text('{"heartbeat": {"interval": 60}, "retries": 1}\n')
        [done] = by_policy.process(aios.emit("writer.slow", {"queue": 1}, severity="medium"))
        assert done.status == "succeeded"
    state = autonomy(home, pb)
    assert state.approved_in_a_row == 0 and not state.earned


def test_with_approvers_a_promotion_takes_one_allowed_the_risk_and_their_code(
    home: HomePaths, root: Path, config_file: Path, tmp_path: Path
) -> None:
    from tests.test_approver_identity import ANA, BOB, configure, fresh_code

    pb = playbook(config_file, risk="medium")
    env = cli_env(pb, root, tmp_path)
    earn(home, root, pb, config_file)
    configure(home, ana=("low", ANA), bob=("medium", BOB))

    def promote(*args: str) -> Any:
        return run_aios("playbooks", "promote", "retune", *args, home=home, env=env)

    def refusals() -> list[str]:
        return [
            str(e.payload["refusal"])
            for e in aios.bus().log.events()
            if e.type == "approval.refused" and e.payload["remediation_id"] == "autonomy:retune"
        ]

    unnamed = promote()
    assert unnamed.returncode == 2 and "--approver NAME is required" in unnamed.stderr
    no_code = promote("--approver", "bob")
    assert no_code.returncode == 2 and "--code CODE is required" in no_code.stderr
    assert refusals() == []  # nothing was answered yet
    for args, refusal in [
        (("--approver", "mallory", "--code", fresh_code(BOB)), "unknown_approver"),
        (("--approver", "ana", "--code", fresh_code(ANA)), "risk_above_max"),  # low only
        (("--approver", "bob", "--code", "000000"), "code_wrong"),
    ]:
        refused = promote(*args)
        assert refused.returncode == 2 and "promotion of retune refused" in refused.stderr
        assert refusals()[-1] == refusal
    assert not autonomy(home, pb).promoted
    code = fresh_code(BOB)
    confirmed = promote("--approver", "bob", "--code", code, "--reason", "five good runs")
    assert confirmed.returncode == 0, confirmed.stderr
    assert "promoted by bob" in confirmed.stdout
    [promoted] = [e for e in aios.bus().log.events() if e.type == "autonomy.promoted"]
    assert promoted.payload["approver"] == "bob" and promoted.payload["verified"] is True
    [proof] = [e for e in aios.bus().log.events() if e.type == "approval.verified"]
    assert proof.payload["remediation_id"] == "autonomy:retune"
    assert autonomy(home, pb).promoted
    assert run(home, root, pb, config_file, answer=False).status == "succeeded"  # not asked


def test_a_promotion_holds_for_the_playbook_a_person_confirmed_not_an_edited_one(
    home: HomePaths, root: Path, config_file: Path, tmp_path: Path
) -> None:
    pb = playbook(config_file, risk="medium")
    env = cli_env(pb, root, tmp_path)
    earn(home, root, pb, config_file)
    confirmed = run_aios("playbooks", "promote", "retune", "--approver", "bob", home=home, env=env)
    assert confirmed.returncode == 0, confirmed.stderr
    data = pb.model_dump(mode="json", exclude_none=True)
    reworded = Playbook.model_validate({**data, "description": "said another way"})
    assert autonomy(home, reworded).promoted  # words are not what was confirmed
    edited = Playbook.model_validate({**data, "limits": {**LIMITS, "max_runs": 49}})
    state = autonomy(home, edited)
    assert not state.promoted and state.stale_promotion and state.earned
    _, recorded = review(aios.bus(), home, [edited], POLICY)
    assert "edited since a person confirmed its promotion" in recorded[0]["payload"]["reason"]
    asked = run(home, root, edited, config_file, answer=False)
    assert asked.status == "skipped" and "denied" in asked.reason  # a person was asked again
    assert autonomy(home, pb).promoted  # the version confirmed is still promoted


@pytest.mark.parametrize("forgery", ["no seal", "wrong seal"])
def test_a_forged_promotion_does_not_count(
    home: HomePaths, root: Path, config_file: Path, forgery: str
) -> None:
    pb = playbook(config_file, risk="medium")
    payload: dict[str, Any] = {"playbook": pb.id, "approver": "mallory", "reason": "trust me"}
    if forgery == "wrong seal":
        payload["seal"] = "0" * 64
    aios.bus().emit("autonomy.promoted", payload, source="aios.autonomy")
    assert not autonomy(home, pb).promoted
    assert run(home, root, pb, config_file, answer=False).status == "skipped"
