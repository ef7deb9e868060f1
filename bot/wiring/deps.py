"""One object holding what listeners, jobs and commands share: built once per process."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.config.opsgate import OpsgateConfig, Settings, fingerprint_key, resolve_secret_key
from bot.db.engine import create_engine, create_session_factory, is_sqlite
from bot.db.migrate import upgrade_async
from bot.domain.approvals import ApprovalEngine
from bot.domain.audit import Fingerprinter
from bot.domain.policy import Directory
from bot.domain.requests import Clock, system_clock

__all__ = ["Deps"]


@dataclass
class Deps:
    settings: Settings
    config: OpsgateConfig
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    approvals: ApprovalEngine
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
        sessions = create_session_factory(engine)
        directory = directory or config.static_directory()
        approvals = ApprovalEngine(sessions, config.policy_set(), directory, fingerprinter, clock=clock)
        return cls(settings, config, engine, sessions, approvals, fingerprinter, directory, clock, secret_key)

    async def database_ok(self) -> bool:
        try:
            async with self.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        except Exception:  # health checks report, they do not raise
            return False
        return True

    async def close(self) -> None:
        await self.engine.dispose()
