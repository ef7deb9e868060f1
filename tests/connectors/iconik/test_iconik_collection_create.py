"""Listing and creating iconik collections (onboarding routes); every call is checked against the spec."""

from __future__ import annotations

import pytest

from connectors.errors import BadRequest, NotFound


async def test_a_created_collection_routes_to_its_storage_and_sits_in_its_parent(world, iconik) -> None:
    releases = world.collection_id("Releases")
    storage = world.storage_id("Export - Retailer A")

    created = await iconik.create_collection(
        "Partner Globex", parent_id=releases, external_id="opsgate-onboarding:globex@prod", storage_id=storage
    )

    assert (created.title, created.parent_id, created.storage_id) == ("Partner Globex", releases, storage)
    assert created.external_id == "opsgate-onboarding:globex@prod"
    children = [item.title async for item in iconik.collection_contents(releases)]
    assert "Partner Globex" in children


async def test_listing_collections_follows_pages_and_includes_new_ones(world, iconik) -> None:
    await iconik.create_collection("Partner Initech")

    titles = [c.title async for c in iconik.list_collections(per_page=2)]

    assert sorted(titles) == sorted(
        ["Releases", "Retailer A - Spring 2025", "Broadcast Partner - Q3", "Brand Library", "Partner Initech"]
    )
    assert len(world.requests_to("/API/assets/v1/collections/", "GET")) == 3


async def test_a_collection_on_an_unknown_storage_is_refused(world, iconik) -> None:
    with pytest.raises(BadRequest):
        await iconik.create_collection("Partner X", storage_id="4f0d6a1e-0000-4000-8000-000000000000")
    assert not [c async for c in iconik.list_collections() if c.title == "Partner X"]


async def test_a_collection_under_an_unknown_parent_is_not_found(world, iconik) -> None:
    with pytest.raises(NotFound):
        await iconik.create_collection("Partner X", parent_id="4f0d6a1e-0000-4000-8000-000000000000")
