"""What moves between connectors when a file is transferred: an open download, a metered stream,
and what a partner destination is handed and hands back.

Bytes travel as async iterators of chunks from the source (Canto) to each target (iconik, S3,
SFTP), so no file is ever held whole in memory. `DigestingStream` sits in between to count and
hash what passed, which is how a transfer proves it arrived whole.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "DeliveryItem",
    "DeliveryReceipt",
    "DestinationKind",
    "DigestingStream",
    "Download",
]

DEFAULT_CHUNK_SIZE = 64 * 1024
DestinationKind = Literal["s3", "sftp", "portal_webhook"]


@dataclass(frozen=True)
class Download:
    """An open download: what the vendor said about the bytes, and the bytes as chunks.

    `size` is the Content-Length (None when the vendor did not send one). Iterate `chunks` once,
    inside the context manager that produced the download.
    """

    name: str
    size: int | None
    content_type: str
    chunks: AsyncIterator[bytes]


class DigestingStream:
    """Passes chunks through unchanged, counting bytes and hashing them (SHA-256 and MD5).

    `peak_chunk` is the largest chunk seen: with it a caller can show how much was buffered at once.
    """

    def __init__(self, chunks: AsyncIterable[bytes]) -> None:
        self._chunks = chunks
        self._sha256 = hashlib.sha256()
        self._md5 = hashlib.md5(usedforsecurity=False)
        self.size = 0
        self.peak_chunk = 0
        self._consumed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        if self._consumed:
            raise RuntimeError("a DigestingStream can be read only once")
        self._consumed = True
        async for chunk in self._chunks:
            self._sha256.update(chunk)
            self._md5.update(chunk)
            self.size += len(chunk)
            self.peak_chunk = max(self.peak_chunk, len(chunk))
            yield chunk

    @property
    def sha256(self) -> str:
        """Hex SHA-256 of the bytes read so far."""
        return self._sha256.hexdigest()

    @property
    def md5(self) -> str:
        """Hex MD5 of the bytes read so far (what iconik and S3 ETags use)."""
        return self._md5.hexdigest()


class DeliveryItem(BaseModel):
    """What a partner destination is asked to publish: the file's facts and, for portals, a link.

    File drops (S3, SFTP) store the bytes under `name`; a portal receives the description and
    `download_url` instead of the bytes.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, description="file name at the destination")
    size: int = Field(ge=0)
    content_type: str = "application/octet-stream"
    title: str | None = None
    source_id: str | None = Field(None, description="where the asset comes from, e.g. canto:image:<id>")
    metadata: dict[str, Any] = Field(default_factory=dict)
    download_url: SecretStr | None = Field(None, description="a link the portal can fetch the file from")
    download_expires_at: datetime | None = None


class DeliveryReceipt(BaseModel):
    """What a destination did, enough to check (`exists`) or undo (`revoke`) it later.

    `location` is the S3 key, the SFTP path or the portal's publication URL; `acknowledgement_id`
    is the portal's id for the publication. `share_url` is a bearer link (kept secret: it is
    posted to the partner, never logged or stored in clear).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: DestinationKind
    destination: str
    location: str
    delivered_at: datetime
    size: int | None = None
    sha256: str | None = None
    acknowledgement_id: str | None = None
    share_url: SecretStr | None = None
    share_expires_at: datetime | None = None
