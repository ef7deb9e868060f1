"""SlackDriver: requests shaped and signed as Slack sends them, checked by a recording bot and by bolt."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.app.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot.emulators.slack import DEFAULT_BOT_TOKEN, SlackWorkspace, create_app, workspace_of
from bot.emulators.slack_driver import SlackDriver
from bot.web.slack_signature import SignatureRejected, verify
from connectors.emulators.faults import start_app

SECRET = "driver-test-signing-secret"
NOW = 1_700_000_000.0


class FakeClock:
    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes

    def form(self) -> dict[str, str]:
        return {
            key: values[0] for key, values in parse_qs(self.body.decode(), keep_blank_values=True).items()
        }

    def payload(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.form()["payload"])
        return parsed


@dataclass
class RecordingBot:
    """Verifies each request with bot.web.slack_signature and answers with `reply` (200, empty by default)."""

    clock: Callable[[], float]
    received: list[Received] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    reply: Callable[[Received], web.Response] = lambda _: web.Response(status=200)

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        try:
            verify(
                SECRET,
                request.headers.get("X-Slack-Request-Timestamp"),
                request.headers.get("X-Slack-Signature"),
                body,
                now=self.clock(),
            )
        except SignatureRejected as rejected:
            self.rejected.append(rejected.reason)
            return web.Response(status=401)
        received = Received(headers=dict(request.headers), body=body)
        self.received.append(received)
        return self.reply(received)


@dataclass
class Stack:
    driver: SlackDriver
    bot: RecordingBot
    workspace: SlackWorkspace
    slack: AsyncWebClient
    clock: FakeClock


@pytest.fixture
async def stack() -> AsyncIterator[Stack]:
    clock = FakeClock()
    emulator_app = create_app(clock=clock)
    emulator_runner, emulator_url = await start_app(emulator_app)
    bot = RecordingBot(clock=clock)
    bot_app = web.Application()
    bot_app.router.add_post("/slack/events", bot.handle)
    bot_runner, bot_url = await start_app(bot_app)
    driver = SlackDriver(f"{bot_url}/slack/events", SECRET, emulator_url, clock=clock)
    try:
        yield Stack(
            driver=driver,
            bot=bot,
            workspace=workspace_of(emulator_app),
            slack=AsyncWebClient(token=DEFAULT_BOT_TOKEN, base_url=emulator_url + "/api/"),
            clock=clock,
        )
    finally:
        await driver.aclose()
        await bot_runner.cleanup()
        await emulator_runner.cleanup()


def approval_blocks() -> list[dict[str, Any]]:
    return [
        {"type": "section", "text": {"type": "mrkdwn", "text": "Promote *orders-edi* to prod?"}},
        {
            "type": "actions",
            "block_id": "decision",
            "elements": [
                {
                    "type": "button",
                    "action_id": "approve",
                    "style": "primary",
                    "text": {"type": "plain_text", "text": "Approve"},
                    "value": "7",
                }
            ],
        },
    ]


# -- slash commands ----------------------------------------------------------------------------


async def test_slash_command_is_a_signed_form_like_slacks(stack: Stack) -> None:
    result = await stack.driver.slash_command("U_REQ", "/promote", "orders-edi to prod")
    assert result.status == 200
    (received,) = stack.bot.received
    assert received.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert received.headers["X-Slack-Request-Timestamp"] == str(int(NOW))
    form = received.form()
    assert {key: form[key] for key in ("team_id", "channel_id", "channel_name", "user_id", "user_name")} == {
        "team_id": "T0001",
        "channel_id": "C_APPROVALS",
        "channel_name": "approvals",
        "user_id": "U_REQ",
        "user_name": "rhea.requester",
    }
    assert (form["command"], form["text"]) == ("/promote", "orders-edi to prod")
    assert form["response_url"].endswith(f"/_response_url/{result.response_url_id}")
    assert form["trigger_id"] == result.trigger_id
    assert {"token", "team_domain", "api_app_id"} <= form.keys()


async def test_slash_command_response_url_delivers_to_the_emulator(stack: Stack) -> None:
    result = await stack.driver.slash_command("U_REQ", "/promote", "orders-edi")
    async with httpx.AsyncClient() as client:
        await client.post(stack.bot.received[0].form()["response_url"], json={"text": "Request #7 opened"})
    assert [r["text"] for r in await stack.driver.responses(str(result.response_url_id))] == [
        "Request #7 opened"
    ]
    assert [m["text"] for m in await stack.driver.ephemeral("U_REQ")] == ["Request #7 opened"]


async def test_slash_command_trigger_id_opens_a_modal_for_that_user(stack: Stack) -> None:
    result = await stack.driver.slash_command("U_REQ", "/promote")
    view = {"type": "modal", "title": {"type": "plain_text", "text": "Promote"}, "blocks": []}
    await stack.slack.views_open(trigger_id=str(result.trigger_id), view=view)
    assert len(await stack.driver.open_views("U_REQ")) == 1


async def test_a_synchronous_command_reply_is_shown_to_the_user(stack: Stack) -> None:
    stack.bot.reply = lambda _: web.json_response({"response_type": "ephemeral", "text": "Usage: /promote"})
    result = await stack.driver.slash_command("U_OUT", "/promote")
    assert result.json() == {"response_type": "ephemeral", "text": "Usage: /promote"}
    assert [m["text"] for m in await stack.driver.ephemeral("U_OUT")] == ["Usage: /promote"]
    assert (await stack.driver.responses(str(result.response_url_id)))[0]["via"] == "ack"


async def test_slash_command_in_the_apps_dm_answers_in_that_dm(stack: Stack) -> None:
    result = await stack.driver.slash_command("U_REQ", "/ops", "status", channel_id="D_REQ")
    assert stack.bot.received[0].form()["channel_name"] == "directmessage"
    async with httpx.AsyncClient() as client:
        await client.post(
            stack.bot.received[0].form()["response_url"],
            json={"response_type": "in_channel", "text": "All green"},
        )
    assert [m["text"] for m in await stack.driver.messages("D_REQ")] == ["All green"]
    assert result.response_url_id is not None


async def test_retry_headers_are_sent_when_asked(stack: Stack) -> None:
    await stack.driver.slash_command("U_REQ", "/ops", "status", retry_num=2)
    assert stack.bot.received[0].headers["X-Slack-Retry-Num"] == "2"
    assert stack.bot.received[0].headers["X-Slack-Retry-Reason"] == "http_timeout"


# -- security options --------------------------------------------------------------------------


async def test_a_bad_signature_is_rejected_by_the_verifier(stack: Stack) -> None:
    result = await stack.driver.slash_command("U_REQ", "/promote", signature="bad")
    assert result.status == 401
    assert stack.bot.rejected == ["X-Slack-Signature does not match the request body"]


async def test_a_stale_timestamp_is_rejected_even_when_correctly_signed(stack: Stack) -> None:
    result = await stack.driver.block_action(
        "U_APP1",
        message_ts="1.000001",
        channel_id="C_APPROVALS",
        action_id="approve",
        value="7",
        timestamp_offset=-400,
    )
    assert result.status == 401
    assert stack.bot.rejected == ["X-Slack-Request-Timestamp is outside the allowed clock skew"]


async def test_send_raw_can_drop_the_signature_headers(stack: Stack) -> None:
    result = await stack.driver.send_raw(b"command=%2Fpromote", headers={"X-Slack-Signature": ""})
    assert result.status == 401
    assert stack.bot.rejected == ["missing X-Slack-Signature header"]


# -- interactions ------------------------------------------------------------------------------


async def test_block_action_carries_the_clicked_button_and_its_message(stack: Stack) -> None:
    posted = await stack.slack.chat_postMessage(
        channel="C_APPROVALS", text="Approve?", blocks=approval_blocks()
    )
    result = await stack.driver.block_action(
        "U_APP1", message_ts=posted["ts"], channel_id="C_APPROVALS", action_id="approve", value="7"
    )
    payload = stack.bot.received[0].payload()
    assert payload["type"] == "block_actions"
    assert payload["user"]["id"] == "U_APP1"
    assert payload["container"] == {
        "type": "message",
        "message_ts": posted["ts"],
        "channel_id": "C_APPROVALS",
        "is_ephemeral": False,
    }
    (action,) = payload["actions"]
    assert (action["action_id"], action["block_id"], action["value"]) == ("approve", "decision", "7")
    assert action["text"] == {"type": "plain_text", "text": "Approve"}
    assert payload["message"]["ts"] == posted["ts"]
    assert payload["message"]["blocks"] == approval_blocks()
    assert payload["trigger_id"] == result.trigger_id
    assert payload["response_url"].endswith(str(result.response_url_id))


async def test_block_action_response_url_can_replace_the_original_message(stack: Stack) -> None:
    posted = await stack.slack.chat_postMessage(
        channel="C_APPROVALS", text="Approve?", blocks=approval_blocks()
    )
    await stack.driver.block_action(
        "U_APP1", message_ts=posted["ts"], channel_id="C_APPROVALS", action_id="approve", value="7"
    )
    async with httpx.AsyncClient() as client:
        await client.post(
            stack.bot.received[0].payload()["response_url"],
            json={"replace_original": True, "text": "Approved"},
        )
    (message,) = await stack.driver.messages("C_APPROVALS")
    assert message["text"] == "Approved"


async def test_home_block_action_uses_the_published_home_view(stack: Stack) -> None:
    await stack.slack.views_publish(user_id="U_APP1", view={"type": "home", "blocks": approval_blocks()})
    await stack.driver.home_block_action("U_APP1", action_id="approve", value="7")
    payload = stack.bot.received[0].payload()
    assert payload["container"]["type"] == "view"
    assert payload["view"]["type"] == "home"
    assert payload["actions"][0]["block_id"] == "decision"


async def open_modal(stack: Stack) -> dict[str, Any]:
    result = await stack.driver.slash_command("U_REQ", "/promote")
    view = {
        "type": "modal",
        "callback_id": "promote_modal",
        "private_metadata": '{"request_id": 7}',
        "title": {"type": "plain_text", "text": "Promote"},
        "submit": {"type": "plain_text", "text": "Submit"},
        "blocks": [
            {
                "type": "input",
                "block_id": "artifact",
                "label": {"type": "plain_text", "text": "Artifact"},
                "element": {"type": "plain_text_input", "action_id": "value"},
            }
        ],
    }
    opened: dict[str, Any] = (await stack.slack.views_open(trigger_id=str(result.trigger_id), view=view))[
        "view"
    ]
    stack.bot.received.clear()
    return opened


async def test_view_submission_carries_state_values_and_private_metadata(stack: Stack) -> None:
    view = await open_modal(stack)
    await stack.driver.view_submission("U_REQ", view, {"artifact": {"value": "orders-edi"}})
    payload = stack.bot.received[0].payload()
    assert payload["type"] == "view_submission"
    assert payload["view"]["callback_id"] == "promote_modal"
    assert payload["view"]["private_metadata"] == '{"request_id": 7}'
    assert payload["view"]["state"]["values"] == {
        "artifact": {"value": {"type": "plain_text_input", "value": "orders-edi"}}
    }


async def test_view_submission_answered_with_errors_keeps_the_modal_open(stack: Stack) -> None:
    view = await open_modal(stack)
    stack.bot.reply = lambda _: web.json_response(
        {"response_action": "errors", "errors": {"artifact": "No such artifact"}}
    )
    await stack.driver.view_submission("U_REQ", view, {"artifact": {"value": "nope"}})
    assert [v["id"] for v in await stack.driver.open_views("U_REQ")] == [view["id"]]


async def test_view_submission_answered_with_an_empty_ack_closes_the_modal(stack: Stack) -> None:
    view = await open_modal(stack)
    await stack.driver.view_submission("U_REQ", view, {"artifact": {"value": "orders-edi"}})
    assert await stack.driver.open_views("U_REQ") == []


# -- events ------------------------------------------------------------------------------------


async def test_app_home_opened_is_an_event_callback(stack: Stack) -> None:
    await stack.driver.app_home_opened("U_APP2")
    (received,) = stack.bot.received
    assert received.headers["Content-Type"] == "application/json"
    envelope = json.loads(received.body)
    assert envelope["type"] == "event_callback"
    assert envelope["event_id"].startswith("Ev")
    assert envelope["event_time"] == int(NOW)
    assert envelope["event"] == {
        "type": "app_home_opened",
        "user": "U_APP2",
        "channel": "D_APP2",
        "tab": "home",
        "event_ts": f"{NOW:.6f}",
    }


async def test_app_home_opened_redelivery_reuses_the_event_id_and_says_so(stack: Stack) -> None:
    await stack.driver.app_home_opened("U_APP2")
    event_id = json.loads(stack.bot.received[0].body)["event_id"]
    await stack.driver.app_home_opened("U_APP2", event_id=event_id, retry_num=1, retry_reason="http_timeout")
    redelivered = stack.bot.received[1]
    assert json.loads(redelivered.body)["event_id"] == event_id
    assert redelivered.headers["X-Slack-Retry-Num"] == "1"


async def test_app_home_opened_includes_the_published_home_view(stack: Stack) -> None:
    await stack.slack.views_publish(user_id="U_APP2", view={"type": "home", "blocks": []})
    await stack.driver.app_home_opened("U_APP2")
    assert json.loads(stack.bot.received[0].body)["event"]["view"]["type"] == "home"


# -- a real bolt app accepts what the driver sends ----------------------------------------------


@dataclass
class BoltStack:
    driver: SlackDriver
    slack: AsyncWebClient
    workspace: SlackWorkspace


@pytest.fixture
async def bolt_stack() -> AsyncIterator[BoltStack]:
    # bolt verifies signatures against the real clock, so this stack runs on time.time.
    emulator_app = create_app(clock=time.time)
    emulator_runner, emulator_url = await start_app(emulator_app)
    slack = AsyncWebClient(token=DEFAULT_BOT_TOKEN, base_url=emulator_url + "/api/")
    bolt = AsyncApp(client=slack, signing_secret=SECRET, process_before_response=True)

    @bolt.command("/promote")
    async def promote(ack: Any, respond: Any, command: dict[str, Any]) -> None:
        await ack()
        await respond(f"Promotion of {command['text']} requested")

    @bolt.action("approve")
    async def approve(ack: Any, body: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        await client.chat_update(
            channel=body["container"]["channel_id"], ts=body["container"]["message_ts"], text="Approved"
        )

    @bolt.view("promote_modal")
    async def submitted(ack: Any, view: dict[str, Any]) -> None:
        value = view["state"]["values"]["artifact"]["value"]["value"]
        await ack(response_action="errors", errors={"artifact": f"{value} is frozen"})

    @bolt.event("app_home_opened")
    async def home_opened(event: dict[str, Any], client: AsyncWebClient) -> None:
        await client.views_publish(
            user_id=event["user"],
            view={"type": "home", "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "Hi"}}]},
        )

    async def slack_events(request: web.Request) -> web.Response:
        return await to_aiohttp_response(await bolt.async_dispatch(await to_bolt_request(request)))

    bot_app = web.Application()
    bot_app.router.add_post("/slack/events", slack_events)
    bot_runner, bot_url = await start_app(bot_app)
    driver = SlackDriver(f"{bot_url}/slack/events", SECRET, emulator_url)
    try:
        yield BoltStack(driver=driver, slack=slack, workspace=workspace_of(emulator_app))
    finally:
        await driver.aclose()
        await bot_runner.cleanup()
        await emulator_runner.cleanup()


async def test_bolt_routes_the_slash_command_and_its_respond_reaches_the_emulator(
    bolt_stack: BoltStack,
) -> None:
    result = await bolt_stack.driver.slash_command("U_REQ", "/promote", "orders-edi")
    assert result.status == 200
    assert [m["text"] for m in await bolt_stack.driver.ephemeral("U_REQ")] == [
        "Promotion of orders-edi requested"
    ]


async def test_bolt_refuses_a_bad_signature(bolt_stack: BoltStack) -> None:
    result = await bolt_stack.driver.slash_command("U_REQ", "/promote", "orders-edi", signature="v0=bad")
    assert result.status == 401
    assert await bolt_stack.driver.ephemeral("U_REQ") == []


async def test_bolt_routes_the_button_click_by_action_id(bolt_stack: BoltStack) -> None:
    posted = await bolt_stack.slack.chat_postMessage(
        channel="C_APPROVALS", text="Approve?", blocks=approval_blocks()
    )
    result = await bolt_stack.driver.block_action(
        "U_APP1", message_ts=posted["ts"], channel_id="C_APPROVALS", action_id="approve", value="7"
    )
    assert result.status == 200
    assert [m["text"] for m in await bolt_stack.driver.messages("C_APPROVALS")] == ["Approved"]


async def test_bolt_routes_the_view_submission_by_callback_id(bolt_stack: BoltStack) -> None:
    trigger = await bolt_stack.driver.slash_command("U_REQ", "/promote", "x")
    view = {
        "type": "modal",
        "callback_id": "promote_modal",
        "title": {"type": "plain_text", "text": "Promote"},
        "submit": {"type": "plain_text", "text": "Submit"},
        "blocks": [
            {
                "type": "input",
                "block_id": "artifact",
                "label": {"type": "plain_text", "text": "Artifact"},
                "element": {"type": "plain_text_input", "action_id": "value"},
            }
        ],
    }
    opened = (await bolt_stack.slack.views_open(trigger_id=str(trigger.trigger_id), view=view))["view"]
    result = await bolt_stack.driver.view_submission("U_REQ", opened, {"artifact": {"value": "orders-edi"}})
    assert result.json() == {"response_action": "errors", "errors": {"artifact": "orders-edi is frozen"}}
    assert bolt_stack.workspace.modal_errors("U_REQ") == {opened["id"]: {"artifact": "orders-edi is frozen"}}


async def test_bolt_routes_app_home_opened_and_publishes_home(bolt_stack: BoltStack) -> None:
    result = await bolt_stack.driver.app_home_opened("U_APP1")
    assert result.status == 200
    home = await bolt_stack.driver.home("U_APP1")
    assert home is not None and home["blocks"][0]["text"]["text"] == "Hi"
