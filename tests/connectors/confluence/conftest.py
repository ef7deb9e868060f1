"""Fixtures: Confluence emulators on loopback, connectors wired to them, and a spec check.

Every connector made by the ``connect`` fixture sends its traffic through a recording httpx
transport (real HTTP to the emulator). When the test ends, each recorded exchange is checked
against Atlassian's OpenAPI documents in ``specs/``: the request (path, method, parameters, body)
and, for 2xx answers, the emulator's response. Cloud v2 goes to ``openapi-v2.v3.json``; Cloud v1
and Data Center ``[context]/rest/api`` (the same resources) go to ``openapi-v1.v3.json``.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qsl

import httpx
import pytest
from aiohttp import web
from openapi_core import Config, OpenAPI
from openapi_core.datatypes import RequestParameters
from werkzeug.datastructures import Headers, ImmutableMultiDict

from connectors.confluence import ConfluenceConnector, ConfluenceSettings
from connectors.emulators.confluence import DEFAULT_API_TOKEN, DEFAULT_EMAIL, DEFAULT_PAT, create_app
from connectors.emulators.faults import start_app
from connectors.http import HttpOptions

SPECS = Path(__file__).parent / "specs"
Flavour = Literal["cloud", "datacenter"]


# ------------------------------------------------------------------------------ clock


class FakeClock:
    """Monotonic time shared by the connector's sleep and the emulator's rate limiter."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


# --------------------------------------------------------------------------- emulators


@dataclass
class Emulator:
    app: web.Application
    url: str
    flavour: Flavour

    async def control(self, method: str, path: str, body: Any = None) -> Any:
        async with httpx.AsyncClient(base_url=self.url) as client:
            response = await client.request(method, path, json=body)
            response.raise_for_status()
            return response.json()

    async def fault(self, **spec: Any) -> None:
        await self.control("POST", "/_control/faults", spec)


EmulatorFactory = Callable[..., Awaitable[Emulator]]


@pytest.fixture
async def start_emulator() -> AsyncIterator[EmulatorFactory]:
    runners: list[web.AppRunner] = []

    async def start(flavour: Flavour, **options: Any) -> Emulator:
        app = create_app(flavour=flavour, **options)
        runner, url = await start_app(app)
        runners.append(runner)
        return Emulator(app, url, flavour)

    yield start
    for runner in runners:
        await runner.cleanup()


@pytest.fixture(params=["cloud", "datacenter"])
def flavour(request: pytest.FixtureRequest) -> Flavour:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
async def emulator(start_emulator: EmulatorFactory, flavour: Flavour) -> Emulator:
    return await start_emulator(flavour)


# ------------------------------------------------------------------------ recording


@dataclass
class Exchange:
    method: str
    url: httpx.URL
    headers: httpx.Headers
    body: bytes
    status: int
    response_headers: httpx.Headers
    response_body: bytes


class RecordingTransport(httpx.AsyncBaseTransport):
    """Real HTTP (httpx's own transport) that keeps a copy of every request and response."""

    def __init__(self) -> None:
        self._inner = httpx.AsyncHTTPTransport()
        self.exchanges: list[Exchange] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        response = await self._inner.handle_async_request(request)
        raw = b"".join([chunk async for chunk in response.aiter_raw()])
        await response.aclose()
        self.exchanges.append(
            Exchange(
                request.method,
                request.url,
                request.headers,
                body,
                response.status_code,
                response.headers,
                raw,
            )
        )
        return httpx.Response(response.status_code, headers=response.headers, content=raw, request=request)

    async def aclose(self) -> None:
        await self._inner.aclose()

    def calls(self, method: str, path_contains: str) -> list[Exchange]:
        return [e for e in self.exchanges if e.method == method and path_contains in e.url.path]


# ------------------------------------------------------------------------- spec check


def _load_spec(name: str, server: str) -> OpenAPI:
    spec = json.loads((SPECS / name).read_text())
    spec["servers"] = [{"url": server}]
    schemas = spec["components"]["schemas"]
    if "PageBodyWrite" in schemas:
        # The v2 document lists the page body as oneOf {representation, value} or {storage: {...}}
        # with both objects open, so every body matches both and strict oneOf fails everything.
        # Closing the two alternatives keeps the documented intent and still rejects typos.
        schemas["PageBodyWrite"]["additionalProperties"] = False
        schemas["PageNestedBodyWrite"]["additionalProperties"] = False
    for path_item in spec["paths"].values():
        for operation in path_item.values():
            for parameter in operation.get("parameters", []) if isinstance(operation, dict) else []:
                schema = parameter.get("schema", {})
                if schema.get("type") == "array" and "enum" in schema:
                    # v1 puts the enum of an array parameter (e.g. content `status`) on the array
                    # instead of its items, so its own default ["current"] fails it. Move it.
                    schema["items"] = {**schema.get("items", {}), "enum": schema.pop("enum")}
    # The published documents carry a few schema defaults outside their own enums; skip the
    # check of the document itself, we only validate traffic against it.
    return OpenAPI.from_dict(spec, config=Config(spec_validator_cls=None))


@pytest.fixture(scope="session")
def confluence_specs() -> dict[str, OpenAPI]:
    return {
        "v2": _load_spec("openapi-v2.v3.json", "/wiki/api/v2"),
        "v1": _load_spec("openapi-v1.v3.json", "/"),
    }


class _SpecRequest:
    def __init__(self, exchange: Exchange, path: str) -> None:
        query = parse_qsl(exchange.url.query.decode(), keep_blank_values=True)
        self.parameters = RequestParameters(
            query=ImmutableMultiDict(query),
            header=Headers(list(exchange.headers.items())),
            cookie=ImmutableMultiDict(),
        )
        self.host_url = f"{exchange.url.scheme}://{exchange.url.netloc.decode()}"
        self.path = path
        self.method = exchange.method.lower()
        self.body = exchange.body or None
        self.content_type = exchange.headers.get("content-type", "")


class _SpecResponse:
    def __init__(self, exchange: Exchange) -> None:
        self.status_code = exchange.status
        self.headers = Headers(list(exchange.response_headers.items()))
        self.content_type = exchange.response_headers.get("content-type", "")
        self.data = exchange.response_body or None


def spec_violations(
    specs: dict[str, OpenAPI], exchange: Exchange, *, check_response: bool = True
) -> list[str]:
    """What the OpenAPI documents say is wrong with one recorded exchange (empty: fits)."""
    path = exchange.url.path
    if path.startswith("/wiki/api/v2/"):
        spec, spec_path = specs["v2"], path
    elif "/rest/api/" in path:
        # Cloud /wiki/rest/api and Data Center <context>/rest/api: the same v1 resources.
        spec, spec_path = specs["v1"], "/wiki" + path[path.index("/rest/api/") :]
    else:
        return [f"{exchange.method} {path}: not a documented Confluence path"]
    request = _SpecRequest(exchange, spec_path)
    problems: list[str] = []
    with warnings.catch_warnings():
        # openapi-core cannot check the OAuth scheme listed beside basicAuth; it says so loudly.
        warnings.filterwarnings("ignore", "Unsupported scheme type", UserWarning)
        request_result = spec.unmarshal_request(request)
        problems += [f"request: {error!r} {error.__cause__ or ''}" for error in request_result.errors]
        if check_response and 200 <= exchange.status < 300 and not request_result.errors:
            response_result = spec.unmarshal_response(request, _SpecResponse(exchange))
            problems += [f"response: {error!r} {error.__cause__ or ''}" for error in response_result.errors]
    return [f"{exchange.method} {exchange.url}: {problem}" for problem in problems]


# ------------------------------------------------------------------------- connectors


ConnectorFactory = Callable[..., ConfluenceConnector]


def settings_for(emulator: Emulator, **overrides: Any) -> ConfluenceSettings:
    values: dict[str, Any] = {
        "flavour": emulator.flavour,
        "base_url": emulator.url,
        # Retries and backoff stay on, but the injected clock makes them instant.
        "http": HttpOptions(max_retries=2, breaker_failure_threshold=50),
    }
    if emulator.flavour == "cloud":
        values |= {"email": DEFAULT_EMAIL, "api_token": DEFAULT_API_TOKEN}
    else:
        values |= {"pat": DEFAULT_PAT}
    values |= overrides
    return ConfluenceSettings(**values)


@dataclass
class Wiring:
    """The connectors a test made and the recorded traffic of each."""

    connectors: list[ConfluenceConnector] = field(default_factory=list)
    transports: dict[int, RecordingTransport] = field(default_factory=dict)
    # Tests that make the emulator answer garbage on purpose only check their requests.
    check_responses: bool = True

    def traffic(self, connector: ConfluenceConnector) -> RecordingTransport:
        return self.transports[id(connector)]


@pytest.fixture
async def wiring(confluence_specs: dict[str, OpenAPI]) -> AsyncIterator[Wiring]:
    wiring = Wiring()
    yield wiring
    for connector in wiring.connectors:
        await connector.aclose()
    violations = [
        violation
        for transport in wiring.transports.values()
        for exchange in transport.exchanges
        for violation in spec_violations(confluence_specs, exchange, check_response=wiring.check_responses)
    ]
    assert not violations, "traffic does not fit the Confluence OpenAPI documents:\n" + "\n".join(violations)


@pytest.fixture
def connect(wiring: Wiring, clock: FakeClock) -> ConnectorFactory:
    """Make a connector for an emulator; its traffic is spec-checked when the test ends."""

    def make(emulator: Emulator, **overrides: Any) -> ConfluenceConnector:
        transport = RecordingTransport()
        connector = ConfluenceConnector(
            settings_for(emulator, **overrides),
            transport=transport,
            sleep=clock.sleep,
            monotonic=clock.monotonic,
        )
        wiring.transports[id(connector)] = transport
        wiring.connectors.append(connector)
        return connector

    return make


@pytest.fixture
def check_exchange(confluence_specs: dict[str, OpenAPI]) -> Callable[[Exchange], list[str]]:
    """The spec check itself, for tests that prove it can fail."""
    return lambda exchange: spec_violations(confluence_specs, exchange)
