"""S3-compatible partner drop: streamed multipart upload, a pre-signed share link, delete to revoke.

Any S3 API works (AWS, MinIO, Ceph, moto's server in tests and the demo): `endpoint_url` points
at it. Bytes arrive as chunks and leave as parts of `part_size` (S3's minimum is 5 MiB), so the
most ever held is one part, whatever the file's size. A failed upload is aborted, so no
half-written object or dangling parts remain. Revoking deletes the object; its share link then
answers 404.

    drop = S3Drop(S3DropSettings(name="Retailer A", bucket="partner-drops", ...))
    receipt = await drop.deliver(item, download.chunks)
    receipt.share_url            # pre-signed GET, valid for share_link_ttl seconds
"""

from __future__ import annotations

import posixpath
from collections.abc import AsyncIterable, AsyncIterator, Callable
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from connectors.errors import AuthError, BadRequest, ConnectorError, Unavailable, error_for_status
from connectors.transfer import DeliveryItem, DeliveryReceipt, DigestingStream

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client
    from types_aiobotocore_s3.type_defs import CompletedPartTypeDef

__all__ = ["MIN_PART_SIZE", "S3Drop", "S3DropSettings"]

MIN_PART_SIZE = 5 * 1024 * 1024
DEFAULT_PART_SIZE = 8 * 1024 * 1024
MAX_SHARE_LINK_TTL = 7 * 24 * 3600  # SigV4 pre-signed URLs live at most a week


class S3DropSettings(BaseModel):
    """One partner's bucket (and key prefix) with the credentials to write into it."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["s3"] = "s3"
    name: str = Field(min_length=1, description="the destination's name, e.g. 'Retailer A'")
    bucket: str = Field(min_length=3)
    prefix: str = Field("", description="key prefix of this partner, e.g. 'retailer-a/inbox'")
    region: str = "us-east-1"
    endpoint_url: str | None = Field(None, description="S3-compatible endpoint; None for AWS")
    access_key_id: str
    secret_access_key: SecretStr
    addressing_style: Literal["auto", "path", "virtual"] = "path"
    share_link_ttl: int = Field(7 * 24 * 3600, ge=60, le=MAX_SHARE_LINK_TTL, description="seconds")
    part_size: int = Field(DEFAULT_PART_SIZE, ge=MIN_PART_SIZE)
    connect_timeout: float = Field(10.0, gt=0)
    read_timeout: float = Field(60.0, gt=0)
    max_attempts: int = Field(3, ge=1, description="botocore's own retries, per call")


def _utc_now() -> datetime:
    return datetime.now(UTC)


async def _parts(chunks: AsyncIterable[bytes], part_size: int) -> AsyncIterator[bytes]:
    """Regroup chunks into parts of exactly `part_size` bytes (the last may be shorter).

    At most one part is gathered at a time; handing it over costs one copy out of the buffer.
    """
    buffer = bytearray()
    async for chunk in chunks:
        buffer += chunk
        while len(buffer) >= part_size:
            with memoryview(buffer) as view:
                part = bytes(view[:part_size])
            del buffer[:part_size]
            yield part
    if buffer:
        yield bytes(buffer)


class S3Drop:
    """A PartnerDrop writing to an S3 bucket; owns its client (use `async with` or `aclose`)."""

    vendor = "s3"
    kind: Literal["s3"] = "s3"
    accepts_bytes = True

    def __init__(self, settings: S3DropSettings, *, now: Callable[[], datetime] = _utc_now) -> None:
        self.settings = settings
        self._now = now
        self._exit = AsyncExitStack()
        self._client: S3Client | None = None
        # The largest part held at once: bounded by part_size whatever the file's size.
        self.peak_part_bytes = 0

    @property
    def name(self) -> str:
        """The destination's name."""
        return self.settings.name

    async def _s3(self) -> S3Client:
        if self._client is None:
            settings = self.settings
            config = AioConfig(
                connect_timeout=settings.connect_timeout,
                read_timeout=settings.read_timeout,
                retries={"max_attempts": settings.max_attempts, "mode": "standard"},
                s3={"addressing_style": settings.addressing_style},
                signature_version="s3v4",
            )
            client = await self._exit.enter_async_context(
                get_session().create_client(
                    "s3",
                    region_name=settings.region,
                    endpoint_url=settings.endpoint_url,
                    aws_access_key_id=settings.access_key_id,
                    aws_secret_access_key=settings.secret_access_key.get_secret_value(),
                    config=config,
                )
            )
            self._client = client
            return client
        return self._client

    async def aclose(self) -> None:
        """Close the S3 client."""
        self._client = None
        await self._exit.aclose()

    async def __aenter__(self) -> S3Drop:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    def key_for(self, name: str) -> str:
        """The object key a file called `name` gets (under the partner's prefix)."""
        if not name or "/" in name or name in (".", ".."):
            raise ValueError(f"not a plain file name: {name!r}")
        return posixpath.join(self.settings.prefix.strip("/"), name) if self.settings.prefix else name

    def _error(self, exc: Exception, operation: str, key: str) -> ConnectorError:
        where = f"s3://{self.settings.bucket}/{key}"
        if isinstance(exc, ClientError):
            error: dict[str, Any] = dict(exc.response.get("Error", {}))
            meta: dict[str, Any] = dict(exc.response.get("ResponseMetadata", {}))
            status = int(meta.get("HTTPStatusCode") or 0) or None
            detail = f"{error.get('Code', 'Error')}: {error.get('Message', '')}".strip().rstrip(":")
            kind = error_for_status(status) if status else ConnectorError
            return kind(
                detail,
                vendor=self.vendor,
                status=status,
                request_id=meta.get("RequestId"),
                method=exc.operation_name or operation,
                url=where,
            )
        if isinstance(exc, NoCredentialsError):
            return AuthError(str(exc), vendor=self.vendor, method=operation, url=where)
        return Unavailable(f"{type(exc).__name__}: {exc}", vendor=self.vendor, method=operation, url=where)

    async def deliver(
        self, item: DeliveryItem, chunks: AsyncIterable[bytes] | None = None
    ) -> DeliveryReceipt:
        """Upload the bytes as `prefix/name` (multipart beyond one part) and sign a share link.

        A stream whose length differs from `item.size` is refused and nothing is left behind.
        """
        if chunks is None:
            raise ValueError("an S3 drop needs the file's bytes")
        key = self.key_for(item.name)
        s3 = await self._s3()
        bucket = self.settings.bucket
        metered = DigestingStream(chunks)
        parts = _parts(metered, self.settings.part_size)
        upload_id: str | None = None
        operation = "PutObject"
        try:
            # The declared size picks the method, so no part is read ahead: one in hand at a time.
            if item.size <= self.settings.part_size:
                body = await anext(parts, b"")
                await anext(parts, None)  # a stream longer than declared shows here, refused below
                self._check_size(metered.size, item, key)
                self.peak_part_bytes = max(self.peak_part_bytes, len(body))
                await s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType=item.content_type)
            else:
                operation = "CreateMultipartUpload"
                created = await s3.create_multipart_upload(
                    Bucket=bucket, Key=key, ContentType=item.content_type
                )
                upload_id = created["UploadId"]
                operation = "UploadPart"
                done: list[CompletedPartTypeDef] = []
                async for part in parts:
                    done.append(await self._upload_part(s3, key, upload_id, len(done) + 1, part))
                    del part  # let it go before the next part is gathered
                self._check_size(metered.size, item, key)
                operation = "CompleteMultipartUpload"
                await s3.complete_multipart_upload(
                    Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": done}
                )
                upload_id = None
            operation = "GeneratePresignedUrl"
            share_url = await self._presign(s3, key)
        except (ClientError, BotoCoreError) as exc:
            raise self._error(exc, operation, key) from exc
        finally:
            if upload_id is not None:
                await self._abort(s3, key, upload_id)
        now = self._now()
        return DeliveryReceipt(
            kind="s3",
            destination=self.name,
            location=key,
            delivered_at=now,
            size=metered.size,
            sha256=metered.sha256,
            share_url=SecretStr(share_url),
            share_expires_at=now + timedelta(seconds=self.settings.share_link_ttl),
        )

    async def _upload_part(
        self, s3: S3Client, key: str, upload_id: str, number: int, part: bytes
    ) -> CompletedPartTypeDef:
        self.peak_part_bytes = max(self.peak_part_bytes, len(part))
        answer = await s3.upload_part(
            Bucket=self.settings.bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=part
        )
        return {"ETag": answer["ETag"], "PartNumber": number}

    def _check_size(self, sent: int, item: DeliveryItem, key: str) -> None:
        if sent != item.size:
            raise BadRequest(
                f"the byte stream had {sent} bytes, {item.size} were declared; nothing was published",
                vendor=self.vendor,
                method="PutObject",
                url=f"s3://{self.settings.bucket}/{key}",
            )

    async def _abort(self, s3: S3Client, key: str, upload_id: str) -> None:
        try:
            await s3.abort_multipart_upload(Bucket=self.settings.bucket, Key=key, UploadId=upload_id)
        except (ClientError, BotoCoreError):
            pass  # the upload's own error is the one to report; S3 lifecycle rules reap stray parts

    async def _presign(self, s3: S3Client, key: str) -> str:
        return await s3.generate_presigned_url(
            "get_object",
            Params={"Bucket": self.settings.bucket, "Key": key},
            ExpiresIn=self.settings.share_link_ttl,
        )

    async def share_link(self, receipt: DeliveryReceipt) -> DeliveryReceipt:
        """A fresh share link for a delivered object (the receipt with new `share_url` and expiry)."""
        s3 = await self._s3()
        try:
            url = await self._presign(s3, receipt.location)
        except (ClientError, BotoCoreError) as exc:
            raise self._error(exc, "GeneratePresignedUrl", receipt.location) from exc
        expires = self._now() + timedelta(seconds=self.settings.share_link_ttl)
        return receipt.model_copy(update={"share_url": SecretStr(url), "share_expires_at": expires})

    async def revoke(self, receipt: DeliveryReceipt) -> None:
        """Delete the object; its share link stops working. Deleting twice is harmless."""
        s3 = await self._s3()
        try:
            await s3.delete_object(Bucket=self.settings.bucket, Key=receipt.location)
        except (ClientError, BotoCoreError) as exc:
            raise self._error(exc, "DeleteObject", receipt.location) from exc

    async def exists(self, receipt: DeliveryReceipt) -> bool:
        """Whether the object is still in the bucket."""
        s3 = await self._s3()
        try:
            await s3.head_object(Bucket=self.settings.bucket, Key=receipt.location)
        except ClientError as exc:
            if exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404:
                return False
            raise self._error(exc, "HeadObject", receipt.location) from exc
        except BotoCoreError as exc:
            raise self._error(exc, "HeadObject", receipt.location) from exc
        return True
