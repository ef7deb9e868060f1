"""The shared fault-injection, request-log and rate-limit machinery of the emulators."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from aiohttp import web

from connectors.emulators.faults import add_fault_injection, add_rate_limit, fault_injector_of, start_app


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Emulator:
    def __init__(self, *, rate: tuple[float, int] | None = None, clock: FakeClock | None = None) -> None:
        self.resets = 0
        self.tokens_expired = 0
        self.app = web.Application()
        self.app.router.add_get("/things", self.things)
        self.app.router.add_post("/things", self.create)
        add_fault_injection(
            self.app,
            reset=self.reset,
            expire_tokens=self.expire,
            error_body=lambda status: {"errors": [{"status": status, "code": "INJECTED"}]},
        )
        if rate is not None:
            add_rate_limit(
                self.app,
                per_second=rate[0],
                burst=rate[1],
                response=lambda retry: web.json_response(
                    {"message": "too many"}, status=429, headers={"Retry-After": f"{retry:.0f}"}
                ),
                monotonic=clock or FakeClock(),
            )

    def reset(self) -> None:
        self.resets += 1

    def expire(self) -> None:
        self.tokens_expired += 1

    async def things(self, request: web.Request) -> web.Response:
        return web.json_response({"things": [1, 2]})

    async def create(self, request: web.Request) -> web.Response:
        return web.json_response(await request.json(), status=201)


@pytest.fixture
async def emulator() -> AsyncIterator[tuple[Emulator, httpx.AsyncClient]]:
    emulator = Emulator()
    runner, url = await start_app(emulator.app)
    async with httpx.AsyncClient(base_url=url) as client:
        yield emulator, client
    await runner.cleanup()


async def add_fault(client: httpx.AsyncClient, **spec: Any) -> str:
    response = await client.post("/_control/faults", json=spec)
    assert response.status_code == 201
    return str(response.json()["id"])


async def test_fault_applies_the_given_number_of_times(emulator: tuple[Emulator, httpx.AsyncClient]) -> None:
    _, client = emulator
    await add_fault(client, path="^/things$", status=503, times=2, retry_after=3)
    first, second, third = [await client.get("/things") for _ in range(3)]
    assert (first.status_code, second.status_code, third.status_code) == (503, 503, 200)
    assert first.headers["Retry-After"] == "3"
    assert first.json() == {"errors": [{"status": 503, "code": "INJECTED"}]}


async def test_fault_matches_only_its_method(emulator: tuple[Emulator, httpx.AsyncClient]) -> None:
    _, client = emulator
    await add_fault(client, path="/things", method="POST", status=500, body={"custom": True})
    assert (await client.get("/things")).status_code == 200
    posted = await client.post("/things", json={"a": 1})
    assert posted.status_code == 500
    assert posted.json() == {"custom": True}


async def test_clearing_faults_restores_normal_answers(emulator: tuple[Emulator, httpx.AsyncClient]) -> None:
    _, client = emulator
    await add_fault(client, path="/things", status=500)
    await client.delete("/_control/faults")
    assert (await client.get("/things")).status_code == 200


async def test_malformed_json_fault_returns_a_truncated_body(
    emulator: tuple[Emulator, httpx.AsyncClient],
) -> None:
    _, client = emulator
    await add_fault(client, path="/things", malformed_json=True, times=1)
    response = await client.get("/things")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    with pytest.raises(ValueError):
        response.json()


async def test_expire_tokens_fault_calls_the_emulator_hook_then_serves(
    emulator: tuple[Emulator, httpx.AsyncClient],
) -> None:
    state, client = emulator
    await add_fault(client, path="/things", expire_tokens=True, times=1)
    assert (await client.get("/things")).status_code == 200
    assert (await client.get("/things")).status_code == 200
    assert state.tokens_expired == 1


async def test_timeout_fault_holds_the_request_until_the_client_gives_up(
    emulator: tuple[Emulator, httpx.AsyncClient],
) -> None:
    _, client = emulator
    await add_fault(client, path="/things", timeout=True)
    with pytest.raises(httpx.ReadTimeout):
        await client.get("/things", timeout=0.2)


async def test_reset_clears_faults_and_log_and_reseeds(emulator: tuple[Emulator, httpx.AsyncClient]) -> None:
    state, client = emulator
    await add_fault(client, path="/things", status=500)
    await client.get("/things")
    assert (await client.post("/_control/reset")).json() == {"reset": True}
    assert state.resets == 1
    assert (await client.get("/_control/requests")).json() == []
    assert (await client.get("/things")).status_code == 200


async def test_request_log_records_bodies_and_redacts_credentials(
    emulator: tuple[Emulator, httpx.AsyncClient],
) -> None:
    _, client = emulator
    await client.post(
        "/things?limit=1",
        json={"name": "x"},
        headers={"Authorization": "Bearer hush-hush", "Auth-Token": "hush2"},
    )
    logged = (await client.get("/_control/requests")).json()
    assert logged[-1]["method"] == "POST"
    assert logged[-1]["path"] == "/things"
    assert logged[-1]["query"] == {"limit": "1"}
    assert logged[-1]["json"] == {"name": "x"}
    assert "hush" not in str(logged)
    assert all(not r["path"].startswith("/_control") for r in logged)


async def test_stats_report_peak_requests_in_flight(emulator: tuple[Emulator, httpx.AsyncClient]) -> None:
    state, client = emulator
    await add_fault(client, path="/things", latency_ms=50)
    await asyncio.gather(*(client.get("/things") for _ in range(4)))
    stats = (await client.get("/_control/stats")).json()
    assert stats == {"requests_total": 4, "in_flight": 0, "peak_in_flight": 4}
    assert fault_injector_of(state.app).count(path="/things", method="GET") == 4


async def test_invalid_fault_spec_is_rejected(emulator: tuple[Emulator, httpx.AsyncClient]) -> None:
    _, client = emulator
    assert (await client.post("/_control/faults", json={"path": "("})).status_code == 400
    assert (await client.post("/_control/faults", json={"status": 99})).status_code == 400
    assert (await client.post("/_control/faults", json={"unknown": 1})).status_code == 400


async def test_rate_limit_answers_429_with_retry_after_beyond_the_burst() -> None:
    clock = FakeClock()
    emulator = Emulator(rate=(0.5, 2), clock=clock)
    runner, url = await start_app(emulator.app)
    try:
        async with httpx.AsyncClient(base_url=url) as client:
            statuses = [(await client.get("/things")).status_code for _ in range(2)]
            throttled = await client.get("/things")
            assert (await client.get("/_control/stats")).status_code == 200  # control never throttled
            clock.now += 2.0
            recovered = await client.get("/things")
    finally:
        await runner.cleanup()
    assert statuses == [200, 200]
    assert throttled.status_code == 429
    assert throttled.headers["Retry-After"] == "2"
    assert recovered.status_code == 200


async def test_server_shutdown_releases_requests_held_by_timeout_faults() -> None:
    emulator = Emulator()
    runner, url = await start_app(emulator.app)
    async with httpx.AsyncClient(base_url=url) as client:
        await add_fault(client, path="/things", timeout=True)
        held = asyncio.create_task(client.get("/things", timeout=10))
        # Polls in-process server state until the request is held; there is no event to await.
        while fault_injector_of(emulator.app).in_flight == 0:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        await asyncio.wait_for(runner.cleanup(), 5)
        response = await held
    assert response.status_code == 504
