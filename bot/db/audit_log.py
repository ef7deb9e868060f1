"""Append to and read the hash-chained audit table. Callers own the transaction."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from bot.db.models import AuditEvent, AuditHead
from bot.domain.audit import (
    AuditRecord,
    ChainBreak,
    ChainVerifier,
    Fingerprinter,
    canonical_json,
    chain_hash,
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
        evidence=scrub(dict(record.evidence), fingerprinter),
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


async def verify_chain(engine: AsyncEngine, *, batch: int = 5000) -> tuple[int, ChainBreak | None]:
    """Returns (events checked, first break or None)."""
    verifier = ChainVerifier()
    async for event in iter_events(engine, batch=batch):
        if verifier.feed(event_body(event), event.prev_hash, event.hash):
            return verifier.count, verifier.first_break
    async with engine.connect() as conn:
        head = (await conn.execute(select(AuditHead.seq, AuditHead.hash).where(AuditHead.id == 1))).one()
    return verifier.count, verifier.finish(head.seq, head.hash)


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
