"""Asset requests from other systems, the Canto assets uploaded for them, and iconik history imports.

Invariants held by the database: one request per (system, external_id), so a client's retry
never opens a second request; one request per Canto asset; one audit event per iconik history
entry (`media_history_imports` is the marker that makes a re-import add nothing).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import BigInteger, Date, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from bot.db.models import Base, BigId, JsonValue, UtcDateTime

__all__ = ["ASSET_REQUEST_STATUSES", "AssetRequestAssetRow", "AssetRequestRow", "MediaHistoryImport"]

# requested: recorded, Canto not set up yet; open: the album waits for an upload;
# fulfilled: an uploaded asset was Approved; failed: Canto refused to set the request up.
ASSET_REQUEST_STATUSES = ("requested", "open", "fulfilled", "failed")


class AssetRequestRow(Base):
    """One request for an asset, made over `POST /requests/assets`; shown to people as AR-<id>."""

    __tablename__ = "asset_requests"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    system: Mapped[str] = mapped_column(String(64), nullable=False)
    external_id: Mapped[str | None] = mapped_column(String(128))
    body_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    title: Mapped[str] = mapped_column(String(200), nullable=False)
    description: Mapped[str] = mapped_column(Text, nullable=False, default="")
    requested_by: Mapped[str | None] = mapped_column(String(128))
    callback_url: Mapped[str | None] = mapped_column(Text)
    due_date: Mapped[date | None] = mapped_column(Date)
    tags: Mapped[list[str]] = mapped_column(JsonValue, nullable=False, default=list)
    fields: Mapped[dict[str, Any]] = mapped_column(JsonValue, nullable=False, default=dict)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    canto_environment: Mapped[str] = mapped_column(String(64), nullable=False)
    canto_album_id: Mapped[str | None] = mapped_column(String(64))
    canto_album_name: Mapped[str | None] = mapped_column(String(255))
    canto_album_path: Mapped[str | None] = mapped_column(String(1024))
    asset_ref: Mapped[str | None] = mapped_column(String(255))
    asset_name: Mapped[str | None] = mapped_column(String(255))
    failure_reason: Mapped[str | None] = mapped_column(Text)
    callback_status: Mapped[str | None] = mapped_column(String(16))
    callback_attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    callback_last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    fulfilled_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    callback_delivered_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    __table_args__ = (
        UniqueConstraint("system", "external_id", name="uq_asset_requests_system_external_id"),
        Index("ix_asset_requests_canto_album_id", "canto_album_id"),
        Index("ix_asset_requests_created_at", "created_at"),
    )

    @property
    def ref(self) -> str:
        """The id people and callers see: AR-<number>."""
        return f"AR-{self.id}"


class AssetRequestAssetRow(Base):
    """A Canto asset uploaded for a request ("scheme:id"); later deliveries about it find the request."""

    __tablename__ = "asset_request_assets"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("asset_requests.id"), nullable=False, index=True)
    asset_ref: Mapped[str] = mapped_column(String(255), nullable=False, unique=True)
    approval_status: Mapped[str] = mapped_column(String(32), nullable=False, default="")
    first_seen_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    checked_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)


class MediaHistoryImport(Base):
    """One iconik history entry copied into the audit trail (audit_seq: the event it became)."""

    __tablename__ = "media_history_imports"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    asset_id: Mapped[str] = mapped_column(String(64), nullable=False)
    history_id: Mapped[str] = mapped_column(String(64), nullable=False)
    environment: Mapped[str] = mapped_column(String(64), nullable=False)
    audit_seq: Mapped[int | None] = mapped_column(BigInteger)
    imported_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)

    __table_args__ = (
        UniqueConstraint("asset_id", "history_id", name="uq_media_history_imports_asset_id_history_id"),
    )
