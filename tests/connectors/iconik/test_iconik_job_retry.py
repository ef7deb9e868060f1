"""A failed copy job is never polled back to life: a retry starts a new job, which can succeed."""

from __future__ import annotations

import httpx

VIDEO = "spring-launch-2025-hero-30s.mp4"


async def test_a_retry_after_a_failed_copy_starts_a_new_job_that_finishes(world, iconik) -> None:
    async with httpx.AsyncClient(base_url=world.url) as control:
        outcome = {"status": "FAILED", "error_message": "Destination bucket unreachable", "times": 1}
        (await control.post("/_control/iconik/job_outcomes", json=outcome)).raise_for_status()
    asset_id, target = world.asset_id(VIDEO), world.storage_id("Export - Broadcast Partner")

    first = await iconik.copy_to_storage(target, [asset_id])
    failed = await iconik.wait_for_job(first, poll_interval=1, timeout=30)
    again = await iconik.wait_for_job(first, poll_interval=1, timeout=30)
    retried = await iconik.copy_to_storage(target, [asset_id])
    finished = await iconik.wait_for_job(retried, poll_interval=1, timeout=30)

    assert (failed.status, failed.error_message) == ("FAILED", "Destination bucket unreachable")
    assert again.status == "FAILED"  # polling a dead job never revives it
    assert retried != first
    assert finished.succeeded
    assert [f["name"] for f in world.domain.files[asset_id] if f["storage_id"] == target] == [VIDEO]


async def test_a_running_job_can_be_failed_on_demand(world, iconik) -> None:
    job_id = await iconik.copy_to_storage(world.storage_id("Export - Retailer A"), [world.asset_id(VIDEO)])
    async with httpx.AsyncClient(base_url=world.url) as control:
        answer = await control.post(
            f"/_control/iconik/jobs/{job_id}/fail", json={"error_message": "Disk full"}
        )
        assert answer.status_code == 200
        again = await control.post(f"/_control/iconik/jobs/{job_id}/fail", json={})
    job = await iconik.wait_for_job(job_id, poll_interval=1, timeout=30)
    assert (job.status, job.error_message) == ("FAILED", "Disk full")
    assert again.status_code == 409
    assert not any(
        f["storage_id"] == world.storage_id("Export - Retailer A")
        for f in world.domain.files[world.asset_id(VIDEO)]
    )


async def test_jobs_list_filters_by_object_and_type(world, iconik) -> None:
    asset_id = world.asset_id(VIDEO)
    job_id = await iconik.copy_to_storage(world.storage_id("Export - Retailer A"), [asset_id])
    jobs = [job async for job in iconik.list_jobs(object_id=asset_id, job_type="TRANSFER")]
    assert [job.id for job in jobs] == [job_id]
    assert [job async for job in iconik.list_jobs(object_id=asset_id, job_type="TRANSCODE")] == []


async def test_failing_an_unknown_job_is_not_found(world) -> None:
    async with httpx.AsyncClient(base_url=world.url) as control:
        answer = await control.post("/_control/iconik/jobs/nope/fail")
    assert answer.status_code == 404
