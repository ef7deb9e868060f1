"""Alert tables. Invariants as constraints: one open alert per dedup key (`open_key` is unique
and NULL once resolved), one message key per digest, one pacing row per channel."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from bot.db.models import Base, BigId, JsonValue, UtcDateTime

__all__ = ["AlertChannelRow", "AlertDigestRow", "AlertRow", "HealthCheckRow", "SilenceRow"]


class SilenceRow(Base):
    """A time-boxed set of matchers; alerts whose labels match all of them stay quiet."""

    __tablename__ = "alert_silences"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    matchers: Mapped[list[dict[str, str]]] = mapped_column(JsonValue, nullable=False)
    starts_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    ends_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    created_by: Mapped[str] = mapped_column(String(64), nullable=False)
    reason: Mapped[str] = mapped_column(Text, nullable=False, default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    # Set when the silence stops applying: by `/ops unsilence` (ended_by) or on expiry (None).
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    ended_by: Mapped[str | None] = mapped_column(String(64))
    source_alert_id: Mapped[int | None] = mapped_column(BigInteger)

    __table_args__ = (Index("ix_alert_silences_ended_at_ends_at", "ended_at", "ends_at"),)


class AlertDigestRow(Base):
    """One storm digest message per channel and storm; alerts folded into it point here."""

    __tablename__ = "alert_digests"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    channel: Mapped[str] = mapped_column(String(64), nullable=False)
    message_key: Mapped[str] = mapped_column(String(255), nullable=False, unique=True)
    opened_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    closes_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    posted_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_rendered_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    alert_count: Mapped[int] = mapped_column(Integer, nullable=False, default=0)


class AlertChannelRow(Base):
    """Per-channel pacing: when the next new message may be posted, and the open digest."""

    __tablename__ = "alert_channels"

    channel: Mapped[str] = mapped_column(String(64), primary_key=True)
    next_post_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    digest_id: Mapped[int | None] = mapped_column(ForeignKey("alert_digests.id"))


class AlertRow(Base):
    """An alert: a dedup key's life from first trigger to resolution, and where it is shown."""

    __tablename__ = "alerts"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    dedup_key: Mapped[str] = mapped_column(String(255), nullable=False, index=True)
    open_key: Mapped[str | None] = mapped_column(String(255), unique=True)
    source: Mapped[str] = mapped_column(String(32), nullable=False)
    severity: Mapped[str] = mapped_column(String(16), nullable=False)
    environment: Mapped[str] = mapped_column(String(64), nullable=False)
    system: Mapped[str] = mapped_column(String(128), nullable=False)
    title: Mapped[str] = mapped_column(String(255), nullable=False)
    summary: Mapped[str] = mapped_column(Text, nullable=False, default="")
    labels: Mapped[dict[str, str]] = mapped_column(JsonValue, nullable=False, default=dict)
    retry: Mapped[dict[str, Any] | None] = mapped_column(JsonValue)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    occurrences: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    first_seen: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    last_seen: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)

    channel: Mapped[str] = mapped_column(String(64), nullable=False)
    mention: Mapped[str | None] = mapped_column(String(64))
    # The outbox dedup key of the message the alert lives in (its own, or its digest's), and
    # that message's channel id and ts once Slack answered.
    message_key: Mapped[str | None] = mapped_column(String(255))
    digest_id: Mapped[int | None] = mapped_column(ForeignKey("alert_digests.id"), index=True)
    slack_channel: Mapped[str | None] = mapped_column(String(32))
    slack_ts: Mapped[str | None] = mapped_column(String(32))

    notified_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    next_flush_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_rendered_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    repeat_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    escalate_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    escalated_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    escalated_to: Mapped[str | None] = mapped_column(String(64))

    acknowledged_by: Mapped[str | None] = mapped_column(String(64))
    acknowledged_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    resolved_by: Mapped[str | None] = mapped_column(String(64))
    resolved_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    silence_id: Mapped[int | None] = mapped_column(ForeignKey("alert_silences.id"))
    incident_url: Mapped[str | None] = mapped_column(Text)
    incident_claimed_by: Mapped[str | None] = mapped_column(String(64))
    retry_requested_by: Mapped[str | None] = mapped_column(String(64))
    retry_requested_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    retry_count: Mapped[int] = mapped_column(Integer, nullable=False, default=0)

    created_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)

    __table_args__ = (
        Index("ix_alerts_status_next_flush_at", "status", "next_flush_at"),
        Index("ix_alerts_status_repeat_at", "status", "repeat_at"),
        Index("ix_alerts_first_seen", "first_seen"),
    )


class HealthCheckRow(Base):
    """State of one connector probe (`vendor:environment`): failures in a row, down or up."""

    __tablename__ = "alert_health_checks"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    consecutive_failures: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    down: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    last_error: Mapped[str | None] = mapped_column(Text)
    last_checked_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_ok_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    next_check_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
