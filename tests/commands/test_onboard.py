"""OnboardingWorkflow against the OpenText, Confluence, Canto and iconik emulators over real HTTP."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from bot.config.onboarding import OnboardingTemplate
from bot.domain.policy import Action
from commands.onboard import onboarding_config_problems, onboarding_spec, template_fingerprint
from commands.onboard_pages import onboarding_page_title
from commands.onboard_plan import collection_external_id
from commands.workflow import PrecheckFailed, WorkflowFailed
from connectors.confluence_storage import parse_storage
from connectors.emulators import opentext as opentext_emulator

from .onboarding_world import SECRETS, TEMPLATE, OnboardingWorld, build_config, onboarding
from .opentext_world import NOW, FakeContext, SimulatedCrash, make_request

__all__ = ["onboarding"]  # the fixture, imported for pytest

CLONES = r"/artifacts/[^/]+/clone$"
COLLECTIONS = r"/API/assets/v1/collections/$"
ALBUMS = r"/api/v1/album/[^/]+/[^/]+$"
NEW_ARTIFACTS = [
    "orders-edi.globex-as2-profile",
    "orders-edi.globex-d96a-to-xml",
    "orders-edi.globex-orders-api",
]
PAGE_TITLE = onboarding_page_title("globex", "prod")


def page_text(body: str) -> str:
    return " ".join("".join(parse_storage(body).itertext()).split())


def headings(body: str) -> list[str]:
    root = parse_storage(body)
    return ["".join(h.itertext()).strip() for h in root.iter() if h.tag in ("h2", "h3")]


async def onboard(world: OnboardingWorld, ctx: FakeContext | None = None, **request: Any) -> Any:
    spec = world.spec()
    ctx = ctx or FakeContext()
    result = await world.workflow().execute(make_request(spec, human_id="ONB-1", **request), ctx)
    return result, ctx


def partner_credential(world: OnboardingWorld, credential_id: str = "globex-prod-client") -> None:
    """Someone created the partner's credential in OpenText by hand (its API cannot)."""
    world.ot.credentials[("prod", credential_id)] = opentext_emulator.Credential(
        id=credential_id, environment="prod", name="Globex AS2 client", kind="oauth_client",
        client_id=credential_id, owner="edi-team@acme.example", created_at=NOW, expires_at=NOW + timedelta(days=365),
    )  # fmt: skip


# --- the request and the plan ---------------------------------------------------------------------


def test_the_request_targets_the_name_and_carries_the_template_version(onboarding):
    spec = onboarding.spec()

    assert (spec.action, spec.target, spec.environment) == (Action.ONBOARDING, "globex", "prod")
    assert spec.parameters["template"] == "edi-partner"
    assert spec.parameters["template_hash"] == template_fingerprint(onboarding.config.onboarding_templates[0])
    assert spec.effective_lock_key == "onboarding:globex@prod"


@pytest.mark.parametrize(
    ("template", "name", "env", "message"),
    [
        ("edi-vendor", "globex", "prod", "Unknown onboarding template 'edi-vendor' (known: edi-partner)"),
        ("edi-partner", "globex", "staging", "Unknown environment 'staging'"),
        ("edi-partner", "Globex Corp", "prod", "cannot be onboarded: use lower-case letters"),
    ],
)
def test_a_request_for_an_unknown_template_environment_or_bad_name_is_refused(
    onboarding, template, name, env, message
):
    with pytest.raises(PrecheckFailed) as refused:
        onboarding_spec(onboarding.config, template, name, env)
    assert message in str(refused.value)


async def test_precheck_shows_exactly_what_will_be_created(onboarding):
    preview = await onboarding.workflow().precheck(onboarding.spec(), requester="U0REQ")

    assert preview.details["existing"] is False
    assert preview.details["differences"] == []
    assert preview.details["plan"] == [
        "+ OpenText artifact orders-edi.globex-orders-api: clone of orders-edi.orders-inbound-api 1.2.0 (api)",
        "+ OpenText artifact orders-edi.globex-d96a-to-xml: clone of orders-edi.orders-d96a-to-xml 2.4.0 (map)",
        "+ OpenText artifact orders-edi.globex-as2-profile: clone of orders-edi.orders-as2-partners 1.1.0 "
        "(messaging_config)",
        "! credential globex-prod-client: create it in OpenText (its API cannot) and add it to credentials:; "
        "owner U0PARTNEROPS, rotated 90d",
        "+ iconik collection Partner globex: uploads routed to storage Export - Retailer A",
        "+ Canto album Partner Releases/globex: new album",
        "+ Confluence page Onboarding: globex (prod): in space INT",
    ]
    assert preview.details["diff"] == preview.details["plan"], "approvers see the plan"
    assert preview.details["settings"] == {
        "as2_url": "https://b2b.acme.example/as2/globex",
        "as2_id": "ACME01",
    }
    assert "6 thing(s) to create, 1 for people to do" in preview.summary
    assert onboarding.artifacts_named("globex") == [], "a precheck changes nothing"
    assert onboarding.opentext.count(CLONES, "POST") == 0


async def test_precheck_refuses_a_template_whose_storage_or_folder_does_not_exist(onboarding):
    broken = {**TEMPLATE, "iconik": {**TEMPLATE["iconik"], "storage": "Export - Nowhere"}}
    config = build_config(onboarding.urls, template=broken)

    with pytest.raises(PrecheckFailed) as refused:
        await onboarding.workflow(config).precheck(onboarding.spec(config=config), requester="U0REQ")

    assert "iconik has no storage 'Export - Nowhere'" in str(refused.value)
    assert "Export - Retailer A" in str(refused.value), "the refusal names the storages there are"


async def test_precheck_refuses_an_environment_without_the_vendors_the_template_needs(onboarding):
    with pytest.raises(
        PrecheckFailed, match=r"the template needs iconik: environments.test.iconik is not configured"
    ):
        await onboarding.workflow().precheck(onboarding.spec(env="test"), requester="U0REQ")


# --- a first onboarding ---------------------------------------------------------------------------


async def test_onboarding_clones_artifacts_creates_the_route_and_album_and_publishes_the_page(onboarding):
    result, ctx = await onboard(onboarding)

    assert onboarding.artifacts_named("globex") == NEW_ARTIFACTS
    mapped = onboarding.ot.artifacts["orders-edi.globex-d96a-to-xml"]
    assert (mapped.kind, mapped.versions[0].version) == ("map", "1.0.0")
    assert (
        mapped.versions[0].checksum
        == onboarding.ot.artifacts["orders-edi.orders-d96a-to-xml"].version("2.4.0").checksum
    )
    [collection] = onboarding.collections_titled("Partner globex")
    assert collection["storage_id"] == onboarding.storage_id("Export - Retailer A")
    assert collection["external_id"] == collection_external_id("globex", "prod")
    assert collection["parent_id"] == next(c["id"] for c in onboarding.collections_titled("Releases"))
    [album] = onboarding.albums_named("globex")
    assert onboarding.library.nodes[album.parent_id].name == "Partner Releases"
    assert album.description == "Deliveries for globex"
    assert len(onboarding.pages_titled(PAGE_TITLE)) == 1
    assert result.links == {"Onboarding page": result.result["page"]["url"]}
    assert result.result["created"] == (
        "orders-edi.globex-orders-api, orders-edi.globex-d96a-to-xml, orders-edi.globex-as2-profile, "
        "Partner globex, Partner Releases/globex"
    )
    assert ctx.step == "done"


async def test_the_onboarding_page_has_every_section_and_the_credential_owners(onboarding):
    await onboard(onboarding)
    [page] = onboarding.pages_titled(PAGE_TITLE)

    assert headings(page.body) == [
        "What opsgate set up",
        "Interface guide",
        "Settings in prod",
        "OpenText artifacts",
        "Message standards",
        "Testing instructions",
        "Support contacts",
        "Credential owners",
    ]
    text = page_text(page.body)
    assert "globex posts ORDERS to the AS2 endpoint below." in text
    assert "https://b2b.acme.example/as2/globex" in text
    assert "EDIFACT ORDERS D96A" in text and "Send a test ORDERS to the prod endpoint" in text
    assert "EDI support" in text and "#edi-support" in text
    assert "globex-prod-client" in text and "U0PARTNEROPS (C0EDI)" in text and "90d" in text
    assert "OpenText's admin API cannot create credentials" in text
    assert [label.name for label in page.labels] == ["opsgate", "onboarding"]


async def test_no_secret_reaches_the_page_the_result_or_the_job_state(onboarding):
    result, ctx = await onboard(onboarding)
    [page] = onboarding.pages_titled(PAGE_TITLE)

    seen = " ".join([page.body, repr(result.result), repr(result.evidence), ctx.persisted[1]])
    for secret in SECRETS:
        assert secret not in seen


async def test_credentials_are_listed_to_create_because_opentext_cannot_create_them(onboarding):
    result, _ = await onboard(onboarding)

    assert result.result["opentext_todo"] == "create credential(s) globex-prod-client (its API cannot)"
    entry = yaml.safe_load(result.result["credential_config"])["credentials"][0]
    assert entry == {
        "name": "globex-prod-client", "environment": "prod", "credential_id": "globex-prod-client",
        "owner": "U0PARTNEROPS", "owner_channel": "C0EDI", "description": "AS2 gateway client of globex",
        "schedule": "90d", "grace_period": "12h", "store": "local",
    }  # fmt: skip
    assert build_config(onboarding.urls, credentials=[entry]).credentials[0].owner == "U0PARTNEROPS", (
        "the entry is valid opsgate config as it is"
    )
    assert ("prod", "globex-prod-client") not in onboarding.ot.credentials, "no credential API was invented"


# --- failures and retries -------------------------------------------------------------------------


async def test_a_failure_midway_is_retried_from_where_it_stopped_without_duplicates(onboarding):
    await onboarding.iconik.fault(path=COLLECTIONS, method="POST", status=503)

    with pytest.raises(WorkflowFailed) as failed:
        await onboard(onboarding, ctx := FakeContext())

    assert failed.value.step == "iconik" and failed.value.retryable
    assert (
        "Done: OpenText clones, credential check. Not done: iconik collection, Canto album"
        in failed.value.reason
    )
    assert sorted(failed.value.partial["artifacts"]) == sorted(NEW_ARTIFACTS)
    assert onboarding.albums_named("globex") == [] and onboarding.pages_titled(PAGE_TITLE) == []

    await onboarding.iconik.clear_faults()
    result, resumed = await onboard(onboarding, ctx.resumed())

    assert onboarding.opentext.count(CLONES, "POST") == 3, "no artifact was cloned a second time"
    assert onboarding.artifacts_named("globex") == NEW_ARTIFACTS
    assert len(onboarding.collections_titled("Partner globex")) == 1
    assert len(onboarding.albums_named("globex")) == 1
    assert len(onboarding.pages_titled(PAGE_TITLE)) == 1
    assert resumed.step == "done" and result.result["page"]["outcome"] == "created"


async def test_a_crash_right_after_creating_the_collection_does_not_create_a_second_one(onboarding):
    with pytest.raises(SimulatedCrash):
        await onboard(onboarding, ctx := FakeContext(crash_at="canto"))
    assert len(onboarding.collections_titled("Partner globex")) == 1

    result, _ = await onboard(onboarding, ctx.resumed())

    assert onboarding.iconik.count(COLLECTIONS, "POST") == 1
    assert len(onboarding.collections_titled("Partner globex")) == 1
    assert result.result["collection"]["outcome"] == "created", "the resumed run knows it made it"
    assert len(onboarding.albums_named("globex")) == 1


class CrashOnceAJobIsKnown(FakeContext):
    """Dies while recording the first clone job's id: OpenText made the job, opsgate never noted it."""

    crashed = False

    async def record_step(self, step: str, **state: Any) -> None:
        clones = state.get("clones") or {}
        if not self.crashed and any("job_id" in entry for entry in clones.values()):
            self.crashed = True
            raise SimulatedCrash(step)
        await super().record_step(step, **state)


async def test_a_crash_between_asking_for_a_clone_and_recording_its_job_gets_the_same_job_back(onboarding):
    with pytest.raises(SimulatedCrash):
        await onboard(onboarding, ctx := CrashOnceAJobIsKnown())
    assert len(onboarding.ot.jobs) == 1

    await onboard(onboarding, ctx.resumed())

    assert onboarding.opentext.count(CLONES, "POST") == 4, "the interrupted clone was asked for again"
    assert len(onboarding.ot.jobs) == 3, (
        "with the same key: OpenText gave the same job back, not a second one"
    )
    assert onboarding.artifacts_named("globex") == NEW_ARTIFACTS


async def test_a_failed_clone_job_is_reported_and_a_retry_starts_a_new_job(onboarding):
    await onboarding.opentext.control(
        "POST",
        "/_control/opentext/fail-next-job",
        {"code": "map_compile_error", "message": "Segment FTX unknown"},
    )

    with pytest.raises(WorkflowFailed) as failed:
        await onboard(onboarding, ctx := FakeContext())

    assert failed.value.step == "clone"
    assert (
        "cloning orders-edi.orders-inbound-api into orders-edi.globex-orders-api failed: Segment FTX unknown"
        in (failed.value.reason)
    )
    assert onboarding.artifacts_named("globex") == []

    await onboard(onboarding, ctx.resumed())

    assert onboarding.opentext.count(CLONES, "POST") == 4, (
        "one new job for the failed clone, one each for the rest"
    )
    assert onboarding.artifacts_named("globex") == NEW_ARTIFACTS


async def test_a_template_changed_after_approval_is_not_carried_out(onboarding):
    spec = onboarding.spec()
    changed = build_config(onboarding.urls, template={**TEMPLATE, "message_standards": ["X12 850"]})

    with pytest.raises(WorkflowFailed, match="changed after ONB-1 was approved"):
        await onboarding.workflow(changed).execute(make_request(spec, human_id="ONB-1"), FakeContext())
    assert onboarding.opentext.count(CLONES, "POST") == 0


# --- onboarding a name again ----------------------------------------------------------------------


async def test_re_running_for_an_existing_name_reports_what_differs(onboarding):
    await onboard(onboarding)
    [collection] = onboarding.collections_titled("Partner globex")
    collection["storage_id"] = onboarding.storage_id("Export - Social Agency")  # re-routed by hand
    del onboarding.ot.artifacts["orders-edi.globex-as2-profile"]  # removed in OpenText
    partner_credential(onboarding)
    config = build_config(
        onboarding.urls,
        credentials=[{"name": "globex-prod-client", "environment": "prod", "credential_id": "globex-prod-client",
                      "owner": "U0SOMEONEELSE", "schedule": "90d", "grace_period": "12h"}],
    )  # fmt: skip

    preview = await onboarding.workflow(config).precheck(onboarding.spec(config=config), requester="U0REQ")

    assert preview.details["existing"] is True
    assert "globex already exists in prod (template edi-partner): 3 difference(s)" in preview.summary
    assert preview.details["differences"] == [
        "OpenText artifact orders-edi.globex-as2-profile is missing (will be created)",
        "credential globex-prod-client: the config says owner 'U0SOMEONEELSE', the template 'U0PARTNEROPS'",
        f"iconik collection Partner globex: it routes to storage {onboarding.storage_id('Export - Social Agency')}, "
        f"the template to Export - Retailer A ({onboarding.storage_id('Export - Retailer A')})",
    ]
    plan = preview.details["plan"]
    assert "= OpenText artifact orders-edi.globex-orders-api: exists at 1.0.0" in plan
    assert "= Canto album Partner Releases/globex" in plan
    assert "> Confluence page Onboarding: globex (prod): in space INT" in plan


async def test_re_running_creates_only_what_is_missing_and_leaves_the_rest_as_it_is(onboarding):
    await onboard(onboarding)
    del onboarding.ot.artifacts["orders-edi.globex-as2-profile"]
    posts = onboarding.opentext.count(CLONES, "POST")

    spec = onboarding.spec()
    result = await onboarding.workflow().execute(make_request(spec, human_id="ONB-2"), FakeContext())

    assert onboarding.opentext.count(CLONES, "POST") == posts + 1
    assert result.result["created"] == "orders-edi.globex-as2-profile"
    assert result.result["already_there"] == (
        "orders-edi.globex-orders-api, orders-edi.globex-d96a-to-xml, Partner globex, Partner Releases/globex"
    )
    assert (
        len(onboarding.collections_titled("Partner globex")) == 1
        and len(onboarding.albums_named("globex")) == 1
    )
    [page] = onboarding.pages_titled(PAGE_TITLE)
    assert page.version == 2 and "ONB-2" in page_text(page.body), "the same page, rewritten"


async def test_an_existing_name_that_matches_the_template_has_no_differences(onboarding):
    await onboard(onboarding)
    partner_credential(onboarding)
    config = build_config(
        onboarding.urls,
        credentials=[{"name": "globex-prod-client", "environment": "prod", "credential_id": "globex-prod-client",
                      "owner": "U0PARTNEROPS", "owner_channel": "C0EDI", "schedule": "90d", "grace_period": "12h"}],
    )  # fmt: skip

    preview = await onboarding.workflow(config).precheck(onboarding.spec(config=config), requester="U0REQ")

    assert preview.details["existing"] is True and preview.details["differences"] == []
    assert "= credential globex-prod-client: rotated 90d, owner U0PARTNEROPS" in preview.details["plan"]


# --- the template in the configuration -----------------------------------------------------------


def test_a_template_setting_that_names_a_secret_is_refused():
    with pytest.raises(ValidationError, match="settings are published on the onboarding page"):
        OnboardingTemplate.model_validate({**TEMPLATE, "environments": {"prod": {"as2_password": "x"}}})


def test_a_template_name_pattern_with_an_unknown_placeholder_is_refused():
    with pytest.raises(ValidationError, match=r"only placeholders"):
        OnboardingTemplate.model_validate(
            {**TEMPLATE, "artifacts": [{"source": "orders-edi.orders-inbound-api", "name": "{partner}-api"}]}
        )


def test_two_templates_with_one_name_are_refused(onboarding):
    with pytest.raises(ValidationError, match="the template name 'edi-partner' is used by items 0 and 1"):
        build_config(onboarding.urls, onboarding_templates=[TEMPLATE, TEMPLATE])


def test_check_names_template_environments_and_solutions_the_config_does_not_declare(onboarding):
    template = {**TEMPLATE, "solution": "invoices", "environments": {"staging": {"as2_id": "X"}}}
    config = build_config(onboarding.urls, template=template)

    assert onboarding_config_problems(config) == [
        "onboarding_templates[0].environments: 'staging' is not a declared environment (prod, test)",
        "onboarding_templates[0].solution: 'invoices' is not a configured solution",
    ]
    assert onboarding_config_problems(onboarding.config) == []
