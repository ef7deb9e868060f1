from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest

from bot.domain.approvals import ApprovalEngine
from bot.domain.audit import Fingerprinter
from bot.domain.policy import ApproverSet, BreakGlassRule, PolicyRule, PolicySet, StaticDirectory
from bot.domain.requests import FrozenClock

GROUPS = {
    "leads": frozenset({"U_LEAD1", "U_LEAD2", "U_LEAD3"}),
    "engineers": frozenset({"U_REQ", "U_LEAD1", "U_LEAD2"}),
    "oncall": frozenset({"U_ONCALL"}),
}


def prod_rule(**overrides: object) -> PolicyRule:
    base: dict[str, object] = {
        "name": "prod-promotions",
        "action": "promotion",
        "environment": "prod",
        "approvers": ApproverSet(groups=("leads",)),
        "min_approvals": 2,
        "requesters": ApproverSet(groups=("engineers", "oncall")),
        "expires_after": timedelta(hours=24),
        "break_glass": BreakGlassRule(groups=("oncall",), review_within=timedelta(hours=48)),
    }
    base.update(overrides)
    return PolicyRule.model_validate(base)


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture
def groups() -> dict[str, frozenset[str]]:
    return {k: frozenset(v) for k, v in GROUPS.items()}


@pytest.fixture
def make_engine(
    database, fingerprinter: Fingerprinter, clock: FrozenClock, groups
) -> Callable[..., ApprovalEngine]:
    def build(*rules: PolicyRule) -> ApprovalEngine:
        return ApprovalEngine(
            database.sessions,
            PolicySet(rules or (prod_rule(),)),
            StaticDirectory(groups),
            fingerprinter,
            clock=clock,
        )

    return build
