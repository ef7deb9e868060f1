"""PromotionWorkflow against the OpenText and Confluence emulators over real HTTP."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import timedelta

import pytest

from commands.promote import (
    PromotionWorkflow,
    change_summary_title,
    promotion_spec,
    rollback_spec,
)
from commands.workflow import PrecheckFailed, WorkflowFailed
from connectors.confluence_storage import parse_storage

from .opentext_world import APPROVER, REQUESTER, FakeContext, SimulatedCrash, World, make_request, world

__all__ = ["world"]  # the fixture, imported for pytest

D96A = "orders-edi.orders-d96a-to-xml"
PROMOTIONS = r"/promotions$"


def workflow(world: World, **options: object) -> PromotionWorkflow:
    return PromotionWorkflow(
        world.registry, world.config, clock=world.clock, sleep=world.clock.sleep, **options
    )  # type: ignore[arg-type]


def d96a_to_prod(version: str = "2.4.0"):
    return promotion_spec(artifact=D96A, version=version, from_env="test", to_env="prod")


def deployed(world: World, env: str, artifact: str = D96A) -> str | None:
    deployment = world.ot.deployments.get((env, artifact))
    return None if deployment is None else deployment.version


def page_text(body: str) -> str:
    return " ".join("".join(parse_storage(body).itertext()).split())


# --- precheck -----------------------------------------------------------------------------------


async def test_precheck_previews_current_and_requested_version_with_the_history_between(world):
    preview = await workflow(world).precheck(d96a_to_prod(), requester=REQUESTER)

    assert preview.details["current_version"] == "2.3.0"
    assert preview.details["requested_version"] == "2.4.0"
    diff = preview.details["diff"]
    assert diff[0].startswith("+ 2.4.0 (") and "Map FTX+DEL free text to delivery notes" in diff[0]
    assert diff[-1].startswith("checksum: sha256:") and " -> sha256:" in diff[-1]
    assert preview.details["warnings"] == []
    assert preview.details["downstream_systems"] == ["SAP S/4HANA order intake", "Partner portal <EU> & US"]
    assert "2.3.0 -> 2.4.0 in prod (from test)" in preview.summary


async def test_precheck_warns_when_going_back_to_an_older_version(world):
    world.ot.deployments[("test", D96A)].version = "2.3.0"
    world.ot.deployments[("prod", D96A)].version = "2.4.1"

    preview = await workflow(world).precheck(d96a_to_prod("2.3.0"), requester=REQUESTER)

    assert preview.details["warnings"] == ["this goes back from 2.4.1 to the older 2.3.0"]
    assert [line[:7] for line in preview.details["diff"][:-1]] == ["- 2.4.1", "- 2.4.0"]


async def test_precheck_refuses_an_unknown_artifact(world):
    spec = promotion_spec(artifact="orders-edi.nope", version="1.0.0", from_env="test", to_env="prod")

    with pytest.raises(PrecheckFailed, match=r"OpenText has no artifact 'orders-edi\.nope'"):
        await workflow(world).precheck(spec, requester=REQUESTER)


async def test_precheck_suggests_the_full_id_for_a_bare_artifact_name(world):
    spec = promotion_spec(artifact="orders-d96a-to-xml", version="2.4.0", from_env="test", to_env="prod")

    with pytest.raises(PrecheckFailed) as caught:
        await workflow(world).precheck(spec, requester=REQUESTER)

    assert str(caught.value) == (
        "OpenText has no artifact 'orders-d96a-to-xml'; did you mean orders-edi.orders-d96a-to-xml?"
    )


async def test_precheck_refuses_an_unknown_version_and_lists_the_known_ones(world):
    with pytest.raises(
        PrecheckFailed, match=r"has no version 9\.9\.9 \(known versions: 2\.4\.1, 2\.4\.0, 2\.3\.0\)"
    ):
        await workflow(world).precheck(d96a_to_prod("9.9.9"), requester=REQUESTER)


async def test_precheck_refuses_a_version_not_running_in_the_source_and_names_where_it_runs(world):
    with pytest.raises(PrecheckFailed) as caught:
        await workflow(world).precheck(d96a_to_prod("2.4.1"), requester=REQUESTER)

    assert str(caught.value) == (
        "OpenText promotes only the version running in the source: test runs 2.4.0; "
        "environments running 2.4.1: dev"
    )


async def test_precheck_refuses_an_unreachable_target_environment(world):
    spec = promotion_spec(artifact=D96A, version="2.4.0", from_env="test", to_env="dr")

    with pytest.raises(PrecheckFailed, match=r"^OpenText in dr is unreachable: ConnectError"):
        await workflow(world).precheck(spec, requester=REQUESTER)


async def test_precheck_refuses_an_environment_without_opentext_and_names_the_config_key(world):
    spec = promotion_spec(artifact=D96A, version="2.4.0", from_env="test", to_env="sandbox")

    with pytest.raises(PrecheckFailed, match=r"environments\.sandbox\.opentext is not configured"):
        await workflow(world).precheck(spec, requester=REQUESTER)


async def test_precheck_refuses_when_the_target_already_runs_the_version(world):
    spec = promotion_spec(artifact=D96A, version="2.4.1", from_env="dev", to_env="test")
    world.ot.deployments[("test", D96A)].version = "2.4.1"

    with pytest.raises(PrecheckFailed, match=r"test already runs orders-edi\.orders-d96a-to-xml 2\.4\.1"):
        await workflow(world).precheck(spec, requester=REQUESTER)


# --- execute: success -------------------------------------------------------------------------------


async def test_promotion_deploys_verifies_and_writes_the_change_summary_page(world):
    spec = d96a_to_prod()
    request = make_request(spec, reason="GLOBEX needs FTX+DEL <delivery notes> & ]]> survives")
    ctx = FakeContext()

    outcome = await workflow(world).execute(request, ctx)

    assert deployed(world, "prod") == "2.4.0"
    assert outcome.result["previous_version"] == "2.3.0"
    assert outcome.result["job_id"] == outcome.evidence["job_id"]
    assert outcome.evidence["deployment"]["version"] == "2.4.0"
    assert [step for step, _ in ctx.recorded] == ["inspect", "start", "poll", "verify", "document", "done"]
    assert ctx.progress.names == ["inspect", "start", "poll", "poll", "poll", "document"]
    assert ctx.progress.steps[-2][1].endswith("succeeded (100%)")
    assert world.opentext.count(PROMOTIONS, "POST") == 1
    sent = [r for r in world.ot.idempotency]
    assert sent == ["promotion:PRM-1"]

    title = change_summary_title("PRM-1", D96A, "2.4.0", "prod")
    page = await world.registry.confluence("prod").find_page("INT", title)
    assert page is not None
    assert outcome.links == {"Change summary": page.web_url}
    parse_storage(page.body)  # well-formed storage XML, or this raises
    body = page_text(page.body)
    assert "Promoted orders-edi.orders-d96a-to-xml 2.4.0 runs in prod" in body
    assert "GLOBEX needs FTX+DEL <delivery notes> & ]]> survives" in body
    assert f"{REQUESTER} requested it" in body and f"{APPROVER} approved at" in body
    assert "SAP S/4HANA order intake" in body and "Partner portal <EU> & US" in body
    assert "prepares a promotion of orders-edi.orders-d96a-to-xml 2.3.0 to prod" in body
    assert "+ 2.4.0 (" in body


async def test_running_a_finished_promotion_again_changes_nothing(world):
    ctx = FakeContext()
    first = await workflow(world).execute(make_request(d96a_to_prod()), ctx)

    again = await workflow(world).execute(make_request(d96a_to_prod()), ctx.resumed())

    assert again.result == first.result
    assert world.opentext.count(PROMOTIONS, "POST") == 1
    assert len(world.ot.jobs) == 1


async def test_a_solution_without_confluence_space_is_promoted_without_a_page(world):
    spec = promotion_spec(
        artifact="invoices.invoice-outbound-api", version="3.1.0", from_env="dev", to_env="test"
    )
    preview = await workflow(world).precheck(spec, requester=REQUESTER)
    ctx = FakeContext()

    outcome = await workflow(world).execute(make_request(spec, human_id="PRM-2"), ctx)

    assert "no change-summary page will be written" in preview.details["warnings"][0]
    assert deployed(world, "test", "invoices.invoice-outbound-api") == "3.1.0"
    assert outcome.links == {} and outcome.result["change_summary"] is None
    assert world.confluence.count(r"/pages$", "POST") == 0


# --- execute: failures --------------------------------------------------------------------------------


async def test_vendor_refusal_at_start_fails_with_the_vendor_reason(world):
    world.ot.deployments[("test", D96A)].version = "2.4.1"  # the source moved on after the approval

    with pytest.raises(WorkflowFailed) as caught:
        await workflow(world).execute(make_request(d96a_to_prod()), FakeContext())

    failure = caught.value
    assert failure.step == "start"
    assert failure.retryable is False
    assert "is not the version deployed in test (version_not_in_source)" in failure.reason
    assert deployed(world, "prod") == "2.3.0"


async def test_vendor_outage_at_start_is_retryable_and_the_retry_starts_one_job(world):
    await world.opentext.fault(path=PROMOTIONS, method="POST", status=503, times=1)
    ctx = FakeContext()

    with pytest.raises(WorkflowFailed) as caught:
        await workflow(world).execute(make_request(d96a_to_prod()), ctx)
    assert (caught.value.step, caught.value.retryable) == ("start", True)

    await workflow(world).execute(make_request(d96a_to_prod()), ctx.resumed())

    assert len(world.ot.jobs) == 1
    assert deployed(world, "prod") == "2.4.0"


async def test_a_failed_job_reports_the_vendor_reason_and_leaves_the_target_unchanged(world):
    await world.opentext.control(
        "POST",
        "/_control/opentext/fail-next-job",
        {"code": "map_compile_error", "message": "Segment FTX unknown"},
    )

    with pytest.raises(WorkflowFailed) as caught:
        await workflow(world).execute(make_request(d96a_to_prod()), FakeContext())

    failure = caught.value
    assert failure.step == "poll"
    assert failure.retryable is False
    assert "failed: Segment FTX unknown (map_compile_error). prod still runs 2.3.0" in failure.reason
    assert deployed(world, "prod") == "2.3.0"
    assert world.confluence.count(r"/pages$", "POST") == 0


async def test_a_job_outlasting_the_timeout_fails_retryably_and_the_retry_follows_the_same_job(world):
    world.ot.job_polls_to_finish = 100
    ctx = FakeContext()

    with pytest.raises(WorkflowFailed) as caught:
        await workflow(world, job_timeout=10, poll_interval=2).execute(make_request(d96a_to_prod()), ctx)

    failure = caught.value
    assert (failure.step, failure.retryable) == ("poll", True)
    assert "is still running" in failure.reason and "after 10s" in failure.reason
    assert world.clock.sleeps == [2, 2, 2, 2, 2]

    world.ot.job_polls_to_finish = 8
    outcome = await workflow(world, job_timeout=10, poll_interval=2).execute(
        make_request(d96a_to_prod()), ctx.resumed()
    )

    assert outcome.result["job_id"] == failure.partial["job_id"]
    assert len(world.ot.jobs) == 1
    assert deployed(world, "prod") == "2.4.0"


async def test_resuming_with_a_recorded_job_follows_it_and_starts_no_second_job(world):
    started = await world.registry.opentext("prod").start_promotion(
        D96A, "2.4.0", source_environment="test", target_environment="prod", requested_by=REQUESTER,
        idempotency_key="PRM-1",
    )  # fmt: skip
    ctx = FakeContext(step="poll", state={"previous_version": "2.3.0", "job_id": started.job_id})

    outcome = await workflow(world).execute(make_request(d96a_to_prod()), ctx)

    assert outcome.result["job_id"] == started.job_id
    assert world.opentext.count(PROMOTIONS, "POST") == 1
    assert len(world.ot.jobs) == 1
    assert ctx.progress.steps[0] == (
        "start",
        f"resuming OpenText job {started.job_id} (not started again)",
        None,
    )
    assert deployed(world, "prod") == "2.4.0"


async def test_a_crash_before_the_job_id_was_recorded_gets_the_same_job_back(world):
    ctx = FakeContext(crash_at="poll")
    with pytest.raises(SimulatedCrash):
        await workflow(world).execute(make_request(d96a_to_prod()), ctx)
    assert ctx.persisted[0] == "start"

    outcome = await workflow(world).execute(make_request(d96a_to_prod()), ctx.resumed())

    assert world.opentext.count(PROMOTIONS, "POST") == 2  # the retried POST was answered from the key
    assert len(world.ot.jobs) == 1
    assert outcome.result["job_id"] == next(iter(world.ot.jobs))


async def test_confluence_failure_after_the_deploy_is_retryable_and_the_retry_only_writes_the_page(world):
    await world.confluence.fault(path=r"/pages$", method="POST", status=503, times=1)
    ctx = FakeContext()

    with pytest.raises(WorkflowFailed) as caught:
        await workflow(world).execute(make_request(d96a_to_prod()), ctx)

    failure = caught.value
    assert (failure.step, failure.retryable) == ("document", True)
    assert failure.reason.startswith(
        "prod now runs orders-edi.orders-d96a-to-xml 2.4.0, but the change summary"
    )
    assert failure.partial["promoted"] is True

    outcome = await workflow(world).execute(make_request(d96a_to_prod()), ctx.resumed())

    assert "Change summary" in outcome.links
    assert world.opentext.count(PROMOTIONS, "POST") == 1


async def test_verification_fails_when_the_target_does_not_run_the_requested_version(world):
    ctx = FakeContext(crash_at="document")
    with pytest.raises(SimulatedCrash):
        await workflow(world).execute(make_request(d96a_to_prod()), ctx)
    world.ot.deployments[("prod", D96A)].version = "2.3.0"  # someone redeployed in between

    with pytest.raises(WorkflowFailed) as caught:
        await workflow(world).execute(make_request(d96a_to_prod()), ctx.resumed())

    assert caught.value.step == "verify"
    assert caught.value.reason == "OpenText reported the promotion done, but prod runs 2.3.0, not 2.4.0"


# --- rollback -----------------------------------------------------------------------------------------


async def test_rollback_promotes_the_previous_version_from_an_environment_that_runs_it(world):
    api = "invoices.invoice-outbound-api"
    spec = promotion_spec(artifact=api, version="3.1.0", from_env="dev", to_env="test")
    ctx = FakeContext()
    outcome = await workflow(world).execute(make_request(spec, human_id="PRM-7"), ctx)
    done = make_request(spec, human_id="PRM-7", result=outcome.result)

    back = rollback_spec(done)
    assert (back.target, back.environment, back.parameters["version"]) == (api, "test", "3.0.0")
    assert back.parameters["rollback_of"] == "PRM-7"
    with pytest.raises(PrecheckFailed, match=r"dev runs 3\.1\.0; environments running 3\.0\.0: prod"):
        await workflow(world).precheck(back, requester=REQUESTER)

    back = rollback_spec(done, from_env="prod")
    preview = await workflow(world).precheck(back, requester=REQUESTER)
    await workflow(world).execute(make_request(back, human_id="PRM-8"), FakeContext())

    assert preview.summary.startswith("Roll back invoices.invoice-outbound-api 3.1.0 -> 3.0.0 in test")
    assert preview.details["warnings"][:1] != ["this goes back from 3.1.0 to the older 3.0.0"]
    assert deployed(world, "test", api) == "3.0.0"


async def test_rollback_uses_the_preview_when_the_request_has_no_result(world):
    request = make_request(d96a_to_prod(), preview={"current_version": "2.3.0"})

    back = rollback_spec(request)

    assert back.parameters == {
        "artifact": D96A, "version": "2.3.0", "from_env": "test", "to_env": "prod", "rollback_of": "PRM-1",
    }  # fmt: skip


async def test_rollback_of_a_first_deployment_is_refused(world):
    request = make_request(d96a_to_prod(), result={"previous_version": None})

    with pytest.raises(
        PrecheckFailed, match=r"prod ran no version of orders-edi\.orders-d96a-to-xml before PRM-1"
    ):
        rollback_spec(request)


async def test_change_summary_page_is_storage_xml_with_escaped_user_text(world):
    spec = d96a_to_prod()
    reason = 'x</p><script>alert("hi")</script>]]>&amp;'
    await workflow(world).execute(make_request(spec, reason=reason), FakeContext())

    stored = world.wiki.page_by_title(
        world.wiki.space_by_key("INT").id, change_summary_title("PRM-1", D96A, "2.4.0", "prod")
    )

    root = parse_storage(stored.body)
    assert root.find(".//script") is None
    assert reason in "".join(root.itertext())
    assert isinstance(root, ET.Element)


async def test_progress_never_reports_a_finished_job_twice_when_resuming(world):
    ctx = FakeContext(crash_at="document")
    with pytest.raises(SimulatedCrash):
        await workflow(world).execute(make_request(d96a_to_prod()), ctx)
    resumed = ctx.resumed()
    world.clock.advance(timedelta(minutes=5))

    await workflow(world).execute(make_request(d96a_to_prod()), resumed)

    assert "poll" not in resumed.progress.names
    assert resumed.progress.names == ["start", "document"]
