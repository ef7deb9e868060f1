"""A running bot (HTTP, real signatures) wired to the Slack emulator, driven as Slack would."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from bot.config.opsgate import Settings, parse_config
from bot.domain.policy import Action
from bot.domain.requests import ChangeRequest, ChangeSpec, FrozenClock
from bot.emulators.slack import create_app as create_slack
from bot.emulators.slack_control import workspace_of
from bot.emulators.slack_driver import SlackDriver
from bot.emulators.slack_seed import DEFAULT_BOT_TOKEN
from bot.wiring.service import OpsgateService, build_service
from commands.workflow import ExecutionContext, ExecutionResult, PrecheckFailed, Preview
from connectors.emulators.faults import start_app

SIGNING_SECRET = "e2e-signing-secret-0123456789abcdef"

CONFIG: dict[str, Any] = {
    "environments": {"test": {}, "prod": {"production": True}},
    "solutions": [{"name": "orders-edi", "artifacts": ["orders-api"], "downstream_systems": ["SAP"]}],
    "groups": {"leads": ["U_APP1", "U_APP2", "U_REQ"], "engineers": ["U_REQ", "U_APP1", "U_APP2", "U_ADMIN"]},
    "slack": {"approvals_channel": "C_APPROVALS", "alerts_channel": "C_ALERTS"},
    "policies": [
        {
            "name": "prod-promotions",
            "action": "promotion",
            "environment": "prod",
            "approvers": {"groups": ["leads"]},
            "min_approvals": 2,
            "requesters": {"groups": ["engineers"]},
            "expires_after": "24h",
            "break_glass": {"users": ["U_ADMIN"], "review_within": "48h"},
        },
        {"name": "test-any", "action": "*", "environment": "test", "approvers": {"groups": ["leads"]}},
    ],
}


class FakePromotion:
    """Stands in for OpenText (not under test here): records calls, succeeds or fails on demand."""

    action = Action.PROMOTION

    def __init__(self) -> None:
        self.executed: list[str] = []
        self.fail_with: str | None = None

    async def precheck(self, spec: ChangeSpec, *, requester: str) -> Preview:
        if spec.parameters["version"] == "9.9.9":
            raise PrecheckFailed("Version 9.9.9 of orders-api does not exist in test.")
        return Preview("1.3.2 → " + str(spec.parameters["version"]), {"current_version": "1.3.2"})

    async def execute(self, request: ChangeRequest, ctx: ExecutionContext) -> ExecutionResult:
        from commands.workflow import WorkflowFailed

        self.executed.append(request.human_id)
        await ctx.record_step("promote", job_id="J-1")
        await ctx.progress.step("Promotion job J-1 finished", ok=True)
        if self.fail_with:
            raise WorkflowFailed(self.fail_with, step="verify")
        return ExecutionResult(
            {"deployed_version": request.parameters["version"]}, links={"Change summary": "https://wiki/x"}
        )


async def settle_runtime(rt: Any, clock: FrozenClock) -> None:
    """Run jobs and deliver the outbox until nothing is left: deterministic, no sleeping.

    Messages waiting on a backoff get the clock moved forward instead of a real wait.
    """
    for _ in range(50):
        await rt.runner.drain()
        await rt.supervisor.wait(timeout=5)
        report = await rt.delivery.deliver_due()
        if not report.attempted and not rt.runner.in_flight and not len(rt.supervisor):
            if await rt.delivery.pending_count() == 0:
                return
            clock.advance(timedelta(seconds=2))
    raise AssertionError("bot did not settle")


@dataclass
class Bot:
    service: OpsgateService
    driver: SlackDriver
    slack_app: web.Application
    clock: FrozenClock
    workflow: FakePromotion

    @property
    def workspace(self) -> Any:
        return workspace_of(self.slack_app)

    async def settle(self) -> None:
        await settle_runtime(self.service.runtime, self.clock)

    async def request(self, ref: str) -> ChangeRequest:
        """The request as the bot has stored it (read in a transaction of its own)."""
        deps = self.service.runtime.deps
        async with deps.database.reading() as tx:
            return await deps.approvals.get(tx, ref)

    async def requests(self) -> list[ChangeRequest]:
        deps = self.service.runtime.deps
        async with deps.database.reading() as tx:
            return await deps.approvals.list_requests(tx)

    def channel(self, channel: str = "C_APPROVALS") -> list[Any]:
        return [m for m in self.workspace.messages(channel) if m.thread_ts in (None, m.ts)]

    def thread(self, ts: str, channel: str = "C_APPROVALS") -> list[str]:
        return [m.text for m in self.workspace.messages(channel) if m.thread_ts == ts and m.ts != ts]

    def ephemeral_texts(self, user: str) -> list[str]:
        return [m.text for m in self.workspace.ephemeral_messages(user)]

    def dm_texts(self, user: str) -> list[str]:
        dm = self.workspace.open_dm(user)
        return [m.text for m in self.workspace.messages(dm)]

    @staticmethod
    def button_value(message: Any, action_id: str) -> str:
        for block in message.blocks:
            for element in block.get("elements", []) if isinstance(block, Mapping) else []:
                if isinstance(element, Mapping) and element.get("action_id") == action_id:
                    return str(element["value"])
        raise AssertionError(f"no {action_id} button on {json.dumps(message.blocks)[:300]}")

    async def click(self, user: str, message: Any, action_id: str, *, stale: bool = False) -> Any:
        """Click a button; `stale` sends the message as the clicker still sees it (an old copy)."""
        return await self.driver.block_action(
            user, message_ts=message.ts, channel_id=message.channel, action_id=action_id,
            value=self.button_value(message, action_id), message=message.model_dump(mode="json") if stale else None,
        )  # fmt: skip


@pytest.fixture
async def bot(database, tmp_path: Path) -> AsyncIterator[Bot]:
    clock = FrozenClock()
    slack_app = create_slack(clock=lambda: clock().timestamp())
    slack_runner, slack_url = await start_app(slack_app)
    settings = Settings(
        database_url=database.url,
        slack_bot_token=DEFAULT_BOT_TOKEN,
        slack_signing_secret=SIGNING_SECRET,
        slack_api_url=slack_url + "/api/",
        opsgate_secret_key_file=tmp_path / "key",
    )
    workflow = FakePromotion()
    service = await build_service(
        settings,
        parse_config(CONFIG, source="e2e", env={}),
        clock=clock,
        workflows={Action.PROMOTION: workflow},
        engine_kwargs={"connect_args": database.connect_args} if database.connect_args else None,
        migrate=False,
    )
    bot_runner, bot_url = await start_app(service.web)
    driver = SlackDriver(bot_url + "/slack/events", SIGNING_SECRET, slack_url)
    yield Bot(service, driver, slack_app, clock, workflow)
    await driver.aclose()
    await bot_runner.cleanup()
    await service.stop(timeout=2)
    await slack_runner.cleanup()
