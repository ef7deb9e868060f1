"""Storm control: never more than one new message per second per channel; beyond that alerts
fold into a digest updated in place; a Slack outage or rate limit loses and duplicates nothing."""

from __future__ import annotations

import re
from collections import Counter
from datetime import timedelta

import httpx

from bot.ids import AlertActionId
from bot.payloads import AlertActionValue, AlertOp


def peak_posts_per_second(messages) -> int:
    seconds = Counter(int(float(m.ts)) for m in messages)
    return max(seconds.values(), default=0)


def alerts_shown_in(messages) -> Counter:
    """How many top-level messages show each alert (by its block id `alert:<id>`)."""
    shown: Counter = Counter()
    for message in messages:
        for block in message.blocks:
            block_id = block.get("block_id", "")
            if block_id.startswith("alert:"):
                shown[int(block_id.split(":")[1])] += 1
    return shown


def count_shown(messages, alert_id: int) -> int | None:
    """The occurrence count a reader sees for an alert: its own message's field, or its digest line."""
    for message in messages:
        for block in message.blocks:
            if block.get("block_id") != f"alert:{alert_id}":
                continue
            if block["type"] == "header":
                section = message.blocks[1]
                field = next(f["text"] for f in section["fields"] if f["text"].startswith("*Occurrences*"))
                return int(field.split("\n")[1])
            found = re.search(r"\N{MULTIPLICATION SIGN}(\d+)", block["text"]["text"])
            return int(found.group(1)) if found else 1
    return None


async def test_a_burst_posts_one_alert_and_folds_the_rest_into_one_digest(harness):
    for i in range(12):
        await harness.trigger(f"storm-{i}")
    await harness.run_for(40, step=1)
    posts = harness.slack.posts("C_ALERTS")
    assert len(posts) == 2
    assert "storm-0" in posts[0].text
    assert "Alert storm: 11 alerts" in posts[1].text
    assert float(posts[1].ts) - float(posts[0].ts) >= 1.0
    assert alerts_shown_in(posts) == {alert.id: 1 for alert in await harness.alerts()}


async def test_alerts_during_an_open_storm_update_the_digest_in_place(harness):
    for i in range(5):
        await harness.trigger(f"wave1-{i}")
    await harness.run_for(32, step=1)
    for i in range(5):
        await harness.trigger(f"wave2-{i}")
    await harness.run_for(60, step=1)
    posts = harness.slack.posts("C_ALERTS")
    assert len(posts) == 2  # the first alert and one digest
    digest = posts[1]
    assert "Alert storm: 9 alerts" in digest.text and digest.edited_ts is not None
    assert alerts_shown_in(posts) == {alert.id: 1 for alert in await harness.alerts()}


async def test_after_the_storm_window_alerts_get_their_own_messages_again(harness):
    for i in range(4):
        await harness.trigger(f"early-{i}")
    await harness.run_for(35, step=1)
    harness.clock.advance(timedelta(minutes=6))  # storm.window (5 m) after the last fold
    await harness.trigger("late")
    await harness.run_for(31, step=1)
    posts = harness.slack.posts("C_ALERTS")
    assert [("late" in p.text) for p in posts] == [False, False, True]


async def test_two_alerts_a_second_apart_are_both_posted_on_their_own(harness):
    harness.reconfigure(group_wait="0s")
    await harness.trigger("first")
    await harness.trigger("second")
    await harness.run_for(3, step=0.5)
    posts = harness.slack.posts("C_ALERTS")
    assert ["first" in posts[0].text, "second" in posts[1].text] == [True, True]
    assert float(posts[1].ts) - float(posts[0].ts) >= 1.0


async def test_digest_lines_carry_acknowledge_resolve_and_silence_actions(harness):
    for i in range(3):
        await harness.trigger(f"line-{i}")
    await harness.run_for(33, step=1)
    digest = harness.slack.posts("C_ALERTS")[1]
    menus = [
        b["accessory"] for b in digest.blocks if b.get("accessory", {}).get("action_id") == AlertActionId.MENU
    ]
    assert len(menus) == 2
    ops = [AlertActionValue.model_validate_json(o["value"]).op for o in menus[0]["options"]]
    assert ops == [AlertOp.ACKNOWLEDGE, AlertOp.RESOLVE, AlertOp.SILENCE, AlertOp.SILENCE, AlertOp.SILENCE]
    folded = AlertActionValue.model_validate_json(menus[0]["options"][1]["value"]).alert_id
    await harness.commands.resolve(folded, user="U_APP2")
    await harness.deliver()
    digest = harness.slack.posts("C_ALERTS")[1]
    assert "Resolved* by <@U_APP2>" in harness.slack.shown(digest)
    assert "1 still open" in harness.slack.shown(digest)


async def test_every_alert_is_delivered_exactly_once_through_429s_and_5xx(harness):
    harness.reconfigure(
        routes=[{"match": {"team": "b"}, "channel": "C_ORDERS"}], group_wait="2s", group_interval="30s"
    )
    faults = [
        {"path": "/api/chat.postMessage", "status": 429, "retry_after": 2, "times": 4},
        {"path": "/api/chat.update", "status": 503, "times": 3},
        {"path": "/api/chat.postMessage", "status": 500, "times": 3},
    ]
    async with httpx.AsyncClient(base_url=harness.slack.url) as control:
        for fault in faults:
            assert (await control.post("/_control/faults", json=fault)).status_code in (200, 201)
        sent = 0
        totals: Counter = Counter()
        for second in range(20):  # 300 events over 30 keys in 2 channels, 15 per second
            for i in range(15):
                team = "b" if i % 2 else "a"
                await harness.trigger(f"key-{(second * 7 + i) % 30}", labels={"team": team})
                sent += 1
            totals.update(await harness.step(1))
        totals.update(await harness.run_for(120, step=2))
    assert totals["rate_limited"] >= 4 and totals["retried"] >= 6  # the faults did happen
    alerts = await harness.alerts()
    assert sum(a.occurrences for a in alerts) == sent == 300
    for channel in ("C_ALERTS", "C_ORDERS"):
        posts = harness.slack.posts(channel)
        assert peak_posts_per_second(posts) <= 1
        assert set(alerts_shown_in(posts).values()) == {1}  # nobody sees an alert twice
    everywhere = alerts_shown_in(harness.slack.posts("C_ALERTS") + harness.slack.posts("C_ORDERS"))
    assert set(everywhere) == {a.id for a in alerts}  # and every alert is shown
    assert {row.status for row in await harness.outbox()} == {"sent"}
    posts = harness.slack.posts("C_ALERTS") + harness.slack.posts("C_ORDERS")
    for alert in alerts:  # the final counts made it to Slack
        assert count_shown(posts, alert.id) == alert.occurrences


async def test_counts_in_the_digest_catch_up_after_slack_comes_back(harness):
    for i in range(3):
        await harness.trigger(f"outage-{i}")
    await harness.run_for(33, step=1)
    async with httpx.AsyncClient(base_url=harness.slack.url) as control:
        await control.post("/_control/faults", json={"path": "/api/.*", "status": 503})
        for _ in range(4):
            await harness.trigger("outage-2")
            await harness.run_for(15, step=5)
        queued = [r for r in await harness.outbox() if r.status == "pending"]
        assert 1 <= len(queued) <= 2  # one pending digest update at a time, not one per trigger
        await control.delete("/_control/faults")
    await harness.run_for(400, step=20)
    digest = harness.slack.posts("C_ALERTS")[1]
    assert "outage-2 failed* \N{MULTIPLICATION SIGN}5" in harness.slack.shown(digest)
