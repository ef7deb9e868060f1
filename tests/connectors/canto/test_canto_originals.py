"""Streaming an asset's original out of Canto: chunk by chunk, whole, and failing clearly."""

from __future__ import annotations

import hashlib

import httpx
import pytest

from connectors.emulators.canto import ORIGINAL_BLOCK
from connectors.errors import AuthError, NotFound, Unavailable

VIDEO = "spring-launch-2025-hero-30s.mp4"
MIB = 1024 * 1024


async def control_sizes(world, asset_id: str, size: int) -> dict[str, object]:
    async with httpx.AsyncClient(base_url=world.url) as control:
        response = await control.put(f"/_control/canto/originals/{asset_id}", json={"size": size})
        response.raise_for_status()
        return response.json()


async def test_an_original_streams_in_chunks_and_arrives_byte_for_byte(world, canto) -> None:
    ref = world.ref(VIDEO)
    served = await control_sizes(world, ref.id, 3 * MIB + 17)
    digest = hashlib.sha256()
    sizes = []
    async with canto.open_original(ref.scheme, ref.id) as download:
        assert download.size == 3 * MIB + 17
        assert download.name == VIDEO
        assert download.content_type == "video/mp4"
        async for chunk in download.chunks:
            sizes.append(len(chunk))
            digest.update(chunk)
    assert sum(sizes) == served["size"]
    assert digest.hexdigest() == served["sha256"]
    assert max(sizes) <= ORIGINAL_BLOCK
    assert len(sizes) > 40  # many pieces, not one body


async def test_the_original_is_fetched_from_the_direct_url_with_our_token(world, canto) -> None:
    ref = world.ref(VIDEO)
    async with canto.open_original(ref.scheme, ref.id) as download:
        async for _ in download.chunks:
            pass
    (fetch,) = world.requests_to(f"/direct/video/{ref.id}/original")
    assert fetch["headers"]["Authorization"] == "***"


async def test_an_empty_original_streams_nothing(world, canto) -> None:
    ref = world.ref(VIDEO)
    await control_sizes(world, ref.id, 0)
    async with canto.open_original(ref.scheme, ref.id) as download:
        assert download.size == 0
        assert [chunk async for chunk in download.chunks] == []


async def test_the_same_asset_and_size_always_serve_the_same_bytes(world) -> None:
    ref = world.ref(VIDEO)
    first = await control_sizes(world, ref.id, MIB)
    again = await control_sizes(world, ref.id, MIB)
    other = await control_sizes(world, world.ref("acme-logo-primary.png").id, MIB)
    assert first["sha256"] == again["sha256"]
    assert first["sha256"] != other["sha256"]


async def test_a_missing_original_is_not_found(world, canto) -> None:
    ref = world.ref(VIDEO)
    world.fault(path=f"/direct/video/{ref.id}/original", status=404, times=1)
    with pytest.raises(NotFound) as caught:
        async with canto.open_original(ref.scheme, ref.id):
            pass
    assert caught.value.vendor == "canto"
    assert caught.value.status == 404
    assert caught.value.method == "GET"


async def test_a_refused_token_on_the_download_is_refreshed_once_then_an_auth_error(world, canto) -> None:
    ref = world.ref(VIDEO)
    world.fault(path="/direct/", status=401, times=2)
    with pytest.raises(AuthError) as caught:
        async with canto.open_original(ref.scheme, ref.id):
            pass
    assert "canto GET" in str(caught.value) and "-> 401" in str(caught.value)
    assert len(world.requests_to(f"/direct/video/{ref.id}/original")) == 2


async def test_a_server_error_on_the_download_is_unavailable_and_not_retried(world, canto) -> None:
    ref = world.ref(VIDEO)
    world.fault(path="/direct/", status=503, times=1)
    with pytest.raises(Unavailable):
        async with canto.open_original(ref.scheme, ref.id):
            pass
    assert len(world.requests_to(f"/direct/video/{ref.id}/original")) == 1


async def test_a_size_that_is_not_a_byte_count_is_refused(world) -> None:
    async with httpx.AsyncClient(base_url=world.url) as control:
        response = await control.put(f"/_control/canto/originals/{world.ref(VIDEO).id}", json={"size": -1})
    assert response.status_code == 400
