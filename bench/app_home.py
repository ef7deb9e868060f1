"""App Home render time with 100,000 requests in the database.

Fills a fresh SQLite database (or --database-url) with N change requests (about 1% pending,
the rest decided over the past year) and measures, for random viewers, the whole App Home
path: approvals waiting for them, their open requests, recent changes, building the view with
Block Kit validation, and queueing views.publish in the outbox. Prints JSON with p50/p99.
Usage: python bench/app_home.py [--requests 100000] [--renders 300]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import insert

from bot.config.opsgate import Settings, parse_config
from bot.db.models import ChangeRequestRow
from bot.domain.policy import ApproverSet, PolicyRule
from bot.wiring.service import build_service

USERS = [f"U{i:03d}" for i in range(200)]
STATUSES = (
    ["succeeded"] * 70
    + ["failed"] * 8
    + ["rejected"] * 10
    + ["expired"] * 6
    + ["cancelled"] * 5
    + ["pending"]
)


async def fill(service: object, count: int, rng: random.Random) -> float:
    rule = PolicyRule(
        name="prod", action="*", environment="*", approvers=ApproverSet(groups=("leads",)), min_approvals=2
    )
    snapshot = rule.model_dump(mode="json")
    now = datetime.now(UTC)
    started = time.perf_counter()
    engine = service.runtime.deps.engine  # type: ignore[attr-defined]
    batch = []
    for i in range(1, count + 1):
        created = now - timedelta(minutes=rng.randrange(0, 525_600))
        status = rng.choice(STATUSES)
        batch.append(
            {
                "human_id": f"PRM-{i}", "kind": "promotion", "target": f"artifact-{i % 500}", "environment": "prod",
                "parameters": {"version": f"1.{i % 40}.0"}, "params_hash": f"{i:064x}", "requester": rng.choice(USERS),
                "reason": "benchmark", "status": status, "policy_name": "prod", "policy_snapshot": snapshot,
                "emergency": False, "created_at": created, "updated_at": created,
                "expires_at": now + timedelta(hours=12) if status == "pending" else created + timedelta(hours=24),
            }
        )  # fmt: skip
        if len(batch) == 5000:
            async with engine.begin() as conn:
                await conn.execute(insert(ChangeRequestRow), batch)
            batch = []
    if batch:
        async with engine.begin() as conn:
            await conn.execute(insert(ChangeRequestRow), batch)
    return time.perf_counter() - started


async def run(requests: int, renders: int, database_url: str | None) -> dict[str, object]:
    rng = random.Random(7)
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            database_url=database_url or f"sqlite+aiosqlite:///{tmp}/home.db",
            slack_api_url="http://127.0.0.1:9/api/",
            opsgate_secret_key_file=Path(tmp) / "key",
        )
        config = parse_config(
            {
                "environments": {"prod": {}},
                "groups": {"leads": USERS[:20]},
                "policies": [{"name": "prod", "action": "*", "environment": "*", "approvers": {"groups": ["leads"]},
                              "min_approvals": 2}],
            },
            source="bench",
            env={},
        )  # fmt: skip
        service = await build_service(settings, config, migrate=True)
        fill_s = await fill(service, requests, rng)
        timings = []
        for _ in range(renders):
            viewer = rng.choice(USERS[:40])  # half approvers, half not
            started = time.perf_counter()
            await service.jobs.publish_home(viewer, page=0)
            timings.append((time.perf_counter() - started) * 1000)
        await service.stop(timeout=1)
    timings.sort()
    return {
        "benchmark": "app_home",
        "requests_in_database": requests,
        "renders": renders,
        "fill_seconds": round(fill_s, 1),
        "p50_ms": round(statistics.median(timings), 2),
        "p99_ms": round(timings[int(len(timings) * 0.99) - 1], 2),
        "max_ms": round(timings[-1], 2),
        "target": {"p99_ms": "< 100"},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--renders", type=int, default=300)
    parser.add_argument("--database-url")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args.requests, args.renders, args.database_url)), indent=2))


if __name__ == "__main__":
    main()
