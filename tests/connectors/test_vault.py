"""VaultKV2Store specifics and the Vault KV v2 emulator it is tested against, over real HTTP."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from aiohttp import web
from pydantic import SecretStr

from bot.domain.audit import Fingerprinter
from connectors.emulators import vault as vault_emulator
from connectors.emulators.faults import fault_injector_of, start_app
from connectors.http import HttpOptions
from connectors.secrets import SecretStoreError, VaultKV2Store, VaultSettings

TOKEN = vault_emulator.DEFAULT_TOKEN
FINGERPRINTS = Fingerprinter(b"test-fingerprint-key-0123456789")
SECRET = SecretStr("vault-kept-value-8c1f")


@dataclass
class VaultWorld:
    app: web.Application
    url: str
    http: httpx.AsyncClient

    @property
    def state(self) -> vault_emulator.VaultState:
        return vault_emulator.vault_state_of(self.app)

    def store(self, **settings: object) -> VaultKV2Store:
        values: dict[str, object] = {"base_url": self.url, "token": TOKEN, "http": HttpOptions(max_retries=0)}
        values.update(settings)
        return VaultKV2Store(VaultSettings.model_validate(values), fingerprints=FINGERPRINTS)


@pytest.fixture
async def vault() -> AsyncIterator[VaultWorld]:
    app = vault_emulator.create_app()
    runner, url = await start_app(app)
    async with httpx.AsyncClient(base_url=url, headers={"X-Vault-Token": TOKEN}) as http:
        yield VaultWorld(app, url, http)
    await runner.cleanup()


@pytest.fixture
async def store(vault: VaultWorld) -> AsyncIterator[VaultKV2Store]:
    store = vault.store()
    yield store
    await store.aclose()


# --- the store --------------------------------------------------------------------------------------


async def test_values_are_kv2_versions_under_the_prefix_and_labels_are_custom_metadata(vault, store):
    version = await store.put_pending("orders-prod", SECRET)
    await store.promote("orders-prod", version)

    key = vault.state.keys[("secret", "opsgate/orders-prod")]
    assert key.versions[version].data == {"value": SECRET.get_secret_value()}
    assert key.custom_metadata == {"opsgate_current": str(version)}


async def test_other_custom_metadata_on_the_key_survives_rotation(vault, store):
    await vault.http.post(
        "/v1/secret/metadata/opsgate/orders-prod", json={"custom_metadata": {"owner": "team-orders"}}
    )

    await store.promote("orders-prod", await store.put_pending("orders-prod", SECRET))

    assert vault.state.keys[("secret", "opsgate/orders-prod")].custom_metadata == {
        "owner": "team-orders",
        "opsgate_current": "1",
    }


async def test_a_wrong_token_is_a_store_error_saying_permission_denied(vault):
    store = vault.store(token="not-the-token")
    try:
        with pytest.raises(SecretStoreError, match=r"\(403\): permission denied"):
            await store.get("orders-prod")
    finally:
        await store.aclose()


async def test_a_vault_outage_is_a_store_error_that_never_shows_the_value(vault, store):
    await vault.http.post(
        "/_control/faults", json={"path": "/v1/secret/data/", "method": "POST", "status": 503}
    )

    with pytest.raises(SecretStoreError) as caught:
        await store.put_pending("orders-prod", SECRET)

    assert "Vault failed storing a pending version of secret 'orders-prod' (503)" in str(caught.value)
    assert SECRET.get_secret_value() not in str(caught.value)


async def test_neither_the_token_nor_values_reach_the_logs(vault, store, caplog):
    caplog.set_level(logging.DEBUG)

    await store.promote("orders-prod", await store.put_pending("orders-prod", SECRET))
    await store.get("orders-prod")

    assert "X-Vault-Token" in caplog.text or "x-vault-token" in caplog.text  # the header was logged, redacted
    assert TOKEN not in caplog.text
    assert SECRET.get_secret_value() not in caplog.text


async def test_a_namespace_is_sent_as_the_vault_namespace_header(vault):
    store = vault.store(namespace="team-integration")
    try:
        await store.versions("orders-prod")
    finally:
        await store.aclose()

    headers = vault_emulator_requests(vault)[-1]["headers"]
    assert headers["X-Vault-Namespace"] == "team-integration"


def vault_emulator_requests(vault: VaultWorld) -> list[dict[str, object]]:
    return list(fault_injector_of(vault.app).requests)


def test_settings_come_from_the_usual_vault_environment_variables():
    settings = VaultSettings.from_env(
        {
            "VAULT_ADDR": "https://vault.acme.example:8200",
            "VAULT_TOKEN": "s.abc",
            "OPSGATE_VAULT_MOUNT": "kv/",
        }
    )

    assert settings is not None
    assert (settings.base_url, settings.mount, settings.path_prefix) == (
        "https://vault.acme.example:8200",
        "kv",
        "opsgate",
    )
    assert "s.abc" not in repr(settings)
    assert VaultSettings.from_env({"VAULT_ADDR": "https://vault"}) is None


# --- the emulator -------------------------------------------------------------------------------------


async def test_emulator_keeps_versions_and_reads_the_latest_or_a_given_one(vault):
    for value in ("one", "two"):
        written = await vault.http.post("/v1/secret/data/app/db", json={"data": {"password": value}})
        assert written.status_code == 200

    latest = (await vault.http.get("/v1/secret/data/app/db")).json()["data"]
    first = (await vault.http.get("/v1/secret/data/app/db", params={"version": 1})).json()["data"]
    meta = (await vault.http.get("/v1/secret/metadata/app/db")).json()["data"]

    assert (latest["data"], latest["metadata"]["version"]) == ({"password": "two"}, 2)
    assert first["data"] == {"password": "one"}
    assert meta["current_version"] == 2 and sorted(meta["versions"]) == ["1", "2"]


async def test_emulator_rejects_a_check_and_set_mismatch(vault):
    await vault.http.post("/v1/secret/data/app/db", json={"data": {"a": "1"}})

    stale = await vault.http.post("/v1/secret/data/app/db", json={"data": {"a": "2"}, "options": {"cas": 0}})

    assert stale.status_code == 400
    assert stale.json() == {"errors": ["check-and-set parameter did not match the current version"]}


async def test_emulator_answers_404_for_a_destroyed_version_but_keeps_its_metadata(vault):
    await vault.http.post("/v1/secret/data/app/db", json={"data": {"a": "1"}})
    destroyed = await vault.http.post("/v1/secret/destroy/app/db", json={"versions": [1]})

    read = await vault.http.get("/v1/secret/data/app/db", params={"version": 1})

    assert destroyed.status_code == 204
    assert read.status_code == 404
    assert read.json()["data"] == {"data": None, "metadata": read.json()["data"]["metadata"]}
    assert read.json()["data"]["metadata"]["destroyed"] is True


async def test_emulator_requires_a_token_except_for_health(vault):
    async with httpx.AsyncClient(base_url=vault.url) as anonymous:
        denied = await anonymous.get("/v1/secret/data/app/db")
        health = await anonymous.get("/v1/sys/health")

    assert (denied.status_code, denied.json()) == (403, {"errors": ["permission denied"]})
    assert health.status_code == 200 and health.json()["sealed"] is False


async def test_emulator_reports_unknown_keys_as_404_with_no_messages(vault):
    missing = await vault.http.get("/v1/secret/metadata/nothing/here")

    assert (missing.status_code, missing.json()) == (404, {"errors": []})
