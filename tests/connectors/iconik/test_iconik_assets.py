"""iconik assets: read, patch, replace, history paging, auth and error handling."""

from __future__ import annotations

import pytest

from connectors.errors import AuthError, BadRequest, InvalidResponse, NotFound
from connectors.iconik import IconikAssetUpdate

from .conftest import APP_ID


async def test_get_asset_returns_title_status_and_the_canto_link(world, iconik) -> None:
    asset_id = world.asset_id("spring-launch-2025-hero-30s.mp4")
    asset = await iconik.get_asset(asset_id)
    assert asset.title == "spring-launch-2025-hero-30s.mp4"
    assert asset.status == "ACTIVE"
    assert asset.archive_status == "NOT_ARCHIVED"
    assert asset.external_id is not None and asset.external_id.startswith("canto:video:")
    assert asset.versions[0].version_number == 1
    assert world.collection_id("Broadcast Partner - Q3") in asset.in_collections


async def test_every_call_carries_app_id_and_auth_token(world, iconik) -> None:
    await iconik.get_asset(world.asset_id("spring-launch-2025-hero-30s.mp4"))
    (request,) = world.transport.exchanges
    assert request.request.headers["App-ID"] == APP_ID
    assert request.request.headers["Auth-Token"] == "iconik-emulator-token"


async def test_unknown_asset_raises_not_found_with_iconiks_message(iconik) -> None:
    with pytest.raises(NotFound) as caught:
        await iconik.get_asset("4f0d6a1e-0000-4000-8000-000000000000")
    assert caught.value.detail == "Asset does not exist"


async def test_wrong_auth_token_raises_auth_error_without_leaking_it(world) -> None:
    iconik = world.connector(auth_token="stolen-or-stale-token")
    with pytest.raises(AuthError) as caught:
        await iconik.get_asset(world.asset_id("spring-launch-2025-hero-30s.mp4"))
    assert caught.value.detail == "Token is invalid"
    assert "stolen-or-stale-token" not in str(caught.value)


async def test_patch_sends_only_the_fields_set_and_returns_the_updated_asset(world, iconik) -> None:
    asset_id = world.asset_id("trail-runner-x-hero-front.jpg")
    asset = await iconik.update_asset(asset_id, IconikAssetUpdate(category="released", warning=None))
    assert asset.category == "released"
    assert asset.warning is None
    assert asset.title == "trail-runner-x-hero-front.jpg"
    (patch,) = world.requests_to(f"/assets/{asset_id}/", "PATCH")
    # iconik's spec requires the title in PATCH bodies: the current one is read and sent back.
    assert patch["json"] == {
        "category": "released",
        "warning": None,
        "title": "trail-runner-x-hero-front.jpg",
    }


async def test_put_replaces_the_writable_fields(world, iconik) -> None:
    asset_id = world.asset_id("trail-runner-x-hero-front.jpg")
    asset = await iconik.replace_asset(
        asset_id, IconikAssetUpdate(title="Trail Runner X - hero (front)", external_id="canto:image:abc")
    )
    assert asset.title == "Trail Runner X - hero (front)"
    assert asset.external_id == "canto:image:abc"


async def test_put_without_a_title_is_refused_before_sending(world, iconik) -> None:
    with pytest.raises(ValueError):
        await iconik.replace_asset(
            world.asset_id("trail-runner-x-hero-front.jpg"), IconikAssetUpdate(category="x")
        )
    assert world.transport.exchanges == []


async def test_invalid_value_is_reported_with_the_field_iconik_names(world, iconik) -> None:
    world.check_responses = False
    with pytest.raises(BadRequest) as caught:
        await iconik.update_asset(
            world.asset_id("trail-runner-x-hero-front.jpg"), IconikAssetUpdate(title="")
        )
    assert caught.value.detail == "title: Not a valid string."


async def test_history_follows_next_url_across_pages_newest_first(world, iconik) -> None:
    asset_id = world.asset_id("urban-commuter-city-night.jpg")
    entries = [entry async for entry in iconik.asset_history(asset_id, per_page=1)]
    assert [entry.operation_type for entry in entries] == ["METADATA", "TRANSCODE"]
    pages = world.requests_to(f"/assets/{asset_id}/history/")
    assert [page["query"].get("page") for page in pages] == [None, "2"]


async def test_malformed_json_raises_invalid_response(world, iconik) -> None:
    world.fault(path="/API/assets/v1/assets/", malformed_json=True, times=1)
    with pytest.raises(InvalidResponse):
        await iconik.get_asset(world.asset_id("urban-commuter-city-night.jpg"))


async def test_server_errors_are_retried_then_the_call_succeeds(world, iconik) -> None:
    world.fault(path="/API/assets/v1/assets/", status=502, times=2)
    asset = await iconik.get_asset(world.asset_id("urban-commuter-city-night.jpg"))
    assert asset.title == "urban-commuter-city-night.jpg"
    assert len(world.sleep.delays) == 2


async def test_next_url_that_loops_is_refused(world, iconik) -> None:
    asset_id = world.asset_id("urban-commuter-city-night.jpg")
    loop = f"/API/assets/v1/assets/{asset_id}/history/?page=2&per_page=1"
    world.fault(path="/history/", status=200, body={"objects": [], "next_url": loop})
    with pytest.raises(InvalidResponse):
        _ = [entry async for entry in iconik.asset_history(asset_id)]
