"""A running iconik emulator, connectors wired to it, and a check of every call against the OpenAPI specs.

The connector's HTTP goes through `RecordingTransport`, which keeps each request exactly as sent
and each response as received. After every test, each recorded `/API/` request is validated
against iconik's published spec for its service (assets, auth, files, jobs, metadata, notifications),
and so is each 2xx response unless the test injected faults (`world.check_responses = False`).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web
from openapi_core import Config, OpenAPI
from openapi_core.datatypes import RequestParameters
from werkzeug.datastructures import Headers, ImmutableMultiDict

from connectors.emulators.faults import FaultInjector, FaultSpec, fault_injector_of, start_app
from connectors.emulators.iconik import (
    DEFAULT_AUTH_TOKEN,
    DEFAULT_JOB_STEPS,
    IconikDomain,
    create_app,
    iconik_domain_of,
)
from connectors.http import HttpOptions
from connectors.iconik import IconikConnector, IconikSettings

NOW = datetime(2025, 3, 10, 9, 0, tzinfo=UTC)
# A real App-ID is the app's uuid (token answers carry it typed as one in the auth spec).
APP_ID = "5f3b2c1d-8e4a-4b6c-9d0e-1a2b3c4d5e6f"
SPEC_DIR = Path(__file__).parent / "specs"
SPEC_HOST = "http://iconik.spec"
SERVICES = ("assets", "auth", "files", "jobs", "metadata", "notifications")
_DROPPED_RESPONSE_HEADERS = {"content-encoding", "transfer-encoding", "content-length"}


@cache
def iconik_spec(service: str) -> OpenAPI:
    """iconik's published spec for one service, served from our fixed test host."""
    spec = json.loads((SPEC_DIR / f"{service}.json").read_text())
    spec["servers"] = [{"url": f"{SPEC_HOST}/API/{service}"}]
    # The published specs are taken as given; validating the specs themselves takes seconds.
    return OpenAPI.from_dict(spec, config=Config(spec_validator_cls=None))


@dataclass
class Exchange:
    """One request as sent and its response as received."""

    request: httpx.Request
    status: int
    headers: httpx.Headers
    body: bytes


class SpecRequest:
    """An httpx request seen through openapi-core's Request protocol."""

    def __init__(self, request: httpx.Request) -> None:
        self.host_url = SPEC_HOST
        self.path = request.url.path
        self.method = request.method.lower()
        self.body = request.content or None
        self.content_type = request.headers.get("Content-Type", "")
        self.parameters = RequestParameters(
            query=ImmutableMultiDict(list(request.url.params.multi_items())),
            header=Headers(list(request.headers.items())),
            cookie=ImmutableMultiDict(),
        )


class SpecResponse:
    """A recorded response seen through openapi-core's Response protocol."""

    def __init__(self, exchange: Exchange) -> None:
        self.status_code = exchange.status
        self.headers = Headers(list(exchange.headers.items()))
        self.content_type = exchange.headers.get("Content-Type", "")
        self.data = exchange.body or None


def service_of(path: str) -> str | None:
    parts = path.split("/")
    return parts[2] if len(parts) > 2 and parts[1] == "API" and parts[2] in SERVICES else None


def check_against_spec(exchange: Exchange, *, response: bool = True) -> None:
    """Raise openapi-core's error if the request (or the 2xx response) breaks iconik's spec."""
    service = service_of(exchange.request.url.path)
    if service is None:
        return
    spec = iconik_spec(service)
    spec_request = SpecRequest(exchange.request)
    spec.validate_request(spec_request)
    if response and 200 <= exchange.status < 300 and exchange.body:
        spec.validate_response(spec_request, SpecResponse(exchange))


class ContractCheck:
    """Lets tests run the contract check on hand-made exchanges (to prove it can fail)."""

    check = staticmethod(check_against_spec)

    @staticmethod
    def exchange(
        method: str,
        path: str,
        *,
        body: object = None,
        status: int = 200,
        answer: object = None,
        headers: dict[str, str] | None = None,
    ) -> Exchange:
        sent_headers = {"App-ID": "app", "Auth-Token": "token"} if headers is None else headers
        request = httpx.Request(method, f"{SPEC_HOST}{path}", headers=sent_headers, json=body)
        answer_body = json.dumps(answer).encode() if answer is not None else b""
        return Exchange(request, status, httpx.Headers({"Content-Type": "application/json"}), answer_body)


class RecordingTransport(httpx.AsyncBaseTransport):
    """Real HTTP, with a copy of every exchange kept for the contract check."""

    def __init__(self) -> None:
        self._inner = httpx.AsyncHTTPTransport()
        self.exchanges: list[Exchange] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await request.aread()
        response = await self._inner.handle_async_request(request)
        body = await response.aread()
        self.exchanges.append(Exchange(request, response.status_code, response.headers, body))
        headers = [(k, v) for k, v in response.headers.items() if k.lower() not in _DROPPED_RESPONSE_HEADERS]
        return httpx.Response(response.status_code, headers=headers, content=body, request=request)

    async def aclose(self) -> None:
        await self._inner.aclose()


class MonotonicClock:
    def __init__(self) -> None:
        self.now = 500.0

    def __call__(self) -> float:
        return self.now


@dataclass
class RecordingSleep:
    """Injected sleep: records delays and advances the monotonic clock instead of waiting."""

    monotonic: MonotonicClock
    delays: list[float] = field(default_factory=list)

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        self.monotonic.now += seconds
        await asyncio.sleep(0)


@dataclass
class IconikWorld:
    app: web.Application
    url: str
    monotonic: MonotonicClock
    sleep: RecordingSleep
    transport: RecordingTransport
    connectors: list[IconikConnector] = field(default_factory=list)
    check_responses: bool = True
    now: datetime = NOW

    @property
    def domain(self) -> IconikDomain:
        return iconik_domain_of(self.app)

    @property
    def faults(self) -> FaultInjector:
        return fault_injector_of(self.app)

    def fault(self, **spec: Any) -> None:
        self.check_responses = False  # injected answers are not iconik's
        self.faults.add(FaultSpec(**spec))

    def requests_to(self, path: str, method: str | None = None) -> list[dict[str, Any]]:
        """Logged requests whose path ends with `path`."""
        return [
            seen
            for seen in self.faults.requests
            if seen["path"].endswith(path) and (method is None or seen["method"] == method)
        ]

    def asset_id(self, title: str) -> str:
        return next(a["id"] for a in self.domain.assets.values() if a["title"] == title)

    def storage_id(self, name: str) -> str:
        return self.domain.storage_named(name)["id"]

    def view_id(self, name: str) -> str:
        return next(v["id"] for v in self.domain.views.values() if v["name"] == name)

    def collection_id(self, title: str) -> str:
        return next(c["id"] for c in self.domain.collections.values() if c["title"] == title)

    def settings(self, **overrides: Any) -> IconikSettings:
        values: dict[str, Any] = {
            "base_url": self.url,
            "app_id": APP_ID,
            "auth_token": DEFAULT_AUTH_TOKEN,
            "http": HttpOptions(max_retries=2, backoff_initial=0.5),
        }
        values.update(overrides)
        return IconikSettings(**values)

    def connector(self, **overrides: Any) -> IconikConnector:
        connector = IconikConnector(
            self.settings(**overrides), transport=self.transport, sleep=self.sleep, monotonic=self.monotonic
        )
        self.connectors.append(connector)
        return connector


async def _running_world(job_steps: tuple[str, ...], **app_options: Any) -> AsyncIterator[IconikWorld]:
    monotonic = MonotonicClock()
    app = create_app(app_id=APP_ID, now=lambda: NOW, job_steps=job_steps, monotonic=monotonic, **app_options)
    runner, url = await start_app(app)
    world = IconikWorld(
        app=app, url=url, monotonic=monotonic, sleep=RecordingSleep(monotonic), transport=RecordingTransport()
    )
    try:
        yield world
    finally:
        for connector in world.connectors:
            await connector.aclose()
        await world.transport.aclose()
        await runner.cleanup()
    for exchange in world.transport.exchanges:
        check_against_spec(exchange, response=world.check_responses)


@pytest.fixture
async def world() -> AsyncIterator[IconikWorld]:
    async for world in _running_world(DEFAULT_JOB_STEPS):
        yield world


@pytest.fixture
async def slow_job_world() -> AsyncIterator[IconikWorld]:
    """Jobs stay READY for 20 polls before finishing."""
    async for world in _running_world(("READY",) * 20 + ("FINISHED",)):
        yield world


@pytest.fixture
async def throttled_world() -> AsyncIterator[IconikWorld]:
    """An emulator that allows a burst of 2 calls, then 1 per second."""
    async for world in _running_world(DEFAULT_JOB_STEPS, rate_per_second=1.0, burst=2):
        yield world


@pytest.fixture
def iconik(world: IconikWorld) -> IconikConnector:
    return world.connector()


@pytest.fixture
def contract() -> ContractCheck:
    return ContractCheck()
