"""Grouping and dedup timings (Alertmanager / PagerDuty semantics) with an injected clock,
observed in the Slack emulator after delivery through the outbox."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import text

from bot.alerts.tick import TICK_LOCK_KEY
from bot.domain.alerts import AlertStatus


async def test_new_alert_is_posted_only_after_group_wait(harness):
    await harness.trigger("opentext-deploy")
    await harness.step(29)
    assert harness.slack.posts("C_ALERTS") == [] and harness.wakes == 0
    await harness.step(1)
    assert harness.wakes == 1  # the outbox delivery was woken for the post
    posts = harness.slack.posts("C_ALERTS")
    assert len(posts) == 1
    assert "opentext-deploy failed" in posts[0].text


async def test_triggers_within_group_wait_become_one_message_with_their_count(harness):
    for _ in range(5):
        await harness.trigger("iconik-transcode")
        await harness.step(5)
    await harness.step(10)
    posts = harness.slack.posts("C_ALERTS")
    assert len(posts) == 1
    assert "Occurrences*\n5" in harness.slack.shown(posts[0])


async def test_repeated_trigger_raises_the_count_and_updates_the_message_in_place(harness):
    first = await harness.trigger("canto-sync")
    await harness.step(30)
    again = await harness.trigger("canto-sync")
    assert again.alert_id == first.alert_id and again.occurrences == 2 and not again.created
    await harness.step(60)  # within group_interval: the count waits
    [post] = harness.slack.posts("C_ALERTS")
    assert "Occurrences*\n1" in harness.slack.shown(post)
    await harness.step(240)  # group_interval (5 m) since the post
    [post] = harness.slack.posts("C_ALERTS")
    assert "Occurrences*\n2" in harness.slack.shown(post)
    assert post.edited_ts is not None and len(post.history) == 1


async def test_updates_are_batched_to_one_per_group_interval(harness):
    await harness.trigger("edi-orders")
    await harness.step(30)
    for _ in range(20):
        await harness.trigger("edi-orders")
        await harness.step(30)  # 10 minutes of triggers every 30 s
    [post] = harness.slack.posts("C_ALERTS")
    assert len(post.history) == 2  # two group_intervals elapsed: two in-place updates
    assert "Occurrences*\n" in harness.slack.shown(post)


async def test_alert_resolved_within_group_wait_is_never_posted(harness):
    await harness.trigger("flaky-probe")
    await harness.step(10)
    result = await harness.resolve_key("flaky-probe")
    assert result.status is AlertStatus.RESOLVED
    await harness.run_for(600, step=30)
    assert harness.slack.posts("C_ALERTS") == []
    assert await harness.outbox() == []


async def test_resolution_updates_the_message_in_place_and_removes_the_buttons(harness):
    opened = await harness.trigger("sap-idoc")
    await harness.step(30)
    await harness.resolve_key("sap-idoc")
    await harness.deliver()
    [post] = harness.slack.posts("C_ALERTS")
    assert "Resolved" in harness.slack.shown(post)
    assert not [b for b in post.blocks if b["type"] == "actions"]
    assert (await harness.alert(opened.alert_id)).status == "resolved"


async def test_after_resolution_the_same_key_opens_a_new_alert(harness):
    first = await harness.trigger("opentext-login")
    await harness.step(30)
    await harness.resolve_key("opentext-login")
    second = await harness.trigger("opentext-login")
    assert second.created and second.alert_id != first.alert_id and second.occurrences == 1
    await harness.step(30)
    assert len(harness.slack.posts("C_ALERTS")) == 2


async def test_resolve_for_a_key_with_no_open_alert_changes_nothing(harness):
    result = await harness.resolve_key("never-seen")
    assert result.alert_id is None
    assert await harness.alerts() == []


async def test_still_firing_alert_repeats_after_repeat_interval_in_its_thread(harness):
    harness.reconfigure(repeat_interval="1h", default_mention="S_ONCALL")
    await harness.trigger("iconik-storage")
    await harness.step(30)
    await harness.run_for(3600 - 60, step=590)
    assert harness.slack.replies("C_ALERTS") == []
    await harness.step(60)
    [reply] = harness.slack.replies("C_ALERTS")
    assert "Still firing" in reply.text and "<!subteam^S_ONCALL>" in reply.text
    assert reply.thread_ts == harness.slack.posts("C_ALERTS")[0].ts


async def test_acknowledge_stops_repeats_and_shows_who(harness):
    harness.reconfigure(repeat_interval="1h")
    opened = await harness.trigger("canto-webhook")
    await harness.step(30)
    reply = await harness.commands.acknowledge(opened.alert_id, user="U_APP1")
    assert "acknowledged" in reply.text
    await harness.run_for(3 * 3600, step=900)
    assert harness.slack.replies("C_ALERTS") == []
    [post] = harness.slack.posts("C_ALERTS")
    assert "Acknowledged* by <@U_APP1>" in harness.slack.shown(post)
    assert "alert_acknowledge" not in harness.slack.action_ids(post)  # the button is gone
    assert "alert_resolve" in harness.slack.action_ids(post)


async def test_a_worse_trigger_updates_the_message_at_once(harness):
    await harness.trigger("disk", severity="warning")
    await harness.step(30)
    await harness.trigger("disk", severity="critical")
    await harness.step(1)
    [post] = harness.slack.posts("C_ALERTS")
    assert "CRITICAL" in post.blocks[0]["text"]["text"]


async def test_trigger_resolve_trigger_in_one_group_commit_opens_a_second_alert(harness):
    first, resolved, second = await asyncio.gather(
        harness.trigger("bounce"), harness.resolve_key("bounce"), harness.trigger("bounce")
    )
    assert resolved.alert_id == first.alert_id and second.created and second.alert_id != first.alert_id
    assert [(a.status, a.open_key) for a in await harness.alerts()] == [
        ("resolved", None),
        ("firing", "bounce"),
    ]


async def test_while_another_worker_ticks_a_tick_skips_instead_of_waiting(harness, database):
    if database.backend != "postgresql":
        pytest.skip("SQLite has one writer: ticks are serialised by the database itself")
    await harness.trigger("shared")
    harness.clock.advance(timedelta(seconds=30))
    async with database.engine.connect() as other_worker, other_worker.begin():
        await other_worker.execute(
            text("SELECT pg_advisory_xact_lock(hashtext(current_schema()), :k)"), {"k": TICK_LOCK_KEY}
        )
        skipped = await harness.service.tick()
    assert skipped.posted == 0
    assert (await harness.service.tick()).posted == 1
