"""Alert tests run the real service on SQLite and PostgreSQL and deliver through the real outbox
to the Slack emulator over HTTP; time is a FrozenClock shared by the bot and the emulator."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from aiohttp import web
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy import select

from bot.alerts.service import AlertService, IngestResult, Probe
from bot.config.alerts import AlertsConfig
from bot.db.alert_models import AlertRow
from bot.db.models import OutboxMessage
from bot.domain.alerts import AlertEvent
from bot.domain.audit import Fingerprinter
from bot.domain.requests import FrozenClock
from bot.emulators.slack import create_app
from bot.emulators.slack_control import workspace_of
from bot.emulators.slack_records import ChannelMessage
from bot.emulators.slack_seed import DEFAULT_BOT_TOKEN, DEFAULT_CHANNELS, SlackChannel
from bot.emulators.slack_state import SlackWorkspace
from bot.jobs.outbox import Outbox, OutboxDelivery
from commands.alerts import AlertCommands, IncidentPageHook
from connectors.emulators.faults import start_app

CHANNELS = (
    *DEFAULT_CHANNELS,
    SlackChannel(id="C_OPENTEXT", name="opentext-oncall"),
    SlackChannel(id="C_DAM", name="dam-alerts"),
    SlackChannel(id="C_SAP", name="sap-alerts"),
    SlackChannel(id="C_EDI", name="edi-alerts"),
)


def alerts_config(**overrides: Any) -> AlertsConfig:
    base: dict[str, Any] = {"default_channel": "C_ALERTS"}
    base.update(overrides)
    return AlertsConfig.model_validate(base)


@dataclass
class SlackEmulator:
    url: str
    app: web.Application
    client: AsyncWebClient

    @property
    def workspace(self) -> SlackWorkspace:
        return workspace_of(self.app)

    def posts(self, channel: str) -> list[ChannelMessage]:
        """Top-level messages of a channel (thread replies broadcast to it excluded)."""
        return [m for m in self.workspace.messages(channel) if m.thread_ts in (None, m.ts)]

    @staticmethod
    def shown(message: ChannelMessage) -> str:
        """Everything a reader sees in a message: its text and every text in its blocks."""
        parts = [message.text]

        def walk(node: Any) -> None:
            if isinstance(node, dict):
                if isinstance(node.get("text"), str):
                    parts.append(node["text"])
                for value in node.values():
                    walk(value)
            elif isinstance(node, list):
                for value in node:
                    walk(value)

        walk(message.blocks)
        return "\n".join(parts)

    @staticmethod
    def action_ids(message: ChannelMessage) -> list[str]:
        """The action_id of every button and menu in a message, in order."""
        found: list[str] = []

        def walk(node: Any) -> None:
            if isinstance(node, dict):
                if "action_id" in node:
                    found.append(node["action_id"])
                for value in node.values():
                    walk(value)
            elif isinstance(node, list):
                for value in node:
                    walk(value)

        walk(message.blocks)
        return found

    def replies(self, channel: str) -> list[ChannelMessage]:
        return [m for m in self.workspace.messages(channel) if m.thread_ts not in (None, m.ts)]


@dataclass
class Harness:
    """The alert service wired to a database, a frozen clock and the Slack emulator."""

    database: Any
    clock: FrozenClock
    slack: SlackEmulator
    config: AlertsConfig
    service: AlertService = field(init=False)
    delivery: OutboxDelivery = field(init=False)
    commands: AlertCommands = field(init=False)
    wakes: int = 0
    probes: dict[str, Probe] = field(default_factory=dict)
    incident_page: IncidentPageHook | None = None

    def __post_init__(self) -> None:
        self.rebuild(self.config)

    def rebuild(self, config: AlertsConfig) -> None:
        self.config = config
        self.service = AlertService(
            self.database.sessions,
            self.clock,
            config,
            Outbox(self.clock),
            fingerprinter=Fingerprinter(b"test-fingerprint-key-0123456789"),
            probes=self.probes,
            wake=self._woken,
        )
        self.delivery = OutboxDelivery(
            self.database.sessions, self.slack.client, self.clock, jitter=lambda: 1.0
        )
        self.commands = AlertCommands(self.service, incident_page=self.incident_page)

    def reconfigure(self, **overrides: Any) -> None:
        """Same database, clock and Slack; a service built from the test config plus `overrides`."""
        self.rebuild(alerts_config(**overrides))

    def _woken(self) -> None:
        self.wakes += 1

    async def trigger(self, key: str, **fields: Any) -> IngestResult:
        values: dict[str, Any] = {
            "dedup_key": key,
            "title": f"{key} failed",
            "environment": "prod",
            "system": "opentext",
        }
        values.update(fields)
        return await self.service.ingest(AlertEvent.model_validate(values))

    async def resolve_key(self, key: str) -> IngestResult:
        return await self.service.ingest(AlertEvent(dedup_key=key, action="resolve"))

    async def deliver(self, *, passes: int = 200) -> dict[str, int]:
        """Deliver whatever is due now, until nothing more is (time does not move)."""
        totals = {"sent": 0, "rate_limited": 0, "retried": 0, "dead": 0}
        for _ in range(passes):
            report = await self.delivery.deliver_due()
            for key in totals:
                totals[key] += getattr(report, key)
            if not report.attempted:
                break
        return totals

    async def step(self, seconds: float = 0.0) -> dict[str, int]:
        """Move time, tick once, deliver what is due."""
        if seconds:
            self.clock.advance(timedelta(seconds=seconds))
        await self.service.tick()
        return await self.deliver()

    async def run_for(self, seconds: float, *, step: float = 1.0) -> dict[str, int]:
        totals = {"sent": 0, "rate_limited": 0, "retried": 0, "dead": 0}
        elapsed = 0.0
        while elapsed < seconds:
            this = min(step, seconds - elapsed)  # never overshoot: tests assert just before deadlines
            report = await self.step(this)
            elapsed += this
            for key in totals:
                totals[key] += report[key]
        return totals

    async def alert(self, alert_id: int) -> AlertRow:
        async with self.database.sessions() as session:
            row = await session.get(AlertRow, alert_id)
            assert row is not None
            return row

    async def alerts(self) -> list[AlertRow]:
        async with self.database.sessions() as session:
            return list((await session.scalars(select(AlertRow).order_by(AlertRow.id))).all())

    async def outbox(self) -> list[OutboxMessage]:
        async with self.database.sessions() as session:
            return list((await session.scalars(select(OutboxMessage).order_by(OutboxMessage.id))).all())


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture
async def slack(clock: FrozenClock) -> AsyncIterator[SlackEmulator]:
    app = create_app(clock=lambda: clock().timestamp(), channels=CHANNELS)
    runner, url = await start_app(app)
    client = AsyncWebClient(token=DEFAULT_BOT_TOKEN, base_url=url + "/api/")
    yield SlackEmulator(url, app, client)
    await runner.cleanup()


@pytest.fixture
def harness(database: Any, clock: FrozenClock, slack: SlackEmulator) -> Harness:
    return Harness(database, clock, slack, alerts_config())
