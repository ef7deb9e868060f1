"""Socket Mode (development, or when inbound HTTPS is impossible) with a keepalive watchdog.

Bolt's aiohttp socket client has been reported to go silent after idle periods (bolt-python
#1529, python-slack-sdk #1110 and #1446); the watchdog checks the connection on an interval and
reconnects when it is gone, so commands do not silently stop working.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp

__all__ = ["SocketModeRunner"]

log = logging.getLogger("opsgate.socket_mode")


class SocketModeRunner:
    def __init__(self, app: AsyncApp, app_token: str, *, check_every: float = 30.0) -> None:
        self._handler = AsyncSocketModeHandler(app, app_token)
        self._check_every = check_every
        self._watchdog: asyncio.Task[None] | None = None
        self.reconnects = 0

    async def start(self) -> None:
        await self._handler.connect_async()
        self._watchdog = asyncio.create_task(self._watch(), name="socket-mode-watchdog")

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self._check_every)
            try:
                connected = await self._handler.client.is_connected()
            except Exception:
                connected = False
            if not connected:
                self.reconnects += 1
                log.warning(
                    "Socket Mode connection lost; reconnecting", extra={"reconnects": self.reconnects}
                )
                with contextlib.suppress(Exception):
                    await self._handler.client.connect_to_new_endpoint(force=True)

    async def stop(self) -> None:
        if self._watchdog:
            self._watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watchdog
        await self._handler.close_async()
