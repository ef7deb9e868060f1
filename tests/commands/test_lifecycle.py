"""End of life: sweeping Canto for expired and expiring assets, and archiving them in iconik."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from bot.config.archive import ArchiveSettings
from bot.domain.policy import Action
from commands.lifecycle import ArchiveWorkflow, archive_specs, sweep_expiring_assets
from commands.workflow import PrecheckFailed, WorkflowFailed
from connectors.emulators.canto import seed_asset_id

from .media_world import ENV, NOW, FakeContext, MediaWorld, SimulatedCrash, change_request, media

__all__ = ["media"]  # the fixture, imported for pytest

GIFT_GUIDE = "holiday-2024-gift-guide-60s.mov"  # expired yesterday; in iconik with original and proxy
EXPIRED = [
    "acme-logo-legacy-2019.png",
    "urban-commuter-bike-lane.jpg",
    "trail-runner-x-lifestyle-couple.jpg",
    "alpine-pro-crampon-fit.jpg",
    GIFT_GUIDE,
]
EXPIRING_WITHIN_A_WEEK = [
    "urban-commuter-rain-detail.jpg",
    "trail-runner-x-mud-action.jpg",
    "spring-launch-2025-press-kit.pdf",
    "kids-explorer-backpack-combo.jpg",
    "spring-launch-2025-cutdown-15s.mp4",
]


def settings(**overrides: Any) -> ArchiveSettings:
    values: dict[str, Any] = {
        "environment": ENV,
        "metadata_view": "Release",
        "archive_values": {"release_status": ["withdrawn"]},
        "canto_archive_field": "Archived",
    }
    values.update(overrides)
    return ArchiveSettings(**values)


def workflow(media: MediaWorld, config: ArchiveSettings | None = None) -> ArchiveWorkflow:
    return ArchiveWorkflow(
        lambda env: media.canto,
        lambda env: media.iconik,
        config or settings(),
        clock=lambda: NOW,
        poll_interval=1.0,
        job_timeout=60.0,
    )


async def archive_spec_for(media: MediaWorld, name: str) -> Any:
    result = await sweep_expiring_assets(media.canto, within_days=7, now=NOW)
    return next(spec for spec in archive_specs(result, settings()) if spec.target == media.canto_ref(name))


# -- sweep ------------------------------------------------------------------------------------------


async def test_sweep_finds_expired_and_soon_expiring_assets_soonest_first(media: MediaWorld) -> None:
    result = await sweep_expiring_assets(media.canto, within_days=7, now=NOW)

    assert [asset.name for asset in result.expired] == EXPIRED
    assert [asset.name for asset in result.expiring] == EXPIRING_WITHIN_A_WEEK
    assert {asset.status for asset in result.expired} == {"Expired"}
    assert [asset.days_left(NOW) for asset in result.expiring] == [2, 3, 4, 5, 6]
    assert result.expired[-1].days_left(NOW) == -1


async def test_sweep_reports_owners_so_each_can_be_told(media: MediaWorld) -> None:
    media.library.assets[seed_asset_id("trail-runner-x-mud-action.jpg")].owner = "Priya Raman"

    result = await sweep_expiring_assets(media.canto, within_days=7, now=NOW)

    owners = result.by_owner()
    assert [asset.name for asset in owners["Priya Raman"]] == ["trail-runner-x-mud-action.jpg"]
    assert len(owners["Dana Whitfield"]) == len(EXPIRED) + len(EXPIRING_WITHIN_A_WEEK) - 1


async def test_sweep_window_of_zero_days_lists_only_expired_assets(media: MediaWorld) -> None:
    result = await sweep_expiring_assets(media.canto, within_days=0, now=NOW)

    assert result.expiring == ()
    assert len(result.expired) == len(EXPIRED)


async def test_a_later_sweep_sees_assets_expire_as_time_passes(media: MediaWorld) -> None:
    result = await sweep_expiring_assets(media.canto, within_days=0, now=NOW + timedelta(days=4))

    # The emulator still answers as of NOW; the sweep judges expiry by its own clock.
    assert {"urban-commuter-rain-detail.jpg", "trail-runner-x-mud-action.jpg"} <= {
        a.name for a in result.expired
    }


async def test_archive_specs_open_one_archive_request_per_expired_asset(media: MediaWorld) -> None:
    result = await sweep_expiring_assets(media.canto, within_days=7, now=NOW)

    specs = archive_specs(result, settings())

    assert [spec.target for spec in specs] == [media.canto_ref(name) for name in EXPIRED]
    assert {spec.action for spec in specs} == {Action.ARCHIVE}
    assert {spec.environment for spec in specs} == {ENV}
    gift = specs[-1]
    assert gift.parameters == {
        "asset": media.canto_ref(GIFT_GUIDE),
        "reason": "expired",
        "expired_at": (NOW - timedelta(days=1)).isoformat(),
    }
    assert gift.effective_lock_key == f"archive:{media.canto_ref(GIFT_GUIDE)}@{ENV}"


# -- archive workflow ---------------------------------------------------------------------------------


async def test_archive_precheck_previews_the_iconik_asset_and_archive_storage(media: MediaWorld) -> None:
    spec = await archive_spec_for(media, GIFT_GUIDE)

    preview = await workflow(media).precheck(spec, requester="U_REQUESTER")

    assert preview.summary == f"Archive {GIFT_GUIDE} in iconik (prod)"
    assert preview.details["approval"] == "Expired"
    assert preview.details["iconik_asset"] == media.iconik_asset(GIFT_GUIDE)["id"]
    assert preview.details["storage"] == "Deep Archive"
    assert preview.details["warnings"] == []


async def test_archive_precheck_refuses_an_asset_iconik_does_not_hold(media: MediaWorld) -> None:
    spec = await archive_spec_for(media, "alpine-pro-crampon-fit.jpg")

    with pytest.raises(PrecheckFailed, match="is not in iconik: there is nothing to archive"):
        await workflow(media).precheck(spec, requester="U_REQUESTER")


async def test_archive_precheck_refuses_an_asset_already_archived(media: MediaWorld) -> None:
    media.iconik_asset(GIFT_GUIDE)["archive_status"] = "ARCHIVED"
    spec = await archive_spec_for(media, GIFT_GUIDE)

    with pytest.raises(PrecheckFailed, match="is already archived in iconik"):
        await workflow(media).precheck(spec, requester="U_REQUESTER")


async def test_archive_moves_the_original_to_the_archive_storage_and_writes_back(media: MediaWorld) -> None:
    spec = await archive_spec_for(media, GIFT_GUIDE)
    asset = media.iconik_asset(GIFT_GUIDE)
    ctx = FakeContext()

    outcome = await workflow(media).execute(change_request(spec, number=3), ctx)

    assert len(media.files_on(asset["id"], "Deep Archive")) == 1
    assert media.files_on(asset["id"], "ACME Main Files") == []  # moved, not copied
    assert media.domain.metadata[(asset["id"], media.view_id("Release"))]["release_status"] == ["withdrawn"]
    record = media.library.assets[seed_asset_id(GIFT_GUIDE)]
    assert record.additional["Archived"] == "Archived in iconik on 2025-03-10 (ARC-3)"
    assert outcome.result["iconik_asset_id"] == asset["id"]
    assert outcome.evidence["job_status"] == "FINISHED"
    assert ctx.recorded == ["locate", "metadata", "archive", "wait", "verify", "canto"]


async def test_archive_by_status_marks_the_asset_archived_without_moving_files(media: MediaWorld) -> None:
    spec = await archive_spec_for(media, GIFT_GUIDE)
    asset = media.iconik_asset(GIFT_GUIDE)

    await workflow(media, settings(method="archive_status")).execute(change_request(spec), FakeContext())

    assert asset["archive_status"] == "ARCHIVED"
    assert len(media.files_on(asset["id"], "ACME Main Files")) == 1
    assert media.transfer_requests() == []


async def test_a_failed_archive_job_reports_what_succeeded(media: MediaWorld) -> None:
    spec = await archive_spec_for(media, GIFT_GUIDE)
    media.domain.queued_outcomes.append(
        {"status": "FAILED", "error_message": "Glacier unavailable", "times": 1}
    )

    with pytest.raises(WorkflowFailed) as failure:
        await workflow(media).execute(change_request(spec), FakeContext())

    assert failure.value.step == "wait"
    assert "ended FAILED: Glacier unavailable" in failure.value.reason
    assert "Done: assets located, iconik metadata, archive started." in failure.value.reason
    assert set(failure.value.partial) == {"locate", "metadata", "archive"}
    assert "Archived" not in media.library.assets[seed_asset_id(GIFT_GUIDE)].additional


async def test_a_resumed_archive_does_not_start_a_second_move(media: MediaWorld) -> None:
    spec = await archive_spec_for(media, GIFT_GUIDE)
    archive = workflow(media)
    ctx = FakeContext()
    ctx.crash_at = "verify"
    with pytest.raises(SimulatedCrash):
        await archive.execute(change_request(spec), ctx)

    outcome = await archive.execute(change_request(spec), ctx.resumed())

    assert len(media.transfer_requests()) == 1
    assert len(media.domain.jobs) == 1
    assert outcome.result["job_id"] in media.domain.jobs
