"""Run by test_leader: hold scheduler leadership until killed."""

from __future__ import annotations

import asyncio
import sys

from bot.db.engine import create_engine
from bot.jobs.leader import SchedulerLeadership


async def main(url: str, key: int) -> None:
    engine = create_engine(url)
    leadership = SchedulerLeadership(
        engine,
        on_elected=lambda: print("leader", flush=True),
        on_lost=lambda: None,
        poll_seconds=0.2,
        key=key,
    )
    await leadership.run(asyncio.Event())


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
