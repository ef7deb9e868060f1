"""SFTP partner drop (asyncssh): streamed upload into the partner's directory, remove to revoke.

Each partner has its own account: a password or a private key, both arriving as SecretStr and
never logged. The server's host key is pinned (`host_key`); skipping the check has to be said
out loud (`insecure_skip_host_key_check`). A file is written as `name.part` and renamed when
whole, so the partner never picks up half a file; a failed write removes the partial file.

    drop = SftpDrop(SftpDropSettings(name="Social Agency", host=..., username=..., password=...))
    receipt = await drop.deliver(item, download.chunks)
"""

from __future__ import annotations

import posixpath
from collections.abc import AsyncIterable, Callable
from datetime import UTC, datetime
from typing import Any, Literal, Self

import asyncssh
from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from connectors.errors import AuthError, BadRequest, ConnectorError, Forbidden, NotFound, Unavailable
from connectors.transfer import DeliveryItem, DeliveryReceipt, DigestingStream

__all__ = ["PARTIAL_SUFFIX", "SftpDrop", "SftpDropSettings"]

PARTIAL_SUFFIX = ".part"


class SftpDropSettings(BaseModel):
    """One partner's SFTP account and directory; exactly one of password / private_key."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["sftp"] = "sftp"
    name: str = Field(min_length=1, description="the destination's name, e.g. 'Social Agency'")
    host: str
    port: int = Field(22, ge=1, le=65535)
    username: str = Field(min_length=1)
    password: SecretStr | None = None
    private_key: SecretStr | None = Field(None, description="OpenSSH or PEM private key text")
    private_key_passphrase: SecretStr | None = None
    directory: str = Field(".", description="the partner's drop directory")
    host_key: str | None = Field(None, description="the server's public host key, e.g. 'ssh-ed25519 AAAA...'")
    insecure_skip_host_key_check: bool = False
    connect_timeout: float = Field(10.0, gt=0)

    @model_validator(mode="after")
    def _one_credential_and_a_known_host(self) -> Self:
        if (self.password is None) == (self.private_key is None):
            raise ValueError("give exactly one of password or private_key")
        if self.host_key is None and not self.insecure_skip_host_key_check:
            raise ValueError("pin the server's host_key (or set insecure_skip_host_key_check)")
        return self


def _utc_now() -> datetime:
    return datetime.now(UTC)


class SftpDrop:
    """A PartnerDrop writing into an SFTP directory; connects per call, holds nothing open."""

    vendor = "sftp"
    kind: Literal["sftp"] = "sftp"
    accepts_bytes = True

    def __init__(self, settings: SftpDropSettings, *, now: Callable[[], datetime] = _utc_now) -> None:
        self.settings = settings
        self._now = now

    @property
    def name(self) -> str:
        """The destination's name."""
        return self.settings.name

    async def aclose(self) -> None:
        """Nothing stays open between calls."""

    def path_for(self, name: str) -> str:
        """The remote path a file called `name` gets in the partner's directory."""
        if not name or "/" in name or name in (".", "..") or name.endswith(PARTIAL_SUFFIX):
            raise ValueError(f"not a plain file name: {name!r}")
        return posixpath.join(self.settings.directory, name)

    def _connect_options(self) -> dict[str, Any]:
        settings = self.settings
        options: dict[str, Any] = {
            "host": settings.host,
            "port": settings.port,
            "username": settings.username,
            "connect_timeout": settings.connect_timeout,
            "agent_path": None,  # only the configured credential, never an agent's keys
            "known_hosts": None,
        }
        if settings.host_key is not None:
            options["known_hosts"] = ([asyncssh.import_public_key(settings.host_key)], [], [])
        if settings.password is not None:
            options["password"] = settings.password.get_secret_value()
            options["client_keys"] = None
        else:
            assert settings.private_key is not None
            passphrase = settings.private_key_passphrase
            key = asyncssh.import_private_key(
                settings.private_key.get_secret_value(),
                passphrase.get_secret_value() if passphrase else None,
            )
            options["client_keys"] = [key]
            options["password"] = None
        return options

    def _error(self, exc: Exception, operation: str, path: str) -> ConnectorError:
        where = f"sftp://{self.settings.host}:{self.settings.port}{posixpath.join('/', path)}"
        common: dict[str, Any] = {"vendor": self.vendor, "method": operation, "url": where}
        if isinstance(exc, asyncssh.PermissionDenied):
            return AuthError(f"the server refused user {self.settings.username!r}", **common)
        if isinstance(exc, asyncssh.HostKeyNotVerifiable):
            return AuthError("the server's host key does not match the pinned host_key", **common)
        if isinstance(exc, asyncssh.SFTPError):
            detail = f"{exc.reason or type(exc).__name__} (SFTP status {exc.code})"
            if isinstance(exc, asyncssh.SFTPNoSuchFile | asyncssh.SFTPNoSuchPath):
                return NotFound(detail, **common)
            if isinstance(exc, asyncssh.SFTPPermissionDenied | asyncssh.SFTPWriteProtect):
                return Forbidden(detail, **common)
            if isinstance(exc, asyncssh.SFTPConnectionLost | asyncssh.SFTPNoConnection):
                return Unavailable(detail, **common)
            return BadRequest(detail, **common)
        return Unavailable(f"{type(exc).__name__}: {exc}", **common)

    async def deliver(
        self, item: DeliveryItem, chunks: AsyncIterable[bytes] | None = None
    ) -> DeliveryReceipt:
        """Write the bytes to `directory/name` (via `name.part`, renamed when complete)."""
        if chunks is None:
            raise ValueError("an SFTP drop needs the file's bytes")
        final = self.path_for(item.name)
        partial = final + PARTIAL_SUFFIX
        metered = DigestingStream(chunks)
        operation = "connect"
        try:
            async with asyncssh.connect(**self._connect_options()) as conn, conn.start_sftp_client() as sftp:
                operation = "makedirs"
                await sftp.makedirs(self.settings.directory, exist_ok=True)
                operation = "write"
                try:
                    async with sftp.open(partial, "wb") as remote:
                        async for chunk in metered:
                            await remote.write(chunk)
                    if metered.size != item.size:
                        raise BadRequest(
                            f"the byte stream had {metered.size} bytes, {item.size} were declared; "
                            "nothing was published",
                            vendor=self.vendor, method="write", url=partial,
                        )  # fmt: skip
                    operation = "rename"
                    await sftp.posix_rename(partial, final)
                except BaseException:
                    await self._remove_quietly(sftp, partial)
                    raise
                operation = "stat"
                stored = (await sftp.stat(final)).size
        except (OSError, asyncssh.Error) as exc:
            raise self._error(exc, operation, final) from exc
        if stored != metered.size:
            raise Unavailable(
                f"the server holds {stored} bytes of the {metered.size} sent", vendor=self.vendor,
                method="stat", url=final,
            )  # fmt: skip
        return DeliveryReceipt(
            kind="sftp",
            destination=self.name,
            location=final,
            delivered_at=self._now(),
            size=metered.size,
            sha256=metered.sha256,
        )

    @staticmethod
    async def _remove_quietly(sftp: asyncssh.SFTPClient, path: str) -> None:
        try:
            await sftp.remove(path)
        except (OSError, asyncssh.Error):
            pass  # the write's own error is the one to report

    async def revoke(self, receipt: DeliveryReceipt) -> None:
        """Remove the delivered file; a file already gone counts as revoked."""
        try:
            async with asyncssh.connect(**self._connect_options()) as conn, conn.start_sftp_client() as sftp:
                try:
                    await sftp.remove(receipt.location)
                except asyncssh.SFTPNoSuchFile:
                    return
        except (OSError, asyncssh.Error) as exc:
            raise self._error(exc, "remove", receipt.location) from exc

    async def exists(self, receipt: DeliveryReceipt) -> bool:
        """Whether the delivered file is still in the partner's directory."""
        try:
            async with asyncssh.connect(**self._connect_options()) as conn, conn.start_sftp_client() as sftp:
                return bool(await sftp.exists(receipt.location))
        except (OSError, asyncssh.Error) as exc:
            raise self._error(exc, "stat", receipt.location) from exc
