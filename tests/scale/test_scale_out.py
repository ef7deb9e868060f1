"""Scale-out: two `opsgate serve` and two `opsgate worker` processes share one PostgreSQL.

500 promotions (one per generated OpenText artifact) are requested through both servers; each is
approved by two approvers whose clicks, plus a duplicate click, land concurrently on different
servers. Every request must run exactly once, every Slack message must be delivered exactly
once, and exactly one worker may run the scheduler, with the other taking over when it dies.

Approval messages go to 50 channels (a policy per pair of final digits of the artifact id), ten
requests each, and the requests come from ten engineers. opsgate delivers each channel's (and
each DM's) messages strictly in order, and Slack accepts about one message per second per
channel: 500 concurrent requests in one channel would take minutes in production too.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.db.engine import create_engine
from bot.emulators.slack_driver import SlackDriver
from bot.emulators.slack_records import ChannelMessage
from bot.ids import ActionId
from bot.jobs.leader import SCHEDULER_LOCK_KEY
from connectors.emulators.opentext import seed_generated_artifacts

from .conftest import (
    SIGNING_SECRET,
    Emulators,
    extra_channels,
    extra_users,
    opentext_settings,
    process_env,
    start_emulators,
)
from .processes import OpsgateProcess, OpsgateProcesses, wait_until

REQUESTS = 500
# One approval channel per pair of final digits: artifact-00127 is approved in C_SCALE_23.
ROUTES = {
    f"C_SCALE_{tens}{pair}": f"*{tens}[{2 * pair}{2 * pair + 1}]" for tens in range(10) for pair in range(5)
}
CHANNELS = tuple(ROUTES)
REQUESTERS = tuple(f"U_ENG_{n}" for n in range(10))
SOLUTION = "scale"
CONCURRENCY = 40  # Slack requests in flight at once
LEADER_LOG = "this process runs the scheduler"
REF = re.compile(r"\bPRM-\d+\b")


def scale_config(opentext_url: str) -> dict[str, Any]:
    opentext = opentext_settings(opentext_url)
    return {
        "environments": {"test": {"opentext": opentext}, "prod": {"opentext": opentext, "production": True}},
        "groups": {"leads": ["U_APP1", "U_APP2"], "engineers": list(REQUESTERS)},
        "slack": {"approvals_channel": "C_APPROVALS", "alerts_channel": "C_ALERTS"},
        "alerts": {"default_channel": "C_ALERTS"},
        "policies": [
            {
                "name": f"scale-{channel.lower()}",
                "action": "promotion",
                "environment": "prod",
                "target": f"{SOLUTION}.artifact-{pattern}",
                "approvers": {"groups": ["leads"]},
                "min_approvals": 2,
                "requesters": {"groups": ["engineers"]},
                "approval_channel": channel,
            }
            for channel, pattern in ROUTES.items()
        ],
    }


def approval_messages(emulators: Emulators) -> list[ChannelMessage]:
    return [m for channel in CHANNELS for m in emulators.workspace.messages(channel) if m.thread_ts is None]


def request_ref(message: ChannelMessage) -> str:
    """The request an approval message is about (its buttons are gone once it is decided)."""
    found = REF.search(message.text)
    assert found, f"no request id in {message.text!r}"
    return found.group(0)


def approve_value(message: ChannelMessage) -> str:
    for block in message.blocks:
        for element in block.get("elements", []):
            if element.get("action_id") == ActionId.APPROVE:
                return str(element["value"])
    raise AssertionError(f"no Approve button on {json.dumps(message.blocks)[:300]}")


async def scalar(engine: AsyncEngine, sql: str, **params: Any) -> Any:
    async with engine.connect() as conn:
        return (await conn.execute(text(sql), params)).scalar()


async def rows(engine: AsyncEngine, sql: str, **params: Any) -> list[Any]:
    async with engine.connect() as conn:
        return list((await conn.execute(text(sql), params)).all())


async def scheduler_lock_holders(engine: AsyncEngine) -> int:
    """Sessions holding the scheduler's advisory lock in this database (the key fits in objid)."""
    return int(
        await scalar(
            engine,
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
            "AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
            "AND classid = 0 AND objid = :key",
            key=SCHEDULER_LOCK_KEY,
        )
    )


async def diagnosis(engine: AsyncEngine, processes: list[OpsgateProcess]) -> str:
    """What a failure message needs: where the rows stand and what the processes complained about."""
    report = {
        "requests": dict(await rows(engine, "SELECT status, count(*) FROM change_requests GROUP BY status")),
        "jobs": [tuple(r) for r in await rows(
            engine, "SELECT kind, status, attempts, count(*) FROM jobs GROUP BY kind, status, attempts"
        )],
        "outbox": [tuple(r) for r in await rows(
            engine, "SELECT status, attempts, count(*) FROM outbox GROUP BY status, attempts"
        )],
        "outbox_rate": [tuple(r) for r in await rows(
            engine, "SELECT conversation, count(*), extract(epoch from max(sent_at) - min(created_at)) FROM outbox "
            "WHERE status = 'sent' GROUP BY conversation ORDER BY 2 DESC LIMIT 5"
        )],
    }  # fmt: skip
    for process in processes:
        problems = Counter(
            json.loads(line).get("event", line)[:120]
            for line in process.log().splitlines()
            if '"level": "warning"' in line or '"level": "error"' in line
        )
        report[process.name] = {"cpu_s": process.cpu_seconds(), **dict(problems.most_common(5))}
    return json.dumps(report, default=str, indent=1)


@pytest.fixture
async def emulators() -> AsyncIterator[Emulators]:
    started, runners = await start_emulators(extra_channels(*CHANNELS), extra_users(*REQUESTERS))
    try:
        yield started
    finally:
        for runner in runners:
            await runner.cleanup()


async def test_two_servers_and_two_workers_run_each_of_500_concurrently_approved_requests_once(
    pg_database: str, emulators: Emulators, processes_dir: Path, process_group: list[OpsgateProcesses]
) -> None:
    timings: dict[str, float] = {}
    started = time.monotonic()
    artifacts = seed_generated_artifacts(emulators.opentext, REQUESTS, solution=SOLUTION)
    # Four processes must fit PostgreSQL's connection budget (max_connections, often 100) with room
    # for everything else on the server: 4 x (5 + 5) connections at most.
    env = process_env(
        pg_database,
        emulators.slack_url,
        DATABASE_POOL_SIZE="5",
        DATABASE_MAX_OVERFLOW="5",
        OPSGATE_LOG_LEVEL="INFO",
    )
    group = OpsgateProcesses(processes_dir, scale_config(emulators.opentext_url), env)
    process_group.append(group)
    group.run("db", "upgrade")
    servers: list[OpsgateProcess] = list(
        await asyncio.gather(group.serve("serve-a", "--no-worker"), group.serve("serve-b", "--no-worker"))
    )
    workers: list[OpsgateProcess] = list(
        await asyncio.gather(group.worker("worker-1"), group.worker("worker-2"))
    )
    timings["processes_started"] = time.monotonic() - started
    engine = create_engine(pg_database)
    drivers = [SlackDriver(s.url + "/slack/events", SIGNING_SECRET, emulators.slack_url) for s in servers]
    limit = asyncio.Semaphore(CONCURRENCY)

    async def settle(check: Any, *, timeout: float, what: str) -> None:
        try:
            await wait_until(check, timeout=timeout, what=what, interval=0.25)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{await diagnosis(engine, [*servers, *workers])}") from None

    try:
        # 1. 500 /promote commands, alternating between the two servers.
        async def promote(index: int, artifact: str) -> int:
            async with limit:
                result = await drivers[index % 2].slash_command(
                    REQUESTERS[index % len(REQUESTERS)],
                    "/promote",
                    f"{artifact} 1.1.0 test prod",
                    channel_id="C_APPROVALS",
                )
                return result.status

        statuses = await asyncio.gather(*(promote(i, a) for i, a in enumerate(artifacts)))
        assert Counter(statuses) == {200: REQUESTS}, "every slash command is acknowledged"

        async def all_posted() -> bool:
            return len(approval_messages(emulators)) >= REQUESTS

        await settle(all_posted, timeout=120, what=f"{REQUESTS} approval messages")
        timings["requests_opened"] = time.monotonic() - started
        messages = approval_messages(emulators)
        assert len(messages) == REQUESTS

        # 2. Two approvers click at once on different servers, and one of them clicks twice.
        async def click(user: str, driver: SlackDriver, message: ChannelMessage) -> int:
            async with limit:
                result = await driver.block_action(
                    user,
                    message_ts=message.ts,
                    channel_id=message.channel,
                    action_id=ActionId.APPROVE,
                    value=approve_value(message),
                    message=message.model_dump(mode="json"),
                )
                return result.status

        clicks = []
        for index, message in enumerate(messages):
            first, second = drivers[index % 2], drivers[(index + 1) % 2]
            clicks += [click("U_APP1", first, message), click("U_APP2", second, message)]
            clicks.append(click("U_APP1", second, message))  # a double click, on the other server
        click_statuses = await asyncio.gather(*clicks)
        assert Counter(click_statuses) == {200: 3 * REQUESTS}, "every click is acknowledged"

        async def all_finished() -> bool:
            open_count = await scalar(
                engine, "SELECT count(*) FROM change_requests WHERE status NOT IN ('succeeded', 'failed')"
            )
            return int(open_count) == 0

        await settle(all_finished, timeout=240, what="every request to finish")
        timings["requests_finished"] = time.monotonic() - started

        async def outbox_drained() -> bool:
            left = await scalar(engine, "SELECT count(*) FROM outbox WHERE status IN ('pending', 'sending')")
            return int(left) == 0

        await settle(outbox_drained, timeout=120, what="the outbox to drain")
        timings["outbox_drained"] = time.monotonic() - started
        for process in [*servers, *workers]:
            timings[f"cpu_{process.name}"] = process.cpu_seconds()

        # Exactly 500 executions: each request succeeded once, OpenText ran one job per artifact.
        by_status = dict(await rows(engine, "SELECT status, count(*) FROM change_requests GROUP BY status"))
        assert by_status == {"succeeded": REQUESTS}, by_status
        executions = await scalar(
            engine, "SELECT count(*) FROM audit_events WHERE action = 'execution.started'"
        )
        assert executions == REQUESTS
        promotions = [j for j in emulators.opentext.jobs.values() if j.kind == "promotion"]
        assert len(promotions) == REQUESTS, (
            f"{len(promotions)} OpenText promotion jobs for {REQUESTS} requests"
        )
        assert {j.request["artifact_id"] for j in promotions} == set(artifacts)
        approvals = dict(await rows(engine, "SELECT approver, count(*) FROM approvals GROUP BY approver"))
        assert approvals == {"U_APP1": REQUESTS, "U_APP2": REQUESTS}, "a double click counts once"

        # Every message delivered once: what Slack holds matches the outbox row for row.
        outbox = await rows(
            engine,
            "SELECT conversation, method, status, count(*) FROM outbox GROUP BY conversation, method, status",
        )
        assert {status for _, _, status, _ in outbox} == {"sent"}, outbox
        sent = {(conversation, method): int(count) for conversation, method, _, count in outbox}
        for channel in CHANNELS:
            held = emulators.workspace.messages(channel)
            assert len(held) == sent.get((channel, "chat.postMessage"), 0), f"{channel}: posts differ"
            updates = sum(len(m.history) for m in held)
            assert updates == sent.get((channel, "chat.update"), 0), f"{channel}: updates differ"
        refs = Counter(request_ref(m) for m in approval_messages(emulators))
        assert len(refs) == REQUESTS and set(refs.values()) == {1}, "one approval message per request"
        for requester in REQUESTERS:
            dms = emulators.workspace.messages(emulators.workspace.open_dm(requester))
            assert len(dms) == sent.get((requester, "chat.postMessage"), 0), f"{requester}: DMs differ"

        # One scheduler: the advisory lock has one holder, a worker; the standby takes over.
        assert await scheduler_lock_holders(engine) == 1
        leaders = [w for w in workers if LEADER_LOG in w.log()]
        assert len(leaders) == 1, [w.name for w in leaders]
        [leader] = leaders
        [standby] = [w for w in workers if w is not leader]
        leader.kill()
        killed_at = time.monotonic()
        await standby.wait_for_log(LEADER_LOG, timeout=10)
        timings["failover_seconds"] = time.monotonic() - killed_at
        assert await scheduler_lock_holders(engine) == 1
        timings["total"] = time.monotonic() - started
        print(json.dumps({"scale_out_timings_s": {k: round(v, 2) for k, v in timings.items()}}))
    finally:
        for driver in drivers:
            await driver.aclose()
        await engine.dispose()
        group.close()
