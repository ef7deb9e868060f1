"""One Canto original streamed into iconik, an S3 bucket and an SFTP drop, proven by checksums."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from connectors.canto import CantoConnector, CantoSettings
from connectors.emulators import canto as canto_emulator
from connectors.emulators import iconik as iconik_emulator
from connectors.emulators.faults import start_app
from connectors.iconik import IconikConnector, IconikSettings
from connectors.s3 import S3Drop
from connectors.sftp import SftpDrop
from connectors.transfer import DeliveryItem, DigestingStream

VIDEO = "spring-launch-2025-hero-30s.mp4"
SIZE = 6 * 1024 * 1024 + 321  # more than one S3 part


@pytest.fixture
async def vendors() -> AsyncIterator[tuple[str, str, object]]:
    canto_app, iconik_app = canto_emulator.create_app(), iconik_emulator.create_app()
    canto_runner, canto_url = await start_app(canto_app)
    iconik_runner, iconik_url = await start_app(iconik_app)
    yield canto_url, iconik_url, iconik_app
    await iconik_runner.cleanup()
    await canto_runner.cleanup()


async def test_a_canto_original_arrives_whole_in_iconik_s3_and_sftp(
    vendors, s3_settings, sftp, sftp_settings
) -> None:
    canto_url, iconik_url, iconik_app = vendors
    asset_id = canto_emulator.seed_asset_id(VIDEO)
    async with httpx.AsyncClient(base_url=canto_url) as control:
        served = (await control.put(f"/_control/canto/originals/{asset_id}", json={"size": SIZE})).json()
    canto = CantoConnector(CantoSettings(base_url=canto_url, oauth_url=canto_url, app_id=canto_emulator.DEFAULT_APP_ID,
                                         app_secret=canto_emulator.DEFAULT_APP_SECRET))  # fmt: skip
    iconik = IconikConnector(IconikSettings(base_url=iconik_url, app_id=iconik_emulator.DEFAULT_APP_ID,
                                            auth_token=iconik_emulator.DEFAULT_AUTH_TOKEN))  # fmt: skip
    async with canto, iconik, S3Drop(s3_settings()) as s3:
        async with canto.open_original("video", asset_id) as download:
            upload = await iconik.upload_original(
                download.chunks, size=download.size, original_name=VIDEO, title=VIDEO,
                external_id=f"canto:video:{asset_id}", poll_interval=0.01,
            )  # fmt: skip
        receipts = []
        for drop in (s3, SftpDrop(sftp_settings())):
            async with canto.open_original("video", asset_id) as download:
                metered = DigestingStream(download.chunks)
                item = DeliveryItem(name=VIDEO, size=download.size, content_type=download.content_type)
                receipts.append(await drop.deliver(item, metered))
                assert metered.peak_chunk <= 64 * 1024

    received = iconik_emulator.iconik_domain_of(iconik_app).received[upload.file_id]
    assert received == {"size": SIZE, "sha256": served["sha256"], "md5": served["md5"]}
    assert [receipt.sha256 for receipt in receipts] == [served["sha256"]] * 2
    assert sftp.path_of("retailer-a", f"inbox/{VIDEO}").stat().st_size == SIZE


async def test_a_digesting_stream_can_be_read_only_once() -> None:
    async def two() -> AsyncIterator[bytes]:
        yield b"ab"
        yield b"c"

    stream = DigestingStream(two())
    assert [chunk async for chunk in stream] == [b"ab", b"c"]
    assert (stream.size, stream.peak_chunk) == (3, 2)
    with pytest.raises(RuntimeError, match="only once"):
        [chunk async for chunk in stream]
