"""Inbound vendor webhook deliveries, one row each: the unique (source, delivery_id) is the dedup."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from bot.db.models import Base, BigId, JsonValue, UtcDateTime

__all__ = ["WebhookDeliveryRow"]


class WebhookDeliveryRow(Base):
    """A delivery accepted from Canto or iconik; the payload is stored without its secret token."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(String(16), nullable=False)
    delivery_id: Mapped[str] = mapped_column(String(255), nullable=False)
    event_type: Mapped[str] = mapped_column(String(128), nullable=False)
    object_id: Mapped[str | None] = mapped_column(String(255))
    payload: Mapped[dict[str, Any]] = mapped_column(JsonValue, nullable=False)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    # Set in the same transaction as the actions the delivery caused; NULL never commits today,
    # but keeps room for deliveries stored first and processed later.
    processed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    __table_args__ = (
        UniqueConstraint("source", "delivery_id", name="uq_webhook_deliveries_source_delivery_id"),
        Index("ix_webhook_deliveries_received_at", "received_at"),
    )
