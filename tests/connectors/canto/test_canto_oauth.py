"""Canto app tokens: client_credentials, refresh_token renewal, refusals, expiry mid-session."""

from __future__ import annotations

import asyncio
import logging

import pytest

from connectors.errors import AuthError


async def test_first_call_fetches_a_client_credentials_token_with_parameters_in_the_query(
    world, canto
) -> None:
    ref = world.ref("acme-logo-primary.png")
    await canto.get_asset(ref.scheme, ref.id)
    (token_request,) = world.requests_to("/oauth/api/oauth2/token")
    assert token_request["method"] == "POST"
    assert token_request["query"]["grant_type"] == "client_credentials"
    assert token_request["query"]["app_id"] == "opsgate-canto-app"
    assert token_request["json"] is None
    assert dict(world.tokens.requests) == {"client_credentials": 1}


async def test_api_calls_carry_the_bearer_token_and_reuse_it(world, canto) -> None:
    ref = world.ref("acme-logo-primary.png")
    for _ in range(3):
        await canto.get_asset(ref.scheme, ref.id)
    assert sum(world.tokens.requests.values()) == 1
    api_calls = world.requests_to(f"/api/v1/image/{ref.id}")
    assert len(api_calls) == 3
    assert all(call["headers"]["Authorization"] == "***" for call in api_calls)  # logged redacted


async def test_concurrent_first_calls_share_one_token_request(world, canto) -> None:
    ref = world.ref("acme-logo-primary.png")
    await asyncio.gather(*(canto.get_asset(ref.scheme, ref.id) for _ in range(20)))
    assert sum(world.tokens.requests.values()) == 1


async def test_token_is_renewed_with_the_refresh_token_grant_before_it_expires(world, canto) -> None:
    ref = world.ref("acme-logo-primary.png")
    await canto.get_asset(ref.scheme, ref.id)
    world.monotonic.advance(world.token_lifetime - 30)  # inside the refresh-ahead window
    await canto.get_asset(ref.scheme, ref.id)
    assert dict(world.tokens.requests) == {"client_credentials": 1, "refresh_token": 1}
    refresh = world.requests_to("/oauth/api/oauth2/token")[-1]["query"]
    assert refresh["grant_type"] == "refresh_token"
    assert refresh["refresh_token"]


async def test_configured_refresh_token_is_used_for_the_first_token(world) -> None:
    world.tokens.refresh.add("refresh-from-authorization-code")
    canto = world.connector(refresh_token="refresh-from-authorization-code")
    ref = world.ref("acme-logo-primary.png")
    await canto.get_asset(ref.scheme, ref.id)
    assert dict(world.tokens.requests) == {"refresh_token": 1}


async def test_refused_refresh_token_falls_back_to_client_credentials(world) -> None:
    # Canto answers 400 invalid_grant; the connector must read that as "refused", not a bad call.
    canto = world.connector(refresh_token="revoked-refresh-token")
    ref = world.ref("acme-logo-primary.png")
    asset = await canto.get_asset(ref.scheme, ref.id)
    assert asset.name == "acme-logo-primary.png"
    assert dict(world.tokens.requests) == {"refresh_token": 1, "client_credentials": 1}


async def test_token_expired_by_canto_is_replaced_and_the_call_retried_once(world, canto) -> None:
    ref = world.ref("acme-logo-primary.png")
    await canto.get_asset(ref.scheme, ref.id)
    world.fault(path="/api/v1/image/", expire_tokens=True, times=1)
    asset = await canto.get_asset(ref.scheme, ref.id)
    assert asset.id == ref.id
    assert sum(world.tokens.requests.values()) == 2
    assert [r["path"].startswith("/api/v1/image/") for r in world.faults.requests].count(True) == 3


async def test_wrong_app_secret_raises_auth_error_without_leaking_the_secret(world) -> None:
    canto = world.connector(app_secret="not-the-secret")
    with pytest.raises(AuthError) as caught:
        await canto.get_asset("image", world.ref("acme-logo-primary.png").id)
    assert caught.value.detail == "Unknown app_id or wrong app_secret"
    assert caught.value.status == 401
    assert "not-the-secret" not in str(caught.value)
    assert "not-the-secret" not in (caught.value.url or "")
    assert world.requests_to("/api/v1/image/" + world.ref("acme-logo-primary.png").id) == []


async def test_settings_hide_secrets_from_repr(world) -> None:
    settings = world.settings(refresh_token="refresh-secret-value")
    assert "canto-emulator-secret" not in repr(settings)
    assert "refresh-secret-value" not in repr(settings)


async def test_logs_never_show_the_app_secret_or_the_tokens(world, canto, caplog) -> None:
    caplog.set_level(logging.DEBUG, logger="opsgate")
    ref = world.ref("acme-logo-primary.png")
    await canto.get_asset(ref.scheme, ref.id)
    world.monotonic.advance(world.token_lifetime)
    await canto.get_asset(ref.scheme, ref.id)
    assert caplog.records, "the client logs its calls"
    assert "canto-emulator-secret" not in caplog.text
    used_refresh_token = world.requests_to("/oauth/api/oauth2/token")[-1]["query"]["refresh_token"]
    for token in [*world.tokens.access, *world.tokens.refresh, used_refresh_token]:
        assert token not in caplog.text
