"""Persisted jobs: group-committed intake, retries, permanent failures, and reclaiming a crash."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy import event, select

from bot.db.models import Job
from bot.jobs import JobContext, JobIntake, JobQueue, JobRunner, PermanentJobError


async def all_jobs(database):
    async with database.sessions() as session:
        return (await session.scalars(select(Job).order_by(Job.id))).all()


async def test_concurrent_acks_share_one_transaction_and_duplicates_are_dropped(database, clock):
    commits = []
    event.listen(database.engine.sync_engine, "commit", lambda conn: commits.append(1))
    intake = JobIntake(database.sessions, JobQueue(clock))
    ids = await asyncio.gather(*(intake.submit("k", {"n": i}, dedup_key=f"key-{i % 15}") for i in range(20)))
    assert len([i for i in ids if i is not None]) == 15  # five were retries of earlier keys
    assert len(commits) < 5, f"{len(commits)} commits for 20 submissions"
    assert len(await all_jobs(database)) == 15


async def test_failing_job_is_retried_with_backoff_then_succeeds(database, clock):
    attempts = []

    async def flaky(ctx: JobContext) -> None:
        attempts.append(ctx.attempt)
        if ctx.attempt < 3:
            raise ConnectionError("vendor down")

    async with database.sessions() as session, session.begin():
        await JobQueue(clock).enqueue(session, kind="flaky", payload={})
    runner = JobRunner(database.sessions, {"flaky": flaky}, clock, jitter=lambda: 1.0)
    for _ in range(3):
        await runner.drain()
        clock.advance(timedelta(minutes=5))
    [job] = await all_jobs(database)
    assert attempts == [1, 2, 3] and job.status == "done"


async def test_permanent_error_fails_at_once_with_the_reason(database, clock):
    async def refuse(ctx: JobContext) -> None:
        raise PermanentJobError("request expired")

    async with database.sessions() as session, session.begin():
        await JobQueue(clock).enqueue(session, kind="refuse", payload={})
    await JobRunner(database.sessions, {"refuse": refuse}, clock).drain()
    [job] = await all_jobs(database)
    assert job.status == "failed" and job.last_error == "request expired" and job.attempts == 1


async def test_crashed_claim_is_reclaimed_after_its_lease_and_resumes_at_its_step(database, clock):
    seen = []

    async def stepwise(ctx: JobContext) -> None:
        seen.append((ctx.step, ctx.payload.get("vendor_job")))
        if ctx.step is None:
            await ctx.record_step("polling", vendor_job="J-7")
            raise asyncio.CancelledError  # the process dies here

    async with database.sessions() as session, session.begin():
        await JobQueue(clock).enqueue(session, kind="stepwise", payload={})
    crashed = JobRunner(database.sessions, {"stepwise": stepwise}, clock, worker_id="a")
    await crashed.run_due()
    await asyncio.gather(*list(crashed._running), return_exceptions=True)
    successor = JobRunner(database.sessions, {"stepwise": stepwise}, clock, worker_id="b")
    assert await successor.run_due() == 0  # the lease still holds
    clock.advance(timedelta(minutes=3))
    await successor.drain()
    [job] = await all_jobs(database)
    assert seen == [(None, None), ("polling", "J-7")]
    assert job.status == "done" and job.locked_by == "b"
