"""The approval use case against a real database (SQLite and PostgreSQL), one transaction per call."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from bot.db.audit_log import verify_chain
from bot.db.models import AuditEvent, TargetLock
from bot.domain.errors import (
    BreakGlassRefused,
    ChangeWindowClosed,
    InvalidTransition,
    NotAnApprover,
    NotEligibleRequester,
    PolicyDenied,
    QuorumNotMet,
    RequestExpired,
    SelfApprovalRefused,
    TargetLocked,
)
from bot.domain.policy import Action, ChangeWindow
from bot.domain.requests import ChangeSpec, RequestStatus

from .approvals_world import clock, groups, make_engine, prod_rule

__all__ = ["clock", "groups", "make_engine"]  # the fixtures, imported for pytest

SPEC = ChangeSpec(Action.PROMOTION, "orders-api", "prod", {"version": "1.4.0", "from": "test"})


async def audit_actions(database, ref: str) -> list[str]:
    async with database.sessions() as session:
        rows = await session.scalars(
            select(AuditEvent.action).where(AuditEvent.request_ref == ref).order_by(AuditEvent.seq)
        )
        return list(rows)


async def test_requester_opens_a_pending_request_with_a_human_id(make_engine, database):
    engine = make_engine()
    request = await engine.create(SPEC, requester="U_REQ", reason="fix 850 mapping")
    assert request.human_id == "PRM-1"
    assert request.status is RequestStatus.PENDING
    assert request.policy.name == "prod-promotions"
    assert (
        await engine.create(ChangeSpec(Action.PROMOTION, "other", "prod"), requester="U_REQ")
    ).human_id == "PRM-2"
    assert await audit_actions(database, "PRM-1") == ["request.created"]


async def test_no_policy_means_denied_and_nothing_recorded(make_engine, database):
    engine = make_engine()
    with pytest.raises(PolicyDenied, match="No policy allows release"):
        await engine.create(ChangeSpec(Action.RELEASE, "asset-1", "prod"), requester="U_REQ")
    async with database.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(AuditEvent)) == 0


async def test_ineligible_requester_is_refused_at_request_time(make_engine):
    with pytest.raises(NotEligibleRequester, match="may not request"):
        await make_engine().create(SPEC, requester="U_STRANGER")


async def test_quorum_of_two_distinct_approvers_approves(make_engine, database):
    engine = make_engine()
    request = await engine.create(SPEC, requester="U_REQ")
    first = await engine.approve(request.human_id, approver="U_LEAD1")
    assert first.counted and not first.quorum_reached and first.request.status is RequestStatus.PENDING
    second = await engine.approve(request.human_id, approver="U_LEAD2")
    assert second.quorum_reached and second.request.status is RequestStatus.APPROVED
    assert [a.approver for a in second.request.valid_approvals] == ["U_LEAD1", "U_LEAD2"]
    assert await audit_actions(database, request.human_id) == [
        "request.created",
        "approval.recorded",
        "request.approved",
    ]


async def test_same_approver_twice_counts_once(make_engine):
    engine = make_engine()
    request = await engine.create(SPEC, requester="U_REQ")
    await engine.approve(request.human_id, approver="U_LEAD1")
    again = await engine.approve(request.human_id, approver="U_LEAD1")
    assert not again.counted
    assert again.request.status is RequestStatus.PENDING
    assert len(again.request.valid_approvals) == 1


async def test_requester_cannot_approve_own_promotion(make_engine):
    engine = make_engine()
    request = await engine.create(SPEC, requester="U_LEAD1")
    with pytest.raises(SelfApprovalRefused, match="does not allow self-approval"):
        await engine.approve(request.human_id, approver="U_LEAD1")
    assert (await engine.get(request.human_id)).approvals == ()


async def test_self_approval_counts_when_the_policy_allows_it(make_engine):
    engine = make_engine(prod_rule(allow_self_approval=True, min_approvals=1))
    request = await engine.create(SPEC, requester="U_LEAD1")
    outcome = await engine.approve(request.human_id, approver="U_LEAD1")
    assert outcome.quorum_reached


async def test_unauthorised_click_changes_nothing(make_engine, database):
    engine = make_engine()
    request = await engine.create(SPEC, requester="U_REQ")
    with pytest.raises(NotAnApprover, match="not an approver for PRM-1"):
        await engine.approve(request.human_id, approver="U_REQ2")
    after = await engine.get(request.human_id)
    assert after.status is RequestStatus.PENDING and after.approvals == ()
    assert await audit_actions(database, request.human_id) == ["request.created"]


async def test_requester_eligibility_is_checked_again_at_approval_time(make_engine, groups):
    engine = make_engine()
    request = await engine.create(SPEC, requester="U_REQ")
    groups["engineers"] = frozenset({"U_LEAD1"})  # U_REQ left the team after asking: asked at click time
    with pytest.raises(NotEligibleRequester, match="no longer allowed to request"):
        await engine.approve(request.human_id, approver="U_LEAD1")
    rejected = await engine.reject(request.human_id, approver="U_LEAD1", reason="left the team")
    assert rejected.status is RequestStatus.REJECTED


async def test_approver_removed_from_group_can_no_longer_approve(make_engine, groups):
    engine = make_engine()
    request = await engine.create(SPEC, requester="U_REQ")
    groups["leads"] = frozenset({"U_LEAD2"})
    with pytest.raises(NotAnApprover):
        await engine.approve(request.human_id, approver="U_LEAD1")


async def test_reject_needs_a_reason_and_releases_the_lock(make_engine, database):
    engine = make_engine()
    request = await engine.create(SPEC, requester="U_REQ")
    with pytest.raises(InvalidTransition, match="needs a reason"):
        await engine.reject(request.human_id, approver="U_LEAD1", reason="  ")
    rejected = await engine.reject(request.human_id, approver="U_LEAD1", reason="wrong version")
    assert rejected.status is RequestStatus.REJECTED and rejected.decision_reason == "wrong version"
    async with database.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(TargetLock)) == 0
    with pytest.raises(InvalidTransition, match="already rejected by <@U_LEAD1>"):
        await engine.approve(request.human_id, approver="U_LEAD2")


async def test_only_the_requester_can_cancel(make_engine):
    engine = make_engine()
    request = await engine.create(SPEC, requester="U_REQ")
    with pytest.raises(PolicyDenied, match="Only <@U_REQ> can cancel"):
        await engine.cancel(request.human_id, user="U_LEAD1")
    cancelled = await engine.cancel(request.human_id, user="U_REQ")
    assert cancelled.status is RequestStatus.CANCELLED
    with pytest.raises(InvalidTransition, match="can no longer be cancelled"):
        await engine.cancel(request.human_id, user="U_REQ")


async def test_one_in_flight_change_per_target(make_engine):
    engine = make_engine()
    first = await engine.create(SPEC, requester="U_REQ")
    with pytest.raises(TargetLocked, match="locked by PRM-1") as caught:
        await engine.create(
            ChangeSpec(Action.PROMOTION, "orders-api", "prod", {"version": "1.5.0"}), requester="U_LEAD1"
        )
    assert caught.value.holder == "PRM-1"
    await engine.cancel(first.human_id, user="U_REQ")
    second = await engine.create(
        ChangeSpec(Action.PROMOTION, "orders-api", "prod", {"version": "1.5.0"}), requester="U_LEAD1"
    )
    assert second.human_id == "PRM-2"  # the refused attempt rolled back entirely, number included


async def test_pending_request_expires_and_nothing_runs_afterwards(make_engine, clock, database):
    engine = make_engine()
    request = await engine.create(SPEC, requester="U_REQ")
    await engine.approve(request.human_id, approver="U_LEAD1")
    clock.advance(timedelta(hours=24))
    expired = await engine.expire_due()
    assert [r.human_id for r in expired] == [request.human_id]
    assert expired[0].status is RequestStatus.EXPIRED
    with pytest.raises(InvalidTransition, match="already expired"):
        await engine.approve(request.human_id, approver="U_LEAD2")
    with pytest.raises(InvalidTransition):
        await engine.start_execution(request.human_id)
    async with database.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(TargetLock)) == 0


async def test_click_after_deadline_expires_the_request_on_the_spot(make_engine, clock):
    engine = make_engine()
    request = await engine.create(SPEC, requester="U_REQ")
    clock.advance(timedelta(hours=25))
    with pytest.raises(RequestExpired, match="expired; nothing will run"):
        await engine.approve(request.human_id, approver="U_LEAD1")
    assert (await engine.get(request.human_id)).status is RequestStatus.EXPIRED


async def test_approved_but_unstarted_request_also_expires(make_engine, clock):
    engine = make_engine(prod_rule(min_approvals=1))
    request = await engine.create(SPEC, requester="U_REQ")
    await engine.approve(request.human_id, approver="U_LEAD1")
    clock.advance(timedelta(days=2))
    with pytest.raises(RequestExpired):
        await engine.start_execution(request.human_id)


async def test_changed_parameters_void_earlier_approvals(make_engine, database):
    engine = make_engine()
    request = await engine.create(SPEC, requester="U_REQ")
    await engine.approve(request.human_id, approver="U_LEAD1")
    await engine.approve(request.human_id, approver="U_LEAD2")
    changed = await engine.update_parameters(
        request.human_id, user="U_REQ", parameters={"version": "1.4.1", "from": "test"}
    )
    assert changed.status is RequestStatus.PENDING
    assert changed.valid_approvals == () and len(changed.approvals) == 2
    with pytest.raises(InvalidTransition, match="still waiting for approval"):
        await engine.start_execution(request.human_id)
    again = await engine.approve(request.human_id, approver="U_LEAD1")
    assert again.counted and not again.quorum_reached
    await engine.approve(request.human_id, approver="U_LEAD2")
    started = await engine.start_execution(request.human_id)
    assert started.parameters["version"] == "1.4.1"
    actions = await audit_actions(database, request.human_id)
    assert "request.parameters_changed" in actions


async def test_start_execution_requires_approval_and_happens_once(make_engine):
    engine = make_engine(prod_rule(min_approvals=1))
    request = await engine.create(SPEC, requester="U_REQ")
    with pytest.raises(InvalidTransition, match="still waiting for approval"):
        await engine.start_execution(request.human_id)
    await engine.approve(request.human_id, approver="U_LEAD1")
    started = await engine.start_execution(request.human_id)
    assert started.status is RequestStatus.EXECUTING
    with pytest.raises(InvalidTransition, match="already executing"):
        await engine.start_execution(request.human_id)


async def test_start_execution_rechecks_quorum_under_the_current_policy(make_engine):
    engine = make_engine(prod_rule(min_approvals=1))
    request = await engine.create(SPEC, requester="U_REQ")
    await engine.approve(request.human_id, approver="U_LEAD1")
    stricter = make_engine(prod_rule(min_approvals=2))  # policy tightened after approval
    with pytest.raises(QuorumNotMet, match="1 valid approval"):
        await stricter.start_execution(request.human_id)


async def test_change_window_is_checked_at_request_and_at_start(make_engine, clock):
    always_denied_soon = ChangeWindow(kind="deny", cron="0 13 * * *", duration=timedelta(hours=1))
    engine = make_engine(prod_rule(min_approvals=1, windows=[always_denied_soon]))
    request = await engine.create(SPEC, requester="U_REQ")  # 12:00: window not open yet
    await engine.approve(request.human_id, approver="U_LEAD1")
    clock.advance(timedelta(hours=1, minutes=5))
    with pytest.raises(ChangeWindowClosed):
        await engine.start_execution(request.human_id)
    with pytest.raises(ChangeWindowClosed):
        await engine.create(ChangeSpec(Action.PROMOTION, "other", "prod"), requester="U_REQ")
    clock.advance(timedelta(hours=1))
    assert (await engine.start_execution(request.human_id)).status is RequestStatus.EXECUTING


async def test_break_glass_skips_approvals_and_windows_but_demands_review(make_engine, database, clock):
    freeze = ChangeWindow(kind="deny", cron="0 0 * * *", duration=timedelta(hours=24))
    engine = make_engine(prod_rule(windows=[freeze]))
    with pytest.raises(BreakGlassRefused, match="needs a reason"):
        await engine.create(SPEC, requester="U_ONCALL", emergency_reason=" ")
    with pytest.raises(BreakGlassRefused, match="may not use break-glass"):
        await engine.create(SPEC, requester="U_REQ", emergency_reason="orders are failing")
    request = await engine.create(SPEC, requester="U_ONCALL", emergency_reason="orders are failing")
    assert request.status is RequestStatus.APPROVED and request.emergency
    assert request.review_due_at == clock() + timedelta(hours=48)
    assert (await engine.start_execution(request.human_id)).status is RequestStatus.EXECUTING
    with pytest.raises(SelfApprovalRefused):
        await engine.review_emergency(request.human_id, reviewer="U_ONCALL", notes="fine")
    reviewed = await engine.review_emergency(request.human_id, reviewer="U_LEAD1", notes="justified")
    assert reviewed.reviewed_by == "U_LEAD1"
    assert await audit_actions(database, request.human_id) == [
        "request.break_glass",
        "execution.started",
        "request.reviewed",
    ]


async def test_break_glass_is_refused_when_the_policy_has_none(make_engine):
    engine = make_engine(prod_rule(break_glass=None))
    with pytest.raises(BreakGlassRefused, match="no break-glass path"):
        await engine.create(SPEC, requester="U_ONCALL", emergency_reason="down")


async def test_success_and_failure_release_the_lock_and_are_audited(make_engine, database):
    engine = make_engine(prod_rule(min_approvals=1))
    ok = await engine.create(SPEC, requester="U_REQ")
    await engine.approve(ok.human_id, approver="U_LEAD1")
    await engine.start_execution(ok.human_id)
    done = await engine.succeed(ok.human_id, result={"deployed": "1.4.0"}, evidence={"job": "J1"})
    assert done.status is RequestStatus.SUCCEEDED and done.result == {"deployed": "1.4.0"}
    bad = await engine.create(SPEC, requester="U_REQ")
    await engine.approve(bad.human_id, approver="U_LEAD1")
    await engine.start_execution(bad.human_id)
    failed = await engine.fail(bad.human_id, reason="OpenText: map compile error")
    assert failed.failure_reason == "OpenText: map compile error"
    rollback = await engine.create(SPEC, requester="U_REQ", rollback_of=ok.human_id)
    assert rollback.rollback_of_id == ok.id
    checked, problem = await verify_chain(database.engine)
    assert problem is None and checked == 9


async def test_secret_like_evidence_is_stored_only_as_fingerprint(make_engine, database, fingerprinter):
    engine = make_engine()
    spec = ChangeSpec(
        Action.PROMOTION, "orders-api", "prod", {"version": "1", "client_secret": "s3cr3t-value"}
    )
    await engine.create(spec, requester="U_REQ")
    async with database.sessions() as session:
        evidence = (await session.scalars(select(AuditEvent.evidence))).one()
    assert "s3cr3t-value" not in str(evidence)
    assert evidence["parameters"]["client_secret"] == fingerprinter.fingerprint("s3cr3t-value")


async def test_same_idempotency_key_returns_the_same_request(make_engine):
    engine = make_engine()
    first = await engine.create(SPEC, requester="U_REQ", idempotency_key="trigger-1")
    again = await engine.create(SPEC, requester="U_REQ", idempotency_key="trigger-1")
    assert again.human_id == first.human_id


async def test_concurrent_creates_with_one_key_make_one_request(make_engine):
    engine = make_engine()
    results = await asyncio.gather(
        *(engine.create(SPEC, requester="U_REQ", idempotency_key="retry-key") for _ in range(10)),
        return_exceptions=True,
    )
    ids = {r.human_id for r in results if not isinstance(r, BaseException)}
    assert ids == {"PRM-1"}, results


async def test_twenty_concurrent_clicks_record_one_approval(make_engine):
    engine = make_engine()
    request = await engine.create(SPEC, requester="U_REQ")
    outcomes = await asyncio.gather(
        *(engine.approve(request.human_id, approver="U_LEAD1") for _ in range(20))
    )
    assert sum(o.counted for o in outcomes) == 1
    assert len((await engine.get(request.human_id)).approvals) == 1


async def test_awaiting_lists_what_a_person_can_still_approve(make_engine):
    engine = make_engine()
    a = await engine.create(SPEC, requester="U_REQ")
    await engine.create(ChangeSpec(Action.PROMOTION, "other", "prod"), requester="U_LEAD2")
    await engine.approve(a.human_id, approver="U_LEAD1")
    assert [r.human_id for r in await engine.awaiting("U_LEAD1")] == ["PRM-2"]
    assert [r.human_id for r in await engine.awaiting("U_LEAD2")] == ["PRM-1"]
    assert await engine.awaiting("U_REQ") == []


async def test_due_reminders_come_back_on_schedule(make_engine, clock):
    engine = make_engine(prod_rule(remind_every=timedelta(hours=4)))
    request = await engine.create(SPEC, requester="U_REQ")
    assert await engine.due_reminders() == []
    clock.advance(timedelta(hours=4))
    assert [r.human_id for r in await engine.due_reminders()] == [request.human_id]
    assert await engine.due_reminders() == []
