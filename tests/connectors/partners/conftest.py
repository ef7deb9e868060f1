"""Real servers for the partner destinations: moto's S3 server, an asyncssh SFTP server, the portal."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import pytest
from aiohttp import web

from connectors.emulators import portal as portal_emulator
from connectors.emulators import s3 as s3_emulator
from connectors.emulators import sftp as sftp_emulator
from connectors.emulators.faults import start_app
from connectors.portal import PortalWebhook, PortalWebhookSettings
from connectors.s3 import MIN_PART_SIZE, S3Drop, S3DropSettings
from connectors.sftp import SftpDropSettings


async def chunks_of(data: bytes, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    for offset in range(0, len(data), size):
        yield data[offset : offset + size]


@pytest.fixture(scope="session")
def moto() -> Iterator[s3_emulator.S3Emulator]:
    """One moto server for the session (it starts in about a second); tests use their own buckets."""
    emulator = s3_emulator.start()
    yield emulator
    emulator.server.stop()


@pytest.fixture
async def bucket(moto: s3_emulator.S3Emulator) -> str:
    name = f"drop-{secrets.token_hex(4)}"
    await s3_emulator.create_buckets(moto, [name])
    return name


@pytest.fixture
def s3_settings(moto: s3_emulator.S3Emulator, bucket: str):
    def build(**overrides: object) -> S3DropSettings:
        values: dict[str, object] = {
            "name": "Retailer A",
            "bucket": bucket,
            "prefix": "retailer-a/inbox",
            "endpoint_url": moto.url,
            "access_key_id": moto.access_key_id,
            "secret_access_key": moto.secret_access_key,
            "part_size": MIN_PART_SIZE,
            "max_attempts": 1,
        }
        values.update(overrides)
        return S3DropSettings.model_validate(values)

    return build


@pytest.fixture
async def s3_drop(s3_settings) -> AsyncIterator[S3Drop]:
    async with S3Drop(s3_settings()) as drop:
        yield drop


@pytest.fixture
async def sftp() -> AsyncIterator[sftp_emulator.SftpEmulator]:
    server = await sftp_emulator.serve()
    yield server
    await server.close()


@pytest.fixture
def sftp_settings(sftp: sftp_emulator.SftpEmulator):
    def build(**overrides: object) -> SftpDropSettings:
        account = sftp.accounts["retailer-a"]
        values: dict[str, object] = {
            "name": "Retailer A",
            "host": sftp.host,
            "port": sftp.port,
            "username": account.username,
            "password": account.password,
            "directory": "inbox",
            "host_key": sftp.host_key,
            "connect_timeout": 5,
        }
        values.update(overrides)
        return SftpDropSettings.model_validate(values)

    return build


class Clock:
    """Unix time the portal emulator and the signer share; tests move it."""

    def __init__(self) -> None:
        self.now = 1_741_597_200.0

    def __call__(self) -> float:
        return self.now


@dataclass
class PortalWorld:
    app: web.Application
    url: str
    clock: Clock

    @property
    def state(self) -> portal_emulator.PortalState:
        return portal_emulator.portal_state_of(self.app)

    def settings(self, **overrides: object) -> PortalWebhookSettings:
        values: dict[str, object] = {
            "name": "Retailer A portal",
            "url": f"{self.url}{portal_emulator.PUBLICATIONS_PATH}",
            "secret": portal_emulator.DEFAULT_SECRET,
            "http": {"max_retries": 0},
        }
        values.update(overrides)
        return PortalWebhookSettings.model_validate(values)

    def connector(self, **overrides: object) -> PortalWebhook:
        return PortalWebhook(self.settings(**overrides), clock=self.clock)


@pytest.fixture
async def portal() -> AsyncIterator[PortalWorld]:
    clock = Clock()
    app = portal_emulator.create_app(clock=clock)
    runner, url = await start_app(app)
    yield PortalWorld(app=app, url=url, clock=clock)
    await runner.cleanup()
