"""`wire_onboarding` end to end over HTTP: Slack emulator -> bot -> OpenText, Confluence, Canto, iconik.

/onboard is parsed at once, opens a request through the onboarding policy, is approved in Slack
and provisions everything; `/ops spec-check` answers; the scheduled drift check raises an alert.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from bot.config.opsgate import Settings, parse_config
from bot.domain.policy import Action
from bot.domain.requests import FrozenClock
from bot.emulators.slack import create_app as create_slack
from bot.emulators.slack_control import workspace_of
from bot.emulators.slack_driver import SlackDriver
from bot.emulators.slack_seed import DEFAULT_BOT_TOKEN
from bot.ids import ActionId
from bot.wiring.onboarding import OnboardingWiring, wire_onboarding
from bot.wiring.root import Wiring, wire
from bot.wiring.service import OpsgateService, build_service
from commands.onboard import OnboardingWorkflow
from commands.spec_check import SPEC_LABEL
from connectors import confluence_storage as storage
from connectors.emulators import canto as canto_emulator
from connectors.emulators import confluence as confluence_emulator
from connectors.emulators import iconik as iconik_emulator
from connectors.emulators import opentext as opentext_emulator
from connectors.emulators.faults import start_app

SIGNING_SECRET = "onboard-signing-secret-0123456789abcdef"
SECRETS = {
    "OT_SECRET": "opsgate-svc-secret",
    "CONFLUENCE_TOKEN": confluence_emulator.DEFAULT_API_TOKEN,
    "CANTO_SECRET": canto_emulator.DEFAULT_APP_SECRET,
    "ICONIK_TOKEN": iconik_emulator.DEFAULT_AUTH_TOKEN,
}
TEMPLATE = {
    "name": "edi-partner",
    "solution": "orders-edi",
    "artifacts": [{"source": "orders-edi.orders-inbound-api", "name": "{name}-orders-api"}],
    "credentials": [{"name": "{name}-{env}-client", "credential_id": "{name}-{env}-client", "owner": "U_APP1",
                     "schedule": "90d"}],
    "iconik": {"storage": "Export - Retailer A", "collection": "Partner {name}"},
    "canto": {"folder": "Partner Releases", "album": "{name}"},
    "message_standards": ["EDIFACT ORDERS D96A"],
}  # fmt: skip


def config_for(urls: dict[str, str]) -> dict[str, Any]:
    opentext = {"base_url": urls["opentext"], "tenant_id": "acme-integration", "client_id": "opsgate-svc",
                "client_secret": "${OT_SECRET}", "job_poll_interval": 0.05, "http": {"max_retries": 0}}  # fmt: skip
    prod = {
        "production": True,
        "opentext": opentext,
        "confluence": {"flavour": "cloud", "base_url": urls["confluence"],
                       "email": confluence_emulator.DEFAULT_EMAIL, "api_token": "${CONFLUENCE_TOKEN}"},
        "canto": {"base_url": urls["canto"], "oauth_url": urls["canto"], "app_id": canto_emulator.DEFAULT_APP_ID,
                  "app_secret": "${CANTO_SECRET}"},
        "iconik": {"base_url": urls["iconik"], "app_id": iconik_emulator.DEFAULT_APP_ID,
                   "auth_token": "${ICONIK_TOKEN}"},
    }  # fmt: skip
    return {
        "environments": {"test": {"opentext": opentext}, "prod": prod},
        "solutions": [{"name": "orders-edi", "confluence_space": "INT"}],
        "groups": {"leads": ["U_APP1", "U_APP2"]},
        "slack": {"approvals_channel": "C_APPROVALS", "alerts_channel": "C_ALERTS"},
        "alerts": {"default_channel": "C_ALERTS", "group_wait": "1s"},
        "policies": [
            {
                "name": "prod-onboarding",
                "action": "onboarding",
                "environment": "prod",
                "approvers": {"groups": ["leads"]},
                "min_approvals": 1,
            }
        ],
        "onboarding_templates": [TEMPLATE],
    }


@dataclass
class System:
    service: OpsgateService
    wiring: Wiring
    onboarding: OnboardingWiring
    driver: SlackDriver
    slack: web.Application
    apps: dict[str, web.Application]
    clock: FrozenClock

    @property
    def workspace(self) -> Any:
        return workspace_of(self.slack)

    async def settle(self) -> None:
        """Run jobs and deliver the outbox until nothing is left: deterministic, no sleeping."""
        rt = self.service.runtime
        for _ in range(50):
            await rt.runner.drain()
            await rt.supervisor.wait(timeout=5)
            report = await rt.delivery.deliver_due()
            if not report.attempted and not rt.runner.in_flight and not len(rt.supervisor):
                if await rt.delivery.pending_count() == 0:
                    return
                self.clock.advance(timedelta(seconds=2))  # messages held back by the per-channel rate
        raise AssertionError("bot did not settle")

    def posts(self, channel: str) -> list[Any]:
        return [m for m in self.workspace.messages(channel) if m.thread_ts in (None, m.ts)]

    def ephemeral(self, user: str) -> list[str]:
        return [m.text for m in self.workspace.ephemeral_messages(user)]


@pytest.fixture
async def system(database, tmp_path: Path) -> AsyncIterator[System]:
    clock = FrozenClock()
    slack_app = create_slack(clock=lambda: clock().timestamp())
    apps = {
        "opentext": opentext_emulator.create_app(job_seconds_per_step=None, rate_per_second=None),
        "confluence": confluence_emulator.create_app(),
        "canto": canto_emulator.create_app(),
        "iconik": iconik_emulator.create_app(),
    }
    runners = []
    urls = {}
    for name, app in (("slack", slack_app), *apps.items()):
        runner, url = await start_app(app)
        runners.append(runner)
        urls[name] = url
    settings = Settings(
        database_url=database.url,
        slack_bot_token=DEFAULT_BOT_TOKEN,
        slack_signing_secret=SIGNING_SECRET,
        slack_api_url=urls["slack"] + "/api/",
        opsgate_secret_key_file=tmp_path / "key",
    )
    config = parse_config(config_for(urls), source="onboard-e2e", env=SECRETS)
    service = await build_service(
        settings, config, clock=clock,
        engine_kwargs={"connect_args": database.connect_args} if database.connect_args else None, migrate=False,
    )  # fmt: skip
    wiring = await wire(service, settings, config, env={})
    onboarding = wire_onboarding(service, wiring, config)
    bot_runner, bot_url = await start_app(service.web)
    driver = SlackDriver(bot_url + "/slack/events", SIGNING_SECRET, urls["slack"])
    yield System(service, wiring, onboarding, driver, slack_app, apps, clock)
    await driver.aclose()
    await bot_runner.cleanup()
    await service.stop(timeout=2)
    await wiring.aclose()
    for runner in runners:
        await runner.cleanup()


async def test_onboard_usage_errors_are_answered_at_once_with_the_usage_line(system):
    answer = await system.driver.slash_command("U_REQ", "/onboard", "edi-partner Globex prod")

    body = answer.json()
    assert body["response_type"] == "ephemeral"
    assert "did you mean 'globex'?" in body["text"]
    assert "/onboard <template> <name> <env> [reason...]" in body["text"]
    await system.settle()
    assert system.posts("C_APPROVALS") == [], "nothing was requested"


async def test_onboard_is_approved_in_slack_and_provisions_everything(system):
    answer = await system.driver.slash_command("U_REQ", "/onboard", "edi-partner globex prod new AS2 partner")
    assert "Checking `/onboard edi-partner globex prod new AS2 partner`" in answer.json()["text"]
    await system.settle()

    [message] = system.posts("C_APPROVALS")
    assert "orders-edi.globex-orders-api" in str(message.blocks), "approvers see the plan"
    assert any("ONB-1 opened; approval requested" in text for text in system.ephemeral("U_REQ"))
    value = next(
        e["value"]
        for b in message.blocks
        for e in b.get("elements", [])
        if e.get("action_id") == ActionId.APPROVE
    )
    await system.driver.block_action("U_APP1", message_ts=message.ts, channel_id=message.channel,
                                     action_id=ActionId.APPROVE, value=value)  # fmt: skip
    await system.settle()

    deps = system.service.runtime.deps
    async with deps.database.reading() as tx:
        request = await deps.approvals.get(tx, "ONB-1")
    assert request.status.value == "succeeded", request.failure_reason
    ot = opentext_emulator.opentext_state_of(system.apps["opentext"])
    assert "orders-edi.globex-orders-api" in ot.artifacts
    page = await system.wiring.registry.confluence("prod").find_page("INT", "Onboarding: globex (prod)")
    assert page is not None and "globex-prod-client" in page.body
    assert isinstance(system.service.runtime.executor.workflows[Action.ONBOARDING], OnboardingWorkflow)


async def test_onboarding_an_existing_name_again_tells_the_requester_what_differs(system):
    ot = opentext_emulator.opentext_state_of(system.apps["opentext"])
    source = ot.artifacts["orders-edi.orders-inbound-api"]
    ot.artifacts["orders-edi.globex-orders-api"] = opentext_emulator.Artifact(
        id="orders-edi.globex-orders-api", solution="orders-edi", kind="map", name="globex-orders-api",
        description="made by hand", versions=list(source.versions),
    )  # fmt: skip

    await system.driver.slash_command("U_REQ", "/onboard", "edi-partner globex prod")
    await system.settle()

    [reply] = [t for t in system.ephemeral("U_REQ") if "ONB-1" in t]
    assert "globex already exists in prod. What differs from the template:" in reply
    assert "OpenText artifact orders-edi.globex-orders-api: it is a map, the template clones a api" in reply


async def test_ops_spec_check_replies_with_the_differences(system):
    body = (
        storage.Document()
        .table(["Message type", "Endpoint", "Prod version"], [["ORDERS D96A", "orders-inbound-api", "9.9.9"]])
        .render()
    )
    await system.wiring.registry.confluence("prod").upsert_page("INT", "Orders interface spec", body)

    await system.driver.slash_command("U_REQ", "/ops", "spec-check Orders interface spec")
    await system.settle()

    [reply] = [t for t in system.ephemeral("U_REQ") if "Spec check" in t]
    assert "prod: ORDERS D96A via orders-inbound-api: the spec says 9.9.9, OpenText runs" in reply


async def test_the_scheduled_drift_check_raises_an_alert_for_a_labelled_page(system):
    confluence = system.wiring.registry.confluence("prod")
    body = (
        storage.Document()
        .table(["Message type", "Endpoint", "Prod version"], [["ORDERS D96A", "orders-inbound-api", "9.9.9"]])
        .render()
    )
    write = await confluence.upsert_page("INT", "Orders interface spec", body)
    await confluence.add_labels(write.page.id, [SPEC_LABEL])
    scheduled = {name: func for func, _, name in system.service.runtime._scheduled}

    await scheduled["spec_drift"]()

    views, _ = await system.wiring.alerts.list_alerts()
    assert [v.title for v in views] == ["Interface spec 'Orders interface spec' differs from OpenText (3)"]
