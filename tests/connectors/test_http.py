"""VendorClient against a real aiohttp server on loopback, with faults injected over HTTP."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import httpx
import pytest
from aiohttp import web
from pydantic import BaseModel, ConfigDict

from connectors.auth import StaticHeaders
from connectors.emulators.faults import add_fault_injection, fault_injector_of, start_app
from connectors.errors import (
    AuthError,
    BadRequest,
    CircuitOpen,
    Conflict,
    Forbidden,
    InvalidResponse,
    NotFound,
    RateLimited,
    Unavailable,
)
from connectors.http import HttpOptions, VendorClient, parse_retry_after, redact_url

SECRET = "s3cr3t-token-value"


class Item(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: str
    name: str


class ItemList(BaseModel):
    model_config = ConfigDict(extra="ignore")
    items: list[Item]


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class RecordingSleep:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        await asyncio.sleep(0)


def build_app() -> web.Application:
    app = web.Application()

    async def list_items(request: web.Request) -> web.Response:
        return web.json_response(
            {"items": [{"id": "1", "name": "one", "extra": True}]},
            headers={"X-Request-Id": "vendor-req-42"},
        )

    async def create_item(request: web.Request) -> web.Response:
        return web.json_response({"id": "2", "name": "two"}, status=201)

    async def status(request: web.Request) -> web.Response:
        code = int(request.match_info["code"])
        return web.json_response({"message": f"vendor says {code}"}, status=code)

    async def whoami(request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {SECRET}":
            return web.json_response({"message": "bad token"}, status=401)
        return web.json_response({"id": "me", "name": "opsgate"})

    app.router.add_get("/api/items", list_items)
    app.router.add_post("/api/items", create_item)
    app.router.add_get("/api/status/{code}", status)
    app.router.add_get("/api/whoami", whoami)
    add_fault_injection(app, reset=lambda: None)
    return app


@pytest.fixture
async def server() -> AsyncIterator[tuple[web.Application, str]]:
    app = build_app()
    runner, url = await start_app(app)
    yield app, url
    await runner.cleanup()


@pytest.fixture
async def control(server: tuple[web.Application, str]) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server[1]) as client:
        yield client


@pytest.fixture
def sleep() -> RecordingSleep:
    return RecordingSleep()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def make_client(url: str, sleep: RecordingSleep, clock: FakeClock, **options: Any) -> VendorClient:
    auth = options.pop("auth", None)
    return VendorClient(
        vendor="acme",
        base_url=f"{url}/api",
        options=HttpOptions(**options),
        auth=auth,
        sleep=sleep,
        monotonic=clock,
        jitter=lambda: 1.0,
    )


async def inject(control: httpx.AsyncClient, **fault: Any) -> None:
    response = await control.post("/_control/faults", json=fault)
    assert response.status_code == 201, response.text


def seen(app: web.Application, path: str, method: str = "GET") -> int:
    return fault_injector_of(app).count(path=path, method=method)


@pytest.mark.parametrize(("header", "cap", "expected_sleep"), [(7, 30.0, 7.0), (120, 30.0, 30.0)])
async def test_retry_honours_retry_after_header_up_to_the_cap(
    server: tuple[web.Application, str],
    control: httpx.AsyncClient,
    sleep: RecordingSleep,
    clock: FakeClock,
    header: int,
    cap: float,
    expected_sleep: float,
) -> None:
    await inject(control, path="/api/items", status=429, retry_after=header, times=1)
    async with make_client(server[1], sleep, clock, retry_after_cap=cap) as client:
        result = await client.get_model("/items", ItemList)
    assert result.items[0].name == "one"
    assert sleep.delays == [expected_sleep]
    assert seen(server[0], "/api/items") == 2


async def test_server_errors_are_retried_with_exponential_backoff_then_succeed(
    server: tuple[web.Application, str], control: httpx.AsyncClient, sleep: RecordingSleep, clock: FakeClock
) -> None:
    await inject(control, path="/api/items", status=503, times=2)
    async with make_client(server[1], sleep, clock, backoff_initial=0.5) as client:
        response = await client.request("GET", "/items")
    assert response.status_code == 200
    assert sleep.delays == [0.5, 1.0]
    assert seen(server[0], "/api/items") == 3


async def test_post_is_not_retried_on_server_error(
    server: tuple[web.Application, str], control: httpx.AsyncClient, sleep: RecordingSleep, clock: FakeClock
) -> None:
    await inject(control, path="/api/items", method="POST", status=500, times=1)
    async with make_client(server[1], sleep, clock) as client:
        with pytest.raises(Unavailable) as caught:
            await client.request("POST", "/items", json={"name": "two"})
    assert caught.value.status == 500
    assert sleep.delays == []
    assert seen(server[0], "/api/items", "POST") == 1


async def test_post_explicitly_marked_idempotent_is_retried(
    server: tuple[web.Application, str], control: httpx.AsyncClient, sleep: RecordingSleep, clock: FakeClock
) -> None:
    await inject(control, path="/api/items", method="POST", status=502, times=1)
    async with make_client(server[1], sleep, clock) as client:
        response = await client.request("POST", "/items", json={"name": "two"}, idempotent=True)
    assert response.status_code == 201
    assert seen(server[0], "/api/items", "POST") == 2


async def test_post_is_retried_after_429_because_the_vendor_did_not_process_it(
    server: tuple[web.Application, str], control: httpx.AsyncClient, sleep: RecordingSleep, clock: FakeClock
) -> None:
    await inject(control, path="/api/items", method="POST", status=429, retry_after=2, times=1)
    async with make_client(server[1], sleep, clock) as client:
        created = await client.send_model("POST", "/items", Item, json={"name": "two"})
    assert created.id == "2"
    assert sleep.delays == [2.0]


async def test_rate_limited_after_retries_exhausted_carries_retry_after(
    server: tuple[web.Application, str], control: httpx.AsyncClient, sleep: RecordingSleep, clock: FakeClock
) -> None:
    await inject(control, path="/api/items", status=429, retry_after=4, body={"message": "slow down"})
    async with make_client(server[1], sleep, clock, max_retries=2) as client:
        with pytest.raises(RateLimited) as caught:
            await client.request("GET", "/items")
    assert caught.value.retry_after == 4.0
    assert caught.value.detail == "slow down"
    assert sleep.delays == [4.0, 4.0]
    assert seen(server[0], "/api/items") == 3


async def test_circuit_opens_after_consecutive_failures_without_reaching_the_server(
    server: tuple[web.Application, str], control: httpx.AsyncClient, sleep: RecordingSleep, clock: FakeClock
) -> None:
    await inject(control, path="/api/items", status=500)
    async with make_client(
        server[1], sleep, clock, max_retries=0, breaker_failure_threshold=3, breaker_reset_seconds=30
    ) as client:
        for _ in range(3):
            with pytest.raises(Unavailable):
                await client.request("GET", "/items")
        assert client.breaker.state == "open"
        with pytest.raises(CircuitOpen):
            await client.request("GET", "/items")
        assert seen(server[0], "/api/items") == 3


async def test_circuit_recovers_through_a_half_open_probe(
    server: tuple[web.Application, str], control: httpx.AsyncClient, sleep: RecordingSleep, clock: FakeClock
) -> None:
    await inject(control, path="/api/items", status=500)
    async with make_client(
        server[1], sleep, clock, max_retries=0, breaker_failure_threshold=2, breaker_reset_seconds=30
    ) as client:
        for _ in range(2):
            with pytest.raises(Unavailable):
                await client.request("GET", "/items")
        clock.advance(29)
        with pytest.raises(CircuitOpen):
            await client.request("GET", "/items")
        clock.advance(1)
        assert client.breaker.state == "half_open"
        # The probe fails: the circuit opens again for a full reset period.
        with pytest.raises(Unavailable) as failed_probe:
            await client.request("GET", "/items")
        assert not isinstance(failed_probe.value, CircuitOpen)
        assert client.breaker.state == "open"
        await control.delete("/_control/faults")
        clock.advance(30)
        response = await client.request("GET", "/items")
        assert response.status_code == 200
        assert client.breaker.state == "closed"
        assert seen(server[0], "/api/items") == 4


async def test_half_open_lets_only_one_probe_through(
    server: tuple[web.Application, str], control: httpx.AsyncClient, sleep: RecordingSleep, clock: FakeClock
) -> None:
    await inject(control, path="/api/items", status=500, times=1)
    async with make_client(
        server[1], sleep, clock, max_retries=0, breaker_failure_threshold=1, breaker_reset_seconds=10
    ) as client:
        with pytest.raises(Unavailable):
            await client.request("GET", "/items")
        clock.advance(10)
        await inject(control, path="/api/items", latency_ms=50, times=1)
        results = await asyncio.gather(
            *(client.request("GET", "/items") for _ in range(5)), return_exceptions=True
        )
    assert sum(isinstance(r, httpx.Response) for r in results) == 1
    assert sum(isinstance(r, CircuitOpen) for r in results) == 4


async def test_malformed_vendor_json_raises_invalid_response(
    server: tuple[web.Application, str], control: httpx.AsyncClient, sleep: RecordingSleep, clock: FakeClock
) -> None:
    await inject(control, path="/api/items", malformed_json=True, times=1)
    async with make_client(server[1], sleep, clock) as client:
        with pytest.raises(InvalidResponse) as caught:
            await client.get_model("/items", ItemList)
    assert "not valid JSON" in caught.value.detail
    assert caught.value.status == 200


async def test_wrong_payload_shape_raises_invalid_response_without_echoing_values(
    server: tuple[web.Application, str], control: httpx.AsyncClient, sleep: RecordingSleep, clock: FakeClock
) -> None:
    await inject(control, path="/api/items", status=200, body={"items": [{"id": 1, "secret": SECRET}]})
    async with make_client(server[1], sleep, clock) as client:
        with pytest.raises(InvalidResponse) as caught:
            await client.get_model("/items", ItemList)
    assert "ItemList" in caught.value.detail
    assert SECRET not in str(caught.value)


@pytest.mark.parametrize(
    ("code", "error"),
    [(400, BadRequest), (403, Forbidden), (404, NotFound), (409, Conflict), (422, BadRequest)],
)
async def test_error_statuses_map_to_typed_errors_with_vendor_detail(
    server: tuple[web.Application, str], sleep: RecordingSleep, clock: FakeClock, code: int, error: type
) -> None:
    async with make_client(server[1], sleep, clock) as client:
        with pytest.raises(error) as caught:
            await client.request("GET", f"/status/{code}")
    assert caught.value.detail == f"vendor says {code}"
    assert caught.value.status == code
    assert caught.value.method == "GET"
    assert caught.value.url.endswith(f"/api/status/{code}")
    assert sleep.delays == []


async def test_vendor_error_parser_hook_supplies_the_detail(
    server: tuple[web.Application, str], control: httpx.AsyncClient
) -> None:
    await inject(control, path="/api/items", status=400, body={"fault": {"code": "E42", "why": "bad"}})
    client = VendorClient(
        vendor="acme",
        base_url=f"{server[1]}/api",
        error_parser=lambda r: f"{r.json()['fault']['code']}: {r.json()['fault']['why']}",
    )
    async with client:
        with pytest.raises(BadRequest) as caught:
            await client.request("GET", "/items")
    assert caught.value.detail == "E42: bad"


async def test_request_id_of_the_vendor_is_recorded_and_ours_is_sent(
    server: tuple[web.Application, str], sleep: RecordingSleep, clock: FakeClock
) -> None:
    async with make_client(server[1], sleep, clock) as client:
        await client.request("GET", "/items")
        assert client.last_request_id == "vendor-req-42"
        with pytest.raises(NotFound) as caught:
            await client.request("GET", "/status/404")
    sent = next(r for r in fault_injector_of(server[0]).requests if r["path"] == "/api/status/404")
    our_id = {k.lower(): v for k, v in sent["headers"].items()}["x-request-id"]
    assert caught.value.request_id == our_id
    assert client.last_request_id == our_id


async def test_logs_and_errors_never_contain_the_credentials(
    server: tuple[web.Application, str],
    control: httpx.AsyncClient,
    sleep: RecordingSleep,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    await inject(control, path="/api/status", status=503, times=1)
    auth = StaticHeaders({"Authorization": f"Bearer {SECRET}", "OTDSTicket": SECRET})
    async with make_client(server[1], sleep, clock, auth=auth, max_retries=1) as client:
        assert (await client.request("GET", "/whoami")).status_code == 200
        with pytest.raises(NotFound) as caught:
            await client.request("GET", "/status/404", params={"access_token": SECRET, "page": "2"})
    assert "whoami" in caplog.text and "page=2" in caplog.text
    assert SECRET not in caplog.text
    assert SECRET not in str(caught.value) and SECRET not in repr(auth)


async def test_concurrency_limit_is_respected_by_the_server_observation(
    server: tuple[web.Application, str], control: httpx.AsyncClient, sleep: RecordingSleep, clock: FakeClock
) -> None:
    await inject(control, path="/api/items", latency_ms=30)
    async with make_client(server[1], sleep, clock, max_concurrency=3) as client:
        responses = await asyncio.gather(*(client.request("GET", "/items") for _ in range(12)))
    assert all(r.status_code == 200 for r in responses)
    stats = (await control.get("/_control/stats")).json()
    assert stats["peak_in_flight"] == 3


async def test_rate_limit_spaces_requests_at_the_configured_rate(
    server: tuple[web.Application, str], sleep: RecordingSleep, clock: FakeClock
) -> None:
    loop = asyncio.get_running_loop()
    async with make_client(server[1], sleep, clock, rate_per_second=20) as client:
        started = loop.time()
        await asyncio.gather(*(client.request("GET", "/items") for _ in range(4)))
        elapsed = loop.time() - started
    # Four calls at 20/s need at least three 50 ms gaps (the limiter waits in real time).
    assert elapsed >= 0.14
    assert seen(server[0], "/api/items") == 4


async def test_connection_refused_is_retried_then_raises_unavailable(
    sleep: RecordingSleep, clock: FakeClock
) -> None:
    runner, url = await start_app(web.Application())
    await runner.cleanup()  # the port is now closed
    async with make_client(url, sleep, clock, max_retries=2) as client:
        with pytest.raises(Unavailable) as caught:
            await client.request("POST", "/items", json={})
    assert caught.value.status is None
    assert len(sleep.delays) == 2  # never sent, so even a POST is retried


async def test_read_timeout_raises_unavailable(
    server: tuple[web.Application, str], control: httpx.AsyncClient, sleep: RecordingSleep, clock: FakeClock
) -> None:
    await inject(control, path="/api/items", timeout=True)
    async with make_client(server[1], sleep, clock, read_timeout=0.2, max_retries=0) as client:
        with pytest.raises(Unavailable) as caught:
            await client.request("GET", "/items")
    assert "ReadTimeout" in caught.value.detail


async def test_credentials_are_not_sent_to_a_foreign_origin(
    server: tuple[web.Application, str], sleep: RecordingSleep, clock: FakeClock
) -> None:
    other_runner, other_url = await start_app(build_app())
    try:
        auth = StaticHeaders({"Authorization": f"Bearer {SECRET}"})
        async with make_client(server[1], sleep, clock, auth=auth) as client:
            with pytest.raises(AuthError):
                await client.request("GET", f"{other_url}/api/whoami")
            assert (await client.request("GET", f"{server[1]}/api/whoami")).status_code == 200
    finally:
        await other_runner.cleanup()


def test_retry_after_accepts_seconds_and_http_dates() -> None:
    now = datetime(2025, 1, 1, tzinfo=UTC)
    assert parse_retry_after("12") == 12.0
    assert parse_retry_after(format_datetime(now + timedelta(seconds=90), usegmt=True), now=now) == 90.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


def test_redact_url_hides_token_like_query_values() -> None:
    redacted = redact_url("https://x.test/a?app_secret=abc&client_id=ok&refresh_token=def&limit=5")
    assert "abc" not in redacted and "def" not in redacted
    assert "limit=5" in redacted
