"""Audit verification throughput and memory: `opsgate audit verify` over 100k and 1M events.

Builds a valid hash chain of N events in a fresh SQLite database (or, with --postgres, a fresh
PostgreSQL database at 127.0.0.1:5432), then runs `opsgate audit verify` as a child process and
records its wall time (process start-up included), the rate the command itself reports, and
peak RSS (the largest of its processes). Memory must not grow with the number of events.
With --digests N it also writes N signed digests spread over the chain and runs
`opsgate audit verify --digests DIR --public-key KEY` on the same database: the digest check
must not cost a second pass. Prints JSON.
Usage: python bench/audit_verify.py [--sizes 100000,1000000] [--postgres] [--processes N] [--digests N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from _pgdb import create_pg_database, drop_pg_database
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import insert, update

from bot.db.audit_log import event_body
from bot.db.digest_files import DigestDirectory
from bot.db.engine import create_engine, create_session_factory
from bot.db.migrate import upgrade_async
from bot.db.models import AuditEvent, AuditHead
from bot.domain.audit import GENESIS_HASH, AuditRecord, chain_hash
from bot.domain.audit_digest import DigestSigner, HeadSnapshot, event_fingerprint, public_key_pem

BATCH = 10_000


async def build_chain(url: str, count: int) -> float:
    engine = create_engine(url)
    await upgrade_async(engine)
    started = time.perf_counter()
    prev = GENESIS_HASH
    base = datetime(2026, 1, 1, tzinfo=UTC)
    seq = 0
    while seq < count:
        rows = []
        for _ in range(min(BATCH, count - seq)):
            seq += 1
            record = AuditRecord(
                occurred_at=base + timedelta(seconds=seq),
                actor=f"U{seq % 97:03d}",
                action="approval.recorded",
                request_ref=f"PRM-{seq // 3}",
                subject=f"promotion:artifact-{seq % 50}@prod",
                before_status="pending",
                after_status="pending",
                reason="benchmark",
                evidence={"approvals": seq % 3, "params_hash": "ab" * 32},
            )
            body = record.body(seq)
            digest = chain_hash(prev, body)
            rows.append({**body, "occurred_at": record.occurred_at, "prev_hash": prev, "hash": digest})
            prev = digest
        async with engine.begin() as conn:
            await conn.execute(insert(AuditEvent), rows)
    async with engine.begin() as conn:
        await conn.execute(update(AuditHead).where(AuditHead.id == 1).values(seq=count, hash=prev))
    if engine.dialect.name == "postgresql":
        # A live trail has statistics from autovacuum; a freshly bulk-loaded one has none, and the
        # planner would then read each page by bitmap scan and sort (6x slower).
        async with engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.exec_driver_sql("ANALYZE audit_events")
    await engine.dispose()
    return time.perf_counter() - started


async def write_digests(url: str, size: int, count: int, directory: str) -> str:
    """`count` digests at evenly spaced events, chained and signed as the duty does; returns
    the public key file to pin."""
    engine = create_engine(url)
    signer = DigestSigner(Ed25519PrivateKey.generate())
    digests = DigestDirectory(Path(directory))
    previous = None
    async with create_session_factory(engine)() as session:
        for index in range(1, count + 1):
            seq = size * index // count
            event = await session.get(AuditEvent, seq)
            assert event is not None
            body = event_body(event)
            head = HeadSnapshot(seq, event.hash, seq, body["occurred_at"], event_fingerprint(body))
            previous = signer.sign(head, previous=previous, created_at=datetime.now(UTC))
            digests.write(previous)
    await engine.dispose()
    key = Path(directory).parent / "audit-signing.pub.pem"
    key.write_text(public_key_pem(signer.public_key))
    return str(key)


def verify(url: str, processes: int | None, digest_args: tuple[str, ...] = ()) -> dict[str, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.perf_counter()
    extra = ["--processes", str(processes)] if processes else []
    extra += digest_args
    result = subprocess.run(
        [sys.executable, "-m", "bot.cli", "audit", "verify", *extra],
        env={**os.environ, "DATABASE_URL": url},
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = time.perf_counter() - started
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if result.returncode != 0:
        raise RuntimeError(result.stderr)
    return {
        "seconds": round(elapsed, 2),
        "peak_rss_mb": round(max(peak_kib, before) / 1024, 1),
        "output": result.stdout.strip(),
    }  # type: ignore[dict-item]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument(
        "--postgres", action="store_true", help="a fresh PostgreSQL database instead of SQLite"
    )
    parser.add_argument("--processes", type=int, help="passed to `opsgate audit verify --processes`")
    parser.add_argument("--digests", type=int, default=0, help="also verify against this many signed digests")
    args = parser.parse_args()
    results = []
    for size in (int(s) for s in args.sizes.split(",")):
        with tempfile.TemporaryDirectory() as tmp:
            url = (
                asyncio.run(create_pg_database("opsgate_bench_audit"))
                if args.postgres
                else f"sqlite+aiosqlite:///{tmp}/audit.db"
            )
            try:
                build_s = asyncio.run(build_chain(url, size))
                # A fresh child per size: RUSAGE_CHILDREN keeps the maximum over all children so far,
                # so sizes run smallest first and the largest peak is the one that counts.
                measured = verify(url, args.processes)
                with_digests = None
                if args.digests:
                    directory = f"{tmp}/digests"
                    key = asyncio.run(write_digests(url, size, args.digests, directory))
                    with_digests = verify(url, args.processes, ("--digests", directory, "--public-key", key))
            finally:
                if args.postgres:
                    asyncio.run(drop_pg_database(url))
            reported = re.search(r"\(([\d,]+) events/s\)", str(measured["output"]))
            results.append(
                {
                    "events": size,
                    "build_seconds": round(build_s, 1),
                    "verify_seconds_with_startup": measured["seconds"],
                    "events_per_s_with_startup": round(size / measured["seconds"]),
                    "events_per_s_reported": int(reported.group(1).replace(",", "")) if reported else None,
                    "peak_rss_mb": measured["peak_rss_mb"],
                    "verify_output": measured["output"],
                }
            )
            if with_digests is not None:
                rate = re.search(r"\(([\d,]+) events/s\)", str(with_digests["output"]))
                results[-1]["with_digests"] = {
                    "digests": args.digests,
                    "verify_seconds_with_startup": with_digests["seconds"],
                    "events_per_s_with_startup": round(size / with_digests["seconds"]),
                    "events_per_s_reported": int(rate.group(1).replace(",", "")) if rate else None,
                    "verify_output": with_digests["output"],
                }
    print(json.dumps({"benchmark": "audit_verify", "backend": "postgresql" if args.postgres else "sqlite",
                      "cpus": os.cpu_count(), "runs": results,
                      "targets": {"events_per_s": ">= 100000", "memory": "flat with size"}}, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
