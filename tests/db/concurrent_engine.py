"""Run by test_concurrency as a separate process: many approvals and starts at one instant."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections import Counter

from bot.db.engine import create_engine, create_session_factory
from bot.domain.approvals import ApprovalEngine
from bot.domain.audit import Fingerprinter
from bot.domain.policy import ApproverSet, PolicyRule, PolicySet, StaticDirectory

APPROVERS = [f"U_A{i:02d}" for i in range(25)]


async def main(url: str, schema: str, ref: str, start_at: float) -> None:
    connect_args = {"server_settings": {"search_path": schema}} if schema else {}
    engine = create_engine(url, connect_args=connect_args, **({"pool_size": 30} if schema else {}))
    rule = PolicyRule(name="p", action="promotion", environment="prod", approvers=ApproverSet(groups=("leads",)),
                      min_approvals=3)  # fmt: skip
    approvals = ApprovalEngine(
        create_session_factory(engine), PolicySet([rule]), StaticDirectory({"leads": frozenset(APPROVERS)}),
        Fingerprinter(b"test-fingerprint-key-0123456789"),
    )  # fmt: skip
    await asyncio.sleep(max(0.0, start_at - time.time()))
    results = await asyncio.gather(
        *(approvals.approve(ref, approver=a) for a in APPROVERS), return_exceptions=True
    )
    starts = await asyncio.gather(
        *(approvals.start_execution(ref) for _ in range(10)), return_exceptions=True
    )
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
