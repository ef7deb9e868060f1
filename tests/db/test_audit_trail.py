"""The audit chain: verification catches edits, deletions, reordering and a cut tail."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys

import pytest
from sqlalchemy import delete, select, update

from bot.db.audit_log import append_event, export_events, verify_chain
from bot.db.models import AuditEvent, AuditHead
from bot.domain.audit import AuditRecord
from bot.domain.requests import FrozenClock


async def seed(database, fingerprinter, count: int = 5) -> None:
    clock = FrozenClock()
    for i in range(count):
        async with database.sessions() as session, session.begin():
            await append_event(
                session,
                AuditRecord(occurred_at=clock(), actor=f"U{i}", action="request.created", request_ref=f"PRM-{i}",
                            reason="why", evidence={"n": i, "token": f"tok-{i}"}),
                fingerprinter,
            )  # fmt: skip


async def test_intact_chain_verifies(database, fingerprinter):
    await seed(database, fingerprinter)
    assert await verify_chain(database.engine) == (5, None)


async def test_verification_reads_page_by_page_and_reports_a_break_on_a_later_page(database, fingerprinter):
    await seed(database, fingerprinter, count=7)
    assert await verify_chain(database.engine, batch=2) == (7, None)
    async with database.sessions() as session, session.begin():
        await session.execute(update(AuditEvent).where(AuditEvent.seq == 6).values(reason="rewritten"))
    count, problem = await verify_chain(database.engine, batch=2)
    assert count == 5 and problem is not None and problem.seq == 6


async def test_nested_and_non_ascii_evidence_verifies_on_every_backend(database, fingerprinter):
    """PostgreSQL's JSONB reorders keys and spaces its text: verification must re-canonicalise."""
    async with database.sessions() as session, session.begin():
        await append_event(
            session,
            AuditRecord(occurred_at=FrozenClock()(), actor="U1", action="asset.released", subject="ünïcode ✓",
                        evidence={"zeta": {"b": [3, 1], "a": None}, "alpha": "café", "long_key_name": 1.5}),
            fingerprinter,
        )  # fmt: skip
    assert await verify_chain(database.engine) == (1, None)


def test_stored_timestamps_read_back_as_the_text_that_was_hashed():
    from datetime import UTC, datetime, timedelta, timezone

    from bot.db.audit_log import _utc_iso

    hashed = datetime(2026, 3, 4, 5, 6, 7, 890, tzinfo=UTC).isoformat(timespec="microseconds")
    assert _utc_iso("2026-03-04 05:06:07.000890") == hashed  # SQLite's text, fast path
    assert _utc_iso("2026-03-04T05:06:07.000890+00:00") == hashed  # any other ISO text
    assert _utc_iso(datetime(2026, 3, 4, 5, 6, 7, 890)) == hashed  # naive means UTC
    local = datetime(2026, 3, 4, 7, 6, 7, 890, tzinfo=timezone(timedelta(hours=2)))
    assert _utc_iso(local) == hashed
    assert _utc_iso("2026-03-04 05:06:07") == "2026-03-04T05:06:07.000000+00:00"


async def test_ranges_verified_in_separate_processes_agree_with_one_pass(
    database, fingerprinter, monkeypatch
):
    """`opsgate audit verify` splits long trails over processes; the answer must not change."""
    import asyncio

    from bot.db import audit_log

    monkeypatch.setattr(audit_log, "PARALLEL_MIN_EVENTS", 2)
    await seed(database, fingerprinter, count=9)
    kwargs = {"connect_args": database.connect_args} if database.connect_args else {}

    def in_processes() -> tuple[int, object]:
        return audit_log.verify_chain_in_processes(database.url, processes=3, batch=2, engine_kwargs=kwargs)

    assert await asyncio.to_thread(in_processes) == (9, None)
    async with database.sessions() as session, session.begin():  # in the last range
        await session.execute(update(AuditEvent).where(AuditEvent.seq == 8).values(actor="U_MALLORY"))
    assert (
        await asyncio.to_thread(in_processes) == await verify_chain(database.engine) == (7, ANY_BREAK_AT(8))
    )
    async with database.sessions() as session, session.begin():  # a whole middle range
        await session.execute(delete(AuditEvent).where(AuditEvent.seq.between(4, 6)))
    count, problem = await asyncio.to_thread(in_processes)
    assert (count, problem) == await verify_chain(database.engine)
    assert count == 3 and problem is not None and "4..6 were deleted" in problem.problem


class ANY_BREAK_AT:
    def __init__(self, seq: int) -> None:
        self.seq = seq

    def __eq__(self, other: object) -> bool:
        return getattr(other, "seq", None) == self.seq


async def test_reading_the_trail_does_not_hold_writers_back(database, fingerprinter):
    """An export or verification of a long trail is a long read: on SQLite it must not take the
    write lock (BEGIN IMMEDIATE), or every acknowledgement would wait behind it."""
    import asyncio

    from bot.db.audit_log import iter_events

    await seed(database, fingerprinter, count=4)
    events = iter_events(database.engine, batch=2)
    first = await anext(events)  # the reader's transaction is open now
    assert first.seq == 1

    async def append_one() -> None:
        async with database.sessions() as session, session.begin():
            await append_event(
                session, AuditRecord(occurred_at=FrozenClock()(), actor="U9", action="x"), fingerprinter
            )

    await asyncio.wait_for(append_one(), timeout=5)
    # The reader goes on: SQLite keeps its snapshot, PostgreSQL's later pages see the new event.
    assert [e.seq async for e in events] in ([2, 3, 4], [2, 3, 4, 5])
    assert await verify_chain(database.engine) == (5, None)


async def test_edited_event_is_named(database, fingerprinter):
    await seed(database, fingerprinter)
    async with database.sessions() as session, session.begin():
        await session.execute(update(AuditEvent).where(AuditEvent.seq == 3).values(actor="U_MALLORY"))
    count, problem = await verify_chain(database.engine)
    assert count == 2 and problem is not None
    assert problem.seq == 3 and "edited" in problem.problem


async def test_deleted_event_is_named(database, fingerprinter):
    await seed(database, fingerprinter)
    async with database.sessions() as session, session.begin():
        await session.execute(delete(AuditEvent).where(AuditEvent.seq == 2))
    _, problem = await verify_chain(database.engine)
    assert problem is not None and problem.seq == 2 and "deleted" in problem.problem


async def test_reordered_events_are_caught(database, fingerprinter):
    await seed(database, fingerprinter)
    async with database.sessions() as session, session.begin():
        rows = {e.seq: e for e in (await session.scalars(select(AuditEvent))).all()}
        swapped = {k: getattr(rows[3], k) for k in ("actor", "request_ref", "evidence", "hash", "prev_hash")}
        theirs = {k: getattr(rows[4], k) for k in swapped}
        await session.execute(update(AuditEvent).where(AuditEvent.seq == 3).values(hash="x" * 64))
        await session.execute(update(AuditEvent).where(AuditEvent.seq == 4).values(**swapped))
        await session.execute(update(AuditEvent).where(AuditEvent.seq == 3).values(**theirs))
    _, problem = await verify_chain(database.engine)
    assert problem is not None and problem.seq == 3


async def test_deleting_the_newest_events_is_caught_by_the_head(database, fingerprinter):
    await seed(database, fingerprinter)
    async with database.sessions() as session, session.begin():
        await session.execute(delete(AuditEvent).where(AuditEvent.seq >= 4))
    _, problem = await verify_chain(database.engine)
    assert problem is not None and problem.seq == 4 and "newest events were deleted" in problem.problem


async def test_secret_evidence_is_fingerprinted_never_stored(database, fingerprinter):
    await seed(database, fingerprinter, count=1)
    async with database.sessions() as session:
        event = (await session.scalars(select(AuditEvent))).one()
        head = (await session.scalars(select(AuditHead))).one()
    assert event.evidence["token"] == fingerprinter.fingerprint("tok-0")
    assert "tok-0" not in json.dumps(event.evidence)
    assert head.seq == 1 and head.hash == event.hash


async def test_export_jsonl_and_csv_carry_hashes(database, fingerprinter):
    await seed(database, fingerprinter, count=3)
    lines = [line async for line in export_events(database.engine, fmt="jsonl")]
    rows = [json.loads(line) for line in lines]
    assert [r["seq"] for r in rows] == [1, 2, 3]
    assert rows[1]["prev_hash"] == rows[0]["hash"]
    text = "".join([line async for line in export_events(database.engine, fmt="csv", request_ref="PRM-1")])
    parsed = list(csv.DictReader(io.StringIO(text)))
    assert [r["request_ref"] for r in parsed] == ["PRM-1"]
    assert json.loads(parsed[0]["evidence"])["n"] == 1


async def test_cli_verify_exits_1_naming_the_event(database, fingerprinter, tmp_path):
    if database.backend != "sqlite":
        pytest.skip("the CLI reads DATABASE_URL; the PostgreSQL half runs in a private schema")
    await seed(database, fingerprinter)
    env = {"DATABASE_URL": database.url, "PATH": "/usr/bin:/bin"}
    ok = subprocess.run([sys.executable, "-m", "bot.cli", "audit", "verify"], capture_output=True, text=True,
                        env=env, cwd=tmp_path, check=False)  # fmt: skip
    assert ok.returncode == 0 and "5 events verified" in ok.stdout
    async with database.sessions() as session, session.begin():
        await session.execute(update(AuditEvent).where(AuditEvent.seq == 4).values(reason="nothing to see"))
    bad = subprocess.run([sys.executable, "-m", "bot.cli", "audit", "verify"], capture_output=True, text=True,
                         env=env, cwd=tmp_path, check=False)  # fmt: skip
    assert bad.returncode == 1
    assert "audit event 4: content does not match its hash" in bad.stderr
    exported = subprocess.run([sys.executable, "-m", "bot.cli", "audit", "export", "--format", "csv"],
                              capture_output=True, text=True, env=env, cwd=tmp_path, check=False)  # fmt: skip
    assert exported.returncode == 0 and len(exported.stdout.strip().splitlines()) == 6


async def test_a_deleted_head_row_is_named_not_a_lookup_traceback(database, fingerprinter):
    from bot.db.audit_log import AuditHeadMissing
    from bot.domain.audit import GENESIS_HASH

    await seed(database, fingerprinter, count=2)
    async with database.sessions() as session, session.begin():
        await session.execute(delete(AuditHead))
    try:
        count, problem = await verify_chain(database.engine)
        assert count == 2 and str(problem) == "audit event 3: the audit_head row is missing: it was deleted"
        with pytest.raises(AuditHeadMissing, match="the audit_head row is missing"):
            await seed(database, fingerprinter, count=1)
    finally:  # the PostgreSQL schema outlives the test
        async with database.sessions() as session, session.begin():
            session.add(AuditHead(id=1, seq=0, hash=GENESIS_HASH))
