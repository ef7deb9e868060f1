"""Alert Block Kit builders: what people see, within Slack's limits."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from bot.blocks.alerts import (
    build_alert_digest,
    build_alert_list,
    build_alert_message,
    build_alert_reminder,
    build_silence_list,
    mention_markup,
)
from bot.domain.alerts import AlertStatus, AlertView, DigestView, Matcher, RetryTarget, Severity, SilenceView
from bot.emulators.slack_block_limits import block_violations
from bot.ids import AlertActionId
from bot.payloads import AlertActionValue, AlertOp

T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def alert(**overrides) -> AlertView:
    base = AlertView(
        id=7, dedup_key="ot:deploy@prod", source="workflow", severity=Severity.CRITICAL, environment="prod",
        system="opentext", title="Promotion of orders-flow failed in prod", summary="PRM-42: 500 from OTDS",
        labels={"team": "orders"}, status=AlertStatus.FIRING, occurrences=3, first_seen=T0, last_seen=T0,
        channel="C_ALERTS", mention="S_ONCALL", retry=RetryTarget(kind="request", ref="PRM-42"),
    )  # fmt: skip
    return replace(base, **overrides)


def dicts(blocks):
    return [b.to_dict() for b in blocks]


def elements(blocks):
    return [e for b in dicts(blocks) if b["type"] == "actions" for e in b["elements"]]


def test_an_open_alert_offers_every_action_with_typed_values():
    blocks = build_alert_message(alert())
    assert block_violations(dicts(blocks), surface="message") == []
    actions = elements(blocks)
    assert [e["action_id"] for e in actions] == [
        AlertActionId.ACKNOWLEDGE, AlertActionId.RESOLVE, AlertActionId.INCIDENT_PAGE, AlertActionId.RETRY,
        AlertActionId.SILENCE,
    ]  # fmt: skip
    values = [AlertActionValue.model_validate_json(e["value"]) for e in actions if "value" in e]
    assert [v.op for v in values] == [
        AlertOp.ACKNOWLEDGE,
        AlertOp.RESOLVE,
        AlertOp.INCIDENT_PAGE,
        AlertOp.RETRY,
    ]
    hours = [AlertActionValue.model_validate_json(o["value"]).hours for o in actions[-1]["options"]]
    assert hours == [1, 4, 24]


def test_a_resolved_alert_has_no_buttons_but_keeps_its_incident_link():
    resolved = alert(status=AlertStatus.RESOLVED, resolved_by="U_APP1", resolved_at=T0)
    assert elements(build_alert_message(resolved)) == []
    linked = elements(build_alert_message(replace(resolved, incident_url="https://wiki/x")))
    assert [e.get("url") for e in linked] == ["https://wiki/x"]


def test_alert_text_cannot_ping_people_or_break_out_of_formatting():
    text = str(dicts(build_alert_message(alert(summary="<!channel> <@U1> & co", title="<b>"))))
    assert "<!channel>" not in text and "&lt;!channel&gt;" in text and "&amp; co" in text


def test_long_titles_and_summaries_are_cut_to_slack_limits():
    huge = alert(title="T" * 200, summary="S" * 2800, labels={f"l{i}": "v" * 255 for i in range(20)})
    assert block_violations(dicts(build_alert_message(huge)), surface="message") == []


def test_mentions_ping_groups_and_users_by_id():
    assert mention_markup("S0123ABC") == "<!subteam^S0123ABC>"
    assert mention_markup("U0123ABC") == "<@U0123ABC>"
    assert mention_markup("@here") == "<!here>"
    assert mention_markup("integration-oncall") == "@integration-oncall"
    assert mention_markup(None) == ""


def test_a_digest_lists_at_most_max_listed_alerts_open_first_within_the_block_limit():
    alerts = tuple(
        alert(id=i, status=AlertStatus.RESOLVED if i % 3 == 0 else AlertStatus.FIRING) for i in range(1, 101)
    )
    digest = DigestView(id=1, channel="C_ALERTS", opened_at=T0, alerts=alerts, total=100, open_count=67)
    blocks = dicts(build_alert_digest(digest, per_channel_rate=1.0, max_listed=45))
    assert len(blocks) <= 50 and block_violations(blocks, surface="message") == []
    listed = [b for b in blocks if b.get("block_id", "").startswith("alert:")]
    assert len(listed) == 45 and all("accessory" in b for b in listed)  # the first 45 are open
    assert "55 more" in str(blocks[-1])


def test_reminders_name_each_alert_and_mention_who_must_act():
    text, blocks = build_alert_reminder([alert(), alert(id=8)], kind="escalation", mention="S_LEADS",
                                        now=T0 + timedelta(minutes=16))  # fmt: skip
    assert text.startswith("<!subteam^S_LEADS>") and "ALR-7" in text and "ALR-8" in text
    assert "firing for 16m" in text
    assert block_violations(dicts(blocks), surface="message") == []


def test_lists_of_alerts_and_silences_render_within_limits():
    many = [alert(id=i) for i in range(1, 80)]
    blocks = dicts(build_alert_list(many, total=79))
    assert block_violations(blocks, surface="message") == [] and "39 more" in str(blocks[-1])
    silence = SilenceView(id=3, matchers=(Matcher("env", "=", "prod"),), starts_at=T0, ends_at=T0 + timedelta(hours=2),
                          created_by="U_APP1", reason="deploy")  # fmt: skip
    shown = dicts(build_silence_list([silence], now=T0 + timedelta(minutes=30)))
    assert "SIL-3" in str(shown) and "1h30m left" in str(shown) and "`env=prod`" in str(shown)
