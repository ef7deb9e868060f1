"""Append to and read the hash-chained audit table. Callers own the transaction."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, select, type_coerce, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from bot.db.models import AuditEvent, AuditHead
from bot.domain.audit import (
    AuditRecord,
    ChainBreak,
    ChainVerifier,
    Fingerprinter,
    canonical_json,
    chain_hash,
    normalise,
    scrub,
)

__all__ = ["append_event", "event_body", "export_events", "iter_events", "verify_chain"]

EXPORT_COLUMNS = (
    "seq",
    "occurred_at",
    "actor",
    "action",
    "request_ref",
    "subject",
    "before_status",
    "after_status",
    "reason",
    "evidence",
    "prev_hash",
    "hash",
)


async def append_event(
    session: AsyncSession, record: AuditRecord, fingerprinter: Fingerprinter
) -> AuditEvent:
    """Lock the head row, chain the event to it and advance it, inside the caller's transaction.

    If this fails the caller's transaction fails with it: no state change without its event.
    """
    head = (await session.execute(select(AuditHead).where(AuditHead.id == 1).with_for_update())).scalar_one()
    seq = head.seq + 1
    safe = AuditRecord(
        occurred_at=record.occurred_at,
        actor=record.actor,
        action=record.action,
        request_ref=record.request_ref,
        subject=record.subject,
        before_status=record.before_status,
        after_status=record.after_status,
        reason=record.reason,
        evidence=normalise(scrub(dict(record.evidence), fingerprinter)),
    )
    body = safe.body(seq)
    digest = chain_hash(head.hash, body)
    event = AuditEvent(
        seq=seq,
        occurred_at=safe.occurred_at,
        actor=safe.actor,
        action=safe.action,
        request_ref=safe.request_ref,
        subject=safe.subject,
        before_status=safe.before_status,
        after_status=safe.after_status,
        reason=safe.reason,
        evidence=body["evidence"],
        prev_hash=head.hash,
        hash=digest,
    )
    session.add(event)
    result = await session.execute(
        update(AuditHead).where(AuditHead.id == 1, AuditHead.seq == head.seq).values(seq=seq, hash=digest)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise RuntimeError("audit head moved during append")
    await session.flush()
    return event


def event_body(event: AuditEvent) -> dict[str, Any]:
    return AuditRecord(
        occurred_at=event.occurred_at,
        actor=event.actor,
        action=event.action,
        request_ref=event.request_ref,
        subject=event.subject,
        before_status=event.before_status,
        after_status=event.after_status,
        reason=event.reason,
        evidence=event.evidence,
    ).body(event.seq)


async def iter_events(
    engine: AsyncEngine, *, batch: int = 5000, request_ref: str | None = None, subject: str | None = None
) -> AsyncIterator[AuditEvent]:
    """Keyset pagination by seq so memory stays flat however long the trail is."""
    last = 0
    async with engine.connect() as conn:
        session = AsyncSession(bind=conn)
        while True:
            query = select(AuditEvent).where(AuditEvent.seq > last).order_by(AuditEvent.seq).limit(batch)
            if request_ref is not None:
                query = query.where(AuditEvent.request_ref == request_ref)
            if subject is not None:
                query = query.where(AuditEvent.subject == subject)
            rows = (await session.execute(query)).scalars().all()
            if not rows:
                return
            for row in rows:
                yield row
            last = rows[-1].seq
            session.expunge_all()


async def verify_chain(engine: AsyncEngine, *, batch: int = 20000) -> tuple[int, ChainBreak | None]:
    """Returns (events checked, first break or None).

    Reads plain column tuples by keyset pages (no ORM objects), so memory stays flat and a
    million events verify in seconds.
    """
    verifier = ChainVerifier()
    columns = [
        # The plain DateTime type skips the UTC TypeDecorator per row; _utc_iso applies UTC.
        type_coerce(AuditEvent.occurred_at, DateTime(timezone=True))
        if c == "occurred_at"
        else getattr(AuditEvent, c)
        for c in _BODY_COLUMNS
    ] + [AuditEvent.prev_hash, AuditEvent.hash]
    last = 0
    async with engine.connect() as conn:
        while True:
            rows = (
                await conn.execute(
                    select(*columns).where(AuditEvent.seq > last).order_by(AuditEvent.seq).limit(batch)
                )
            ).all()
            if not rows:
                break
            for row in rows:
                body = dict(zip(_BODY_COLUMNS, row[:-2], strict=True))
                body["occurred_at"] = _utc_iso(body["occurred_at"])
                if verifier.feed(body, row[-2], row[-1]):
                    return verifier.count, verifier.first_break
            last = rows[-1][0]
        head = (await conn.execute(select(AuditHead.seq, AuditHead.hash).where(AuditHead.id == 1))).one()
    return verifier.count, verifier.finish(head.seq, head.hash)


_BODY_COLUMNS = (
    "seq", "occurred_at", "actor", "action", "request_ref", "subject",
    "before_status", "after_status", "reason", "evidence",
)  # fmt: skip


def _utc_iso(moment: Any) -> str:
    """The same text AuditRecord.body() hashed, whatever the backend handed back."""
    if isinstance(moment, str):  # SQLite without type processing
        moment = datetime.fromisoformat(moment)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return str(moment.astimezone(UTC).isoformat(timespec="microseconds"))


async def export_events(
    engine: AsyncEngine, *, fmt: str, request_ref: str | None = None, subject: str | None = None
) -> AsyncIterator[str]:
    """Yield the export line by line (jsonl or csv, header first) for streaming to a file."""
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(EXPORT_COLUMNS)
        yield buffer.getvalue()
    async for event in iter_events(engine, request_ref=request_ref, subject=subject):
        row = event_body(event) | {"prev_hash": event.prev_hash, "hash": event.hash}
        if fmt == "jsonl":
            yield canonical_json(row) + "\n"
        else:
            buffer = io.StringIO()
            writer = csv.writer(buffer)
            writer.writerow(
                [
                    canonical_json(row[c]) if c == "evidence" else ("" if row[c] is None else row[c])
                    for c in EXPORT_COLUMNS
                ]
            )
            yield buffer.getvalue()
