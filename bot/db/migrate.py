"""Run Alembic programmatically, so `opsgate db upgrade` and start-up share one path."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

__all__ = [
    "alembic_config",
    "current_revision",
    "downgrade",
    "downgrade_async",
    "head_revision",
    "upgrade",
    "upgrade_async",
]

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["database_url"] = database_url
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    """Blocking: call from a thread when an event loop is running (env.py runs its own loop)."""
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str) -> None:
    command.downgrade(alembic_config(database_url), revision)


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config("")).get_current_head()
    assert head is not None
    return head


async def current_revision(engine: AsyncEngine) -> str | None:
    async with engine.connect() as conn:
        return await conn.run_sync(lambda sync: MigrationContext.configure(sync).get_current_revision())


def _on_connection(connection: Connection, action: str, revision: str) -> None:
    config = alembic_config(str(connection.engine.url))
    config.attributes["connection"] = connection
    getattr(command, action)(config, revision)


async def upgrade_async(engine: AsyncEngine, revision: str = "head") -> None:
    """Upgrade through an engine the caller already configured (used at start-up and in tests)."""
    async with engine.begin() as conn:
        await conn.run_sync(_on_connection, "upgrade", revision)


async def downgrade_async(engine: AsyncEngine, revision: str) -> None:
    async with engine.begin() as conn:
        await conn.run_sync(_on_connection, "downgrade", revision)
