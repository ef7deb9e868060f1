"""`/ops` over HTTP: what a person reads back about requests, as Slack delivers it."""

from __future__ import annotations

from datetime import timedelta

from bot.ids import ActionId

from .test_approval_flow import open_promotion


async def ops(bot, text: str, user: str = "U_REQ") -> str:
    result = await bot.driver.slash_command(user, "/ops", text, channel_id="C_ORDERS")
    assert result.status == 200
    await bot.settle()
    *_, answer = [r["text"] for r in await bot.driver.responses(result.response_url_id)]
    return str(answer)


async def test_status_pending_and_show_describe_an_open_request(bot):
    await open_promotion(bot)
    status = await ops(bot, "status prod")
    assert status.startswith("Status for *prod* (last 1 requests):")
    assert "pending: 1, approved: 0" in status
    assert "PRM-1" in status.split("In flight:")[1]
    assert status.endswith("Locked targets: promotion:orders-api@prod")
    assert "PRM-1" in await ops(bot, "pending")
    shown = await ops(bot, "show prm-1")
    assert shown.startswith("*PRM-1* promotion of `orders-api` in *prod*: *pending*")
    assert "Requested by <@U_REQ>: fix 850 mapping" in shown and "Approvals: none yet" in shown
    assert "Unknown environment 'staging'" in await ops(bot, "status staging")


async def test_audit_lists_the_hash_chained_trail_of_a_request(bot):
    await open_promotion(bot)
    [message] = bot.channel()
    await bot.click("U_APP1", message, ActionId.APPROVE)
    await bot.settle()
    trail = await ops(bot, "audit PRM-1")
    lines = trail.splitlines()
    assert lines[0] == "*Audit trail of PRM-1* (2 events, hash-chained)"
    assert "<@U_REQ> request.created ∅ → pending: fix 850 mapping `#1 " in lines[1]
    assert "<@U_APP1> approval.recorded pending → pending `#2 " in lines[2]
    assert "There is no request PRM-9" in await ops(bot, "audit PRM-9")


async def test_cancel_frees_the_target_and_only_the_requester_may(bot):
    await open_promotion(bot)
    assert "Only <@U_REQ> can cancel PRM-1" in await ops(bot, "cancel PRM-1", user="U_APP1")
    assert await ops(bot, "cancel PRM-1") == "PRM-1 cancelled. Its target is free again."
    assert (await bot.request("PRM-1")).status.value == "cancelled"
    assert (await ops(bot, "status")).endswith("Locked targets: none")
    assert "Your requests" in await ops(bot, "mine")


async def test_a_click_after_the_deadline_expires_the_request_and_says_so(bot):
    await open_promotion(bot)
    [message] = bot.channel()
    bot.clock.advance(timedelta(hours=25))
    await bot.click("U_APP1", message, ActionId.APPROVE)
    await bot.settle()
    assert any("PRM-1 expired; nothing will run" in t for t in bot.ephemeral_texts("U_APP1"))
    assert (await bot.request("PRM-1")).status.value == "expired"  # the refusal kept its expiry
    assert "expired" in str(bot.channel()[0].blocks).lower()
