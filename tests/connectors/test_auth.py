"""Token caching, refresh ahead, single flight and retry-after-401 against a real token server."""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from aiohttp import web
from pydantic import SecretStr

from connectors.auth import StaticHeaders, Token, TokenProvider
from connectors.emulators.faults import add_fault_injection, fault_injector_of, start_app
from connectors.errors import AuthError
from connectors.http import HttpOptions, VendorClient

TOKEN_LIFETIME = 300.0


class FakeClock:
    def __init__(self) -> None:
        self.now = 5000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class TokenServer:
    """Issues opaque tokens at POST /token and accepts only live ones at GET /api/whoami."""

    def __init__(self) -> None:
        self.valid: set[str] = set()
        self._serial = itertools.count(1)
        self.app = web.Application()
        self.app.router.add_post("/token", self.issue)
        self.app.router.add_get("/api/whoami", self.whoami)
        add_fault_injection(self.app, reset=self.valid.clear, expire_tokens=self.valid.clear)

    async def issue(self, request: web.Request) -> web.Response:
        form = await request.post()
        if form.get("client_secret") != "right":
            return web.json_response({"error": "invalid_client"}, status=401)
        token = f"tok-{next(self._serial)}-secretpart"
        self.valid.add(token)
        return web.json_response({"access_token": token, "expires_in": TOKEN_LIFETIME})

    async def whoami(self, request: web.Request) -> web.Response:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Bearer ") or header.removeprefix("Bearer ") not in self.valid:
            return web.json_response({"error": "invalid_token"}, status=401)
        return web.json_response({"token": header.removeprefix("Bearer ")[:5]})


@pytest.fixture
async def token_server() -> AsyncIterator[tuple[TokenServer, str]]:
    server = TokenServer()
    runner, url = await start_app(server.app)
    yield server, url
    await runner.cleanup()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


async def no_sleep(seconds: float) -> None:
    await asyncio.sleep(0)


def make_client(
    url: str, clock: FakeClock, *, secret: str = "right", refresh_ahead: float = 60.0, **options: Any
) -> tuple[VendorClient, TokenProvider]:
    # The token endpoint goes through the same client, unauthenticated, as connectors do it.
    holder: dict[str, VendorClient] = {}

    async def fetch() -> Token:
        response = await holder["client"].request(
            "POST",
            f"{url}/token",
            data={"grant_type": "client_credentials", "client_secret": secret},
            authenticate=False,
        )
        body = response.json()
        return Token.expiring_in(body["access_token"], body["expires_in"], monotonic=clock)

    provider = TokenProvider(fetch, refresh_ahead=refresh_ahead, monotonic=clock)
    client = VendorClient(
        vendor="acme",
        base_url=f"{url}/api",
        auth=provider,
        options=HttpOptions(**options),
        sleep=no_sleep,
        monotonic=clock,
    )
    holder["client"] = client
    return client, provider


def token_requests(server: TokenServer) -> int:
    return fault_injector_of(server.app).count(path="^/token$", method="POST")


async def test_token_is_cached_between_calls(token_server: tuple[TokenServer, str], clock: FakeClock) -> None:
    server, url = token_server
    client, _ = make_client(url, clock)
    async with client:
        for _ in range(5):
            await client.request("GET", "/whoami")
    assert token_requests(server) == 1


async def test_hundred_concurrent_calls_with_an_expired_token_fetch_exactly_one_token(
    token_server: tuple[TokenServer, str], clock: FakeClock
) -> None:
    server, url = token_server
    client, _ = make_client(url, clock, max_concurrency=100)
    async with client, httpx.AsyncClient(base_url=url) as control:
        await client.request("GET", "/whoami")
        clock.advance(TOKEN_LIFETIME + 1)
        fault_injector_of(server.app).clear_requests()
        # A slow token endpoint widens the race window for the 100 callers.
        await control.post("/_control/faults", json={"path": "^/token$", "latency_ms": 50})
        responses = await asyncio.gather(*(client.request("GET", "/whoami") for _ in range(100)))
    assert all(r.status_code == 200 for r in responses)
    assert token_requests(server) == 1
    assert {r.json()["token"] for r in responses} == {"tok-2"}


async def test_token_is_refreshed_ahead_of_expiry(
    token_server: tuple[TokenServer, str], clock: FakeClock
) -> None:
    server, url = token_server
    client, provider = make_client(url, clock, refresh_ahead=60)
    async with client:
        await client.request("GET", "/whoami")
        clock.advance(TOKEN_LIFETIME - 61)
        await client.request("GET", "/whoami")
        assert token_requests(server) == 1
        clock.advance(2)  # now inside the refresh-ahead window, token still valid server-side
        await client.request("GET", "/whoami")
    assert token_requests(server) == 2
    assert provider.fetch_count == 2


async def test_unauthorized_causes_one_refresh_and_one_retry(
    token_server: tuple[TokenServer, str], clock: FakeClock
) -> None:
    server, url = token_server
    client, _ = make_client(url, clock)
    async with client, httpx.AsyncClient(base_url=url) as control:
        await client.request("GET", "/whoami")
        await control.post(
            "/_control/faults", json={"path": "/api/whoami", "expire_tokens": True, "times": 1}
        )
        fault_injector_of(server.app).clear_requests()
        response = await client.request("GET", "/whoami")
    assert response.json()["token"] == "tok-2"
    assert token_requests(server) == 1
    assert fault_injector_of(server.app).count(path="/api/whoami") == 2


async def test_concurrent_unauthorized_calls_share_one_refresh(
    token_server: tuple[TokenServer, str], clock: FakeClock
) -> None:
    server, url = token_server
    client, _ = make_client(url, clock, max_concurrency=20)
    async with client:
        await client.request("GET", "/whoami")
        server.valid.clear()  # the vendor revoked every token behind our back
        fault_injector_of(server.app).clear_requests()
        responses = await asyncio.gather(*(client.request("GET", "/whoami") for _ in range(20)))
    assert all(r.status_code == 200 for r in responses)
    assert token_requests(server) == 1


async def test_persistent_unauthorized_raises_auth_error_after_a_single_retry(
    token_server: tuple[TokenServer, str], clock: FakeClock
) -> None:
    server, url = token_server
    client, _ = make_client(url, clock)
    async with client, httpx.AsyncClient(base_url=url) as control:
        await control.post("/_control/faults", json={"path": "/api/whoami", "status": 401})
        with pytest.raises(AuthError) as caught:
            await client.request("GET", "/whoami")
    assert caught.value.status == 401
    assert fault_injector_of(server.app).count(path="/api/whoami") == 2
    assert token_requests(server) == 2


async def test_refused_client_credentials_raise_auth_error_without_leaking_the_secret(
    token_server: tuple[TokenServer, str], clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    server, url = token_server
    client, _ = make_client(url, clock, secret="wrong-client-secret")
    async with client:
        with pytest.raises(AuthError) as caught:
            await client.request("GET", "/whoami")
    assert caught.value.detail == "invalid_client"
    assert "wrong-client-secret" not in str(caught.value)
    assert "wrong-client-secret" not in caplog.text
    assert fault_injector_of(server.app).count(path="/api/whoami") == 0


async def test_concurrent_callers_share_one_failed_token_request(
    token_server: tuple[TokenServer, str], clock: FakeClock
) -> None:
    server, url = token_server
    client, _ = make_client(url, clock, secret="wrong", max_concurrency=20)
    async with client:
        results = await asyncio.gather(
            *(client.request("GET", "/whoami") for _ in range(20)), return_exceptions=True
        )
    assert all(isinstance(r, AuthError) for r in results)
    assert token_requests(server) == 1


async def test_a_cancelled_caller_does_not_cancel_the_shared_token_fetch(
    token_server: tuple[TokenServer, str], clock: FakeClock
) -> None:
    server, url = token_server
    client, provider = make_client(url, clock)
    async with client, httpx.AsyncClient(base_url=url) as control:
        await control.post("/_control/faults", json={"path": "^/token$", "latency_ms": 50})
        impatient = asyncio.create_task(client.request("GET", "/whoami"))
        patient = asyncio.create_task(client.request("GET", "/whoami"))
        # Cancel while the emulator holds the token request; there is no event to await.
        while token_requests(server) == 0:  # noqa: ASYNC110
            await asyncio.sleep(0.005)
        impatient.cancel()
        response = await patient
    assert response.status_code == 200
    assert impatient.cancelled()
    assert provider.fetch_count == 1


async def test_static_headers_are_not_retried_after_unauthorized(
    token_server: tuple[TokenServer, str],
) -> None:
    server, url = token_server
    auth = StaticHeaders({"Authorization": SecretStr("Bearer nope")})
    async with VendorClient(vendor="acme", base_url=f"{url}/api", auth=auth) as client:
        with pytest.raises(AuthError):
            await client.request("GET", "/whoami")
    assert fault_injector_of(server.app).count(path="/api/whoami") == 1


def test_token_repr_hides_its_value() -> None:
    token = Token(value="abc-very-secret", expires_at=1.0, refresh_token="refresh-secret")
    assert "abc-very-secret" not in repr(token)
    assert "refresh-secret" not in repr(token)
    assert token.reveal() == "abc-very-secret"
    assert Token(value=SecretStr("x"), expires_at=1.0).reveal() == "x"


async def test_custom_header_without_scheme_carries_the_raw_ticket(
    token_server: tuple[TokenServer, str], clock: FakeClock
) -> None:
    server, url = token_server

    async def fetch() -> Token:
        return Token.expiring_in("ticket-123", 600, monotonic=clock)

    provider = TokenProvider(fetch, header="OTDSTicket", scheme="", monotonic=clock)
    async with VendorClient(vendor="otds", base_url=f"{url}/api", auth=provider) as client:
        with pytest.raises(AuthError):
            await client.request("GET", "/whoami")
    sent = fault_injector_of(server.app).requests[-1]["headers"]
    assert sent["OTDSTicket"] == "***"  # the emulator log redacts it too
    assert provider.fetch_count == 2  # fetched, refused, refetched once
