"""iconik approvals, collections and webhook registration."""

from __future__ import annotations

import pytest

from connectors.errors import BadRequest, NotFound
from connectors.iconik import IconikApprovalStatus


async def test_approvals_list_the_reviewers_decision(world, iconik) -> None:
    asset_id = world.asset_id("spring-launch-2025-social-9x16.mp4")
    (approval,) = await iconik.get_approvals(asset_id)
    assert approval.status == IconikApprovalStatus.REQUESTED
    assert approval.object_id == asset_id
    assert approval.object_type == "assets"


async def test_asset_without_approvals_has_none(world, iconik) -> None:
    assert await iconik.get_approvals(world.asset_id("alpine-pro-athlete-interview.mp4")) == []


async def test_setting_our_approval_adds_it_next_to_the_reviewers(world, iconik) -> None:
    asset_id = world.asset_id("spring-launch-2025-social-9x16.mp4")
    ours = await iconik.set_approval(asset_id, IconikApprovalStatus.APPROVED)
    assert ours.status == "APPROVED"
    assert ours.user == world.domain.user_id
    statuses = sorted(approval.status for approval in await iconik.get_approvals(asset_id))
    assert statuses == ["APPROVED", "REQUESTED"]
    history = [entry async for entry in iconik.asset_history(asset_id)]
    assert history[0].operation_type == "APPROVE"
    (put,) = world.requests_to(f"/assets/{asset_id}/approvals/", "PUT")
    assert put["json"] == {"status": "APPROVED"}


async def test_approvals_of_an_unknown_asset_are_not_found(iconik) -> None:
    with pytest.raises(NotFound):
        await iconik.get_approvals("9a8b7c6d-0000-4000-8000-000000000000")


async def test_collection_and_its_contents_include_subcollections(world, iconik) -> None:
    releases = await iconik.get_collection(world.collection_id("Releases"))
    assert releases.title == "Releases"
    assert releases.is_root
    contents = [item async for item in iconik.collection_contents(releases.id, per_page=1)]
    assert [(item.title, item.object_type) for item in contents] == [
        ("Retailer A - Spring 2025", "collections"),
        ("Broadcast Partner - Q3", "collections"),
    ]


async def test_adding_an_asset_to_a_collection_shows_in_both(world, iconik) -> None:
    collection_id = world.collection_id("Retailer A - Spring 2025")
    asset_id = world.asset_id("kids-explorer-playground.jpg")
    await iconik.add_to_collection(collection_id, asset_id)
    titles = [item.title async for item in iconik.collection_contents(collection_id)]
    assert titles[-1] == "kids-explorer-playground.jpg"
    assert collection_id in (await iconik.get_asset(asset_id)).in_collections


async def test_adding_an_unknown_asset_to_a_collection_is_not_found(world, iconik) -> None:
    with pytest.raises(NotFound):
        await iconik.add_to_collection(
            world.collection_id("Retailer A - Spring 2025"), "1c2d3e4f-0000-4000-8000-000000000000"
        )


async def test_register_webhook_with_our_secret_header(world, iconik) -> None:
    hook = await iconik.register_webhook(
        "https://opsgate.acme.example/webhooks/iconik",
        event_type="assets",
        realm="entity",
        operation="update",
        headers={"X-Opsgate-Webhook-Secret": "s3cr3t-header-value"},
        name="opsgate release tracking",
    )
    assert hook.status == "ENABLED"
    assert hook.event_type == "assets"
    assert "s3cr3t-header-value" not in repr(hook)
    stored = world.domain.webhooks[hook.id]
    assert stored["headers"] == {"X-Opsgate-Webhook-Secret": "s3cr3t-header-value"}
    listed = {listed.id: listed for listed in await iconik.list_webhooks()}
    assert listed[hook.id].url == "https://opsgate.acme.example/webhooks/iconik"
    assert len(listed) == 2  # the seeded legacy hook too


async def test_webhook_with_a_bad_url_is_rejected(iconik) -> None:
    with pytest.raises(BadRequest) as caught:
        await iconik.register_webhook("ftp://nope", event_type="assets", headers={})
    assert caught.value.detail == "url: Not a valid URL."


async def test_deleted_webhook_is_gone(world, iconik) -> None:
    hook = await iconik.register_webhook("https://opsgate.acme.example/h", event_type="assets", headers={})
    await iconik.delete_webhook(hook.id)
    assert hook.id not in {listed.id for listed in await iconik.list_webhooks()}
    with pytest.raises(NotFound):
        await iconik.delete_webhook(hook.id)
