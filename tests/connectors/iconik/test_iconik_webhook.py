"""Verifying iconik webhook deliveries by the secret header we registered with the webhook."""

from __future__ import annotations

import json
from typing import Any

import pytest

from connectors.webhooks import WebhookRejected, verify_iconik_delivery

HEADER = "X-Opsgate-Webhook-Secret"
SECRET = "s3cr3t-header-value"


def notification(**fields: Any) -> bytes:
    payload: dict[str, Any] = {
        "system_domain_id": "8d1f6b0e-2c3a-4e5f-9a7b-1c2d3e4f5a6b",
        "object_id": "a56c7b4c-8f10-5d27-947d-52f99bee1668",
        "user_id": "cb914f47-9ade-56c4-bd2a-afebaacc0312",
        "realm": "entity",
        "operation": "update",
        "event_type": "assets",
        "request_id": "d0a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5",
        "data": {"title": "spring-launch-2025-hero-30s.mp4", "status": "ACTIVE"},
    }
    payload.update(fields)
    return json.dumps({k: v for k, v in payload.items() if v is not None}).encode()


def test_delivery_with_our_secret_header_yields_the_event() -> None:
    event = verify_iconik_delivery({HEADER: SECRET}, notification(), header_name=HEADER, secret=SECRET)
    assert event.event_type == "assets"
    assert event.realm == "entity"
    assert event.operation == "update"
    assert event.object_id == "a56c7b4c-8f10-5d27-947d-52f99bee1668"
    assert event.data["status"] == "ACTIVE"
    assert event.delivery_id == "d0a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5"


def test_header_names_match_whatever_their_case() -> None:
    event = verify_iconik_delivery(
        {HEADER.lower(): SECRET}, notification(), header_name=HEADER, secret=SECRET
    )
    assert event.request_id == "d0a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5"


def test_wrong_secret_is_rejected_without_echoing_it() -> None:
    with pytest.raises(WebhookRejected) as caught:
        verify_iconik_delivery({HEADER: "guess"}, notification(), header_name=HEADER, secret=SECRET)
    assert caught.value.reason == "bad_token"
    assert caught.value.field == HEADER
    assert "guess" not in str(caught.value)
    assert SECRET not in str(caught.value)


@pytest.mark.parametrize("headers", [{}, {HEADER: ""}, {"Auth-Token": SECRET}])
def test_missing_secret_header_is_rejected(headers: dict[str, str]) -> None:
    with pytest.raises(WebhookRejected) as caught:
        verify_iconik_delivery(headers, notification(), header_name=HEADER, secret=SECRET)
    assert caught.value.reason == "missing_token"


def test_secret_is_checked_before_the_body_is_parsed() -> None:
    with pytest.raises(WebhookRejected) as caught:
        verify_iconik_delivery({HEADER: "guess"}, b"not json", header_name=HEADER, secret=SECRET)
    assert caught.value.reason == "bad_token"


@pytest.mark.parametrize("body", [b"", b"{", b"[]", b"\xc3\x28"])
def test_malformed_body_is_rejected(body: bytes) -> None:
    with pytest.raises(WebhookRejected) as caught:
        verify_iconik_delivery({HEADER: SECRET}, body, header_name=HEADER, secret=SECRET)
    assert caught.value.reason == "malformed_body"


@pytest.mark.parametrize(("field", "value"), [("request_id", None), ("event_type", None), ("data", "oops")])
def test_body_missing_or_mistyping_a_field_names_it(field: str, value: Any) -> None:
    body = notification(**{field: value})
    with pytest.raises(WebhookRejected) as caught:
        verify_iconik_delivery({HEADER: SECRET}, body, header_name=HEADER, secret=SECRET)
    assert caught.value.reason == "invalid_field"
    assert caught.value.field == field


async def test_headers_registered_with_iconik_are_the_ones_a_delivery_must_carry(world, iconik) -> None:
    hook = await iconik.register_webhook(
        "https://opsgate.acme.example/webhooks/iconik", event_type="assets", headers={HEADER: SECRET}
    )
    delivered_headers = world.domain.webhooks[hook.id]["headers"]  # iconik replays these verbatim
    event = verify_iconik_delivery(delivered_headers, notification(), header_name=HEADER, secret=SECRET)
    assert event.event_type == "assets"
