"""Secrets: Fernet-encrypted versions of rotated secrets (LocalSecretStore).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24 22:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_LIVE = sa.text("label <> 'retired'")


def upgrade() -> None:
    op.create_table(
        "secret_versions",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("label", sa.String(length=16), nullable=False),
        sa.Column("ciphertext", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "label IN ('pending', 'current', 'previous', 'retired')", name=op.f("ck_secret_versions_label")
        ),
        sa.CheckConstraint(
            "(label = 'retired' AND ciphertext IS NULL) OR (label <> 'retired' AND ciphertext IS NOT NULL)",
            name=op.f("ck_secret_versions_ciphertext_unless_retired"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_secret_versions")),
        sa.UniqueConstraint("name", "version", name=op.f("uq_secret_versions_name")),
    )
    with op.batch_alter_table("secret_versions", schema=None) as batch_op:
        batch_op.create_index(
            "uq_secret_versions_live_label",
            ["name", "label"],
            unique=True,
            sqlite_where=_LIVE,
            postgresql_where=_LIVE,
        )


def downgrade() -> None:
    with op.batch_alter_table("secret_versions", schema=None) as batch_op:
        batch_op.drop_index("uq_secret_versions_live_label")
    op.drop_table("secret_versions")
