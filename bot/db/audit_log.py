"""Append to and read the hash-chained audit table. Callers own the transaction.

Verification (`verify_trail`) recomputes the chain in one pass and checks signed digests
(bot/domain/audit_digest.py) against the trail by index lookups, never a second scan.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import logging
import multiprocessing
import sqlite3
import sys
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import select, text, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
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
from bot.domain.audit_digest import (
    HEAD_MISSING,
    AuditDigest,
    DigestFile,
    DigestFinding,
    FindingKind,
    HeadSnapshot,
    TrailPoints,
    check_digest_chain,
    check_digests_against_trail,
    event_fingerprint,
    mismatched,
    moments_to_look_up,
)

log = logging.getLogger("opsgate.audit")

__all__ = [
    "AuditHeadMissing",
    "AuditTrail",
    "AuditTrailUnreadable",
    "TrailVerification",
    "append_event",
    "event_body",
    "export_events",
    "head_snapshot",
    "iter_events",
    "require_database",
    "trail_points",
    "verify_chain",
    "verify_chain_in_processes",
    "verify_segment",
    "verify_trail",
]


class AuditHeadMissing(LookupError):
    """The single audit_head row is gone: nothing can be appended and the tail cannot be checked."""

    def __init__(self) -> None:
        super().__init__(HEAD_MISSING)


class AuditTrailUnreadable(Exception):
    """The trail could not be read at all (no database file, no audit tables, no connection)."""


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
    head = (
        await session.execute(select(AuditHead).where(AuditHead.id == 1).with_for_update())
    ).scalar_one_or_none()
    if head is None:
        raise AuditHeadMissing()
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
    bounds = await _bounds(engine)
    segment = await verify_segment(engine, first_seq=bounds.first, last_seq=bounds.last, batch=batch)
    return _joined([segment], bounds)


def verify_chain_in_processes(
    database_url: str, *, processes: int, batch: int = 20000, engine_kwargs: dict[str, Any] | None = None
) -> tuple[int, ChainBreak | None]:
    """`verify_chain` split into `processes` ranges of sequence numbers verified side by side.

    Each range is verified on its own connection in a forked process; `join_segments` checks
    the links between ranges and the head, so the answer (count and first break, with the
    same wording) is the one a single sequential pass gives. Not called from a running loop.
    """
    bounds = asyncio.run(_bounds_of(database_url, engine_kwargs or {}))
    return _joined(_verify_ranges(database_url, bounds, processes, batch, engine_kwargs or {}), bounds)


def _joined(segments: Sequence[ChainSegment], bounds: AuditBounds) -> tuple[int, ChainBreak | None]:
    count, problem = join_segments(segments, bounds.head_seq, bounds.head_hash)
    if problem is None and bounds.head_seq is None:
        problem = ChainBreak(count + 1, HEAD_MISSING)
    return count, problem


def _verify_ranges(
    database_url: str, bounds: AuditBounds, processes: int, batch: int, engine_kwargs: dict[str, Any]
) -> list[ChainSegment]:
    first, last = bounds.first, bounds.last
    if processes <= 1 or last - first + 1 < PARALLEL_MIN_EVENTS:
        ranges = [(first, last)]
    else:
        step = -(-(last - first + 1) // processes)
        ranges = [(lo, min(lo + step - 1, last)) for lo in range(first, last + 1, step)]
    jobs = [(database_url, engine_kwargs, lo, hi, index == 0, batch) for index, (lo, hi) in enumerate(ranges)]
    if len(jobs) == 1:
        return [_verify_range(*jobs[0])]
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    with ProcessPoolExecutor(len(jobs), mp_context=multiprocessing.get_context(method)) as pool:
        return list(pool.map(_verify_range, *zip(*jobs, strict=True)))


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
# Subqueries rather than FROM audit_head, so a deleted head row reads as NULLs.
_BOUNDS = text(
    "SELECT (SELECT min(seq) FROM audit_events), (SELECT max(seq) FROM audit_events), "
    "(SELECT seq FROM audit_head WHERE id = 1), (SELECT hash FROM audit_head WHERE id = 1)"
)


@dataclass(frozen=True)
class AuditBounds:
    first: int  # first seq to verify
    last: int  # last seq to verify (0: no events)
    head_seq: int | None  # None: the head row is missing
    head_hash: str | None


async def _bounds(engine: AsyncEngine) -> AuditBounds:
    async with engine.connect() as conn:
        await conn.execution_options(**{READ_ONLY: True})
        low, high, head_seq, head_hash = (await conn.execute(_BOUNDS)).one()
    return AuditBounds(
        first=min(1, 1 if low is None else low),
        last=0 if high is None else high,
        head_seq=None if head_seq is None else int(head_seq),
        head_hash=None if head_hash is None else str(head_hash),
    )


async def _bounds_of(database_url: str, engine_kwargs: dict[str, Any]) -> AuditBounds:
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


# ------------------------------------------------------------------ digests: head and lookups

# One statement, one snapshot: the head, how many events lie at or below it, and the head event.
_HEAD_SNAPSHOT = text(
    "SELECT h.seq, h.hash, (SELECT count(*) FROM audit_events WHERE seq <= h.seq) "
    "FROM audit_head h WHERE h.id = 1"
)
_LOOKUP_CHUNK = 500


async def head_snapshot(engine: AsyncEngine) -> HeadSnapshot:
    """What a digest signs: the head row, the number of events up to it and the head event's
    time and fingerprint (None if the event is missing). Raises AuditHeadMissing."""
    async with engine.connect() as conn:
        await conn.execution_options(**{READ_ONLY: True})
        row = (await conn.execute(_HEAD_SNAPSHOT)).one_or_none()
        if row is None:
            raise AuditHeadMissing()
        seq, digest, count = int(row[0]), str(row[1]), int(row[2])
        session = AsyncSession(bind=conn)
        event = await session.get(AuditEvent, seq) if seq else None
    body = event_body(event) if event is not None else None
    return HeadSnapshot(
        last_seq=seq,
        last_hash=digest,
        event_count=count,
        last_event_at=body["occurred_at"] if body else None,
        last_event_fingerprint=event_fingerprint(body) if body else None,
    )


async def trail_points(engine: AsyncEngine, digests: Sequence[AuditDigest]) -> TrailPoints:
    """The trail at the points `digests` name, by index lookups: the hash at each digest's
    last_seq; only for digests that do not match, where their hash and their event (by
    occurred_at) are now. Never a scan of the whole trail while the trail is intact."""
    async with engine.connect() as conn:
        await conn.execution_options(**{READ_ONLY: True})
        bounds = (await conn.execute(_BOUNDS)).one()
        session = AsyncSession(bind=conn)
        hash_at: dict[int, str] = {}
        for chunk in _chunks(sorted({d.last_seq for d in digests if d.last_seq > 0})):
            query = select(AuditEvent.seq, AuditEvent.hash).where(AuditEvent.seq.in_(chunk))
            hash_at.update({s: h for s, h in (await session.execute(query)).all()})
        points = TrailPoints(
            head_seq=None if bounds[2] is None else int(bounds[2]),
            last_seq=0 if bounds[1] is None else int(bounds[1]),
            hash_at=hash_at,
        )
        wrong = mismatched(digests, points)
        if not wrong:
            return points
        fingerprint_at: dict[int, str] = {}
        for chunk in _chunks(sorted({d.last_seq for d in wrong if d.last_seq in hash_at})):
            for event in await session.scalars(select(AuditEvent).where(AuditEvent.seq.in_(chunk))):
                fingerprint_at[event.seq] = event_fingerprint(event_body(event))
        seq_of_hash: dict[str, int] = {}
        for chunk in _chunks(sorted({d.last_hash for d in wrong})):
            query = select(AuditEvent.seq, AuditEvent.hash).where(AuditEvent.hash.in_(chunk))
            seq_of_hash.update({h: s for s, h in (await session.execute(query)).all()})
        points = replace(points, fingerprint_at=fingerprint_at, seq_of_hash=seq_of_hash)
        fingerprints: dict[str, list[int]] = {}
        for chunk in _chunks(sorted(datetime.fromisoformat(m) for m in moments_to_look_up(digests, points))):
            for event in await session.scalars(select(AuditEvent).where(AuditEvent.occurred_at.in_(chunk))):
                fingerprints.setdefault(event_fingerprint(event_body(event)), []).append(event.seq)
    return replace(points, seqs_of_fingerprint=fingerprints)


def _chunks(values: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for start in range(0, len(values), _LOOKUP_CHUNK):
        yield values[start : start + _LOOKUP_CHUNK]


@dataclass(frozen=True)
class TrailVerification:
    """The chain recomputed and every digest checked against it: what `opsgate audit verify` says."""

    count: int
    chain_break: ChainBreak | None
    findings: list[DigestFinding]
    digests: list[AuditDigest] = field(default_factory=list)  # those signed by a trusted key
    head_seq: int | None = None

    @property
    def intact(self) -> bool:
        return self.chain_break is None and not self.findings

    def problems(self) -> list[str]:
        """One line per finding; the chain's first break first."""
        lines = [f"audit chain BROKEN at {self.chain_break}"] if self.chain_break else []
        return lines + [str(f) for f in self.findings]


def verify_trail(
    database_url: str,
    *,
    processes: int,
    digests: Sequence[DigestFile] | None = None,
    keys: Mapping[str, Ed25519PublicKey] | None = None,
    batch: int = 20000,
    engine_kwargs: dict[str, Any] | None = None,
) -> TrailVerification:
    """Recompute the chain (in `processes` ranges) and check `digests`, signed by one of `keys`,
    against it. Read the digests before calling: a digest written after the trail's snapshot
    could name events the snapshot does not hold. Raises AuditTrailUnreadable."""
    kwargs = engine_kwargs or {}
    require_database(database_url)
    trusted, findings = check_digest_chain(digests or (), keys or {})
    try:
        bounds, points = asyncio.run(_bounds_and_points(database_url, kwargs, trusted))
        count, chain_break = join_segments(
            _verify_ranges(database_url, bounds, processes, batch, kwargs), bounds.head_seq, bounds.head_hash
        )
    except _read_errors() as exc:
        raise AuditTrailUnreadable(f"cannot read the audit trail: {_one_line(exc)}") from None
    if digests is None:  # no digests to compare with: the head row alone says whether it is missing
        findings = [DigestFinding(FindingKind.HEAD, HEAD_MISSING)] if bounds.head_seq is None else []
    else:
        findings += check_digests_against_trail(trusted, points)
        if not trusted and not findings and bounds.last > 0:
            findings.append(
                DigestFinding(
                    FindingKind.GAP,
                    f"no digest anchors the trail's {bounds.last} events: the digests were removed "
                    "or never written",
                )
            )
    return TrailVerification(count, chain_break, findings, trusted, bounds.head_seq)


async def _bounds_and_points(
    database_url: str, engine_kwargs: dict[str, Any], digests: Sequence[AuditDigest]
) -> tuple[AuditBounds, TrailPoints]:
    engine = create_engine(database_url, **engine_kwargs)
    try:
        return await _bounds(engine), await trail_points(engine, digests)
    finally:
        await engine.dispose()


def require_database(database_url: str) -> None:
    """A missing SQLite file is named, not created (connecting would create an empty one)."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        path = Path(url.database)
        if not path.is_file():
            raise AuditTrailUnreadable(
                f"cannot read the audit trail: the database file {path} does not exist"
            )


def _read_errors() -> tuple[type[BaseException], ...]:
    """What reading a database can raise; asyncpg's own errors (raw PostgreSQL pages) only when
    it was loaded, so SQLite verification does not pay for importing it."""
    errors: list[type[BaseException]] = [SQLAlchemyError, OSError, sqlite3.Error, BrokenProcessPool]
    asyncpg = sys.modules.get("asyncpg")
    if asyncpg is not None:
        errors += [asyncpg.PostgresError, asyncpg.InterfaceError]
    return tuple(errors)


def _one_line(exc: BaseException) -> str:
    cause = getattr(exc, "orig", None) or exc
    first = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {first[0] if first else '(no message)'}"
