"""Where opsgate keeps the secrets it rotates: a pluggable store with AWS-style version labels.

A secret has at most one version per label: `pending` (created, not yet verified), `current`
(what clients use) and `previous` (last known good, kept until revoked). Rotation writes the
new value with `put_pending`, verifies it, then `promote`s it: pending becomes current, current
becomes previous, and an older previous is destroyed.

    store = LocalSecretStore(sessions, keys=secret_key, fingerprints=fingerprinter)
    version = await store.put_pending("orders-edi-prod", SecretStr(new_value))
    await store.promote("orders-edi-prod", version)
    value = await store.get("orders-edi-prod")            # SecretStr, label "current"

Two implementations:
- `LocalSecretStore`: Fernet-encrypted rows of the `secret_versions` table (key: the process's
  OPSGATE_SECRET_KEY). The plaintext is bound to its row (name and version are encrypted with
  it), so copying ciphertext between rows is detected.
- `VaultKV2Store`: HashiCorp Vault KV v2 over HTTP (`/v1/{mount}/data|metadata|destroy/{path}`,
  header `X-Vault-Token`); labels are kept in the key's `custom_metadata`.

Values never appear in logs, exception messages or listings: listings carry keyed fingerprints.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Literal, Protocol, TypeAlias
from urllib.parse import quote

import httpx
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from sqlalchemy import Integer, String, Text, column, func, insert, select, table, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.types import DateTime

from connectors.auth import StaticHeaders
from connectors.errors import ConnectorError, NotFound
from connectors.http import HttpOptions, VendorClient, default_error_detail

__all__ = [
    "SECRET_NAME_PATTERN",
    "Fingerprints",
    "LocalSecretStore",
    "SecretLabel",
    "SecretNotFound",
    "SecretStore",
    "SecretStoreError",
    "SecretVersionInfo",
    "VaultKV2Store",
    "VaultSettings",
    "vault_error_detail",
]

SecretLabel: TypeAlias = Literal["pending", "current", "previous"]
LABELS: Final[tuple[SecretLabel, ...]] = ("pending", "current", "previous")
RETIRED: Final = "retired"
SECRET_NAME_PATTERN: Final = re.compile(r"^[a-z0-9][a-z0-9._-]{0,127}$")


# --- contract -------------------------------------------------------------------------------------


class SecretStoreError(Exception):
    """The store could not do what was asked; the message names the secret, never its value."""


class SecretNotFound(SecretStoreError):
    """No such secret, or no version carries the asked label."""

    def __init__(self, name: str, label: str | None = None, version: int | None = None) -> None:
        self.name = name
        self.label = label
        self.version = version
        if version is not None:
            message = f"version {version} of secret {name!r} does not exist (or was destroyed)"
        elif label is not None:
            message = f"secret {name!r} has no {label} version"
        else:
            message = f"there is no secret {name!r}"
        super().__init__(message)


@dataclass(frozen=True)
class SecretVersionInfo:
    """One live version as listings show it: never the value, only its keyed fingerprint."""

    name: str
    version: int
    label: SecretLabel
    fingerprint: str
    created_at: datetime | None


class Fingerprints(Protocol):
    """Keyed one-way fingerprints (bot.domain.audit.Fingerprinter fits)."""

    def fingerprint(self, secret: str | SecretStr) -> str: ...


class SecretStore(Protocol):
    """Versioned secrets with pending / current / previous labels."""

    async def put_pending(self, name: str, value: SecretStr) -> int:
        """Store `value` as the new pending version (replacing an unpromoted one); its version."""
        ...

    async def promote(self, name: str, version: int) -> None:
        """Pending `version` becomes current, current becomes previous; a no-op if already current."""
        ...

    async def get(self, name: str, label: SecretLabel = "current") -> SecretStr:
        """The value carrying `label`; SecretNotFound if none does."""
        ...

    async def revoke_previous(self, name: str) -> bool:
        """Destroy the previous version; False if there was none."""
        ...

    async def discard_pending(self, name: str) -> bool:
        """Destroy the pending version (a rotation was abandoned); False if there was none."""
        ...

    async def versions(self, name: str) -> list[SecretVersionInfo]:
        """Live versions, oldest first, with fingerprints only."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...


def _check_name(name: str) -> str:
    if not SECRET_NAME_PATTERN.fullmatch(name):
        raise SecretStoreError(
            f"secret names are lower-case letters, digits, '.', '_' and '-' (at most 128), got {name!r}"
        )
    return name


# --- local store (encrypted database rows) --------------------------------------------------------

# The table is declared by bot/db/secret_models.py (migrations, metadata); connectors do not import
# from bot/, so the store addresses it through a lightweight table clause with the same columns.
_versions = table(
    "secret_versions",
    column("id", Integer),
    column("name", String),
    column("version", Integer),
    column("label", String),
    column("ciphertext", Text),
    column("created_at", DateTime(timezone=True)),
)


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _as_utc(value: datetime | None) -> datetime | None:
    # SQLite hands back naive text-parsed datetimes; they were written in UTC.
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class LocalSecretStore:
    """Secrets as Fernet-encrypted rows of `secret_versions`; each call is its own transaction.

    `keys` is the OPSGATE_SECRET_KEY (a Fernet key), or several: the first encrypts, all decrypt,
    so the key can be rotated by prepending a new one.
    """

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        keys: bytes | Sequence[bytes],
        fingerprints: Fingerprints,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        key_list = [keys] if isinstance(keys, bytes) else list(keys)
        if not key_list:
            raise ValueError("LocalSecretStore needs at least one Fernet key")
        try:
            self._fernet = MultiFernet([Fernet(key) for key in key_list])
        except (ValueError, TypeError):
            raise ValueError(
                "OPSGATE_SECRET_KEY must be a Fernet key (32 url-safe base64-encoded bytes)"
            ) from None
        self._sessions = sessions
        self._fingerprints = fingerprints
        self._clock = clock

    def __repr__(self) -> str:
        return "LocalSecretStore(<keys hidden>)"

    @staticmethod
    def _bound(name: str, version: int) -> bytes:
        return f"opsgate-secret\x00{name}\x00{version}\x00".encode()

    def _encrypt(self, name: str, version: int, value: SecretStr) -> str:
        token = self._fernet.encrypt(self._bound(name, version) + value.get_secret_value().encode())
        return token.decode("ascii")

    def _decrypt(self, name: str, version: int, ciphertext: str) -> SecretStr:
        try:
            plain = self._fernet.decrypt(ciphertext.encode("ascii"))
        except InvalidToken:
            raise SecretStoreError(
                f"version {version} of secret {name!r} cannot be decrypted with the configured OPSGATE_SECRET_KEY"
            ) from None
        prefix = self._bound(name, version)
        if not plain.startswith(prefix):
            raise SecretStoreError(
                f"the stored ciphertext of {name!r} version {version} belongs to another row"
            )
        return SecretStr(plain[len(prefix) :].decode())

    async def put_pending(self, name: str, value: SecretStr) -> int:
        _check_name(name)
        for attempt in (1, 2):
            try:
                async with self._sessions() as session, session.begin():
                    highest = await session.scalar(
                        select(func.max(_versions.c.version)).where(_versions.c.name == name)
                    )
                    version = int(highest or 0) + 1
                    await session.execute(
                        update(_versions)
                        .where(_versions.c.name == name, _versions.c.label == "pending")
                        .values(label=RETIRED, ciphertext=None)
                    )
                    await session.execute(
                        insert(_versions).values(
                            name=name,
                            version=version,
                            label="pending",
                            ciphertext=self._encrypt(name, version, value),
                            created_at=self._clock().astimezone(UTC),
                        )
                    )
                return version
            except IntegrityError:
                # Another writer took the same version number; the second try reads the new maximum.
                if attempt == 2:
                    raise SecretStoreError(f"concurrent writes to secret {name!r}; try again") from None
        raise AssertionError("unreachable")  # pragma: no cover

    async def promote(self, name: str, version: int) -> None:
        _check_name(name)
        async with self._sessions() as session, session.begin():
            label = await session.scalar(
                select(_versions.c.label).where(_versions.c.name == name, _versions.c.version == version)
            )
            if label is None or label == RETIRED:
                raise SecretNotFound(name, version=version)
            if label == "current":
                return
            if label != "pending":
                raise SecretStoreError(
                    f"version {version} of secret {name!r} is {label}; only the pending version can be promoted"
                )
            # In this order each statement keeps "one live row per label" true on its own.
            for old, new, clear in (("previous", RETIRED, True), ("current", "previous", False)):
                values: dict[str, Any] = {"label": new}
                if clear:
                    values["ciphertext"] = None
                await session.execute(
                    update(_versions)
                    .where(_versions.c.name == name, _versions.c.label == old)
                    .values(**values)
                )
            await session.execute(
                update(_versions)
                .where(_versions.c.name == name, _versions.c.version == version)
                .values(label="current")
            )

    async def get(self, name: str, label: SecretLabel = "current") -> SecretStr:
        _check_name(name)
        async with self._sessions() as session:
            row = (
                await session.execute(
                    select(_versions.c.version, _versions.c.ciphertext).where(
                        _versions.c.name == name, _versions.c.label == label
                    )
                )
            ).first()
        if row is None or row.ciphertext is None:
            raise SecretNotFound(name, label)
        return self._decrypt(name, int(row.version), str(row.ciphertext))

    async def _retire(self, name: str, label: SecretLabel) -> bool:
        _check_name(name)
        async with self._sessions() as session, session.begin():
            result = await session.execute(
                update(_versions)
                .where(_versions.c.name == name, _versions.c.label == label)
                .values(label=RETIRED, ciphertext=None)
            )
        return bool(getattr(result, "rowcount", 0))

    async def revoke_previous(self, name: str) -> bool:
        return await self._retire(name, "previous")

    async def discard_pending(self, name: str) -> bool:
        return await self._retire(name, "pending")

    async def versions(self, name: str) -> list[SecretVersionInfo]:
        _check_name(name)
        async with self._sessions() as session:
            rows = (
                await session.execute(
                    select(
                        _versions.c.version, _versions.c.label, _versions.c.ciphertext, _versions.c.created_at
                    )
                    .where(_versions.c.name == name, _versions.c.label != RETIRED)
                    .order_by(_versions.c.version)
                )
            ).all()
        listing = []
        for row in rows:
            value = self._decrypt(name, int(row.version), str(row.ciphertext))
            listing.append(
                SecretVersionInfo(
                    name=name,
                    version=int(row.version),
                    label=row.label,
                    fingerprint=self._fingerprints.fingerprint(value),
                    created_at=_as_utc(row.created_at),
                )
            )
        return listing

    async def aclose(self) -> None:
        """Nothing to release: sessions belong to the caller's engine."""


# --- HashiCorp Vault KV v2 ------------------------------------------------------------------------

VAULT = "vault"
LABEL_KEYS: Final[Mapping[SecretLabel, str]] = {
    "pending": "opsgate_pending",
    "current": "opsgate_current",
    "previous": "opsgate_previous",
}


class VaultSettings(BaseModel):
    """Where the Vault KV v2 engine is and how to authenticate (a token)."""

    model_config = ConfigDict(extra="forbid")

    base_url: str = Field(description="VAULT_ADDR, e.g. https://vault.example.com:8200")
    token: SecretStr = Field(description="VAULT_TOKEN with create/read/update on the paths")
    mount: str = Field(default="secret", description="where the KV v2 engine is mounted")
    path_prefix: str = Field(default="opsgate", description="keys live at <mount>/data/<prefix>/<name>")
    namespace: str | None = Field(default=None, description="Vault Enterprise namespace")
    http: HttpOptions = Field(default_factory=HttpOptions)

    @field_validator("mount", "path_prefix")
    @classmethod
    def _path_segments(cls, value: str) -> str:
        value = value.strip("/")
        if not re.fullmatch(r"[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*", value):
            raise ValueError("must be path segments of letters, digits, '.', '_' and '-'")
        return value

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> VaultSettings | None:
        """From VAULT_ADDR / VAULT_TOKEN (+ VAULT_NAMESPACE, OPSGATE_VAULT_MOUNT, OPSGATE_VAULT_PREFIX)."""
        if not env.get("VAULT_ADDR") or not env.get("VAULT_TOKEN"):
            return None
        values: dict[str, Any] = {"base_url": env["VAULT_ADDR"], "token": env["VAULT_TOKEN"]}
        for key, field in (
            ("VAULT_NAMESPACE", "namespace"),
            ("OPSGATE_VAULT_MOUNT", "mount"),
            ("OPSGATE_VAULT_PREFIX", "path_prefix"),
        ):
            if env.get(key):
                values[field] = env[key]
        return cls.model_validate(values)


def vault_error_detail(response: httpx.Response) -> str:
    """Vault's `{"errors": ["..."]}` messages (an empty list on plain 404s)."""
    try:
        body = response.json()
    except ValueError:
        return default_error_detail(response)
    if isinstance(body, dict) and isinstance(body.get("errors"), list):
        messages = [str(item) for item in body["errors"] if item]
        return "; ".join(messages) if messages else (response.reason_phrase or f"HTTP {response.status_code}")
    return default_error_detail(response)


class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore")


class _VersionMeta(_Wire):
    created_time: datetime | None = None
    deletion_time: str = ""
    destroyed: bool = False


class _KeyMetadata(_Wire):
    current_version: int = 0
    custom_metadata: dict[str, str] | None = None
    versions: dict[str, _VersionMeta] = Field(default_factory=dict)


class _MetadataEnvelope(_Wire):
    data: _KeyMetadata


class _WriteResult(_Wire):
    version: int


class _WriteEnvelope(_Wire):
    data: _WriteResult


class _ReadData(_Wire):
    data: dict[str, Any] | None = None
    metadata: _VersionMeta | None = None


class _ReadEnvelope(_Wire):
    data: _ReadData


class VaultKV2Store:
    """Secrets in HashiCorp Vault KV v2; the value is the `value` field of each version's data."""

    def __init__(
        self,
        settings: VaultSettings,
        *,
        fingerprints: Fingerprints,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        headers: dict[str, str | SecretStr] = {"X-Vault-Token": settings.token}
        if settings.namespace:
            headers["X-Vault-Namespace"] = settings.namespace
        self.settings = settings
        self._fingerprints = fingerprints
        self._client = VendorClient(
            vendor=VAULT,
            base_url=settings.base_url.rstrip("/"),
            options=settings.http,
            auth=StaticHeaders(headers),
            transport=transport,
            error_parser=vault_error_detail,
            sleep=sleep,
            monotonic=monotonic,
        )

    def __repr__(self) -> str:
        return f"VaultKV2Store({self.settings.base_url!r}, mount={self.settings.mount!r})"

    @property
    def client(self) -> VendorClient:
        return self._client

    def _path(self, kind: Literal["data", "metadata", "destroy"], name: str) -> str:
        key = "/".join(
            quote(part, safe="") for part in f"{self.settings.path_prefix}/{_check_name(name)}".split("/")
        )
        return f"/v1/{self.settings.mount}/{kind}/{key}"

    async def _metadata(self, name: str) -> _KeyMetadata | None:
        try:
            envelope = await self._client.get_model(self._path("metadata", name), _MetadataEnvelope)
        except NotFound:
            return None
        return envelope.data

    async def _labels(self, name: str) -> tuple[_KeyMetadata | None, dict[str, str]]:
        meta = await self._metadata(name)
        return meta, dict((meta.custom_metadata if meta else None) or {})

    async def _write_labels(self, name: str, labels: Mapping[str, str]) -> None:
        # Vault replaces custom_metadata as a whole; other keys than ours were read and are kept.
        await self._client.request(
            "POST", self._path("metadata", name), json={"custom_metadata": dict(labels)}, idempotent=True
        )

    async def _destroy(self, name: str, versions: list[int]) -> None:
        if versions:
            await self._client.request(
                "POST", self._path("destroy", name), json={"versions": versions}, idempotent=True
            )

    @staticmethod
    def _labelled(labels: Mapping[str, str], label: SecretLabel) -> int | None:
        raw = labels.get(LABEL_KEYS[label])
        return int(raw) if raw and raw.isdigit() else None

    async def put_pending(self, name: str, value: SecretStr) -> int:
        try:
            _, labels = await self._labels(name)
            written = await self._client.send_model(
                "POST",
                self._path("data", name),
                _WriteEnvelope,
                json={"data": {"value": value.get_secret_value()}},
                idempotent=False,
            )
            version = written.data.version
            replaced = self._labelled(labels, "pending")
            labels[LABEL_KEYS["pending"]] = str(version)
            await self._write_labels(name, labels)
            await self._destroy(name, [replaced] if replaced is not None and replaced != version else [])
            return version
        except ConnectorError as exc:
            raise _store_error("storing a pending version of", name, exc) from exc

    async def promote(self, name: str, version: int) -> None:
        try:
            meta, labels = await self._labels(name)
            known = None if meta is None else meta.versions.get(str(version))
            if meta is None or known is None or known.destroyed:
                raise SecretNotFound(name, version=version)
            if self._labelled(labels, "current") == version:
                return
            if self._labelled(labels, "pending") != version:
                raise SecretStoreError(
                    f"version {version} of secret {name!r} is not pending; only the pending version can be promoted"
                )
            old_current, old_previous = self._labelled(labels, "current"), self._labelled(labels, "previous")
            labels.pop(LABEL_KEYS["pending"], None)
            labels[LABEL_KEYS["current"]] = str(version)
            if old_current is not None:
                labels[LABEL_KEYS["previous"]] = str(old_current)
            else:
                labels.pop(LABEL_KEYS["previous"], None)
            await self._write_labels(name, labels)
            await self._destroy(name, [old_previous] if old_previous is not None else [])
        except ConnectorError as exc:
            raise _store_error("promoting", name, exc) from exc

    async def get(self, name: str, label: SecretLabel = "current") -> SecretStr:
        try:
            _, labels = await self._labels(name)
            version = self._labelled(labels, label)
            if version is None:
                raise SecretNotFound(name, label)
            return await self._read(name, version, label)
        except ConnectorError as exc:
            raise _store_error("reading", name, exc) from exc

    async def _read(self, name: str, version: int, label: str | None = None) -> SecretStr:
        try:
            envelope = await self._client.get_model(
                self._path("data", name), _ReadEnvelope, params={"version": str(version)}
            )
        except NotFound:
            raise SecretNotFound(name, label, version) from None
        data = envelope.data.data
        value = None if data is None else data.get("value")
        if not isinstance(value, str):
            raise SecretStoreError(f"version {version} of secret {name!r} has no string 'value' field")
        return SecretStr(value)

    async def _drop(self, name: str, label: SecretLabel) -> bool:
        try:
            _, labels = await self._labels(name)
            version = self._labelled(labels, label)
            if version is None:
                return False
            labels.pop(LABEL_KEYS[label], None)
            await self._write_labels(name, labels)
            await self._destroy(name, [version])
            return True
        except ConnectorError as exc:
            raise _store_error(f"destroying the {label} version of", name, exc) from exc

    async def revoke_previous(self, name: str) -> bool:
        return await self._drop(name, "previous")

    async def discard_pending(self, name: str) -> bool:
        return await self._drop(name, "pending")

    async def versions(self, name: str) -> list[SecretVersionInfo]:
        try:
            meta, labels = await self._labels(name)
            if meta is None:
                return []
            listing = []
            for label in LABELS:
                version = self._labelled(labels, label)
                if version is None:
                    continue
                value = await self._read(name, version, label)
                version_meta = meta.versions.get(str(version))
                listing.append(
                    SecretVersionInfo(
                        name=name,
                        version=version,
                        label=label,
                        fingerprint=self._fingerprints.fingerprint(value),
                        created_at=version_meta.created_time if version_meta else None,
                    )
                )
            return sorted(listing, key=lambda info: info.version)
        except ConnectorError as exc:
            raise _store_error("listing", name, exc) from exc
        except ValidationError as exc:  # pragma: no cover - parse_model already wraps these
            raise SecretStoreError(f"Vault answered an unexpected shape for {name!r}") from exc

    async def aclose(self) -> None:
        await self._client.aclose()


def _store_error(doing: str, name: str, exc: ConnectorError) -> SecretStoreError:
    status = f" ({exc.status})" if exc.status is not None else ""
    return SecretStoreError(f"Vault failed {doing} secret {name!r}{status}: {exc.detail}")
