"""An SFTP server for tests and the demo: asyncssh with an SFTP subsystem rooted at a directory.

Each partner account (password and/or authorized public keys) is chrooted into `root/<user>`,
so a partner sees only its own drop. The host key is generated at start; `host_key` is its
public half, for clients to pin. Tests reach into the files on disk (`path_of`) to prove what
arrived, and can make an account refuse writes or cap the bytes a file may hold.

    sftp = await serve()                 # seeded accounts, a temporary root
    sftp.accounts["retailer-a"].password
    await sftp.close()
"""

from __future__ import annotations

import hmac
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncssh

__all__ = ["SEEDED_ACCOUNTS", "SftpAccount", "SftpEmulator", "serve"]


@dataclass
class SftpAccount:
    """A partner's login: a password, public keys (OpenSSH lines), or both."""

    username: str
    password: str | None = field(default=None, repr=False)
    authorized_keys: list[str] = field(default_factory=list)
    refuse_writes: bool = False
    max_file_bytes: int | None = None


SEEDED_ACCOUNTS = (
    SftpAccount("retailer-a", password="retailer-a-drop-password"),
    SftpAccount("social-agency", password="social-agency-drop-password"),
)


class _PartnerLogin(asyncssh.SSHServer):
    def __init__(self, accounts: Mapping[str, SftpAccount]) -> None:
        self._accounts = accounts

    def begin_auth(self, username: str) -> bool:
        return True  # always ask for credentials

    def password_auth_supported(self) -> bool:
        return True

    def validate_password(self, username: str, password: str) -> bool:
        account = self._accounts.get(username)
        if account is None or account.password is None:
            return False
        return hmac.compare_digest(password.encode(), account.password.encode())

    def public_key_auth_supported(self) -> bool:
        return True

    def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        account = self._accounts.get(username)
        if account is None:
            return False
        wanted = key.export_public_key().decode().split()[:2]
        return any(line.split()[:2] == wanted for line in account.authorized_keys)


class _PartnerDirectory(asyncssh.SFTPServer):
    """The SFTP subsystem of one login, chrooted into its directory, with the account's limits."""

    def __init__(self, chan: asyncssh.SSHServerChannel[Any], account: SftpAccount, root: Path) -> None:
        home = root / account.username
        home.mkdir(parents=True, exist_ok=True)
        super().__init__(chan, chroot=str(home).encode())
        self._account = account

    def open(self, path: bytes, pflags: int, attrs: asyncssh.SFTPAttrs) -> object:
        if self._account.refuse_writes and pflags & (asyncssh.FXF_WRITE | asyncssh.FXF_CREAT):
            raise asyncssh.SFTPPermissionDenied("writes are refused for this account")
        return super().open(path, pflags, attrs)

    def write(self, file_obj: object, offset: int, data: bytes) -> int:
        limit = self._account.max_file_bytes
        if limit is not None and offset + len(data) > limit:
            raise asyncssh.SFTPQuotaExceeded(f"a file may hold at most {limit} bytes here")
        written = super().write(file_obj, offset, data)
        assert isinstance(written, int)
        return written


@dataclass
class SftpEmulator:
    """A running SFTP server: where it listens, its host key, accounts and files on disk."""

    host: str
    port: int
    root: Path
    host_key: str
    accounts: dict[str, SftpAccount]
    _acceptor: asyncssh.SSHAcceptor = field(repr=False)
    _owns_root: bool = field(default=False, repr=False)

    @property
    def url(self) -> str:
        """sftp://host:port"""
        return f"sftp://{self.host}:{self.port}"

    def path_of(self, username: str, remote_path: str) -> Path:
        """Where a file a partner sees at `remote_path` lies on disk."""
        return self.root / username / remote_path.lstrip("/")

    async def close(self) -> None:
        """Stop listening, end open sessions and remove a temporary root."""
        self._acceptor.close()
        await self._acceptor.wait_closed()
        if self._owns_root:
            shutil.rmtree(self.root, ignore_errors=True)


async def serve(
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    seed: bool = True,
    root: Path | None = None,
    accounts: Iterable[SftpAccount] = (),
) -> SftpEmulator:
    """Start an SFTP server; seeded, the partner accounts of SEEDED_ACCOUNTS exist too."""
    owns_root = root is None
    base = Path(tempfile.mkdtemp(prefix="opsgate-sftp-")) if root is None else root
    table = {a.username: a for a in (*(SEEDED_ACCOUNTS if seed else ()), *accounts)}
    table = {name: SftpAccount(**vars(account)) for name, account in table.items()}  # own copies
    host_key = asyncssh.generate_private_key("ssh-ed25519")

    def directory(chan: asyncssh.SSHServerChannel[Any]) -> asyncssh.SFTPServer:
        return _PartnerDirectory(chan, table[chan.get_extra_info("username")], base)

    acceptor = await asyncssh.create_server(
        lambda: _PartnerLogin(table),
        host,
        port,
        server_host_keys=[host_key],
        sftp_factory=directory,
        allow_scp=False,
    )
    return SftpEmulator(
        host=host,
        port=acceptor.get_port(),
        root=base,
        host_key=host_key.export_public_key().decode().strip(),
        accounts=table,
        _acceptor=acceptor,
        _owns_root=owns_root,
    )
