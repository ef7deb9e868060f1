"""Slack request signing (v0): sign a body, or verify one with an injected clock.

Slack signs every HTTP request it sends with HMAC-SHA256 over ``v0:{timestamp}:{raw body}`` and the
app's signing secret; the result travels as ``X-Slack-Signature: v0=<hex>`` next to
``X-Slack-Request-Timestamp``. Requests older (or newer) than five minutes are refused so that a
captured request cannot be replayed later.
"""

from __future__ import annotations

import hashlib
import hmac

__all__ = [
    "MAX_CLOCK_SKEW_SECONDS",
    "SIGNATURE_VERSION",
    "SignatureRejected",
    "sign",
    "verify",
]

SIGNATURE_VERSION = "v0"
MAX_CLOCK_SKEW_SECONDS = 300


class SignatureRejected(Exception):
    """A request failed signature verification; ``reason`` says why (never echoes the secret)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """Return the ``X-Slack-Signature`` value Slack would send for ``body`` at ``timestamp``."""
    base = f"{SIGNATURE_VERSION}:{timestamp}:".encode() + body
    digest = hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    return f"{SIGNATURE_VERSION}={digest}"


def verify(
    secret: str,
    timestamp_header: str | None,
    signature_header: str | None,
    body: bytes,
    *,
    now: float,
    tolerance: float = MAX_CLOCK_SKEW_SECONDS,
) -> None:
    """Return if the headers prove Slack signed ``body`` within ``tolerance`` of ``now``; else raise.

    Raises SignatureRejected for a missing header, a non-integer timestamp, a timestamp more than
    ``tolerance`` seconds away from ``now`` in either direction, or a signature mismatch.
    """
    if not timestamp_header:
        raise SignatureRejected("missing X-Slack-Request-Timestamp header")
    if not signature_header:
        raise SignatureRejected("missing X-Slack-Signature header")
    try:
        timestamp = int(timestamp_header)
    except ValueError:
        raise SignatureRejected("X-Slack-Request-Timestamp is not an integer") from None
    if abs(now - timestamp) > tolerance:
        raise SignatureRejected("X-Slack-Request-Timestamp is outside the allowed clock skew")
    expected = sign(secret, timestamp, body)
    # compare_digest on bytes: constant time, and a non-ASCII header cannot raise TypeError.
    if not hmac.compare_digest(expected.encode(), signature_header.encode(errors="replace")):
        raise SignatureRejected("X-Slack-Signature does not match the request body")
