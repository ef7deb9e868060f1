"""Silences: time-boxed matchers; silenced alerts persist and count but stay quiet."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from bot.db.models import AuditEvent
from bot.domain.alert_errors import InvalidMatcher, InvalidSilence, SilenceAlreadyEnded, SilenceNotFound


async def test_a_silence_keeps_matching_new_alerts_out_of_slack_but_counts_them(harness):
    reply = await harness.commands.silence("env=prod system=opentext 2h deploy window", user="U_APP1")
    assert "SIL-1" in reply.text
    for _ in range(3):
        await harness.trigger("ot-deploy", environment="prod", system="opentext")
    await harness.trigger("canto-sync", environment="prod", system="canto")
    await harness.run_for(60, step=30)
    [post] = harness.slack.posts("C_ALERTS")
    assert "canto-sync" in post.text
    silenced = next(a for a in await harness.alerts() if a.dedup_key == "ot-deploy")
    assert (silenced.status, silenced.occurrences, silenced.notified_at) == ("silenced", 3, None)


async def test_an_open_alert_is_silenced_in_place_and_stops_repeating(harness):
    harness.reconfigure(repeat_interval="1h")
    opened = await harness.trigger("iconik-proxy", system="iconik")
    await harness.step(30)
    await harness.commands.silence("system=iconik 4h", user="U_APP2")
    await harness.deliver()
    [post] = harness.slack.posts("C_ALERTS")
    assert "Silenced* by SIL-1 (<@U_APP2>)" in harness.slack.shown(post)
    await harness.run_for(3 * 3600, step=1800)
    assert harness.slack.replies("C_ALERTS") == []
    assert (await harness.alert(opened.alert_id)).status == "silenced"


async def test_unsilence_lets_a_never_posted_alert_fire_now(harness):
    await harness.commands.silence("env=prod 1h", user="U_APP1")
    await harness.trigger("late-fire")
    await harness.run_for(120, step=30)
    assert harness.slack.posts("C_ALERTS") == []
    reply = await harness.commands.unsilence("SIL-1", user="U_APP1")
    assert "lifted" in reply.text and "1 alert(s) fire again" in reply.text
    await harness.step(1)
    [post] = harness.slack.posts("C_ALERTS")
    assert "late-fire" in post.text and "Firing" in harness.slack.shown(post)


async def test_an_expired_silence_ends_on_its_own_and_the_message_says_firing_again(harness):
    await harness.trigger("edi-stuck", system="edi")
    await harness.step(30)
    await harness.commands.silence("system=edi 30m", user="U_APP1")
    await harness.run_for(29 * 60, step=300)
    assert "Silenced" in harness.slack.shown(harness.slack.posts("C_ALERTS")[0])
    await harness.run_for(120, step=60)
    assert "*Firing*" in harness.slack.shown(harness.slack.posts("C_ALERTS")[0])
    assert (await harness.commands.silences()).text == "Active silences: 0"


async def test_silence_button_silences_the_alerts_labels_for_the_chosen_hours(harness):
    opened = await harness.trigger("canto-api", system="canto", labels={"team": "dam"})
    await harness.step(30)
    reply = await harness.commands.silence_alert(opened.alert_id, hours=4, user="U_APP1")
    assert "for 4 h" in reply.text
    [silence] = await harness.service.silences()
    assert sorted(map(str, silence.matchers)) == [
        "environment=prod", "source=api", "system=canto", "team=dam",
    ]  # fmt: skip
    assert silence.ends_at - silence.starts_at == timedelta(hours=4)
    second = await harness.trigger("canto-api-2", system="canto", labels={"team": "dam"})
    assert second.status.value == "silenced"


async def test_silences_lists_active_ones_and_unsilence_refuses_unknown_or_ended(harness):
    await harness.commands.silence("env=prod system=~'open.*' 1h", user="U_APP1")
    await harness.commands.silence("team=orders 2d night batch", user="U_APP2")
    listed = await harness.commands.silences()
    assert listed.text == "Active silences: 2"
    shown = str([b.to_dict() for b in listed.blocks])
    assert "SIL-1" in shown and "SIL-2" in shown and "night batch" in shown
    with pytest.raises(SilenceNotFound, match="no silence SIL-9"):
        await harness.commands.unsilence("SIL-9", user="U_APP1")
    await harness.commands.unsilence("sil-1", user="U_APP1")
    with pytest.raises(SilenceAlreadyEnded):
        await harness.commands.unsilence("1", user="U_APP1")
    assert (await harness.commands.silences()).text == "Active silences: 1"


async def test_silence_commands_explain_what_is_wrong(harness):
    with pytest.raises(InvalidSilence, match="at least one matcher"):
        await harness.commands.silence("2h", user="U_APP1")
    with pytest.raises(InvalidSilence, match="how long"):
        await harness.commands.silence("env=prod", user="U_APP1")
    with pytest.raises(InvalidSilence, match="`soon` is not a duration"):
        await harness.commands.silence("env=prod soon", user="U_APP1")
    with pytest.raises(InvalidSilence, match="at most 30d"):
        await harness.commands.silence("env=prod 45d", user="U_APP1")
    with pytest.raises(InvalidMatcher, match="regular expression is invalid"):
        await harness.commands.silence("system=~( 1h", user="U_APP1")


async def test_silencing_and_lifting_are_audited(harness, database):
    await harness.commands.silence("env=prod 1h maintenance", user="U_APP1")
    await harness.commands.unsilence("SIL-1", user="U_APP2")
    async with database.sessions() as session:
        events = (await session.scalars(select(AuditEvent).order_by(AuditEvent.seq))).all()
    assert [(e.actor, e.action, e.subject) for e in events] == [
        ("U_APP1", "alert.silence_created", "SIL-1"),
        ("U_APP2", "alert.silence_lifted", "SIL-1"),
    ]
    assert events[0].reason == "maintenance" and events[0].evidence["matchers"] == ["env=prod"]
