"""Asset requests from other systems, their uploaded Canto assets, and iconik history imports.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24 23:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "asset_requests",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("system", sa.String(length=64), nullable=False),
        sa.Column("external_id", sa.String(length=128), nullable=True),
        sa.Column("body_hash", sa.String(length=64), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("requested_by", sa.String(length=128), nullable=True),
        sa.Column("callback_url", sa.Text(), nullable=True),
        sa.Column("due_date", sa.Date(), nullable=True),
        sa.Column("tags", JSON, nullable=False),
        sa.Column("fields", JSON, nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("canto_environment", sa.String(length=64), nullable=False),
        sa.Column("canto_album_id", sa.String(length=64), nullable=True),
        sa.Column("canto_album_name", sa.String(length=255), nullable=True),
        sa.Column("canto_album_path", sa.String(length=1024), nullable=True),
        sa.Column("asset_ref", sa.String(length=255), nullable=True),
        sa.Column("asset_name", sa.String(length=255), nullable=True),
        sa.Column("failure_reason", sa.Text(), nullable=True),
        sa.Column("callback_status", sa.String(length=16), nullable=True),
        sa.Column("callback_attempts", sa.Integer(), nullable=False),
        sa.Column("callback_last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("fulfilled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("callback_delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_asset_requests")),
        sa.UniqueConstraint("system", "external_id", name="uq_asset_requests_system_external_id"),
    )
    with op.batch_alter_table("asset_requests", schema=None) as batch_op:
        batch_op.create_index("ix_asset_requests_canto_album_id", ["canto_album_id"], unique=False)
        batch_op.create_index("ix_asset_requests_created_at", ["created_at"], unique=False)

    op.create_table(
        "asset_request_assets",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("request_id", BIG_ID, nullable=False),
        sa.Column("asset_ref", sa.String(length=255), nullable=False),
        sa.Column("approval_status", sa.String(length=32), nullable=False),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["asset_requests.id"],
            name=op.f("fk_asset_request_assets_request_id_asset_requests"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_asset_request_assets")),
        sa.UniqueConstraint("asset_ref", name=op.f("uq_asset_request_assets_asset_ref")),
    )
    with op.batch_alter_table("asset_request_assets", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_asset_request_assets_request_id"), ["request_id"], unique=False)

    op.create_table(
        "media_history_imports",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("asset_id", sa.String(length=64), nullable=False),
        sa.Column("history_id", sa.String(length=64), nullable=False),
        sa.Column("environment", sa.String(length=64), nullable=False),
        sa.Column("audit_seq", sa.BigInteger(), nullable=True),
        sa.Column("imported_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_media_history_imports")),
        sa.UniqueConstraint("asset_id", "history_id", name="uq_media_history_imports_asset_id_history_id"),
    )


def downgrade() -> None:
    op.drop_table("media_history_imports")
    with op.batch_alter_table("asset_request_assets", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_asset_request_assets_request_id"))
    op.drop_table("asset_request_assets")
    with op.batch_alter_table("asset_requests", schema=None) as batch_op:
        batch_op.drop_index("ix_asset_requests_created_at")
        batch_op.drop_index("ix_asset_requests_canto_album_id")
    op.drop_table("asset_requests")
