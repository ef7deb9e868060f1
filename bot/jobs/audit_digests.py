"""The audit digest duty: sign the head of the audit trail and publish it outside the database.

Runs where the scheduler runs (the leader) every OPSGATE_AUDIT_DIGEST_INTERVAL and once more at
shutdown, after the last job has finished. Each run reads the head in one snapshot, chains the
new digest to the newest one in the directory and writes it there (and, if configured, posts a
copy to a Slack channel through the outbox).

Nothing fails quietly: a digest that cannot be signed or written raises an alert (resolved by
the next digest that is written), and so does a trail that no longer matches the previous
digest (events deleted, rewritten or renumbered since), found at signing time by two index
lookups. The format and the verification are in bot/domain/audit_digest.py.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import orjson
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.config.audit_signing import resolve_audit_signing_key
from bot.config.env import Settings
from bot.db.audit_log import AuditHeadMissing, head_snapshot, trail_points
from bot.db.digest_files import DigestDirectory, DigestDirectoryError, DigestExists
from bot.domain.alerts import AlertEvent, Severity
from bot.domain.audit_digest import (
    AuditDigest,
    DigestKeyError,
    DigestSigner,
    FindingKind,
    HeadSnapshot,
    check_digests_against_trail,
    public_key_pem,
    signature_verifies,
)
from bot.jobs.outbox import Outbox

__all__ = [
    "DIGEST_FAILED_KEY",
    "PUBLISH_FAILED_KEY",
    "TRAIL_CHANGED_KEY",
    "AuditDigestDuty",
    "DigestFailed",
    "DigestWritten",
    "SlackDigestPost",
    "audit_digest_duty",
]

log = logging.getLogger("opsgate.audit_digests")

DIGEST_FAILED_KEY = "audit-digest:not-written"
TRAIL_CHANGED_KEY = "audit-digest:trail-changed"
PUBLISH_FAILED_KEY = "audit-digest:not-published"
ALERT_SOURCE = "audit"

AlertSink = Callable[[AlertEvent], Awaitable[object]]
# A further place a digest is published (a Slack channel, a Confluence page...); raising means
# that copy is missing, which is alerted, while the digest file stands.
DigestPublisher = Callable[[AuditDigest], Awaitable[None]]


@dataclass(frozen=True)
class DigestWritten:
    digest: AuditDigest
    path: Path
    tampering: list[str] = field(default_factory=list)  # the trail or digests changed since the last digest
    publish_failures: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class DigestFailed:
    reason: str


class AuditDigestDuty:
    """Call it (the scheduler does) to write one digest; `run()` says what happened."""

    def __init__(
        self,
        *,
        engine: AsyncEngine,
        directory: DigestDirectory,
        signer: DigestSigner | DigestKeyError,
        clock: Callable[[], datetime],
        alert: AlertSink,
        publishers: Sequence[DigestPublisher] = (),
        interval: timedelta = timedelta(minutes=15),
    ) -> None:
        self._engine = engine
        self.directory = directory
        self._signer = signer
        self._clock = clock
        self._alert = alert
        self._publishers = list(publishers)
        self.interval = interval

    def __repr__(self) -> str:
        return f"AuditDigestDuty({str(self.directory.path)!r})"

    async def __call__(self) -> None:
        await self.run()

    async def run(self) -> DigestWritten | DigestFailed:
        """Write one digest and report the outcome to people; never raises."""
        try:
            outcome = await self._write()
        except Exception as exc:  # an unattended duty: whatever went wrong must reach a person
            log.exception("audit digest failed")
            outcome = DigestFailed(f"{type(exc).__name__}: {exc}")
        if isinstance(outcome, DigestWritten):
            outcome = DigestWritten(
                outcome.digest, outcome.path, outcome.tampering, await self._publish(outcome.digest)
            )
        await self._report(outcome)
        return outcome

    async def _write(self) -> DigestWritten | DigestFailed:
        signer = self._signer
        if isinstance(signer, DigestKeyError):
            return DigestFailed(f"the audit signing key cannot be used: {signer}")
        try:
            await asyncio.to_thread(
                self.directory.write_public_key, signer.public_key, public_key_pem(signer.public_key)
            )
            for _ in range(3):  # another process may take the next number first: chain onto its digest
                previous, number, tampering = await asyncio.to_thread(self._chain_point, signer)
                head = await head_snapshot(self._engine)
                tampering += _inconsistencies(head) + await self._changes_since(previous)
                digest = signer.sign(head, previous=previous, created_at=self._clock(), digest_seq=number)
                try:
                    path = await asyncio.to_thread(self.directory.write, digest)
                except DigestExists:
                    continue
                return DigestWritten(digest, path, tampering)
        except AuditHeadMissing as exc:
            return DigestFailed(str(exc))
        except DigestDirectoryError as exc:
            return DigestFailed(str(exc))
        except (SQLAlchemyError, OSError, sqlite3.Error) as exc:
            return DigestFailed(f"cannot read the audit head: {type(exc).__name__}: {exc}")
        return DigestFailed(f"{self.directory.path}: other writers took every digest number tried")

    def _chain_point(self, signer: DigestSigner) -> tuple[AuditDigest | None, int, list[str]]:
        """The digest to chain onto, the next number, and digests found forged on the way.

        Verification trusts a digest that the next one, signed with the same key, names; so the
        newest digest is checked with this key first, and one that fails is passed over (and
        alerted), never vouched for. A digest of another key (before a rotation) is chained as is.
        """
        numbers = self.directory.numbers()
        problems = []
        for number in reversed(numbers):
            try:
                digest = self.directory.load(number)
            except DigestDirectoryError as exc:
                problems.append(str(exc))
                continue
            if digest.key_id != signer.key_id or signature_verifies(digest, signer.public_key):
                return digest, numbers[-1] + 1, problems
            name = self.directory.path / self.directory.file_name(number)
            problems.append(f"{name}: does not verify with {signer.key_id}: it was forged or edited")
        return None, numbers[-1] + 1 if numbers else 1, problems

    async def _changes_since(self, previous: AuditDigest | None) -> list[str]:
        """Whether the trail still holds what the previous digest recorded (index lookups only)."""
        if previous is None:
            return []
        points = await trail_points(self._engine, [previous])
        return [
            str(f) for f in check_digests_against_trail([previous], points) if f.kind is not FindingKind.HEAD
        ]

    async def _publish(self, digest: AuditDigest) -> list[str]:
        failures = []
        for publish in self._publishers:
            try:
                await publish(digest)
            except Exception as exc:  # one missing copy is alerted; the digest file stands
                log.exception("publishing an audit digest failed", extra={"digest": digest.digest_seq})
                failures.append(
                    f"{getattr(publish, 'name', type(publish).__name__)}: {type(exc).__name__}: {exc}"
                )
        return failures

    async def _report(self, outcome: DigestWritten | DigestFailed) -> None:
        events: list[AlertEvent] = []
        if isinstance(outcome, DigestFailed):
            log.error("audit digest not written", extra={"reason": outcome.reason})
            events.append(
                _alert(
                    DIGEST_FAILED_KEY,
                    Severity.ERROR,
                    "Audit digest not written",
                    f"{outcome.reason}\nUntil a digest is written, changes to the audit trail since the last "
                    f"digest in {self.directory.path} cannot be detected.",
                )
            )
        else:
            log.info("audit digest written", extra={"digest": outcome.digest.digest_seq, "path": str(outcome.path),
                                                    "last_seq": outcome.digest.last_seq})  # fmt: skip
            events.append(AlertEvent(dedup_key=DIGEST_FAILED_KEY, action="resolve", source=ALERT_SOURCE))
            if outcome.tampering:
                events.append(
                    _alert(
                        TRAIL_CHANGED_KEY,
                        Severity.CRITICAL,
                        "The audit trail or its digests changed since the last digest",
                        "\n".join(outcome.tampering)
                        + f"\nRun `opsgate audit verify --digests {self.directory.path}`.",
                    )
                )
            if outcome.publish_failures:
                events.append(
                    _alert(
                        PUBLISH_FAILED_KEY,
                        Severity.WARNING,
                        f"Audit digest {outcome.digest.digest_seq} was written but not published everywhere",
                        "\n".join(outcome.publish_failures),
                    )
                )
        for event in events:
            try:
                await self._alert(event)
            except Exception:  # nothing further to tell: the log line is all that is left
                log.exception("raising the audit digest alert failed", extra={"dedup_key": event.dedup_key})


def _inconsistencies(head: HeadSnapshot) -> list[str]:
    """What the snapshot itself shows wrong: rows deleted or added below the head."""
    problems = []
    if head.last_seq and head.last_event_fingerprint is None:
        problems.append(f"the head records event {head.last_seq}, which is not in the trail")
    if head.event_count != head.last_seq:
        problems.append(
            f"the trail holds {head.event_count} events up to its head, which records {head.last_seq}: "
            "events were deleted or inserted"
        )
    return problems


def _alert(key: str, severity: Severity, title: str, summary: str) -> AlertEvent:
    return AlertEvent(
        dedup_key=key, source=ALERT_SOURCE, severity=severity, system="audit", title=title[:200],
        summary=summary[:2800],
    )  # fmt: skip


class SlackDigestPost:
    """Posts a copy of each digest to a Slack channel through the outbox: a second record,
    held by Slack, of what the trail looked like."""

    name = "slack"

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        outbox: Outbox,
        channel: str,
        wake: Callable[[], None],
    ) -> None:
        self._sessions = sessions
        self._outbox = outbox
        self._channel = channel
        self._wake = wake

    async def __call__(self, digest: AuditDigest) -> None:
        document = orjson.dumps(digest.document(), option=orjson.OPT_SORT_KEYS).decode()
        text = (
            f":lock: Audit digest {digest.digest_seq}: {digest.event_count} events, the last is event "
            f"{digest.last_seq} (hash `{digest.last_hash[:12]}`), signed by `{digest.key_id}`.\n```{document}```"
        )
        async with self._sessions() as session, session.begin():
            await self._outbox.enqueue(
                session,
                conversation=self._channel,
                method="chat.postMessage",
                payload={"channel": self._channel, "text": text},
                dedup_key=f"audit-digest:{digest.key_id}:{digest.digest_seq}",
            )
        self._wake()


def audit_digest_duty(
    settings: Settings,
    *,
    engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
    outbox: Outbox,
    clock: Callable[[], datetime],
    alert: AlertSink,
    wake: Callable[[], None],
) -> AuditDigestDuty | None:
    """The duty as the settings describe it; None when OPSGATE_AUDIT_DIGEST_DIR is not set. A
    key that cannot be read does not stop the process: every run raises the alert instead."""
    if settings.opsgate_audit_digest_dir is None:
        return None
    signer: DigestSigner | DigestKeyError
    try:
        signer = DigestSigner(resolve_audit_signing_key(settings))
    except DigestKeyError as exc:
        log.error("audit digests cannot be signed", extra={"reason": str(exc)})
        signer = exc
    publishers: list[DigestPublisher] = []
    if settings.opsgate_audit_digest_channel:
        publishers.append(SlackDigestPost(sessions, outbox, settings.opsgate_audit_digest_channel, wake))
    return AuditDigestDuty(
        engine=engine,
        directory=DigestDirectory(settings.opsgate_audit_digest_dir),
        signer=signer,
        clock=clock,
        alert=alert,
        publishers=publishers,
        interval=settings.opsgate_audit_digest_interval,
    )
