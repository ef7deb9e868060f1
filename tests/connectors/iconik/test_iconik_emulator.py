"""The iconik emulator's own edges: auth shape, throttling, reset."""

from __future__ import annotations

import httpx
import pytest

from connectors.errors import RateLimited


async def test_calls_without_credentials_get_iconiks_401_errors_shape(world) -> None:
    async with httpx.AsyncClient(base_url=world.url) as plain:
        response = await plain.get("/API/files/v1/storages/")
    assert response.status_code == 401
    assert response.json() == {"errors": ["App-ID and Auth-Token headers are required"]}


async def test_throttled_calls_wait_for_retry_after(throttled_world) -> None:
    iconik = throttled_world.connector()
    asset_id = next(iter(throttled_world.domain.assets))
    for _ in range(4):
        await iconik.get_asset(asset_id)
    assert throttled_world.sleep.delays == [1.0, 1.0]
    throttled = [e for e in throttled_world.transport.exchanges if e.status == 429]
    assert {e.headers["Retry-After"] for e in throttled} == {"1"}
    assert all(e.body == b'{"errors": ["Too many requests"]}' for e in throttled)


async def test_throttling_beyond_the_retries_raises_rate_limited(throttled_world) -> None:
    throttled_world.check_responses = False
    iconik = throttled_world.connector(http={"max_retries": 0})
    asset_id = next(iter(throttled_world.domain.assets))
    await iconik.get_asset(asset_id)
    await iconik.get_asset(asset_id)
    with pytest.raises(RateLimited) as caught:
        await iconik.get_asset(asset_id)
    assert caught.value.retry_after == 1.0
    assert caught.value.detail == "Too many requests"


async def test_reset_restores_the_seeded_domain(world, iconik) -> None:
    hook = await iconik.register_webhook("https://opsgate.acme.example/h", event_type="assets", headers={})
    async with httpx.AsyncClient(base_url=world.url) as control:
        assert (await control.post("/_control/reset")).status_code == 200
    assert hook.id not in {listed.id for listed in await iconik.list_webhooks()}
    assert len(world.domain.assets) == 12
