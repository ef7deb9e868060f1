"""Run by test_concurrency as a separate process: many approvals and starts at one instant."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections import Counter
from typing import Any

from bot.db.engine import create_engine
from bot.db.transaction import Database
from bot.domain.audit import Fingerprinter
from bot.domain.policy import ApproverSet, PolicyRule, PolicySet, StaticDirectory
from bot.domain.requests import system_clock
from commands.approvals import Approvals

APPROVERS = [f"U_A{i:02d}" for i in range(25)]


async def main(url: str, schema: str, ref: str, start_at: float) -> None:
    connect_args = {"server_settings": {"search_path": schema}} if schema else {}
    engine = create_engine(url, connect_args=connect_args, **({"pool_size": 30} if schema else {}))
    rule = PolicyRule(name="p", action="promotion", environment="prod", approvers=ApproverSet(groups=("leads",)),
                      min_approvals=3)  # fmt: skip
    approvals = Approvals(PolicySet([rule]), StaticDirectory({"leads": frozenset(APPROVERS)}))
    database = Database(
        engine, clock=system_clock, fingerprinter=Fingerprinter(b"test-fingerprint-key-0123456789")
    )

    async def approve(approver: str) -> Any:
        async with database.transaction() as tx:
            return await approvals.approve(tx, ref, approver=approver)

    async def start() -> Any:
        async with database.transaction() as tx:
            return await approvals.start_execution(tx, ref)

    await asyncio.sleep(max(0.0, start_at - time.time()))
    results = await asyncio.gather(*(approve(a) for a in APPROVERS), return_exceptions=True)
    starts = await asyncio.gather(*(start() for _ in range(10)), return_exceptions=True)
    outcome = {
        "approve_errors": Counter(type(r).__name__ for r in results if isinstance(r, BaseException)),
        "counted": sum(1 for r in results if not isinstance(r, BaseException) and r.counted),
        "started": sum(1 for r in starts if not isinstance(r, BaseException)),
        "start_errors": Counter(type(r).__name__ for r in starts if isinstance(r, BaseException)),
    }
    await engine.dispose()
    print(json.dumps(outcome))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])))
