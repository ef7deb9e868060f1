"""The approval rules as plain functions of domain values: no database, no directory, no clock."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from bot.domain import approvals as rules
from bot.domain.approvals import Memberships, Transition
from bot.domain.errors import (
    BreakGlassRefused,
    ChangeWindowClosed,
    InvalidTransition,
    NotAnApprover,
    NotEligibleRequester,
    PolicyDenied,
    QuorumNotMet,
    RequestNotFound,
    SelfApprovalRefused,
)
from bot.domain.policy import Action, ApproverSet, ChangeWindow, PolicySet
from bot.domain.requests import ApprovalView, ChangeRequest, ChangeSpec, RequestStatus

from .conftest import GROUPS, prod_rule

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
SPEC = ChangeSpec(Action.PROMOTION, "orders-api", "prod", {"version": "1.4.0"})
MEMBERS = Memberships(GROUPS)
RULE = prod_rule()


def request(**overrides: object) -> ChangeRequest:
    base = ChangeRequest(
        id=7,
        human_id="PRM-7",
        action=SPEC.action,
        target=SPEC.target,
        environment=SPEC.environment,
        parameters=dict(SPEC.parameters),
        params_hash=SPEC.hash,
        requester="U_REQ",
        reason="fix the mapping",
        status=RequestStatus.PENDING,
        policy=RULE,
        emergency=False,
        created_at=NOW,
        expires_at=NOW + timedelta(hours=24),
    )
    return dataclasses.replace(base, **overrides)  # type: ignore[arg-type]


def approvals(*approvers: str, params_hash: str = SPEC.hash) -> tuple[ApprovalView, ...]:
    return tuple(ApprovalView(a, NOW, params_hash) for a in approvers)


# ------------------------------------------------------------------ the directory's answer


def test_membership_is_by_user_id_or_through_a_group():
    assert MEMBERS.includes(ApproverSet(users=("U_SOLO",)), "U_SOLO")
    assert MEMBERS.includes(ApproverSet(groups=("leads",)), "U_LEAD2")
    assert not MEMBERS.includes(ApproverSet(groups=("leads",)), "U_REQ")
    assert not MEMBERS.includes(ApproverSet(groups=("unknown",)), "U_LEAD1")  # an unanswered group is empty


def test_groups_named_are_every_group_a_decision_may_ask_about():
    assert rules.groups_named([RULE]) == {"leads", "engineers", "oncall"}
    assert rules.groups_named([prod_rule(requesters=None, break_glass=None)]) == {"leads"}


# ---------------------------------------------------------------------------- transitions


def test_only_legal_transitions_can_be_built():
    assert Transition(RequestStatus.APPROVED, RequestStatus.EXECUTING, NOW).after is RequestStatus.EXECUTING
    for before, after in [
        (RequestStatus.SUCCEEDED, RequestStatus.APPROVED),
        (RequestStatus.EXECUTING, RequestStatus.CANCELLED),
        (RequestStatus.REJECTED, RequestStatus.PENDING),
        (RequestStatus.EXPIRED, RequestStatus.EXECUTING),
    ]:
        with pytest.raises(ValueError, match="not a legal transition"):
            Transition(before, after, NOW)


def test_every_terminal_status_but_failed_is_final():
    for status in (
        RequestStatus.REJECTED,
        RequestStatus.CANCELLED,
        RequestStatus.EXPIRED,
        RequestStatus.SUCCEEDED,
    ):
        assert status not in rules.LEGAL_TRANSITIONS
    assert rules.LEGAL_TRANSITIONS[RequestStatus.FAILED] == {RequestStatus.APPROVED}


def test_expiry_is_due_only_for_unstarted_requests_past_their_deadline():
    deadline = NOW + timedelta(hours=24)
    assert rules.expiry(request(), deadline - timedelta(seconds=1)) is None
    due = rules.expiry(request(), deadline)
    assert due is not None and (due.before, due.after) == (RequestStatus.PENDING, RequestStatus.EXPIRED)
    assert due.fields == {"finished_at": deadline, "remind_at": None}
    assert rules.expiry(request(status=RequestStatus.APPROVED), deadline) is not None
    assert rules.expiry(request(status=RequestStatus.EXECUTING), deadline + timedelta(days=9)) is None


def test_a_retry_gets_a_fresh_deadline_and_forgets_the_failure():
    change = rules.retried(RULE, at=NOW)
    assert (change.before, change.after) == (RequestStatus.FAILED, RequestStatus.APPROVED)
    assert change.fields == {
        "expires_at": NOW + timedelta(hours=24),
        "finished_at": None,
        "failure_reason": None,
    }


def test_next_reminder_follows_the_rule():
    assert rules.next_reminder(prod_rule(remind_every=timedelta(hours=4)), NOW) == NOW + timedelta(hours=4)
    assert rules.next_reminder(prod_rule(remind_every=None), NOW) is None


# -------------------------------------------------------------------------------- opening


def test_ineligible_requester_may_not_open():
    with pytest.raises(NotEligibleRequester, match=r"<@U_STRANGER> may not request .*@engineers, @oncall"):
        rules.require_may_open(RULE, "U_STRANGER", MEMBERS, now=NOW, emergency_reason=None)


def test_break_glass_needs_a_path_a_reason_and_the_right_person():
    with pytest.raises(BreakGlassRefused, match="no break-glass path"):
        rules.require_may_open(
            prod_rule(break_glass=None), "U_ONCALL", MEMBERS, now=NOW, emergency_reason="down"
        )
    with pytest.raises(BreakGlassRefused, match="needs a reason"):
        rules.require_may_open(RULE, "U_ONCALL", MEMBERS, now=NOW, emergency_reason="  ")
    with pytest.raises(BreakGlassRefused, match="may not use break-glass"):
        rules.require_may_open(RULE, "U_REQ", MEMBERS, now=NOW, emergency_reason="down")
    rules.require_may_open(RULE, "U_ONCALL", MEMBERS, now=NOW, emergency_reason="orders are failing")


def test_a_closed_window_refuses_normal_requests_but_not_break_glass():
    freeze = prod_rule(windows=[ChangeWindow(kind="deny", cron="0 0 * * *", duration=timedelta(hours=24))])
    with pytest.raises(ChangeWindowClosed):
        rules.require_may_open(freeze, "U_REQ", MEMBERS, now=NOW, emergency_reason=None)
    rules.require_may_open(freeze, "U_ONCALL", MEMBERS, now=NOW, emergency_reason="orders are failing")


def test_a_normal_request_opens_pending_with_a_reminder():
    draft = rules.draft_request(
        SPEC, prod_rule(remind_every=timedelta(hours=4)), requester="U_REQ", reason="r", now=NOW
    )
    assert draft.status is RequestStatus.PENDING and not draft.emergency
    assert draft.expires_at == NOW + timedelta(hours=24) and draft.remind_at == NOW + timedelta(hours=4)
    assert draft.decided_by is None and draft.review_due_at is None
    assert draft.lock_key == "promotion:orders-api@prod"


def test_break_glass_opens_approved_by_the_requester_and_due_for_review():
    draft = rules.draft_request(SPEC, RULE, requester="U_ONCALL", reason="", now=NOW, emergency_reason="down")
    assert draft.status is RequestStatus.APPROVED and draft.emergency
    assert (draft.decided_by, draft.decision_reason, draft.decided_at) == ("U_ONCALL", "down", NOW)
    assert draft.review_due_at == NOW + timedelta(hours=48) and draft.remind_at is None


def test_the_audit_keeps_what_was_asked_and_under_which_rule():
    original = request(human_id="PRM-3", id=3)
    draft = rules.draft_request(SPEC, RULE, requester="U_REQ", reason="", now=NOW, rollback_of=original)
    evidence = rules.creation_evidence(draft, original)
    assert draft.rollback_of_id == 3
    assert evidence == {
        "parameters": {"version": "1.4.0"},
        "params_hash": SPEC.hash,
        "policy": "prod-promotions",
        "policy_fingerprint": RULE.fingerprint(),
        "lock": "promotion:orders-api@prod",
        "rollback_of": "PRM-3",
    }


def test_a_release_locks_its_asset_and_destination_together():
    release = request(action=Action.RELEASE, target="asset-9", parameters={"destination": "partner"})
    assert rules.lock_key_of(release) == "release:asset-9->partner"


def test_a_locked_target_names_its_holder():
    error = rules.target_locked(SPEC, "PRM-1")
    assert error.holder == "PRM-1" and "orders-api in prod is locked by PRM-1" in str(error)


# ------------------------------------------------------------------------------- deciding


def test_an_unknown_ref_is_a_clear_not_found():
    with pytest.raises(RequestNotFound, match="There is no request PRM-404"):
        rules.found(None, "PRM-404")


def test_decisions_use_the_policy_in_force_now_and_fail_closed_without_one():
    assert rules.rule_in_force(PolicySet([RULE]), request()) is RULE
    with pytest.raises(PolicyDenied, match="No policy allows promotion"):
        rules.rule_in_force(PolicySet([]), request())


def test_status_refusals_say_where_the_request_stands():
    with pytest.raises(InvalidTransition, match="still waiting for approval; it cannot start yet"):
        rules.require_status(request(), RequestStatus.APPROVED, verb="start")
    rejected = request(status=RequestStatus.REJECTED, decided_by="U_LEAD1")
    with pytest.raises(InvalidTransition, match=r"already rejected by <@U_LEAD1>; it cannot approve now"):
        rules.require_status(rejected, RequestStatus.PENDING, verb="approve")
    with pytest.raises(InvalidTransition, match=r"PRM-7 is already executing; it cannot start now"):
        rules.require_status(request(status=RequestStatus.EXECUTING), RequestStatus.APPROVED, verb="start")


def test_requester_cannot_approve_own_promotion():
    own = request(requester="U_LEAD1")
    with pytest.raises(SelfApprovalRefused, match="does not allow self-approval"):
        rules.require_may_decide(RULE, own, "U_LEAD1", MEMBERS, verb="approve")
    rules.require_may_decide(prod_rule(allow_self_approval=True), own, "U_LEAD1", MEMBERS, verb="approve")


def test_only_approvers_decide():
    with pytest.raises(
        NotAnApprover, match=r"not an approver for PRM-7 \(policy 'prod-promotions': @leads\)"
    ):
        rules.require_may_decide(RULE, request(), "U_REQ2", MEMBERS, verb="approve")


def test_a_requester_who_lost_eligibility_cannot_be_approved_but_can_be_rejected():
    left = Memberships({**GROUPS, "engineers": frozenset({"U_LEAD1"})})
    with pytest.raises(NotEligibleRequester, match="no longer allowed to request"):
        rules.require_may_decide(RULE, request(), "U_LEAD1", left, verb="approve")
    rules.require_may_reject(RULE, request(), "U_LEAD1", left)


def test_rejecting_needs_a_reason_and_someone_else():
    with pytest.raises(InvalidTransition, match="needs a reason"):
        rules.require_rejection_reason(" \n")
    with pytest.raises(SelfApprovalRefused, match="use `/ops cancel PRM-7`"):
        rules.require_may_reject(RULE, request(), "U_REQ", MEMBERS)


def test_quorum_counts_only_approvals_of_the_parameters_as_they_are():
    assert not rules.quorum_reached(request(approvals=approvals("U_LEAD1")), RULE)
    assert rules.quorum_reached(request(approvals=approvals("U_LEAD1", "U_LEAD2")), RULE)
    voided = request(approvals=approvals("U_LEAD1", "U_LEAD2", params_hash="an-older-hash"))
    assert not rules.quorum_reached(voided, RULE)


def test_only_the_requester_cancels_and_only_before_it_starts():
    with pytest.raises(PolicyDenied, match="Only <@U_REQ> can cancel PRM-7"):
        rules.require_may_cancel(request(), "U_LEAD1")
    rules.require_may_cancel(request(status=RequestStatus.APPROVED), "U_REQ")
    with pytest.raises(InvalidTransition, match="executing and can no longer be cancelled"):
        rules.require_may_cancel(request(status=RequestStatus.EXECUTING), "U_REQ")
    change = rules.cancelled(request(status=RequestStatus.APPROVED), by="U_REQ", reason="", at=NOW)
    assert change.before is RequestStatus.APPROVED and change.fields["decision_reason"] is None


def test_break_glass_parameters_never_change():
    with pytest.raises(InvalidTransition, match="its parameters can no longer change"):
        rules.require_may_change_parameters(request(emergency=True, status=RequestStatus.APPROVED), "U_REQ")
    with pytest.raises(PolicyDenied, match="Only <@U_REQ> can change PRM-7"):
        rules.require_may_change_parameters(request(), "U_LEAD1")
    rules.require_may_change_parameters(request(status=RequestStatus.APPROVED), "U_REQ")


def test_break_glass_is_reviewed_once_by_another_approver():
    emergency = request(emergency=True, status=RequestStatus.EXECUTING, requester="U_ONCALL")
    with pytest.raises(InvalidTransition, match="not a break-glass change"):
        rules.require_reviewable(request(), "U_LEAD1")
    with pytest.raises(SelfApprovalRefused):
        rules.require_reviewable(emergency, "U_ONCALL")
    with pytest.raises(InvalidTransition, match="already reviewed by <@U_LEAD2>"):
        rules.require_reviewable(dataclasses.replace(emergency, reviewed_by="U_LEAD2"), "U_LEAD1")
    rules.require_reviewable(emergency, "U_LEAD1")
    with pytest.raises(NotAnApprover, match="Only approvers under policy 'prod-promotions'"):
        rules.require_reviewer(RULE, emergency, "U_REQ", MEMBERS)
    rules.require_reviewer(RULE, emergency, "U_LEAD1", MEMBERS)


def test_starting_rechecks_quorum_and_the_window():
    approved = request(status=RequestStatus.APPROVED, approvals=approvals("U_LEAD1"))
    with pytest.raises(QuorumNotMet, match="1 valid approval"):
        rules.require_quorum_and_window(approved, RULE, NOW)
    rules.require_quorum_and_window(approved, prod_rule(min_approvals=1), NOW)
    closed = prod_rule(
        min_approvals=1, windows=[ChangeWindow(kind="deny", cron="0 12 * * *", duration=timedelta(hours=1))]
    )
    with pytest.raises(ChangeWindowClosed):
        rules.require_quorum_and_window(approved, closed, NOW)


def test_a_retry_is_by_the_requester_or_an_approver_while_the_approvals_still_count():
    failed = request(status=RequestStatus.FAILED, approvals=approvals("U_LEAD1", "U_LEAD2"))
    rules.require_may_retry(failed, RULE, "U_REQ", MEMBERS)
    rules.require_may_retry(failed, RULE, "U_LEAD3", MEMBERS)
    with pytest.raises(NotAnApprover, match="Only <@U_REQ> or an approver"):
        rules.require_may_retry(failed, RULE, "U_STRANGER", MEMBERS)
    with pytest.raises(QuorumNotMet, match="no longer has enough approvals"):
        rules.require_may_retry(failed, prod_rule(min_approvals=3), "U_REQ", MEMBERS)
    rules.require_may_retry(dataclasses.replace(failed, emergency=True, approvals=()), RULE, "U_REQ", MEMBERS)


def test_awaiting_is_decided_per_policy():
    solo = prod_rule(name="solo", environment="test", allow_self_approval=True, min_approvals=1)
    other = prod_rule(
        name="other", environment="dev", approvers=ApproverSet(users=("U_OTHER",)), min_approvals=1
    )
    assert rules.awaitable_policies([RULE, solo, other], "U_LEAD1", MEMBERS) == (
        ["prod-promotions", "solo"],
        ["solo"],
    )
    assert rules.awaitable_policies([RULE, solo, other], "U_REQ", MEMBERS) == ([], [])


def test_the_audit_record_describes_the_request_as_it_now_is():
    record = rules.audit_record(
        request(status=RequestStatus.APPROVED), action="request.approved", actor="U_LEAD2",
        before=RequestStatus.PENDING, at=NOW, reason="", evidence={"approvals": 2},
    )  # fmt: skip
    assert (record.request_ref, record.subject) == ("PRM-7", "promotion:orders-api@prod")
    assert (record.before_status, record.after_status) == ("pending", "approved")
    assert record.reason is None and record.evidence == {"approvals": 2} and record.occurred_at == NOW
