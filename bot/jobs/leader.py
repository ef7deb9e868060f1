"""One scheduler across many workers: the holder of a PostgreSQL advisory lock runs it.

The lock is held by a dedicated connection; when that process dies, PostgreSQL drops the
connection and the lock with it, and a standby polling every few seconds takes over (well
within 10 s). SQLite is single-process, so there the caller is always the leader.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

__all__ = ["SCHEDULER_LOCK_KEY", "SchedulerLeadership"]

log = logging.getLogger("opsgate.leader")

SCHEDULER_LOCK_KEY = 0x6F70_7367  # "opsg": any constant shared by every opsgate process


class SchedulerLeadership:
    def __init__(
        self,
        engine: AsyncEngine,
        *,
        on_elected: Callable[[], None],
        on_lost: Callable[[], None],
        poll_seconds: float = 3.0,
        key: int = SCHEDULER_LOCK_KEY,
    ) -> None:
        self._engine = engine
        self._on_elected = on_elected
        self._on_lost = on_lost
        self._poll = poll_seconds
        self._key = key
        self._conn: AsyncConnection | None = None
        self.is_leader = False

    async def run(self, stop: asyncio.Event) -> None:
        if self._engine.dialect.name != "postgresql":
            self._elect()
            try:
                await stop.wait()
            finally:
                self.is_leader = False
                self._on_lost()
            return
        try:
            while not stop.is_set():
                try:
                    if self.is_leader:
                        await self._still_holding()
                    else:
                        await self._try_acquire()
                except Exception as exc:  # a lost connection means a lost lock
                    if self.is_leader:
                        log.warning("scheduler leadership lost", extra={"error": str(exc)})
                        self.is_leader = False
                        self._on_lost()
                    await self._drop_connection()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=self._poll)
        finally:
            await self._release()

    def _elect(self) -> None:
        self.is_leader = True
        log.info("this process runs the scheduler")
        self._on_elected()

    async def _try_acquire(self) -> None:
        if self._conn is None:
            self._conn = await self._engine.connect()
        acquired = (
            await self._conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": self._key})
        ).scalar()
        await self._conn.commit()
        if acquired:
            self._elect()

    async def _still_holding(self) -> None:
        assert self._conn is not None
        await self._conn.execute(text("SELECT 1"))
        await self._conn.commit()

    async def _drop_connection(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._conn.invalidate()
            self._conn = None

    async def _release(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": self._key})
                await self._conn.commit()
            with contextlib.suppress(Exception):
                await self._conn.close()
            self._conn = None
        if self.is_leader:
            self.is_leader = False
            self._on_lost()
