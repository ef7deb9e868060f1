"""One object holding what listeners, jobs and commands share: built once per process."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.config.opsgate import OpsgateConfig, Settings, fingerprint_key, resolve_secret_key
from bot.db.engine import create_engine, is_sqlite
from bot.db.migrate import upgrade_async
from bot.db.transaction import Database
from bot.domain.audit import Fingerprinter
from bot.domain.policy import Directory
from bot.domain.requests import ChangeRequest, Clock, system_clock
from commands.approvals import Approvals
from commands.ports import TransitionObserver

__all__ = ["Deps", "RequestHistoryReader"]


@dataclass
class Deps:
    settings: Settings
    config: OpsgateConfig
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    database: Database
    approvals: Approvals
    fingerprinter: Fingerprinter
    directory: Directory
    clock: Clock
    secret_key: bytes

    @classmethod
    async def open(
        cls,
        settings: Settings,
        config: OpsgateConfig,
        *,
        clock: Clock = system_clock,
        directory: Directory | None = None,
        observer: TransitionObserver | None = None,
        engine_kwargs: dict[str, Any] | None = None,
        migrate: bool | None = None,
    ) -> Deps:
        """Connect, and on SQLite (single-process default) bring the schema to head first."""
        kwargs = dict(engine_kwargs or {})
        if not is_sqlite(settings.database_url):
            kwargs.setdefault("pool_size", settings.database_pool_size)
            kwargs.setdefault("max_overflow", settings.database_max_overflow)
        engine = create_engine(settings.database_url, **kwargs)
        if migrate if migrate is not None else is_sqlite(settings.database_url):
            await upgrade_async(engine)
        secret_key = resolve_secret_key(settings)
        fingerprinter = Fingerprinter(fingerprint_key(secret_key))
        database = Database(engine, clock=clock, fingerprinter=fingerprinter)
        directory = directory or config.static_directory()
        approvals = Approvals(config.policy_set(), directory, clock=clock, observer=observer)
        return cls(settings, config, engine, database.sessions, database, approvals, fingerprinter, directory,
                   clock, secret_key)  # fmt: skip

    async def database_ok(self) -> bool:
        try:
            async with self.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        except Exception:  # health checks report, they do not raise
            return False
        return True

    async def close(self) -> None:
        await self.engine.dispose()


class RequestHistoryReader:
    """Change requests newest first, for use cases that do not take a transaction: one read each."""

    def __init__(self, database: Database, approvals: Approvals) -> None:
        self._database = database
        self._approvals = approvals

    async def list_requests(self, *, limit: int = 20, offset: int = 0) -> list[ChangeRequest]:
        async with self._database.reading() as tx:
            return await self._approvals.list_requests(tx, limit=limit, offset=offset)
