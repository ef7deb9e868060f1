"""Job rows: work that must survive a restart, added in the caller's transaction."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import Job
from bot.db.upsert import insert_into

__all__ = ["JobRows"]


class JobRows:
    """Adds jobs inside one transaction; never commits."""

    def __init__(self, session: AsyncSession, clock: Callable[[], datetime]) -> None:
        self._session = session
        self._clock = clock

    async def enqueue(
        self,
        *,
        kind: str,
        payload: Mapping[str, Any],
        dedup_key: str | None = None,
        run_at: datetime | None = None,
        request_id: int | None = None,
    ) -> int | None:
        """Add a job; None if `dedup_key` exists already."""
        now = self._clock()
        values = {
            "kind": kind,
            "payload": dict(payload),
            "status": "queued",
            "run_at": run_at or now,
            "attempts": 0,
            "dedup_key": dedup_key,
            "request_id": request_id,
            "created_at": now,
            "updated_at": now,
        }
        statement = insert_into(self._session, Job).values(**values)
        if dedup_key is not None:
            statement = statement.on_conflict_do_nothing(index_elements=["dedup_key"])
        return await self._session.scalar(statement.returning(Job.id))

    async def requeue(self, dedup_key: str) -> bool:
        """Run the job under `dedup_key` again now, keeping its recorded step and state; False if none."""
        result = await self._session.execute(
            update(Job)
            .where(Job.dedup_key == dedup_key)
            .values(status="queued", run_at=self._clock(), last_error=None)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]
