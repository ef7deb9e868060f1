"""Putting a file into iconik through the files API, streamed, and failing at any step clearly.

Each test proves its outcome from the emulator's own state: the bytes it received (size and
digests), the files, file sets and formats of the asset, and the jobs it started.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator

import httpx
import pytest

from connectors.errors import BadRequest, NotFound, Unavailable
from connectors.iconik import IconikAssetUpdate, IconikUploadFailed, IconikUploadStep

ORIGINAL = "trail-runner-x-side-studio.jpg"
PAYLOAD = bytes(range(256)) * 4096 + b"tail"  # 1 MiB and a little, in odd-sized chunks


async def chunks_of(data: bytes, size: int = 65_537) -> AsyncIterator[bytes]:
    for offset in range(0, len(data), size):
        yield data[offset : offset + size]


async def upload(iconik, data: bytes = PAYLOAD, **kw):
    defaults = {"size": len(data), "original_name": ORIGINAL, "title": ORIGINAL, "poll_interval": 1}
    return await iconik.upload_original(chunks_of(data), **{**defaults, **kw})


async def test_a_new_asset_gets_its_original_uploaded_whole_and_ready(world, iconik) -> None:
    done = await upload(iconik, external_id="canto:image:abc123", content_type="image/jpeg")

    assert done.asset_created and done.format_created
    asset = world.domain.assets[done.asset_id]
    assert (asset["title"], asset["external_id"]) == (ORIGINAL, "canto:image:abc123")
    (file,) = world.domain.files[done.asset_id]
    assert (file["status"], file["size"], file["original_name"]) == ("CLOSED", len(PAYLOAD), ORIGINAL)
    assert file["storage_id"] == world.storage_id("ACME Main Files")
    received = world.domain.received[file["id"]]
    assert received == {
        "size": len(PAYLOAD),
        "sha256": hashlib.sha256(PAYLOAD).hexdigest(),
        "md5": hashlib.md5(PAYLOAD).hexdigest(),
    }
    assert file["checksum"] == received["md5"] == done.md5
    assert done.sha256 == received["sha256"]
    (fmt,) = world.domain.formats[done.asset_id]
    assert (fmt["name"], fmt["status"], fmt["storage_methods"]) == ("ORIGINAL", "ACTIVE", ["S3"])
    transcode = world.domain.jobs[done.ready_job_id]
    assert (transcode["type"], transcode["status"], transcode["object_id"]) == (
        "TRANSCODE",
        "FINISHED",
        done.asset_id,
    )


async def test_the_steps_follow_the_documented_order(world, iconik) -> None:
    done = await upload(iconik)
    calls = [(seen["method"], seen["path"]) for seen in world.faults.requests]
    asset = done.asset_id
    assert calls[:1] == [("POST", "/API/assets/v1/assets/")]
    assert ("POST", f"/API/files/v1/assets/{asset}/formats/") in calls
    order = [
        calls.index(("POST", f"/API/files/v1/assets/{asset}/formats/")),
        calls.index(("POST", f"/API/files/v1/assets/{asset}/file_sets/")),
        calls.index(("POST", f"/API/files/v1/assets/{asset}/files/")),
        calls.index(("PUT", f"/_uploads/{done.file_id}")),
        calls.index(("PATCH", f"/API/files/v1/assets/{asset}/files/{done.file_id}/")),
    ]
    assert order == sorted(order)
    (close,) = world.requests_to(f"/files/{done.file_id}/", "PATCH")
    assert close["json"]["status"] == "CLOSED"
    assert close["json"]["checksum"] == hashlib.md5(PAYLOAD).hexdigest()


async def test_the_upload_url_never_receives_our_iconik_token(world, iconik) -> None:
    done = await upload(iconik)
    (put,) = world.requests_to(f"/_uploads/{done.file_id}", "PUT")
    assert "Auth-Token" not in put["headers"] and "App-ID" not in put["headers"]


async def test_an_existing_asset_found_by_external_id_is_reused_not_duplicated(world, iconik) -> None:
    existing = await iconik.create_asset(IconikAssetUpdate(title="empty", external_id="canto:image:e1"))
    done = await upload(iconik, external_id="canto:image:e1")
    assert done.asset_id == existing.id and not done.asset_created
    assert [a for a in world.domain.assets.values() if a["external_id"] == "canto:image:e1"] == [
        world.domain.assets[existing.id]
    ]


async def test_an_asset_with_an_active_original_format_gets_a_new_file_set_under_it(world, iconik) -> None:
    asset_id = world.asset_id("kids-explorer-playground.jpg")
    (seeded_format,) = world.domain.formats[asset_id]
    done = await upload(iconik, asset_id=asset_id)
    assert done.format_id == seeded_format["id"] and not done.format_created
    assert len(world.domain.files[asset_id]) == 2


@pytest.mark.parametrize(
    ("step", "path", "method"),
    [
        (IconikUploadStep.ASSET, "/API/assets/v1/assets/$", "POST"),
        (IconikUploadStep.FORMAT, "/formats/$", "POST"),
        (IconikUploadStep.FILE_SET, "/file_sets/$", "POST"),
        (IconikUploadStep.FILE, "/files/$", "POST"),
        (IconikUploadStep.UPLOAD, "^/_uploads/", "PUT"),
        (IconikUploadStep.CLOSE, "/files/[^/]+/$", "PATCH"),
    ],
)
async def test_a_refused_step_names_itself_and_hands_back_what_was_created(world, iconik, step, path, method):
    world.fault(path=path, method=method, status=403, body={"errors": ["Forbidden for this token"]})
    with pytest.raises(IconikUploadFailed) as caught:
        await upload(iconik)
    failed = caught.value
    assert failed.step is step
    assert failed.status == 403 and failed.vendor == "iconik"
    assert f"step {step.value!r}" in str(failed) and "Forbidden for this token" in str(failed)
    created = failed.upload
    after_asset = step is not IconikUploadStep.ASSET
    assert (created.asset_id in world.domain.assets) is after_asset
    assert created.asset_created is after_asset
    assert (created.format_id is not None) is (step not in (IconikUploadStep.ASSET, IconikUploadStep.FORMAT))
    assert (created.file_id is not None) is (step in (IconikUploadStep.UPLOAD, IconikUploadStep.CLOSE))


async def test_a_failed_transcode_fails_the_ready_step(world, iconik) -> None:
    async with httpx.AsyncClient(base_url=world.url) as control:
        queued = {"status": "FAILED", "error_message": "Transcoder crashed", "job_type": "TRANSCODE"}
        (await control.post("/_control/iconik/job_outcomes", json=queued)).raise_for_status()
    with pytest.raises(IconikUploadFailed) as caught:
        await upload(iconik)
    assert caught.value.step is IconikUploadStep.READY
    assert "Transcoder crashed" in str(caught.value)
    assert world.domain.jobs[caught.value.upload.ready_job_id]["status"] == "FAILED"


async def test_a_stream_shorter_than_declared_is_refused_and_nothing_closes(world, iconik) -> None:
    with pytest.raises(IconikUploadFailed) as caught:
        await upload(iconik, data=PAYLOAD[:-10], size=len(PAYLOAD))
    assert caught.value.step is IconikUploadStep.UPLOAD
    assert isinstance(caught.value.cause, Unavailable)
    (file,) = world.domain.files[caught.value.upload.asset_id]
    assert file["status"] == "OPEN"


async def test_closing_a_file_whose_bytes_never_arrived_is_a_bad_request(world, iconik) -> None:
    asset = await iconik.create_asset(IconikAssetUpdate(title="x"))
    fmt = await iconik.create_format(asset.id, storage_methods=["S3"])
    storage = world.storage_id("ACME Main Files")
    file_set = await iconik.create_file_set(asset.id, format_id=fmt.id, storage_id=storage, name="x")
    file = await iconik.create_file(
        asset.id, file_set_id=file_set.id, format_id=fmt.id, storage_id=storage, original_name="x", size=5
    )
    assert file.upload_url and file.status == "OPEN"
    world.check_responses = False
    with pytest.raises(BadRequest) as caught:
        await iconik.close_file(asset.id, file, size=5)
    assert "No bytes were uploaded" in caught.value.detail
    await iconik.upload_bytes(file.upload_url, chunks_of(b"12345"), size=5, content_type="text/plain")
    with pytest.raises(BadRequest, match="checksum: Does not match"):
        await iconik.close_file(asset.id, file, size=5, checksum=hashlib.md5(b"54321").hexdigest())
    closed = await iconik.close_file(asset.id, file, size=5, checksum=hashlib.md5(b"12345").hexdigest())
    assert closed.status == "CLOSED"


async def test_compensation_deletes_the_file_set_and_the_asset_we_created(world, iconik) -> None:
    done = await upload(iconik)
    await iconik.delete_file_set(done.asset_id, done.file_set_id)
    await iconik.delete_format(done.asset_id, done.format_id)
    await iconik.delete_asset(done.asset_id)

    assert world.domain.files[done.asset_id] == []
    assert done.file_id not in world.domain.received
    (file_set,) = world.domain.file_sets[done.asset_id]
    assert file_set["status"] == "DELETED"
    assert world.domain.formats[done.asset_id][0]["status"] == "DELETED"
    assert (await iconik.get_asset(done.asset_id)).status == "DELETED"
    with pytest.raises(NotFound):
        await iconik.delete_file_set(done.asset_id, "00000000-0000-4000-8000-000000000000")


async def test_compensation_removes_a_release_only_metadata_value(world, iconik) -> None:
    asset_id = world.asset_id("kids-explorer-playground.jpg")
    view = world.view_id("Release")
    await iconik.put_asset_metadata(asset_id, view, {"partner_destination": ["Retailer A"]}, mode="append")
    await iconik.put_asset_metadata(asset_id, view, {"partner_destination": ["Retailer A"]}, mode="delete")
    assert world.domain.metadata[(asset_id, view)]["partner_destination"] == []
    assert world.domain.metadata[(asset_id, view)]["campaign"] == ["Back to School 2025"]


async def test_the_emulator_reports_what_an_upload_received_over_http(world, iconik) -> None:
    done = await upload(iconik)
    async with httpx.AsyncClient(base_url=world.url) as control:
        answer = (await control.get(f"/_control/iconik/files/{done.file_id}")).json()
    assert answer["received"]["sha256"] == hashlib.sha256(PAYLOAD).hexdigest()
    assert answer["status"] == "CLOSED"


async def test_a_file_created_without_an_upload_url_asks_for_a_signed_one(world, iconik) -> None:
    asset = await iconik.create_asset(IconikAssetUpdate(title="x"))
    fmt = await iconik.create_format(asset.id, storage_methods=["B2"])
    storage = world.storage_id("ACME Main Files")
    file_set = await iconik.create_file_set(asset.id, format_id=fmt.id, storage_id=storage, name="x")
    file = await iconik.create_file(
        asset.id, file_set_id=file_set.id, format_id=fmt.id, storage_id=storage, original_name="x", size=1
    )
    again = await iconik.get_file(asset.id, file.id, signed_upload_url=True)
    assert again.upload_url
    (ask,) = world.requests_to(f"/files/{file.id}/", "GET")
    assert ask["query"] == {"generate_signed_post_url": "true"}
