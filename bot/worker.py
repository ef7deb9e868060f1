"""Background duties on a schedule: expiry sweeps now; outbox, jobs and alerts as they land."""

from __future__ import annotations

import asyncio
import logging

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot.deps import Deps
from bot.metrics import Metrics

__all__ = ["Worker"]

log = logging.getLogger("opsgate.worker")


class Worker:
    """Owns the scheduler; every duty logs and survives its own failures."""

    def __init__(self, deps: Deps, metrics: Metrics, *, sweep_seconds: float = 30.0) -> None:
        self._deps = deps
        self._metrics = metrics
        self._scheduler = AsyncIOScheduler(timezone="UTC")
        self._scheduler.add_job(self.expire_due, "interval", seconds=sweep_seconds, id="expire_due",
                                max_instances=1, coalesce=True)  # fmt: skip

    async def expire_due(self) -> int:
        try:
            expired = await self._deps.approvals.expire_due()
        except Exception:
            log.exception("expiry sweep failed; it will run again")
            return 0
        for request in expired:
            log.info("request expired", extra={"request": request.human_id})
        self._metrics.requests_expired.inc(len(expired))
        return len(expired)

    def start(self) -> None:
        self._scheduler.start()

    async def stop(self) -> None:
        self._scheduler.shutdown(wait=False)
        await asyncio.sleep(0)
