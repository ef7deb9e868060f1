"""End to end over Socket Mode: the bot connects out to the Slack emulator's WebSocket (no HTTP
server), requests arrive as envelopes, and the watchdog keeps the connection alive."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from bot.config.opsgate import Settings, parse_config
from bot.domain.policy import Action
from bot.domain.requests import ChangeRequest, ChangeSpec, FrozenClock
from bot.emulators.slack import create_app as create_slack
from bot.emulators.slack_control import workspace_of
from bot.emulators.slack_seed import DEFAULT_BOT_TOKEN
from bot.emulators.slack_socket import DEFAULT_APP_TOKEN, SocketModeServer, socket_mode_of
from bot.emulators.slack_socket_driver import SocketModeDriver
from bot.ids import ActionId
from bot.web.socket_mode import SocketModeRunner, SocketModeStartError
from bot.wiring.service import OpsgateService, build_service
from commands.workflow import ExecutionContext, ExecutionResult, Preview
from connectors.emulators.faults import start_app

from .conftest import settle_runtime

# The watchdog's interval here; production uses 30 s.
CHECK_EVERY = 0.05
# How long a test waits for a reconnect before failing (it takes milliseconds).
RECONNECT_WITHIN = 5.0
PROMOTE = "orders-api 1.4.0 test prod fix 850 mapping"

CONFIG: dict[str, Any] = {
    "environments": {"test": {}, "prod": {"production": True}},
    "solutions": [{"name": "orders-edi", "artifacts": ["orders-api"], "downstream_systems": ["SAP"]}],
    "groups": {"leads": ["U_APP1", "U_APP2"], "engineers": ["U_REQ", "U_APP1", "U_APP2"]},
    "slack": {"approvals_channel": "C_APPROVALS", "alerts_channel": "C_ALERTS"},
    "policies": [
        {
            "name": "prod-promotions",
            "action": "promotion",
            "environment": "prod",
            "approvers": {"groups": ["leads"]},
            "min_approvals": 2,
            "requesters": {"groups": ["engineers"]},
        }
    ],
}


class FakePromotion:
    """Stands in for OpenText (not under test here): records what it was asked to execute."""

    action = Action.PROMOTION

    def __init__(self) -> None:
        self.executed: list[str] = []

    async def precheck(self, spec: ChangeSpec, *, requester: str) -> Preview:
        return Preview("1.3.2 → " + str(spec.parameters["version"]), {"current_version": "1.3.2"})

    async def execute(self, request: ChangeRequest, ctx: ExecutionContext) -> ExecutionResult:
        self.executed.append(request.human_id)
        return ExecutionResult({"deployed_version": request.parameters["version"]})


@dataclass
class SocketBot:
    service: OpsgateService
    runner: SocketModeRunner
    driver: SocketModeDriver
    slack_app: web.Application
    clock: FrozenClock
    workflow: FakePromotion

    @property
    def sockets(self) -> SocketModeServer:
        return socket_mode_of(self.slack_app)

    async def settle(self) -> None:
        await settle_runtime(self.service.runtime, self.clock)

    def channel(self, channel: str = "C_APPROVALS") -> list[Any]:
        messages = workspace_of(self.slack_app).messages(channel)
        return [m for m in messages if m.thread_ts in (None, m.ts)]

    async def promote(self) -> Any:
        result = await self.driver.slash_command("U_REQ", "/promote", PROMOTE, channel_id="C_ORDERS")
        assert result.status == 200, result.text
        await self.settle()
        return result

    async def click(self, user: str, message: Any, action_id: str) -> Any:
        result = await self.driver.block_action(
            user,
            message_ts=message.ts,
            channel_id=message.channel,
            action_id=action_id,
            value=_button_value(message, action_id),
        )
        assert result.status == 200, result.text
        await self.settle()
        return result

    async def wait_for_new_connection(self, opened: int) -> None:
        """Wait until ``opened`` connections were ever accepted and exactly one is open."""
        reached = await self.sockets.wait_until(
            lambda s: len(s.connections()) >= opened and len(s.open_connections()) == 1,
            timeout=RECONNECT_WITHIN,
        )
        assert reached, f"no reconnect within {RECONNECT_WITHIN} s: {self.sockets.connections()}"


def _button_value(message: Any, action_id: str) -> str:
    for block in message.blocks:
        for element in block.get("elements", []) if isinstance(block, Mapping) else []:
            if isinstance(element, Mapping) and element.get("action_id") == action_id:
                return str(element["value"])
    raise AssertionError(f"no {action_id} button on the message")


@dataclass
class Stack:
    """The bot's service and the Slack emulator, with nothing connected yet."""

    service: OpsgateService
    slack_app: web.Application
    slack_url: str
    clock: FrozenClock
    workflow: FakePromotion


@pytest.fixture
async def stack(database: Any, tmp_path: Path) -> AsyncIterator[Stack]:
    clock = FrozenClock()
    slack_app = create_slack(clock=lambda: clock().timestamp())
    slack_runner, slack_url = await start_app(slack_app)
    settings = Settings(
        database_url=database.url,
        slack_bot_token=DEFAULT_BOT_TOKEN,
        slack_app_token=DEFAULT_APP_TOKEN,
        slack_api_url=slack_url + "/api/",
        opsgate_secret_key_file=tmp_path / "key",
    )
    workflow = FakePromotion()
    service = await build_service(
        settings,
        parse_config(CONFIG, source="e2e-socket", env={}),
        clock=clock,
        workflows={Action.PROMOTION: workflow},
        engine_kwargs={"connect_args": database.connect_args} if database.connect_args else None,
        migrate=False,
    )
    yield Stack(service, slack_app, slack_url, clock, workflow)
    await service.stop(timeout=2)
    await slack_runner.cleanup()


@pytest.fixture
async def bot(stack: Stack) -> AsyncIterator[SocketBot]:
    """The bot connected over Socket Mode only: its HTTP app is built but never served."""
    runner = SocketModeRunner(stack.service.bolt, DEFAULT_APP_TOKEN, check_every=CHECK_EVERY)
    await runner.start()
    driver = SocketModeDriver(stack.slack_url)
    bot = SocketBot(stack.service, runner, driver, stack.slack_app, stack.clock, stack.workflow)
    try:
        await bot.wait_for_new_connection(opened=1)
        yield bot
    finally:
        await driver.aclose()
        await runner.stop()


async def test_promote_over_socket_mode_opens_a_request_and_posts_the_approval_message(
    bot: SocketBot,
) -> None:
    ack = await bot.promote()
    assert "Checking" in ack.json()["text"]
    [message] = bot.channel()
    assert "PRM-1" in message.text
    assert any(b.get("type") == "actions" for b in message.blocks)
    replies = [r["text"] for r in await bot.driver.responses(str(ack.response_url_id))]
    assert any("opened; approval requested" in text for text in replies)


async def test_approve_clicks_over_socket_mode_are_recorded(bot: SocketBot) -> None:
    await bot.promote()
    await bot.click("U_APP1", bot.channel()[0], ActionId.APPROVE)
    [message] = bot.channel()
    assert "U_APP1" in str(message.blocks), "the first approval shows on the request"
    assert any(b.get("type") == "actions" for b in message.blocks), "one of two approvals: still open"
    await bot.click("U_APP2", message, ActionId.APPROVE)
    [message] = bot.channel()
    assert not any(b.get("type") == "actions" for b in message.blocks)
    assert bot.workflow.executed == ["PRM-1"]


async def test_watchdog_reconnects_after_the_connection_silently_drops(bot: SocketBot) -> None:
    [dropped] = await bot.driver.drop()
    await bot.wait_for_new_connection(opened=2)
    assert bot.runner.reconnects == 1
    first, second = bot.sockets.connections()
    assert (first.id, first.state, second.state) == (dropped, "closed", "open")
    await bot.promote()
    assert "PRM-1" in bot.channel()[0].text


async def test_refresh_requested_disconnect_moves_the_bot_to_a_new_connection(bot: SocketBot) -> None:
    [old] = await bot.driver.disconnect("refresh_requested")
    await bot.wait_for_new_connection(opened=2)
    first, second = bot.sockets.connections()
    assert (first.id, first.state, second.state) == (old, "closed", "open")
    assert bot.runner.reconnects == 0, "slack_sdk follows a disconnect itself; the watchdog had no work"
    await bot.promote()
    assert "PRM-1" in bot.channel()[0].text


@pytest.mark.parametrize(
    ("token", "says"),
    [
        ("xapp-1-A_OPSGATE-1-revoked", "invalid_auth"),
        ("xoxb-a-bot-token-by-mistake", "app-level token (xapp-...)"),
    ],
)
async def test_a_bad_app_token_fails_at_start_with_a_clear_error(stack: Stack, token: str, says: str) -> None:
    runner = SocketModeRunner(stack.service.bolt, token, check_every=CHECK_EVERY)
    # Bounded: slack_sdk alone would retry a refused token forever.
    with pytest.raises(SocketModeStartError, match=r"SLACK_APP_TOKEN") as refused:
        async with asyncio.timeout(RECONNECT_WITHIN):
            await runner.start()
    assert says in str(refused.value)
    assert token not in str(refused.value)
    assert not await runner.is_connected()
    assert socket_mode_of(stack.slack_app).connections() == []
    await runner.stop()
