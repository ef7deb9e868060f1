"""Policies the approval tests share: rules and use-case tests build theirs from `prod_rule`."""

from __future__ import annotations

from datetime import timedelta

from bot.domain.policy import ApproverSet, BreakGlassRule, PolicyRule

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
