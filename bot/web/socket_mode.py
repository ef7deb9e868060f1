"""Socket Mode (development, or when inbound HTTPS is impossible) with a keepalive watchdog.

Bolt's aiohttp socket client has been reported to go silent after idle periods (bolt-python
#1529, python-slack-sdk #1110 and #1446); the watchdog checks the connection on an interval and
reconnects when it is gone, so commands do not silently stop working.

``start()`` asks Slack for a connection URL itself before connecting: slack_sdk's ``connect()``
retries every failure forever, so a wrong or revoked app token would otherwise hang the start
with nothing but log lines.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import aiohttp
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError

__all__ = ["SocketModeRunner", "SocketModeStartError"]

log = logging.getLogger("opsgate.socket_mode")

APP_TOKEN_PREFIX = "xapp-"


class SocketModeStartError(RuntimeError):
    """Socket Mode could not start; the message says why and never contains the token."""


class SocketModeRunner:
    """Bolt's Socket Mode handler plus a watchdog that reconnects a lost connection.

    ``check_every`` is the watchdog's interval in seconds. The handler (and its aiohttp session)
    is created in ``start()``, so the runner may be built outside an event loop.
    """

    def __init__(self, app: AsyncApp, app_token: str, *, check_every: float = 30.0) -> None:
        if check_every <= 0:
            raise ValueError("check_every must be > 0")
        self._app = app
        self._app_token = app_token
        self._check_every = check_every
        self._handler: AsyncSocketModeHandler | None = None
        self._watchdog: asyncio.Task[None] | None = None
        self.reconnects = 0

    async def start(self) -> None:
        """Connect to Slack and start the watchdog; raises SocketModeStartError if Slack refuses."""
        if not self._app_token.startswith(APP_TOKEN_PREFIX):
            raise SocketModeStartError(
                "Socket Mode needs an app-level token (xapp-...); SLACK_APP_TOKEN holds another kind of token."
            )
        handler = AsyncSocketModeHandler(self._app, self._app_token)
        try:
            # Sets the URL connect() uses, so a refused token fails here instead of retrying forever.
            handler.client.wss_uri = await handler.client.issue_new_wss_url()
        except SlackApiError as error:
            await _close(handler)
            raise SocketModeStartError(
                f"Slack refused to open a Socket Mode connection ({error.response.get('error')}): "
                "check SLACK_APP_TOKEN and that Socket Mode is enabled for the app."
            ) from None
        except (aiohttp.ClientError, OSError) as error:
            await _close(handler)
            raise SocketModeStartError(
                f"Could not reach Slack to open a Socket Mode connection: {type(error).__name__}: {error}"
            ) from None
        self._handler = handler
        await handler.connect_async()  # type: ignore[no-untyped-call]  # bolt's adapter is untyped
        self._watchdog = asyncio.create_task(self._watch(), name="socket-mode-watchdog")

    async def is_connected(self) -> bool:
        """Whether the WebSocket is open and answering pings."""
        if self._handler is None:
            return False
        try:
            return bool(await self._handler.client.is_connected())
        except Exception:
            return False

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self._check_every)
            try:
                await self._check()
            except Exception as error:
                # Keep watching: a dead watchdog is the silent failure it exists to prevent.
                log.warning(
                    "Socket Mode reconnect failed", extra={"error": f"{type(error).__name__}: {error}"}
                )

    async def _check(self) -> None:
        handler = self._handler
        if handler is None or await self.is_connected():
            return
        client = handler.client
        try:
            # slack_sdk's own monitor and its `disconnect` handling reconnect under this lock too:
            # taking it and checking again means the watchdog never opens a second connection and
            # counts only the reconnects it made itself.
            async with client.connect_operation_lock:
                if await self.is_connected():
                    return
                log.warning(
                    "Socket Mode connection lost; reconnecting", extra={"reconnects": self.reconnects}
                )
                client.wss_uri = await client.issue_new_wss_url()
                await client.connect()  # type: ignore[no-untyped-call]  # slack_sdk is untyped here
        except SlackApiError as error:
            log.warning("Socket Mode reconnect refused", extra={"error": error.response.get("error")})
            return
        self.reconnects += 1
        log.info("Socket Mode reconnected", extra={"reconnects": self.reconnects})

    async def stop(self) -> None:
        """Stop the watchdog and close the connection (safe to call if start failed)."""
        if self._watchdog:
            self._watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watchdog
            self._watchdog = None
        if self._handler is not None:
            await _close(self._handler)
            self._handler = None


async def _close(handler: AsyncSocketModeHandler) -> None:
    await handler.close_async()  # type: ignore[no-untyped-call]  # bolt's adapter is untyped
