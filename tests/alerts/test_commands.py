"""The Slack-free alert use cases: `/ops alerts|silence|silences|unsilence` and the buttons."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from bot.db.models import AuditEvent
from bot.domain.alert_errors import (
    AlertClosed,
    AlertNotFound,
    IncidentPageUnavailable,
    InvalidMatcher,
    NotRetryable,
    SilenceNotFound,
)
from bot.domain.alerts import AlertStatus, Matcher, RetryTarget
from bot.payloads import AlertActionValue, AlertOp
from commands.alerts import parse_alert_filter, parse_silence, parse_silence_ref


def test_filters_read_matchers_severity_floor_status_and_free_words():
    wanted = parse_alert_filter('env=prod system!=canto title=~"Disk .*" severity>=error status=all backlog')
    assert wanted.matchers[:3] == (
        Matcher("env", "=", "prod"), Matcher("system", "!=", "canto"), Matcher("title", "=~", "Disk .*"),
    )  # fmt: skip
    assert wanted.matchers[3].matches({"severity": "critical"})
    assert not wanted.matchers[3].matches({"severity": "warning"})
    assert set(wanted.statuses) == set(AlertStatus) and wanted.text == "backlog"
    assert parse_alert_filter("status=firing,acknowledged").statuses == (
        AlertStatus.FIRING, AlertStatus.ACKNOWLEDGED,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("status=burning", "status is one of"),
        ("severity>=huge", "severity is one of"),
        ('env="prod', "quotes"),
    ],
)
def test_a_filter_that_cannot_be_read_says_why(text, problem):
    with pytest.raises(InvalidMatcher, match=problem):
        parse_alert_filter(text)


def test_silence_arguments_are_matchers_then_a_duration_then_a_reason():
    matchers, duration, reason = parse_silence("env=prod system=opentext 1h30m deploy of v42")
    assert [str(m) for m in matchers] == ["env=prod", "system=opentext"]
    assert duration == timedelta(minutes=90) and reason == "deploy of v42"
    assert parse_silence_ref(" SIL-12 ") == parse_silence_ref("#12") == parse_silence_ref("12") == 12
    with pytest.raises(SilenceNotFound):
        parse_silence_ref("silence twelve")


async def test_ops_alerts_lists_open_alerts_matching_the_filter(harness):
    await harness.trigger("ot-1", system="opentext", severity="critical")
    await harness.trigger("canto-1", system="canto", severity="warning")
    closed = await harness.trigger("ot-2", system="opentext")
    await harness.service.resolve(closed.alert_id, user="U_APP1")
    everything = await harness.commands.alerts("")
    assert everything.text == "Open alerts: 2"
    only = await harness.commands.alerts("system=opentext")
    assert only.text == "Alerts matching system=opentext: 1"
    assert "ot-1 failed" in str([b.to_dict() for b in only.blocks])
    assert (await harness.commands.alerts("system=opentext status=all")).text.endswith(": 2")
    assert (await harness.commands.alerts("severity>=error")).text.endswith(": 1")
    assert (await harness.commands.alerts("canto")).text.endswith(": 1")
    none = await harness.commands.alerts("env=test")
    assert "none" in str([b.to_dict() for b in none.blocks])


async def test_buttons_dispatch_from_their_values_and_report_double_clicks(harness):
    opened = await harness.trigger("ack-me")
    await harness.step(30)
    value = AlertActionValue.model_validate_json(
        AlertActionValue(alert_id=opened.alert_id, op=AlertOp.ACKNOWLEDGE).model_dump_json()
    )
    first = await harness.commands.act(value, user="U_APP1")
    again = await harness.commands.act(value, user="U_APP2")
    assert "You acknowledged" in first.text and "already acknowledged by <@U_APP1>" in again.text
    done = await harness.commands.act(
        AlertActionValue(alert_id=opened.alert_id, op=AlertOp.RESOLVE), user="U_APP2"
    )
    assert "You resolved" in done.text
    with pytest.raises(AlertClosed):
        await harness.commands.acknowledge(opened.alert_id, user="U_APP1")
    with pytest.raises(AlertNotFound, match="ALR-999"):
        await harness.commands.resolve(999, user="U_APP1")


async def test_acknowledging_is_audited_with_who_and_what(harness, database):
    opened = await harness.trigger("audited", severity="critical")
    await harness.commands.acknowledge(opened.alert_id, user="U_APP1")
    async with database.sessions() as session:
        [event] = (await session.scalars(select(AuditEvent))).all()
    assert (event.actor, event.action, event.subject) == (
        "U_APP1",
        "alert.acknowledged",
        f"ALR-{opened.alert_id}",
    )
    assert (event.before_status, event.after_status) == ("firing", "acknowledged")
    assert event.evidence["dedup_key"] == "audited"


async def test_retry_returns_what_to_rerun_once_and_shows_who_asked(harness):
    target = RetryTarget(kind="request", ref="PRM-42", environment="prod")
    opened = await harness.trigger("promotion-failed", retry=target)
    await harness.step(30)
    reply = await harness.commands.retry(opened.alert_id, user="U_REQ")
    assert reply.plan is not None and reply.plan.target == target
    assert reply.plan.idempotency_key == f"alert-retry:{opened.alert_id}:1"
    assert "PRM-42" in reply.text
    with pytest.raises(NotRetryable, match="moments ago"):
        await harness.commands.retry(opened.alert_id, user="U_APP1")
    harness.clock.advance(timedelta(minutes=2))
    second = await harness.commands.retry(opened.alert_id, user="U_APP1")
    assert second.plan is not None and second.plan.idempotency_key.endswith(":2")
    await harness.deliver()
    [post] = harness.slack.posts("C_ALERTS")
    assert "Retry requested by <@U_APP1>" in harness.slack.shown(post)


async def test_retry_is_refused_for_alerts_with_nothing_to_rerun(harness):
    opened = await harness.trigger("api-alert")
    await harness.step(30)
    assert "alert_retry" not in harness.slack.action_ids(harness.slack.posts("C_ALERTS")[0])
    with pytest.raises(NotRetryable, match="nothing to re-run"):
        await harness.commands.retry(opened.alert_id, user="U_REQ")


async def test_incident_page_is_created_once_and_linked_from_the_message(harness):
    calls = []

    async def create_page(request):
        calls.append(request)
        return f"https://wiki.example.com/incidents/{request.alert.ref}"

    harness.incident_page = create_page
    harness.rebuild(harness.config)
    opened = await harness.trigger("needs-a-page", severity="critical")
    await harness.step(30)
    reply = await harness.commands.create_incident_page(opened.alert_id, user="U_APP1")
    again = await harness.commands.create_incident_page(opened.alert_id, user="U_APP2")
    assert (
        len(calls) == 1
        and calls[0].requested_by == "U_APP1"
        and calls[0].alert.title == "needs-a-page failed"
    )
    assert "incidents/ALR-1" in reply.text and "already has an incident page" in again.text
    await harness.deliver()
    [post] = harness.slack.posts("C_ALERTS")
    buttons = [e for b in post.blocks if b["type"] == "actions" for e in b["elements"]]
    link = next(e for e in buttons if e.get("url"))
    assert link["url"] == "https://wiki.example.com/incidents/ALR-1"
    assert "alert_incident_page" not in harness.slack.action_ids(post)


async def test_incident_page_failures_and_missing_setup_are_explained(harness):
    opened = await harness.trigger("no-wiki")
    with pytest.raises(IncidentPageUnavailable, match="not set up"):
        await harness.commands.create_incident_page(opened.alert_id, user="U_APP1")

    async def broken(request):
        raise RuntimeError("Confluence answered 503")

    harness.incident_page = broken
    harness.rebuild(harness.config)
    with pytest.raises(IncidentPageUnavailable, match="Confluence answered 503"):
        await harness.commands.create_incident_page(opened.alert_id, user="U_APP1")
    # the claim was released: a later attempt may try again
    assert (await harness.service.claim_incident_page(opened.alert_id, user="U_APP2")).incident_url is None
