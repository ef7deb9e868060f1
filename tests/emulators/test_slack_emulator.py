"""The Slack emulator, driven over real HTTP by slack_sdk's AsyncWebClient (the client the bot uses)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.emulators.slack import (
    DEFAULT_BOT_TOKEN,
    SlackChannel,
    SlackSeed,
    SlackUser,
    SlackWorkspace,
    create_app,
    workspace_of,
)
from connectors.emulators.faults import start_app

NOW = 1_700_000_000.0


class FakeClock:
    """Wall-clock seconds that only move when a test says so."""

    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Emulator:
    url: str
    workspace: SlackWorkspace
    control: httpx.AsyncClient

    async def get(self, path: str, **params: str) -> Any:
        response = await self.control.get(path, params=params)
        response.raise_for_status()
        return response.json()

    async def post(self, path: str, body: Any) -> httpx.Response:
        return await self.control.post(path, json=body)

    async def trigger(self, user_id: str) -> str:
        response = await self.post("/_control/triggers", {"user_id": user_id})
        assert response.status_code == 201
        return str(response.json()["trigger_id"])

    async def response_url(self, user_id: str, channel_id: str, **extra: Any) -> dict[str, Any]:
        response = await self.post(
            "/_control/response_urls", {"user_id": user_id, "channel_id": channel_id} | extra
        )
        assert response.status_code == 201
        issued: dict[str, Any] = response.json()
        return issued


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def emulator(clock: FakeClock) -> AsyncIterator[Emulator]:
    app = create_app(clock=clock)
    runner, url = await start_app(app)
    try:
        async with httpx.AsyncClient(base_url=url, timeout=5.0) as control:
            yield Emulator(url=url, workspace=workspace_of(app), control=control)
    finally:
        await runner.cleanup()


@pytest.fixture
def slack(emulator: Emulator) -> AsyncWebClient:
    return AsyncWebClient(token=DEFAULT_BOT_TOKEN, base_url=emulator.url + "/api/")


def section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def modal(title: str = "Promote", **extra: Any) -> dict[str, Any]:
    return {
        "type": "modal",
        "callback_id": "promote_modal",
        "title": {"type": "plain_text", "text": title},
        "submit": {"type": "plain_text", "text": "Submit"},
        "blocks": [
            {
                "type": "input",
                "block_id": "artifact",
                "label": {"type": "plain_text", "text": "Artifact"},
                "element": {"type": "plain_text_input", "action_id": "value"},
            }
        ],
    } | extra


async def slack_error(call: Any) -> SlackApiError:
    with pytest.raises(SlackApiError) as raised:
        await call
    return raised.value


# -- identity and auth -------------------------------------------------------------------------


async def test_auth_test_identifies_the_bot_user_and_team(slack: AsyncWebClient) -> None:
    answer = await slack.auth_test()
    assert answer["team_id"] == "T0001"
    assert answer["user_id"] == "U_OPSGATE"
    assert answer["bot_id"] == "B_OPSGATE"


async def test_wrong_token_is_refused_with_invalid_auth(emulator: Emulator) -> None:
    client = AsyncWebClient(token="xoxb-wrong", base_url=emulator.url + "/api/")
    error = await slack_error(client.chat_postMessage(channel="C_APPROVALS", text="hi"))
    assert error.response["error"] == "invalid_auth"
    assert emulator.workspace.messages("C_APPROVALS") == []


async def test_missing_token_is_refused_with_not_authed(emulator: Emulator) -> None:
    response = await emulator.control.post("/api/auth.test")
    assert response.json() == {"ok": False, "error": "not_authed"}


async def test_token_may_travel_as_a_form_parameter(emulator: Emulator) -> None:
    response = await emulator.control.post(
        "/api/chat.postMessage", data={"token": DEFAULT_BOT_TOKEN, "channel": "C_ALERTS", "text": "form"}
    )
    assert response.json()["ok"] is True
    assert [m.text for m in emulator.workspace.messages("C_ALERTS")] == ["form"]


async def test_form_encoded_blocks_arrive_as_a_json_string(emulator: Emulator) -> None:
    response = await emulator.control.post(
        "/api/chat.postMessage",
        headers={"Authorization": f"Bearer {DEFAULT_BOT_TOKEN}"},
        data={"channel": "C_ALERTS", "text": "fallback", "blocks": json.dumps([section("*bold*")])},
    )
    assert response.json()["message"]["blocks"] == [section("*bold*")]


async def test_expired_token_fault_answers_token_expired_until_reset(
    emulator: Emulator, slack: AsyncWebClient
) -> None:
    await emulator.post("/_control/faults", {"path": "/api/", "expire_tokens": True, "times": 1})
    assert (await slack_error(slack.auth_test())).response["error"] == "token_expired"
    assert (await slack_error(slack.auth_test())).response["error"] == "token_expired"
    await emulator.post("/_control/reset", {})
    assert (await slack.auth_test())["ok"] is True


async def test_injected_server_error_reaches_the_client_in_slacks_shape(
    emulator: Emulator, slack: AsyncWebClient
) -> None:
    await emulator.post("/_control/faults", {"path": "chat.postMessage", "status": 503, "times": 1})
    error = await slack_error(slack.chat_postMessage(channel="C_APPROVALS", text="hi"))
    assert error.response.status_code == 503
    assert error.response["error"] == "service_unavailable"
    assert (await slack.chat_postMessage(channel="C_APPROVALS", text="hi"))["ok"] is True


async def test_unknown_method_is_404_unknown_method(emulator: Emulator) -> None:
    response = await emulator.control.post("/api/chat.scheduleMessage")
    assert response.status_code == 404
    assert response.json()["error"] == "unknown_method"


# -- messages ----------------------------------------------------------------------------------


async def test_post_message_returns_channel_ts_and_message(emulator: Emulator, slack: AsyncWebClient) -> None:
    answer = await slack.chat_postMessage(
        channel="C_APPROVALS", text="Approve?", blocks=[section("Approve?")]
    )
    assert answer["channel"] == "C_APPROVALS"
    assert answer["ts"] == "1700000000.000000"
    assert answer["message"]["text"] == "Approve?"
    assert answer["message"]["bot_id"] == "B_OPSGATE"
    listed = await emulator.get("/_control/messages", channel="C_APPROVALS")
    assert [(m["ts"], m["text"]) for m in listed["messages"]] == [(answer["ts"], "Approve?")]


async def test_messages_are_ts_ordered_and_unique_within_one_clock_tick(
    emulator: Emulator, slack: AsyncWebClient
) -> None:
    first = await slack.chat_postMessage(channel="C_ALERTS", text="one")
    second = await slack.chat_postMessage(channel="C_ALERTS", text="two")
    assert float(second["ts"]) > float(first["ts"])
    listed = await emulator.get("/_control/messages", channel="#alerts")
    assert [m["text"] for m in listed["messages"]] == ["one", "two"]


async def test_thread_reply_carries_thread_ts_and_counts_on_its_parent(
    emulator: Emulator, slack: AsyncWebClient
) -> None:
    parent = await slack.chat_postMessage(channel="C_APPROVALS", text="request")
    reply = await slack.chat_postMessage(channel="C_APPROVALS", text="approved", thread_ts=parent["ts"])
    assert reply["message"]["thread_ts"] == parent["ts"]
    listed = (await emulator.get("/_control/messages", channel="C_APPROVALS"))["messages"]
    assert listed[0]["reply_count"] == 1
    assert listed[1]["thread_ts"] == parent["ts"]


async def test_posting_to_a_user_id_lands_in_the_dm_conversations_open_returns(
    emulator: Emulator, slack: AsyncWebClient
) -> None:
    posted = await slack.chat_postMessage(channel="U_REQ", text="Your request was approved")
    opened = await slack.conversations_open(users="U_REQ")
    assert opened["channel"]["id"] == posted["channel"] == "D_REQ"
    dm = await emulator.get("/_control/messages", channel="D_REQ")
    assert [m["text"] for m in dm["messages"]] == ["Your request was approved"]


async def test_conversations_open_for_an_unknown_user_fails(slack: AsyncWebClient) -> None:
    assert (await slack_error(slack.conversations_open(users="U_NOBODY"))).response[
        "error"
    ] == "user_not_found"


async def test_post_to_unknown_channel_fails_channel_not_found(slack: AsyncWebClient) -> None:
    error = await slack_error(slack.chat_postMessage(channel="C_NOPE", text="hi"))
    assert error.response["error"] == "channel_not_found"


async def test_post_without_text_or_blocks_fails_no_text(emulator: Emulator) -> None:
    response = await emulator.control.post(
        "/api/chat.postMessage",
        headers={"Authorization": f"Bearer {DEFAULT_BOT_TOKEN}"},
        json={"channel": "C_ALERTS"},
    )
    assert response.json() == {"ok": False, "error": "no_text"}


async def test_text_over_40000_characters_fails_msg_too_long(slack: AsyncWebClient) -> None:
    error = await slack_error(slack.chat_postMessage(channel="C_APPROVALS", text="x" * 40_001))
    assert error.response["error"] == "msg_too_long"


async def test_update_replaces_content_and_keeps_the_edit_history(
    emulator: Emulator, slack: AsyncWebClient
) -> None:
    posted = await slack.chat_postMessage(channel="C_APPROVALS", text="pending", blocks=[section("pending")])
    updated = await slack.chat_update(
        channel="C_APPROVALS", ts=posted["ts"], text="approved", blocks=[section("approved by alex")]
    )
    assert updated["ts"] == posted["ts"]
    assert updated["message"]["edited"]["user"] == "U_OPSGATE"
    (stored,) = (await emulator.get("/_control/messages", channel="C_APPROVALS"))["messages"]
    assert stored["text"] == "approved"
    assert stored["blocks"] == [section("approved by alex")]
    assert [v["text"] for v in stored["history"]] == ["pending"]


async def test_update_without_blocks_keeps_the_previous_blocks(
    emulator: Emulator, slack: AsyncWebClient
) -> None:
    posted = await slack.chat_postMessage(channel="C_APPROVALS", text="a", blocks=[section("a")])
    await slack.chat_update(channel="C_APPROVALS", ts=posted["ts"], text="b")
    (stored,) = emulator.workspace.messages("C_APPROVALS")
    assert (stored.text, stored.blocks) == ("b", [section("a")])


async def test_update_of_an_unknown_ts_fails_message_not_found(slack: AsyncWebClient) -> None:
    error = await slack_error(slack.chat_update(channel="C_APPROVALS", ts="1.000001", text="x"))
    assert error.response["error"] == "message_not_found"


async def test_ephemeral_message_is_seen_only_by_its_user(emulator: Emulator, slack: AsyncWebClient) -> None:
    answer = await slack.chat_postEphemeral(channel="C_APPROVALS", user="U_OUT", text="You may not approve")
    assert answer["message_ts"]
    seen = await emulator.get("/_control/ephemeral", user="U_OUT")
    assert [(m["text"], m["channel"]) for m in seen["messages"]] == [("You may not approve", "C_APPROVALS")]
    assert (await emulator.get("/_control/ephemeral", user="U_REQ"))["messages"] == []
    assert (await emulator.get("/_control/messages", channel="C_APPROVALS"))["messages"] == []


async def test_ephemeral_to_unknown_user_fails_user_not_found(slack: AsyncWebClient) -> None:
    error = await slack_error(slack.chat_postEphemeral(channel="C_APPROVALS", user="U_NOBODY", text="x"))
    assert error.response["error"] == "user_not_found"


async def test_ephemeral_to_a_user_outside_a_private_channel_fails(clock: FakeClock) -> None:
    private = SlackChannel(id="G_SECRET", name="secret", is_private=True, members=("U_APP1", "U_OPSGATE"))
    app = create_app(clock=clock, channels=[private])
    runner, url = await start_app(app)
    try:
        client = AsyncWebClient(token=DEFAULT_BOT_TOKEN, base_url=url + "/api/")
        error = await slack_error(client.chat_postEphemeral(channel="G_SECRET", user="U_OUT", text="x"))
        assert error.response["error"] == "user_not_in_channel"
    finally:
        await runner.cleanup()


async def test_permalink_names_workspace_channel_and_ts(slack: AsyncWebClient) -> None:
    posted = await slack.chat_postMessage(channel="C_APPROVALS", text="request")
    answer = await slack.chat_getPermalink(channel="C_APPROVALS", message_ts=posted["ts"])
    assert answer["permalink"] == "https://opsgate-demo.slack.com/archives/C_APPROVALS/p1700000000000000"


async def test_permalink_of_unknown_message_fails(slack: AsyncWebClient) -> None:
    error = await slack_error(slack.chat_getPermalink(channel="C_APPROVALS", message_ts="1.000001"))
    assert error.response["error"] == "message_not_found"


async def test_delete_removes_the_message_from_the_channel(emulator: Emulator, slack: AsyncWebClient) -> None:
    posted = await slack.chat_postMessage(channel="C_ALERTS", text="noise")
    await slack.chat_delete(channel="C_ALERTS", ts=posted["ts"])
    assert (await emulator.get("/_control/messages", channel="C_ALERTS"))["messages"] == []
    kept = await emulator.get("/_control/messages", channel="C_ALERTS", include_deleted="1")
    assert kept["messages"][0]["deleted"] is True


# -- rate limits -------------------------------------------------------------------------------


async def test_posting_faster_than_one_per_second_gets_429_with_retry_after(
    slack: AsyncWebClient, clock: FakeClock
) -> None:
    for n in range(3):  # the default burst
        await slack.chat_postMessage(channel="C_ALERTS", text=f"alert {n}")
    error = await slack_error(slack.chat_postMessage(channel="C_ALERTS", text="one too many"))
    assert error.response.status_code == 429
    assert error.response["error"] == "ratelimited"
    assert error.response.headers["Retry-After"] == "1"
    clock.advance(1.0)
    assert (await slack.chat_postMessage(channel="C_ALERTS", text="later"))["ok"] is True


async def test_rate_limit_is_per_channel(slack: AsyncWebClient) -> None:
    for n in range(3):
        await slack.chat_postMessage(channel="C_ALERTS", text=f"alert {n}")
    await slack_error(slack.chat_postMessage(channel="C_ALERTS", text="limited"))
    assert (await slack.chat_postMessage(channel="C_APPROVALS", text="unaffected"))["ok"] is True


async def test_rate_limited_message_is_not_stored(emulator: Emulator, slack: AsyncWebClient) -> None:
    for n in range(4):
        try:
            await slack.chat_postMessage(channel="C_ALERTS", text=f"alert {n}")
        except SlackApiError:
            pass
    assert [m.text for m in emulator.workspace.messages("C_ALERTS")] == ["alert 0", "alert 1", "alert 2"]


async def test_configured_rate_and_burst_apply(clock: FakeClock) -> None:
    app = create_app(clock=clock, per_channel_rate=0.5, burst=1)
    runner, url = await start_app(app)
    try:
        client = AsyncWebClient(token=DEFAULT_BOT_TOKEN, base_url=url + "/api/")
        await client.chat_postMessage(channel="C_ALERTS", text="first")
        error = await slack_error(client.chat_postMessage(channel="C_ALERTS", text="second"))
        assert error.response.headers["Retry-After"] == "2"
        clock.advance(2.0)
        assert (await client.chat_postMessage(channel="C_ALERTS", text="second"))["ok"] is True
    finally:
        await runner.cleanup()


# -- Block Kit limits --------------------------------------------------------------------------


async def test_message_with_51_blocks_is_refused_invalid_blocks(
    emulator: Emulator, slack: AsyncWebClient
) -> None:
    error = await slack_error(
        slack.chat_postMessage(channel="C_APPROVALS", text="t", blocks=[section("b")] * 51)
    )
    assert error.response["error"] == "invalid_blocks"
    assert "[json-pointer:/blocks]" in error.response["response_metadata"]["messages"][0]
    assert emulator.workspace.messages("C_APPROVALS") == []


async def test_message_with_50_blocks_is_accepted(slack: AsyncWebClient) -> None:
    assert (await slack.chat_postMessage(channel="C_APPROVALS", text="t", blocks=[section("b")] * 50))["ok"]


async def test_section_text_over_3000_characters_is_refused(slack: AsyncWebClient) -> None:
    error = await slack_error(
        slack.chat_postMessage(channel="C_APPROVALS", text="t", blocks=[section("x" * 3001)])
    )
    assert error.response["error"] == "invalid_blocks"
    assert "/blocks/0/text/text" in error.response["response_metadata"]["messages"][0]


async def test_button_text_over_75_characters_is_refused_on_update(slack: AsyncWebClient) -> None:
    posted = await slack.chat_postMessage(channel="C_APPROVALS", text="t")
    button = {"type": "button", "action_id": "approve", "text": {"type": "plain_text", "text": "A" * 76}}
    error = await slack_error(
        slack.chat_update(
            channel="C_APPROVALS",
            ts=posted["ts"],
            text="t",
            blocks=[{"type": "actions", "elements": [button]}],
        )
    )
    assert error.response["error"] == "invalid_blocks"


async def test_blocks_that_are_not_json_are_refused_invalid_blocks_format(emulator: Emulator) -> None:
    response = await emulator.control.post(
        "/api/chat.postMessage",
        headers={"Authorization": f"Bearer {DEFAULT_BOT_TOKEN}"},
        data={"channel": "C_ALERTS", "blocks": "[{not json"},
    )
    assert response.json()["error"] == "invalid_blocks_format"


async def test_modal_with_101_blocks_is_refused(emulator: Emulator, slack: AsyncWebClient) -> None:
    trigger_id = await emulator.trigger("U_REQ")
    view = modal(blocks=[section("b")] * 101)
    error = await slack_error(slack.views_open(trigger_id=trigger_id, view=view))
    assert error.response["error"] == "invalid_arguments"
    assert (await emulator.get("/_control/views", user="U_REQ"))["views"] == []


async def test_modal_title_over_24_characters_is_refused(emulator: Emulator, slack: AsyncWebClient) -> None:
    trigger_id = await emulator.trigger("U_REQ")
    error = await slack_error(slack.views_open(trigger_id=trigger_id, view=modal(title="T" * 25)))
    assert "/view/title/text" in error.response["response_metadata"]["messages"][0]


async def test_home_accepts_100_blocks_but_not_101(slack: AsyncWebClient) -> None:
    home = {"type": "home", "blocks": [section("b")] * 100}
    assert (await slack.views_publish(user_id="U_REQ", view=home))["ok"] is True
    error = await slack_error(
        slack.views_publish(user_id="U_REQ", view=home | {"blocks": [section("b")] * 101})
    )
    assert error.response["error"] == "invalid_arguments"


# -- views -------------------------------------------------------------------------------------


async def test_views_open_shows_the_modal_to_the_user_who_triggered_it(
    emulator: Emulator, slack: AsyncWebClient
) -> None:
    trigger_id = await emulator.trigger("U_REQ")
    answer = await slack.views_open(trigger_id=trigger_id, view=modal(private_metadata='{"request": 7}'))
    view = answer["view"]
    assert view["id"].startswith("V")
    assert view["hash"]
    assert view["callback_id"] == "promote_modal"
    assert view["private_metadata"] == '{"request": 7}'
    assert view["state"] == {"values": {}}
    shown = await emulator.get("/_control/views", user="U_REQ")
    assert [v["id"] for v in shown["views"]] == [view["id"]]


async def test_views_open_with_an_expired_trigger_fails_expired_trigger_id(
    emulator: Emulator, slack: AsyncWebClient, clock: FakeClock
) -> None:
    trigger_id = await emulator.trigger("U_REQ")
    clock.advance(3.1)
    error = await slack_error(slack.views_open(trigger_id=trigger_id, view=modal()))
    assert error.response["error"] == "expired_trigger_id"


async def test_trigger_is_still_valid_at_three_seconds(
    emulator: Emulator, slack: AsyncWebClient, clock: FakeClock
) -> None:
    trigger_id = await emulator.trigger("U_REQ")
    clock.advance(3.0)
    assert (await slack.views_open(trigger_id=trigger_id, view=modal()))["ok"] is True


async def test_reusing_a_trigger_fails_exchanged_trigger_id(
    emulator: Emulator, slack: AsyncWebClient
) -> None:
    trigger_id = await emulator.trigger("U_REQ")
    await slack.views_open(trigger_id=trigger_id, view=modal())
    error = await slack_error(slack.views_open(trigger_id=trigger_id, view=modal()))
    assert error.response["error"] == "exchanged_trigger_id"


async def test_unknown_trigger_fails_invalid_trigger_id(slack: AsyncWebClient) -> None:
    error = await slack_error(slack.views_open(trigger_id="123.456.abcdef", view=modal()))
    assert error.response["error"] == "invalid_trigger_id"


async def test_views_update_with_the_current_hash_replaces_the_modal(
    emulator: Emulator, slack: AsyncWebClient
) -> None:
    opened = (await slack.views_open(trigger_id=await emulator.trigger("U_REQ"), view=modal()))["view"]
    updated = (
        await slack.views_update(view_id=opened["id"], hash=opened["hash"], view=modal(title="Confirm"))
    )["view"]
    assert updated["id"] == opened["id"]
    assert updated["hash"] != opened["hash"]
    (shown,) = (await emulator.get("/_control/views", user="U_REQ"))["views"]
    assert shown["title"]["text"] == "Confirm"


async def test_views_update_with_a_stale_hash_fails_hash_conflict(
    emulator: Emulator, slack: AsyncWebClient
) -> None:
    opened = (await slack.views_open(trigger_id=await emulator.trigger("U_REQ"), view=modal()))["view"]
    await slack.views_update(view_id=opened["id"], hash=opened["hash"], view=modal(title="Second"))
    error = await slack_error(
        slack.views_update(view_id=opened["id"], hash=opened["hash"], view=modal(title="Third"))
    )
    assert error.response["error"] == "hash_conflict"


async def test_views_update_of_an_unknown_view_fails_not_found(slack: AsyncWebClient) -> None:
    assert (await slack_error(slack.views_update(view_id="V404", view=modal()))).response[
        "error"
    ] == "not_found"


async def test_views_publish_sets_the_home_tab_and_checks_the_hash(
    emulator: Emulator, slack: AsyncWebClient
) -> None:
    first = (
        await slack.views_publish(user_id="U_APP1", view={"type": "home", "blocks": [section("2 pending")]})
    )["view"]
    second = (
        await slack.views_publish(
            user_id="U_APP1", hash=first["hash"], view={"type": "home", "blocks": [section("1 pending")]}
        )
    )["view"]
    assert second["id"] == first["id"]
    home = (await emulator.get("/_control/home", user="U_APP1"))["view"]
    assert home["blocks"] == [section("1 pending")]
    error = await slack_error(
        slack.views_publish(user_id="U_APP1", hash=first["hash"], view={"type": "home", "blocks": []})
    )
    assert error.response["error"] == "hash_conflict"
    assert (await emulator.get("/_control/home", user="U_APP2"))["view"] is None


async def test_views_publish_for_an_unknown_user_fails(slack: AsyncWebClient) -> None:
    error = await slack_error(slack.views_publish(user_id="U_NOBODY", view={"type": "home", "blocks": []}))
    assert error.response["error"] == "user_not_found"


async def test_view_submission_errors_keep_the_modal_open(emulator: Emulator, slack: AsyncWebClient) -> None:
    opened = (await slack.views_open(trigger_id=await emulator.trigger("U_REQ"), view=modal()))["view"]
    ack = {"response_action": "errors", "errors": {"artifact": "Unknown artifact"}}
    response = await emulator.post(f"/_control/views/{opened['id']}/ack", {"user_id": "U_REQ", "body": ack})
    assert response.status_code == 200
    shown = await emulator.get("/_control/views", user="U_REQ")
    assert [v["id"] for v in shown["views"]] == [opened["id"]]
    assert shown["errors"] == {opened["id"]: {"artifact": "Unknown artifact"}}


async def test_view_submission_with_an_empty_ack_closes_the_modal(
    emulator: Emulator, slack: AsyncWebClient
) -> None:
    opened = (await slack.views_open(trigger_id=await emulator.trigger("U_REQ"), view=modal()))["view"]
    await emulator.post(f"/_control/views/{opened['id']}/ack", {"user_id": "U_REQ", "body": None})
    assert (await emulator.get("/_control/views", user="U_REQ"))["views"] == []


# -- directory ---------------------------------------------------------------------------------


async def test_users_info_describes_a_seeded_user(slack: AsyncWebClient) -> None:
    user = (await slack.users_info(user="U_APP1"))["user"]
    assert (user["id"], user["name"], user["team_id"]) == ("U_APP1", "alex.approver", "T0001")
    assert user["profile"]["email"] == "alex@example.com"
    assert user["is_bot"] is False


async def test_users_info_for_an_unknown_user_fails_user_not_found(slack: AsyncWebClient) -> None:
    assert (await slack_error(slack.users_info(user="U_NOBODY"))).response["error"] == "user_not_found"


async def test_usergroup_members_are_listed(slack: AsyncWebClient) -> None:
    assert (await slack.usergroups_users_list(usergroup="S_LEADS"))["users"] == ["U_APP1", "U_APP2"]


async def test_unknown_usergroup_fails_no_such_subteam(slack: AsyncWebClient) -> None:
    error = await slack_error(slack.usergroups_users_list(usergroup="S_NOPE"))
    assert error.response["error"] == "no_such_subteam"


async def test_conversations_info_describes_a_channel(slack: AsyncWebClient) -> None:
    channel = (await slack.conversations_info(channel="C_ORDERS"))["channel"]
    assert (channel["id"], channel["name"], channel["is_private"]) == ("C_ORDERS", "orders-edi", False)


async def test_conversations_info_for_an_unknown_channel_fails(slack: AsyncWebClient) -> None:
    error = await slack_error(slack.conversations_info(channel="C_NOPE"))
    assert error.response["error"] == "channel_not_found"


async def test_a_custom_seed_replaces_the_default_workspace(clock: FakeClock) -> None:
    seed = SlackSeed(
        team_id="T0042", users=(SlackUser(id="U_ONLY", name="only.user"),), usergroups=(), channels=()
    )
    app = create_app(clock=clock, seed=seed, channels=[SlackChannel(id="C_ONE", name="one")])
    runner, url = await start_app(app)
    try:
        client = AsyncWebClient(token=DEFAULT_BOT_TOKEN, base_url=url + "/api/")
        assert (await client.auth_test())["team_id"] == "T0042"
        assert (await client.users_info(user="U_ONLY"))["user"]["name"] == "only.user"
        assert (await slack_error(client.users_info(user="U_REQ"))).response["error"] == "user_not_found"
        assert (await client.conversations_info(channel="C_ONE"))["channel"]["name"] == "one"
    finally:
        await runner.cleanup()


def test_a_seed_naming_unknown_group_members_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown users"):
        SlackSeed(usergroups=({"id": "S_X", "handle": "x", "users": ("U_GHOST",)},))  # type: ignore[arg-type]


# -- response URLs -----------------------------------------------------------------------------


async def test_response_url_allows_five_uses_then_answers_used_url(emulator: Emulator) -> None:
    issued = await emulator.response_url("U_REQ", "C_APPROVALS")
    for n in range(5):
        response = await emulator.control.post(issued["url"], json={"text": f"update {n}"})
        assert response.json() == {"ok": True}
    sixth = await emulator.control.post(issued["url"], json={"text": "update 5"})
    assert sixth.status_code == 404
    assert sixth.json()["error"] == "used_url"
    recorded = await emulator.get("/_control/responses", id=issued["id"])
    assert recorded["uses"] == 5
    assert [r["text"] for r in recorded["responses"]] == [f"update {n}" for n in range(5)]


async def test_response_url_expires_after_thirty_minutes(emulator: Emulator, clock: FakeClock) -> None:
    issued = await emulator.response_url("U_REQ", "C_APPROVALS")
    clock.advance(30 * 60 + 1)
    response = await emulator.control.post(issued["url"], json={"text": "too late"})
    assert (response.status_code, response.json()["error"]) == (404, "expired_url")


async def test_unknown_response_url_is_404(emulator: Emulator) -> None:
    response = await emulator.control.post("/_response_url/nope", json={"text": "x"})
    assert response.status_code == 404


async def test_ephemeral_response_is_shown_only_to_the_user(emulator: Emulator) -> None:
    issued = await emulator.response_url("U_REQ", "C_APPROVALS")
    await emulator.control.post(issued["url"], json={"response_type": "ephemeral", "text": "Request opened"})
    seen = (await emulator.get("/_control/ephemeral", user="U_REQ"))["messages"]
    assert [(m["text"], m["via"]) for m in seen] == [("Request opened", "response_url")]
    assert emulator.workspace.messages("C_APPROVALS") == []


async def test_in_channel_response_is_posted_to_the_channel(emulator: Emulator) -> None:
    issued = await emulator.response_url("U_REQ", "C_APPROVALS")
    await emulator.control.post(
        issued["url"], json={"response_type": "in_channel", "text": "Promotion started"}
    )
    assert [m.text for m in emulator.workspace.messages("C_APPROVALS")] == ["Promotion started"]


async def test_replace_original_edits_the_message_the_action_came_from(
    emulator: Emulator, slack: AsyncWebClient
) -> None:
    posted = await slack.chat_postMessage(channel="C_APPROVALS", text="Approve?")
    issued = await emulator.response_url("U_APP1", "C_APPROVALS", message_ts=posted["ts"])
    await emulator.control.post(issued["url"], json={"replace_original": True, "text": "Approved by alex"})
    (stored,) = emulator.workspace.messages("C_APPROVALS")
    assert (stored.text, [v.text for v in stored.history]) == ("Approved by alex", ["Approve?"])


async def test_delete_original_removes_an_ephemeral_message(
    emulator: Emulator, slack: AsyncWebClient
) -> None:
    shown = await slack.chat_postEphemeral(channel="C_APPROVALS", user="U_REQ", text="Confirm?")
    issued = await emulator.response_url(
        "U_REQ", "C_APPROVALS", message_ts=shown["message_ts"], is_ephemeral=True
    )
    await emulator.control.post(issued["url"], json={"delete_original": True})
    assert (await emulator.get("/_control/ephemeral", user="U_REQ"))["messages"] == []


async def test_response_without_text_or_blocks_is_refused_and_not_counted(emulator: Emulator) -> None:
    issued = await emulator.response_url("U_REQ", "C_APPROVALS")
    response = await emulator.control.post(issued["url"], json={"response_type": "ephemeral"})
    assert (response.status_code, response.json()["error"]) == (400, "no_text")
    assert (await emulator.get("/_control/responses", id=issued["id"]))["uses"] == 0


async def test_response_with_too_many_blocks_is_refused(emulator: Emulator) -> None:
    issued = await emulator.response_url("U_REQ", "C_APPROVALS")
    response = await emulator.control.post(issued["url"], json={"text": "t", "blocks": [section("b")] * 51})
    assert response.json()["error"] == "invalid_blocks"


async def test_a_synchronous_command_reply_is_shown_without_spending_a_use(emulator: Emulator) -> None:
    issued = await emulator.response_url("U_REQ", "C_APPROVALS")
    await emulator.post(f"/_control/responses/{issued['id']}/ack", {"text": "Working on it"})
    recorded = await emulator.get("/_control/responses", id=issued["id"])
    assert (recorded["uses"], recorded["responses"][0]["via"]) == (0, "ack")
    assert [m["text"] for m in (await emulator.get("/_control/ephemeral", user="U_REQ"))["messages"]] == [
        "Working on it"
    ]


# -- change feed -------------------------------------------------------------------------------


async def test_subscribers_see_changes_in_order(emulator: Emulator, slack: AsyncWebClient) -> None:
    async with emulator.workspace.subscribe() as changes:
        posted = await slack.chat_postMessage(channel="C_APPROVALS", text="request")
        await slack.chat_update(channel="C_APPROVALS", ts=posted["ts"], text="approved")
        first = await asyncio.wait_for(anext(changes), 1.0)
        second = await asyncio.wait_for(anext(changes), 1.0)
    assert (first.kind, first.data["text"]) == ("message_posted", "request")
    assert (second.kind, second.data["text"]) == ("message_updated", "approved")
    assert second.seq > first.seq


async def test_events_endpoint_streams_changes_as_server_sent_events(
    emulator: Emulator, slack: AsyncWebClient
) -> None:
    async with emulator.control.stream("GET", "/_control/events") as stream:
        lines = stream.aiter_lines()
        assert await asyncio.wait_for(anext(lines), 1.0) == ": subscribed"
        assert await asyncio.wait_for(anext(lines), 1.0) == ""
        await slack.chat_postMessage(channel="C_ALERTS", text="disk full")
        received: list[str] = []
        while not received or received[-1] != "":
            received.append(await asyncio.wait_for(anext(lines), 1.0))
    event = [line for line in received if line]
    assert event[1] == "event: message_posted"
    assert json.loads(event[2].removeprefix("data: "))["text"] == "disk full"


async def test_reset_returns_to_the_seed(emulator: Emulator, slack: AsyncWebClient) -> None:
    await slack.chat_postMessage(channel="C_APPROVALS", text="request")
    await slack.views_publish(user_id="U_REQ", view={"type": "home", "blocks": []})
    await emulator.post("/_control/reset", {})
    assert (await emulator.get("/_control/messages", channel="C_APPROVALS"))["messages"] == []
    assert (await emulator.get("/_control/home", user="U_REQ"))["view"] is None


async def test_shutdown_ends_open_event_streams_promptly(clock: FakeClock) -> None:
    app = create_app(clock=clock)
    runner, url = await start_app(app)
    async with httpx.AsyncClient(base_url=url) as client, client.stream("GET", "/_control/events") as stream:
        lines = stream.aiter_lines()
        assert await asyncio.wait_for(anext(lines), 1.0) == ": subscribed"
        # start_app waits up to 2 s for open handlers; closing the feed must end the stream first.
        await asyncio.wait_for(runner.cleanup(), 1.0)
