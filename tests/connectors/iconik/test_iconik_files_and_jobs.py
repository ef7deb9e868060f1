"""iconik files, formats, storages, transfer jobs and polling them to a terminal state."""

from __future__ import annotations

import httpx
import pytest

from connectors.errors import NotFound, Unavailable
from connectors.iconik import IconikJobStatus, IconikJobTimeout

VIDEO = "spring-launch-2025-hero-30s.mp4"


async def test_files_and_formats_of_a_video_page_with_last_id(world, iconik) -> None:
    asset_id = world.asset_id(VIDEO)
    files = [file async for file in iconik.list_files(asset_id, per_page=1)]
    assert [file.name for file in files] == [VIDEO, "spring-launch-2025-hero-30s_proxy.mp4"]
    assert {file.storage_id for file in files} == {
        world.storage_id("ACME Main Files"),
        world.storage_id("ACME Proxies"),
    }
    second_page = world.requests_to(f"/assets/{asset_id}/files/")[1]
    assert second_page["query"]["last_id"] == files[0].id
    formats = [fmt.name async for fmt in iconik.list_formats(asset_id, per_page=1)]
    assert formats == ["ORIGINAL", "PPRO_PROXY"]


async def test_file_download_url_serves_the_file(world, iconik) -> None:
    asset_id = world.asset_id(VIDEO)
    original, _proxy = [file async for file in iconik.list_files(asset_id)]
    url = await iconik.file_download_url(asset_id, original.id)
    async with httpx.AsyncClient() as plain:
        response = await plain.get(url)
    assert response.status_code == 200
    assert response.content == f"emulated bytes of file {original.id}".encode()


async def test_download_url_for_a_file_of_another_asset_is_not_found(world, iconik) -> None:
    (other,) = [file async for file in iconik.list_files(world.asset_id("urban-commuter-city-night.jpg"))]
    with pytest.raises(NotFound):
        await iconik.file_download_url(world.asset_id(VIDEO), other.id)


async def test_export_storages_are_one_per_partner_destination(iconik) -> None:
    exports = [storage async for storage in iconik.list_storages(purpose="EXPORTS")]
    assert {storage.name: storage.status for storage in exports} == {
        "Export - Broadcast Partner": "ACTIVE",
        "Export - Legacy FTP": "FAILING",
        "Export - Retailer A": "ACTIVE",
        "Export - Social Agency": "ACTIVE",
    }
    assert all(storage.purpose == "EXPORTS" for storage in exports)


async def test_all_storages_include_files_proxies_and_archive(iconik) -> None:
    purposes = {storage.purpose async for storage in iconik.list_storages()}
    assert purposes == {"FILES", "PROXIES", "EXPORTS", "ARCHIVE"}


async def test_copy_job_moves_through_ready_started_finished_and_copies_the_original(world, iconik) -> None:
    asset_id = world.asset_id(VIDEO)
    target = world.storage_id("Export - Broadcast Partner")
    job_id = await iconik.copy_to_storage(target, [asset_id])
    seen = [(await iconik.get_job(job_id)).status for _ in range(3)]
    assert seen == ["READY", "STARTED", "FINISHED"]
    files = [file async for file in iconik.list_files(asset_id)]
    assert [file.name for file in files if file.storage_id == target] == [VIDEO]
    assert any(file.storage_id == world.storage_id("ACME Main Files") for file in files)
    (bulk,) = world.requests_to(f"/storages/{target}/bulk/", "POST")
    assert bulk["json"] == {
        "object_ids": [asset_id],
        "object_type": "assets",
        "format_name": "ORIGINAL",
        "delete_original": False,
    }


async def test_wait_for_job_polls_at_the_interval_until_finished(world, iconik) -> None:
    job_id = await iconik.copy_to_storage(world.storage_id("Export - Retailer A"), [world.asset_id(VIDEO)])
    job = await iconik.wait_for_job(job_id, poll_interval=5, timeout=60)
    assert job.status == IconikJobStatus.FINISHED
    assert job.succeeded and job.is_terminal
    assert world.sleep.delays == [5, 5]
    history = [entry async for entry in iconik.asset_history(world.asset_id(VIDEO))]
    assert history[0].operation_type == "TRANSFER"
    assert history[0].job_id == job_id


async def test_wait_for_job_uses_the_sleep_it_is_given(world, iconik) -> None:
    naps: list[float] = []

    async def nap(seconds: float) -> None:
        naps.append(seconds)

    job_id = await iconik.copy_to_storage(world.storage_id("Export - Retailer A"), [world.asset_id(VIDEO)])
    await iconik.wait_for_job(job_id, poll_interval=1.5, timeout=60, sleep=nap)
    assert naps == [1.5, 1.5]
    assert world.sleep.delays == []


async def test_move_removes_the_source_file_once_finished(world, iconik) -> None:
    asset_id = world.asset_id("acme-brand-guidelines-2025.pdf")
    archive = world.storage_id("Deep Archive")
    job = await iconik.wait_for_job(await iconik.move_to_storage(archive, [asset_id]), poll_interval=1)
    assert job.succeeded
    files = [file async for file in iconik.list_files(asset_id)]
    assert [file.storage_id for file in files] == [archive]


async def test_transfer_to_a_failing_storage_ends_failed_with_iconiks_error(world, iconik) -> None:
    asset_id = world.asset_id(VIDEO)
    job_id = await iconik.copy_to_storage(world.storage_id("Export - Legacy FTP"), [asset_id])
    job = await iconik.wait_for_job(job_id, poll_interval=1)
    assert job.status == IconikJobStatus.FAILED
    assert not job.succeeded
    assert job.error_message == "Storage Export - Legacy FTP is failing"
    assert len([file async for file in iconik.list_files(asset_id)]) == 2  # nothing copied


@pytest.mark.parametrize(
    ("outcome", "succeeded"),
    [("FAILED", False), ("ABORTED", False), ("SKIPPED", False), ("FINISHED_WITH_WARNING", True)],
)
async def test_wait_for_job_returns_every_terminal_state(world, iconik, outcome, succeeded) -> None:
    async with httpx.AsyncClient(base_url=world.url) as control:
        queued = await control.post(
            "/_control/iconik/job_outcomes",
            json={"status": outcome, "error_message": "disk full", "times": 1},
        )
    assert queued.status_code == 201
    job_id = await iconik.copy_to_storage(world.storage_id("Export - Retailer A"), [world.asset_id(VIDEO)])
    job = await iconik.wait_for_job(job_id, poll_interval=1)
    assert job.status == outcome
    assert job.succeeded is succeeded
    assert job.error_message == "disk full"
    following = await iconik.copy_to_storage(world.storage_id("Export - Retailer A"), [world.asset_id(VIDEO)])
    assert (await iconik.wait_for_job(following, poll_interval=1)).status == "FINISHED"


async def test_wait_for_job_times_out_with_the_last_state_seen(slow_job_world) -> None:
    iconik = slow_job_world.connector()
    asset_id = next(iter(slow_job_world.domain.assets))
    job_id = await iconik.copy_to_storage(slow_job_world.storage_id("Export - Retailer A"), [asset_id])
    with pytest.raises(IconikJobTimeout) as caught:
        await iconik.wait_for_job(job_id, poll_interval=2, timeout=7)
    assert caught.value.job.status == "READY"
    assert caught.value.job.id == job_id
    assert slow_job_world.sleep.delays == [2, 2, 2]


async def test_transfer_to_an_unknown_storage_raises_not_found(world, iconik) -> None:
    with pytest.raises(NotFound) as caught:
        await iconik.copy_to_storage("5d7c1a2b-0000-4000-8000-000000000000", [world.asset_id(VIDEO)])
    assert caught.value.detail == "Storage not found"


async def test_job_creation_is_not_retried_after_a_server_error(world, iconik) -> None:
    world.fault(path="/bulk/", status=500, times=1)
    with pytest.raises(Unavailable):
        await iconik.copy_to_storage(world.storage_id("Export - Retailer A"), [world.asset_id(VIDEO)])
    assert len(world.requests_to("/bulk/")) == 1
    assert world.domain.jobs == {}
