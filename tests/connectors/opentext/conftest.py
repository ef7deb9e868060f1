"""A running OpenText emulator and connectors wired to it with injected clocks."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from aiohttp import web

from connectors.emulators.faults import fault_injector_of, start_app
from connectors.emulators.opentext import OpenTextState, create_app, opentext_state_of
from connectors.http import HttpOptions
from connectors.opentext import OpenTextConnector, OpenTextSettings, OtdsSettings

TENANT = "acme-integration"
SERVICE_CLIENT = ("opsgate-svc", "opsgate-svc-secret")
READONLY_CLIENT = ("opsgate-readonly", "opsgate-readonly-secret")
OTDS_USER = ("svc-opsgate", "otds-svc-password")


class WallClock:
    """The emulator's clock: tests move it forward instead of waiting."""

    def __init__(self) -> None:
        self.now = datetime(2025, 3, 10, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class MonotonicClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@dataclass
class RecordingSleep:
    """Injected sleep: records delays, lets other tasks run, advances the monotonic clock."""

    monotonic: MonotonicClock
    delays: list[float] = field(default_factory=list)

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        self.monotonic.now += seconds
        await asyncio.sleep(0)


@dataclass
class OpenTextWorld:
    app: web.Application
    url: str
    wall: WallClock
    monotonic: MonotonicClock
    sleep: RecordingSleep
    control: httpx.AsyncClient
    connectors: list[OpenTextConnector] = field(default_factory=list)

    @property
    def state(self) -> OpenTextState:
        return opentext_state_of(self.app)

    def settings(self, **overrides: Any) -> OpenTextSettings:
        values: dict[str, Any] = {
            "base_url": self.url,
            "tenant_id": TENANT,
            "client_id": SERVICE_CLIENT[0],
            "client_secret": SERVICE_CLIENT[1],
            "otds": OtdsSettings(base_url=self.url, user_name=OTDS_USER[0], password=OTDS_USER[1]),
            "http": HttpOptions(max_retries=2),
        }
        values.update(overrides)
        return OpenTextSettings(**values)

    def connector(self, **overrides: Any) -> OpenTextConnector:
        connector = OpenTextConnector(self.settings(**overrides), sleep=self.sleep, monotonic=self.monotonic)
        self.connectors.append(connector)
        return connector

    async def inject(self, **fault: Any) -> None:
        response = await self.control.post("/_control/faults", json=fault)
        assert response.status_code == 201, response.text

    def requests(self, path: str, method: str | None = None) -> int:
        """How many requests matching `path` (regex) the emulator received."""
        return fault_injector_of(self.app).count(path=path, method=method)

    def app_requests(self) -> list[dict[str, Any]]:
        """The emulator's request log (headers redacted)."""
        return list(fault_injector_of(self.app).requests)


@pytest.fixture
def emulator_options() -> dict[str, Any]:
    """Override in a test module to build the emulator differently."""
    return {}


@pytest.fixture
async def world(emulator_options: dict[str, Any]) -> AsyncIterator[OpenTextWorld]:
    wall = WallClock()
    monotonic = MonotonicClock()
    options: dict[str, Any] = {"clock": wall, "job_seconds_per_step": None, "rate_per_second": None}
    options.update(emulator_options)
    app = create_app(**options)
    runner, url = await start_app(app)
    async with httpx.AsyncClient(base_url=url) as control:
        world = OpenTextWorld(app, url, wall, monotonic, RecordingSleep(monotonic), control)
        yield world
        for connector in world.connectors:
            await connector.aclose()
    await runner.cleanup()


@pytest.fixture
def connector(world: OpenTextWorld) -> OpenTextConnector:
    return world.connector()
