"""Append to and read the hash-chained audit table. Callers own the transaction."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import logging
import multiprocessing
import sqlite3
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import select, text, update
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from bot.db.engine import READ_ONLY, create_engine
from bot.db.models import AuditEvent, AuditHead
from bot.domain.audit import (
    GENESIS_HASH,
    AuditRecord,
    ChainBreak,
    ChainSegment,
    ChainVerifier,
    Fingerprinter,
    canonical_json,
    chain_hash,
    join_segments,
    normalise,
    scrub,
)

log = logging.getLogger("opsgate.audit")

__all__ = [
    "AuditTrail",
    "append_event",
    "event_body",
    "export_events",
    "iter_events",
    "verify_chain",
    "verify_chain_in_processes",
    "verify_segment",
]

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


class AuditTrail:
    """Appends to the hash chain inside one transaction; never commits."""

    def __init__(self, session: AsyncSession, fingerprinter: Fingerprinter) -> None:
        self._session = session
        self._fingerprinter = fingerprinter

    async def append(self, record: AuditRecord) -> AuditEvent:
        """Chain `record` to the head; the caller's transaction fails if this does."""
        return await append_event(self._session, record, self._fingerprinter)


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
        await conn.execution_options(**{READ_ONLY: True})
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


# Plain SQL: rows come back as the driver gives them, with no per-row type processing. The
# named parameters suit both SQLAlchemy's text() and the sqlite3 module.
_VERIFY_SQL = (
    "SELECT seq, occurred_at, actor, action, request_ref, subject, before_status, after_status, "
    "reason, evidence, prev_hash, hash FROM audit_events "
    "WHERE seq > :after AND seq <= :upto ORDER BY seq LIMIT :limit"
)
_VERIFY_PAGE = text(_VERIFY_SQL)
# The same for asyncpg; occurred_at comes back as the text AuditRecord.body() hashed.
_VERIFY_SQL_PG = (
    "SELECT seq, to_char(occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"+00:00\"'), actor, "
    "action, request_ref, subject, before_status, after_status, reason, evidence, prev_hash, hash "
    "FROM audit_events WHERE seq > $1 AND seq <= $2 ORDER BY seq LIMIT $3"
)
# Below this many events a second process costs more (fork, connect) than it saves.
PARALLEL_MIN_EVENTS = 100_000


async def verify_chain(engine: AsyncEngine, *, batch: int = 20000) -> tuple[int, ChainBreak | None]:
    """Returns (events checked, first break or None), verifying in this process."""
    first, last, head_seq, head_hash = await _bounds(engine)
    segment = await verify_segment(engine, first_seq=first, last_seq=last, batch=batch)
    return join_segments([segment], head_seq, head_hash)


def verify_chain_in_processes(
    database_url: str, *, processes: int, batch: int = 20000, engine_kwargs: dict[str, Any] | None = None
) -> tuple[int, ChainBreak | None]:
    """`verify_chain` split into `processes` ranges of sequence numbers verified side by side.

    Each range is verified on its own connection in a forked process; `join_segments` checks
    the links between ranges and the head, so the answer (count and first break, with the
    same wording) is the one a single sequential pass gives. Not called from a running loop.
    """
    first, last, head_seq, head_hash = asyncio.run(_bounds_of(database_url, engine_kwargs or {}))
    if processes <= 1 or last - first + 1 < PARALLEL_MIN_EVENTS:
        ranges = [(first, last)]
    else:
        step = -(-(last - first + 1) // processes)
        ranges = [(lo, min(lo + step - 1, last)) for lo in range(first, last + 1, step)]
    jobs = [
        (database_url, engine_kwargs or {}, lo, hi, index == 0, batch)
        for index, (lo, hi) in enumerate(ranges)
    ]
    if len(jobs) == 1:
        segments = [_verify_range(*jobs[0])]
    else:
        method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
        with ProcessPoolExecutor(len(jobs), mp_context=multiprocessing.get_context(method)) as pool:
            segments = list(pool.map(_verify_range, *zip(*jobs, strict=True)))
    return join_segments(segments, head_seq, head_hash)


async def verify_segment(
    engine: AsyncEngine,
    *,
    first_seq: int,
    last_seq: int,
    batch: int = 20000,
    from_genesis: bool = True,
) -> ChainSegment:
    """Verify the stored events with first_seq <= seq <= last_seq.

    Keyset pages of plain tuples, each page's query sent before the previous page is hashed
    (the database, or aiosqlite's thread, fetches while this process hashes), so memory holds
    two pages however long the trail is.
    """
    verifier = ChainVerifier(first_seq=first_seq, prev_hash=GENESIS_HASH if from_genesis else None)
    async with engine.connect() as conn:
        await conn.execution_options(**{READ_ONLY: True})
        if engine.dialect.name == "postgresql":
            # asyncpg directly: records instead of SQLAlchemy rows, and PostgreSQL formats the
            # timestamp (in its own process, in parallel with the hashing here).
            raw = (await conn.get_raw_connection()).driver_connection
            assert raw is not None
            statement = await raw.prepare(_VERIFY_SQL_PG)

            async def page_after(after: int) -> Sequence[Any]:
                return await statement.fetch(after, last_seq, batch)  # type: ignore[no-any-return]

        else:

            async def page_after(after: int) -> Sequence[Any]:
                return (
                    await conn.execute(_VERIFY_PAGE, {"after": after, "upto": last_seq, "limit": batch})
                ).all()

        upcoming = asyncio.ensure_future(page_after(first_seq - 1))
        while rows := await upcoming:
            upcoming = asyncio.ensure_future(page_after(rows[-1][0]))
            await asyncio.sleep(0)  # let the next query go out before hashing this page
            if _feed_page(verifier, rows):
                await upcoming  # finish it rather than cancel a query on a live connection
                break
    return verifier.segment(first_seq)


# One statement, so one snapshot: the head and the newest event agree even while the bot
# appends; events appended after it are outside the verified range, not a broken tail.
_BOUNDS = text(
    "SELECT (SELECT min(seq) FROM audit_events), (SELECT max(seq) FROM audit_events), seq, hash "
    "FROM audit_head WHERE id = 1"
)


async def _bounds(engine: AsyncEngine) -> tuple[int, int, int, str]:
    """(first seq to verify, last seq to verify, head seq, head hash)."""
    async with engine.connect() as conn:
        await conn.execution_options(**{READ_ONLY: True})
        low, high, head_seq, head_hash = (await conn.execute(_BOUNDS)).one()
    return min(1, 1 if low is None else low), 0 if high is None else high, int(head_seq), str(head_hash)


async def _bounds_of(database_url: str, engine_kwargs: dict[str, Any]) -> tuple[int, int, int, str]:
    engine = create_engine(database_url, **engine_kwargs)
    try:
        return await _bounds(engine)
    finally:
        await engine.dispose()


def _verify_range(
    database_url: str, engine_kwargs: dict[str, Any], first: int, last: int, genesis: bool, batch: int
) -> ChainSegment:
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        try:
            return _verify_sqlite_range(Path(url.database), first, last, genesis, batch)
        except sqlite3.OperationalError:  # e.g. a read-only directory without the WAL index file
            log.warning("reading SQLite directly failed; verifying through the engine", exc_info=True)

    async def go() -> ChainSegment:
        engine = create_engine(database_url, **engine_kwargs)
        try:
            return await verify_segment(
                engine, first_seq=first, last_seq=last, batch=batch, from_genesis=genesis
            )
        finally:
            await engine.dispose()

    return asyncio.run(go())


def _verify_sqlite_range(path: Path, first: int, last: int, genesis: bool, batch: int) -> ChainSegment:
    """SQLite through the standard library, read-only: in a process of its own there is nothing
    to wait for, and skipping aiosqlite's thread hop per page makes verification ~40% faster."""
    verifier = ChainVerifier(first_seq=first, prev_hash=GENESIS_HASH if genesis else None)
    page = {"after": first - 1, "upto": last, "limit": batch}
    with contextlib.closing(sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True)) as conn:
        while rows := conn.execute(_VERIFY_SQL, page).fetchall():
            if _feed_page(verifier, rows):
                break
            page["after"] = rows[-1][0]
    return verifier.segment(first)


def _feed_page(verifier: ChainVerifier, rows: Sequence[Any]) -> ChainBreak | None:
    """Rebuild each event's hashed body from its stored columns and feed the verifier."""
    feed = verifier.feed
    loads = orjson.loads
    for seq, at, actor, action, ref, subject, before, after, reason, evidence, prev_hash, stored in rows:
        body = {
            "seq": seq,
            "occurred_at": _utc_iso(at),
            "actor": actor,
            "action": action,
            "request_ref": ref,
            "subject": subject,
            "before_status": before,
            "after_status": after,
            "reason": reason,
            "evidence": loads(evidence) if isinstance(evidence, str | bytes) else evidence,
        }
        if feed(body, prev_hash, stored):
            return verifier.first_break
    return None


def _utc_iso(moment: Any) -> str:
    """The same text AuditRecord.body() hashed, whatever the backend handed back."""
    if isinstance(moment, str):
        if len(moment) == 32 and moment[10] == "T" and moment.endswith("+00:00"):
            return moment  # formatted by PostgreSQL already
        # SQLite keeps naive UTC text "YYYY-MM-DD HH:MM:SS.ffffff": rewrite it without parsing.
        if len(moment) == 26 and moment[10] == " ":
            return moment[:10] + "T" + moment[11:] + "+00:00"
        moment = datetime.fromisoformat(moment)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    elif moment.utcoffset():
        moment = moment.astimezone(UTC)
    return str(moment.isoformat(timespec="microseconds"))


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
