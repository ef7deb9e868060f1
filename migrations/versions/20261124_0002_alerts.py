"""Alerts: alerts, silences, storm digests, per-channel pacing, connector health checks.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 21:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _utc() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "alert_digests",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("channel", sa.String(length=64), nullable=False),
        sa.Column("message_key", sa.String(length=255), nullable=False),
        sa.Column("opened_at", _utc(), nullable=False),
        sa.Column("closes_at", _utc(), nullable=False),
        sa.Column("posted_at", _utc(), nullable=True),
        sa.Column("last_rendered_at", _utc(), nullable=True),
        sa.Column("alert_count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert_digests")),
        sa.UniqueConstraint("message_key", name=op.f("uq_alert_digests_message_key")),
    )
    op.create_table(
        "alert_health_checks",
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("consecutive_failures", sa.Integer(), nullable=False),
        sa.Column("down", sa.Boolean(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("last_checked_at", _utc(), nullable=True),
        sa.Column("last_ok_at", _utc(), nullable=True),
        sa.Column("next_check_at", _utc(), nullable=True),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_alert_health_checks")),
    )
    op.create_table(
        "alert_silences",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("matchers", JSON, nullable=False),
        sa.Column("starts_at", _utc(), nullable=False),
        sa.Column("ends_at", _utc(), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_at", _utc(), nullable=False),
        sa.Column("ended_at", _utc(), nullable=True),
        sa.Column("ended_by", sa.String(length=64), nullable=True),
        sa.Column("source_alert_id", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert_silences")),
    )
    with op.batch_alter_table("alert_silences", schema=None) as batch_op:
        batch_op.create_index("ix_alert_silences_ended_at_ends_at", ["ended_at", "ends_at"], unique=False)

    op.create_table(
        "alert_channels",
        sa.Column("channel", sa.String(length=64), nullable=False),
        sa.Column("next_post_at", _utc(), nullable=True),
        sa.Column("digest_id", BIG_ID, nullable=True),
        sa.ForeignKeyConstraint(
            ["digest_id"], ["alert_digests.id"], name=op.f("fk_alert_channels_digest_id_alert_digests")
        ),
        sa.PrimaryKeyConstraint("channel", name=op.f("pk_alert_channels")),
    )
    op.create_table(
        "alerts",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("dedup_key", sa.String(length=255), nullable=False),
        sa.Column("open_key", sa.String(length=255), nullable=True),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("environment", sa.String(length=64), nullable=False),
        sa.Column("system", sa.String(length=128), nullable=False),
        sa.Column("title", sa.String(length=255), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("labels", JSON, nullable=False),
        sa.Column("retry", JSON, nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("occurrences", sa.Integer(), nullable=False),
        sa.Column("first_seen", _utc(), nullable=False),
        sa.Column("last_seen", _utc(), nullable=False),
        sa.Column("channel", sa.String(length=64), nullable=False),
        sa.Column("mention", sa.String(length=64), nullable=True),
        sa.Column("message_key", sa.String(length=255), nullable=True),
        sa.Column("digest_id", BIG_ID, nullable=True),
        sa.Column("slack_channel", sa.String(length=32), nullable=True),
        sa.Column("slack_ts", sa.String(length=32), nullable=True),
        sa.Column("notified_at", _utc(), nullable=True),
        sa.Column("next_flush_at", _utc(), nullable=True),
        sa.Column("last_rendered_at", _utc(), nullable=True),
        sa.Column("repeat_at", _utc(), nullable=True),
        sa.Column("escalate_at", _utc(), nullable=True),
        sa.Column("escalated_at", _utc(), nullable=True),
        sa.Column("escalated_to", sa.String(length=64), nullable=True),
        sa.Column("acknowledged_by", sa.String(length=64), nullable=True),
        sa.Column("acknowledged_at", _utc(), nullable=True),
        sa.Column("resolved_by", sa.String(length=64), nullable=True),
        sa.Column("resolved_at", _utc(), nullable=True),
        sa.Column("silence_id", BIG_ID, nullable=True),
        sa.Column("incident_url", sa.Text(), nullable=True),
        sa.Column("incident_claimed_by", sa.String(length=64), nullable=True),
        sa.Column("retry_requested_by", sa.String(length=64), nullable=True),
        sa.Column("retry_requested_at", _utc(), nullable=True),
        sa.Column("retry_count", sa.Integer(), nullable=False),
        sa.Column("created_at", _utc(), nullable=False),
        sa.Column("updated_at", _utc(), nullable=False),
        sa.ForeignKeyConstraint(
            ["digest_id"], ["alert_digests.id"], name=op.f("fk_alerts_digest_id_alert_digests")
        ),
        sa.ForeignKeyConstraint(
            ["silence_id"], ["alert_silences.id"], name=op.f("fk_alerts_silence_id_alert_silences")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alerts")),
        sa.UniqueConstraint("open_key", name=op.f("uq_alerts_open_key")),
    )
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_alerts_dedup_key"), ["dedup_key"], unique=False)
        batch_op.create_index(batch_op.f("ix_alerts_digest_id"), ["digest_id"], unique=False)
        batch_op.create_index("ix_alerts_first_seen", ["first_seen"], unique=False)
        batch_op.create_index("ix_alerts_status_next_flush_at", ["status", "next_flush_at"], unique=False)
        batch_op.create_index("ix_alerts_status_repeat_at", ["status", "repeat_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.drop_index("ix_alerts_status_repeat_at")
        batch_op.drop_index("ix_alerts_status_next_flush_at")
        batch_op.drop_index("ix_alerts_first_seen")
        batch_op.drop_index(batch_op.f("ix_alerts_digest_id"))
        batch_op.drop_index(batch_op.f("ix_alerts_dedup_key"))

    op.drop_table("alerts")
    op.drop_table("alert_channels")
    with op.batch_alter_table("alert_silences", schema=None) as batch_op:
        batch_op.drop_index("ix_alert_silences_ended_at_ends_at")

    op.drop_table("alert_silences")
    op.drop_table("alert_health_checks")
    op.drop_table("alert_digests")
