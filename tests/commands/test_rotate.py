"""RotationWorkflow against the OpenText and Vault emulators and a migrated SQLite database."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.fernet import Fernet
from pydantic import SecretStr, ValidationError

from bot.config.opsgate import OpsgateConfig
from commands.rotate import (
    RotationWorkflow,
    build_ownership_matrix_page,
    credential_config_problems,
    due_rotations,
    expiry_warnings,
    next_due,
    publish_ownership_matrix,
    revoke_due_previous,
    rotation_spec,
)
from commands.workflow import PrecheckFailed, WorkflowFailed
from connectors.confluence_storage import parse_storage
from connectors.opentext import Credential, OpenTextConnector
from connectors.secrets import SecretNotFound, SecretStore

from .opentext_world import (
    NOW,
    REQUESTER,
    FakeContext,
    SimulatedCrash,
    SqliteDatabase,
    World,
    local_store,
    make_request,
    sqlite_db,
    world,
)

__all__ = ["sqlite_db", "world"]  # the fixtures, imported for pytest

ORDERS = "orders-edi-prod"  # local store
INVOICES = "invoices-prod"  # vault store
ROTATIONS = r"/credentials/{}/rotations$"


@pytest.fixture
def secret_key() -> bytes:
    return Fernet.generate_key()


@pytest.fixture
async def stores(world: World, sqlite_db: SqliteDatabase, secret_key: bytes):
    vault = world.vault_store()
    yield {"local": local_store(sqlite_db, world, secret_key), "vault": vault}
    await vault.aclose()


def workflow(world: World, stores: dict[str, SecretStore]) -> RotationWorkflow:
    return RotationWorkflow(world.registry, world.config, stores, world.fingerprinter, clock=world.clock)


def credential(world: World, name: str):
    return next(c for c in world.config.credentials if c.name == name)


def request_for(world: World, name: str, human_id: str = "ROT-1"):
    return make_request(rotation_spec(credential(world, name)), human_id=human_id)


def client_of(world: World, name: str):
    config = credential(world, name)
    emulated = world.ot.credentials[(config.environment, config.credential_id)]
    return world.ot.clients[emulated.client_id]


def rotations_of(world: World, name: str):
    config = credential(world, name)
    return world.ot.credentials[(config.environment, config.credential_id)].rotations


def opentext(world: World) -> OpenTextConnector:
    return world.registry.opentext("prod")


async def authenticates(world: World, name: str, secret: str | SecretStr) -> bool:
    value = secret if isinstance(secret, SecretStr) else SecretStr(secret)
    return await opentext(world).authenticate_client(client_of(world, name).client_id, value)


async def onboard_current(world: World, store: SecretStore, name: str) -> str:
    """Put the secret OpenText uses today into the store as current (what an operator does once)."""
    current = client_of(world, name).secret
    version = await store.put_pending(name, SecretStr(current))
    await store.promote(name, version)
    return current


# --- success --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", [ORDERS, INVOICES])
async def test_rotation_creates_stores_tests_activates_and_promotes_the_new_secret(world, stores, name):
    store = stores[credential(world, name).store]
    old = await onboard_current(world, store, name)
    ctx = FakeContext()

    outcome = await workflow(world, stores).execute(request_for(world, name), ctx)

    new = await store.get(name, "current")
    assert new.get_secret_value() != old
    assert client_of(world, name).secret == new.get_secret_value()  # OpenText's current is the stored one
    assert (await store.get(name, "previous")).get_secret_value() == old
    assert await authenticates(world, name, new)
    assert await authenticates(world, name, old)  # still inside the grace period
    assert outcome.result["secret_fingerprint"] == world.fingerprinter.fingerprint(new)
    assert outcome.result["previous_fingerprint"] == world.fingerprinter.fingerprint(old)
    assert outcome.evidence["opsgate_test"] == "authenticated"
    assert [step for step, _ in ctx.recorded if step != "create"] == [
        "set",
        "test",
        "activate",
        "promote",
        "done",
    ]
    assert ctx.progress.names == ["create", "set", "test", "activate", "promote"]
    assert [r.state for r in rotations_of(world, name)] == ["active"]


async def test_rotation_precheck_previews_the_change_without_secrets(world, stores):
    await onboard_current(world, stores["local"], ORDERS)
    spec = rotation_spec(credential(world, ORDERS))

    preview = await workflow(world, stores).precheck(spec, requester=REQUESTER)

    current_fp = world.fingerprinter.short(world.fingerprinter.fingerprint(client_of(world, ORDERS).secret))
    assert preview.details["current_version"] == f"secret {current_fp}"
    assert "keeps working for 1d after the switch" in preview.details["diff"][1]
    assert preview.details["warnings"][0].startswith("the credential is expiring")
    assert client_of(world, ORDERS).secret not in json.dumps(preview.details)


async def test_precheck_refuses_a_credential_kind_opentext_cannot_rotate(world, stores):
    with pytest.raises(
        PrecheckFailed, match="legacy-ftp-bridge is a api_key; only OAuth client secrets rotate"
    ):
        await workflow(world, stores).precheck(
            rotation_spec(credential(world, "legacy-ftp")), requester=REQUESTER
        )


async def test_precheck_refuses_a_store_that_is_not_configured(world, stores):
    only_local = {"local": stores["local"]}

    with pytest.raises(PrecheckFailed, match="uses the vault secret store, which is not configured"):
        await workflow(world, only_local).precheck(
            rotation_spec(credential(world, INVOICES)), requester=REQUESTER
        )


async def test_precheck_refuses_an_unknown_credential(world, stores):
    spec = rotation_spec(credential(world, ORDERS))
    spec = type(spec)(spec.action, "nope", spec.environment, {**spec.parameters, "credential": "nope"})

    with pytest.raises(PrecheckFailed, match="no credential named 'nope' is configured"):
        await workflow(world, stores).precheck(spec, requester=REQUESTER)


# --- failures at each step leave the current secret working; retries resume -----------------------------


async def test_failure_at_create_leaves_the_current_secret_and_the_retry_creates_one_secret(world, stores):
    old = await onboard_current(world, stores["local"], ORDERS)
    await world.opentext.fault(
        path=ROTATIONS.format("orders-edi-prod-client"), method="POST", status=503, times=1
    )
    ctx = FakeContext()

    with pytest.raises(WorkflowFailed) as caught:
        await workflow(world, stores).execute(request_for(world, ORDERS), ctx)

    assert (caught.value.step, caught.value.retryable) == ("create", True)
    assert "The current secret is unchanged" in caught.value.reason
    assert await authenticates(world, ORDERS, old)
    assert rotations_of(world, ORDERS) == []

    await workflow(world, stores).execute(request_for(world, ORDERS), ctx.resumed())
    assert len(rotations_of(world, ORDERS)) == 1


async def test_failure_at_set_cancels_the_unstored_secret_and_the_retry_starts_clean(world, stores):
    old = await onboard_current(world, stores["vault"], INVOICES)
    await world.vault.fault(path=r"/v1/secret/data/", method="POST", status=503, times=1)
    ctx = FakeContext()

    with pytest.raises(WorkflowFailed) as caught:
        await workflow(world, stores).execute(request_for(world, INVOICES), ctx)

    assert (caught.value.step, caught.value.retryable) == ("set", True)
    assert "was cancelled; the current secret is unchanged" in caught.value.reason
    assert await authenticates(world, INVOICES, old)
    assert [r.state for r in rotations_of(world, INVOICES)] == ["cancelled"]
    assert client_of(world, INVOICES).pending_secret is None  # nobody holds a working unknown secret

    await workflow(world, stores).execute(request_for(world, INVOICES), ctx.resumed())

    assert [r.state for r in rotations_of(world, INVOICES)] == ["cancelled", "active"]
    assert client_of(world, INVOICES).secret == (await stores["vault"].get(INVOICES)).get_secret_value()


async def test_an_interrupted_set_whose_secret_was_stored_continues_without_a_new_secret(world, stores):
    ctx = FakeContext(crash_at="test")  # put_pending succeeded, recording it did not
    with pytest.raises(SimulatedCrash):
        await workflow(world, stores).execute(request_for(world, ORDERS), ctx)
    assert ctx.persisted[0] == "set"

    resumed = ctx.resumed()
    await workflow(world, stores).execute(request_for(world, ORDERS), resumed)

    assert len(rotations_of(world, ORDERS)) == 1
    assert resumed.progress.steps[0][1].startswith("resuming: pending secret ")
    assert [v.version for v in await stores["local"].versions(ORDERS)] == [1]


async def test_a_secret_created_but_never_recorded_is_cancelled_before_creating_another(world, stores):
    ctx = FakeContext(crash_at="set")  # OpenText created a secret; the answer was lost with the process
    with pytest.raises(SimulatedCrash):
        await workflow(world, stores).execute(request_for(world, ORDERS), ctx)
    orphan_secret = client_of(world, ORDERS).pending_secret
    assert orphan_secret is not None

    await workflow(world, stores).execute(request_for(world, ORDERS), ctx.resumed())

    assert [r.state for r in rotations_of(world, ORDERS)] == ["cancelled", "active"]
    assert not await authenticates(world, ORDERS, orphan_secret)


async def test_failure_at_test_leaves_the_current_secret_and_the_retry_tests_the_same_secret(world, stores):
    old = await onboard_current(world, stores["local"], ORDERS)
    await world.opentext.fault(path=r"/rotations/[^/]+/test$", method="POST", status=503, times=1)
    ctx = FakeContext()

    with pytest.raises(WorkflowFailed) as caught:
        await workflow(world, stores).execute(request_for(world, ORDERS), ctx)

    assert (caught.value.step, caught.value.retryable) == ("test", True)
    assert client_of(world, ORDERS).secret == old
    assert await authenticates(world, ORDERS, old)
    pending_fingerprint = ctx.state["secret_fingerprint"]

    outcome = await workflow(world, stores).execute(request_for(world, ORDERS), ctx.resumed())

    assert outcome.result["secret_fingerprint"] == pending_fingerprint
    assert len(rotations_of(world, ORDERS)) == 1
    assert [(v.version, v.label) for v in await stores["local"].versions(ORDERS)] == [
        (1, "previous"),
        (2, "current"),
    ]


async def test_a_pending_secret_opentext_refuses_is_never_activated(world, stores):
    old = await onboard_current(world, stores["local"], ORDERS)
    refused = {
        "rotation_id": "rot-x", "credential_id": "orders-edi-prod-client", "environment": "prod",
        "state": "pending", "authenticated": False,
    }  # fmt: skip
    await world.opentext.fault(path=r"/rotations/[^/]+/test$", method="POST", status=200, body=refused)

    with pytest.raises(WorkflowFailed) as caught:
        await workflow(world, stores).execute(request_for(world, ORDERS), FakeContext())

    assert caught.value.step == "test"
    assert "could not authenticate orders-edi-prod-client with the pending secret" in caught.value.reason
    assert client_of(world, ORDERS).secret == old
    assert (await stores["local"].get(ORDERS)).get_secret_value() == old


async def test_failure_at_activate_leaves_the_current_secret_and_the_retry_activates_the_tested_one(
    world, stores
):
    old = await onboard_current(world, stores["local"], ORDERS)
    await world.opentext.fault(path=r"/activate$", method="POST", status=503, times=1)
    ctx = FakeContext()

    with pytest.raises(WorkflowFailed) as caught:
        await workflow(world, stores).execute(request_for(world, ORDERS), ctx)

    assert (caught.value.step, caught.value.retryable) == ("activate", True)
    assert client_of(world, ORDERS).secret == old
    assert await authenticates(world, ORDERS, old)

    await workflow(world, stores).execute(request_for(world, ORDERS), ctx.resumed())

    assert client_of(world, ORDERS).secret == (await stores["local"].get(ORDERS)).get_secret_value()
    assert len(rotations_of(world, ORDERS)) == 1


async def test_failure_at_promote_keeps_the_previous_secret_valid_and_the_retry_finishes(world, stores):
    old = await onboard_current(world, stores["vault"], INVOICES)

    async def break_vault_labels() -> None:
        await world.vault.fault(path=r"/v1/secret/metadata/", method="POST", status=503, times=1)

    ctx = FakeContext(before_step={"promote": break_vault_labels})

    with pytest.raises(WorkflowFailed) as caught:
        await workflow(world, stores).execute(request_for(world, INVOICES), ctx)

    assert (caught.value.step, caught.value.retryable) == ("promote", True)
    assert caught.value.partial["activated"] is True
    assert (await stores["vault"].get(INVOICES)).get_secret_value() == old
    assert await authenticates(world, INVOICES, old)  # grace period

    await workflow(world, stores).execute(request_for(world, INVOICES), ctx.resumed())

    new = await stores["vault"].get(INVOICES)
    assert client_of(world, INVOICES).secret == new.get_secret_value()
    assert (await stores["vault"].get(INVOICES, "previous")).get_secret_value() == old
    assert len(rotations_of(world, INVOICES)) == 1


# --- grace period and revocation -----------------------------------------------------------------------


async def test_previous_secret_works_through_the_grace_period_then_is_revoked(world, stores):
    old = await onboard_current(world, stores["local"], ORDERS)
    await workflow(world, stores).execute(request_for(world, ORDERS), FakeContext())

    world.clock.advance(timedelta(hours=23))
    assert await revoke_due_previous(world.registry, world.config, stores, now=world.clock()) == []
    assert await authenticates(world, ORDERS, old)

    world.clock.advance(timedelta(hours=2))
    outcomes = await revoke_due_previous(world.registry, world.config, stores, now=world.clock())

    assert [(o.name, o.ok) for o in outcomes] == [(ORDERS, True)]
    assert not await authenticates(world, ORDERS, old)
    assert await authenticates(world, ORDERS, await stores["local"].get(ORDERS))
    with pytest.raises(SecretNotFound):
        await stores["local"].get(ORDERS, "previous")
    assert [r.state for r in rotations_of(world, ORDERS)] == ["completed"]


async def test_a_new_rotation_waits_for_the_previous_grace_period(world, stores):
    await workflow(world, stores).execute(request_for(world, ORDERS), FakeContext())
    spec = rotation_spec(credential(world, ORDERS))

    with pytest.raises(PrecheckFailed, match="was rotated recently: its previous secret stays valid until"):
        await workflow(world, stores).precheck(spec, requester=REQUESTER)

    world.clock.advance(timedelta(days=2))
    preview = await workflow(world, stores).precheck(spec, requester=REQUESTER)
    assert "is past its grace period and will be completed first" in preview.details["warnings"][0]
    await workflow(world, stores).execute(request_for(world, ORDERS, "ROT-2"), FakeContext())
    assert [r.state for r in rotations_of(world, ORDERS)] == ["completed", "active"]


async def test_revocation_reports_a_failing_credential_and_continues_with_the_others(world, stores):
    await workflow(world, stores).execute(request_for(world, ORDERS), FakeContext())
    await workflow(world, stores).execute(request_for(world, INVOICES, "ROT-2"), FakeContext())
    world.clock.advance(timedelta(days=2))
    await world.opentext.fault(path=r"orders-edi-prod-client/rotations/[^/]+/revoke-previous$", status=503)

    outcomes = await revoke_due_previous(world.registry, world.config, stores, now=world.clock())

    by_name = {o.name: o for o in outcomes}
    assert by_name[ORDERS].ok is False
    assert by_name[ORDERS].error == "Internal Server Error (messaging.runtime.UnknownError)"
    assert by_name[INVOICES].ok is True


# --- secrets never leak ---------------------------------------------------------------------------------


async def test_the_new_secret_never_appears_in_progress_results_evidence_logs_or_the_database(
    world, stores, sqlite_db, caplog
):
    caplog.set_level(logging.DEBUG)
    old = await onboard_current(world, stores["local"], ORDERS)
    await world.opentext.fault(path=r"/activate$", method="POST", status=503, times=1)
    ctx = FakeContext()
    with pytest.raises(WorkflowFailed) as caught:
        await workflow(world, stores).execute(request_for(world, ORDERS), ctx)
    resumed = ctx.resumed()
    outcome = await workflow(world, stores).execute(request_for(world, ORDERS), resumed)
    world.clock.advance(timedelta(days=2))
    revoked = await revoke_due_previous(world.registry, world.config, stores, now=world.clock())

    new = (await stores["local"].get(ORDERS)).get_secret_value()
    assert new != old
    seen = {
        "progress": ctx.progress.text() + resumed.progress.text(),
        "failure": f"{caught.value.reason} {caught.value.evidence} {caught.value.partial}",
        "result": json.dumps(dict(outcome.result)),
        "evidence": json.dumps(dict(outcome.evidence)),
        "job state": resumed.persisted[1] + json.dumps(ctx.recorded) + json.dumps(resumed.recorded),
        "revocations": repr(revoked),
        "logs": caplog.text,
        "database": await sqlite_db.dump(),
    }
    for where, text in seen.items():
        for secret in (new, old):
            assert secret not in text, f"a secret leaked into {where}"
    assert "gAAAAA" in seen["database"]  # the scan did read the encrypted rows (Fernet tokens)
    assert world.fingerprinter.fingerprint(new) in seen["result"]


# --- schedules (pure) ---------------------------------------------------------------------------------


def at(text: str):
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def config_with(**credential_fields) -> OpsgateConfig:
    entry = {
        "name": "c",
        "environment": "prod",
        "credential_id": "c-id",
        "owner": "U0OWNER",
        **credential_fields,
    }
    return OpsgateConfig.model_validate({"environments": {"prod": {}}, "credentials": [entry]})


def due_windows(config: OpsgateConfig, last, now) -> list[str | None]:
    return [spec.parameters.get("window_start") for spec in due_rotations(config, {"c": last}, now)]


def test_an_interval_schedule_opens_a_utc_day_window_when_the_interval_has_passed():
    config = config_with(schedule="90d")
    last = at("2025-01-01T10:00:00")

    assert due_windows(config, last, at("2025-03-31T23:59:00")) == []
    assert due_windows(config, last, at("2025-04-01T00:30:00")) == ["2025-04-01T00:00:00+00:00"]
    assert due_windows(config, last, at("2025-04-01T23:59:59")) == ["2025-04-01T00:00:00+00:00"]


def test_a_missed_interval_window_waits_for_the_next_one():
    config = config_with(schedule="90d")
    last = at("2025-01-01T10:00:00")

    assert due_windows(config, last, at("2025-04-02T00:00:00")) == []
    assert due_windows(config, last, at("2025-05-15T12:00:00")) == []
    assert next_due(config.credentials[0], last, at("2025-04-02T00:00:00")) == at("2025-06-30T00:00:00")
    assert due_windows(config, last, at("2025-06-30T08:00:00")) == ["2025-06-30T00:00:00+00:00"]


def test_a_cron_window_lasts_until_the_end_of_the_utc_day_and_is_used_once():
    config = config_with(schedule="0 3 * * 1")  # Mondays 03:00 UTC; 2025-03-10 is a Monday
    last = at("2025-03-03T03:10:00")

    assert due_windows(config, last, at("2025-03-10T02:59:00")) == []
    assert due_windows(config, last, at("2025-03-10T03:00:00")) == ["2025-03-10T03:00:00+00:00"]
    assert due_windows(config, last, at("2025-03-10T23:59:00")) == ["2025-03-10T03:00:00+00:00"]
    assert due_windows(config, at("2025-03-10T05:00:00"), at("2025-03-10T06:00:00")) == []
    assert due_windows(config, last, at("2025-03-11T00:00:00")) == []  # missed: wait for next Monday
    assert next_due(config.credentials[0], last, at("2025-03-11T00:00:00")) == at("2025-03-17T03:00:00")


def test_sub_daily_schedules_get_one_hour_windows_unless_configured():
    hourly = config_with(schedule="0 */6 * * *")
    last = at("2025-03-10T00:05:00")

    assert due_windows(hourly, last, at("2025-03-10T06:59:00")) == ["2025-03-10T06:00:00+00:00"]
    assert due_windows(hourly, last, at("2025-03-10T07:00:00")) == []
    wide = config_with(schedule="0 */6 * * *", rotation_window="3h")
    assert due_windows(wide, last, at("2025-03-10T08:59:00")) == ["2025-03-10T06:00:00+00:00"]


def test_a_credential_never_rotated_is_due_at_once():
    config = config_with(schedule="0 3 * * 1")

    specs = due_rotations(config, {}, at("2025-03-12T15:00:00"))

    assert len(specs) == 1
    spec = specs[0]
    assert (spec.action.value, spec.target, spec.environment) == ("rotation", "c", "prod")
    assert spec.parameters == {
        "credential": "c", "credential_id": "c-id", "grace_period": "1d", "store": "local", "trigger": "schedule",
    }  # fmt: skip


def test_credentials_in_environments_without_opentext_are_reported_for_the_config_check():
    config = OpsgateConfig.model_validate(
        {
            "environments": {"prod": {}},
            "credentials": [
                {"name": "a", "environment": "prod", "credential_id": "x", "owner": "U1", "schedule": "90d"},
                {"name": "b", "environment": "stage", "credential_id": "y", "owner": "U1", "schedule": "90d"},
            ],
        }
    )

    assert credential_config_problems(config) == [
        "credentials[0].environment: environments.prod.opentext is not configured, so the credential cannot be rotated",
        "credentials[1].environment: 'stage' is not a declared environment (prod)",
    ]


@pytest.mark.parametrize(
    ("schedule", "problem"),
    [
        ("every day", "is neither a cron expression"),
        ("15m", "more often than every 1h"),
        ("61 3 * * 1", "is not a valid cron expression"),
    ],
)
def test_bad_schedules_are_rejected_with_a_reason(schedule, problem):
    with pytest.raises(ValidationError, match=problem):
        config_with(schedule=schedule)


# --- expiry warnings (pure) --------------------------------------------------------------------------


def ot_credential(cred_id: str, days_left: float, *, status: str = "active", env: str = "prod") -> Credential:
    return Credential(
        id=cred_id, environment=env, name=cred_id, kind="oauth_client", owner="team@acme.example",
        expires_at=NOW + timedelta(days=days_left), status=status,
    )  # fmt: skip


def test_expiry_warning_uses_the_tightest_crossed_threshold_and_marks_the_wider_ones(world):
    found = [ot_credential("orders-edi-prod-client", 6)]

    warnings = expiry_warnings(world.config, found, set(), NOW)

    assert len(warnings) == 1
    warning = warnings[0]
    assert (warning.name, warning.threshold_days, warning.days_left) == (ORDERS, 7, 6)
    assert (warning.owner, warning.owner_channel) == ("U0ORDERS", "C0ORDERS")
    assert warning.marks == {(ORDERS, 30), (ORDERS, 7)}
    assert (
        warning.message()
        == "orders-edi-prod (prod) expires in 6 day(s), at 2025-03-16 09:00 UTC; rotate it now."
    )
    assert expiry_warnings(world.config, found, set(warning.marks), NOW) == []
    later = expiry_warnings(world.config, found, set(warning.marks), NOW + timedelta(days=5, hours=12))
    assert [(w.threshold_days, w.days_left) for w in later] == [(1, 0)]


def test_expired_credentials_warn_once_and_revoked_or_distant_ones_not_at_all(world):
    found = [
        ot_credential("orders-edi-prod-client", -2),
        ot_credential("invoices-prod-client", 45),
        ot_credential("legacy-ftp-bridge", 3, status="revoked"),
    ]

    warnings = expiry_warnings(world.config, found, set(), NOW)

    assert [(w.name, w.threshold_days, w.expired) for w in warnings] == [(ORDERS, 0, True)]
    assert warnings[0].message().startswith("orders-edi-prod (prod) expired at 2025-03-08 09:00 UTC")
    assert expiry_warnings(world.config, found, set(warnings[0].marks), NOW) == []


def test_credentials_opsgate_does_not_rotate_are_warned_about_to_their_opentext_owner(world):
    warnings = expiry_warnings(world.config, [ot_credential("reporting-client", 20, env="test")], set(), NOW)

    assert [(w.name, w.threshold_days, w.owner, w.configured) for w in warnings] == [
        ("test/reporting-client", 30, "team@acme.example", False)
    ]
    assert "not rotated by opsgate" in warnings[0].message()


# --- ownership matrix -----------------------------------------------------------------------------------


async def test_ownership_matrix_lists_owner_schedule_last_rotation_and_next_due(world):
    found = [*await opentext(world).list_credentials("prod"), *await opentext(world).list_credentials("test")]
    last = {ORDERS: at("2025-01-01T10:00:00"), INVOICES: None}

    body = build_ownership_matrix_page(world.config, credentials=found, last_rotated=last, now=NOW)

    root = parse_storage(body)
    rows = [["".join(cell.itertext()) for cell in row] for row in root.iter("tr")]
    orders = next(row for row in rows if row[0] == ORDERS)
    assert orders == [
        ORDERS, "prod", "orders-edi-prod-client", "U0ORDERS", "C0ORDERS", "every 90d", "1d", "local",
        "2025-01-01 10:00 UTC", "2025-04-01 00:00 UTC", "2025-03-16 09:00 UTC", "YellowExpires in 6d",
    ]  # fmt: skip
    invoices = next(row for row in rows if row[0] == INVOICES)
    assert invoices[5:10] == ["cron 0 3 * * 1 (UTC)", "2h", "vault", "never", "2025-03-10 09:00 UTC"]
    unmanaged = next(row for row in rows if row[0] == "orders-edi-test-client")
    assert unmanaged[1:5] == [
        "test",
        "Orders EDI partner gateway (test)",
        "oauth_client",
        "team-orders@acme.example",
    ]
    assert not any(
        row[0] == "invoices-prod-client" for row in rows
    )  # managed ones are in the first table only
    for client in world.ot.clients.values():
        assert client.secret not in body


async def test_publishing_the_ownership_matrix_upserts_one_confluence_page(world):
    first = await publish_ownership_matrix(world.registry, world.config, space_key="INT", now=NOW)
    again = await publish_ownership_matrix(world.registry, world.config, space_key="INT", now=NOW)

    assert (first.outcome, again.outcome) == ("created", "unchanged")
    page = await world.registry.confluence("prod").find_page("INT", "Credential ownership matrix")
    text = "".join(parse_storage(page.body).itertext())
    assert "legacy-ftp" in text and "U0INVOICES" in text
    assert "Generated by opsgate at 2025-03-10 09:00 UTC" in text
