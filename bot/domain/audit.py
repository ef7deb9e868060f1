"""Tamper-evident audit records: canonical JSON, SHA-256 chaining and secret fingerprints.

Pure functions; the database side (bot/db/audit_log.py) appends and streams rows. A record's hash
covers its sequence number and the previous hash, so editing, deleting or reordering any event
breaks the chain at that point, and the head row catches truncation of the tail.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from pydantic import SecretStr

__all__ = [
    "GENESIS_HASH",
    "AuditRecord",
    "ChainBreak",
    "ChainSegment",
    "ChainVerifier",
    "ChainedRecord",
    "Fingerprinter",
    "canonical_bytes",
    "canonical_json",
    "chain_hash",
    "join_segments",
    "normalise",
    "scrub",
]

GENESIS_HASH = "0" * 64
SECRET_KEY_PATTERN = re.compile(
    r"(secret|password|passwd|token|api[_-]?key|private[_-]?key|credential_value|pat$|authorization)",
    re.IGNORECASE,
)


_CANONICAL = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS


def canonical_bytes(value: Any) -> bytes:
    """Sorted keys, no whitespace, UTF-8: the same data always hashes the same.

    orjson because verification re-serialises every event: it is several times faster than the
    standard library here, and append and verify share this one function.
    """
    return orjson.dumps(value, option=_CANONICAL, default=str)


def canonical_json(value: Any) -> str:
    return canonical_bytes(value).decode()


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


@dataclass(frozen=True)
class ChainedRecord:
    """A record as the trail holds it: its place in the chain and its hash."""

    seq: int
    hash: str
    record: AuditRecord


def chain_hash(prev_hash: str, body: Mapping[str, Any]) -> str:
    """SHA-256 over the previous hash followed by the event's canonical JSON (UTF-8)."""
    return hashlib.sha256(prev_hash.encode() + canonical_bytes(body)).hexdigest()


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
    """Feed stored events in sequence order; holds O(1) state, so memory does not grow.

    `prev_hash=None` verifies a segment from the middle of the chain: its first event's link is
    recorded (`start_prev_hash`) for `join_segments` to check against the segment before it.
    """

    def __init__(self, *, first_seq: int = 1, prev_hash: str | None = GENESIS_HASH) -> None:
        self.expected_seq = first_seq
        self.prev_hash = prev_hash
        self.count = 0
        self.first_seen_seq: int | None = None
        self.start_prev_hash: str | None = None
        self.first_break: ChainBreak | None = None

    def feed(self, body: Mapping[str, Any], prev_hash: str, stored_hash: str) -> ChainBreak | None:
        if self.first_break is not None:
            return self.first_break
        seq = int(body["seq"])
        if self.first_seen_seq is None:
            self.first_seen_seq = seq
        if seq != self.expected_seq:
            self.first_break = (
                _deleted(self.expected_seq, seq)
                if seq > self.expected_seq
                else ChainBreak(seq, "out of order")
            )
            return self.first_break
        if self.prev_hash is None:
            self.start_prev_hash = prev_hash  # checked against the previous segment by join_segments
        elif prev_hash != self.prev_hash:
            self.first_break = ChainBreak(seq, LINK_BROKEN)
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
        if self.first_break is None:
            self.first_break = _tail_check(self.count, self.prev_hash, head_seq, head_hash)
        return self.first_break

    def segment(self, first_seq: int) -> ChainSegment:
        return ChainSegment(
            first_seq=first_seq,
            count=self.count,
            first_seen_seq=self.first_seen_seq,
            start_prev_hash=self.start_prev_hash,
            end_hash=self.prev_hash if self.count else None,
            first_break=self.first_break,
        )

    def feed_all(self, rows: Iterable[tuple[Mapping[str, Any], str, str]]) -> ChainBreak | None:
        for body, prev, stored in rows:
            if self.feed(body, prev, stored):
                break
        return self.first_break


LINK_BROKEN = "previous-hash link does not match: events were reordered or replaced"


@dataclass(frozen=True)
class ChainSegment:
    """What verifying one range of sequence numbers found (picklable: ranges verify in parallel)."""

    first_seq: int
    count: int  # events verified before the first break (or all of them)
    first_seen_seq: int | None  # the first stored event in the range, None if the range is empty
    start_prev_hash: str | None  # the link of a middle segment's first event, to check on joining
    end_hash: str | None  # hash of the last verified event
    first_break: ChainBreak | None


def join_segments(
    segments: Sequence[ChainSegment], head_seq: int | None, head_hash: str | None
) -> tuple[int, ChainBreak | None]:
    """Combine consecutive segments into what one sequential pass would have reported:
    (events verified, first break). Gaps and links between segments and the head row are
    checked here; `head_seq=None` (the head row is missing) skips the head check."""
    count = 0
    linked_to = GENESIS_HASH
    expected = segments[0].first_seq if segments else 1
    for segment in segments:
        found = segment.first_seen_seq
        if found is None:
            continue  # an empty range: a gap if anything follows, which the next segment shows
        if found != expected:
            return count, _deleted(expected, found)
        if segment.start_prev_hash is not None and segment.start_prev_hash != linked_to:
            return count, ChainBreak(found, LINK_BROKEN)
        if segment.first_break is not None:
            return count + segment.count, segment.first_break
        count += segment.count
        linked_to = segment.end_hash or linked_to
        expected = found + segment.count
    if head_seq is None or head_hash is None:
        return count, None
    return count, _tail_check(count, linked_to, head_seq, head_hash)


def _deleted(expected: int, found: int) -> ChainBreak:
    return ChainBreak(
        expected,
        f"expected event {expected} next but found {found}: event(s) {expected}..{found - 1} were deleted",
    )


def _tail_check(count: int, last_hash: str | None, head_seq: int, head_hash: str) -> ChainBreak | None:
    if head_seq != count or head_hash != last_hash:
        return ChainBreak(
            count + 1,
            f"the chain ends at event {count} but the head records event {head_seq}: "
            "the newest events were deleted",
        )
    return None
