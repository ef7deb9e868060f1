"""Verify and parse inbound Canto and iconik webhook deliveries.

Neither vendor signs its deliveries. Canto echoes a shared "Secure Token" configured in its UI
inside the JSON body (`secure_token`); iconik sends back whatever custom headers were registered
with the webhook, so we register a secret header and expect it on every delivery. Both checks
compare in constant time (`hmac.compare_digest`) so response timing does not leak the secret.

This module is pure: it takes the raw body (and headers) and returns a typed event or raises
`WebhookRejected`. The bot's web layer maps `WebhookRejected` to an HTTP status and answers
duplicates by `delivery_id`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

__all__ = [
    "CantoWebhookEvent",
    "IconikWebhookEvent",
    "RejectionReason",
    "WebhookRejected",
    "verify_canto_delivery",
    "verify_iconik_delivery",
]

RejectionReason = Literal["missing_token", "bad_token", "malformed_body", "invalid_field"]


class WebhookRejected(Exception):
    """A delivery that must not be processed; `reason` says why, `field` names the field at fault.

    The message never contains the expected secret or the token that was presented.
    """

    def __init__(self, reason: RejectionReason, *, field: str | None = None, detail: str = "") -> None:
        self.reason: RejectionReason = reason
        self.field = field
        self.detail = detail
        parts: list[str] = [reason]
        if field:
            parts.append(f"field={field}")
        if detail:
            parts.append(detail)
        super().__init__(": ".join(parts))


class CantoWebhookEvent(BaseModel):
    """One Canto webhook delivery (Upload, Update Metadata, Assign to Album, Delete, ...).

    Canto documents `id`, `scheme`, `displayname`, `album` and `secure_token`; `event` and `time`
    are read when present (unconfirmed) and strengthen the delivery id.
    """

    model_config = ConfigDict(extra="ignore", frozen=True)

    id: str = Field(min_length=1)
    scheme: str = Field(min_length=1)
    displayname: str | None = None
    album: str | None = None
    event: str | None = None
    time: str | None = None
    delivery_id: str = Field(min_length=1, description="ours: Canto sends none (see _canto_delivery_id)")


class IconikWebhookEvent(BaseModel):
    """One iconik notification delivery; `delivery_id` is iconik's `request_id`."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    request_id: str = Field(min_length=1)
    event_type: str = Field(min_length=1)
    object_id: str | None = None
    system_domain_id: str | None = None
    user_id: str | None = None
    realm: str | None = None
    operation: str | None = None
    data: dict[str, Any] = Field(default_factory=dict)

    @property
    def delivery_id(self) -> str:
        """iconik's request id: the same for every retry of one notification."""
        return self.request_id


def _secrets_match(presented: str, expected: str) -> bool:
    # compare_digest on bytes: str arguments must be ASCII, a secret need not be.
    return hmac.compare_digest(presented.encode("utf-8"), expected.encode("utf-8"))


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise WebhookRejected("malformed_body", detail="body is not JSON") from exc
    if not isinstance(payload, dict):
        raise WebhookRejected("malformed_body", detail="body is not a JSON object")
    return payload


def _first_invalid_field(error: ValidationError) -> str:
    first = error.errors()[0]
    return ".".join(str(part) for part in first["loc"]) or "body"


def _canto_delivery_id(payload: Mapping[str, Any]) -> str:
    # Canto sends no delivery id. Retries of one delivery repeat the body, so hash what
    # identifies the change; without a timestamp fall back to the whole body (minus the secret)
    # so two different edits of one asset are not mistaken for a retry.
    parts = [str(payload.get(key) or "") for key in ("id", "scheme", "event", "time")]
    if not payload.get("time"):
        rest = {key: value for key, value in payload.items() if key != "secure_token"}
        parts.append(json.dumps(rest, sort_keys=True, separators=(",", ":"), default=str))
    return "canto-" + hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()[:32]


def verify_canto_delivery(body: bytes, *, secure_token: str) -> CantoWebhookEvent:
    """Return the event if the body carries our shared secure token, else raise WebhookRejected."""
    if not secure_token:
        raise ValueError("secure_token must be configured to accept Canto webhooks")
    payload = _json_object(body)
    presented = payload.get("secure_token")
    if presented is None or presented == "":
        raise WebhookRejected("missing_token", field="secure_token")
    if not isinstance(presented, str) or not _secrets_match(presented, secure_token):
        raise WebhookRejected("bad_token", field="secure_token")
    try:
        return CantoWebhookEvent.model_validate({**payload, "delivery_id": _canto_delivery_id(payload)})
    except ValidationError as exc:
        raise WebhookRejected("invalid_field", field=_first_invalid_field(exc)) from exc


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is not None:
        return value
    # Plain dicts are case-sensitive; HTTP header names are not.
    lowered = name.lower()
    for key, candidate in headers.items():
        if key.lower() == lowered:
            return candidate
    return None


def verify_iconik_delivery(
    headers: Mapping[str, str], body: bytes, *, header_name: str, secret: str
) -> IconikWebhookEvent:
    """Return the event if `header_name` carries our secret, else raise WebhookRejected."""
    if not secret:
        raise ValueError("secret must be configured to accept iconik webhooks")
    presented = _header(headers, header_name)
    if not presented:
        raise WebhookRejected("missing_token", field=header_name)
    if not _secrets_match(presented, secret):
        raise WebhookRejected("bad_token", field=header_name)
    payload = _json_object(body)
    try:
        return IconikWebhookEvent.model_validate(payload)
    except ValidationError as exc:
        raise WebhookRejected("invalid_field", field=_first_invalid_field(exc)) from exc
