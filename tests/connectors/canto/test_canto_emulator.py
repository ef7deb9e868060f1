"""The Canto emulator's own edges: bearer auth, token statistics, reset."""

from __future__ import annotations

import httpx


async def test_api_calls_without_a_token_get_401(world) -> None:
    async with httpx.AsyncClient(base_url=world.url) as plain:
        response = await plain.get("/api/v1/search")
    assert response.status_code == 401
    assert response.json()["message"] == "Unauthorized: invalid or expired access token"


async def test_tokens_expire_after_expires_in_on_the_emulators_clock(world) -> None:
    async with httpx.AsyncClient(base_url=world.url) as plain:
        issued = await plain.post(
            "/oauth/api/oauth2/token",
            params={
                "app_id": "opsgate-canto-app",
                "app_secret": "canto-emulator-secret",
                "grant_type": "client_credentials",
            },
        )
        body = issued.json()
        assert body["expiresIn"] == world.token_lifetime
        assert body["tokenType"] == "bearer"
        headers = {"Authorization": f"Bearer {body['accessToken']}"}
        assert (await plain.get("/api/v1/tree", headers=headers)).status_code == 200
        world.monotonic.advance(world.token_lifetime)
        assert (await plain.get("/api/v1/tree", headers=headers)).status_code == 401


async def test_token_statistics_count_requests_by_grant_type(world, canto) -> None:
    ref = world.ref("acme-logo-primary.png")
    await canto.get_asset(ref.scheme, ref.id)
    async with httpx.AsyncClient(base_url=world.url) as control:
        stats = (await control.get("/_control/canto/tokens")).json()
    assert stats == {"total": 1, "by_grant_type": {"client_credentials": 1}}


async def test_reset_restores_the_library_and_forgets_tokens(world, canto) -> None:
    ref = world.ref("alpine-pro-summit.jpg")
    await canto.update_custom_fields([ref], {"Region": "Mars"})
    async with httpx.AsyncClient(base_url=world.url) as control:
        assert (await control.post("/_control/reset")).status_code == 200
    asset = await canto.get_asset(ref.scheme, ref.id)
    assert asset.custom_field("Region") == "Global"
    # Both tokens were forgotten: the refresh is refused, client credentials get a new one.
    assert dict(world.tokens.requests) == {"refresh_token": 1, "client_credentials": 1}
