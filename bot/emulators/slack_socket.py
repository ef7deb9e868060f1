"""Socket Mode for the Slack emulator: apps.connections.open, the WebSocket, and test controls.

Speaks Slack's Socket Mode protocol as documented and as ``slack_sdk.socket_mode`` implements it:

    POST /api/apps.connections.open        app-level token (``xapp-``) -> {"ok", "url": "ws://.../_socket/<id>"}
                                           (Slack returns wss://; each URL admits one connection)
    GET  /_socket/{id}                     the WebSocket: {"type": "hello", ...} on connect, then
                                           envelopes {"envelope_id", "type", "payload",
                                           "accepts_response_payload", ["retry_attempt", "retry_reason"]};
                                           the app acks with {"envelope_id", "payload"?}. WebSocket
                                           pings are answered with pongs carrying the same data.

Control routes for tests and the demo (never authenticated, never faulted):

    POST /_control/socket/send             {"type", "payload", "retry_attempt"?, "retry_reason"?,
                                           "accepts_response_payload"?, "timeout"?} -> delivers an
                                           envelope on the newest open connection and waits for the
                                           ack: 200 {"envelope_id", "connection_id", "payload"};
                                           409 no open connection, 504 no ack in time, 502 the
                                           connection died first
    POST /_control/socket/disconnect       {"reason": "refresh_requested"|"warning"|"link_disabled"}
                                           sends Slack's disconnect message to every open connection
    POST /_control/socket/drop             aborts every connection's TCP stream without a close
                                           frame, as a dead network path would
    GET  /_control/socket/connections      every connection so far, oldest first; with
                                           ``?opened=N&timeout=S`` waits until N connections were
                                           ever accepted and one is open (504 if not within S)
"""

from __future__ import annotations

import asyncio
import itertools
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from aiohttp import WSMsgType, web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bot.emulators.slack_records import SlackMethodError

__all__ = [
    "ACK_TIMEOUT_SECONDS",
    "DEFAULT_APP_TOKEN",
    "SOCKET_MODE",
    "DisconnectReason",
    "EnvelopeType",
    "SocketAck",
    "SocketConnection",
    "SocketModeError",
    "SocketModeServer",
    "add_socket_mode_routes",
    "socket_mode_of",
]

DEFAULT_APP_TOKEN = "xapp-1-A_OPSGATE-1-opsgate-emulator-app-token"
# Slack's deadline to acknowledge an envelope; after it the user sees an error.
ACK_TIMEOUT_SECONDS = 3.0
# Longest a control request may wait for connections or an ack, so a forgotten test cannot hang.
_MAX_CONTROL_WAIT_SECONDS = 30.0

EnvelopeType = Literal["slash_commands", "interactive", "events_api"]
DisconnectReason = Literal["refresh_requested", "warning", "link_disabled"]
# Interactions whose ack may carry a response (response_action, options).
_INTERACTIONS_WITH_RESPONSE = frozenset({"view_submission", "block_suggestion"})

Json = dict[str, Any]


class SocketModeError(Exception):
    """A control request the Socket Mode server cannot carry out (``status`` is its HTTP status)."""

    def __init__(self, error: str, *, status: int, envelope_id: str | None = None) -> None:
        super().__init__(error)
        self.error = error
        self.status = status
        self.envelope_id = envelope_id

    def body(self) -> Json:
        """The JSON body of the control route's error answer."""
        body: Json = {"error": self.error}
        if self.envelope_id is not None:
            body["envelope_id"] = self.envelope_id
        return body


class SocketConnection(BaseModel):
    """One WebSocket connection as the control routes describe it."""

    id: str
    state: Literal["open", "closed"] = "open"
    opened_at: float
    closed_at: float | None = None
    close_reason: str | None = None
    envelopes_sent: int = 0
    acks_received: int = 0
    disconnects_sent: list[str] = Field(default_factory=list)


class SocketAck(BaseModel):
    """The app's acknowledgement of one envelope."""

    envelope_id: str
    connection_id: str
    payload: Json | None = None


class _SendRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: EnvelopeType
    payload: Json
    retry_attempt: int | None = Field(None, ge=0)
    retry_reason: str | None = None
    accepts_response_payload: bool | None = None
    timeout: float = Field(ACK_TIMEOUT_SECONDS, gt=0, le=_MAX_CONTROL_WAIT_SECONDS)


@dataclass
class _Live:
    record: SocketConnection
    ws: web.WebSocketResponse
    request: web.Request
    pending: dict[str, asyncio.Future[Json | None]] = field(default_factory=dict)


class SocketModeServer:
    """Socket Mode state: issued URLs, live connections, envelopes waiting for their ack."""

    def __init__(self, *, app_token: str, app_id: str, clock: Callable[[], float]) -> None:
        self.app_token = app_token
        self.app_id = app_id
        self.clock = clock
        self._tickets: set[str] = set()
        self._connections: dict[str, SocketConnection] = {}
        self._live: dict[str, _Live] = {}
        self._changed = asyncio.Condition()
        self._serial = itertools.count(1)

    # -- apps.connections.open and the WebSocket -------------------------------------------

    def open_connection_url(self, token: str | None, origin: str) -> str:
        """A single-use WebSocket URL for the app whose app-level token is ``token``."""
        if token is None:
            raise SlackMethodError("not_authed")
        if not token.startswith("xapp-"):
            # Slack's answer when a bot or user token calls an app-level method.
            raise SlackMethodError("not_allowed_token_type")
        if token != self.app_token:
            raise SlackMethodError("invalid_auth")
        ticket = uuid.uuid4().hex
        self._tickets.add(ticket)
        return f"{origin.replace('http', 'ws', 1)}/_socket/{ticket}"

    async def serve(self, request: web.Request) -> web.StreamResponse:
        """Run one Socket Mode connection until either side closes it."""
        ticket = request.match_info["id"]
        if ticket not in self._tickets:
            return web.json_response({"ok": False, "error": "invalid_ticket"}, status=401)
        self._tickets.discard(ticket)
        # autoping: pings from the app are answered with a pong echoing their data, which
        # slack_sdk uses to notice a stale connection.
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        connection_id = f"{next(self._serial)}-{ticket[:8]}"
        live = _Live(SocketConnection(id=connection_id, opened_at=self.clock()), ws, request)
        self._connections[connection_id] = live.record
        self._live[connection_id] = live
        try:
            await ws.send_json(
                {
                    "type": "hello",
                    "num_connections": len(self._live),
                    "debug_info": {
                        "host": "opsgate-slack-emulator",
                        "build_number": 1,
                        "approximate_connection_time": 18060,
                    },
                    "connection_info": {"app_id": self.app_id},
                }
            )
            await self._notify()
            async for message in ws:
                if message.type == WSMsgType.TEXT:
                    self._receive(live, message.data)
        finally:
            await self._close_record(live, None if ws.close_code is None else f"closed ({ws.close_code})")
        return ws

    def _receive(self, live: _Live, data: str) -> None:
        try:
            message = json.loads(data)
        except ValueError:
            return
        if not isinstance(message, dict):
            return
        envelope_id = message.get("envelope_id")
        waiter = live.pending.pop(envelope_id, None) if isinstance(envelope_id, str) else None
        if waiter is None:
            return  # an ack for an envelope that timed out, or noise: Slack ignores both
        live.record.acks_received += 1
        payload = message.get("payload")
        if not waiter.done():
            waiter.set_result(payload if isinstance(payload, dict) else None)

    async def _close_record(self, live: _Live, reason: str | None) -> None:
        if live.record.state == "closed":
            return
        live.record.state = "closed"
        live.record.closed_at = self.clock()
        live.record.close_reason = reason or "connection lost"
        self._live.pop(live.record.id, None)
        for waiter in live.pending.values():
            if not waiter.done():
                waiter.set_exception(SocketModeError("connection_lost", status=502))
        live.pending.clear()
        await self._notify()

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    # -- what tests do -----------------------------------------------------------------------

    def connections(self) -> list[SocketConnection]:
        """Every connection accepted so far, oldest first."""
        return list(self._connections.values())

    def open_connections(self) -> list[SocketConnection]:
        """The connections still open, oldest first."""
        return [live.record for live in self._live.values()]

    async def wait_until(self, predicate: Callable[[SocketModeServer], bool], *, timeout: float) -> bool:
        """Wait until ``predicate(self)`` holds after a connection opens or closes; False on timeout."""
        async with self._changed:
            try:
                await asyncio.wait_for(self._changed.wait_for(lambda: predicate(self)), timeout)
            except TimeoutError:
                return False
        return True

    async def send(
        self,
        type: EnvelopeType,
        payload: Json,
        *,
        retry_attempt: int | None = None,
        retry_reason: str | None = None,
        accepts_response_payload: bool | None = None,
        timeout: float = ACK_TIMEOUT_SECONDS,
    ) -> SocketAck:
        """Deliver an envelope on the newest open connection and wait up to ``timeout`` for its ack."""
        if not self._live:
            raise SocketModeError("no_open_connection", status=409)
        live = list(self._live.values())[-1]
        envelope_id = str(uuid.uuid4())
        envelope: Json = {
            "envelope_id": envelope_id,
            "type": type,
            "payload": payload,
            "accepts_response_payload": (
                _accepts_response_payload(type, payload)
                if accepts_response_payload is None
                else accepts_response_payload
            ),
        }
        if type == "events_api" or retry_attempt is not None:
            # Slack always numbers Events API deliveries; 0 is the first attempt.
            envelope["retry_attempt"] = retry_attempt or 0
            envelope["retry_reason"] = retry_reason or ""
        waiter: asyncio.Future[Json | None] = asyncio.get_running_loop().create_future()
        live.pending[envelope_id] = waiter
        try:
            await live.ws.send_json(envelope)
        except (ConnectionError, RuntimeError):
            live.pending.pop(envelope_id, None)
            raise SocketModeError("connection_lost", status=502, envelope_id=envelope_id) from None
        live.record.envelopes_sent += 1
        try:
            ack_payload = await asyncio.wait_for(asyncio.shield(waiter), timeout)
        except TimeoutError:
            live.pending.pop(envelope_id, None)
            raise SocketModeError("ack_timeout", status=504, envelope_id=envelope_id) from None
        except SocketModeError as error:
            raise SocketModeError(error.error, status=error.status, envelope_id=envelope_id) from None
        return SocketAck(envelope_id=envelope_id, connection_id=live.record.id, payload=ack_payload)

    async def disconnect(self, reason: DisconnectReason) -> list[str]:
        """Send Slack's ``disconnect`` message to every open connection; returns their ids."""
        sent = []
        for live in list(self._live.values()):
            message = {
                "type": "disconnect",
                "reason": reason,
                "debug_info": {"host": "opsgate-slack-emulator"},
            }
            try:
                await live.ws.send_json(message)
            except (ConnectionError, RuntimeError):
                continue
            live.record.disconnects_sent.append(reason)
            sent.append(live.record.id)
        return sent

    async def drop(self) -> list[str]:
        """Abort every open connection without a close frame; returns their ids."""
        dropped = []
        for live in list(self._live.values()):
            transport = live.request.transport
            if transport is not None:
                transport.abort()
            await self._close_record(live, "dropped")
            dropped.append(live.record.id)
        return dropped

    async def close(self) -> None:
        """Close every connection as a server going away does (on shutdown)."""
        for live in list(self._live.values()):
            await live.ws.close(code=1001, message=b"server shutting down")
            await self._close_record(live, "server shutting down")


def _accepts_response_payload(type: EnvelopeType, payload: Json) -> bool:
    if type == "slash_commands":
        return True
    return type == "interactive" and payload.get("type") in _INTERACTIONS_WITH_RESPONSE


# -- routes --------------------------------------------------------------------------------------

SOCKET_MODE = web.AppKey("opsgate_slack_socket_mode", SocketModeServer)


def socket_mode_of(app: web.Application) -> SocketModeServer:
    """The Socket Mode server of an emulator app (for in-process tests and the demo)."""
    return app[SOCKET_MODE]


def add_socket_mode_routes(
    app: web.Application, *, app_token: str, app_id: str, clock: Callable[[], float]
) -> SocketModeServer:
    """Register apps.connections.open, the WebSocket route and the socket control routes on ``app``."""
    server = SocketModeServer(app_token=app_token, app_id=app_id, clock=clock)
    app[SOCKET_MODE] = server

    async def close_sockets(app: web.Application) -> None:
        await server.close()

    app.on_shutdown.append(close_sockets)
    # A plain route: aiohttp matches it before the generic /api/{method} of the Web API.
    app.router.add_route("*", "/api/apps.connections.open", _apps_connections_open)
    app.router.add_get("/_socket/{id}", _serve_socket)
    app.router.add_post("/_control/socket/send", _post_send)
    app.router.add_post("/_control/socket/disconnect", _post_disconnect)
    app.router.add_post("/_control/socket/drop", _post_drop)
    app.router.add_get("/_control/socket/connections", _get_connections)
    return server


async def _apps_connections_open(request: web.Request) -> web.Response:
    server = socket_mode_of(request.app)
    token: str | None = None
    authorization = request.headers.get("Authorization", "")
    if authorization.startswith("Bearer "):
        token = authorization.removeprefix("Bearer ").strip() or None
    else:
        values: dict[str, Any] = dict(request.query)
        if request.method == "POST" and request.body_exists:
            values.update(await request.post())
        token = str(values["token"]) if values.get("token") else None
    try:
        url = server.open_connection_url(token, str(request.url.origin()))
    except SlackMethodError as error:
        return web.json_response(error.body(), status=error.status, headers=error.headers())
    return web.json_response({"ok": True, "url": url})


async def _serve_socket(request: web.Request) -> web.StreamResponse:
    return await socket_mode_of(request.app).serve(request)


def _control_error(error: SocketModeError) -> web.Response:
    return web.json_response(error.body(), status=error.status)


async def _json_object(request: web.Request) -> Json:
    try:
        body = await request.json() if request.body_exists else {}
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(
            text=json.dumps({"error": "body must be a JSON object"}), content_type="application/json"
        )
    return body


async def _post_send(request: web.Request) -> web.Response:
    try:
        spec = _SendRequest.model_validate(await _json_object(request))
    except ValidationError as error:
        return web.json_response({"error": f"bad envelope: {error}"}, status=400)
    try:
        ack = await socket_mode_of(request.app).send(
            spec.type,
            spec.payload,
            retry_attempt=spec.retry_attempt,
            retry_reason=spec.retry_reason,
            accepts_response_payload=spec.accepts_response_payload,
            timeout=spec.timeout,
        )
    except SocketModeError as error:
        return _control_error(error)
    return web.json_response(ack.model_dump(mode="json"))


async def _post_disconnect(request: web.Request) -> web.Response:
    reason = (await _json_object(request)).get("reason", "refresh_requested")
    if reason not in get_args(DisconnectReason):
        return web.json_response(
            {"error": f"reason must be one of {list(get_args(DisconnectReason))}"}, status=400
        )
    return web.json_response({"sent_to": await socket_mode_of(request.app).disconnect(reason)})


async def _post_drop(request: web.Request) -> web.Response:
    return web.json_response({"dropped": await socket_mode_of(request.app).drop()})


async def _get_connections(request: web.Request) -> web.Response:
    server = socket_mode_of(request.app)
    try:
        opened = int(request.query.get("opened", "0"))
        timeout = min(float(request.query.get("timeout", "5")), _MAX_CONTROL_WAIT_SECONDS)
    except ValueError:
        return web.json_response({"error": "opened and timeout must be numbers"}, status=400)
    if opened > 0:
        reached = await server.wait_until(
            lambda s: len(s.connections()) >= opened and bool(s.open_connections()), timeout=timeout
        )
        if not reached:
            return web.json_response({"error": f"fewer than {opened} connections opened"}, status=504)
    return web.json_response(
        {
            "connections": [c.model_dump(mode="json") for c in server.connections()],
            "open": len(server.open_connections()),
        }
    )
