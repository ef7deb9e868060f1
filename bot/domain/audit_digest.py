"""Signed digests of the audit head: the anchor outside the database (CloudTrail's digest files).

The hash chain (bot/domain/audit.py) catches clumsy edits, but whoever can write the database
can also rewrite the chain and its head. So at an interval, and at shutdown, the head is signed
with an Ed25519 key the database never holds and the digest is published outside it. A digest
says "at `created_at` the trail held `event_count` events, the last was `last_seq` with hash
`last_hash`"; each names the previous digest's hash, so digests chain too.

Verification compares every digest with the trail by point lookups (`TrailPoints`) and names
what it finds: the newest events deleted (truncation), everything deleted (wipe), events edited
and the chain rehashed (recompute), sequence numbers shifted (renumber), a digest that is not
signed by a trusted key (signature), a digest missing from the chain (gap).

Pure: no files, no database. The directory of digest files is bot/db/digest_files.py, the trail
lookups bot/db/audit_log.py, the periodic duty bot/jobs/audit_digests.py. The format is
described in docs/audit-digests.md.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from bot.domain.audit import GENESIS_HASH, canonical_bytes

__all__ = [
    "DIGEST_FORMAT",
    "HEAD_MISSING",
    "AuditDigest",
    "DigestFile",
    "DigestFinding",
    "DigestFormatError",
    "DigestKeyError",
    "DigestSigner",
    "FindingKind",
    "HeadSnapshot",
    "TrailPoints",
    "check_digest_chain",
    "check_digests_against_trail",
    "digest_hash",
    "event_fingerprint",
    "key_id_of",
    "load_private_key",
    "load_public_key",
    "mismatched",
    "moments_to_look_up",
    "public_key_pem",
    "signature_verifies",
]

DIGEST_FORMAT = "opsgate-audit-digest/1"
HEAD_MISSING = "the audit_head row is missing: it was deleted"
_HEX64 = r"^[0-9a-f]{64}$"
_KEY_ID = r"^ed25519:[0-9a-f]{16}$"


class DigestFormatError(ValueError):
    """A file that is not a well-formed digest; the message says which field is wrong."""


class DigestKeyError(ValueError):
    """A signing or public key that cannot be used; the message says why (never the key)."""


# --------------------------------------------------------------------------- the digest


class AuditDigest(BaseModel):
    """One signed digest: JSON primitives only, so the signed bytes are the canonical JSON of
    the fields as stored (sorted keys, no whitespace, UTF-8), reproducible in any language."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    format: Literal["opsgate-audit-digest/1"]
    digest_seq: int = Field(ge=1)
    created_at: str
    last_seq: int = Field(ge=0)
    last_hash: str = Field(pattern=_HEX64)
    event_count: int = Field(ge=0)
    last_event_at: str | None
    last_event_fingerprint: str | None = Field(pattern=_HEX64)
    previous_digest_hash: str = Field(pattern=_HEX64)
    key_id: str = Field(pattern=_KEY_ID)
    signature: str

    @field_validator("created_at", "last_event_at")
    @classmethod
    def _iso_utc(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                moment = datetime.fromisoformat(value)
            except ValueError:
                raise ValueError("not an ISO 8601 time") from None
            if moment.utcoffset() is None or moment.utcoffset():
                raise ValueError("must be UTC (+00:00)")
        return value

    @classmethod
    def from_document(cls, document: Any) -> AuditDigest:
        try:
            return cls.model_validate(document)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "document"
            raise DigestFormatError(f"{where}: {first['msg']}") from None

    def document(self) -> dict[str, Any]:
        return self.model_dump()

    def signed_bytes(self) -> bytes:
        return canonical_bytes(self.model_dump(exclude={"signature"}))

    @property
    def created(self) -> datetime:
        return datetime.fromisoformat(self.created_at)

    def describe(self) -> str:
        """How findings name a digest: its number and when it was signed."""
        return f"digest {self.digest_seq} of {self.created:%Y-%m-%d %H:%M:%S} UTC"


def digest_hash(digest: AuditDigest) -> str:
    """SHA-256 of the whole digest's canonical JSON, signature included: the next digest's link."""
    return hashlib.sha256(canonical_bytes(digest.document())).hexdigest()


def event_fingerprint(body: Mapping[str, Any]) -> str:
    """SHA-256 of an event's hashed body without its sequence number: the same event keeps its
    fingerprint when it is renumbered, which is how renumbering is told from rewriting."""
    return hashlib.sha256(canonical_bytes({k: v for k, v in body.items() if k != "seq"})).hexdigest()


@dataclass(frozen=True)
class HeadSnapshot:
    """The head of the trail as one database snapshot saw it, with what it points at."""

    last_seq: int
    last_hash: str
    event_count: int  # events stored with seq <= last_seq (equal to last_seq in an intact trail)
    last_event_at: str | None  # the head event's occurred_at as hashed; None for an empty trail
    last_event_fingerprint: str | None  # None when the head event is missing


# --------------------------------------------------------------------------- keys


def key_id_of(public_key: Ed25519PublicKey) -> str:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "ed25519:" + hashlib.sha256(raw).hexdigest()[:16]


def public_key_pem(public_key: Ed25519PublicKey) -> str:
    return public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def load_private_key(text: str | bytes) -> Ed25519PrivateKey:
    """A PKCS#8 PEM private key, or the base64 of the raw 32-byte key (`opsgate keygen --audit-signing`)."""
    data = text.encode() if isinstance(text, str) else text
    data = data.strip()
    if data.startswith(b"-----BEGIN"):
        try:
            key = serialization.load_pem_private_key(data, password=None)
        except (ValueError, TypeError) as exc:
            raise DigestKeyError(f"not a readable unencrypted PEM private key ({exc})") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise DigestKeyError(f"a PEM {type(key).__name__}, not an Ed25519 private key")
        return key
    return Ed25519PrivateKey.from_private_bytes(_raw_32(data, "private"))


def load_public_key(text: str | bytes) -> Ed25519PublicKey:
    """A PEM public key (as `opsgate audit public-key` prints it), or base64 of the raw 32 bytes."""
    data = text.encode() if isinstance(text, str) else text
    data = data.strip()
    if data.startswith(b"-----BEGIN"):
        try:
            key = serialization.load_pem_public_key(data)
        except (ValueError, TypeError) as exc:
            raise DigestKeyError(f"not a readable PEM public key ({exc})") from None
        if not isinstance(key, Ed25519PublicKey):
            raise DigestKeyError(f"a PEM {type(key).__name__}, not an Ed25519 public key")
        return key
    return Ed25519PublicKey.from_public_bytes(_raw_32(data, "public"))


def _raw_32(data: bytes, kind: str) -> bytes:
    try:
        raw = base64.b64decode(data + b"=" * (-len(data) % 4), altchars=b"-_", validate=False)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 32:
        raise DigestKeyError(f"not an Ed25519 {kind} key: expected PEM or base64 of 32 bytes")
    return raw


class DigestSigner:
    """Signs heads with a private key that lives outside the database."""

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._key = private_key
        self.public_key = private_key.public_key()
        self.key_id = key_id_of(self.public_key)

    def __repr__(self) -> str:
        return f"DigestSigner({self.key_id}, <private key hidden>)"

    def sign(
        self,
        head: HeadSnapshot,
        *,
        previous: AuditDigest | None,
        created_at: datetime,
        digest_seq: int | None = None,
    ) -> AuditDigest:
        """The next digest after `previous`; `digest_seq` when it is not the next number (a forged
        digest in between is skipped: the gap shows in verification)."""
        unsigned: dict[str, Any] = {
            "format": DIGEST_FORMAT,
            "digest_seq": digest_seq or (previous.digest_seq + 1 if previous else 1),
            "created_at": created_at.astimezone(UTC).isoformat(timespec="microseconds"),
            "last_seq": head.last_seq,
            "last_hash": head.last_hash,
            "event_count": head.event_count,
            "last_event_at": head.last_event_at,
            "last_event_fingerprint": head.last_event_fingerprint,
            "previous_digest_hash": digest_hash(previous) if previous else GENESIS_HASH,
            "key_id": self.key_id,
        }
        signature = self._key.sign(canonical_bytes(unsigned))
        return AuditDigest.from_document({**unsigned, "signature": base64.b64encode(signature).decode()})


def signature_verifies(digest: AuditDigest, public_key: Ed25519PublicKey) -> bool:
    try:
        signature = base64.b64decode(digest.signature, validate=True)
        public_key.verify(signature, digest.signed_bytes())
    except (InvalidSignature, binascii.Error, ValueError):
        return False
    return True


# --------------------------------------------------------------------------- verification


class FindingKind(StrEnum):
    TRUNCATION = "truncation"
    WIPE = "wipe"
    RECOMPUTE = "recompute"
    RENUMBER = "renumber"
    DELETION = "deletion"
    SIGNATURE = "signature"
    GAP = "gap"
    UNREADABLE = "unreadable"
    HEAD = "head"


@dataclass(frozen=True)
class DigestFinding:
    kind: FindingKind
    message: str

    def __str__(self) -> str:
        return f"{self.kind.value}: {self.message}"


@dataclass(frozen=True)
class DigestFile:
    """A digest as read from where it was published, with the name findings cite."""

    name: str
    digest: AuditDigest


def check_digest_chain(
    files: Sequence[DigestFile], keys: Mapping[str, Ed25519PublicKey]
) -> tuple[list[AuditDigest], list[DigestFinding]]:
    """The authentic digests (in order), and what is wrong with the others and with the chain:
    forged or edited digests, missing or replaced ones.

    Walking back from the newest, a digest is authentic if its signature verifies with a trusted
    key, or if the next digest is authentic, was signed with the same key and names this one's
    hash: the duty chains only onto a digest it has verified with its own key (or one of another
    key, which this rule never vouches for). An intact chain costs one signature check per key.
    """
    findings: list[DigestFinding] = []
    by_seq: dict[int, DigestFile] = {}
    for file in sorted(files, key=lambda f: (f.digest.digest_seq, f.name)):
        number = file.digest.digest_seq
        if number in by_seq:
            findings.append(
                DigestFinding(
                    FindingKind.GAP,
                    f"{file.name}: a second digest {number} (the first is {by_seq[number].name}): "
                    "one of them was forged",
                )
            )
            continue
        by_seq[number] = file
    ordered = [by_seq[n] for n in sorted(by_seq)]
    hashes = [digest_hash(f.digest) for f in ordered]
    authentic = [False] * len(ordered)
    forged: list[DigestFinding] = []
    for index in range(len(ordered) - 1, -1, -1):
        digest = ordered[index].digest
        if index + 1 < len(ordered) and authentic[index + 1]:
            later = ordered[index + 1].digest
            if (
                later.digest_seq == digest.digest_seq + 1
                and later.key_id == digest.key_id
                and later.previous_digest_hash == hashes[index]
            ):
                authentic[index] = True
                continue
        problem = _signature_problem(ordered[index], keys)
        if problem is None:
            authentic[index] = True
        else:
            forged.append(problem)
    findings.extend(reversed(forged))
    findings.extend(_chain_gaps(ordered, hashes))
    return [f.digest for f, ok in zip(ordered, authentic, strict=True) if ok], findings


def _signature_problem(file: DigestFile, keys: Mapping[str, Ed25519PublicKey]) -> DigestFinding | None:
    digest = file.digest
    key = keys.get(digest.key_id)
    if key is None:
        return DigestFinding(
            FindingKind.SIGNATURE, f"{file.name}: signed by {digest.key_id}, which is not a trusted key"
        )
    if not signature_verifies(digest, key):
        return DigestFinding(
            FindingKind.SIGNATURE,
            f"{file.name}: the signature does not verify with {digest.key_id}: the digest was forged or edited",
        )
    return None


def _chain_gaps(ordered: Sequence[DigestFile], hashes: Sequence[str]) -> Iterable[DigestFinding]:
    for index, file in enumerate(ordered):
        digest = file.digest
        previous = ordered[index - 1] if index else None
        expected = previous.digest.digest_seq + 1 if previous else 1
        if digest.digest_seq > expected:
            after = f"digest {previous.digest.digest_seq}" if previous else "the start"
            missing = (
                f"digest {expected} is"
                if digest.digest_seq == expected + 1
                else f"digests {expected}..{digest.digest_seq - 1} are"
            )
            yield DigestFinding(FindingKind.GAP, f"{missing} missing ({file.name} follows {after})")
        elif previous is not None and digest.previous_digest_hash != hashes[index - 1]:
            yield DigestFinding(
                FindingKind.GAP,
                f"{file.name}: its previous-digest hash does not match {previous.name}: "
                "a digest between them was replaced",
            )
        elif previous is None and digest.digest_seq == 1 and digest.previous_digest_hash != GENESIS_HASH:
            yield DigestFinding(
                FindingKind.GAP,
                f"{file.name}: digest 1 names a previous digest: earlier digests were removed",
            )


@dataclass(frozen=True)
class TrailPoints:
    """What the trail holds at the points the digests name, read by index lookups: the hash at
    every digest's `last_seq`, and only for digests that do not match, where their event went."""

    head_seq: int | None  # None: the audit_head row is missing
    last_seq: int  # the highest stored sequence number (0: no events at all)
    hash_at: Mapping[int, str]  # seq -> stored hash, for each digest's last_seq that exists
    fingerprint_at: Mapping[int, str] = field(default_factory=dict)  # for the mismatched seqs
    seq_of_hash: Mapping[str, int] = field(default_factory=dict)  # where a mismatched last_hash is now
    seqs_of_fingerprint: Mapping[str, Sequence[int]] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return self.last_seq == 0


def mismatched(digests: Sequence[AuditDigest], points: TrailPoints) -> list[AuditDigest]:
    """The digests whose event is not where they left it: only these need further lookups."""
    return [d for d in digests if d.last_seq > 0 and points.hash_at.get(d.last_seq) != d.last_hash]


def moments_to_look_up(digests: Sequence[AuditDigest], points: TrailPoints) -> set[str]:
    """The `occurred_at` of mismatched head events not found by their hash either: the events
    with those times are fingerprinted to tell a renumbered event from a rewritten one."""
    return {
        d.last_event_at
        for d in mismatched(digests, points)
        if d.last_event_at is not None and d.last_hash not in points.seq_of_hash
    }


def check_digests_against_trail(digests: Sequence[AuditDigest], points: TrailPoints) -> list[DigestFinding]:
    """One finding per kind of damage, naming the earliest digest that shows it (the edit lies
    after the intact digest before it) and how many later digests agree."""
    if points.head_seq is None:
        head = [DigestFinding(FindingKind.HEAD, HEAD_MISSING)]
    else:
        head = []
    anchored = [d for d in digests if d.last_seq > 0]
    if not anchored:
        return head
    if points.empty:
        newest = anchored[-1]
        return [
            *head,
            DigestFinding(
                FindingKind.WIPE,
                f"the trail is empty but {len(anchored)} digest(s) recorded events (the newest, "
                f"{newest.describe()}, recorded {newest.event_count} events up to event {newest.last_seq}): "
                "every event was deleted",
            ),
        ]
    groups: dict[FindingKind, list[tuple[AuditDigest, str]]] = {}
    last_intact: AuditDigest | None = None
    for digest in anchored:
        verdict = _classify(digest, points, last_intact)
        if verdict is None:
            last_intact = digest
        else:
            groups.setdefault(verdict[0], []).append((digest, verdict[1]))
    findings = list(head)
    for kind in (FindingKind.TRUNCATION, FindingKind.RENUMBER, FindingKind.RECOMPUTE, FindingKind.DELETION):
        shown = groups.get(kind, [])
        if shown:
            # The earliest digest bounds where an edit lies; for a cut tail the newest digest
            # says how far the trail reached.
            _, message = (
                max(shown, key=lambda s: s[0].last_seq) if kind is FindingKind.TRUNCATION else shown[0]
            )
            others = len(shown) - 1
            more = f" ({others} other digest(s) show the same)" if others else ""
            findings.append(DigestFinding(kind, message + more))
    return findings


def _classify(
    digest: AuditDigest, points: TrailPoints, last_intact: AuditDigest | None
) -> tuple[FindingKind, str] | None:
    seq, recorded = digest.last_seq, digest.last_hash
    stored_hash = points.hash_at.get(seq)
    name = digest.describe()
    since = (
        f"after event {last_intact.last_seq} ({last_intact.describe()} still matches)"
        if last_intact
        else f"at or before event {seq}"
    )
    head_seq = points.head_seq if points.head_seq is not None else points.last_seq
    if stored_hash == recorded:
        if head_seq < seq:
            return (
                FindingKind.TRUNCATION,
                f"{name} recorded event {seq} but the head was moved back to event {head_seq}",
            )
        return None
    moved_to = points.seq_of_hash.get(recorded)
    if moved_to is None and digest.last_event_fingerprint is not None:
        moved_to = next(
            (s for s in points.seqs_of_fingerprint.get(digest.last_event_fingerprint, ()) if s != seq),
            None,
        )
    if moved_to is not None:
        return (
            FindingKind.RENUMBER,
            f"{name} recorded event {seq} (hash {recorded[:12]}) and that event is now number {moved_to}: "
            f"sequence numbers were shifted {since}",
        )
    if stored_hash is not None:
        same_event = points.fingerprint_at.get(seq) == digest.last_event_fingerprint
        what = (
            f"event {seq} itself is unchanged, so an event {since} was edited and the chain rehashed"
            if same_event
            else f"event {seq} was replaced or edited and the chain rehashed"
        )
        return (
            FindingKind.RECOMPUTE,
            f"{name} recorded event {seq} with hash {recorded[:12]} but the trail now has {stored_hash[:12]} "
            f"there: {what}",
        )
    end = max(head_seq, points.last_seq)
    if seq <= end:
        return (
            FindingKind.DELETION,
            f"{name} recorded event {seq} with hash {recorded[:12]}, which is no longer in the trail: it was deleted",
        )
    return (
        FindingKind.TRUNCATION,
        f"{name} recorded event {seq} but the trail ends at event {end}: "
        f"events {end + 1}..{seq} were deleted",
    )
