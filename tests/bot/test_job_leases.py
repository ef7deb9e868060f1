"""Job leases: renewed while a handler runs, flagged when taken over, released on shutdown."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import select

from bot.db.models import Job
from bot.jobs.queue import LEASE, JobContext, JobQueue, JobRunner, job_lease

LONG_LEASE = timedelta(seconds=30)


async def the_job(database) -> Job:
    async with database.sessions() as session:
        return (await session.scalars(select(Job))).one()


async def enqueue(database, clock, kind: str) -> None:
    async with database.sessions() as session, session.begin():
        await JobQueue(clock).enqueue(session, kind=kind, payload={})


async def eventually(check, what: str) -> None:
    """Poll an async check while the runner's own tasks write to the database."""
    for _ in range(500):
        if await check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never happened: {what}")


async def test_a_running_job_keeps_its_claim_past_the_first_lease_while_its_worker_lives(database, clock):
    ticks: asyncio.Queue[None] = asyncio.Queue()

    async def heartbeat_pace(seconds: float) -> None:
        assert seconds == LONG_LEASE.total_seconds() / 3
        await ticks.get()  # one renewal per tick the test gives

    finish = asyncio.Event()

    async def slow(ctx: JobContext) -> None:
        await finish.wait()

    await enqueue(database, clock, "slow")
    worker = JobRunner(
        database.sessions, {"slow": slow}, clock, worker_id="a", lease=LONG_LEASE, sleep=heartbeat_pace
    )
    assert await worker.run_due() == 1
    clock.advance(timedelta(seconds=25))
    ticks.put_nowait(None)

    async def renewed() -> bool:
        return (await the_job(database)).lease_until == clock() + LONG_LEASE

    await eventually(renewed, "the lease is renewed")
    clock.advance(timedelta(seconds=25))  # 50 s after the claim: the first lease is long over
    other = JobRunner(database.sessions, {"slow": slow}, clock, worker_id="b", lease=LONG_LEASE)
    assert await other.run_due() == 0, "a live worker's job is not taken over"
    finish.set()
    await asyncio.gather(*list(worker._running))
    job = await the_job(database)
    assert job.status == "done" and job.attempts == 1 and job.locked_by == "a"


async def test_a_job_taken_over_from_a_stopped_worker_is_flagged_reclaimed(database, clock):
    seen: list[tuple[int, bool, str | None]] = []

    async def stepwise(ctx: JobContext) -> None:
        seen.append((ctx.attempt, ctx.reclaimed, ctx.step))
        if ctx.attempt == 1:
            await ctx.record_step("poll")
            raise asyncio.CancelledError  # the process dies here

    await enqueue(database, clock, "stepwise")
    crashed = JobRunner(database.sessions, {"stepwise": stepwise}, clock, worker_id="a", lease=LONG_LEASE)
    await crashed.run_due()
    await asyncio.gather(*list(crashed._running), return_exceptions=True)
    clock.advance(LONG_LEASE + timedelta(seconds=1))
    successor = JobRunner(database.sessions, {"stepwise": stepwise}, clock, worker_id="b", lease=LONG_LEASE)
    await successor.drain()
    assert seen == [(1, False, None), (2, True, "poll")]


async def test_a_retried_job_is_not_flagged_reclaimed(database, clock):
    seen: list[bool] = []

    async def flaky(ctx: JobContext) -> None:
        seen.append(ctx.reclaimed)
        if ctx.attempt == 1:
            raise ConnectionError("vendor down")

    await enqueue(database, clock, "flaky")
    runner = JobRunner(database.sessions, {"flaky": flaky}, clock, jitter=lambda: 1.0, lease=LONG_LEASE)
    await runner.drain()
    clock.advance(timedelta(minutes=5))
    await runner.drain()
    assert seen == [False, False]


async def test_shutdown_releases_unfinished_jobs_at_their_step_for_the_next_process(database, clock):
    async def stuck(ctx: JobContext) -> None:
        if ctx.attempt == 1:
            await ctx.record_step("poll")
            await asyncio.Event().wait()  # still running when the process is told to stop

    await enqueue(database, clock, "stuck")
    stopping = JobRunner(database.sessions, {"stuck": stuck}, clock, worker_id="a", lease=LONG_LEASE)
    await stopping.run_due()

    async def at_poll() -> bool:
        return (await the_job(database)).step == "poll"

    await eventually(at_poll, "the step is recorded")
    await stopping.shutdown(timeout=0.01)
    job = await the_job(database)
    assert (job.status, job.step, job.lease_until) == ("queued", "poll", None)
    seen: list[tuple[str | None, bool]] = []

    async def resume(ctx: JobContext) -> None:
        seen.append((ctx.step, ctx.reclaimed))

    successor = JobRunner(database.sessions, {"stuck": resume}, clock, worker_id="b", lease=LONG_LEASE)
    await successor.drain()  # no clock advance: claimable at once
    assert seen == [("poll", False)]
    assert (await the_job(database)).status == "done"


def test_lease_comes_from_the_environment_or_defaults_to_120_seconds():
    assert job_lease({}) == LEASE == timedelta(seconds=120)
    assert job_lease({"OPSGATE_JOB_LEASE_SECONDS": "2.5"}) == timedelta(seconds=2.5)


@pytest.mark.parametrize("value", ["soon", "0", "-3"])
def test_a_lease_that_is_not_a_positive_number_is_refused_naming_the_variable(value):
    with pytest.raises(ValueError, match="OPSGATE_JOB_LEASE_SECONDS"):
        job_lease({"OPSGATE_JOB_LEASE_SECONDS": value})
