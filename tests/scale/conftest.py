"""Fixtures for tests that run `opsgate` as real processes: emulators, databases, process groups.

The emulators run in the test's own event loop (so assertions can read their state directly);
the bot runs in child processes that reach them over loopback HTTP, as a deployment would.
PostgreSQL tests get a DATABASE of their own (children read DATABASE_URL and cannot set a
search_path), created through the superuser and dropped afterwards.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp import web
from cryptography.fernet import Fernet

from bot.emulators.slack import SlackChannel, SlackUser
from bot.emulators.slack import create_app as create_slack
from bot.emulators.slack_control import workspace_of
from bot.emulators.slack_seed import DEFAULT_BOT_TOKEN, DEFAULT_CHANNELS, DEFAULT_USERS
from bot.emulators.slack_state import SlackWorkspace
from connectors.emulators import opentext as opentext_emulator
from connectors.emulators.faults import start_app

from ..conftest import PG_URL, run_in_fresh_loop
from .processes import OpsgateProcesses

SIGNING_SECRET = "scale-signing-secret-0123456789abcdef"
OT_SECRET = "opsgate-svc-secret"  # the emulator's seeded service client
ADMIN_URL = PG_URL.rsplit("/", 1)[0] + "/postgres"


@dataclass
class Emulators:
    slack_app: web.Application
    slack_url: str
    opentext_app: web.Application
    opentext_url: str

    @property
    def workspace(self) -> SlackWorkspace:
        return workspace_of(self.slack_app)

    @property
    def opentext(self) -> opentext_emulator.OpenTextState:
        return opentext_emulator.opentext_state_of(self.opentext_app)


def extra_channels(*ids: str) -> tuple[SlackChannel, ...]:
    return (*DEFAULT_CHANNELS, *(SlackChannel(id=i, name=i.lower().replace("_", "-")) for i in ids))


def extra_users(*ids: str) -> tuple[SlackUser, ...]:
    return (*DEFAULT_USERS, *(SlackUser(id=i, name=i.lower().replace("_", ".")) for i in ids))


async def start_emulators(
    channels: tuple[SlackChannel, ...] = DEFAULT_CHANNELS,
    users: tuple[SlackUser, ...] = DEFAULT_USERS,
    *,
    job_polls_to_finish: int = 1,
) -> tuple[Emulators, list[web.AppRunner]]:
    # The bot is under test, not Slack's or OpenText's throttling: both limits are lifted.
    slack_app = create_slack(channels=channels, users=users, per_channel_rate=100_000.0, burst=100_000)
    opentext_app = opentext_emulator.create_app(
        job_polls_to_finish=job_polls_to_finish, job_seconds_per_step=None, rate_per_second=None
    )
    slack_runner, slack_url = await start_app(slack_app)
    opentext_runner, opentext_url = await start_app(opentext_app)
    return Emulators(slack_app, slack_url, opentext_app, opentext_url), [slack_runner, opentext_runner]


def opentext_settings(url: str) -> dict[str, object]:
    return {
        "base_url": url, "token_base_url": url, "tenant_id": "acme-integration",
        "client_id": "opsgate-svc", "client_secret": "${OT_SECRET}", "job_poll_interval": 0.05,
        "http": {"max_retries": 2, "backoff_initial": 0.05, "max_concurrency": 50},
    }  # fmt: skip


def process_env(database_url: str, slack_url: str, **extra: str) -> dict[str, str]:
    """What every child gets: where things are, and the secrets (never in the YAML file)."""
    return {
        "DATABASE_URL": database_url,
        "SLACK_API_URL": slack_url + "/api/",
        "SLACK_BOT_TOKEN": DEFAULT_BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "OPSGATE_SECRET_KEY": Fernet.generate_key().decode(),
        "OT_SECRET": OT_SECRET,
        **extra,
    }


@pytest.fixture
def processes_dir(tmp_path: Path) -> Path:
    workdir = tmp_path / "opsgate"
    workdir.mkdir()
    return workdir


@pytest.fixture
async def process_group() -> AsyncIterator[list[OpsgateProcesses]]:
    """Collects the OpsgateProcesses a test starts and kills every child at the end, pass or fail."""
    groups: list[OpsgateProcesses] = []
    try:
        yield groups
    finally:
        for group in groups:
            group.close()


async def _create_database(name: str) -> str | None:
    import asyncpg

    dsn = ADMIN_URL.replace("postgresql+asyncpg://", "postgresql://")
    try:
        conn = await asyncio.wait_for(asyncpg.connect(dsn), timeout=3)
    except Exception as exc:  # any failure means "not reachable here"
        return f"{type(exc).__name__}: {exc}"
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return None


async def _drop_database(name: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(ADMIN_URL.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture
def pg_database() -> Iterator[str]:
    """The SQLAlchemy URL of a fresh, empty PostgreSQL database, dropped after the test."""
    name = f"opsgate_l_{secrets.token_hex(4)}"
    problem = run_in_fresh_loop(lambda: _create_database(name))
    if problem:
        pytest.skip(
            f"PostgreSQL not reachable at {ADMIN_URL} ({problem}); start it to run multi-process tests"
        )
    try:
        yield f"{PG_URL.rsplit('/', 1)[0]}/{name}"
    finally:
        run_in_fresh_loop(lambda: _drop_database(name))
