"""Plays Slack's side towards a bot in Socket Mode: the SlackDriver's requests, sent as envelopes.

``SocketModeDriver`` is a ``SlackDriver`` whose requests travel through the Slack emulator's
Socket Mode server instead of signed HTTP: every helper (``slash_command``, ``block_action``,
``view_submission``, ``home_block_action``, ``app_home_opened``) builds exactly the payload
SlackDriver builds, registers the same trigger_id and response_url, and applies the bot's answer
the same way; only the delivery differs. A slash command becomes a ``slash_commands`` envelope,
an interaction an ``interactive`` one, an event an ``events_api`` one; the emulator waits for the
bot's ack and the ack's payload plays the part of the HTTP answer's body.

``DriverResult.status`` is 200 once the bot acked; otherwise the emulator's control status: 409
(no open connection), 504 (no ack within ``ack_timeout``), 502 (the connection died first).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from typing import Any, Literal

import httpx

from bot.emulators.slack_driver import DriverResult, SlackDriver, _Tampering
from bot.emulators.slack_socket import ACK_TIMEOUT_SECONDS, DisconnectReason, EnvelopeType

__all__ = ["SocketModeDriver"]

_JSON = "application/json"
_FORM = "application/x-www-form-urlencoded"

Json = dict[str, Any]


class SocketModeDriver(SlackDriver):
    """Sends Slack's requests to a Socket Mode bot through the emulator at ``emulator_url``."""

    def __init__(
        self,
        emulator_url: str,
        team_id: str = "T0001",
        clock: Callable[[], float] = time.time,
        *,
        client: httpx.AsyncClient | None = None,
        ack_timeout: float = ACK_TIMEOUT_SECONDS,
    ) -> None:
        emulator_url = emulator_url.rstrip("/")
        # Socket Mode has no request signatures: the WebSocket itself is authenticated.
        super().__init__(
            f"{emulator_url}/_control/socket/send", "", emulator_url, team_id, clock, client=client
        )
        self.ack_timeout = ack_timeout

    async def send_envelope(
        self,
        type: EnvelopeType,
        payload: Json,
        *,
        retry_attempt: int | None = None,
        retry_reason: str | None = None,
    ) -> DriverResult:
        """Deliver an arbitrary envelope (for payloads the helpers do not build) and wait for its ack."""
        return await self._deliver(type, payload, retry_attempt=retry_attempt, retry_reason=retry_reason)

    async def send_raw(
        self,
        body: bytes,
        content_type: str = _FORM,
        *,
        signature: str | None = None,
        timestamp_offset: float = 0.0,
        headers: Mapping[str, str] | None = None,
    ) -> DriverResult:
        """Not available: Socket Mode carries JSON envelopes, not HTTP bodies (use send_envelope)."""
        raise TypeError("Socket Mode carries JSON envelopes, not HTTP bodies; use send_envelope()")

    # -- the connection, as the emulator sees it ---------------------------------------------

    async def connections(self, *, opened: int = 0, timeout: float = 5.0) -> list[Json]:
        """Every connection so far; with ``opened`` waits until that many were accepted and one is open."""
        params = {"opened": str(opened), "timeout": str(timeout)} if opened else None
        result = await self._control("GET", "/_control/socket/connections", params=params)
        return list(result["connections"])

    async def disconnect(self, reason: DisconnectReason = "refresh_requested") -> list[str]:
        """Send Slack's disconnect message to every open connection; returns their ids."""
        result = await self._control("POST", "/_control/socket/disconnect", json={"reason": reason})
        return list(result["sent_to"])

    async def drop(self) -> list[str]:
        """Abort every open connection without a close frame; returns their ids."""
        result = await self._control("POST", "/_control/socket/drop")
        return list(result["dropped"])

    # -- plumbing ------------------------------------------------------------------------------

    async def _send(
        self,
        body: bytes,
        content_type: str,
        sent: Json,
        tampering: _Tampering,
        *,
        response_url_id: str | None = None,
        trigger_id: str | None = None,
    ) -> DriverResult:
        # SlackDriver's one delivery point: everything above it (payloads, trigger ids,
        # response URLs, applying the answer) is shared with HTTP mode.
        if tampering.signature is not None or tampering.timestamp_offset or tampering.extra_headers:
            raise TypeError("Socket Mode has no request signature, timestamp or headers to tamper with")
        retry_attempt = tampering.retry_num
        return await self._deliver(
            _envelope_type(body, content_type),
            sent,
            retry_attempt=retry_attempt,
            retry_reason=tampering.retry_reason if retry_attempt is not None else None,
            response_url_id=response_url_id,
            trigger_id=trigger_id,
        )

    async def _deliver(
        self,
        type: EnvelopeType,
        payload: Json,
        *,
        retry_attempt: int | None = None,
        retry_reason: str | None = None,
        response_url_id: str | None = None,
        trigger_id: str | None = None,
    ) -> DriverResult:
        request: Json = {"type": type, "payload": payload, "timeout": self.ack_timeout}
        if retry_attempt is not None:
            request |= {"retry_attempt": retry_attempt, "retry_reason": retry_reason or ""}
        started = time.perf_counter()
        response = await self._client.post(self.bot_url, json=request)
        elapsed = time.perf_counter() - started
        if response.status_code != 200:
            return DriverResult(
                status=response.status_code,
                headers=response.headers,
                body=response.content,
                sent=payload,
                elapsed=elapsed,
                response_url_id=response_url_id,
                trigger_id=trigger_id,
            )
        ack_payload = response.json().get("payload")
        # The ack's payload is what an HTTP answer's JSON body would have been.
        return DriverResult(
            status=200,
            headers=httpx.Headers({"content-type": _JSON} if ack_payload is not None else {}),
            body=json.dumps(ack_payload).encode() if ack_payload is not None else b"",
            sent=payload,
            elapsed=elapsed,
            response_url_id=response_url_id,
            trigger_id=trigger_id,
        )


def _envelope_type(body: bytes, content_type: str) -> Literal["slash_commands", "interactive", "events_api"]:
    if content_type.startswith(_JSON):
        return "events_api"
    # Interactions travel as a single form field, payload=<JSON>; slash commands as plain fields.
    return "interactive" if body.startswith(b"payload=") else "slash_commands"
