"""A running Canto emulator (API + OAuth on one app) and connectors wired to it with fake clocks."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp import web

from connectors.canto import CantoAssetRef, CantoConnector, CantoSettings
from connectors.emulators.canto import (
    DEFAULT_APP_ID,
    DEFAULT_APP_SECRET,
    CantoLibrary,
    CantoTokenLedger,
    canto_library_of,
    canto_tokens_of,
    create_app,
    seed_asset_id,
)
from connectors.emulators.faults import FaultInjector, FaultSpec, fault_injector_of, start_app
from connectors.http import HttpOptions

NOW = datetime(2025, 3, 10, 9, 0, tzinfo=UTC)
TOKEN_LIFETIME = 3600
SEEDED_ASSETS = 28


class MonotonicClock:
    """Shared by emulator (token expiry) and connector (token cache): tests move it forward."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class RecordingSleep:
    """Injected sleep: records delays and advances the monotonic clock instead of waiting."""

    monotonic: MonotonicClock
    delays: list[float] = field(default_factory=list)

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        self.monotonic.advance(seconds)
        await asyncio.sleep(0)


@dataclass
class CantoWorld:
    app: web.Application
    url: str
    monotonic: MonotonicClock
    sleep: RecordingSleep
    connectors: list[CantoConnector] = field(default_factory=list)

    now: datetime = NOW
    token_lifetime: int = TOKEN_LIFETIME
    seeded_assets: int = SEEDED_ASSETS

    def ref(self, name: str) -> CantoAssetRef:
        """The address of a seeded asset, by file name."""
        record = self.library.assets[seed_asset_id(name)]
        return CantoAssetRef(id=record.id, scheme=record.scheme, displayName=record.name)

    @property
    def library(self) -> CantoLibrary:
        return canto_library_of(self.app)

    @property
    def tokens(self) -> CantoTokenLedger:
        return canto_tokens_of(self.app)

    @property
    def faults(self) -> FaultInjector:
        return fault_injector_of(self.app)

    def fault(self, **spec: Any) -> None:
        self.faults.add(FaultSpec(**spec))

    def requests_to(self, path: str) -> list[dict[str, Any]]:
        """Logged requests whose path ends with `path`."""
        return [seen for seen in self.faults.requests if seen["path"].endswith(path)]

    def settings(self, **overrides: Any) -> CantoSettings:
        values: dict[str, Any] = {
            "base_url": self.url,
            "oauth_url": self.url,
            "app_id": DEFAULT_APP_ID,
            "app_secret": DEFAULT_APP_SECRET,
            "http": HttpOptions(max_retries=2, backoff_initial=0.5),
        }
        values.update(overrides)
        return CantoSettings(**values)

    def connector(self, *, now: Callable[[], datetime] = lambda: NOW, **overrides: Any) -> CantoConnector:
        connector = CantoConnector(
            self.settings(**overrides), sleep=self.sleep, monotonic=self.monotonic, now=now
        )
        self.connectors.append(connector)
        return connector


async def _world(**app_options: Any) -> tuple[CantoWorld, web.AppRunner]:
    monotonic = MonotonicClock()
    app = create_app(now=lambda: NOW, monotonic=monotonic, token_expires_in=TOKEN_LIFETIME, **app_options)
    runner, url = await start_app(app)
    return CantoWorld(app=app, url=url, monotonic=monotonic, sleep=RecordingSleep(monotonic)), runner


@pytest.fixture
async def world() -> AsyncIterator[CantoWorld]:
    world, runner = await _world()
    yield world
    for connector in world.connectors:
        await connector.aclose()
    await runner.cleanup()


@pytest.fixture
async def throttled_world() -> AsyncIterator[CantoWorld]:
    """An emulator that allows 2 requests, then 1 per second."""
    world, runner = await _world(rate_per_second=1.0, burst=2)
    yield world
    for connector in world.connectors:
        await connector.aclose()
    await runner.cleanup()


@pytest.fixture
def canto(world: CantoWorld) -> CantoConnector:
    return world.connector()
