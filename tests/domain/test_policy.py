"""Policy rules: matching, specificity, fail-closed and change windows (pure, no database)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from bot.domain.errors import ChangeWindowClosed, PolicyDenied
from bot.domain.policy import (
    Action,
    ApproverSet,
    ChangeWindow,
    PolicyRule,
    PolicySet,
    StaticDirectory,
    describe_rule,
)

LEADS = ApproverSet(groups=("leads",))


def rule(name: str, **kw: object) -> PolicyRule:
    return PolicyRule.model_validate({"name": name, "approvers": LEADS, **kw})


def test_no_matching_rule_denies_with_a_message_that_says_so():
    policies = PolicySet([rule("test-only", action="promotion", environment="test")])
    with pytest.raises(PolicyDenied, match="No policy allows promotion of 'orders-api' in 'prod'"):
        policies.resolve(Action.PROMOTION, "prod", "orders-api")


def test_most_specific_rule_wins_over_wildcards():
    policies = PolicySet(
        [
            rule("anything", action="*", environment="*"),
            rule("prod-any", action="*", environment="prod"),
            rule("prod-promotions", action="promotion", environment="prod"),
            rule("prod-orders", action="promotion", environment="prod", target="orders-*"),
            rule("prod-orders-api", action="promotion", environment="prod", target="orders-api*"),
        ]
    )
    assert policies.resolve(Action.PROMOTION, "prod", "orders-api").name == "prod-orders-api"
    assert policies.resolve(Action.PROMOTION, "prod", "orders-850-map").name == "prod-orders"
    assert policies.resolve(Action.PROMOTION, "prod", "invoices").name == "prod-promotions"
    assert policies.resolve(Action.ROTATION, "prod", "x").name == "prod-any"
    assert policies.resolve(Action.RELEASE, "test", "x").name == "anything"


def test_first_declared_rule_wins_a_tie():
    policies = PolicySet(
        [
            rule("first", action="promotion", environment="prod"),
            rule("second", action="promotion", environment="prod"),
        ]
    )
    assert policies.resolve(Action.PROMOTION, "prod", "a").name == "first"


def test_min_approvals_below_one_is_rejected():
    with pytest.raises(ValidationError, match="greater than or equal to 1"):
        rule("r", action="promotion", environment="prod", min_approvals=0)


def test_quorum_larger_than_listed_users_is_rejected():
    with pytest.raises(ValidationError, match="quorum could never be reached"):
        PolicyRule(
            name="r",
            action="promotion",
            environment="prod",
            approvers=ApproverSet(users=("U1",)),
            min_approvals=2,
        )


def test_unknown_action_is_rejected_with_the_choices():
    with pytest.raises(ValidationError, match="must be one of \\*, promotion, rotation"):
        rule("r", action="deploy", environment="prod")


FRIDAY_EVENING = datetime(2026, 11, 27, 19, 0, tzinfo=UTC)  # Friday 20:00 in Berlin
MONDAY_MORNING = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
FREEZE = ChangeWindow(
    kind="deny", name="freeze", cron="0 18 * * 5", duration=timedelta(hours=62), timezone="Europe/Berlin"
)
BUSINESS = ChangeWindow(
    kind="allow", name="business", cron="0 8 * * 1-5", duration=timedelta(hours=10), timezone="Europe/Berlin"
)


def test_deny_window_blocks_changes_while_open():
    r = rule("r", action="promotion", environment="prod", windows=[FREEZE])
    with pytest.raises(ChangeWindowClosed, match="inside deny window 'freeze' until 2026-11-30 07:00 UTC"):
        r.require_window_open(FRIDAY_EVENING)
    r.require_window_open(MONDAY_MORNING)


def test_any_allow_window_makes_the_rule_allow_only():
    r = rule("r", action="promotion", environment="prod", windows=[BUSINESS])
    r.require_window_open(MONDAY_MORNING)
    saturday = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
    with pytest.raises(
        ChangeWindowClosed, match="outside every allow window; the next opens 2026-11-30 07:00 UTC"
    ):
        r.require_window_open(saturday)


def test_deny_beats_allow_when_both_are_open():
    late_friday_allow = ChangeWindow(kind="allow", cron="0 0 * * *", duration=timedelta(hours=24))
    r = rule("r", action="promotion", environment="prod", windows=[late_friday_allow, FREEZE])
    assert r.window_decision(MONDAY_MORNING).allowed
    decision = r.window_decision(FRIDAY_EVENING)
    assert not decision.allowed and "deny window" in decision.reason


def test_window_opens_exactly_at_its_cron_time():
    window = ChangeWindow(kind="allow", cron="0 8 * * *", duration=timedelta(hours=1))
    assert window.open_interval(datetime(2026, 11, 24, 8, 0, tzinfo=UTC)) is not None
    assert window.open_interval(datetime(2026, 11, 24, 7, 59, 59, tzinfo=UTC)) is None
    assert window.open_interval(datetime(2026, 11, 24, 9, 0, tzinfo=UTC)) is None


def test_invalid_cron_and_time_zone_are_rejected():
    with pytest.raises(ValidationError, match="not a valid cron expression"):
        ChangeWindow(kind="deny", cron="every friday", duration=timedelta(hours=1))
    with pytest.raises(ValidationError, match="unknown time zone"):
        ChangeWindow(kind="deny", cron="0 1 * * *", duration=timedelta(hours=1), timezone="Mars/Olympus")


async def test_approver_set_resolves_groups_through_the_directory():
    directory = StaticDirectory({"leads": frozenset({"U1"})})
    approvers = ApproverSet(users=("U9",), groups=("leads",))
    assert await approvers.contains("U1", directory)
    assert await approvers.contains("U9", directory)
    assert not await approvers.contains("U2", directory)


def test_policy_in_words():
    r = rule("r", action="promotion", environment="prod", min_approvals=2)
    text = describe_rule(r, expires_at=datetime(2026, 11, 24, 14, 0, tzinfo=UTC))
    assert text == "2 of @leads; self-approval off; expires 2026-11-24 14:00 UTC"
