"""The directory of signed audit digests: one JSON file per digest, written once, never replaced.

    digest-000000000001.json      digest 1 (the number is the digest's `digest_seq`)
    digest-000000000002.json      ...
    public-key-<16 hex>.pem       the public key of each signing key (its key id's hex)

A digest is written to a temporary file, flushed to disk, then hard-linked to its final name,
which fails if the name exists: a digest is never overwritten, and two writers racing for the
same number cannot both win. The directory should live where the database's users cannot
write (another host, an object store with object lock); see docs/audit-digests.md.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from bot.domain.audit_digest import (
    AuditDigest,
    DigestFile,
    DigestFinding,
    DigestFormatError,
    DigestKeyError,
    FindingKind,
    key_id_of,
    load_public_key,
)

__all__ = ["DigestDirectory", "DigestDirectoryError", "DigestExists", "DigestReading"]

_DIGEST_NAME = re.compile(r"^digest-(\d{12})\.json$")
_KEY_NAME = re.compile(r"^public-key-([0-9a-f]{16})\.pem$")


class DigestDirectoryError(Exception):
    """The directory cannot be read or written; the message names the path and the reason."""


class DigestExists(DigestDirectoryError):
    """A digest with this number is already there (another process wrote it first)."""


@dataclass
class DigestReading:
    """Everything in the directory: digests that parse, keys, and what could not be read."""

    files: list[DigestFile] = field(default_factory=list)
    keys: dict[str, Ed25519PublicKey] = field(default_factory=dict)
    problems: list[DigestFinding] = field(default_factory=list)


class DigestDirectory:
    def __init__(self, path: Path) -> None:
        self.path = path

    def __repr__(self) -> str:
        return f"DigestDirectory({str(self.path)!r})"

    @staticmethod
    def file_name(digest_seq: int) -> str:
        return f"digest-{digest_seq:012d}.json"

    def numbers(self) -> list[int]:
        """The digest numbers present, ascending (none if the directory does not exist yet)."""
        if not self.path.exists():
            return []
        return sorted(int(m.group(1)) for m in map(_DIGEST_NAME.match, self._names()) if m)

    def load(self, digest_seq: int) -> AuditDigest:
        """Digest `digest_seq`; DigestDirectoryError if it cannot be read or is not that digest."""
        name = self.file_name(digest_seq)
        digest = self._parse(name)
        if digest.digest_seq != digest_seq:
            raise DigestDirectoryError(
                f"{self.path / name}: holds digest {digest.digest_seq}, not {digest_seq}"
            )
        return digest

    def newest(self) -> AuditDigest | None:
        """The digest with the highest number (None: none yet)."""
        numbers = self.numbers()
        return self.load(numbers[-1]) if numbers else None

    def write(self, digest: AuditDigest) -> Path:
        """Write `digest` under its own number, durably; raises DigestExists if it is taken."""
        final = self.path / self.file_name(digest.digest_seq)
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            document = orjson.dumps(digest.document(), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)
            self._create(final, document + b"\n")
        except FileExistsError:
            raise DigestExists(f"{final} exists already") from None
        except OSError as exc:
            raise DigestDirectoryError(f"cannot write {final}: {exc.strerror or exc}") from None
        return final

    def write_public_key(self, public_key: Ed25519PublicKey, pem: str) -> Path:
        """Publish the verifying key next to the digests, once per key."""
        path = self.path / f"public-key-{key_id_of(public_key).removeprefix('ed25519:')}.pem"
        if path.exists():
            return path
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            self._create(path, pem.encode())
        except FileExistsError:
            pass
        except OSError as exc:
            raise DigestDirectoryError(f"cannot write {path}: {exc.strerror or exc}") from None
        return path

    def read(self) -> DigestReading:
        """Every digest and key file; raises DigestDirectoryError if the directory is not there."""
        if not self.path.is_dir():
            reason = "is not a directory" if self.path.exists() else "does not exist"
            raise DigestDirectoryError(f"the digest directory {self.path} {reason}")
        reading = DigestReading()
        for name in sorted(self._names()):
            if match := _DIGEST_NAME.match(name):
                try:
                    reading.files.append(DigestFile(name, self.load(int(match.group(1)))))
                except DigestDirectoryError as exc:
                    reading.problems.append(DigestFinding(FindingKind.UNREADABLE, str(exc)))
            elif match := _KEY_NAME.match(name):
                try:
                    key = load_public_key((self.path / name).read_bytes())
                except (OSError, DigestKeyError) as exc:
                    reading.problems.append(
                        DigestFinding(FindingKind.UNREADABLE, f"{self.path / name}: {exc}")
                    )
                    continue
                if key_id_of(key) != f"ed25519:{match.group(1)}":
                    reading.problems.append(
                        DigestFinding(
                            FindingKind.UNREADABLE,
                            f"{self.path / name}: holds a different key ({key_id_of(key)})",
                        )
                    )
                    continue
                reading.keys[key_id_of(key)] = key
        return reading

    def _names(self) -> list[str]:
        try:
            return os.listdir(self.path)
        except OSError as exc:
            raise DigestDirectoryError(f"cannot list {self.path}: {exc.strerror or exc}") from None

    def _parse(self, name: str) -> AuditDigest:
        path = self.path / name
        try:
            document = orjson.loads(path.read_bytes())
        except OSError as exc:
            raise DigestDirectoryError(f"{path}: cannot be read: {exc.strerror or exc}") from None
        except orjson.JSONDecodeError as exc:
            raise DigestDirectoryError(f"{path}: not JSON ({exc})") from None
        try:
            return AuditDigest.from_document(document)
        except DigestFormatError as exc:
            raise DigestDirectoryError(f"{path}: not a digest: {exc}") from None

    def _create(self, final: Path, data: bytes) -> None:
        """Temporary file, fsync, hard link to `final` (fails if it exists), fsync the directory."""
        temporary = self.path / f".{final.name}.{secrets.token_hex(4)}.tmp"
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.link(temporary, final)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
        directory = os.open(self.path, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
