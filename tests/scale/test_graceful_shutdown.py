"""Graceful shutdown: SIGTERM stops accepting, answers what is in flight, exits within 10 s.

50 slash commands are held in flight inside `opsgate serve` (the test holds SQLite's write lock,
so each acknowledgement waits for its job to be persisted), then the process gets SIGTERM. New
connections must be refused at once, every one of the 50 must still get its 200, the process
must exit within 10 s, and the jobs it leaves behind must be claimable: a new worker finishes
them all.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from sqlalchemy import text

from bot.db.engine import create_engine
from bot.web.slack_signature import sign

from .conftest import SIGNING_SECRET, opentext_settings, process_env, start_emulators
from .processes import OpsgateProcess, OpsgateProcesses, wait_until

COMMANDS = 50
EXIT_WITHIN = 10.0
PROC_NET_TCP = Path("/proc/net/tcp")

pytestmark = pytest.mark.skipif(
    not PROC_NET_TCP.exists(), reason="needs Linux /proc/net/tcp to see that the server has read the requests"
)


def shutdown_config(opentext_url: str) -> dict[str, Any]:
    opentext = opentext_settings(opentext_url)
    return {
        "environments": {"test": {"opentext": opentext}, "prod": {"opentext": opentext}},
        "groups": {"leads": ["U_APP1", "U_APP2"], "engineers": ["U_REQ"]},
        "slack": {"approvals_channel": "C_APPROVALS", "alerts_channel": "C_ALERTS"},
        "policies": [
            {
                "name": "prod-promotions",
                "action": "promotion",
                "environment": "prod",
                "approvers": {"groups": ["leads"]},
                "requesters": {"groups": ["engineers"]},
            }
        ],
    }


@pytest.fixture
def write_lock(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    """A connection to the bot's SQLite file that can hold the write lock (BEGIN IMMEDIATE)."""
    conn = sqlite3.connect(tmp_path / "opsgate.db", isolation_level=None, timeout=30)
    try:
        yield conn
    finally:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        conn.close()


def server_sockets(port: int) -> list[tuple[int, int]]:
    """(state, unread bytes) of each TCP connection accepted, or waiting to be, on `port`."""
    found = []
    for line in PROC_NET_TCP.read_text().splitlines()[1:]:
        fields = line.split()
        local_port = int(fields[1].rsplit(":", 1)[1], 16)
        if local_port == port:
            found.append((int(fields[3], 16), int(fields[4].split(":")[1], 16)))
    return found


async def slash_command_request(client: httpx.AsyncClient, slack_url: str, artifact: str) -> bytes:
    """The exact HTTP request Slack sends for `/promote <artifact> ...`, with a live response URL."""
    issued = (
        await client.post(
            slack_url + "/_control/response_urls", json={"user_id": "U_REQ", "channel_id": "C_ORDERS"}
        )
    ).json()
    trigger = (await client.post(slack_url + "/_control/triggers", json={"user_id": "U_REQ"})).json()
    body = urlencode(
        {
            "team_id": "T0001", "team_domain": "opsgate-demo", "channel_id": "C_ORDERS",
            "channel_name": "orders-edi", "user_id": "U_REQ", "user_name": "rhea.requester",
            "command": "/promote", "text": f"{artifact} 1.1.0 test prod", "api_app_id": "A_OPSGATE",
            "response_url": issued["url"], "trigger_id": trigger["trigger_id"],
        }
    ).encode()  # fmt: skip
    timestamp = int(time.time())
    head = (
        "POST /slack/events HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\n"
        f"Content-Length: {len(body)}\r\nX-Slack-Request-Timestamp: {timestamp}\r\n"
        f"X-Slack-Signature: {sign(SIGNING_SECRET, timestamp, body)}\r\n\r\n"
    )
    return head.encode() + body


async def refused(port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except ConnectionRefusedError:
        return True
    writer.close()
    return False


async def test_sigterm_answers_the_commands_in_flight_exits_within_10_s_and_leaves_jobs_claimable(
    tmp_path: Path, write_lock: sqlite3.Connection, process_group: list[OpsgateProcesses]
) -> None:
    emulators, runners = await start_emulators()
    database_url = f"sqlite+aiosqlite:///{tmp_path / 'opsgate.db'}"
    workdir = tmp_path / "opsgate"
    workdir.mkdir()
    group = OpsgateProcesses(
        workdir, shutdown_config(emulators.opentext_url), process_env(database_url, emulators.slack_url)
    )
    process_group.append(group)
    engine = create_engine(database_url)
    try:
        group.run("db", "upgrade")
        serve: OpsgateProcess = await group.serve("serve")
        assert serve.port is not None
        async with httpx.AsyncClient() as client:
            seeded = await client.post(
                emulators.opentext_url + "/_control/opentext/seed-artifacts",
                json={"count": COMMANDS, "solution": "shutdown"},
            )
            artifacts = seeded.json()["artifacts"]
            assert len(artifacts) == COMMANDS
            requests = [await slash_command_request(client, emulators.slack_url, a) for a in artifacts]

        # Hold the write lock: each acknowledgement now waits for its job to be persisted.
        write_lock.execute("BEGIN IMMEDIATE")
        connections = [await asyncio.open_connection("127.0.0.1", serve.port) for _ in requests]
        for (_, writer), request in zip(connections, requests, strict=True):
            writer.write(request)
            await writer.drain()

        def all_read() -> bool:
            sockets = [s for s in server_sockets(serve.port) if s[0] == 0x01]  # ESTABLISHED
            return len(sockets) == COMMANDS and all(unread == 0 for _, unread in sockets)

        await wait_until(all_read, timeout=10, what=f"serve to read all {COMMANDS} requests")

        serve.terminate()
        signalled = time.monotonic()
        await wait_until(lambda: refused(serve.port), timeout=5, what="serve to stop accepting connections")
        assert serve.alive, "serve waits for the acknowledgements in flight"
        write_lock.execute("ROLLBACK")

        answers = await asyncio.wait_for(
            asyncio.gather(*(reader.read() for reader, _ in connections)), timeout=EXIT_WITHIN
        )
        statuses = [answer.split(b"\r\n", 1)[0] for answer in answers]
        assert statuses == [b"HTTP/1.1 200 OK"] * COMMANDS, statuses
        for _, writer in connections:
            writer.close()
        assert await serve.wait_exit(timeout=EXIT_WITHIN - (time.monotonic() - signalled)) == 0
        exited_after = time.monotonic() - signalled
        assert exited_after < EXIT_WITHIN

        async with engine.connect() as conn:
            jobs = dict((await conn.execute(text("SELECT status, count(*) FROM jobs GROUP BY status"))).all())
        assert sum(jobs.values()) == COMMANDS, "every acknowledged command was persisted"
        assert "running" not in jobs, f"no job is left claimed by the stopped process: {jobs}"

        await group.worker("worker")

        async def all_done() -> bool:
            async with engine.connect() as conn:
                done = (await conn.execute(text("SELECT count(*) FROM jobs WHERE status = 'done'"))).scalar()
            return done == COMMANDS

        await wait_until(all_done, timeout=60, what="the worker to finish every command job", interval=0.2)

        def all_posted() -> bool:
            return (
                len([m for m in emulators.workspace.messages("C_APPROVALS") if m.thread_ts is None])
                == COMMANDS
            )

        await wait_until(all_posted, timeout=30, what=f"{COMMANDS} approval messages")
        async with engine.connect() as conn:
            opened = (await conn.execute(text("SELECT count(*) FROM change_requests"))).scalar()
        assert opened == COMMANDS
        print(f"serve exited {exited_after:.2f} s after SIGTERM")
    finally:
        await engine.dispose()
        group.close()
        for runner in runners:
            await runner.cleanup()
