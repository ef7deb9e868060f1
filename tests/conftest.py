"""Shared fixtures: every database test runs on SQLite and again on PostgreSQL when reachable.

PostgreSQL tests use a schema of their own per test session (in the database named by
OPSGATE_TEST_PG_URL, default postgresql+asyncpg://postgres@127.0.0.1:5432/test), so parallel
runs never collide; tables are emptied between tests.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import secrets
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.db.engine import create_engine, create_session_factory
from bot.db.migrate import upgrade_async
from bot.domain.audit import Fingerprinter

PG_URL = os.environ.get("OPSGATE_TEST_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
DATA_TABLES = (
    "approvals",
    "target_locks",
    "jobs",
    "outbox",
    "audit_events",
    "change_requests",
    "alerts",
    "alert_channels",
    "alert_digests",
    "alert_silences",
    "alert_health_checks",
    "webhook_deliveries",
    "asset_request_assets",
    "asset_requests",
    "media_history_imports",
)


@dataclass
class Database:
    backend: str
    url: str
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    connect_args: dict[str, Any]


def pg_connect_args(schema: str) -> dict[str, Any]:
    return {"server_settings": {"search_path": schema}}


async def _pg_reachable() -> str | None:
    import asyncpg

    dsn = PG_URL.replace("postgresql+asyncpg://", "postgresql://")
    try:
        conn = await asyncio.wait_for(asyncpg.connect(dsn), timeout=3)
    except Exception as exc:  # any failure means "not reachable here"
        return f"{type(exc).__name__}: {exc}"
    await conn.close()
    return None


def run_in_fresh_loop(coro_fn: Any) -> Any:
    """Session fixtures may be first requested from inside a running test loop: use a thread."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(lambda: asyncio.run(coro_fn())).result()


@pytest.fixture(scope="session")
def pg_schema() -> Iterator[str]:
    """A fresh schema migrated to head, dropped at the end of the session."""
    problem = run_in_fresh_loop(_pg_reachable)
    if problem:
        pytest.skip(f"PostgreSQL not reachable at {PG_URL} ({problem}); start it to run the PostgreSQL half")
    schema = f"opsgate_test_{os.getpid()}_{secrets.token_hex(3)}"

    async def setup() -> None:
        engine = create_engine(PG_URL)
        async with engine.begin() as conn:
            await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        await engine.dispose()
        engine = create_engine(PG_URL, connect_args=pg_connect_args(schema))
        await upgrade_async(engine)
        await engine.dispose()

    async def teardown() -> None:
        engine = create_engine(PG_URL)
        async with engine.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        await engine.dispose()

    run_in_fresh_loop(setup)
    yield schema
    run_in_fresh_loop(teardown)


@pytest.fixture(params=["sqlite", "postgresql"])
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'opsgate.db'}"
        engine = create_engine(url)
        await upgrade_async(engine)
        yield Database("sqlite", url, engine, create_session_factory(engine), {})
        await engine.dispose()
        return
    schema = request.getfixturevalue("pg_schema")
    args = pg_connect_args(schema)
    engine = create_engine(PG_URL, connect_args=args)
    async with engine.begin() as conn:
        await conn.execute(text(f"TRUNCATE {', '.join(DATA_TABLES)} RESTART IDENTITY CASCADE"))
        await conn.execute(text("UPDATE sequences SET value = 0"))
        await conn.execute(text("UPDATE audit_head SET seq = 0, hash = :h"), {"h": "0" * 64})
    yield Database("postgresql", PG_URL, engine, create_session_factory(engine), args)
    await engine.dispose()


@pytest.fixture
def fingerprinter() -> Fingerprinter:
    return Fingerprinter(b"test-fingerprint-key-0123456789")
