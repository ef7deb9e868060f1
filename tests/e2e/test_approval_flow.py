"""End to end over HTTP: signed Slack requests -> bot -> Slack emulator, as a person sees it."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from bot.ids import ActionId, BlockId, ViewId


async def open_promotion(bot, text: str = "orders-api 1.4.0 test prod fix 850 mapping", user: str = "U_REQ"):
    result = await bot.driver.slash_command(user, "/promote", text, channel_id="C_ORDERS")
    assert result.status == 200
    await bot.settle()
    return result


async def test_request_to_quorum_updates_the_message_and_dms_the_requester(bot):
    ack = await open_promotion(bot)
    assert "Checking" in ack.json()["text"]
    [message] = bot.channel()
    assert "PRM-1" in message.text
    assert any(b.get("type") == "actions" for b in message.blocks)
    assert any(
        "opened; approval requested" in t
        for t in (r["text"] for r in await bot.driver.responses(ack.response_url_id))
    )

    await bot.click("U_OUT", message, ActionId.APPROVE)  # an outsider
    await bot.settle()
    assert any("not an approver" in t for t in bot.ephemeral_texts("U_OUT"))

    await bot.click("U_REQ", message, ActionId.APPROVE)  # the requester, who is also a lead
    await bot.settle()
    assert any("does not allow self-approval" in t for t in bot.ephemeral_texts("U_REQ"))
    assert bot.workflow.executed == []

    await bot.click("U_APP1", bot.channel()[0], ActionId.APPROVE)
    await bot.settle()
    [message] = bot.channel()
    assert "U_APP1" in str(message.blocks) and any(b.get("type") == "actions" for b in message.blocks)

    await bot.click("U_APP2", message, ActionId.APPROVE)
    await bot.settle()
    [message] = bot.channel()
    assert not any(b.get("type") == "actions" for b in message.blocks), (
        "buttons must go on the final decision"
    )
    assert bot.workflow.executed == ["PRM-1"]
    thread = bot.thread(message.ts)
    assert any("Execution started" in t for t in thread)
    assert any("Promotion job J-1 finished" in t for t in thread)
    assert any("Execution succeeded" in t for t in thread)
    dms = bot.dm_texts("U_REQ")
    assert len(dms) >= 3 and any("approved" in t.lower() for t in dms)


async def test_reject_with_reason_through_the_modal(bot):
    await open_promotion(bot)
    [message] = bot.channel()
    await bot.click("U_APP1", message, ActionId.REJECT)
    await bot.settle()
    [modal] = await bot.driver.open_views("U_APP1")
    assert modal["callback_id"] == ViewId.REJECT_REASON
    empty = await bot.driver.view_submission(
        "U_APP1", modal, {BlockId.REASON: {ActionId.REASON_INPUT: "   "}}
    )
    assert empty.json()["response_action"] == "errors" and BlockId.REASON in empty.json()["errors"]
    done = await bot.driver.view_submission(
        "U_APP1", modal, {BlockId.REASON: {ActionId.REASON_INPUT: "wrong version"}}
    )
    assert done.status == 200
    await bot.settle()
    [message] = bot.channel()
    assert "wrong version" in str(message.blocks)
    assert not any(b.get("type") == "actions" for b in message.blocks)
    assert any("wrong version" in t for t in bot.dm_texts("U_REQ"))
    assert bot.workflow.executed == []


async def test_expiry_updates_the_message_and_nothing_runs(bot):
    await open_promotion(bot)
    bot.clock.advance(timedelta(hours=25))
    await bot.service.runtime.expire_and_remind()
    await bot.settle()
    [message] = bot.channel()
    assert "expired" in str(message.blocks).lower()
    assert not any(b.get("type") == "actions" for b in message.blocks)
    original = message.model_copy(update={"blocks": message.history[0].blocks})
    stale_click = await bot.click("U_APP1", original, ActionId.APPROVE, stale=True)
    assert stale_click.status == 200
    await bot.settle()
    assert bot.workflow.executed == []
    assert any("expired" in t for t in bot.ephemeral_texts("U_APP1"))


async def test_twenty_concurrent_clicks_record_one_approval(bot):
    await open_promotion(bot)
    [message] = bot.channel()
    results = await asyncio.gather(*(bot.click("U_APP1", message, ActionId.APPROVE) for _ in range(20)))
    assert all(r.status == 200 for r in results)
    await bot.settle()
    request = await bot.request("PRM-1")
    assert [a.approver for a in request.approvals] == ["U_APP1"]


async def test_slash_command_retry_opens_one_request(bot):
    first = await bot.driver.slash_command(
        "U_REQ", "/promote", "orders-api 1.4.0 test prod", channel_id="C_ORDERS"
    )
    assert first.status == 200
    # Slack retrying the same delivery carries the same trigger: replay the exact job key.
    await bot.service.context.enqueue(
        "slack.command", {"name": "promote"}, dedup_key=f"cmd:{first.trigger_id}"
    )
    await bot.settle()
    assert len(bot.channel()) == 1


async def test_bad_input_gets_usage_and_precheck_failures_are_explained(bot):
    missing = await bot.driver.slash_command("U_REQ", "/promote", "orders-api 1.4.0", channel_id="C_ORDERS")
    assert missing.status == 200
    body = missing.json()
    assert body["response_type"] == "ephemeral" and "Usage: `/promote" in body["text"]
    nope = await bot.driver.slash_command(
        "U_REQ", "/promote", "orders-api 9.9.9 test prod", channel_id="C_ORDERS"
    )
    unknown_env = await bot.driver.slash_command(
        "U_REQ", "/promote", "orders-api 1.4.0 test staging", channel_id="C_ORDERS"
    )
    await bot.settle()
    assert bot.channel() == []
    assert any(
        "9.9.9 of orders-api does not exist" in r["text"]
        for r in await bot.driver.responses(nope.response_url_id)
    )
    responses = await bot.driver.responses(unknown_env.response_url_id)
    assert any("Unknown target environment 'staging'" in r["text"] for r in responses)


async def test_unsigned_and_stale_requests_get_401_and_record_nothing(bot):
    forged = await bot.driver.slash_command(
        "U_REQ", "/promote", "orders-api 1.4.0 test prod", signature="v0=bad"
    )
    stale = await bot.driver.slash_command(
        "U_REQ", "/promote", "orders-api 1.4.0 test prod", timestamp_offset=-400
    )
    assert forged.status == 401 and stale.status == 401
    await bot.settle()
    assert bot.channel() == []
    assert await bot.requests() == []


async def test_app_home_lists_what_waits_for_the_viewer(bot):
    await open_promotion(bot)
    result = await bot.driver.app_home_opened("U_APP1")
    assert result.status == 200
    await bot.settle()
    home = await bot.driver.home("U_APP1")
    assert home is not None and len(home["blocks"]) <= 100
    assert "PRM-1" in str(home["blocks"])
    await bot.driver.home_block_action("U_APP1", action_id=ActionId.APPROVE, value=Bot_value(home))
    await bot.settle()
    request = await bot.request("PRM-1")
    assert [a.approver for a in request.approvals] == ["U_APP1"]


def Bot_value(home) -> str:
    for block in home["blocks"]:
        for element in block.get("elements", []):
            if element.get("action_id") == ActionId.APPROVE:
                return element["value"]
    raise AssertionError("no approve button in App Home")
