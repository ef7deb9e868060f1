"""Assembles one process: database, engine, outbox, jobs, Slack app, loops; and stops it cleanly.

`serve` and `worker` both build a Runtime. Loops that claim rows (outbox delivery, jobs) are safe
in several processes; the scheduler runs where `with_scheduler` is set (the worker, or `serve`
on SQLite where there is only one process).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import socket
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from slack_sdk.web.async_client import AsyncWebClient

from bot.config.opsgate import OpsgateConfig, Settings
from bot.domain.policy import Action
from bot.domain.requests import Clock, system_clock
from bot.jobs.announcer import EXECUTE_JOB, SlackAnnouncer
from bot.jobs.executor import FailureHook, RequestExecutor
from bot.jobs.leader import SchedulerLeadership
from bot.jobs.outbox import Outbox, OutboxDelivery
from bot.jobs.queue import JobHandler, JobIntake, JobQueue, JobRunner, TaskSupervisor
from bot.listeners.directory import SlackDirectory
from bot.metrics import Metrics
from bot.wiring.deps import Deps
from commands.workflow import Workflow

__all__ = ["Runtime", "freeze_startup_heap"]


def freeze_startup_heap() -> None:
    """Take everything alive after start-up out of the cyclic garbage collector's scans.

    A server's start-up heap (modules, settings, models, compiled statements; ~150k objects)
    never dies, yet every full collection walked it: ~95 ms with the event loop stopped, which
    was the tail of the acknowledgement latency. Objects created later are collected as usual.
    """
    gc.collect()
    gc.freeze()


log = logging.getLogger("opsgate.runtime")


@dataclass
class Runtime:
    deps: Deps
    slack: AsyncWebClient
    outbox: Outbox
    jobs: JobQueue
    runner: JobRunner
    delivery: OutboxDelivery
    announcer: SlackAnnouncer
    executor: RequestExecutor
    supervisor: TaskSupervisor
    http: httpx.AsyncClient
    metrics: Metrics
    delivery_wake: asyncio.Event
    intake: JobIntake
    stop_event: asyncio.Event = field(default_factory=asyncio.Event)
    extras: dict[str, Any] = field(default_factory=dict)
    _loops: list[asyncio.Task[None]] = field(default_factory=list)
    _scheduler: AsyncIOScheduler | None = None
    _scheduled: list[tuple[Any, float, str]] = field(default_factory=list)
    _at_shutdown: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    leadership: SchedulerLeadership | None = None

    @classmethod
    async def build(
        cls,
        settings: Settings,
        config: OpsgateConfig,
        *,
        clock: Clock = system_clock,
        workflows: Mapping[Action, Workflow] | None = None,
        on_failure: FailureHook | None = None,
        metrics: Metrics | None = None,
        engine_kwargs: dict[str, Any] | None = None,
        migrate: bool | None = None,
    ) -> Runtime:
        token = settings.slack_bot_token.get_secret_value() if settings.slack_bot_token else None
        slack = AsyncWebClient(token=token, base_url=settings.slack_api_url)
        wake = asyncio.Event()
        announcer = SlackAnnouncer(config, clock, delivery_wake=wake)
        deps = await Deps.open(settings, config, clock=clock, directory=SlackDirectory(slack, config.static_directory()),
                               observer=announcer, engine_kwargs=engine_kwargs, migrate=migrate)  # fmt: skip
        outbox = Outbox(clock)
        jobs = JobQueue(clock)
        http = httpx.AsyncClient(timeout=10)
        worker_id = f"{socket.gethostname()}:{os.getpid()}"
        executor = RequestExecutor(
            deps.approvals, deps.database, announcer, workflows or {}, on_failure=on_failure
        )
        runner = JobRunner(deps.sessions, {EXECUTE_JOB: executor}, clock, worker_id=worker_id)
        delivery = OutboxDelivery(deps.sessions, slack, clock, http=http, worker_id=worker_id)
        return cls(
            deps=deps,
            slack=slack,
            outbox=outbox,
            jobs=jobs,
            runner=runner,
            delivery=delivery,
            announcer=announcer,
            executor=executor,
            supervisor=TaskSupervisor(),
            http=http,
            metrics=metrics or Metrics(),
            delivery_wake=wake,
            intake=JobIntake(deps.engine, clock),
        )

    def register_job(self, kind: str, handler: JobHandler) -> None:
        self.runner.register(kind, handler)

    def kick(self) -> None:
        """Something was queued: start claiming now instead of at the next idle poll."""
        self.runner.wake.set()
        self.delivery_wake.set()

    # -------------------------------------------------------------- loops

    def start_loops(
        self,
        *,
        with_scheduler: bool,
        with_jobs: bool = True,
        sweep_seconds: float = 30.0,
        leader_poll: float = 3.0,
        idle_poll: float = 0.25,
    ) -> None:
        """Job and delivery loops (unless this process only answers Slack); the scheduler only
        while this process leads. Work queued by another process is noticed within `idle_poll`."""
        if with_jobs:
            delivery = self.delivery.run(self.stop_event, self.delivery_wake, idle_seconds=idle_poll)
            self._loops.append(asyncio.create_task(delivery, name="outbox"))
            jobs = self.runner.run(self.stop_event, idle_seconds=idle_poll)
            self._loops.append(asyncio.create_task(jobs, name="jobs"))
        if not with_scheduler:
            return
        self._scheduled.append((self.expire_and_remind, sweep_seconds, "expire_and_remind"))
        self.leadership = SchedulerLeadership(
            self.deps.engine,
            on_elected=self._start_scheduler,
            on_lost=self._stop_scheduler,
            poll_seconds=leader_poll,
        )
        self._loops.append(asyncio.create_task(self.leadership.run(self.stop_event), name="leadership"))

    def add_scheduled(self, func: Any, *, seconds: float, name: str) -> None:
        """Register a periodic duty; it runs wherever the scheduler runs (the leader)."""
        self._scheduled.append((func, seconds, name))
        if self._scheduler is not None:
            self._scheduler.add_job(
                func, "interval", seconds=seconds, id=name, max_instances=1, coalesce=True
            )

    def add_shutdown_duty(self, func: Callable[[], Awaitable[None]]) -> None:
        """Run once more at stop(), where the scheduler ran, after the last job has finished."""
        self._at_shutdown.append(func)

    def _start_scheduler(self) -> None:
        scheduler = AsyncIOScheduler(timezone="UTC")
        for func, seconds, name in self._scheduled:
            scheduler.add_job(func, "interval", seconds=seconds, id=name, max_instances=1, coalesce=True)
        scheduler.start()
        self._scheduler = scheduler

    def _stop_scheduler(self) -> None:
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=False)
            self._scheduler = None

    async def expire_and_remind(self) -> None:
        database, approvals = self.deps.database, self.deps.approvals
        try:
            async with database.transaction() as tx:
                expired = await approvals.expire_due(tx)
            self.metrics.requests_expired.inc(len(expired))
            async with database.transaction() as tx:
                for request in await approvals.due_reminders(tx):
                    await self.announcer.thread_reply(
                        tx,
                        request,
                        step="Reminder: still waiting for approval",
                        detail=f"{len(request.valid_approvals)} of {request.policy.min_approvals} approvals so far; "
                        f"approvers: {request.policy.approvers.describe()}",
                    )
            self.kick()
        except Exception:
            log.exception("expiry/reminder sweep failed; it will run again")

    async def stop(self, *, timeout: float = 8.0) -> None:
        """Stop claiming, let running jobs finish within `timeout`, leave the rest claimable."""
        self.stop_event.set()
        leading = self._scheduler is not None
        self._stop_scheduler()
        # Acknowledgements have stopped (the HTTP server or socket closed first): give the
        # intake's held connection back now, before anything below can run out of time.
        await asyncio.shield(self.intake.close())
        await self.supervisor.wait(timeout=min(2.0, timeout))
        # The loops see stop_event and leave between passes (claiming nothing more); cancelling
        # one inside a database transaction would interrupt its rollback too if shutdown is
        # itself cut short. Then the jobs already started get their time and are released.
        if self._loops:
            _, pending = await asyncio.wait(self._loops, timeout=min(2.0, timeout))
            for loop in pending:
                loop.cancel()
        await asyncio.gather(*self._loops, return_exceptions=True)
        await self.runner.shutdown(timeout=timeout)
        for duty in self._at_shutdown if leading else ():
            try:
                await asyncio.wait_for(duty(), timeout=timeout)
            except TimeoutError:
                log.error("a shutdown duty did not finish in time", extra={"duty": repr(duty)})
        await self.http.aclose()
        await self.deps.close()
