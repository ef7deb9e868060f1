from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from aiohttp import web
from slack_sdk.web.async_client import AsyncWebClient

from bot.domain.requests import FrozenClock
from bot.emulators.slack import create_app
from bot.emulators.slack_control import workspace_of
from bot.emulators.slack_seed import DEFAULT_BOT_TOKEN
from bot.emulators.slack_state import SlackWorkspace
from connectors.emulators.faults import start_app


@dataclass
class SlackEmulator:
    url: str
    app: web.Application
    client: AsyncWebClient

    @property
    def workspace(self) -> SlackWorkspace:
        return workspace_of(self.app)


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture
async def slack(clock: FrozenClock) -> AsyncIterator[SlackEmulator]:
    app = create_app(clock=lambda: clock().timestamp())
    runner, url = await start_app(app)
    client = AsyncWebClient(token=DEFAULT_BOT_TOKEN, base_url=url + "/api/")
    yield SlackEmulator(url, app, client)
    await runner.cleanup()
