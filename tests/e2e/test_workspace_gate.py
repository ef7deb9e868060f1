"""A configured allowed_team_ids refuses other workspaces and records nothing."""

from __future__ import annotations

import copy
from pathlib import Path

from sqlalchemy import func, select

from bot.config.opsgate import Settings, parse_config
from bot.db.models import Job
from bot.emulators.slack import create_app as create_slack
from bot.emulators.slack_driver import SlackDriver
from bot.emulators.slack_seed import DEFAULT_BOT_TOKEN
from bot.wiring.service import build_service
from connectors.emulators.faults import start_app

from .conftest import CONFIG, SIGNING_SECRET


async def test_other_workspaces_are_refused_and_nothing_is_recorded(database, tmp_path: Path):
    slack_runner, slack_url = await start_app(create_slack())
    config = copy.deepcopy(CONFIG)
    config["slack"]["allowed_team_ids"] = ["T_OURS"]
    settings = Settings(database_url=database.url, slack_bot_token=DEFAULT_BOT_TOKEN,
                        slack_signing_secret=SIGNING_SECRET, slack_api_url=slack_url + "/api/",
                        opsgate_secret_key_file=tmp_path / "key")  # fmt: skip
    service = await build_service(
        settings, parse_config(config, source="e2e", env={}), migrate=False,
        engine_kwargs={"connect_args": database.connect_args} if database.connect_args else None,
    )  # fmt: skip
    bot_runner, bot_url = await start_app(service.web)
    try:
        async with SlackDriver(
            bot_url + "/slack/events", SIGNING_SECRET, slack_url, team_id="T0001"
        ) as driver:
            result = await driver.slash_command("U_REQ", "/promote", "orders-api 1.4.0 test prod")
            assert result.status == 200
            assert "not enabled for this workspace" in result.json()["text"]
        async with service.runtime.deps.sessions() as session:
            assert await session.scalar(select(func.count()).select_from(Job)) == 0
    finally:
        await bot_runner.cleanup()
        await service.stop(timeout=1)
        await slack_runner.cleanup()
