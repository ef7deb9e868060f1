"""SFTP partner drop against a real asyncssh server: per-partner logins, streaming, revoke, failures."""

from __future__ import annotations

import hashlib
import logging

import asyncssh
import pytest
from pydantic import ValidationError

from connectors.emulators.sftp import SftpAccount
from connectors.emulators.sftp import serve as serve_sftp
from connectors.errors import AuthError, BadRequest, Forbidden, Unavailable
from connectors.sftp import SftpDrop
from connectors.transfer import DeliveryItem

from .conftest import chunks_of

DATA = hashlib.sha256(b"seed").digest() * 40_000  # 1.28 MB


async def test_a_file_streams_into_the_partners_directory_and_arrives_whole(sftp, sftp_settings) -> None:
    drop = SftpDrop(sftp_settings())
    receipt = await drop.deliver(DeliveryItem(name="hero.mp4", size=len(DATA)), chunks_of(DATA))

    on_disk = sftp.path_of("retailer-a", "inbox/hero.mp4")
    assert on_disk.read_bytes() == DATA
    assert receipt.sha256 == hashlib.sha256(DATA).hexdigest()
    assert (receipt.kind, receipt.location, receipt.size) == ("sftp", "inbox/hero.mp4", len(DATA))
    assert list(on_disk.parent.iterdir()) == [on_disk]  # no .part left behind
    assert await drop.exists(receipt)


async def test_partners_are_chrooted_apart(sftp, sftp_settings) -> None:
    agency = sftp.accounts["social-agency"]
    drop = SftpDrop(sftp_settings(username=agency.username, password=agency.password, directory="."))
    await drop.deliver(DeliveryItem(name="cut.mp4", size=3), chunks_of(b"abc"))
    assert sftp.path_of("social-agency", "cut.mp4").read_bytes() == b"abc"
    assert not sftp.path_of("retailer-a", "cut.mp4").exists()


async def test_revoke_removes_the_file_and_twice_is_harmless(sftp, sftp_settings) -> None:
    drop = SftpDrop(sftp_settings())
    receipt = await drop.deliver(DeliveryItem(name="a.jpg", size=3), chunks_of(b"abc"))
    await drop.revoke(receipt)
    await drop.revoke(receipt)
    assert not sftp.path_of("retailer-a", "inbox/a.jpg").exists()
    assert not await drop.exists(receipt)


async def test_a_key_login_works_without_a_password(sftp_settings) -> None:
    key = asyncssh.generate_private_key("ssh-ed25519")
    account = SftpAccount("broadcast", authorized_keys=[key.export_public_key().decode()])
    server = await serve_sftp(seed=False, accounts=[account])
    try:
        drop = SftpDrop(
            sftp_settings(
                port=server.port, host_key=server.host_key, username="broadcast", password=None,
                private_key=key.export_private_key().decode(),
            )
        )  # fmt: skip
        await drop.deliver(DeliveryItem(name="x.mxf", size=3), chunks_of(b"xyz"))
        assert server.path_of("broadcast", "inbox/x.mxf").read_bytes() == b"xyz"
    finally:
        await server.close()


async def test_a_wrong_password_is_an_auth_error_that_never_shows_the_secret(sftp_settings, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    drop = SftpDrop(sftp_settings(password="guessed-wrong"))
    with pytest.raises(AuthError) as caught:
        await drop.deliver(DeliveryItem(name="a.jpg", size=3), chunks_of(b"abc"))
    assert (caught.value.vendor, caught.value.method) == ("sftp", "connect")
    assert "refused user 'retailer-a'" in str(caught.value)
    assert "guessed-wrong" not in str(caught.value) + caplog.text
    assert "guessed-wrong" not in repr(drop.settings)


async def test_a_server_with_another_host_key_is_refused(sftp_settings) -> None:
    other = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode()
    with pytest.raises(AuthError, match="host key does not match"):
        await SftpDrop(sftp_settings(host_key=other)).deliver(DeliveryItem(name="a", size=1), chunks_of(b"a"))


async def test_refused_writes_are_forbidden_and_leave_nothing(sftp, sftp_settings) -> None:
    sftp.accounts["retailer-a"].refuse_writes = True
    with pytest.raises(Forbidden) as caught:
        await SftpDrop(sftp_settings()).deliver(DeliveryItem(name="a.jpg", size=3), chunks_of(b"abc"))
    assert caught.value.method == "write" and "SFTP status 3" in str(caught.value)
    assert not any(sftp.path_of("retailer-a", "inbox").iterdir())


async def test_a_write_failing_midway_removes_the_partial_file(sftp, sftp_settings) -> None:
    sftp.accounts["retailer-a"].max_file_bytes = 200_000
    with pytest.raises(BadRequest, match="at most 200000 bytes"):
        await SftpDrop(sftp_settings()).deliver(DeliveryItem(name="big.mp4", size=len(DATA)), chunks_of(DATA))
    assert list(sftp.path_of("retailer-a", "inbox").iterdir()) == []


async def test_a_stream_shorter_than_declared_publishes_nothing(sftp, sftp_settings) -> None:
    with pytest.raises(BadRequest, match="had 3 bytes, 4 were declared"):
        await SftpDrop(sftp_settings()).deliver(DeliveryItem(name="a.jpg", size=4), chunks_of(b"abc"))
    assert list(sftp.path_of("retailer-a", "inbox").iterdir()) == []


async def test_an_unreachable_server_is_unavailable(sftp, sftp_settings) -> None:
    port = sftp.port
    await sftp.close()
    drop = SftpDrop(sftp_settings(port=port))
    with pytest.raises(Unavailable) as caught:
        await drop.deliver(DeliveryItem(name="a.jpg", size=3), chunks_of(b"abc"))
    assert caught.value.method == "connect"


def test_settings_need_one_credential_and_a_pinned_host_key(sftp_settings) -> None:
    with pytest.raises(ValidationError, match="exactly one of password or private_key"):
        sftp_settings(private_key="-----BEGIN OPENSSH PRIVATE KEY-----")
    with pytest.raises(ValidationError, match="pin the server's host_key"):
        sftp_settings(host_key=None)
    assert sftp_settings(host_key=None, insecure_skip_host_key_check=True).host_key is None


async def test_a_path_in_the_name_is_refused(sftp_settings) -> None:
    with pytest.raises(ValueError, match="not a plain file name"):
        await SftpDrop(sftp_settings()).deliver(
            DeliveryItem(name="../../etc/passwd", size=1), chunks_of(b"x")
        )
