"""Persisted jobs: group-committed intake, retries, permanent failures, and reclaiming a crash."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy import event, select

from bot.db.models import Job
from bot.jobs.queue import JobContext, JobIntake, JobQueue, JobRunner, PermanentJobError


async def all_jobs(database):
    async with database.sessions() as session:
        return (await session.scalars(select(Job).order_by(Job.id))).all()


async def test_concurrent_acks_share_one_transaction_and_duplicates_are_dropped(database, clock):
    commits = []
    event.listen(database.engine.sync_engine, "commit", lambda conn: commits.append(1))
    intake = JobIntake(database.engine, clock)
    queued = await asyncio.gather(
        *(intake.submit("k", {"n": i}, dedup_key=f"key-{i % 15}") for i in range(20))
    )
    # Submissions 15..19 repeat keys 0..4 (retried deliveries) within the same batch.
    assert queued == [True] * 15 + [False] * 5
    assert len(commits) < 5, f"{len(commits)} commits for 20 submissions"
    jobs = await all_jobs(database)
    assert sorted(job.payload["n"] for job in jobs) == list(range(15))
    assert {job.status for job in jobs} == {"queued"} and all(job.run_at is not None for job in jobs)
    # A retry arriving later, in a batch of its own, is refused by the database's unique key.
    assert await intake.submit("k", {"n": 99}, dedup_key="key-3") is False
    assert await intake.submit("k", {"n": 100}) is True  # no key: never a duplicate
    await intake.close()
    assert len(await all_jobs(database)) == 16


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


async def test_intake_survives_its_held_connection_being_cut(database, clock):
    """A database restart or an idle-connection reaper cuts the intake's connection: the next
    ack's write is retried once on a fresh connection, and nothing is lost or doubled."""
    intake = JobIntake(database.engine, clock)
    assert await intake.submit("k", {"n": 1}, dedup_key="before") is True
    held = intake._connection
    assert held is not None
    if database.engine.dialect.name == "postgresql":
        raw = (await held.get_raw_connection()).driver_connection
        async with database.engine.connect() as other:
            await other.exec_driver_sql(f"SELECT pg_terminate_backend({raw.get_server_pid()})")
    else:
        await (await held.get_raw_connection()).driver_connection.close()
    assert await intake.submit("k", {"n": 2}, dedup_key="after") is True
    assert await intake.submit("k", {"n": 3}, dedup_key="after") is False
    await intake.close()
    assert sorted(job.dedup_key for job in await all_jobs(database)) == ["after", "before"]


def test_freezing_the_startup_heap_takes_live_objects_out_of_collections():
    import gc

    from bot.wiring.runtime import freeze_startup_heap

    gc.unfreeze()
    assert gc.get_freeze_count() == 0
    try:
        freeze_startup_heap()
        assert gc.get_freeze_count() > 10_000  # this test process's modules, at least
    finally:
        gc.unfreeze()
