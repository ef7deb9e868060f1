"""The whole system over HTTP: Slack emulator -> bot -> OpenText and Confluence emulators.

A promotion is requested with /promote, approved by two people, executed against the OpenText
emulator, verified and documented in Confluence; a failing OpenText job raises an alert in
#alerts; the audit trail verifies and holds no secret.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from bot.config.opsgate import Settings, parse_config
from bot.db.audit_log import verify_chain
from bot.domain.requests import FrozenClock
from bot.emulators.slack import create_app as create_slack
from bot.emulators.slack_driver import SlackDriver
from bot.emulators.slack_seed import DEFAULT_BOT_TOKEN
from bot.ids import ActionId
from bot.wiring.root import wire
from bot.wiring.service import build_service
from connectors.emulators import confluence as confluence_emulator
from connectors.emulators import opentext as opentext_emulator
from connectors.emulators.faults import start_app

from .conftest import SIGNING_SECRET, Bot

OT_SECRET = "opsgate-svc-secret"
ARTIFACT = "orders-edi.orders-d96a-to-xml"  # test runs 2.4.0, prod runs 2.3.0 in the emulator's seed


def config_for(ot_url: str, confluence_url: str) -> dict[str, Any]:
    opentext = {
        "base_url": ot_url, "token_base_url": ot_url, "tenant_id": "acme-integration",
        "client_id": "opsgate-svc", "client_secret": "${OT_SECRET}", "job_poll_interval": 0.05,
        "http": {"max_retries": 0},
    }  # fmt: skip
    confluence = {
        "flavour": "cloud", "base_url": confluence_url, "email": confluence_emulator.DEFAULT_EMAIL,
        "api_token": "${CONFLUENCE_TOKEN}",
    }  # fmt: skip
    return {
        "environments": {
            "test": {"opentext": opentext},
            "prod": {"opentext": opentext, "confluence": confluence},
        },
        "credentials": [
            {
                "name": "orders-edi-prod",
                "environment": "prod",
                "credential_id": "orders-edi-prod-client",
                "owner": "U_APP1",
                "owner_channel": "C_ORDERS",
                "schedule": "90d",
                "grace_period": "1h",
            },
        ],
        "solutions": [
            {
                "name": "orders-edi",
                "confluence_space": "INT",
                "artifacts": [ARTIFACT],
                "downstream_systems": ["SAP ERP"],
            }
        ],
        "groups": {"leads": ["U_APP1", "U_APP2"], "engineers": ["U_REQ", "U_APP1", "U_APP2"]},
        "slack": {"approvals_channel": "C_APPROVALS", "alerts_channel": "C_ALERTS"},
        "alerts": {"default_channel": "C_ALERTS", "group_wait": "1s", "group_interval": "5s"},
        "policies": [
            {
                "name": "prod-promotions",
                "action": "promotion",
                "environment": "prod",
                "approvers": {"groups": ["leads"]},
                "min_approvals": 2,
                "requesters": {"groups": ["engineers"]},
                "break_glass": {"users": ["U_REQ"], "review_within": "1h"},
            },
            {
                "name": "prod-rotations",
                "action": "rotation",
                "environment": "prod",
                "approvers": {"groups": ["leads"]},
                "min_approvals": 1,
            },
        ],
    }


@pytest.fixture
async def system(database, tmp_path: Path) -> AsyncIterator[tuple[Bot, str]]:
    clock = FrozenClock()
    slack_app = create_slack(clock=lambda: clock().timestamp())
    ot_app = opentext_emulator.create_app(job_seconds_per_step=None, rate_per_second=None)
    confluence_app = confluence_emulator.create_app()
    runners = []
    urls = {}
    for name, app in (("slack", slack_app), ("opentext", ot_app), ("confluence", confluence_app)):
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
    config = parse_config(
        config_for(urls["opentext"], urls["confluence"]),
        source="e2e",
        env={"OT_SECRET": OT_SECRET, "CONFLUENCE_TOKEN": confluence_emulator.DEFAULT_API_TOKEN},
    )
    service = await build_service(
        settings, config, clock=clock,
        engine_kwargs={"connect_args": database.connect_args} if database.connect_args else None, migrate=False,
    )  # fmt: skip
    wiring = await wire(service, settings, config, env={})
    bot_runner, bot_url = await start_app(service.web)
    driver = SlackDriver(bot_url + "/slack/events", SIGNING_SECRET, urls["slack"])
    bot = Bot(service, driver, slack_app, clock, None)  # type: ignore[arg-type]
    bot.extras = {"wiring": wiring, "database": database}  # type: ignore[attr-defined]
    bot.extras["opentext_app"] = ot_app  # type: ignore[attr-defined]
    yield bot, urls["opentext"]
    await driver.aclose()
    await bot_runner.cleanup()
    await service.stop(timeout=2)
    await wiring.aclose()
    for runner in runners:
        await runner.cleanup()


async def approve_twice(bot: Bot) -> Any:
    [message] = bot.channel()
    await bot.click("U_APP1", message, ActionId.APPROVE)
    await bot.settle()
    await bot.click("U_APP2", bot.channel()[0], ActionId.APPROVE)
    await bot.settle()
    return bot.channel()[0]


async def test_promotion_runs_end_to_end_and_is_documented(system):
    bot, _ = system
    await bot.driver.slash_command(
        "U_REQ", "/promote", f"{ARTIFACT} 2.4.0 test prod partner GLOBEX", channel_id="C_ORDERS"
    )
    await bot.settle()
    [message] = bot.channel()
    assert "2.3.0" in str(message.blocks), "the approval message shows the target's current version"
    message = await approve_twice(bot)
    request = await bot.request("PRM-1")
    assert request.status.value == "succeeded", request.failure_reason
    links = (request.result or {}).get("links", {})
    assert links, request.result
    thread = " ".join(bot.thread(message.ts))
    assert "Execution succeeded" in thread
    wiring = bot.extras["wiring"]  # type: ignore[attr-defined]
    confluence = wiring.registry.confluence("prod")
    page = await confluence.find_page("INT", next(iter(_titles(request))))
    assert page is not None and "2.4.0" in page.body
    checked, problem = await verify_chain(bot.service.runtime.deps.engine)
    # created, approval recorded, approved, execution started, execution succeeded
    assert problem is None and checked == 5


def _titles(request: Any) -> list[str]:
    from commands.promote import change_summary_title

    return [change_summary_title(request.human_id, request.parameters["artifact"], request.parameters["version"],
                                 request.parameters["to_env"])]  # fmt: skip


async def test_failed_opentext_job_fails_the_request_and_raises_an_alert(system):
    bot, ot_url = system
    async with httpx.AsyncClient() as client:
        assert (await client.post(ot_url + "/_control/opentext/fail-next-job", json={})).status_code < 300
    await bot.driver.slash_command("U_REQ", "/promote", f"{ARTIFACT} 2.4.0 test prod", channel_id="C_ORDERS")
    await bot.settle()
    await approve_twice(bot)
    request = await bot.request("PRM-1")
    assert request.status.value == "failed" and request.failure_reason
    wiring = bot.extras["wiring"]  # type: ignore[attr-defined]
    bot.clock.advance(timedelta(seconds=5))
    await wiring.alerts.tick()
    await bot.settle()
    alerts = bot.channel("C_ALERTS")
    assert alerts, "an alert is posted to #alerts"
    assert ARTIFACT in str(alerts[0].blocks) or ARTIFACT in alerts[0].text
    lock_count = await _count(bot, "target_locks")
    assert lock_count == 0, "nothing is left locked"
    # The alert's buttons reach the alert use cases (not a catch-all listener).
    from bot.ids import AlertActionId

    await bot.click("U_APP1", alerts[0], AlertActionId.ACKNOWLEDGE.value)
    await bot.settle()
    acknowledged = bot.channel("C_ALERTS")[0]
    assert "U_APP1" in str(acknowledged.blocks) and "cknowledged" in str(acknowledged.blocks)


async def _count(bot: Bot, table: str) -> int:
    async with bot.service.runtime.deps.engine.connect() as conn:
        return int((await conn.execute(text(f"SELECT count(*) FROM {table}"))).scalar() or 0)


async def test_rotation_through_slack_never_exposes_the_new_secret(system, caplog):
    from connectors.emulators.opentext import opentext_state_of

    caplog.set_level("DEBUG")
    bot, _ = system
    await bot.driver.slash_command(
        "U_REQ", "/rotate", "orders-edi-prod prod quarterly rotation", channel_id="C_ORDERS"
    )
    await bot.settle()
    [message] = bot.channel()
    await bot.click("U_APP1", message, ActionId.APPROVE)
    await bot.settle()
    request = await bot.request("ROT-1")
    assert request.status.value == "succeeded", request.failure_reason
    client = opentext_state_of(bot.extras["opentext_app"]).clients["orders-edi-prod"]  # type: ignore[attr-defined]
    new_secret = client.secret
    assert new_secret != "orders-edi-prod-secret-v1", "the rotation changed the secret"
    slack_text = str(
        [m.model_dump() for ch in bot.workspace.channel_ids() for m in bot.workspace.messages(ch)]
    )
    assert new_secret not in slack_text
    assert "hmac-sha256" in slack_text or "fingerprint" in slack_text.lower() or "ROT-1" in slack_text
    dumped = []
    async with bot.service.runtime.deps.engine.connect() as conn:
        for table in ("change_requests", "audit_events", "outbox", "jobs", "secret_versions", "approvals"):
            rows = (await conn.execute(text(f"SELECT * FROM {table}"))).all()
            dumped.append(repr(rows))
    assert new_secret not in "".join(dumped), "no database column holds the secret in clear text"
    assert new_secret not in caplog.text
    checked, problem = await verify_chain(bot.service.runtime.deps.engine)
    assert problem is None and checked >= 4


async def test_expiring_credentials_warn_their_owner_once(system):
    bot, _ = system
    wiring = bot.extras["wiring"]  # type: ignore[attr-defined]
    duty = next(f for f, _, name in bot.service.runtime._scheduled if name == "credential_duties")
    await duty()
    await duty()  # the next run must not repeat the warning
    await bot.settle()
    warnings = [m.text for m in bot.workspace.messages("C_ORDERS") if "orders-edi-prod" in m.text]
    assert len(warnings) == 1 and "expires in" in warnings[0]
    assert wiring is not None


async def test_break_glass_is_alerted_until_an_approver_reviews_it(system):
    bot, _ = system
    await bot.driver.slash_command("U_REQ", "/promote", f'{ARTIFACT} 2.4.0 test prod --emergency "orders stuck"',
                                   channel_id="C_ORDERS")  # fmt: skip
    await bot.settle()
    request = await bot.request("PRM-1")
    assert request.emergency and request.status.value == "succeeded", request.failure_reason
    duty = next(f for f, _, name in bot.service.runtime._scheduled if name == "break_glass_reviews")
    wiring = bot.extras["wiring"]  # type: ignore[attr-defined]
    bot.clock.advance(timedelta(hours=2))
    await duty()
    views, _ = await wiring.alerts.list_alerts()
    assert [v.title for v in views] == ["Break-glass change PRM-1 is past its review deadline"]
    own = await bot.driver.slash_command("U_REQ", "/ops", "review PRM-1 fine", channel_id="C_ORDERS")
    await bot.settle()
    assert any(
        "cannot review their own" in r["text"] for r in await bot.driver.responses(own.response_url_id)
    )
    review = await bot.driver.slash_command(
        "U_APP1", "/ops", "review PRM-1 checked the job log", channel_id="C_ORDERS"
    )
    await bot.settle()
    assert any("reviewed by" in r["text"] for r in await bot.driver.responses(review.response_url_id))
    await duty()
    views, _ = await wiring.alerts.list_alerts()
    assert views == [], "the review resolves the alert"
