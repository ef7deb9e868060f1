"""The daily end-of-life sweep: owners hear about expired and expiring Canto assets once a day."""

from __future__ import annotations

from pathlib import Path

from bot.config.opsgate import Settings, parse_config
from bot.domain.requests import FrozenClock
from bot.emulators.slack import create_app as create_slack
from bot.emulators.slack_control import workspace_of
from bot.emulators.slack_seed import DEFAULT_BOT_TOKEN
from bot.wiring.root import wire
from bot.wiring.service import build_service
from connectors.emulators import canto as canto_emulator
from connectors.emulators.faults import start_app

from .conftest import SIGNING_SECRET, settle_runtime


async def test_end_of_life_notifies_owners_once_a_day(database, tmp_path: Path):
    clock = FrozenClock()
    slack_app = create_slack(clock=lambda: clock().timestamp())
    slack_runner, slack_url = await start_app(slack_app)
    canto_runner, canto_url = await start_app(canto_emulator.create_app())
    canto = {"base_url": canto_url, "oauth_url": canto_url, "app_id": canto_emulator.DEFAULT_APP_ID,
             "app_secret": "${CANTO_SECRET}", "http": {"max_retries": 0}}  # fmt: skip
    config = parse_config(
        {
            "environments": {"prod": {"canto": canto}},
            "slack": {"approvals_channel": "C_APPROVALS", "alerts_channel": "C_ALERTS"},
            "archive": {"environment": "prod", "method": "archive_status"},
            "policies": [
                {
                    "name": "archive",
                    "action": "archive",
                    "environment": "prod",
                    "approvers": {"users": ["U_APP1"]},
                }
            ],
        },
        source="e2e",
        env={"CANTO_SECRET": canto_emulator.DEFAULT_APP_SECRET},
    )
    settings = Settings(database_url=database.url, slack_bot_token=DEFAULT_BOT_TOKEN,
                        slack_signing_secret=SIGNING_SECRET, slack_api_url=slack_url + "/api/",
                        opsgate_secret_key_file=tmp_path / "key")  # fmt: skip
    service = await build_service(
        settings, config, clock=clock, migrate=False,
        engine_kwargs={"connect_args": database.connect_args} if database.connect_args else None,
    )  # fmt: skip
    wiring = await wire(service, settings, config, env={})
    try:
        duty = next(f for f, _, name in service.runtime._scheduled if name == "end_of_life")
        await duty()
        await duty()  # the same day: no second notice, no second request
        await settle_runtime(service.runtime, clock)
        notices = [
            m.text for m in workspace_of(slack_app).messages("C_ALERTS") if "end of their rights" in m.text
        ]
        assert notices and len(notices) == len(set(notices)), notices
        assert any("expired" in text for text in notices)
        # Archive requests need iconik too (ArchiveWorkflow's pre-check); tests/commands/test_lifecycle.py
        # covers them against the iconik emulator.
    finally:
        await service.stop(timeout=1)
        await wiring.aclose()
        await canto_runner.cleanup()
        await slack_runner.cleanup()
