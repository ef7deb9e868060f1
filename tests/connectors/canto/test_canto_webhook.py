"""Verifying Canto webhook deliveries by their shared secure token."""

from __future__ import annotations

import json
from typing import Any

import pytest

from connectors.webhooks import WebhookRejected, verify_canto_delivery

SECURE_TOKEN = "canto-shared-secure-token"


def delivery(**fields: Any) -> bytes:
    payload: dict[str, Any] = {
        "id": "3kcq6fjjshyvuwefszd32en4gg",
        "scheme": "image",
        "displayname": "trail-runner-x-mud-action.jpg",
        "album": "",
        "secure_token": SECURE_TOKEN,
    }
    payload.update(fields)
    return json.dumps({k: v for k, v in payload.items() if v is not None}).encode()


def test_delivery_with_the_right_token_yields_the_event() -> None:
    event = verify_canto_delivery(delivery(event="Update Metadata"), secure_token=SECURE_TOKEN)
    assert event.id == "3kcq6fjjshyvuwefszd32en4gg"
    assert event.scheme == "image"
    assert event.displayname == "trail-runner-x-mud-action.jpg"
    assert event.event == "Update Metadata"
    assert event.delivery_id.startswith("canto-")


def test_a_retried_delivery_has_the_same_delivery_id() -> None:
    first = verify_canto_delivery(delivery(time="20250310090000000"), secure_token=SECURE_TOKEN)
    again = verify_canto_delivery(delivery(time="20250310090000000"), secure_token=SECURE_TOKEN)
    assert first.delivery_id == again.delivery_id


def test_a_later_change_of_the_same_asset_has_another_delivery_id() -> None:
    first = verify_canto_delivery(delivery(time="20250310090000000"), secure_token=SECURE_TOKEN)
    later = verify_canto_delivery(delivery(time="20250310091500000"), secure_token=SECURE_TOKEN)
    assert first.delivery_id != later.delivery_id


def test_without_a_timestamp_different_bodies_are_not_mistaken_for_retries() -> None:
    upload = verify_canto_delivery(delivery(event="Upload"), secure_token=SECURE_TOKEN)
    album = verify_canto_delivery(
        delivery(event="Upload", album="a3jt4mvukrlsppbsipycgtgvol"), secure_token=SECURE_TOKEN
    )
    assert upload.delivery_id != album.delivery_id


def test_wrong_token_is_rejected_without_echoing_either_token() -> None:
    with pytest.raises(WebhookRejected) as caught:
        verify_canto_delivery(delivery(secure_token="guessed-token"), secure_token=SECURE_TOKEN)
    assert caught.value.reason == "bad_token"
    assert caught.value.field == "secure_token"
    assert "guessed-token" not in str(caught.value)
    assert SECURE_TOKEN not in str(caught.value)


def test_token_that_is_not_a_string_is_rejected() -> None:
    with pytest.raises(WebhookRejected) as caught:
        verify_canto_delivery(delivery(secure_token=12345), secure_token=SECURE_TOKEN)
    assert caught.value.reason == "bad_token"


@pytest.mark.parametrize("token", [None, ""])
def test_missing_token_is_rejected(token: str | None) -> None:
    with pytest.raises(WebhookRejected) as caught:
        verify_canto_delivery(delivery(secure_token=token), secure_token=SECURE_TOKEN)
    assert caught.value.reason == "missing_token"


@pytest.mark.parametrize("body", [b"", b"not json", b"[1, 2]", b"\xff\xfe", b'"just a string"'])
def test_malformed_body_is_rejected(body: bytes) -> None:
    with pytest.raises(WebhookRejected) as caught:
        verify_canto_delivery(body, secure_token=SECURE_TOKEN)
    assert caught.value.reason == "malformed_body"


def test_authentic_delivery_missing_the_asset_id_names_the_field() -> None:
    with pytest.raises(WebhookRejected) as caught:
        verify_canto_delivery(delivery(id=None), secure_token=SECURE_TOKEN)
    assert caught.value.reason == "invalid_field"
    assert caught.value.field == "id"


def test_token_is_checked_before_the_fields_so_forgeries_learn_nothing() -> None:
    with pytest.raises(WebhookRejected) as caught:
        verify_canto_delivery(delivery(id=None, secure_token="forged"), secure_token=SECURE_TOKEN)
    assert caught.value.reason == "bad_token"


def test_an_unconfigured_secure_token_refuses_every_delivery() -> None:
    with pytest.raises(ValueError):
        verify_canto_delivery(delivery(secure_token=""), secure_token="")
