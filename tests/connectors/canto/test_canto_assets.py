"""Canto search, asset details, approval and expiry, downloads and error handling over real HTTP."""

from __future__ import annotations

from datetime import timedelta

import pytest

from connectors.canto import CantoApprovalStatus, CantoAssetRef
from connectors.emulators.canto import original_chunks
from connectors.errors import InvalidResponse, NotFound, RateLimited


async def test_search_pages_with_start_and_limit_until_everything_found_is_read(world, canto) -> None:
    assets = [asset async for asset in canto.search(page_size=5)]
    assert len(assets) == world.seeded_assets
    assert len({asset.id for asset in assets}) == world.seeded_assets
    pages = world.requests_to("/api/v1/search")
    assert [page["query"]["start"] for page in pages] == ["0", "5", "10", "15", "20", "25"]
    assert {page["query"]["limit"] for page in pages} == {"5"}


async def test_search_filters_by_keyword_scheme_and_approval(canto) -> None:
    assets = [asset async for asset in canto.search("sneaker", scheme="image", approval="Approved")]
    assert {asset.name for asset in assets} == {
        "trail-runner-x-hero-front.jpg",
        "trail-runner-x-side-studio.jpg",
        "trail-runner-x-mud-action.jpg",
    }
    assert all(asset.scheme == "image" and asset.approval_status == "Approved" for asset in assets)


async def test_search_accepts_several_schemes(canto) -> None:
    assets = [asset async for asset in canto.search(scheme=["video", "document"])]
    assert {asset.scheme for asset in assets} == {"video", "document"}


async def test_search_ends_on_an_empty_page_even_if_found_claims_more(world, canto) -> None:
    world.fault(path="/api/v1/search", status=200, body={"results": [], "found": 50, "limit": 100})
    assert [asset async for asset in canto.search()] == []
    assert len(world.requests_to("/api/v1/search")) == 1


async def test_asset_details_carry_custom_fields_urls_and_parsed_dates(world, canto) -> None:
    ref = world.ref("trail-runner-x-mud-action.jpg")
    asset = await canto.get_asset(ref.scheme, ref.id)
    assert asset.custom_field("Region") == "EMEA"
    assert asset.custom_field("Product Line") == "Trail Runner X"
    assert asset.custom_field("Campaign") == "Spring Launch 2025"
    assert asset.custom_field("Rights") == "EMEA digital only, until expiry"
    assert asset.expiration_date == world.now + timedelta(days=3)
    assert asset.last_uploaded is not None and asset.last_uploaded < world.now
    assert [album.name_path for album in asset.related_albums] == ["Campaigns/2025/Spring Launch 2025"]
    assert "sneaker" in asset.keyword
    assert asset.url.download and asset.url.download.endswith(f"/image/{ref.id}/download")


async def test_unknown_asset_raises_not_found(canto) -> None:
    with pytest.raises(NotFound) as caught:
        await canto.get_asset("image", "doesnotexist")
    assert caught.value.detail == "The content does not exist"


async def test_batch_get_returns_known_assets_and_omits_unknown_ones(world, canto) -> None:
    refs = [
        world.ref("acme-logo-primary.png"),
        world.ref("spring-launch-2025-hero-30s.mp4"),
        CantoAssetRef(id="doesnotexist", scheme="image"),
    ]
    assets = await canto.get_assets(refs)
    assert {asset.name for asset in assets} == {"acme-logo-primary.png", "spring-launch-2025-hero-30s.mp4"}
    (batch,) = world.requests_to("/api/v1/batch/content")
    assert batch["json"] == [{"id": ref.id, "scheme": ref.scheme} for ref in refs]


async def test_approved_asset_expiring_in_three_days_is_usable_and_flagged_expiring_soon(
    world, canto
) -> None:
    ref = world.ref("trail-runner-x-mud-action.jpg")
    approval = await canto.get_approval(ref.scheme, ref.id)
    assert approval.status == CantoApprovalStatus.APPROVED
    assert approval.is_usable
    assert approval.expires_within(timedelta(days=7))
    assert not approval.expires_within(timedelta(days=1))


async def test_asset_without_expiry_is_usable_and_never_expiring(world, canto) -> None:
    ref = world.ref("acme-logo-primary.png")
    approval = await canto.get_approval(ref.scheme, ref.id)
    assert approval.is_usable
    assert approval.expires_at is None
    assert not approval.expires_within(timedelta(days=3650))


async def test_asset_whose_expiry_passed_is_reported_expired(world, canto) -> None:
    ref = world.ref("trail-runner-x-lifestyle-couple.jpg")  # expired 12 days ago
    approval = await canto.get_approval(ref.scheme, ref.id)
    assert approval.status == CantoApprovalStatus.EXPIRED
    assert approval.is_expired and not approval.is_usable


async def test_approved_asset_is_expired_once_our_clock_passes_its_expiry(world) -> None:
    # Canto flips the status on its own schedule; we must not release in between.
    canto = world.connector(now=lambda: world.now + timedelta(days=3))
    ref = world.ref("urban-commuter-rain-detail.jpg")  # expires in 2 days on Canto's clock
    asset = await canto.get_asset(ref.scheme, ref.id)
    assert asset.approval_status == "Approved"
    approval = canto.approval_of(asset)
    assert approval.status == CantoApprovalStatus.EXPIRED
    assert not approval.is_usable


@pytest.mark.parametrize(
    ("name", "status"),
    [
        ("trail-runner-x-colorways-grid.png", CantoApprovalStatus.PENDING),
        ("spring-launch-2025-social-9x16.mp4", CantoApprovalStatus.RESTRICTED),
        ("acme-logo-legacy-2019.png", CantoApprovalStatus.EXPIRED),
    ],
)
async def test_pending_restricted_and_expired_assets_are_not_usable(world, canto, name, status) -> None:
    ref = world.ref(name)
    approval = await canto.get_approval(ref.scheme, ref.id)
    assert approval.status == status
    assert not approval.is_usable


async def test_download_url_fetches_the_original_with_our_token(world, canto) -> None:
    ref = world.ref("acme-brand-guidelines-2025.pdf")
    url = await canto.download_url(ref.scheme, ref.id)
    response = await canto.client.request("GET", url)
    record = world.library.assets[ref.id]
    assert response.content == b"".join(original_chunks(ref.id, record.size))
    assert response.headers["Content-Type"] == "application/pdf"


async def test_malformed_json_raises_invalid_response(world, canto) -> None:
    ref = world.ref("acme-logo-primary.png")
    world.fault(path="/api/v1/image/", malformed_json=True, times=1)
    with pytest.raises(InvalidResponse) as caught:
        await canto.get_asset(ref.scheme, ref.id)
    assert caught.value.detail == "response body is not valid JSON"


async def test_body_of_the_wrong_shape_raises_invalid_response(world, canto) -> None:
    ref = world.ref("acme-logo-primary.png")
    world.fault(path="/api/v1/image/", status=200, body={"unexpected": True}, times=1)
    with pytest.raises(InvalidResponse) as caught:
        await canto.get_asset(ref.scheme, ref.id)
    assert "CantoAsset" in caught.value.detail


async def test_malformed_canto_date_raises_invalid_response(world, canto) -> None:
    world.fault(path="/api/v1/image/", status=200, body={"id": "x", "scheme": "image", "time": "yesterday"})
    with pytest.raises(InvalidResponse):
        await canto.get_asset("image", "x")


async def test_throttled_call_waits_for_retry_after_then_succeeds(world, canto) -> None:
    ref = world.ref("acme-logo-primary.png")
    world.fault(path="/api/v1/image/", status=429, retry_after=3, times=1)
    asset = await canto.get_asset(ref.scheme, ref.id)
    assert asset.id == ref.id
    assert world.sleep.delays == [3.0]


async def test_server_errors_are_retried_with_backoff(world, canto) -> None:
    ref = world.ref("acme-logo-primary.png")
    world.fault(path="/api/v1/image/", status=503, times=2)
    asset = await canto.get_asset(ref.scheme, ref.id)
    assert asset.id == ref.id
    assert len(world.sleep.delays) == 2


async def test_emulator_rate_limit_is_absorbed_by_honouring_retry_after(throttled_world) -> None:
    canto = throttled_world.connector()
    ref = throttled_world.ref("acme-logo-primary.png")
    for _ in range(3):  # the token request and the first call use the burst of 2
        await canto.get_asset(ref.scheme, ref.id)
    assert throttled_world.sleep.delays == [1.0, 1.0]  # then one call per second


async def test_persistent_throttling_raises_rate_limited_with_the_hint(world, canto) -> None:
    ref = world.ref("acme-logo-primary.png")
    world.fault(path="/api/v1/image/", status=429, retry_after=7)
    with pytest.raises(RateLimited) as caught:
        await canto.get_asset(ref.scheme, ref.id)
    assert caught.value.retry_after == 7.0
    assert world.sleep.delays == [7.0, 7.0]
