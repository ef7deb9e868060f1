"""Runs approved requests through their workflow inside a persisted, resumable job.

The job is unique per request (`execute:<ID>`), `start_execution` is a compare-and-set, and each
workflow step is recorded before its side effect, so a crash or restart resumes the same run
instead of starting a second one. When a run is taken over from a worker that stopped mid-way
(its job lease ran out), the thread says so and `on_resume` raises an info alert.

Each state change is its own short transaction; the workflow's vendor calls run between them,
never inside one.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from bot.db.transaction import Database
from bot.domain.errors import InvalidTransition, RequestExpired
from bot.domain.policy import Action
from bot.domain.requests import ChangeRequest, RequestStatus
from bot.jobs.announcer import SlackAnnouncer
from bot.jobs.queue import JobContext, PermanentJobError
from commands.approvals import Approvals
from commands.workflow import ExecutionResult, Workflow, WorkflowFailed

__all__ = ["FailureHook", "RequestExecutor", "ResumeHook", "SlackProgress", "SuccessHook"]

log = logging.getLogger("opsgate.execution")

FailureHook = Callable[[ChangeRequest, WorkflowFailed], Awaitable[None]]
SuccessHook = Callable[[ChangeRequest], Awaitable[None]]
# (request, the step the stopped worker had recorded)
ResumeHook = Callable[[ChangeRequest, str], Awaitable[None]]


class SlackProgress:
    """ProgressReporter that posts each step as a thread reply under the approval message."""

    def __init__(self, database: Database, announcer: SlackAnnouncer, request: ChangeRequest):
        self._database = database
        self._announcer = announcer
        self._request = request
        self.steps: list[str] = []

    async def step(self, name: str, detail: str = "", *, ok: bool | None = None) -> None:
        self.steps.append(name)
        async with self._database.transaction() as tx:
            await self._announcer.thread_reply(tx, self._request, step=name, detail=detail, ok=ok)
        if self._announcer.delivery_wake is not None:
            self._announcer.delivery_wake.set()


class _JobExecutionContext:
    """ExecutionContext backed by the job row; workflow state lives under payload["state"]."""

    def __init__(self, job: JobContext, progress: SlackProgress) -> None:
        self._job = job
        self._progress = progress
        self._state: dict[str, Any] = dict(job.payload.get("state", {}))

    @property
    def step(self) -> str | None:
        step = self._job.step
        return None if step in (None, "started") else step

    @property
    def state(self) -> dict[str, Any]:
        return self._state

    @property
    def attempt(self) -> int:
        return self._job.attempt

    @property
    def progress(self) -> SlackProgress:
        return self._progress

    async def record_step(self, step: str, **state: Any) -> None:
        self._state.update(state)
        await self._job.record_step(step, state=self._state)


class RequestExecutor:
    """The job handler for `request.execute`."""

    def __init__(
        self,
        approvals: Approvals,
        database: Database,
        announcer: SlackAnnouncer,
        workflows: Mapping[Action, Workflow],
        *,
        on_failure: FailureHook | None = None,
        on_success: SuccessHook | None = None,
        on_resume: ResumeHook | None = None,
    ) -> None:
        self._approvals = approvals
        self.on_success = on_success
        self.on_resume = on_resume
        self._database = database
        self._announcer = announcer
        self.workflows = dict(workflows)
        self.on_failure = on_failure

    async def __call__(self, job: JobContext) -> None:
        ref = str(job.payload["ref"])
        request = await self._get(ref)
        if request.is_terminal:
            return  # finished in an earlier run; nothing to redo
        if request.status is RequestStatus.APPROVED:
            try:
                async with self._database.transaction() as tx:
                    request = await self._approvals.start_execution(tx, ref)
            except RequestExpired as exc:
                raise PermanentJobError(str(exc)) from exc
            except InvalidTransition:
                request = await self._get(ref)
                if request.status is not RequestStatus.EXECUTING:
                    raise
            if job.step is None:
                await job.record_step("started")
        elif request.status is not RequestStatus.EXECUTING:
            # Approved state was lost (policy tightened, window closed...): retry later.
            raise InvalidTransition(f"{ref} is {request.status.value}; waiting to be startable")
        workflow = self.workflows.get(request.action)
        if workflow is None:
            async with self._database.transaction() as tx:
                await self._approvals.fail(
                    tx, ref, reason=f"No workflow is configured for {request.action.value} requests."
                )
            return
        progress = SlackProgress(self._database, self._announcer, request)
        if job.reclaimed and job.step is not None:
            await self._announce_resume(request, job.step, progress)
        try:
            outcome: ExecutionResult = await workflow.execute(request, _JobExecutionContext(job, progress))
        except WorkflowFailed as failure:
            if failure.retryable and job.attempt < 3:
                raise
            evidence = {"step": failure.step, **failure.evidence}
            if failure.partial:
                evidence["succeeded_before_failure"] = failure.partial
            async with self._database.transaction() as tx:
                failed = await self._approvals.fail(tx, ref, reason=failure.reason, evidence=evidence)
            if self.on_failure is not None:
                await self.on_failure(failed, failure)
            return
        result = dict(outcome.result)
        if outcome.links:
            result["links"] = dict(outcome.links)
        async with self._database.transaction() as tx:
            done = await self._approvals.succeed(tx, ref, result=result, evidence=dict(outcome.evidence))
        if self.on_success is not None:
            await self.on_success(done)

    async def _get(self, ref: str) -> ChangeRequest:
        async with self._database.reading() as tx:
            return await self._approvals.get(tx, ref)

    async def _announce_resume(self, request: ChangeRequest, step: str, progress: SlackProgress) -> None:
        await progress.step(
            f"Resumed after a worker stopped during {step}",
            "Continuing from the recorded step; the steps already done are not repeated.",
        )
        if self.on_resume is not None:
            try:
                await self.on_resume(request, step)
            except Exception:  # the alert is a courtesy; the execution must go on
                log.exception("raising the resume alert failed", extra={"request": request.human_id})
