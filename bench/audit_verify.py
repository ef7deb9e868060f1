"""Audit verification throughput and memory: `opsgate audit verify` over 100k and 1M events.

Builds a valid hash chain of N events in a fresh SQLite database (or, with --postgres, a fresh
PostgreSQL database at 127.0.0.1:5432), then runs `opsgate audit verify` as a child process and
records its wall time (process start-up included), the rate the command itself reports, and
peak RSS (the largest of its processes). Memory must not grow with the number of events.
Prints JSON.
Usage: python bench/audit_verify.py [--sizes 100000,1000000] [--postgres] [--processes N]
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

from _pgdb import create_pg_database, drop_pg_database
from sqlalchemy import insert, update

from bot.db.engine import create_engine
from bot.db.migrate import upgrade_async
from bot.db.models import AuditEvent, AuditHead
from bot.domain.audit import GENESIS_HASH, AuditRecord, chain_hash

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


def verify(url: str, processes: int | None) -> dict[str, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.perf_counter()
    extra = ["--processes", str(processes)] if processes else []
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
    print(json.dumps({"benchmark": "audit_verify", "backend": "postgresql" if args.postgres else "sqlite",
                      "cpus": os.cpu_count(), "runs": results,
                      "targets": {"events_per_s": ">= 100000", "memory": "flat with size"}}, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
