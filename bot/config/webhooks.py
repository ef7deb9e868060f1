"""`webhooks:`: vendor webhook secrets and the rules deliveries trigger."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

__all__ = [
    "DEFAULT_ICONIK_HEADER",
    "AlertAction",
    "NotifyAction",
    "ReleaseAction",
    "WebhookAction",
    "WebhookActionRule",
    "WebhookSettings",
    "WebhookSource",
]

DEFAULT_ICONIK_HEADER = "X-Opsgate-Webhook-Token"
WebhookSource = Literal["canto", "iconik"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NotifyAction(_Strict):
    """Post the delivery to a Slack channel."""

    kind: Literal["notify"] = "notify"
    channel: str = Field(min_length=1)


class ReleaseAction(_Strict):
    """Open a release request for the delivery's asset to a configured destination."""

    kind: Literal["release"] = "release"
    destination: str = Field(min_length=1)


class AlertAction(_Strict):
    """Raise an alert of this severity."""

    kind: Literal["alert"] = "alert"
    severity: Literal["info", "warning", "critical"] = "warning"


WebhookAction = Annotated[NotifyAction | ReleaseAction | AlertAction, Field(discriminator="kind")]


class WebhookActionRule(_Strict):
    """When a delivery matches, do `action`. Unset matchers match anything.

    `event` is Canto's event name (e.g. "Update Metadata") or iconik's event_type ("assets"),
    compared case-insensitively; `realm` and `operation` are iconik's. `conditions` map a dotted
    path in the payload to a value or a list of accepted values; `metadata.<field>` reads an iconik
    metadata field's values (`data.metadata_values.<field>.field_values[].value`).
    """

    name: str = Field(min_length=1)
    source: WebhookSource
    event: str | None = None
    realm: str | None = None
    operation: str | None = None
    conditions: dict[str, str | list[str]] = Field(default_factory=dict)
    action: WebhookAction

    @model_validator(mode="after")
    def _iconik_matchers_for_iconik(self) -> WebhookActionRule:
        if self.source == "canto" and (self.realm or self.operation):
            raise ValueError(f"rule {self.name!r}: realm and operation only apply to iconik deliveries")
        return self


class WebhookSettings(BaseModel):
    """Webhook secrets (as ${ENV} references in the YAML file) and the rules deliveries trigger."""

    model_config = ConfigDict(extra="forbid")

    canto_secure_token: SecretStr | None = Field(None, description="Canto's webhook Secure Token")
    iconik_header_name: str = Field(DEFAULT_ICONIK_HEADER, min_length=1)
    iconik_secret: SecretStr | None = Field(None, description="value of iconik_header_name on deliveries")
    actions: list[WebhookActionRule] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_rule_names(self) -> WebhookSettings:
        names = [rule.name for rule in self.actions]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"webhook action names must be unique: {', '.join(duplicates)}")
        return self
