"""Scheduler leadership: one leader on PostgreSQL, and a standby takes over within 10 s of its death."""

from __future__ import annotations

import asyncio
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

from bot.db.engine import create_engine
from bot.jobs.leader import SchedulerLeadership

from ..conftest import PG_URL


def leadership(engine, events: list[str], key: int) -> SchedulerLeadership:
    return SchedulerLeadership(
        engine, on_elected=lambda: events.append("elected"), on_lost=lambda: events.append("lost"),
        poll_seconds=0.1, key=key,
    )  # fmt: skip


async def wait_for(condition, timeout: float) -> float:
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < timeout, "condition not met in time"
        await asyncio.sleep(0.05)
    return time.monotonic() - started


async def test_sqlite_process_is_always_the_leader(tmp_path):
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'l.db'}")
    events: list[str] = []
    stop = asyncio.Event()
    task = asyncio.create_task(leadership(engine, events, 1).run(stop))
    await wait_for(lambda: events == ["elected"], 2)
    stop.set()
    await task
    assert events == ["elected", "lost"]
    await engine.dispose()


async def test_only_one_postgresql_process_leads_and_a_standby_takes_over(pg_schema):
    key = secrets.randbelow(2**31)
    first_engine, second_engine = create_engine(PG_URL), create_engine(PG_URL)
    first_events: list[str] = []
    second_events: list[str] = []
    first_stop, second_stop = asyncio.Event(), asyncio.Event()
    first = asyncio.create_task(leadership(first_engine, first_events, key).run(first_stop))
    await wait_for(lambda: first_events == ["elected"], 5)
    second = asyncio.create_task(leadership(second_engine, second_events, key).run(second_stop))
    await asyncio.sleep(0.5)
    assert second_events == [], "two leaders at once"
    first_stop.set()
    await first
    await wait_for(lambda: second_events == ["elected"], 5)
    second_stop.set()
    await second
    await first_engine.dispose()
    await second_engine.dispose()


async def test_standby_takes_over_within_10_seconds_of_a_kill_9(pg_schema):
    key = secrets.randbelow(2**31)
    script = Path(__file__).with_name("leader_process.py")
    proc = subprocess.Popen(
        [sys.executable, str(script), PG_URL, str(key)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "leader"
        engine = create_engine(PG_URL)
        events: list[str] = []
        stop = asyncio.Event()
        standby = asyncio.create_task(leadership(engine, events, key).run(stop))
        await asyncio.sleep(0.5)
        assert events == []
        proc.send_signal(signal.SIGKILL)
        took = await wait_for(lambda: events == ["elected"], 10)
        assert took < 10
        stop.set()
        await standby
        await engine.dispose()
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        if proc.stdout:
            proc.stdout.close()
