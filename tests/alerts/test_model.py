"""Pure rules: severities, events, matchers, grouping timings and the storm plan."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from bot.alerts.grouping import GroupingRules
from bot.alerts.storm import PostPacer, StormPlan, plan_channel
from bot.config.alerts import AlertsConfig
from bot.domain.alert_errors import InvalidMatcher
from bot.domain.alerts import AlertEvent, Matcher, Severity, label_set, matches_all

T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def test_severities_order_info_warning_error_critical():
    assert sorted(Severity, key=lambda s: s.rank) == [
        Severity.INFO, Severity.WARNING, Severity.ERROR, Severity.CRITICAL,
    ]  # fmt: skip
    assert Severity.CRITICAL.at_least(Severity.ERROR) and not Severity.WARNING.at_least(Severity.ERROR)


def test_dedup_keys_are_at_most_255_characters_and_reserved_labels_are_refused():
    AlertEvent(dedup_key="k" * 255)
    with pytest.raises(ValidationError):
        AlertEvent(dedup_key="k" * 256)
    with pytest.raises(ValidationError, match="reserved"):
        AlertEvent(dedup_key="k", labels={"severity": "low"})
    with pytest.raises(ValidationError, match="not a label name"):
        AlertEvent(dedup_key="k", labels={"has space": "x"})


def test_labels_include_the_reserved_ones_with_env_as_an_alias():
    labels = label_set(source="api", severity="error", environment="prod", system="sap", labels={"team": "a"})
    assert labels == {"team": "a", "source": "api", "severity": "error", "environment": "prod", "env": "prod",
                      "system": "sap"}  # fmt: skip


@pytest.mark.parametrize(
    ("text", "labels", "expected"),
    [
        ("env=prod", {"env": "prod"}, True),
        ("env=prod", {"env": "test"}, False),
        ("env!=prod", {"env": "test"}, True),
        ("system=~open.*", {"system": "opentext"}, True),
        ("system=~open", {"system": "opentext"}, False),  # regexes match the whole value
        ("system!~canto|iconik", {"system": "sap"}, True),
        ("team=", {}, True),  # a missing label is the empty string
        ('title="disk full"', {"title": "disk full"}, True),
    ],
)
def test_matchers_follow_alertmanager(text, labels, expected):
    assert Matcher.parse(text).matches(labels) is expected


def test_unreadable_matchers_are_explained():
    with pytest.raises(InvalidMatcher, match="is not a matcher"):
        Matcher.parse("prod")
    with pytest.raises(InvalidMatcher, match="regular expression"):
        Matcher.parse("system=~[")


def test_an_empty_matcher_list_matches_nothing():
    assert not matches_all([], {"env": "prod"})


@given(st.from_regex(r"[a-z_]{1,8}", fullmatch=True), st.sampled_from(["=", "!=", "=~", "!~"]),
       st.from_regex(r"[a-z0-9]{0,8}", fullmatch=True))  # fmt: skip
def test_matchers_survive_text_and_json_round_trips(name, op, value):
    matcher = Matcher(name, op, value)
    assert Matcher.parse(str(matcher)) == matcher == Matcher.from_json(matcher.to_json())


RULES = GroupingRules.from_config(AlertsConfig(escalation={"after": "15m", "group": "S1"}))


def test_default_timings_are_30s_5m_4h():
    assert (RULES.group_wait, RULES.group_interval, RULES.repeat_interval) == (
        timedelta(seconds=30), timedelta(minutes=5), timedelta(hours=4),
    )  # fmt: skip
    assert RULES.first_flush(T0) == T0 + timedelta(seconds=30)


def test_a_repeated_trigger_keeps_a_scheduled_flush_or_waits_out_group_interval():
    scheduled = T0 + timedelta(seconds=10)
    assert (
        RULES.next_flush_after_trigger(now=T0, scheduled=scheduled, last_rendered_at=None, in_digest=False)
        == scheduled
    )
    rendered = T0 - timedelta(minutes=1)
    assert RULES.next_flush_after_trigger(
        now=T0, scheduled=None, last_rendered_at=rendered, in_digest=False
    ) == (rendered + timedelta(minutes=5))
    late = T0 - timedelta(minutes=9)
    assert (
        RULES.next_flush_after_trigger(now=T0, scheduled=None, last_rendered_at=late, in_digest=False) == T0
    )
    assert (
        RULES.next_flush_after_trigger(now=T0, scheduled=None, last_rendered_at=rendered, in_digest=True)
        == T0
    )


def test_only_critical_alerts_get_an_escalation_time():
    assert RULES.escalate_at(T0, Severity.CRITICAL) == T0 + timedelta(minutes=15)
    assert RULES.escalate_at(T0, Severity.ERROR) is None
    assert GroupingRules.from_config(AlertsConfig()).escalate_at(T0, Severity.CRITICAL) is None


def test_the_pacer_spaces_posts_by_the_channel_rate():
    pacer = PostPacer(1.0)
    next_slot = pacer.take(None, T0)
    assert next_slot == T0 + timedelta(seconds=1) and not pacer.free(
        next_slot, T0 + timedelta(milliseconds=999)
    )
    with pytest.raises(ValueError):
        pacer.take(next_slot, T0)


@pytest.mark.parametrize(
    ("due", "slot_free", "digest_open", "plan"),
    [
        (1, True, False, StormPlan(1, 0, 0)),
        (2, True, False, StormPlan(1, 0, 1)),  # a lone overflow waits for the next slot
        (3, True, False, StormPlan(1, 2, 0)),
        (1, False, False, StormPlan(0, 0, 1)),
        (5, False, False, StormPlan(0, 5, 0)),
        (1, True, True, StormPlan(0, 1, 0)),  # while a storm lasts everything joins its digest
    ],
)
def test_storm_plan_posts_folds_or_defers(due, slot_free, digest_open, plan):
    assert plan_channel(due=due, slot_free=slot_free, digest_open=digest_open) == plan


@given(st.integers(0, 500), st.booleans(), st.booleans())
def test_storm_plan_accounts_for_every_alert_and_posts_at_most_one(due, slot_free, digest_open):
    plan = plan_channel(due=due, slot_free=slot_free, digest_open=digest_open)
    assert plan.post + plan.fold + plan.defer == due and plan.post <= (1 if slot_free else 0)
