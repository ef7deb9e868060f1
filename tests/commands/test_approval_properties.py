"""Property: whatever sequence of decisions arrives, nothing executes without quorum or twice."""

from __future__ import annotations

import itertools
from datetime import timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.domain.errors import DomainError
from bot.domain.policy import Action
from bot.domain.requests import ChangeSpec, RequestStatus

from .approvals_world import clock, groups, make_engine, prod_rule

__all__ = ["clock", "groups", "make_engine"]  # the fixtures, imported for pytest

USERS = ["U_REQ", "U_LEAD1", "U_LEAD2", "U_LEAD3", "U_STRANGER"]
operation = st.one_of(
    st.tuples(st.just("approve"), st.sampled_from(USERS)),
    st.tuples(st.just("reject"), st.sampled_from(USERS)),
    st.tuples(st.just("cancel"), st.sampled_from(USERS)),
    st.tuples(st.just("update"), st.integers(0, 2)),
    st.tuples(st.just("advance"), st.integers(1, 30)),
    st.tuples(st.just("expire"), st.none()),
    st.tuples(st.just("start"), st.none()),
)
_targets = itertools.count()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(operation, min_size=1, max_size=14))
async def test_never_executes_without_quorum_and_never_twice(make_engine, clock, ops):
    engine = make_engine(prod_rule(min_approvals=2, expires_after=timedelta(hours=24)))
    spec = ChangeSpec(Action.PROMOTION, f"artifact-{next(_targets)}", "prod", {"version": "1"})
    request = await engine.create(spec, requester="U_REQ")
    starts = 0
    for name, arg in ops:
        try:
            if name == "approve":
                await engine.approve(request.human_id, approver=arg)
            elif name == "reject":
                await engine.reject(request.human_id, approver=arg, reason="no")
            elif name == "cancel":
                await engine.cancel(request.human_id, user=arg)
            elif name == "update":
                await engine.update_parameters(
                    request.human_id, user="U_REQ", parameters={"version": str(arg)}
                )
            elif name == "advance":
                clock.advance(timedelta(hours=arg))
            elif name == "expire":
                await engine.expire_due()
            elif name == "start":
                started = await engine.start_execution(request.human_id)
                starts += 1
                valid = started.valid_approvals
                approvers = {a.approver for a in valid}
                assert len(approvers) >= 2, "executed without quorum"
                assert "U_REQ" not in approvers and "U_STRANGER" not in approvers
                assert started.expires_at > clock()
        except DomainError:
            pass
    assert starts <= 1, "executed twice"
    final = await engine.get(request.human_id)
    if starts == 0:
        assert final.status is not RequestStatus.EXECUTING
