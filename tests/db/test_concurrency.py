"""Two processes race on one request, each call in its own transaction: exactly one execution."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

from bot.db.transaction import Database
from bot.domain.policy import Action, ApproverSet, PolicyRule, PolicySet, StaticDirectory
from bot.domain.requests import ChangeSpec, RequestStatus, system_clock
from commands.approvals import Approvals

SCRIPT = Path(__file__).with_name("concurrent_engine.py")


async def test_fifty_concurrent_approvals_and_starts_from_two_processes_execute_once(database, fingerprinter):
    rule = PolicyRule(name="p", action="promotion", environment="prod", approvers=ApproverSet(groups=("leads",)),
                      min_approvals=3)  # fmt: skip
    approvals = Approvals(PolicySet([rule]), StaticDirectory({}))
    store = Database(database.engine, clock=system_clock, fingerprinter=fingerprinter)
    async with store.transaction() as tx:
        request = await approvals.create(
            tx, ChangeSpec(Action.PROMOTION, "orders-api", "prod", {"v": "2"}), requester="U_REQ"
        )
    schema = database.connect_args.get("server_settings", {}).get("search_path", "")
    start_at = time.time() + 2.0
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            str(SCRIPT),
            database.url,
            schema,
            request.human_id,
            str(start_at),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        for _ in range(2)
    ]
    outputs = [await p.communicate() for p in procs]
    assert all(p.returncode == 0 for p in procs), [err.decode()[-2000:] for _, err in outputs]
    results = [json.loads(out) for out, _ in outputs]
    assert sum(r["started"] for r in results) == 1, results
    # 50 clicks from 25 approvers: exactly the quorum counts, every later click is told it is decided.
    assert sum(r["counted"] for r in results) == 3, results
    # The rest either met "already approved" (InvalidTransition) or were the same approver's
    # duplicate from the other process (not counted); nothing else may happen.
    assert all(set(r["approve_errors"]) <= {"InvalidTransition"} for r in results), results
    async with store.reading() as tx:
        final = await approvals.get(tx, request.human_id)
    assert final.status is RequestStatus.EXECUTING
    assert len(final.approvals) == 3
