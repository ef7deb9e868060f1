"""The outbox against the Slack emulator over HTTP: order, retries, rate limits, nothing lost."""

from __future__ import annotations

from datetime import timedelta

import httpx
from sqlalchemy import select

from bot.db.models import OutboxMessage
from bot.jobs.outbox import Outbox, OutboxDelivery


async def enqueue(database, outbox, **kw):
    async with database.sessions() as session, session.begin():
        return await outbox.enqueue(session, **kw)


async def rows(database):
    async with database.sessions() as session:
        return (await session.scalars(select(OutboxMessage).order_by(OutboxMessage.id))).all()


async def drain(delivery, clock, *, passes: int = 20, step: float = 1.0):
    total = {"sent": 0, "rate_limited": 0, "retried": 0, "dead": 0}
    for _ in range(passes):
        report = await delivery.deliver_due()
        for key in total:
            total[key] += getattr(report, key)
        clock.advance(timedelta(seconds=step))
    return total


async def test_posts_then_updates_in_place_through_a_ts_reference(database, slack, clock):
    outbox = Outbox(clock)
    await enqueue(database, outbox, conversation="C_APPROVALS", method="chat.postMessage",
                  payload={"channel": "C_APPROVALS", "text": "PRM-1 waiting"}, dedup_key="approval:X-1")  # fmt: skip
    await enqueue(database, outbox, conversation="C_APPROVALS", method="chat.update",
                  payload={"channel": "C_APPROVALS", "ts": {"$ts_of": "approval:X-1"}, "text": "PRM-1 approved"})  # fmt: skip
    await enqueue(database, outbox, conversation="C_APPROVALS", method="chat.postMessage",
                  payload={"channel": "C_APPROVALS", "thread_ts": {"$ts_of": "approval:X-1"}, "text": "running"})  # fmt: skip
    delivery = OutboxDelivery(database.sessions, slack.client, clock)
    await drain(delivery, clock, passes=5)
    messages = slack.workspace.messages("C_APPROVALS")
    top = [m for m in messages if m.thread_ts in (None, m.ts)]
    assert [m.text for m in top] == ["PRM-1 approved"]
    assert top[0].history[0].text == "PRM-1 waiting"
    replies = [m for m in messages if m.thread_ts == top[0].ts and m.ts != top[0].ts]
    assert [m.text for m in replies] == ["running"]
    assert {r.status for r in await rows(database)} == {"sent"}


async def test_duplicate_dedup_key_is_queued_once(database, clock):
    outbox = Outbox(clock)
    first = await enqueue(database, outbox, conversation="C", method="chat.postMessage", payload={"channel": "C"},
                          dedup_key="dm:PRM-1:approved")  # fmt: skip
    again = await enqueue(database, outbox, conversation="C", method="chat.postMessage", payload={"channel": "C"},
                          dedup_key="dm:PRM-1:approved")  # fmt: skip
    assert first is not None and again is None
    assert len(await rows(database)) == 1


async def test_rate_limit_is_honoured_and_every_message_arrives_in_order(database, slack, clock):
    outbox = Outbox(clock)
    for i in range(8):
        await enqueue(database, outbox, conversation="C_ALERTS", method="chat.postMessage",
                      payload={"channel": "C_ALERTS", "text": f"alert {i}"})  # fmt: skip
    delivery = OutboxDelivery(database.sessions, slack.client, clock)
    totals = await drain(delivery, clock, passes=30, step=0.5)
    assert totals["rate_limited"] >= 1  # the emulator allows bursts of 3, then 1 per second
    assert [m.text for m in slack.workspace.messages("C_ALERTS")] == [f"alert {i}" for i in range(8)]
    assert totals["sent"] == 8


async def test_server_errors_are_retried_and_nothing_is_lost(database, slack, clock):
    async with httpx.AsyncClient(base_url=slack.url) as control:
        fault = {"path": "/api/chat.postMessage", "status": 500, "times": 3}
        assert (await control.post("/_control/faults", json=fault)).status_code in (200, 201)
    outbox = Outbox(clock)
    for i in range(3):
        await enqueue(database, outbox, conversation="C_ORDERS", method="chat.postMessage",
                      payload={"channel": "C_ORDERS", "text": f"m{i}"})  # fmt: skip
    delivery = OutboxDelivery(database.sessions, slack.client, clock, jitter=lambda: 1.0)
    totals = await drain(delivery, clock, passes=40, step=2.0)
    assert totals["retried"] == 3 and totals["sent"] == 3
    assert [m.text for m in slack.workspace.messages("C_ORDERS")] == ["m0", "m1", "m2"]


async def test_slack_refusal_marks_the_row_dead_and_the_conversation_moves_on(database, slack, clock):
    outbox = Outbox(clock)
    await enqueue(database, outbox, conversation="C_NOPE", method="chat.postMessage",
                  payload={"channel": "C_NOPE", "text": "x"})  # fmt: skip
    await enqueue(database, outbox, conversation="C_NOPE", method="chat.postMessage",
                  payload={"channel": "C_APPROVALS", "text": "after"})  # fmt: skip
    delivery = OutboxDelivery(database.sessions, slack.client, clock)
    totals = await drain(delivery, clock, passes=3)
    stored = await rows(database)
    assert [r.status for r in stored] == ["dead", "sent"]
    assert stored[0].last_error == "channel_not_found"
    assert totals["dead"] == 1


async def test_messages_wait_while_slack_is_down_and_go_out_when_it_returns(database, slack, clock):
    async with httpx.AsyncClient(base_url=slack.url) as control:
        await control.post("/_control/faults", json={"path": "/api/.*", "status": 503})
        outbox = Outbox(clock)
        await enqueue(database, outbox, conversation="C_ALERTS", method="chat.postMessage",
                      payload={"channel": "C_ALERTS", "text": "during outage"})  # fmt: skip
        delivery = OutboxDelivery(database.sessions, slack.client, clock, jitter=lambda: 1.0)
        await drain(delivery, clock, passes=5, step=5)
        assert (await rows(database))[0].status == "pending"
        await control.delete("/_control/faults")
    await drain(delivery, clock, passes=10, step=60)
    assert [m.text for m in slack.workspace.messages("C_ALERTS")] == ["during outage"]
