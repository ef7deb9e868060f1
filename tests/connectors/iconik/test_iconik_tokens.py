"""iconik app tokens through the auth API: create, list, test, switch and revoke (rotation)."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from connectors.emulators.iconik import DEFAULT_AUTH_TOKEN
from connectors.errors import AuthError, NotFound

from .conftest import APP_ID

OLD = SecretStr(DEFAULT_AUTH_TOKEN)


async def test_rotation_creates_tests_switches_and_revokes_so_the_old_token_is_refused(world, iconik) -> None:
    new = await iconik.create_app_token()
    assert new.token.get_secret_value() != DEFAULT_AUTH_TOKEN
    assert new.app_id == APP_ID

    assert await iconik.token_is_valid(new.token)
    iconik.use_token(new.token)
    await iconik.revoke_token(OLD)

    assert not await iconik.token_is_valid(OLD)
    assert await iconik.token_is_valid()
    await iconik.list_metadata_views()  # the connector now works with the new token
    stale = world.connector()  # still configured with the old token
    world.check_responses = False
    with pytest.raises(AuthError) as caught:
        await stale.list_metadata_views()
    assert caught.value.status == 401
    assert [token["id"] for token in world.domain.tokens.values()] == [new.id]


async def test_the_token_list_shows_ids_never_values(world, iconik) -> None:
    created = await iconik.create_app_token()
    listed = await iconik.list_app_tokens(per_page=1)
    assert created.id in {token.id for token in listed}
    assert len(listed) == 2
    (listing, *_) = world.requests_to("/auth/tokens/", "GET")
    assert listing["query"]["per_page"] == "1"
    lists = [e.body for e in world.transport.exchanges if e.request.url.path.endswith("/auth/tokens/")]
    assert len(lists) == 2
    assert not any(created.token.get_secret_value().encode() in body or b"iconik-emulator-token" in body
                   for body in lists)  # fmt: skip


async def test_a_token_revoked_by_id_stops_working(world, iconik) -> None:
    created = await iconik.create_app_token()
    await iconik.revoke_app_token(created.id)
    assert not await iconik.token_is_valid(created.token)
    with pytest.raises(NotFound):
        await iconik.revoke_app_token(created.id)


async def test_a_token_for_an_unknown_app_is_not_found(world, iconik) -> None:
    world.check_responses = False
    with pytest.raises(NotFound) as caught:
        await iconik.create_app_token("some-other-app")
    assert "App does not exist" in caught.value.detail


async def test_token_values_never_reach_the_request_log(world, iconik) -> None:
    new = await iconik.create_app_token()
    await iconik.token_is_valid(new.token)
    assert all(seen["headers"].get("Auth-Token") in (None, "***") for seen in world.faults.requests)
    assert new.token.get_secret_value() not in repr(new)
