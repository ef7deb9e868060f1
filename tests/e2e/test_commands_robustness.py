"""Whatever people type, they get a 200 and a clear ephemeral answer; modals validate inline."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.ids import ActionId, BlockId, ViewId

WORDS = st.sampled_from(["orders-api", "1.4.0", "test", "prod", '"quoted reason"', "--emergency", "“smart”",
                         "PRM-1", "status", "show", "cancel", "'", '"', "<script>", "&amp;", "", "x" * 300])  # fmt: skip
TEXT = st.one_of(st.text(max_size=200), st.lists(WORDS, max_size=8).map(" ".join))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(command=st.sampled_from(["/promote", "/rotate", "/release", "/ops"]), text=TEXT)
async def test_any_command_text_gets_200_and_an_ephemeral_answer(bot, command, text):
    result = await bot.driver.slash_command("U_REQ", command, text, channel_id="C_ORDERS")
    assert result.status == 200
    if result.body:
        body = result.json()
        assert body.get("response_type", "ephemeral") == "ephemeral"
        assert "Traceback" not in body.get("text", "")
    await bot.settle()
    for response in await bot.driver.responses(result.response_url_id):
        assert "Traceback" not in response["text"]


async def test_promote_without_arguments_opens_a_modal_that_validates_inline(bot):
    result = await bot.driver.slash_command("U_REQ", "/promote", "", channel_id="C_ORDERS")
    assert result.status == 200
    await bot.settle()
    [modal] = await bot.driver.open_views("U_REQ")
    assert modal["callback_id"] == ViewId.NEW_PROMOTION
    same_env = {
        BlockId.ARTIFACT: {
            ActionId.ARTIFACT_SELECT: {"type": "static_select", "selected_option": {"value": "orders-api"}}
        },
        BlockId.VERSION: {ActionId.VERSION_INPUT: "1.4.0"},
        BlockId.FROM_ENV: {
            ActionId.FROM_ENV_SELECT: {"type": "static_select", "selected_option": {"value": "prod"}}
        },
        BlockId.TO_ENV: {
            ActionId.TO_ENV_SELECT: {"type": "static_select", "selected_option": {"value": "prod"}}
        },
    }
    refused = await bot.driver.view_submission("U_REQ", modal, same_env)
    assert refused.json()["response_action"] == "errors"
    fixed = dict(same_env)
    fixed[BlockId.FROM_ENV] = {
        ActionId.FROM_ENV_SELECT: {"type": "static_select", "selected_option": {"value": "test"}}
    }
    accepted = await bot.driver.view_submission("U_REQ", modal, fixed)
    assert accepted.status == 200 and not accepted.body
    await bot.settle()
    [message] = bot.channel()
    assert "PRM-1" in message.text and "orders-api" in message.text


async def test_long_selects_get_suggestions_from_the_options_endpoint(bot):
    import json
    import time
    import urllib.parse

    import httpx

    from bot.web.slack_signature import sign

    from .conftest import SIGNING_SECRET

    payload = {"type": "block_suggestion", "action_id": ActionId.ARTIFACT_SELECT.value, "block_id": BlockId.ARTIFACT.value,
               "value": "ord", "team": {"id": "T0001"}, "user": {"id": "U_REQ"}, "view": {"id": "V1", "type": "modal"}}  # fmt: skip
    body = urllib.parse.urlencode({"payload": json.dumps(payload)})
    ts = int(time.time())
    headers = {"Content-Type": "application/x-www-form-urlencoded", "X-Slack-Request-Timestamp": str(ts),
               "X-Slack-Signature": sign(SIGNING_SECRET, ts, body.encode())}  # fmt: skip
    async with httpx.AsyncClient() as client:
        response = await client.post(bot.driver.bot_url, content=body, headers=headers)
    assert response.status_code == 200
    assert [o["value"] for o in response.json()["options"]] == ["orders-api"]
