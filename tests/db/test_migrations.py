"""Migrations run from empty to head, back to empty, and up again, on both backends."""

from __future__ import annotations

import secrets

from sqlalchemy import inspect, text

from bot.db.engine import create_engine
from bot.db.migrate import current_revision, downgrade_async, head_revision, upgrade_async
from bot.db.models import Base

from ..conftest import PG_URL, pg_connect_args


async def table_names(engine) -> set[str]:
    async with engine.connect() as conn:
        return set(await conn.run_sync(lambda sync: inspect(sync).get_table_names())) - {"alembic_version"}


async def roundtrip(engine) -> None:
    assert await table_names(engine) == set()
    await upgrade_async(engine)
    assert await current_revision(engine) == head_revision()
    assert await table_names(engine) == set(Base.metadata.tables)
    async with engine.connect() as conn:
        assert (await conn.execute(text("SELECT seq, hash FROM audit_head"))).one() == (0, "0" * 64)
        assert (await conn.execute(text("SELECT count(*) FROM sequences"))).scalar() == 5
    await downgrade_async(engine, "base")
    assert await table_names(engine) == set()
    await upgrade_async(engine)
    assert await table_names(engine) == set(Base.metadata.tables)


async def test_sqlite_upgrade_downgrade_upgrade(tmp_path):
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'm.db'}")
    try:
        await roundtrip(engine)
    finally:
        await engine.dispose()


async def test_postgresql_upgrade_downgrade_upgrade(pg_schema):
    schema = f"{pg_schema}_mig_{secrets.token_hex(2)}"
    admin = create_engine(PG_URL)
    async with admin.begin() as conn:
        await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine = create_engine(PG_URL, connect_args=pg_connect_args(schema))
    try:
        await roundtrip(engine)
    finally:
        await engine.dispose()
        async with admin.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        await admin.dispose()


def test_models_and_migrations_agree(tmp_path):
    """Autogenerate against a migrated database finds nothing to add: no forgotten migration."""
    import asyncio

    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    async def go() -> list:
        engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'a.db'}")
        await upgrade_async(engine)
        async with engine.connect() as conn:
            diff = await conn.run_sync(
                lambda sync: compare_metadata(MigrationContext.configure(sync), Base.metadata)
            )
        await engine.dispose()
        return diff

    assert asyncio.run(go()) == []
