"""`asset_requests:`: other systems asking for assets through Canto upload albums."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from bot.config.limits import MAX_JOB_ATTEMPTS

__all__ = ["AssetRequestSettings"]


def _http_prefix(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{value!r} must be an http(s) URL with a host")
    if not parts.path.endswith("/") or parts.query or parts.fragment or parts.username:
        # Without the trailing slash "https://h/hooks" would also allow "https://h/hooks-evil".
        raise ValueError(f"{value!r} must end with '/' and carry no query, fragment or user")
    return value


class AssetRequestSettings(BaseModel):
    """`asset_requests:` in the YAML file; secrets are ${ENV} references (key names say so)."""

    model_config = ConfigDict(extra="forbid")

    api_token: SecretStr = Field(description="the bearer token callers of POST /requests/assets present")
    canto_environment: str = Field(min_length=1, description="environment whose Canto takes the requests")
    album_parent: str = Field(min_length=1, description="Canto folder id or path (A/B) for request albums")
    callback_signing_secret: SecretStr = Field(description="HMAC-SHA256 key for callback signatures")
    allowed_callback_prefixes: list[Annotated[str, Field(min_length=1)]] = Field(default_factory=list)
    request_field: str = Field("Opsgate Request", min_length=1, description="Canto custom field for the id")
    tags: list[str] = Field(default_factory=lambda: ["opsgate-request"])
    slack_channel: str | None = Field(None, description="default: slack.approvals_channel")
    # The job runner waits about 2**attempt seconds between attempts (at most 300 s), so eight
    # attempts span roughly four minutes; it never tries more than MAX_JOB_ATTEMPTS times.
    callback_max_attempts: int = Field(MAX_JOB_ATTEMPTS, ge=1, le=MAX_JOB_ATTEMPTS)
    callback_timeout: float = Field(10.0, gt=0, le=60)

    @field_validator("allowed_callback_prefixes")
    @classmethod
    def _prefixes(cls, value: list[str]) -> list[str]:
        return [_http_prefix(prefix) for prefix in value]

    @field_validator("tags")
    @classmethod
    def _tags(cls, value: list[str]) -> list[str]:
        for tag in value:
            if not tag or "," in tag:
                raise ValueError(f"tag {tag!r} must be non-empty and contain no comma")
        return value
