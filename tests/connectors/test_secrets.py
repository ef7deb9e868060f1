"""Secret stores: the same contract for LocalSecretStore (SQLite and PostgreSQL) and VaultKV2Store
(Vault KV v2 emulator over HTTP), plus what only the local store promises about its rows."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from pydantic import SecretStr
from sqlalchemy import select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.db.engine import create_engine, create_session_factory
from bot.db.migrate import upgrade_async
from bot.db.secret_models import SecretVersion
from bot.domain.audit import Fingerprinter
from connectors.emulators import vault as vault_emulator
from connectors.emulators.faults import start_app
from connectors.secrets import (
    LocalSecretStore,
    SecretNotFound,
    SecretStore,
    SecretStoreError,
    VaultKV2Store,
    VaultSettings,
)
from connectors.secrets import _versions as store_table

from ..conftest import PG_URL, pg_connect_args

NOW = datetime(2025, 3, 10, 9, 0, tzinfo=UTC)
FINGERPRINTS = Fingerprinter(b"test-fingerprint-key-0123456789")


def value() -> SecretStr:
    return SecretStr(f"s3cret-{secrets.token_urlsafe(12)}")


@dataclass
class Backend:
    name: str
    store: SecretStore
    engine: AsyncEngine | None = None
    sessions: async_sessionmaker[AsyncSession] | None = None
    key: bytes | None = None


async def _database(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> AsyncEngine:
    if kind == "sqlite":
        engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'secrets.db'}")
        await upgrade_async(engine)
        return engine
    schema = request.getfixturevalue("pg_schema")
    engine = create_engine(PG_URL, connect_args=pg_connect_args(schema))
    async with engine.begin() as conn:
        await conn.execute(text("DELETE FROM secret_versions"))
    return engine


async def _local(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Backend]:
    engine = await _database(kind, tmp_path, request)
    sessions = create_session_factory(engine)
    key = Fernet.generate_key()
    local = LocalSecretStore(sessions, keys=key, fingerprints=FINGERPRINTS, clock=lambda: NOW)
    try:
        yield Backend(f"local-{kind}", local, engine, sessions, key)
    finally:
        await engine.dispose()


@pytest.fixture(params=["local-sqlite", "local-postgresql", "vault"])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    if request.param == "vault":
        runner, url = await start_app(vault_emulator.create_app())
        store = VaultKV2Store(
            VaultSettings(base_url=url, token=SecretStr(vault_emulator.DEFAULT_TOKEN)),
            fingerprints=FINGERPRINTS,
        )
        try:
            yield Backend("vault", store)
        finally:
            await store.aclose()
            await runner.cleanup()
        return
    async for local in _local(request.param.removeprefix("local-"), tmp_path, request):
        yield local


@pytest.fixture(params=["sqlite", "postgresql"])
async def local_only(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    async for local in _local(request.param, tmp_path, request):
        yield local


async def rotate(store: SecretStore, name: str, secret: SecretStr) -> int:
    version = await store.put_pending(name, secret)
    await store.promote(name, version)
    return version


# --- the contract every store keeps -------------------------------------------------------------------


async def test_a_pending_version_is_readable_but_not_yet_current(backend):
    secret = value()

    await backend.store.put_pending("orders", secret)

    assert (await backend.store.get("orders", "pending")).get_secret_value() == secret.get_secret_value()
    with pytest.raises(SecretNotFound, match="secret 'orders' has no current version"):
        await backend.store.get("orders")


async def test_promoting_makes_pending_current_and_current_previous(backend):
    first, second = value(), value()
    await rotate(backend.store, "orders", first)

    await rotate(backend.store, "orders", second)

    assert (await backend.store.get("orders")).get_secret_value() == second.get_secret_value()
    assert (await backend.store.get("orders", "previous")).get_secret_value() == first.get_secret_value()
    with pytest.raises(SecretNotFound):
        await backend.store.get("orders", "pending")


async def test_a_third_version_destroys_the_oldest_previous(backend):
    first, second, third = value(), value(), value()
    for secret in (first, second, third):
        await rotate(backend.store, "orders", secret)

    listing = await backend.store.versions("orders")

    assert [(v.label, v.fingerprint) for v in listing] == [
        ("previous", FINGERPRINTS.fingerprint(second)),
        ("current", FINGERPRINTS.fingerprint(third)),
    ]


async def test_promoting_the_current_version_again_changes_nothing(backend):
    version = await rotate(backend.store, "orders", value())

    await backend.store.promote("orders", version)

    assert [(v.version, v.label) for v in await backend.store.versions("orders")] == [(version, "current")]


async def test_only_the_pending_version_can_be_promoted(backend):
    old = await rotate(backend.store, "orders", value())
    await rotate(backend.store, "orders", value())

    with pytest.raises(SecretStoreError, match="only the pending version can be promoted"):
        await backend.store.promote("orders", old)
    with pytest.raises(SecretNotFound):
        await backend.store.promote("orders", 99)


async def test_a_new_pending_version_replaces_an_unpromoted_one(backend):
    abandoned, retried = value(), value()
    first = await backend.store.put_pending("orders", abandoned)

    second = await backend.store.put_pending("orders", retried)

    assert second > first
    assert (await backend.store.get("orders", "pending")).get_secret_value() == retried.get_secret_value()
    assert [v.version for v in await backend.store.versions("orders")] == [second]
    with pytest.raises(SecretNotFound):
        await backend.store.promote("orders", first)


async def test_revoking_the_previous_version_destroys_it(backend):
    await rotate(backend.store, "orders", value())
    current = value()
    await rotate(backend.store, "orders", current)

    assert await backend.store.revoke_previous("orders") is True
    assert await backend.store.revoke_previous("orders") is False

    with pytest.raises(SecretNotFound):
        await backend.store.get("orders", "previous")
    assert (await backend.store.get("orders")).get_secret_value() == current.get_secret_value()


async def test_discarding_the_pending_version_keeps_the_current_one(backend):
    current = value()
    await rotate(backend.store, "orders", current)
    await backend.store.put_pending("orders", value())

    assert await backend.store.discard_pending("orders") is True

    assert [v.label for v in await backend.store.versions("orders")] == ["current"]
    assert (await backend.store.get("orders")).get_secret_value() == current.get_secret_value()


async def test_version_numbers_are_never_reused(backend):
    first = await backend.store.put_pending("orders", value())
    await backend.store.discard_pending("orders")

    second = await backend.store.put_pending("orders", value())

    assert second == first + 1


async def test_secrets_are_kept_apart_by_name(backend):
    orders, invoices = value(), value()
    await rotate(backend.store, "orders", orders)
    await rotate(backend.store, "invoices", invoices)

    assert (await backend.store.get("orders")).get_secret_value() == orders.get_secret_value()
    assert (await backend.store.get("invoices")).get_secret_value() == invoices.get_secret_value()
    assert await backend.store.versions("unknown") == []


async def test_errors_and_listings_never_contain_the_value(backend):
    secret = value()
    version = await rotate(backend.store, "orders", secret)
    await rotate(backend.store, "orders", value())

    problems = []
    for attempt in (
        backend.store.promote("orders", version),
        backend.store.get("orders", "pending"),
        backend.store.promote("orders", 42),
    ):
        with pytest.raises(SecretStoreError) as caught:
            await attempt
        problems.append(str(caught.value))

    listing = repr(await backend.store.versions("orders"))
    assert secret.get_secret_value() not in " ".join(problems) + listing + repr(backend.store)


async def test_secret_names_are_checked_before_use(backend):
    with pytest.raises(SecretStoreError, match="secret names are lower-case letters"):
        await backend.store.put_pending("../etc/passwd", value())


# --- what the local store promises about its rows ------------------------------------------------------


async def all_rows(backend: Backend) -> list[SecretVersion]:
    assert backend.sessions is not None
    async with backend.sessions() as session:
        return list((await session.scalars(select(SecretVersion).order_by(SecretVersion.id))).all())


async def test_rows_hold_ciphertext_only_and_retired_rows_hold_nothing(local_only):
    secrets_written = [value(), value(), value()]
    for secret in secrets_written:
        await rotate(local_only.store, "orders", secret)

    rows = await all_rows(local_only)

    assert [(r.version, r.label, r.ciphertext is None) for r in rows] == [
        (1, "retired", True), (2, "previous", False), (3, "current", False),
    ]  # fmt: skip
    dump = " ".join(f"{r.name} {r.version} {r.label} {r.ciphertext} {r.created_at}" for r in rows)
    for secret in secrets_written:
        assert secret.get_secret_value() not in dump
    assert rows[2].created_at == NOW


async def test_another_key_cannot_read_the_values(local_only):
    await rotate(local_only.store, "orders", value())
    assert local_only.sessions is not None
    stranger = LocalSecretStore(local_only.sessions, keys=Fernet.generate_key(), fingerprints=FINGERPRINTS)

    with pytest.raises(SecretStoreError, match="cannot be decrypted with the configured OPSGATE_SECRET_KEY"):
        await stranger.get("orders")


async def test_a_ciphertext_copied_into_another_row_is_refused(local_only):
    await rotate(local_only.store, "orders", value())
    await rotate(local_only.store, "invoices", value())
    assert local_only.sessions is not None
    async with local_only.sessions() as session, session.begin():
        stolen = await session.scalar(select(SecretVersion.ciphertext).where(SecretVersion.name == "orders"))
        await session.execute(
            update(SecretVersion).where(SecretVersion.name == "invoices").values(ciphertext=stolen)
        )

    with pytest.raises(SecretStoreError, match="belongs to another row"):
        await local_only.store.get("invoices")


async def test_the_encryption_key_can_be_rotated_by_putting_a_new_key_first(local_only):
    secret = value()
    await rotate(local_only.store, "orders", secret)
    assert local_only.sessions is not None and local_only.key is not None
    rotated = LocalSecretStore(
        local_only.sessions, keys=[Fernet.generate_key(), local_only.key], fingerprints=FINGERPRINTS
    )

    assert (await rotated.get("orders")).get_secret_value() == secret.get_secret_value()


async def test_the_database_allows_one_live_version_per_label(local_only):
    await local_only.store.put_pending("orders", value())
    assert local_only.sessions is not None

    with pytest.raises(IntegrityError):
        async with local_only.sessions() as session, session.begin():
            session.add(
                SecretVersion(name="orders", version=9, label="pending", ciphertext="x", created_at=NOW)
            )
    with pytest.raises(IntegrityError):
        async with local_only.sessions() as session, session.begin():
            session.add(
                SecretVersion(name="orders", version=8, label="retired", ciphertext="x", created_at=NOW)
            )


def test_the_store_addresses_the_same_columns_as_the_table_model():
    assert [c.name for c in store_table.columns] == [c.name for c in SecretVersion.__table__.columns]


def test_a_key_that_is_not_a_fernet_key_is_refused_without_echoing_it():
    with pytest.raises(ValueError, match="must be a Fernet key") as caught:
        LocalSecretStore(None, keys=b"not-a-key-but-secret", fingerprints=FINGERPRINTS)  # type: ignore[arg-type]

    assert "not-a-key-but-secret" not in str(caught.value)
