"""Destinations are chosen per entry by `kind`, and serve_all starts every partner-drop server."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from connectors.destinations import open_destination, parse_destination
from connectors.emulators import serve_all
from connectors.portal import PortalWebhook
from connectors.s3 import S3Drop
from connectors.sftp import SftpDrop
from connectors.transfer import DeliveryItem

from .conftest import chunks_of

S3 = {
    "kind": "s3",
    "name": "Retailer A",
    "bucket": "partner-drops",
    "access_key_id": "k",
    "secret_access_key": "s",
}
SFTP = {
    "kind": "sftp",
    "name": "Agency",
    "host": "h",
    "username": "u",
    "password": "p",
    "host_key": "ssh-ed25519 AAAA",
}
PORTAL = {
    "kind": "portal_webhook",
    "name": "Portal",
    "url": "https://portal.example/api/publications",
    "secret": "x",
}


@pytest.mark.parametrize(("entry", "kind"), [(S3, S3Drop), (SFTP, SftpDrop), (PORTAL, PortalWebhook)])
async def test_each_kind_builds_its_own_connector(entry, kind) -> None:
    drop = open_destination(parse_destination(entry))
    try:
        assert isinstance(drop, kind)
        assert drop.kind == entry["kind"] and drop.name == entry["name"]
        assert drop.accepts_bytes is (kind is not PortalWebhook)
    finally:
        await drop.aclose()


def test_an_unknown_kind_is_refused_naming_the_allowed_ones() -> None:
    with pytest.raises(ValidationError) as caught:
        parse_destination({"kind": "ftp", "name": "Legacy"})
    assert "'s3', 'sftp', 'portal_webhook'" in str(caught.value)


def test_a_missing_field_is_named() -> None:
    with pytest.raises(ValidationError, match=r"sftp\.host\n  Field required"):
        parse_destination({key: value for key, value in SFTP.items() if key != "host"})


def test_secrets_never_show_in_the_settings_repr() -> None:
    text = repr(parse_destination({**S3, "secret_access_key": "wJalrXUtnFEMI"})) + repr(
        parse_destination({**SFTP, "password": "hunter2"})
    )
    assert "wJalrXUtnFEMI" not in text and "hunter2" not in text


async def test_serve_all_starts_the_portal_and_on_request_the_s3_and_sftp_servers() -> None:
    running = await serve_all(partner_drops=True)
    try:
        assert "portal" in running.urls
        s3, sftp = running.servers["s3"], running.servers["sftp"]
        assert s3.url.startswith("http://") and sftp.url.startswith("sftp://")
        drop = S3Drop(
            parse_destination(
                {**S3, "endpoint_url": s3.url, "access_key_id": s3.access_key_id,  # type: ignore[attr-defined]
                 "secret_access_key": s3.secret_access_key}  # type: ignore[attr-defined]
            )  # type: ignore[arg-type]
        )  # fmt: skip
        async with drop:
            receipt = await drop.deliver(DeliveryItem(name="a.txt", size=2), chunks_of(b"hi"))
            assert await drop.exists(receipt)
        account = sftp.accounts["retailer-a"]  # type: ignore[attr-defined]
        sftp_drop = open_destination(
            parse_destination(
                {**SFTP, "host": sftp.host, "port": sftp.port, "username": account.username,  # type: ignore[attr-defined]
                 "password": account.password, "host_key": sftp.host_key}  # type: ignore[attr-defined]
            )
        )  # fmt: skip
        await sftp_drop.deliver(DeliveryItem(name="a.txt", size=2), chunks_of(b"hi"))
        assert sftp.path_of("retailer-a", "a.txt").read_bytes() == b"hi"  # type: ignore[attr-defined]
    finally:
        await running.close()


async def test_serve_all_leaves_the_partner_drop_servers_off_by_default() -> None:
    running = await serve_all()
    try:
        assert running.servers == {}
    finally:
        await running.close()
