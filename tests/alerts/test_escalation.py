"""Escalation: a critical alert nobody acknowledged in time re-notifies and mentions the group."""

from __future__ import annotations

ESCALATION = {"after": "15m", "group": "S_LEADS"}


async def test_unacknowledged_critical_alert_escalates_to_the_group_after_the_configured_time(harness):
    harness.reconfigure(escalation=ESCALATION, default_mention="S_ONCALL")
    await harness.trigger("ot-prod-down", severity="critical")
    await harness.step(30)
    await harness.run_for(15 * 60 - 1, step=60)
    assert harness.slack.replies("C_ALERTS") == []
    await harness.step(1)
    [reply] = harness.slack.replies("C_ALERTS")
    assert reply.text.startswith("<!subteam^S_LEADS>") and "Escalation" in reply.text
    [post] = harness.slack.posts("C_ALERTS")
    assert reply.thread_ts == post.ts
    assert "Escalated to <!subteam^S_LEADS>" in harness.slack.shown(post)


async def test_escalation_happens_once(harness):
    harness.reconfigure(escalation=ESCALATION, repeat_interval="10h")
    await harness.trigger("once", severity="critical")
    await harness.run_for(2 * 3600, step=300)
    assert len(harness.slack.replies("C_ALERTS")) == 1


async def test_acknowledged_critical_alert_does_not_escalate(harness):
    harness.reconfigure(escalation=ESCALATION)
    opened = await harness.trigger("acked-in-time", severity="critical")
    await harness.step(30)
    await harness.run_for(10 * 60, step=60)
    await harness.commands.acknowledge(opened.alert_id, user="U_APP1")
    await harness.run_for(30 * 60, step=60)
    assert harness.slack.replies("C_ALERTS") == []


async def test_non_critical_alerts_do_not_escalate(harness):
    harness.reconfigure(escalation=ESCALATION)
    await harness.trigger("just-an-error", severity="error")
    await harness.run_for(60 * 60, step=300)
    assert harness.slack.replies("C_ALERTS") == []


async def test_an_alert_that_turns_critical_escalates_from_then_on(harness):
    harness.reconfigure(escalation=ESCALATION)
    await harness.trigger("worsening", severity="warning")
    await harness.run_for(20 * 60, step=60)
    await harness.trigger("worsening", severity="critical")
    await harness.run_for(15 * 60 - 1, step=60)
    assert harness.slack.replies("C_ALERTS") == []
    await harness.step(1)
    assert len(harness.slack.replies("C_ALERTS")) == 1


async def test_without_escalation_configured_nothing_escalates(harness):
    await harness.trigger("quiet", severity="critical")
    await harness.run_for(3 * 3600, step=600)
    assert harness.slack.replies("C_ALERTS") == []


async def test_critical_alerts_folded_into_a_digest_escalate_in_one_reply_under_it(harness):
    harness.reconfigure(escalation=ESCALATION)
    for i in range(4):
        await harness.trigger(f"crit-{i}", severity="critical")
    await harness.run_for(17 * 60, step=60)
    first, digest = harness.slack.posts("C_ALERTS")
    replies = harness.slack.replies("C_ALERTS")
    assert sorted(r.thread_ts for r in replies) == sorted([first.ts, digest.ts])
    under_digest = next(r for r in replies if r.thread_ts == digest.ts)
    assert all(f"ALR-{i}" in under_digest.text for i in (2, 3, 4))
    assert (
        harness.slack.shown(harness.slack.posts("C_ALERTS")[1]).count("escalated to <!subteam^S_LEADS>") == 3
    )
