"""Canto metadata writes (PUT /batch/edit) and the album tree, album contents and assignment."""

from __future__ import annotations

from datetime import timedelta

import pytest

from connectors.canto import CantoAssetRef, CantoPropertyUpdate, format_canto_date
from connectors.errors import BadRequest, InvalidResponse, NotFound


async def test_custom_field_update_is_visible_on_every_asset(world, canto) -> None:
    refs = [world.ref("alpine-pro-summit.jpg"), world.ref("alpine-pro-athlete-interview.mp4")]
    await canto.update_custom_fields(refs, {"Region": "Global", "Rights": "Worldwide, all media, perpetual"})
    for ref in refs:
        asset = await canto.get_asset(ref.scheme, ref.id)
        assert asset.custom_field("Region") == "Global"
        assert asset.custom_field("Rights") == "Worldwide, all media, perpetual"
    (edit,) = world.requests_to("/api/v1/batch/edit")
    assert edit["method"] == "PUT"
    assert edit["json"]["contents"] == [{"id": ref.id, "scheme": ref.scheme} for ref in refs]
    assert {"propertyId": "Region", "propertyValue": "Global", "action": "", "customField": True} in edit[
        "json"
    ]["properties"]


async def test_standard_property_update_changes_metadata_and_keywords(world, canto) -> None:
    ref = world.ref("alpine-pro-summit.jpg")
    await canto.update_properties(
        [ref],
        [
            CantoPropertyUpdate(property_id="Creator", property_value="Field Team Nepal"),
            CantoPropertyUpdate(property_id="keyword", property_value="released", action="add"),
        ],
    )
    asset = await canto.get_asset(ref.scheme, ref.id)
    assert asset.metadata["Creator"] == "Field Team Nepal"
    assert asset.keyword == ["boot", "mountain", "summit", "released"]


async def test_expiration_can_be_extended_on_an_approved_asset(world, canto) -> None:
    ref = world.ref("trail-runner-x-mud-action.jpg")
    new_expiry = world.now + timedelta(days=90)
    await canto.update_properties(
        [ref],
        [CantoPropertyUpdate(property_id="expirationDate", property_value=format_canto_date(new_expiry))],
    )
    approval = await canto.get_approval(ref.scheme, ref.id)
    assert approval.expires_at == new_expiry
    assert not approval.expires_within(timedelta(days=30))


async def test_expiration_on_a_pending_asset_is_rejected_and_nothing_changes(world, canto) -> None:
    ref = world.ref("trail-runner-x-colorways-grid.png")
    with pytest.raises(BadRequest) as caught:
        await canto.update_properties(
            [ref],
            [
                CantoPropertyUpdate(property_id="Creator", property_value="someone else"),
                CantoPropertyUpdate(property_id="expirationDate", property_value="20300101000000000"),
            ],
        )
    assert caught.value.detail == "an expiration date can only be set on Approved assets"
    asset = await canto.get_asset(ref.scheme, ref.id)
    assert asset.metadata["Creator"] == "ACME Creative Studio"


async def test_batch_edit_answer_other_than_success_raises_invalid_response(world, canto) -> None:
    world.fault(path="/api/v1/batch/edit", status=200, body="failure")
    with pytest.raises(InvalidResponse) as caught:
        await canto.update_custom_fields([world.ref("alpine-pro-summit.jpg")], {"Region": "NA"})
    assert "success" in caught.value.detail


async def test_editing_an_unknown_asset_raises_not_found(canto) -> None:
    with pytest.raises(NotFound):
        await canto.update_custom_fields([CantoAssetRef(id="gone", scheme="image")], {"Region": "NA"})


async def test_tree_lists_top_folders_with_nested_albums(canto) -> None:
    tree = await canto.get_tree()
    assert [node.name for node in tree] == ["Brand", "Campaigns", "Partner Releases", "Products"]
    campaigns = next(node for node in tree if node.name == "Campaigns")
    assert [node.name_path for node in campaigns.walk() if node.is_album] == [
        "Campaigns/2025/Back to School 2025",
        "Campaigns/2025/Spring Launch 2025",
        "Campaigns/Holiday 2024",
    ]


async def test_find_album_by_path_and_read_its_details(canto) -> None:
    album = await canto.find_album("Partner Releases/Retailer A")
    assert album is not None and album.is_album
    details = await canto.get_album(album.id)
    assert details.name == "Retailer A"
    assert details.name_path == "Partner Releases/Retailer A"
    assert await canto.find_album("Partner Releases/Nobody") is None


async def test_album_contents_page_through_every_asset(world, canto) -> None:
    album = await canto.find_album("Campaigns/2025/Spring Launch 2025")
    assert album is not None
    names = [asset.name async for asset in canto.album_contents(album.id, page_size=3)]
    assert len(names) == 8
    assert "spring-launch-2025-press-kit.pdf" in names
    assert len(world.requests_to(f"/api/v1/album/{album.id}")) == 3


async def test_create_album_in_a_folder_then_it_is_in_the_tree(canto) -> None:
    folder = next(node for node in await canto.get_tree() if node.name == "Partner Releases")
    album = await canto.create_album("Retailer C", parent_folder_id=folder.id, description="from opsgate")
    assert album.is_album
    assert album.name_path == "Partner Releases/Retailer C"
    assert (await canto.find_album("Partner Releases/Retailer C")) == album


async def test_create_album_in_an_unknown_folder_raises_not_found(canto) -> None:
    with pytest.raises(NotFound):
        await canto.create_album("Orphans", parent_folder_id="nope")


async def test_assign_to_a_new_album_path_creates_it_and_files_the_assets(world, canto) -> None:
    refs = [world.ref("trail-runner-x-hero-front.jpg"), world.ref("spring-launch-2025-hero-30s.mp4")]
    await canto.assign_to_album("Partner Releases/Retailer B/Spring 2025", refs)
    album = await canto.find_album("Partner Releases/Retailer B/Spring 2025")
    assert album is not None
    assert {asset.id async for asset in canto.album_contents(album.id)} == {ref.id for ref in refs}
    hero = await canto.get_asset(refs[0].scheme, refs[0].id)
    assert "Partner Releases/Retailer B/Spring 2025" in [a.name_path for a in hero.related_albums]
    (assign,) = world.requests_to("/api/v1/batch/album")
    assert assign["json"]["contents"][0] == {
        "id": refs[0].id,
        "scheme": "image",
        "displayName": "trail-runner-x-hero-front.jpg",
    }


async def test_subtree_of_one_folder_can_be_limited_to_one_layer(canto) -> None:
    campaigns = next(node for node in await canto.get_tree() if node.name == "Campaigns")
    children = await canto.get_tree(campaigns.id, layer=1)
    assert [(node.name, node.scheme) for node in children] == [("2025", "folder"), ("Holiday 2024", "album")]
    assert children[0].children == []
