"""Persisted jobs: work that must survive a restart, claimed with a lease so a crash frees it.

A handler receives the job's payload and a `JobContext` through which it records its step; after
a crash the next claimant sees the recorded step and continues from there. `TaskSupervisor` is
for the few things that must happen within Slack's 3-second trigger window and are not worth
persisting (opening a modal): it keeps references to its tasks and logs their failures.

Leases: a claim holds a job for the lease (120 s, or OPSGATE_JOB_LEASE_SECONDS); the runner renews
it every third of the lease while the handler runs, so only a stopped process loses its jobs. A
job whose lease ran out while `running` is claimed again with `JobContext.reclaimed` set.
On shutdown, jobs that did not finish in time are released (queued again) for the next process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, select, update
from sqlalchemy.dialects import sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from bot.config.limits import MAX_JOB_ATTEMPTS
from bot.db.engine import json_dumps
from bot.db.jobs import JobRows
from bot.db.models import Job

__all__ = [
    "JobContext",
    "JobHandler",
    "JobIntake",
    "JobQueue",
    "JobRunner",
    "PermanentJobError",
    "TaskSupervisor",
    "job_lease",
]

log = logging.getLogger("opsgate.jobs")

LEASE = timedelta(seconds=120)
LEASE_ENV = "OPSGATE_JOB_LEASE_SECONDS"


def job_lease(env: Mapping[str, str] | None = None) -> timedelta:
    """The claim lease: OPSGATE_JOB_LEASE_SECONDS if set (a positive number), else 120 s.

    A shorter lease lets a crashed process's jobs resume sooner; renewal keeps live jobs held.
    """
    raw = (os.environ if env is None else env).get(LEASE_ENV)
    if not raw:
        return LEASE
    try:
        seconds = float(raw)
    except ValueError:
        raise ValueError(f"{LEASE_ENV} must be a number of seconds, not {raw!r}") from None
    if seconds <= 0:
        raise ValueError(f"{LEASE_ENV} must be positive, not {raw!r}")
    return timedelta(seconds=seconds)


class PermanentJobError(Exception):
    """Retrying will not help: the job is marked failed at once."""


@dataclass
class JobContext:
    job_id: int
    kind: str
    attempt: int
    step: str | None
    payload: dict[str, Any]
    _runner: JobRunner
    # True when the previous claimant stopped while running it (its lease ran out): a crash.
    reclaimed: bool = False

    async def record_step(self, step: str, **payload_updates: Any) -> None:
        """Persist progress before doing the step's side effect, so a resume knows where it was."""
        self.step = step
        self.payload.update(payload_updates)
        await self._runner.save_progress(self.job_id, step, self.payload)


JobHandler = Callable[[JobContext], Awaitable[None]]

# Jobs claimed per transaction; the runner claims again at once while it has room.
CLAIM_BATCH = 64


@dataclass(frozen=True)
class ClaimedJob:
    id: int
    kind: str
    attempts: int
    step: str | None
    payload: dict[str, Any]


class JobQueue:
    def __init__(self, clock: Callable[[], datetime]) -> None:
        self._clock = clock

    async def enqueue(
        self,
        session: AsyncSession,
        *,
        kind: str,
        payload: Mapping[str, Any],
        dedup_key: str | None = None,
        run_at: datetime | None = None,
        request_id: int | None = None,
    ) -> int | None:
        """Add a job in the caller's transaction; None if `dedup_key` exists already."""
        return await JobRows(session, self._clock).enqueue(
            kind=kind, payload=payload, dedup_key=dedup_key, run_at=run_at, request_id=request_id
        )


_Pending = tuple[str, dict[str, Any], str | None, "asyncio.Future[bool]"]

# PostgreSQL: one statement, one round trip, whatever the batch size (arrays, not N value rows);
# outside a transaction block the statement is its own transaction, durable when it returns.
_PG_INTAKE = """
INSERT INTO jobs (kind, payload, status, run_at, attempts, dedup_key, created_at, updated_at)
SELECT kind, payload::jsonb, 'queued', $4, 0, dedup_key, $4, $4
FROM unnest($1::text[], $2::text[], $3::text[]) AS batch(kind, payload, dedup_key)
ON CONFLICT (dedup_key) DO NOTHING
RETURNING dedup_key
"""


class JobIntake:
    """Group commit for the acknowledgement path: concurrent submissions share one INSERT.

    Each caller still waits until its job is durably committed before Slack is answered. This is
    the only database work an acknowledgement does, so it is kept lean: a connection held for
    the intake (no pool checkout or ping per ack), one cached statement, and on PostgreSQL one
    round trip per batch. A failed write is retried once on a fresh connection (the held one
    may have been cut by a database restart); dedup keys make that retry safe.
    """

    def __init__(self, engine: AsyncEngine, clock: Callable[[], datetime], *, max_batch: int = 256) -> None:
        self._engine = engine
        self._clock = clock
        self._max_batch = max_batch
        self._postgres = engine.dialect.name == "postgresql"
        self._pending: list[_Pending] = []
        self._flusher: asyncio.Task[None] | None = None
        self._connection: AsyncConnection | None = None
        jobs = cast(Table, Job.__table__)
        self._insert = (
            sqlite.insert(jobs)
            .on_conflict_do_nothing(index_elements=["dedup_key"])
            .returning(jobs.c.dedup_key)
        )

    async def submit(self, kind: str, payload: Mapping[str, Any], *, dedup_key: str | None = None) -> bool:
        """Queue a job; False when a job with `dedup_key` exists already (a retried delivery)."""
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._pending.append((kind, dict(payload), dedup_key, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush(), name="job-intake")
        return await future

    async def close(self) -> None:
        if self._flusher is not None:
            await asyncio.gather(self._flusher, return_exceptions=True)
        await self._drop_connection()

    async def _flush(self) -> None:
        while self._pending:
            batch, self._pending = self._pending[: self._max_batch], self._pending[self._max_batch :]
            try:
                accepted = await self._write_with_retry(batch)
            except Exception as exc:
                for *_, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (*_, future), ok in zip(batch, accepted, strict=True):
                if not future.done():
                    future.set_result(ok)

    async def _write_with_retry(self, batch: list[_Pending]) -> list[bool]:
        try:
            return await self._write(batch)
        except Exception:
            log.warning("job intake write failed; retrying on a fresh connection", exc_info=True)
            await self._drop_connection()
            return await self._write(batch)

    async def _write(self, batch: list[_Pending]) -> list[bool]:
        now = self._clock()
        rows: list[tuple[str, dict[str, Any], str | None]] = []
        first: list[bool] = []  # per submission: not a repeat of a key earlier in this batch
        seen: set[str] = set()
        for kind, payload, key, _ in batch:
            first.append(key is None or key not in seen)
            if first[-1]:
                rows.append((kind, payload, key))
            if key is not None:
                seen.add(key)
        connection = await self._connect()
        if self._postgres:
            inserted = await self._write_postgres(connection, rows, now)
        else:
            inserted = await self._write_portable(connection, rows, now)
        return [
            ok and (key is None or key in inserted) for (_, _, key, _), ok in zip(batch, first, strict=True)
        ]

    async def _write_postgres(
        self, connection: AsyncConnection, rows: list[tuple[str, dict[str, Any], str | None]], now: datetime
    ) -> set[str]:
        raw = (await connection.get_raw_connection()).driver_connection
        assert raw is not None
        records = await raw.fetch(
            _PG_INTAKE,
            [kind for kind, _, _ in rows],
            [json_dumps(payload) for _, payload, _ in rows],
            [key for _, _, key in rows],
            now,
        )
        return {record[0] for record in records}

    async def _write_portable(
        self, connection: AsyncConnection, rows: list[tuple[str, dict[str, Any], str | None]], now: datetime
    ) -> set[str]:
        values = [
            {"kind": kind, "payload": payload, "status": "queued", "run_at": now, "attempts": 0,
             "dedup_key": key, "request_id": None, "created_at": now, "updated_at": now}
            for kind, payload, key in rows
        ]  # fmt: skip
        async with connection.begin():
            result = await connection.execute(self._insert, values)
            return {row[0] for row in result if row[0] is not None}

    async def _connect(self) -> AsyncConnection:
        if self._connection is None or self._connection.closed:
            connection = await self._engine.connect()
            if self._postgres:
                # Statements on the held connection commit as they complete: no BEGIN/COMMIT trips.
                connection = await connection.execution_options(isolation_level="AUTOCOMMIT")
            self._connection = connection
        return self._connection

    async def _drop_connection(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            # Shielded: a shutdown that runs out of time must not leave the connection half
            # closed for the pool to reset later from a cancelled task.
            await asyncio.shield(self._close(connection))

    @staticmethod
    async def _close(connection: AsyncConnection) -> None:
        with contextlib.suppress(Exception):
            await connection.invalidate()
            await connection.close()


class JobRunner:
    """Claims due jobs (SKIP LOCKED on PostgreSQL), runs them concurrently, records outcomes."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        handlers: Mapping[str, JobHandler],
        clock: Callable[[], datetime],
        *,
        worker_id: str = "worker",
        concurrency: int = 16,
        jitter: Callable[[], float] = random.random,
        lease: timedelta | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._sessions = sessions
        self._handlers = dict(handlers)
        self._clock = clock
        self._worker_id = worker_id
        self._concurrency = concurrency
        self._jitter = jitter
        self._lease = lease if lease is not None else job_lease()
        self._sleep = sleep  # paces lease renewal
        self._running: set[asyncio.Task[None]] = set()
        self._unfinished: set[int] = set()  # claimed by this runner, outcome not yet recorded
        self.wake = asyncio.Event()

    def register(self, kind: str, handler: JobHandler) -> None:
        self._handlers[kind] = handler

    @property
    def in_flight(self) -> int:
        return len(self._running)

    async def run_due(self) -> int:
        """Claim and start what is due; returns how many jobs were started."""
        free = self._concurrency - len(self._running)
        if free <= 0:
            return 0
        claimed = await self._claim(free)
        for job, reclaimed in claimed:
            task = asyncio.create_task(self._run(job, reclaimed), name=f"job-{job.id}-{job.kind}")
            self._running.add(task)
            task.add_done_callback(self._running.discard)
        return len(claimed)

    async def drain(self, *, max_passes: int = 100) -> None:
        """Run until nothing is due or running (tests and one-shot tools)."""
        for _ in range(max_passes):
            started = await self.run_due()
            if self._running:
                await asyncio.gather(*list(self._running), return_exceptions=True)
            elif not started:
                return

    async def run(self, stop: asyncio.Event, *, idle_seconds: float = 1.0) -> None:
        while not stop.is_set():
            try:
                started = await self.run_due()
            except Exception:
                log.exception("job claim failed; retrying")
                started = 0
            if started:
                continue
            self.wake.clear()
            waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self.wake.wait())]
            await asyncio.wait(waiters, timeout=idle_seconds, return_when=asyncio.FIRST_COMPLETED)
            for waiter in waiters:
                waiter.cancel()

    async def shutdown(self, timeout: float) -> None:
        """Let running jobs finish for `timeout` seconds; release the rest so any process claims them now."""
        if self._running:
            _, pending = await asyncio.wait(list(self._running), timeout=timeout)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        if self._unfinished:
            await self._release(sorted(self._unfinished))

    async def _release(self, job_ids: list[int]) -> None:
        # Their recorded step stays: the next claimant continues where these stopped.
        try:
            async with self._sessions() as session, session.begin():
                await session.execute(
                    update(Job)
                    .where(Job.id.in_(job_ids), Job.status == "running", Job.locked_by == self._worker_id)
                    .values(status="queued", lease_until=None, updated_at=self._clock())
                )
        except Exception:  # the lease still frees them, only later
            log.exception("releasing unfinished jobs failed; they are reclaimed when their lease ends")
            return
        log.info("released unfinished jobs", extra={"jobs": job_ids})

    async def save_progress(self, job_id: int, step: str, payload: Mapping[str, Any]) -> None:
        async with self._sessions() as session, session.begin():
            await session.execute(
                update(Job)
                .where(Job.id == job_id)
                .values(
                    step=step,
                    payload=dict(payload),
                    updated_at=self._clock(),
                    lease_until=self._clock() + self._lease,
                )
            )

    async def _renew_lease(self, job_id: int) -> None:
        """Heartbeat: keep the claim while the handler runs, however long a step takes."""
        while True:
            await self._sleep(self._lease.total_seconds() / 3)
            try:
                async with self._sessions() as session, session.begin():
                    result = await session.execute(
                        update(Job)
                        .where(Job.id == job_id, Job.status == "running", Job.locked_by == self._worker_id)
                        .values(lease_until=self._clock() + self._lease)
                    )
            except Exception:
                log.warning("renewing a job lease failed; trying again", extra={"job": job_id}, exc_info=True)
                continue
            if result.rowcount == 0:  # type: ignore[attr-defined]
                log.warning("job lease lost to another worker", extra={"job": job_id})
                return

    async def _claim(self, limit: int) -> list[tuple[ClaimedJob, bool]]:
        """Two statements, no ORM objects: pick due ids (skipping rows other workers hold), then
        mark them ours. At most CLAIM_BATCH per transaction keeps each claim short under a backlog."""
        now = self._clock()
        due = ((Job.status == "queued") & (Job.run_at <= now)) | (
            (Job.status == "running") & (Job.lease_until <= now)
        )
        async with self._sessions() as session, session.begin():
            picked = (
                await session.execute(
                    select(Job.id, Job.status)
                    .where(due)
                    .order_by(Job.run_at, Job.id)
                    .limit(min(limit, CLAIM_BATCH))
                    .with_for_update(skip_locked=True)
                )
            ).all()
            if not picked:
                return []
            was_running = {job_id for job_id, status in picked if status == "running"}
            rows = (
                await session.execute(
                    update(Job)
                    .where(Job.id.in_([job_id for job_id, _ in picked]))
                    .values(
                        status="running",
                        attempts=Job.attempts + 1,
                        locked_by=self._worker_id,
                        lease_until=now + self._lease,
                        updated_at=now,
                    )
                    .returning(Job.id, Job.kind, Job.attempts, Job.step, Job.payload)
                    .execution_options(synchronize_session=False)
                )
            ).all()
        claimed = sorted((ClaimedJob(*row) for row in rows), key=lambda job: job.id)
        return [(job, job.id in was_running) for job in claimed]

    async def _run(self, job: ClaimedJob, reclaimed: bool = False) -> None:
        handler = self._handlers.get(job.kind)
        context = JobContext(
            job.id, job.kind, job.attempts, job.step, dict(job.payload), self, reclaimed=reclaimed
        )
        if reclaimed:
            log.warning(
                "resuming a job whose worker stopped",
                extra={"job": job.id, "kind": job.kind, "step": job.step, "attempt": job.attempts},
            )
        heartbeat = asyncio.create_task(self._renew_lease(job.id), name=f"lease-{job.id}")
        self._unfinished.add(job.id)
        try:
            await self._handle(job, handler, context)
            self._unfinished.discard(job.id)
        finally:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat

    async def _handle(self, job: ClaimedJob, handler: JobHandler | None, context: JobContext) -> None:
        try:
            if handler is None:
                raise PermanentJobError(f"no handler for job kind {job.kind!r}")
            await handler(context)
        except asyncio.CancelledError:
            raise
        except PermanentJobError as exc:
            await self._finish(job.id, "failed", error=str(exc))
            log.error("job failed permanently", extra={"job": job.id, "kind": job.kind, "error": str(exc)})
            return
        except Exception as exc:
            if job.attempts >= MAX_JOB_ATTEMPTS:
                await self._finish(job.id, "failed", error=f"{type(exc).__name__}: {exc}")
                log.exception("job failed after %s attempts", job.attempts, extra={"job": job.id})
                return
            delay = min(300.0, 2.0**job.attempts) * (0.5 + self._jitter() / 2)
            await self._retry(job.id, delay, f"{type(exc).__name__}: {exc}")
            log.warning(
                "job will retry", extra={"job": job.id, "kind": job.kind, "in_seconds": round(delay, 1)}
            )
            return
        await self._finish(job.id, "done")

    async def _finish(self, job_id: int, status: str, *, error: str | None = None) -> None:
        async with self._sessions() as session, session.begin():
            await session.execute(
                update(Job)
                .where(Job.id == job_id)
                .values(status=status, last_error=error, lease_until=None, updated_at=self._clock())
            )

    async def _retry(self, job_id: int, delay: float, error: str) -> None:
        async with self._sessions() as session, session.begin():
            await session.execute(
                update(Job)
                .where(Job.id == job_id)
                .values(
                    status="queued",
                    run_at=self._clock() + timedelta(seconds=delay),
                    last_error=error,
                    lease_until=None,
                    updated_at=self._clock(),
                )
            )


class TaskSupervisor:
    """Runs fire-and-forget coroutines while keeping references and logging failures."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, coro: Coroutine[Any, Any, Any], *, name: str) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background task failed", exc_info=task.exception(), extra={"task": task.get_name()})

    async def wait(self, timeout: float) -> None:
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=timeout)

    def __len__(self) -> int:
        return len(self._tasks)
