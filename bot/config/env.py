"""What opsgate reads from the process environment, kept apart from the YAML configuration.

Light on imports on purpose: every command line call reads these settings, while only some
need the configuration models (which import every connector).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from bot.domain.durations import Duration

__all__ = ["Settings"]


class Settings(BaseSettings):
    """Everything read from the process environment (names are the upper-cased field names)."""

    model_config = SettingsConfigDict(extra="ignore", case_sensitive=False)

    database_url: str = "sqlite+aiosqlite:///./opsgate.db"
    # PostgreSQL connections per process: size them so that every process's pool_size +
    # max_overflow, summed, stays below the server's max_connections.
    database_pool_size: int = Field(default=10, ge=1, le=500)
    database_max_overflow: int = Field(default=20, ge=0, le=500)
    opsgate_config: Path = Path("./opsgate.yaml")
    host: str = Field(default="0.0.0.0", validation_alias="OPSGATE_HOST")
    port: int = Field(default=3000, ge=1, le=65535)
    slack_bot_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    slack_app_token: SecretStr | None = None
    slack_api_url: str = "https://slack.com/api/"
    opsgate_secret_key: SecretStr | None = None
    opsgate_secret_key_file: Path = Path("./.opsgate.key")
    # Signed audit digests (docs/audit-digests.md): on when the directory is set. The signing key
    # is an Ed25519 key the database never holds: PEM or base64 (`opsgate keygen --audit-signing`).
    opsgate_audit_digest_dir: Path | None = None
    opsgate_audit_digest_interval: Duration = Field(
        default=timedelta(minutes=15), ge=timedelta(seconds=10), le=timedelta(days=1)
    )
    opsgate_audit_digest_channel: str | None = None  # a Slack channel ID that gets a copy of each digest
    opsgate_audit_signing_key: SecretStr | None = None
    opsgate_audit_signing_key_file: Path | None = None
    log_level: str = Field(default="INFO", validation_alias="OPSGATE_LOG_LEVEL")
    log_format: Literal["auto", "json", "console"] = Field(
        default="auto", validation_alias="OPSGATE_LOG_FORMAT"
    )

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")
