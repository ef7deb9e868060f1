"""`/ops` use cases against a real database: typed results, each read in the caller's transaction."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bot.config.opsgate import parse_config
from bot.domain.errors import InvalidTransition, RequestNotFound, TargetLocked
from bot.domain.policy import Action
from bot.domain.requests import ChangeSpec, RequestStatus
from commands.ops import OpsCommands
from commands.promote import promotion_spec
from commands.workflow import PrecheckFailed

from .approvals_world import clock, groups, make_engine, prod_rule

__all__ = ["clock", "groups", "make_engine"]

CONFIG = parse_config({"environments": {"test": {}, "prod": {}}}, source="test", env={})
PROMOTION = promotion_spec(artifact="orders-api", version="1.4.0", from_env="test", to_env="prod")


def ops_of(engine) -> OpsCommands:
    return OpsCommands(engine.approvals, CONFIG)


async def read(engine, use_case):
    async with engine.database.reading() as tx:
        return await use_case(tx)


async def test_status_counts_the_latest_requests_and_names_the_locked_targets(make_engine):
    engine = make_engine(
        prod_rule(min_approvals=1), prod_rule(name="test-any", environment="test", min_approvals=1)
    )
    first = await engine.create(PROMOTION, requester="U_REQ")
    await engine.approve(first.human_id, approver="U_LEAD1")
    other = await engine.create(ChangeSpec(Action.PROMOTION, "billing", "test"), requester="U_REQ")
    await engine.cancel(other.human_id, user="U_REQ")
    ops = ops_of(engine)
    everything = await read(engine, lambda tx: ops.status(tx, None))
    assert everything.examined == 2
    assert everything.counts == {RequestStatus.APPROVED: 1, RequestStatus.CANCELLED: 1}
    assert [r.human_id for r in everything.in_flight] == [first.human_id]
    assert everything.locked_targets == ("promotion:orders-api@prod",)
    in_test = await read(engine, lambda tx: ops.status(tx, "test"))
    assert (in_test.examined, in_test.in_flight, in_test.locked_targets) == (1, (), ())
    with pytest.raises(PrecheckFailed, match=r"Unknown environment 'staging'\. Configured: prod, test\."):
        await read(engine, lambda tx: ops.status(tx, "staging"))


async def test_listings_are_newest_first(make_engine):
    engine = make_engine()
    older = await engine.create(PROMOTION, requester="U_REQ")
    newer = await engine.create(ChangeSpec(Action.PROMOTION, "billing", "prod"), requester="U_LEAD1")
    ops = ops_of(engine)
    pending = await read(engine, ops.pending)
    assert pending.scope == "pending" and [r.human_id for r in pending.requests] == [
        newer.human_id,
        older.human_id,
    ]
    mine = await read(engine, lambda tx: ops.mine(tx, "U_REQ"))
    assert mine.scope == "mine" and [r.human_id for r in mine.requests] == [older.human_id]


async def test_audit_returns_the_chained_events_of_one_request(make_engine):
    engine = make_engine()
    request = await engine.create(PROMOTION, requester="U_REQ", reason="fix the mapping")
    await engine.approve(request.human_id, approver="U_LEAD1")
    await engine.create(ChangeSpec(Action.PROMOTION, "billing", "prod"), requester="U_REQ")
    listing = await read(engine, lambda tx: ops_of(engine).audit(tx, "prm-1"))
    assert listing.request.human_id == "PRM-1"
    assert [(e.seq, e.record.action) for e in listing.events] == [
        (1, "request.created"),
        (2, "approval.recorded"),
    ]
    assert listing.events[0].record.reason == "fix the mapping" and len(listing.events[1].hash) == 64
    with pytest.raises(RequestNotFound):
        await read(engine, lambda tx: ops_of(engine).audit(tx, "PRM-99"))


async def test_only_a_finished_promotion_rolls_back_to_what_it_replaced(make_engine):
    engine = make_engine(prod_rule(min_approvals=1))
    request = await engine.create(PROMOTION, requester="U_REQ", preview={"current_version": "1.3.2"})
    ops = ops_of(engine)
    with pytest.raises(InvalidTransition, match="PRM-1 is pending; roll back after it finishes"):
        await read(engine, lambda tx: ops.rollback(tx, request.human_id))
    await engine.approve(request.human_id, approver="U_LEAD1")
    await engine.start_execution(request.human_id)
    await engine.succeed(request.human_id, result={"previous_version": "1.3.2"})
    plan = await read(engine, lambda tx: ops.rollback(tx, request.human_id))
    assert plan.reason == "Rollback of PRM-1"
    assert (plan.spec.target, plan.spec.environment, plan.spec.parameters["version"]) == (
        "orders-api",
        "prod",
        "1.3.2",
    )
    rollback = await engine.create(
        plan.spec, requester="U_REQ", reason=plan.reason, rollback_of=plan.original.human_id
    )
    assert rollback.rollback_of_id == request.id


async def test_retrying_a_failure_whose_target_was_taken_since_is_refused_cleanly(make_engine, clock):
    engine = make_engine(prod_rule(min_approvals=1))
    failed = await engine.create(PROMOTION, requester="U_REQ")
    await engine.approve(failed.human_id, approver="U_LEAD1")
    await engine.start_execution(failed.human_id)
    await engine.fail(failed.human_id, reason="OpenText: map compile error")
    clock.advance(timedelta(minutes=5))
    newer = await engine.create(PROMOTION, requester="U_REQ")
    with pytest.raises(TargetLocked, match=f"locked by {newer.human_id}"):
        await engine.retry_failed(failed.human_id, actor="U_REQ")
    assert (await engine.get(failed.human_id)).status is RequestStatus.FAILED  # nothing half-done
    await engine.cancel(newer.human_id, user="U_REQ")
    retried = await engine.retry_failed(failed.human_id, actor="U_REQ")
    assert retried.status is RequestStatus.APPROVED and retried.expires_at == clock() + timedelta(hours=24)
