"""Tamper-evident audit records: canonical JSON, SHA-256 chaining and secret fingerprints.

Pure functions; the database side (bot/db/audit_log.py) appends and streams rows. A record's hash
covers its sequence number and the previous hash, so editing, deleting or reordering any event
breaks the chain at that point, and the head row catches truncation of the tail.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from pydantic import SecretStr

__all__ = [
    "GENESIS_HASH",
    "AuditRecord",
    "ChainBreak",
    "ChainVerifier",
    "Fingerprinter",
    "canonical_json",
    "chain_hash",
    "normalise",
    "scrub",
]

GENESIS_HASH = "0" * 64
SECRET_KEY_PATTERN = re.compile(
    r"(secret|password|passwd|token|api[_-]?key|private[_-]?key|credential_value|pat$|authorization)",
    re.IGNORECASE,
)


_CANONICAL = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS


def canonical_json(value: Any) -> str:
    """Sorted keys, no whitespace, UTF-8 kept: the same data always hashes the same.

    orjson because verification re-serialises every event: it is several times faster than the
    standard library here, and append and verify share this one function.
    """
    return orjson.dumps(value, option=_CANONICAL, default=str).decode()


def normalise(value: Any) -> Any:
    """The JSON value as it will read back from the database (datetimes become strings...)."""
    return orjson.loads(canonical_json(value))


@dataclass(frozen=True)
class AuditRecord:
    occurred_at: datetime
    actor: str
    action: str
    request_ref: str | None = None
    subject: str | None = None
    before_status: str | None = None
    after_status: str | None = None
    reason: str | None = None
    evidence: Mapping[str, Any] = field(default_factory=dict)

    def body(self, seq: int) -> dict[str, Any]:
        return {
            "seq": seq,
            "occurred_at": self.occurred_at.astimezone(UTC).isoformat(timespec="microseconds"),
            "actor": self.actor,
            "action": self.action,
            "request_ref": self.request_ref,
            "subject": self.subject,
            "before_status": self.before_status,
            "after_status": self.after_status,
            "reason": self.reason,
            "evidence": dict(self.evidence),
        }


def chain_hash(prev_hash: str, body: Mapping[str, Any]) -> str:
    return hashlib.sha256((prev_hash + canonical_json(body)).encode()).hexdigest()


class Fingerprinter:
    """Keyed HMAC-SHA256 so a secret can be recognised again but never recovered (Vault style)."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("fingerprint key must be at least 16 bytes")
        self._key = key

    def __repr__(self) -> str:
        return "Fingerprinter(<key hidden>)"

    def fingerprint(self, secret: str | SecretStr) -> str:
        raw = secret.get_secret_value() if isinstance(secret, SecretStr) else secret
        digest = hmac.new(self._key, raw.encode(), hashlib.sha256).hexdigest()
        return f"hmac-sha256:{digest}"

    @staticmethod
    def short(fingerprint: str) -> str:
        """What people see: enough to compare, too little to matter."""
        return fingerprint.removeprefix("hmac-sha256:")[:12]


def scrub(value: Any, fingerprinter: Fingerprinter, *, key: str = "") -> Any:
    """Replace every secret-like value (by key name or SecretStr type) with its fingerprint."""
    if isinstance(value, SecretStr):
        return fingerprinter.fingerprint(value)
    if isinstance(value, Mapping):
        return {str(k): scrub(v, fingerprinter, key=str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [scrub(v, fingerprinter, key=key) for v in value]
    if (
        isinstance(value, str)
        and key
        and SECRET_KEY_PATTERN.search(key)
        and not value.startswith("hmac-sha256:")
    ):
        return fingerprinter.fingerprint(value)
    return value


@dataclass(frozen=True)
class ChainBreak:
    seq: int
    problem: str

    def __str__(self) -> str:
        return f"audit event {self.seq}: {self.problem}"


class ChainVerifier:
    """Feed stored events in sequence order; holds O(1) state, so memory does not grow."""

    def __init__(self) -> None:
        self.expected_seq = 1
        self.prev_hash = GENESIS_HASH
        self.count = 0
        self.first_break: ChainBreak | None = None

    def feed(self, body: Mapping[str, Any], prev_hash: str, stored_hash: str) -> ChainBreak | None:
        if self.first_break is not None:
            return self.first_break
        seq = int(body["seq"])
        if seq != self.expected_seq:
            problem = (
                f"expected event {self.expected_seq} next but found {seq}: "
                f"event(s) {self.expected_seq}..{seq - 1} were deleted"
                if seq > self.expected_seq
                else "out of order"
            )
            self.first_break = ChainBreak(self.expected_seq if seq > self.expected_seq else seq, problem)
            return self.first_break
        if prev_hash != self.prev_hash:
            self.first_break = ChainBreak(
                seq, "previous-hash link does not match: events were reordered or replaced"
            )
            return self.first_break
        if chain_hash(prev_hash, body) != stored_hash:
            self.first_break = ChainBreak(seq, "content does not match its hash: the event was edited")
            return self.first_break
        self.prev_hash = stored_hash
        self.expected_seq += 1
        self.count += 1
        return None

    def finish(self, head_seq: int, head_hash: str) -> ChainBreak | None:
        """The head row must point at the last event, otherwise the tail was removed."""
        if self.first_break is not None:
            return self.first_break
        if head_seq != self.count or head_hash != self.prev_hash:
            self.first_break = ChainBreak(
                self.count + 1,
                f"the chain ends at event {self.count} but the head records event {head_seq}: "
                "the newest events were deleted",
            )
        return self.first_break

    def feed_all(self, rows: Iterable[tuple[Mapping[str, Any], str, str]]) -> ChainBreak | None:
        for body, prev, stored in rows:
            if self.feed(body, prev, stored):
                break
        return self.first_break
