"""The `secret_versions` table behind `connectors.secrets.LocalSecretStore`.

Each row is one version of a named secret, Fernet-encrypted. Labels follow AWS Secrets Manager:
`pending` (created, not yet verified), `current`, `previous` (last known good), and `retired`
for versions whose value has been destroyed (ciphertext NULL; the row keeps the version number
so numbers are never reused). The database enforces at most one live row per (name, label) and
that only retired rows lack ciphertext.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from bot.db.models import Base, BigId, UtcDateTime

__all__ = ["SECRET_LABELS", "SecretVersion"]

SECRET_LABELS = ("pending", "current", "previous", "retired")
_LIVE = text("label <> 'retired'")


class SecretVersion(Base):
    __tablename__ = "secret_versions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(128), nullable=False)
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    label: Mapped[str] = mapped_column(String(16), nullable=False)
    ciphertext: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)

    __table_args__ = (
        UniqueConstraint("name", "version"),
        Index(
            "uq_secret_versions_live_label",
            "name",
            "label",
            unique=True,
            sqlite_where=_LIVE,
            postgresql_where=_LIVE,
        ),
        CheckConstraint("label IN ('pending', 'current', 'previous', 'retired')", name="label"),
        CheckConstraint(
            "(label = 'retired' AND ciphertext IS NULL) OR (label <> 'retired' AND ciphertext IS NOT NULL)",
            name="ciphertext_unless_retired",
        ),
    )
