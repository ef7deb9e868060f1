"""Portal partner destination: a signed HTTPS webhook publishing an asset to a CMS or portal.

`deliver` POSTs JSON describing the asset and where to download it; the portal answers with its
own id for the publication (the acknowledgement, kept in the receipt). `revoke` is a signed
DELETE of that publication, `exists` a signed GET.

Every request is signed with HMAC-SHA256 over `v1:{timestamp}:{METHOD}:{path}:{body}` using the
shared secret, sent as `X-Opsgate-Signature: v1=<hex>` with `X-Opsgate-Timestamp: <unix seconds>`.
Binding method and path means a captured signature cannot be replayed onto another publication;
the timestamp lets the portal refuse old requests (`verify_portal_signature`, 5 minutes).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import AsyncIterable, Callable
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Literal
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from connectors.errors import NotFound
from connectors.http import HttpOptions, VendorClient
from connectors.transfer import DeliveryItem, DeliveryReceipt

__all__ = [
    "SIGNATURE_TOLERANCE_SECONDS",
    "PortalSigner",
    "PortalWebhook",
    "PortalWebhookSettings",
    "portal_signature",
    "verify_portal_signature",
]

SIGNATURE_HEADER = "X-Opsgate-Signature"
TIMESTAMP_HEADER = "X-Opsgate-Timestamp"
SIGNATURE_TOLERANCE_SECONDS = 300


class PortalWebhookSettings(BaseModel):
    """One portal: its publications endpoint and the secret both sides sign with."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["portal_webhook"] = "portal_webhook"
    name: str = Field(min_length=1, description="the destination's name, e.g. 'Retailer A portal'")
    url: str = Field(description="publications endpoint, e.g. https://portal.example/api/publications")
    secret: SecretStr
    http: HttpOptions = Field(default_factory=HttpOptions)


def portal_signature(secret: str, *, timestamp: str, method: str, path: str, body: bytes) -> str:
    """The signature header value for one request: `v1=` and the HMAC-SHA256 hex digest."""
    message = f"v1:{timestamp}:{method.upper()}:{path}:".encode() + body
    return "v1=" + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def verify_portal_signature(
    secret: str,
    *,
    signature: str | None,
    timestamp: str | None,
    method: str,
    path: str,
    body: bytes,
    now: float,
    tolerance: float = SIGNATURE_TOLERANCE_SECONDS,
) -> bool:
    """What a portal checks: the signature matches and the timestamp is recent (constant time)."""
    if not signature or not timestamp or not timestamp.isdigit():
        return False
    if abs(now - int(timestamp)) > tolerance:
        return False
    expected = portal_signature(secret, timestamp=timestamp, method=method, path=path, body=body)
    return hmac.compare_digest(signature.encode(), expected.encode())


class PortalSigner:
    """An AuthStrategy: signs each request (re-signed on every retry, with a fresh timestamp)."""

    def __init__(self, secret: SecretStr, *, clock: Callable[[], float] = time.time) -> None:
        self._secret = secret
        self._clock = clock

    def __repr__(self) -> str:
        return "PortalSigner(***)"

    async def apply(self, request: httpx.Request, client: VendorClient) -> None:
        """Add the timestamp and signature headers for this exact method, path and body."""
        timestamp = str(int(self._clock()))
        request.headers[TIMESTAMP_HEADER] = timestamp
        request.headers[SIGNATURE_HEADER] = portal_signature(
            self._secret.get_secret_value(),
            timestamp=timestamp,
            method=request.method,
            path=request.url.raw_path.decode(),
            body=request.content,
        )

    async def on_unauthorized(self) -> bool:
        """A refused signature will not get better by signing again."""
        return False


class _Publication(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: str
    status: str = "published"
    url: str | None = None


def _utc_now() -> datetime:
    return datetime.now(UTC)


class PortalWebhook:
    """A PartnerDrop publishing to a portal; owns its HTTP client (use `async with` or `aclose`)."""

    vendor = "portal"
    kind: Literal["portal_webhook"] = "portal_webhook"
    accepts_bytes = False  # the portal fetches the file itself, from `item.download_url`

    def __init__(
        self,
        settings: PortalWebhookSettings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.time,
        now: Callable[[], datetime] = _utc_now,
    ) -> None:
        self.settings = settings
        self._now = now
        self._client = VendorClient(
            vendor=self.vendor,
            base_url=settings.url.rstrip("/") + "/",
            options=settings.http,
            auth=PortalSigner(settings.secret, clock=clock),
            transport=transport,
        )

    @property
    def name(self) -> str:
        """The destination's name."""
        return self.settings.name

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self._client.aclose()

    async def __aenter__(self) -> PortalWebhook:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def deliver(
        self, item: DeliveryItem, chunks: AsyncIterable[bytes] | None = None
    ) -> DeliveryReceipt:
        """Publish the asset's description and download link; the portal's id is the acknowledgement.

        `chunks` is not read: a portal takes a link, not the bytes.
        """
        if item.download_url is None:
            raise ValueError("a portal publication needs the item's download_url")
        body: dict[str, Any] = {
            "event": "asset.published",
            "asset": {
                "name": item.name,
                "title": item.title or item.name,
                "content_type": item.content_type,
                "size": item.size,
                "source_id": item.source_id,
                "metadata": item.metadata,
            },
            "download_url": item.download_url.get_secret_value(),
            "download_expires_at": item.download_expires_at.isoformat() if item.download_expires_at else None,
        }
        # A repeated POST could publish twice: only failures before sending are retried.
        published = await self._client.send_model("POST", self.settings.url, _Publication, json=body)
        return DeliveryReceipt(
            kind="portal_webhook",
            destination=self.name,
            location=published.url or f"{self.settings.url.rstrip('/')}/{published.id}",
            delivered_at=self._now(),
            size=item.size,
            acknowledgement_id=published.id,
        )

    async def revoke(self, receipt: DeliveryReceipt) -> None:
        """Unpublish (signed DELETE); a publication the portal no longer knows counts as revoked."""
        try:
            await self._client.request("DELETE", self._path(receipt))
        except NotFound:
            return

    async def exists(self, receipt: DeliveryReceipt) -> bool:
        """Whether the portal still shows the publication."""
        try:
            publication = await self._client.get_model(self._path(receipt), _Publication)
        except NotFound:
            return False
        return publication.status == "published"

    @staticmethod
    def _path(receipt: DeliveryReceipt) -> str:
        if not receipt.acknowledgement_id:
            raise ValueError("the receipt has no portal acknowledgement id")
        return quote(receipt.acknowledgement_id, safe="")
