"""Environments, artifacts, deployments, promotion and clone jobs against the emulator contract."""

from __future__ import annotations

import pytest

from connectors.errors import BadRequest, Conflict, NotFound, Unavailable
from connectors.opentext import ArtifactKind, JobState, OpenTextConnector

MAP_ID = "orders-edi.orders-d96a-to-xml"


async def test_environments_are_listed_with_their_tier(connector: OpenTextConnector) -> None:
    environments = {e.name: e for e in await connector.list_environments()}
    assert list(environments) == ["dev", "test", "prod"]
    assert environments["prod"].tier == "production"


async def test_artifact_list_follows_cursors_across_pages(world) -> None:
    connector = world.connector(page_size=2)
    artifacts = await connector.list_artifacts()
    assert len(artifacts) == 7
    assert len({a.id for a in artifacts}) == 7
    assert world.requests("/artifacts$") == 4
    assert {a.kind for a in artifacts} == set(ArtifactKind)


async def test_artifacts_can_be_filtered_by_solution_kind_and_name(connector: OpenTextConnector) -> None:
    maps = await connector.list_artifacts(solution="invoices", kind=ArtifactKind.MAP)
    assert [a.id for a in maps] == ["invoices.invoice-xml-to-ubl"]
    by_name = await connector.list_artifacts(name="orders-as2-partners")
    assert [(a.solution, a.kind) for a in by_name] == [("orders-edi", ArtifactKind.MESSAGING_CONFIG)]
    with pytest.raises(BadRequest, match="invalid_request"):
        await connector.list_artifacts(kind="spreadsheet")


async def test_artifact_has_its_version_history_newest_first(connector: OpenTextConnector) -> None:
    artifact = await connector.get_artifact(MAP_ID)
    assert [v.version for v in artifact.versions] == ["2.4.1", "2.4.0", "2.3.0"]
    newest = artifact.versions[0]
    assert newest.author == "maria.keller@acme.example"
    assert newest.checksum.startswith("sha256:") and len(newest.checksum) == 71
    assert newest.summary == "Fix NAD+DP qualifier mapping"
    assert artifact.versions[0].created_at > artifact.versions[1].created_at
    assert artifact.version("2.4.0") == await connector.get_artifact_version(MAP_ID, "2.4.0")


async def test_unknown_artifact_and_version_raise_not_found_with_code(connector: OpenTextConnector) -> None:
    with pytest.raises(NotFound) as caught:
        await connector.get_artifact("orders-edi.nope")
    assert caught.value.detail == "No artifact orders-edi.nope (artifact_not_found)"
    with pytest.raises(NotFound, match="version_not_found"):
        await connector.get_artifact_version(MAP_ID, "9.9.9")


async def test_each_environment_runs_its_own_version(connector: OpenTextConnector) -> None:
    versions = {env: (await connector.get_deployment(env, MAP_ID)) for env in ("dev", "test", "prod")}
    assert {env: d.version for env, d in versions.items() if d} == {
        "dev": "2.4.1",
        "test": "2.4.0",
        "prod": "2.3.0",
    }


async def test_artifact_not_deployed_in_an_environment_is_none(connector: OpenTextConnector) -> None:
    assert await connector.get_deployment("prod", "shipping-notices.asn-856-to-desadv") is None
    with pytest.raises(NotFound, match="environment_not_found"):
        await connector.get_deployment("staging", MAP_ID)
    with pytest.raises(NotFound, match="artifact_not_found"):
        await connector.get_deployment("prod", "nope.nope")


async def test_deployments_of_an_environment_can_be_listed_per_solution(connector: OpenTextConnector) -> None:
    prod = await connector.list_deployments("prod")
    assert len(prod) == 5
    invoices = await connector.list_deployments("prod", solution="invoices")
    assert {d.artifact_id: d.version for d in invoices} == {
        "invoices.invoice-outbound-api": "3.0.0",
        "invoices.invoice-xml-to-ubl": "1.1.0",
    }


async def test_promotion_job_progresses_over_polls_and_deploys_the_version(
    world, connector: OpenTextConnector
) -> None:
    job = await connector.start_promotion(
        MAP_ID, "2.4.0", source_environment="test", target_environment="prod", requested_by="ana",
        reason="CHG-1042 partner go-live", change_ref="CR-17",
    )  # fmt: skip
    assert job.state is JobState.QUEUED
    states = [(await connector.get_job(job.job_id)).state for _ in range(3)]
    assert states == [JobState.RUNNING, JobState.RUNNING, JobState.SUCCEEDED]
    finished = await connector.get_job(job.job_id)
    assert finished.progress == 100 and finished.error is None
    assert finished.result == {"environment": "prod", "artifact_id": MAP_ID, "version": "2.4.0"}
    assert finished.request["reason"] == "CHG-1042 partner go-live"
    deployed = await connector.get_deployment("prod", MAP_ID)
    assert deployed is not None
    assert (deployed.version, deployed.deployed_by, deployed.job_id) == ("2.4.0", "ana", job.job_id)


async def test_wait_for_job_polls_with_the_injected_sleep(world, connector: OpenTextConnector) -> None:
    job = await connector.start_promotion(
        MAP_ID, "2.4.1", source_environment="dev", target_environment="test", requested_by="ana"
    )
    finished = await connector.wait_for_job(job.job_id, poll_interval=5)
    assert finished.state is JobState.SUCCEEDED
    assert world.sleep.delays == [5, 5]


@pytest.mark.parametrize("emulator_options", [{"job_polls_to_finish": 1000, "job_seconds_per_step": 10}])
async def test_jobs_also_progress_with_the_emulator_clock(world, connector: OpenTextConnector) -> None:
    job = await connector.start_promotion(
        MAP_ID, "2.4.1", source_environment="dev", target_environment="test", requested_by="ana"
    )
    world.wall.advance(10_000)
    assert (await connector.get_job(job.job_id)).state is JobState.SUCCEEDED


@pytest.mark.parametrize("emulator_options", [{"job_polls_to_finish": 1000}])
async def test_wait_for_job_gives_up_after_max_wait(world, connector: OpenTextConnector) -> None:
    job = await connector.start_promotion(
        MAP_ID, "2.4.1", source_environment="dev", target_environment="test", requested_by="ana"
    )
    with pytest.raises(Unavailable, match="still running after 30s"):
        await connector.wait_for_job(job.job_id, poll_interval=10, max_wait=30)


async def test_failed_job_reports_the_vendor_error(world, connector: OpenTextConnector) -> None:
    await world.control.post(
        "/_control/opentext/fail-next-job",
        json={"code": "runtime_rejected", "message": "Schema check failed"},
    )
    job = await connector.start_promotion(
        MAP_ID, "2.4.0", source_environment="test", target_environment="prod", requested_by="ana"
    )
    failed = await connector.wait_for_job(job.job_id, poll_interval=1)
    assert failed.state is JobState.FAILED
    assert failed.error is not None
    assert (failed.error.code, failed.error.message) == ("runtime_rejected", "Schema check failed")
    still = await connector.get_deployment("prod", MAP_ID)
    assert still is not None and still.version == "2.3.0"


async def test_promoting_a_version_not_deployed_in_source_is_a_conflict(connector: OpenTextConnector) -> None:
    with pytest.raises(Conflict) as caught:
        await connector.start_promotion(
            MAP_ID, "2.4.1", source_environment="test", target_environment="prod", requested_by="ana"
        )
    assert caught.value.detail.endswith("(version_not_in_source)")


async def test_second_promotion_to_the_same_target_while_running_is_a_conflict(
    connector: OpenTextConnector,
) -> None:
    await connector.start_promotion(
        MAP_ID, "2.4.0", source_environment="test", target_environment="prod", requested_by="ana"
    )
    with pytest.raises(Conflict, match="promotion_in_progress"):
        await connector.start_promotion(
            MAP_ID, "2.4.0", source_environment="test", target_environment="prod", requested_by="bo"
        )


@pytest.mark.parametrize(
    ("artifact", "version", "source", "target", "error", "code"),
    [
        (MAP_ID, "2.4.0", "test", "test", BadRequest, "invalid_request"),
        (MAP_ID, "7.0.0", "test", "prod", NotFound, "version_not_found"),
        (MAP_ID, "2.4.0", "test", "qa", NotFound, "environment_not_found"),
        ("x.y", "1.0.0", "test", "prod", NotFound, "artifact_not_found"),
    ],
)
async def test_invalid_promotions_are_rejected_with_typed_errors(
    connector: OpenTextConnector,
    artifact: str,
    version: str,
    source: str,
    target: str,
    error: type,
    code: str,
) -> None:
    with pytest.raises(error, match=code):
        await connector.start_promotion(
            artifact, version, source_environment=source, target_environment=target, requested_by="ana"
        )


async def test_promotion_with_idempotency_key_is_retried_and_not_duplicated(
    world, connector: OpenTextConnector
) -> None:
    await world.inject(path="/promotions$", method="POST", status=503, times=1)
    first = await connector.start_promotion(
        MAP_ID, "2.4.0", source_environment="test", target_environment="prod", requested_by="ana",
        idempotency_key="chg-1042",
    )  # fmt: skip
    again = await connector.start_promotion(
        MAP_ID, "2.4.0", source_environment="test", target_environment="prod", requested_by="ana",
        idempotency_key="chg-1042",
    )  # fmt: skip
    assert first.job_id == again.job_id
    assert len(world.state.jobs) == 1
    assert world.requests("/promotions$", "POST") == 3


async def test_promotion_without_idempotency_key_is_not_retried_on_server_error(
    world, connector: OpenTextConnector
) -> None:
    await world.inject(path="/promotions$", method="POST", status=502, times=1)
    with pytest.raises(Unavailable) as caught:
        await connector.start_promotion(
            MAP_ID, "2.4.0", source_environment="test", target_environment="prod", requested_by="ana"
        )
    assert caught.value.status == 502
    assert world.requests("/promotions$", "POST") == 1


async def test_clone_creates_a_new_artifact_from_a_version(world, connector: OpenTextConnector) -> None:
    job = await connector.clone_artifact(
        MAP_ID, new_name="orders-d01b-to-xml", requested_by="ana", version="2.4.0"
    )
    done = await connector.wait_for_job(job.job_id, poll_interval=1)
    assert done.state is JobState.SUCCEEDED
    assert done.result == {"artifact_id": "orders-edi.orders-d01b-to-xml", "version": "1.0.0"}
    clone = await connector.get_artifact("orders-edi.orders-d01b-to-xml")
    source = await connector.get_artifact(MAP_ID)
    assert clone.kind is ArtifactKind.MAP
    assert clone.versions[0].checksum == source.version("2.4.0").checksum  # type: ignore[union-attr]
    with pytest.raises(Conflict, match="artifact_exists"):
        await connector.clone_artifact(MAP_ID, new_name="orders-d01b-to-xml", requested_by="ana")
