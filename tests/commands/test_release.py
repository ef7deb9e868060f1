"""Releasing Canto assets to partner destinations through iconik, against the emulators over HTTP."""

from __future__ import annotations

from typing import Any

import pytest

from bot.config.destinations import DestinationConfig, ReleaseLogPage
from bot.config.opsgate import parse_config
from bot.domain.policy import Action
from commands.release import ReleaseWorkflow, release_spec
from commands.workflow import PrecheckFailed, WorkflowFailed
from connectors.confluence_storage import parse_storage
from connectors.emulators.canto import seed_asset_id
from connectors.emulators.faults import FaultSpec

from .media_world import ENV, NOW, FakeContext, MediaWorld, SimulatedCrash, change_request, media

__all__ = ["media"]  # the fixture, imported for pytest

HERO = "trail-runner-x-hero-front.jpg"  # Approved, never expires, in iconik with its original
LOG_TITLE = "Retailer A releases"


def retailer_a(**overrides: Any) -> DestinationConfig:
    values: dict[str, Any] = {
        "name": "retailer-a",
        "environment": ENV,
        "iconik_storage": "Export - Retailer A",
        "partner": "Retailer A",
        "required_metadata": ["Campaign", "Product Line", "Region", "Rights"],
        "metadata_view": "Release",
        "field_mapping": {
            "Campaign": "campaign",
            "Region": "region",
            "Rights": "rights",
            "expirationDate": "expires_on",
            "id": "canto_asset_id",
        },
        "release_values": {"release_status": ["released"], "partner_destination": ["Retailer A"]},
        "canto_release_field": "Last Release",
        "release_log_page": ReleaseLogPage(space="MEDIA", title=LOG_TITLE),
    }
    values.update(overrides)
    return DestinationConfig(**values)


def legacy_ftp() -> DestinationConfig:
    return retailer_a(
        name="legacy-ftp",
        iconik_storage="Export - Legacy FTP",  # FAILING in the emulator: its jobs fail
        partner="Legacy distributor",
        release_log_page=ReleaseLogPage(space="MEDIA", title="Legacy releases"),
    )


def workflow(media: MediaWorld, *destinations: DestinationConfig) -> ReleaseWorkflow:
    return ReleaseWorkflow(
        lambda env: media.canto,
        lambda env: media.iconik,
        lambda env: media.confluence,
        list(destinations) or [retailer_a()],
        clock=lambda: NOW,
        poll_interval=1.0,
        job_timeout=60.0,
    )


def log_rows(media: MediaWorld, title: str = LOG_TITLE) -> list[list[str]]:
    page = media.page("MEDIA", title)
    assert page is not None, f"no page {title!r}"
    root = parse_storage(page.body)  # raises if the body is not well-formed storage XML
    return [["".join(cell.itertext()) for cell in row.iter("td")] for row in root.iter("tr")][1:]


# -- precheck ---------------------------------------------------------------------------------------


async def test_precheck_previews_an_approved_complete_asset(media: MediaWorld) -> None:
    spec = release_spec(media.canto_ref(HERO), retailer_a())

    preview = await workflow(media).precheck(spec, requester="U_REQUESTER")

    assert preview.summary == f"Release {HERO} to Retailer A (prod)"
    assert preview.details["approval"] == "Approved"
    assert preview.details["expires_at"] == "never"
    assert preview.details["iconik_asset"] == media.iconik_asset(HERO)["id"]
    assert preview.details["metadata"]["campaign"] == ["Spring Launch 2025"]
    assert preview.details["metadata"]["release_status"] == ["released"]
    assert preview.details["warnings"] == []


async def test_precheck_accepts_a_bare_canto_id_and_finds_its_scheme(media: MediaWorld) -> None:
    spec = release_spec(seed_asset_id("spring-launch-2025-hero-30s.mp4"), retailer_a())

    preview = await workflow(media).precheck(spec, requester="U_REQUESTER")

    assert preview.details["asset"] == media.canto_ref("spring-launch-2025-hero-30s.mp4")
    assert preview.details["asset"].startswith("video:")


async def test_precheck_refuses_an_asset_that_is_not_approved(media: MediaWorld) -> None:
    spec = release_spec(media.canto_ref("trail-runner-x-colorways-grid.png"), retailer_a())

    with pytest.raises(PrecheckFailed, match="is Pending in Canto; only Approved assets can be released"):
        await workflow(media).precheck(spec, requester="U_REQUESTER")


@pytest.mark.parametrize(
    "name",
    [
        "trail-runner-x-lifestyle-couple.jpg",  # Approved, expiry passed 12 days ago
        "urban-commuter-bike-lane.jpg",  # Canto already flipped it to Expired
    ],
)
async def test_precheck_refuses_an_expired_asset(media: MediaWorld, name: str) -> None:
    spec = release_spec(media.canto_ref(name), retailer_a())

    with pytest.raises(
        PrecheckFailed, match=r"expired on 20\d\d-\d\d-\d\d; expired assets cannot be released"
    ):
        await workflow(media).precheck(spec, requester="U_REQUESTER")


async def test_precheck_names_every_missing_metadata_field(media: MediaWorld) -> None:
    record = media.library.assets[seed_asset_id(HERO)]
    del record.additional["Rights"]
    record.additional["Region"] = ""
    strict = retailer_a(require_expiry=True)
    spec = release_spec(media.canto_ref(HERO), strict)

    with pytest.raises(PrecheckFailed) as failure:
        await workflow(media, strict).precheck(spec, requester="U_REQUESTER")

    assert str(failure.value) == (
        f"{HERO} is missing metadata 'retailer-a' requires: Region, Rights, expiration date."
    )


async def test_precheck_refuses_an_unknown_destination_and_lists_the_known_ones(media: MediaWorld) -> None:
    spec = release_spec(media.canto_ref(HERO), retailer_a(name="nowhere"))

    with pytest.raises(PrecheckFailed, match=r"Unknown release destination 'nowhere' \(known: retailer-a\)"):
        await workflow(media).precheck(spec, requester="U_REQUESTER")


async def test_precheck_refuses_a_mapping_iconik_would_reject(media: MediaWorld) -> None:
    media.library.assets[seed_asset_id(HERO)].additional["Region"] = "Worldwide"
    spec = release_spec(media.canto_ref(HERO), retailer_a())

    with pytest.raises(PrecheckFailed, match="iconik field 'region' does not accept 'Worldwide'"):
        await workflow(media).precheck(spec, requester="U_REQUESTER")


async def test_precheck_warns_when_the_destination_storage_is_failing(media: MediaWorld) -> None:
    spec = release_spec(media.canto_ref(HERO), legacy_ftp())

    preview = await workflow(media, legacy_ftp()).precheck(spec, requester="U_REQUESTER")

    assert preview.details["warnings"] == [
        "iconik storage 'Export - Legacy FTP' is FAILING: Authentication failed"
    ]


# -- execute ----------------------------------------------------------------------------------------


async def test_release_delivers_the_file_sets_metadata_writes_back_and_logs_it(media: MediaWorld) -> None:
    spec = release_spec(media.canto_ref(HERO), retailer_a())
    ctx = FakeContext()
    asset = media.iconik_asset(HERO)

    outcome = await workflow(media).execute(change_request(spec, number=7), ctx)

    assert len(media.files_on(asset["id"], "Export - Retailer A")) == 1
    metadata = media.domain.metadata[(asset["id"], media.view_id("Release"))]
    assert metadata["campaign"] == ["Spring Launch 2025"]
    assert metadata["rights"] == ["Worldwide, all media, perpetual"]
    assert metadata["release_status"] == ["released"]
    assert metadata["partner_destination"] == ["Retailer A"]
    assert metadata["canto_asset_id"] == [seed_asset_id(HERO)]
    record = media.library.assets[seed_asset_id(HERO)]
    assert record.additional["Last Release"] == "Released to Retailer A on 2025-03-10 (REL-7)"
    rows = log_rows(media)
    assert rows == [
        [
            "2025-03-10 09:00 UTC",
            "REL-7",
            HERO,
            media.canto_ref(HERO),
            "retailer-a",
            "Retailer A",
            outcome.result["job_id"],
        ]
    ]
    assert outcome.result["iconik_asset_id"] == asset["id"]
    assert outcome.result["storage"] == "Export - Retailer A"
    assert outcome.evidence["job_status"] == "FINISHED"
    assert ctx.recorded == [
        "check",
        "iconik_asset",
        "metadata",
        "copy",
        "wait",
        "verify",
        "canto",
        "release_log",
    ]
    assert [name for name, _, _ in ctx.progress.steps][-1] == "release_log"
    assert media.time.sleeps == [1.0, 1.0]  # polled READY -> STARTED -> FINISHED, never really slept


async def test_a_second_release_appends_a_row_to_the_existing_log_page(media: MediaWorld) -> None:
    release = workflow(media)
    other = "urban-commuter-city-night.jpg"
    await release.execute(
        change_request(release_spec(media.canto_ref(HERO), retailer_a()), number=1), FakeContext()
    )
    first_version = media.page("MEDIA", LOG_TITLE).version

    await release.execute(
        change_request(release_spec(media.canto_ref(other), retailer_a()), number=2), FakeContext()
    )

    assert [row[1:3] for row in log_rows(media)] == [["REL-1", HERO], ["REL-2", other]]
    assert media.page("MEDIA", LOG_TITLE).version == first_version + 1


async def test_a_failed_copy_job_reports_what_succeeded_and_what_did_not(media: MediaWorld) -> None:
    spec = release_spec(media.canto_ref(HERO), legacy_ftp())
    asset = media.iconik_asset(HERO)

    with pytest.raises(WorkflowFailed) as failure:
        await workflow(media, legacy_ftp()).execute(change_request(spec), FakeContext())

    error = failure.value
    assert error.step == "wait"
    assert "ended FAILED: Storage Export - Legacy FTP is failing" in error.reason
    assert "Done: iconik asset, iconik metadata, copy started." in error.reason
    assert (
        "Not done: copy finished, file verified in the destination storage, Canto release field, release-log row"
        in error.reason
    )
    assert set(error.partial) == {"iconik_asset", "metadata", "copy"}
    assert error.partial["metadata"]["release_status"] == ["released"]
    assert not error.retryable
    assert media.files_on(asset["id"], "Export - Legacy FTP") == []
    assert "Last Release" not in media.library.assets[seed_asset_id(HERO)].additional
    assert media.page("MEDIA", "Legacy releases") is None


async def test_an_execution_rechecks_approval_before_touching_iconik(media: MediaWorld) -> None:
    spec = release_spec(media.canto_ref(HERO), retailer_a())
    media.library.assets[seed_asset_id(HERO)].approval_status = "Restricted"

    with pytest.raises(WorkflowFailed) as failure:
        await workflow(media).execute(change_request(spec), FakeContext())

    assert failure.value.step == "check"
    assert failure.value.partial == {}
    assert media.transfer_requests() == []


async def test_a_resumed_release_polls_the_recorded_job_instead_of_starting_another(
    media: MediaWorld,
) -> None:
    spec = release_spec(media.canto_ref(HERO), retailer_a())
    release = workflow(media)
    ctx = FakeContext()
    ctx.crash_at = "verify"  # the process dies after the copy job finished, before verifying
    with pytest.raises(SimulatedCrash):
        await release.execute(change_request(spec), ctx)
    jobs_before = set(media.domain.jobs)

    outcome = await release.execute(change_request(spec), ctx.resumed())

    assert len(media.transfer_requests()) == 1
    assert set(media.domain.jobs) == jobs_before and len(jobs_before) == 1
    assert outcome.result["job_id"] in jobs_before
    assert len(media.files_on(media.iconik_asset(HERO)["id"], "Export - Retailer A")) == 1
    assert [row[1] for row in log_rows(media)] == ["REL-1"]


async def test_a_release_resumed_mid_poll_finishes_the_same_job(media: MediaWorld) -> None:
    spec = release_spec(media.canto_ref(HERO), retailer_a())
    release = workflow(media)
    ctx = FakeContext()
    media.iconik_faults.add(
        FaultSpec(path=r"/API/jobs/v1/jobs/", status=503, times=2)
    )  # both tries of one poll
    with pytest.raises(WorkflowFailed) as failure:
        await release.execute(change_request(spec), ctx)
    assert failure.value.retryable and failure.value.step == "wait"

    outcome = await release.execute(change_request(spec), ctx.resumed())

    assert len(media.transfer_requests()) == 1
    assert outcome.evidence["job_status"] == "FINISHED"


async def test_a_run_that_died_before_recording_its_job_refuses_to_start_a_second_copy(
    media: MediaWorld,
) -> None:
    spec = release_spec(media.canto_ref(HERO), retailer_a())
    release = workflow(media)
    ctx = FakeContext()
    ctx.crash_at = "wait"  # the copy job was created, its id never persisted
    with pytest.raises(SimulatedCrash):
        await release.execute(change_request(spec), ctx)

    with pytest.raises(WorkflowFailed) as failure:
        await release.execute(change_request(spec), ctx.resumed())

    assert len(media.transfer_requests()) == 1
    assert failure.value.step == "copy"
    assert "check iconik's jobs for asset" in failure.value.reason
    assert set(failure.value.partial) == {"iconik_asset", "metadata"}


async def test_a_resumed_release_log_step_does_not_add_the_row_twice(media: MediaWorld) -> None:
    spec = release_spec(media.canto_ref(HERO), retailer_a())
    release = workflow(media)
    ctx = FakeContext()
    await release.execute(change_request(spec), ctx)
    # As if the process died after Confluence saved the row but before the job was marked done.
    state = dict(ctx.state)
    state["done"] = {k: v for k, v in state["done"].items() if k != "release_log"}
    resumed = FakeContext(step="release_log", state=state, attempt=2)

    await release.execute(change_request(spec), resumed)

    assert [row[1] for row in log_rows(media)] == ["REL-1"]
    assert len(media.transfer_requests()) == 1


async def test_a_release_of_an_asset_iconik_lacks_creates_it_and_stops_before_copying(
    media: MediaWorld,
) -> None:
    name = "trail-runner-x-side-studio.jpg"  # Approved in Canto, never ingested into iconik
    spec = release_spec(media.canto_ref(name), retailer_a())

    with pytest.raises(WorkflowFailed) as failure:
        await workflow(media).execute(change_request(spec), FakeContext())

    created = [
        a for a in media.domain.assets.values() if a["external_id"] == f"canto:{media.canto_ref(name)}"
    ]
    assert len(created) == 1 and created[0]["title"] == name
    assert failure.value.step == "copy"
    assert "iconik holds no ORIGINAL file for this asset yet" in failure.value.reason
    assert failure.value.partial["iconik_asset"] == created[0]["id"]
    assert media.transfer_requests() == []


async def test_release_spec_binds_asset_and_destination(media: MediaWorld) -> None:
    spec = release_spec("image:abc123", retailer_a())

    assert spec.action is Action.RELEASE
    assert (spec.target, spec.environment) == ("image:abc123", ENV)
    assert spec.parameters == {"asset": "image:abc123", "destination": "retailer-a"}
    assert spec.effective_lock_key == "release:image:abc123->retailer-a"
    with pytest.raises(ValueError, match="is not a Canto asset"):
        release_spec("image/abc 123", retailer_a())


async def test_destinations_and_archive_settings_come_from_the_yaml_config(media: MediaWorld) -> None:
    data = {
        "environments": {ENV: {}},
        "destinations": [retailer_a().model_dump(mode="json")],
        "archive": {"environment": ENV, "canto_archive_field": "Archived"},
    }
    config = parse_config(data, source="opsgate.yaml", env={})
    release = ReleaseWorkflow(
        lambda env: media.canto,
        lambda env: media.iconik,
        lambda env: media.confluence,
        config,
        clock=lambda: NOW,
    )

    preview = await release.precheck(
        release_spec(media.canto_ref(HERO), config.destinations[0]), requester="U"
    )

    assert preview.details["destination"] == "retailer-a"
    assert config.archive is not None and config.archive.canto_archive_field == "Archived"
