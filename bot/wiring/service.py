"""The whole bot for one process: Runtime + Slack app + HTTP routes, built the same way for
`opsgate serve`, the demo and the end-to-end tests."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.async_app import AsyncApp

from bot.config.opsgate import OpsgateConfig, Settings
from bot.domain.policy import Action
from bot.domain.requests import Clock, system_clock
from bot.jobs.executor import FailureHook
from bot.listeners.app import create_bolt_app
from bot.listeners.context import COMMAND_JOB, HOME_JOB, INTERACTION_JOB, SlackContext
from bot.listeners.jobs import SlackJobs
from bot.metrics import Metrics
from bot.web.app import create_web_app
from bot.wiring.runtime import Runtime
from commands.ops import OpsCommands
from commands.requests import RequestService
from commands.workflow import Workflow

__all__ = ["OpsgateService", "build_service"]

BOLT_KEY = web.AppKey("bolt", AsyncApp)


@dataclass
class OpsgateService:
    runtime: Runtime
    context: SlackContext
    jobs: SlackJobs
    bolt: AsyncApp
    web: web.Application

    async def stop(self, *, timeout: float = 8.0) -> None:
        await self.runtime.stop(timeout=timeout)


async def slack_events(request: web.Request) -> web.Response:
    bolt = request.app[BOLT_KEY]
    response = await bolt.async_dispatch(await to_bolt_request(request))
    return await to_aiohttp_response(response)


async def build_service(
    settings: Settings,
    config: OpsgateConfig,
    *,
    clock: Clock = system_clock,
    workflows: Mapping[Action, Workflow] | None = None,
    on_failure: FailureHook | None = None,
    engine_kwargs: dict[str, Any] | None = None,
    migrate: bool | None = None,
) -> OpsgateService:
    metrics = Metrics()
    runtime = await Runtime.build(settings, config, clock=clock, workflows=workflows, on_failure=on_failure,
                                  metrics=metrics, engine_kwargs=engine_kwargs, migrate=migrate)  # fmt: skip
    requests = RequestService(runtime.deps.approvals, config, dict(workflows or {}))
    context = SlackContext(runtime=runtime, config=config, requests=requests)
    jobs = SlackJobs(context, OpsCommands(runtime.deps.approvals, config))
    runtime.register_job(COMMAND_JOB, jobs.command)
    runtime.register_job(INTERACTION_JOB, jobs.interaction)
    runtime.register_job(HOME_JOB, jobs.home_job)
    bolt = create_bolt_app(context, settings)
    app = create_web_app(runtime.deps, metrics)
    app[BOLT_KEY] = bolt
    app.router.add_post("/slack/events", slack_events)
    return OpsgateService(runtime, context, jobs, bolt, app)
