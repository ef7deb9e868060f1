from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.web.slack_signature import SignatureRejected, sign, verify

# Slack's worked example from "Verifying requests from Slack".
EXAMPLE_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
EXAMPLE_TIMESTAMP = 1531420618
EXAMPLE_SIGNATURE = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
EXAMPLE_BODY = (
    b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V"
    b"&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text="
    b"&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN"
    b"&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
)
SECRET = "test-signing-secret"
NOW = 1_700_000_000


def test_sign_reproduces_slacks_worked_example() -> None:
    assert sign(EXAMPLE_SECRET, EXAMPLE_TIMESTAMP, EXAMPLE_BODY) == EXAMPLE_SIGNATURE


def test_verify_accepts_slacks_worked_example_at_its_own_time() -> None:
    verify(
        EXAMPLE_SECRET, str(EXAMPLE_TIMESTAMP), EXAMPLE_SIGNATURE, EXAMPLE_BODY, now=EXAMPLE_TIMESTAMP + 10
    )


def test_verify_rejects_slacks_worked_example_replayed_today() -> None:
    with pytest.raises(SignatureRejected, match="clock skew"):
        verify(EXAMPLE_SECRET, str(EXAMPLE_TIMESTAMP), EXAMPLE_SIGNATURE, EXAMPLE_BODY, now=NOW)


@pytest.mark.parametrize("offset", [-300, 0, 300])
def test_verify_accepts_timestamps_up_to_five_minutes_away(offset: int) -> None:
    body = b"payload=%7B%7D"
    verify(SECRET, str(NOW + offset), sign(SECRET, NOW + offset, body), body, now=NOW)


@pytest.mark.parametrize("offset", [-301, 301, -400])
def test_verify_rejects_timestamps_more_than_five_minutes_away(offset: int) -> None:
    body = b"payload=%7B%7D"
    with pytest.raises(SignatureRejected, match="clock skew"):
        verify(SECRET, str(NOW + offset), sign(SECRET, NOW + offset, body), body, now=NOW)


@pytest.mark.parametrize(
    ("timestamp", "signature", "reason"),
    [
        (None, "v0=abc", "missing X-Slack-Request-Timestamp"),
        ("", "v0=abc", "missing X-Slack-Request-Timestamp"),
        (str(NOW), None, "missing X-Slack-Signature"),
        (str(NOW), "", "missing X-Slack-Signature"),
        ("12.5", "v0=abc", "not an integer"),
        ("yesterday", "v0=abc", "not an integer"),
        (str(NOW), "v0=abc", "does not match"),
        (str(NOW), "v0=é", "does not match"),
    ],
)
def test_verify_names_the_reason_for_rejecting(
    timestamp: str | None, signature: str | None, reason: str
) -> None:
    with pytest.raises(SignatureRejected, match=reason) as raised:
        verify(SECRET, timestamp, signature, b"text=hi", now=NOW)
    assert SECRET not in str(raised.value)


def test_verify_rejects_a_signature_made_with_another_secret() -> None:
    body = b"command=%2Fpromote"
    with pytest.raises(SignatureRejected, match="does not match"):
        verify(SECRET, str(NOW), sign("other-secret", NOW, body), body, now=NOW)


def test_verify_rejects_a_signature_made_for_another_timestamp() -> None:
    body = b"command=%2Fpromote"
    with pytest.raises(SignatureRejected, match="does not match"):
        verify(SECRET, str(NOW), sign(SECRET, NOW - 1, body), body, now=NOW)


@given(body=st.binary(max_size=512), secret=st.text(min_size=1, max_size=64))
def test_any_signed_body_verifies(body: bytes, secret: str) -> None:
    verify(secret, str(NOW), sign(secret, NOW, body), body, now=NOW)


@given(data=st.data(), body=st.binary(min_size=1, max_size=512))
def test_changing_any_single_byte_of_the_body_breaks_the_signature(data: st.DataObject, body: bytes) -> None:
    signature = sign(SECRET, NOW, body)
    position = data.draw(st.integers(min_value=0, max_value=len(body) - 1), label="position")
    replacement = data.draw(st.integers(min_value=0, max_value=255).filter(lambda b: b != body[position]))
    tampered = body[:position] + bytes([replacement]) + body[position + 1 :]
    with pytest.raises(SignatureRejected, match="does not match"):
        verify(SECRET, str(NOW), signature, tampered, now=NOW)


@given(data=st.data(), body=st.binary(max_size=128))
def test_changing_any_single_character_of_the_signature_breaks_it(data: st.DataObject, body: bytes) -> None:
    signature = sign(SECRET, NOW, body)
    position = data.draw(st.integers(min_value=0, max_value=len(signature) - 1), label="position")
    replacement = data.draw(st.sampled_from("0123456789abcdefv=").filter(lambda c: c != signature[position]))
    tampered = signature[:position] + replacement + signature[position + 1 :]
    with pytest.raises(SignatureRejected, match="does not match"):
        verify(SECRET, str(NOW), tampered, body, now=NOW)
