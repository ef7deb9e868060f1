"""Socket Mode in the Slack emulator: the protocol an app sees, and the controls a test drives."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import httpx
import pytest
from aiohttp import WSMsgType

from bot.emulators.slack import DEFAULT_BOT_TOKEN, create_app
from bot.emulators.slack_socket import DEFAULT_APP_TOKEN, SocketModeServer, socket_mode_of
from bot.emulators.slack_socket_driver import SocketModeDriver
from connectors.emulators.faults import start_app

Json = dict[str, Any]


@dataclass
class AppSide:
    """A hand-written Socket Mode app: connects, records envelopes, acks them with `reply`."""

    ws: aiohttp.ClientWebSocketResponse
    hello: Json
    envelopes: list[Json] = field(default_factory=list)
    other: list[Json] = field(default_factory=list)
    reply: Callable[[Json], Json | None] = lambda _: None
    acking: bool = True
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    _reader: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for message in self.ws:
            if message.type != WSMsgType.TEXT:
                continue
            data = json.loads(message.data)
            if "envelope_id" not in data:
                self.other.append(data)
                continue
            self.envelopes.append(data)
            self.arrived.set()
            if self.acking:
                ack: Json = {"envelope_id": data["envelope_id"]}
                payload = self.reply(data)
                if payload is not None:
                    ack["payload"] = payload
                await self.ws.send_str(json.dumps(ack))

    async def close(self) -> None:
        await self.ws.close()
        if self._reader is not None:
            await self._reader


@dataclass
class Emulator:
    url: str
    server: SocketModeServer
    http: httpx.AsyncClient
    session: aiohttp.ClientSession
    apps: list[AppSide] = field(default_factory=list)

    async def open_url(self, token: str = DEFAULT_APP_TOKEN) -> Json:
        response = await self.http.post(
            f"{self.url}/api/apps.connections.open", headers={"Authorization": f"Bearer {token}"}
        )
        body: Json = response.json()
        return body

    async def connect(self, *, reply: Callable[[Json], Json | None] | None = None) -> AppSide:
        url = (await self.open_url())["url"]
        ws = await self.session.ws_connect(url, autoping=False)
        hello = json.loads((await ws.receive()).data)
        app = AppSide(ws, hello)
        if reply is not None:
            app.reply = reply
        app.start()
        self.apps.append(app)
        return app

    async def send(self, **body: Any) -> httpx.Response:
        return await self.http.post(f"{self.url}/_control/socket/send", json=body)


@pytest.fixture
async def emulator() -> AsyncIterator[Emulator]:
    app = create_app()
    runner, url = await start_app(app)
    async with httpx.AsyncClient(timeout=10) as http, aiohttp.ClientSession() as session:
        emulator = Emulator(url, socket_mode_of(app), http, session)
        try:
            yield emulator
        finally:
            for side in emulator.apps:
                await side.close()
            await runner.cleanup()


# -- apps.connections.open ---------------------------------------------------------------------


async def test_connections_open_gives_a_websocket_url_for_the_app_token(emulator: Emulator) -> None:
    body = await emulator.open_url()
    assert body["ok"] is True
    assert body["url"].startswith(emulator.url.replace("http://", "ws://") + "/_socket/")


async def test_connections_open_accepts_the_token_as_a_form_parameter(emulator: Emulator) -> None:
    response = await emulator.http.post(
        f"{emulator.url}/api/apps.connections.open", data={"token": DEFAULT_APP_TOKEN}
    )
    assert response.json()["ok"] is True


@pytest.mark.parametrize(
    ("headers", "error"),
    [
        ({}, "not_authed"),
        ({"Authorization": f"Bearer {DEFAULT_BOT_TOKEN}"}, "not_allowed_token_type"),
        ({"Authorization": "Bearer xapp-1-A_OTHER-1-wrong"}, "invalid_auth"),
    ],
)
async def test_connections_open_refuses_anything_but_the_apps_token(
    emulator: Emulator, headers: dict[str, str], error: str
) -> None:
    response = await emulator.http.post(f"{emulator.url}/api/apps.connections.open", headers=headers)
    assert response.json() == {"ok": False, "error": error}


async def test_the_app_token_is_configurable() -> None:
    app = create_app(app_token="xapp-1-A_CUSTOM-1-secret")
    runner, url = await start_app(app)
    try:
        async with httpx.AsyncClient() as http:
            custom = await http.post(
                f"{url}/api/apps.connections.open",
                headers={"Authorization": "Bearer xapp-1-A_CUSTOM-1-secret"},
            )
            default = await http.post(
                f"{url}/api/apps.connections.open", headers={"Authorization": f"Bearer {DEFAULT_APP_TOKEN}"}
            )
    finally:
        await runner.cleanup()
    assert custom.json()["ok"] is True
    assert default.json()["error"] == "invalid_auth"


async def test_the_web_api_still_answers_other_methods(emulator: Emulator) -> None:
    response = await emulator.http.post(
        f"{emulator.url}/api/auth.test", headers={"Authorization": f"Bearer {DEFAULT_BOT_TOKEN}"}
    )
    assert response.json()["ok"] is True


# -- the WebSocket -----------------------------------------------------------------------------


async def test_hello_names_the_app_and_counts_connections(emulator: Emulator) -> None:
    first = await emulator.connect()
    second = await emulator.connect()
    assert first.hello["type"] == "hello"
    assert first.hello["connection_info"] == {"app_id": "A_OPSGATE"}
    assert first.hello["num_connections"] == 1 and second.hello["num_connections"] == 2
    assert {"host", "build_number", "approximate_connection_time"} <= first.hello["debug_info"].keys()


async def test_a_socket_url_admits_one_connection(emulator: Emulator) -> None:
    url = (await emulator.open_url())["url"]
    ws = await emulator.session.ws_connect(url)
    try:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await emulator.session.ws_connect(url)
        assert refused.value.status == 401
    finally:
        await ws.close()


async def test_pings_are_answered_with_pongs_echoing_their_data(emulator: Emulator) -> None:
    url = (await emulator.open_url())["url"]
    ws = await emulator.session.ws_connect(url, autoping=False)
    try:
        await ws.receive()  # hello
        await ws.ping(b"sdk-ping-pong:1700000000.5")
        pong = await ws.receive(timeout=5)
        assert (pong.type, pong.data) == (WSMsgType.PONG, b"sdk-ping-pong:1700000000.5")
    finally:
        await ws.close()


async def test_send_delivers_an_envelope_and_returns_the_acks_payload(emulator: Emulator) -> None:
    app = await emulator.connect(reply=lambda _: {"text": "Checking…"})
    response = await emulator.send(type="slash_commands", payload={"command": "/promote", "text": "x"})
    assert response.status_code == 200
    [envelope] = app.envelopes
    assert envelope["type"] == "slash_commands"
    assert envelope["payload"] == {"command": "/promote", "text": "x"}
    assert envelope["accepts_response_payload"] is True
    assert "retry_attempt" not in envelope
    assert response.json() == {
        "envelope_id": envelope["envelope_id"],
        "connection_id": emulator.server.connections()[0].id,
        "payload": {"text": "Checking…"},
    }


async def test_an_ack_without_payload_returns_none(emulator: Emulator) -> None:
    await emulator.connect()
    response = await emulator.send(type="interactive", payload={"type": "block_actions"})
    assert response.json()["payload"] is None


@pytest.mark.parametrize(
    ("payload_type", "accepts"), [("block_actions", False), ("view_submission", True), ("view_closed", False)]
)
async def test_interactive_envelopes_accept_a_response_only_where_slack_uses_one(
    emulator: Emulator, payload_type: str, accepts: bool
) -> None:
    app = await emulator.connect()
    await emulator.send(type="interactive", payload={"type": payload_type})
    assert app.envelopes[0]["accepts_response_payload"] is accepts


async def test_events_api_envelopes_number_their_attempts(emulator: Emulator) -> None:
    app = await emulator.connect()
    await emulator.send(type="events_api", payload={"type": "event_callback"})
    await emulator.send(
        type="events_api", payload={"type": "event_callback"}, retry_attempt=2, retry_reason="http_timeout"
    )
    first, retried = app.envelopes
    assert (first["retry_attempt"], first["retry_reason"], first["accepts_response_payload"]) == (
        0,
        "",
        False,
    )
    assert (retried["retry_attempt"], retried["retry_reason"]) == (2, "http_timeout")


async def test_envelopes_go_to_the_newest_open_connection(emulator: Emulator) -> None:
    old = await emulator.connect()
    new = await emulator.connect()
    await emulator.send(type="events_api", payload={})
    assert (len(old.envelopes), len(new.envelopes)) == (0, 1)


async def test_send_without_an_open_connection_is_409(emulator: Emulator) -> None:
    response = await emulator.send(type="slash_commands", payload={})
    assert response.status_code == 409
    assert response.json() == {"error": "no_open_connection"}


async def test_an_envelope_nobody_acks_times_out_with_504(emulator: Emulator) -> None:
    app = await emulator.connect()
    app.acking = False
    response = await emulator.send(type="slash_commands", payload={}, timeout=0.05)
    assert response.status_code == 504
    assert response.json() == {"error": "ack_timeout", "envelope_id": app.envelopes[0]["envelope_id"]}


@pytest.mark.parametrize(
    "body",
    [{"type": "bogus", "payload": {}}, {"type": "events_api"}, {"type": "events_api", "payload": {}, "x": 1}],
)
async def test_malformed_send_requests_are_400(emulator: Emulator, body: Json) -> None:
    response = await emulator.http.post(f"{emulator.url}/_control/socket/send", json=body)
    assert response.status_code == 400


async def test_disconnect_sends_slacks_disconnect_message(emulator: Emulator) -> None:
    app = await emulator.connect()
    response = await emulator.http.post(
        f"{emulator.url}/_control/socket/disconnect", json={"reason": "warning"}
    )
    assert response.json() == {"sent_to": [emulator.server.connections()[0].id]}
    await emulator.send(type="events_api", payload={})  # messages arrive in order: this one is after it
    assert app.other == [
        {"type": "disconnect", "reason": "warning", "debug_info": {"host": "opsgate-slack-emulator"}}
    ]


async def test_disconnect_refuses_unknown_reasons(emulator: Emulator) -> None:
    response = await emulator.http.post(f"{emulator.url}/_control/socket/disconnect", json={"reason": "nap"})
    assert response.status_code == 400


async def test_drop_kills_the_connection_without_a_close_frame(emulator: Emulator) -> None:
    url = (await emulator.open_url())["url"]
    ws = await emulator.session.ws_connect(url, autoping=False)
    await ws.receive()  # hello
    response = await emulator.http.post(f"{emulator.url}/_control/socket/drop")
    [connection] = emulator.server.connections()
    assert response.json() == {"dropped": [connection.id]}
    message = await ws.receive(timeout=5)
    assert message.type in (WSMsgType.CLOSED, WSMsgType.ERROR), "no CLOSE frame: the TCP stream just ends"
    assert (connection.state, connection.close_reason) == ("closed", "dropped")
    assert (await emulator.send(type="events_api", payload={})).status_code == 409


async def test_a_connection_dying_before_the_ack_is_502(emulator: Emulator) -> None:
    app = await emulator.connect()
    app.acking = False
    sending = asyncio.create_task(emulator.send(type="slash_commands", payload={}, timeout=10))
    await asyncio.wait_for(app.arrived.wait(), 5)
    await emulator.http.post(f"{emulator.url}/_control/socket/drop")
    response = await sending
    assert response.status_code == 502
    assert response.json()["error"] == "connection_lost"


async def test_connections_lists_each_connection_with_its_traffic(emulator: Emulator) -> None:
    app = await emulator.connect()
    await emulator.send(type="events_api", payload={})
    await app.close()
    emulator.apps.remove(app)
    await emulator.server.wait_until(lambda s: not s.open_connections(), timeout=5)
    body = (await emulator.http.get(f"{emulator.url}/_control/socket/connections")).json()
    [connection] = body["connections"]
    assert body["open"] == 0
    assert connection["state"] == "closed" and connection["close_reason"] == "closed (1000)"
    assert (connection["envelopes_sent"], connection["acks_received"]) == (1, 1)


async def test_connections_can_wait_for_a_new_connection(emulator: Emulator) -> None:
    waiting = asyncio.create_task(
        emulator.http.get(f"{emulator.url}/_control/socket/connections", params={"opened": 1, "timeout": 5})
    )
    await emulator.connect()
    response = await waiting
    assert response.status_code == 200 and response.json()["open"] == 1
    too_many = await emulator.http.get(
        f"{emulator.url}/_control/socket/connections", params={"opened": 2, "timeout": 0.05}
    )
    assert too_many.status_code == 504


async def test_shutting_the_emulator_down_closes_sockets_as_going_away() -> None:
    app = create_app()
    runner, url = await start_app(app)
    async with httpx.AsyncClient() as http, aiohttp.ClientSession() as session:
        opened = await http.post(
            f"{url}/api/apps.connections.open", headers={"Authorization": f"Bearer {DEFAULT_APP_TOKEN}"}
        )
        ws = await session.ws_connect(opened.json()["url"])
        await ws.receive()  # hello
        await runner.cleanup()
        message = await ws.receive(timeout=5)
        assert (message.type, message.data) == (WSMsgType.CLOSE, 1001)
        await ws.close()


# -- SocketModeDriver --------------------------------------------------------------------------


@pytest.fixture
async def driver(emulator: Emulator) -> AsyncIterator[SocketModeDriver]:
    async with SocketModeDriver(emulator.url, ack_timeout=5) as driver:
        yield driver


async def test_driver_sends_a_slash_command_as_slack_does_and_shows_its_reply(
    emulator: Emulator, driver: SocketModeDriver
) -> None:
    app = await emulator.connect(reply=lambda _: {"response_type": "ephemeral", "text": "Usage: /promote"})
    result = await driver.slash_command("U_REQ", "/promote", "orders-edi to prod")
    [envelope] = app.envelopes
    assert envelope["type"] == "slash_commands" and envelope["accepts_response_payload"] is True
    payload = envelope["payload"]
    assert (payload["command"], payload["text"], payload["user_id"]) == (
        "/promote",
        "orders-edi to prod",
        "U_REQ",
    )
    assert payload["response_url"].endswith(f"/_response_url/{result.response_url_id}")
    assert payload["trigger_id"] == result.trigger_id
    assert result.status == 200 and result.json() == {"response_type": "ephemeral", "text": "Usage: /promote"}
    assert [m["text"] for m in await driver.ephemeral("U_REQ")] == ["Usage: /promote"]


async def test_driver_sends_a_block_action_as_an_interactive_envelope(
    emulator: Emulator, driver: SocketModeDriver
) -> None:
    app = await emulator.connect()
    result = await driver.block_action(
        "U_APP1", message_ts="1.000001", channel_id="C_APPROVALS", action_id="approve", value="7"
    )
    [envelope] = app.envelopes
    assert envelope["type"] == "interactive" and envelope["accepts_response_payload"] is False
    assert envelope["payload"]["type"] == "block_actions"
    assert envelope["payload"]["actions"][0]["action_id"] == "approve"
    assert result.status == 200 and result.body == b""


async def test_driver_sends_events_with_their_retry_number(
    emulator: Emulator, driver: SocketModeDriver
) -> None:
    app = await emulator.connect()
    await driver.app_home_opened("U_REQ", retry_num=1)
    [envelope] = app.envelopes
    assert envelope["type"] == "events_api" and envelope["payload"]["event"]["type"] == "app_home_opened"
    assert (envelope["retry_attempt"], envelope["retry_reason"]) == (1, "http_timeout")


async def test_driver_reports_an_unacknowledged_request(emulator: Emulator) -> None:
    app = await emulator.connect()
    app.acking = False
    async with SocketModeDriver(emulator.url, ack_timeout=0.05) as driver:
        result = await driver.slash_command("U_REQ", "/promote")
        assert result.status == 504 and result.json()["error"] == "ack_timeout"
        assert await driver.responses(str(result.response_url_id)) == []


async def test_driver_refuses_http_only_options(emulator: Emulator, driver: SocketModeDriver) -> None:
    with pytest.raises(TypeError):
        await driver.slash_command("U_REQ", "/promote", signature="v0=forged")
    with pytest.raises(TypeError):
        await driver.send_raw(b"token=x")


async def test_driver_controls_the_connection(emulator: Emulator, driver: SocketModeDriver) -> None:
    await emulator.connect()
    [connection] = await driver.connections(opened=1)
    assert await driver.disconnect("refresh_requested") == [connection["id"]]
    assert await driver.drop() == [connection["id"]]
    assert [c["state"] for c in await driver.connections()] == ["closed"]


def test_socket_mode_is_served_by_the_emulator_app_itself() -> None:
    paths = {resource.canonical for resource in create_app().router.resources()}
    assert {"/api/apps.connections.open", "/_socket/{id}", "/_control/socket/send"} <= paths
