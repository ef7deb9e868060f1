"""iconik metadata views and asset metadata values (overwrite, append, delete)."""

from __future__ import annotations

import pytest

from connectors.errors import BadRequest, NotFound


async def test_views_list_release_and_technical(iconik) -> None:
    views = await iconik.list_metadata_views()
    assert sorted(view.name for view in views) == ["Release", "Technical"]


async def test_view_fields_carry_types_and_drop_down_options(world, iconik) -> None:
    view = await iconik.get_metadata_view(world.view_id("Release"))
    fields = {field.name: field for field in view.view_fields}
    assert fields["release_status"].field_type == "drop_down"
    assert [option.value for option in fields["release_status"].options] == [
        "pending",
        "approved",
        "released",
        "withdrawn",
    ]
    assert fields["partner_destination"].multi is True
    assert fields["expires_on"].field_type == "date"


async def test_unknown_view_raises_not_found(iconik) -> None:
    with pytest.raises(NotFound) as caught:
        await iconik.get_metadata_view("0b1e3f55-0000-4000-8000-000000000000")
    assert caught.value.detail == "Metadata view doesn't exist"


async def test_asset_metadata_reads_the_seeded_release_values(world, iconik) -> None:
    asset_id = world.asset_id("spring-launch-2025-cutdown-15s.mp4")
    values = await iconik.get_asset_metadata(asset_id, world.view_id("Release"))
    assert values.object_id == asset_id
    assert values.value("release_status") == "approved"
    assert values.values("region") == ["EMEA"]
    assert values.values("partner_destination") == []


async def test_overwrite_append_and_delete_modes(world, iconik) -> None:
    asset_id = world.asset_id("spring-launch-2025-cutdown-15s.mp4")
    view_id = world.view_id("Release")
    written = await iconik.put_asset_metadata(
        asset_id, view_id, {"partner_destination": ["Retailer A"], "release_status": ["released"]}
    )
    assert written.values("partner_destination") == ["Retailer A"]
    assert written.value("release_status") == "released"
    appended = await iconik.put_asset_metadata(
        asset_id, view_id, {"partner_destination": ["Broadcast Partner"]}, mode="append"
    )
    assert appended.values("partner_destination") == ["Retailer A", "Broadcast Partner"]
    deleted = await iconik.put_asset_metadata(
        asset_id, view_id, {"partner_destination": ["Retailer A"]}, mode="delete"
    )
    assert deleted.values("partner_destination") == ["Broadcast Partner"]
    assert (await iconik.get_asset_metadata(asset_id, view_id)).values("partner_destination") == [
        "Broadcast Partner"
    ]
    first_put = world.requests_to(f"/assets/{asset_id}/views/{view_id}/", "PUT")[0]
    assert first_put["json"]["metadata_values"]["partner_destination"] == {
        "field_values": [{"value": "Retailer A"}],
        "mode": "overwrite",
    }


async def test_metadata_write_is_recorded_in_the_asset_history(world, iconik) -> None:
    asset_id = world.asset_id("kids-explorer-playground.jpg")
    await iconik.put_asset_metadata(asset_id, world.view_id("Release"), {"rights": ["NA print and digital"]})
    history = [entry async for entry in iconik.asset_history(asset_id)]
    assert history[0].operation_type == "METADATA"
    assert history[0].operation_description == "Release view updated"


async def test_field_outside_the_view_is_rejected_naming_the_field(world, iconik) -> None:
    with pytest.raises(BadRequest) as caught:
        await iconik.put_asset_metadata(
            world.asset_id("kids-explorer-playground.jpg"),
            world.view_id("Release"),
            {"video_codec": ["h264"]},
        )
    assert caught.value.detail == "video_codec: Field is not part of view 'Release'."


async def test_value_outside_the_drop_down_options_is_rejected_and_nothing_is_written(world, iconik) -> None:
    asset_id = world.asset_id("kids-explorer-playground.jpg")
    view_id = world.view_id("Release")
    with pytest.raises(BadRequest) as caught:
        await iconik.put_asset_metadata(asset_id, view_id, {"region": ["Mars"], "rights": ["x"]})
    assert caught.value.detail.startswith("region: Values must be among:")
    values = await iconik.get_asset_metadata(asset_id, view_id)
    assert values.values("region") == ["NA"]
    assert values.values("rights") == []
