"""Alert storm benchmark: 10,000 failure events over 20 dedup keys and 5 channels in 10 s.

Events go to `POST /alerts` over loopback HTTP; the worker's tick and the outbox delivery run
concurrently against the Slack emulator, which limits chat.postMessage to 1 message/s per
channel (HTTP 429 + Retry-After beyond that). A few 429s are injected on top so that honouring
Retry-After is measured too. Prints one JSON object:

    events_sent / events_persisted       every accepted event counted on its alert (must be equal)
    slack_calls                          posts and updates Slack accepted, and attempts made
    rate_limited_429s                    429 answers the outbox received and waited out
    peak_messages_per_channel_per_second in any 1-second window, from the emulator's timestamps
    time_to_first_post_s                 from the first event sent to the first message in Slack
    ingest_events_per_s                  accepted events / time to send them all
    final_counts_match                   every alert's count in Slack equals its stored count

Usage: python bench/alert_storm.py [--events 10000] [--keys 20] [--channels 5] [--seconds 10]
       [--database-url sqlite+aiosqlite:///...] [--concurrency 32] [--inject-429 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import secrets
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp
import httpx
from aiohttp import web
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy import func, select, text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.alerts.service import AlertService
from bot.config.alerts import AlertsConfig
from bot.db.alert_models import AlertRow
from bot.db.engine import create_engine, create_session_factory
from bot.db.migrate import upgrade_async
from bot.db.models import OutboxMessage
from bot.domain.requests import system_clock
from bot.emulators.slack import create_app
from bot.emulators.slack_control import workspace_of
from bot.emulators.slack_records import ChannelMessage
from bot.emulators.slack_seed import DEFAULT_BOT_TOKEN, SlackChannel
from bot.jobs.outbox import DeliveryReport, Outbox, OutboxDelivery
from bot.web.alerts import add_alert_routes
from connectors.emulators.faults import start_app

TOKEN = "bench-ingest-token"
TICK_SECONDS = 0.2


def peak_per_window(timestamps: Sequence[float], window: float = 1.0) -> int:
    """Most messages inside any half-open window of `window` seconds."""
    ordered = sorted(timestamps)
    best, start = 0, 0
    for end, ts in enumerate(ordered):
        while ts - ordered[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best


def shown_count(messages: list[ChannelMessage], alert_id: int) -> int | None:
    for message in messages:
        for block in message.blocks:
            if block.get("block_id") != f"alert:{alert_id}":
                continue
            if block["type"] == "header":
                field = next(
                    f["text"] for f in message.blocks[1]["fields"] if f["text"].startswith("*Occurrences*")
                )
                return int(field.split("\n")[1])
            found = re.search("\N{MULTIPLICATION SIGN}(\\d+)", block["text"]["text"])
            return int(found.group(1)) if found else 1
    return None


async def run(args: argparse.Namespace) -> dict[str, Any]:
    channels = [f"C_BENCH{i}" for i in range(args.channels)]
    slack_app = create_app(
        channels=[SlackChannel(id=c, name=f"bench-{i}") for i, c in enumerate(channels)], per_channel_rate=1.0
    )
    slack_runner, slack_url = await start_app(slack_app)
    workspace = workspace_of(slack_app)
    tmp = tempfile.TemporaryDirectory()
    url = args.database_url or f"sqlite+aiosqlite:///{Path(tmp.name) / 'bench.db'}"
    schema = f"alert_bench_{secrets.token_hex(3)}" if url.startswith("postgresql") else None
    if schema:  # a private schema, dropped at the end, so the bench never touches real tables
        admin = create_engine(url)
        async with admin.begin() as conn:
            await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        engine = create_engine(url, connect_args={"server_settings": {"search_path": schema}})
    else:
        engine = create_engine(url)
    await upgrade_async(engine)
    sessions = create_session_factory(engine)
    config = AlertsConfig.model_validate(
        {
            "default_channel": channels[0],
            "routes": [{"match": {"lane": f"l{i}"}, "channel": c} for i, c in enumerate(channels)],
            "group_wait": args.group_wait,
            "group_interval": args.group_interval,
            "storm": {"digest_update_interval": args.digest_interval},
        }
    )
    wake = asyncio.Event()
    service = AlertService(sessions, system_clock, config, Outbox(system_clock), wake=wake.set)
    api = web.Application()
    add_alert_routes(api, service, TOKEN)
    api_runner, api_url = await start_app(api)
    slack_client = AsyncWebClient(token=DEFAULT_BOT_TOKEN, base_url=slack_url + "/api/")
    delivery = OutboxDelivery(sessions, slack_client, system_clock)
    totals = DeliveryReport()
    stop = asyncio.Event()

    async with httpx.AsyncClient(base_url=slack_url) as control:
        if args.inject_429:
            fault = {
                "path": "/api/chat.postMessage",
                "status": 429,
                "retry_after": 1,
                "times": args.inject_429,
            }
            await control.post("/_control/faults", json=fault)

    async def ticker() -> None:
        while not stop.is_set():
            await service.tick()
            await asyncio.sleep(TICK_SECONDS)

    async def deliverer() -> None:
        while not stop.is_set():
            report = await delivery.deliver_due()
            for name in ("sent", "retried", "rate_limited", "dead"):
                setattr(totals, name, getattr(totals, name) + getattr(report, name))
            if not report.attempted:
                wake.clear()
                try:
                    await asyncio.wait_for(wake.wait(), timeout=0.05)
                except TimeoutError:
                    pass

    workers = [asyncio.create_task(ticker()), asyncio.create_task(deliverer())]
    accepted = 0
    interval = args.seconds / args.events
    # aiohttp's client: httpx's connection pool costs more CPU than the server under test here.
    connector = aiohttp.TCPConnector(limit=args.concurrency)
    async with aiohttp.ClientSession(base_url=api_url, connector=connector) as client:
        started = time.time()
        next_index = 0

        async def sender() -> None:
            nonlocal accepted, next_index
            while next_index < args.events:
                i = next_index
                next_index += 1
                delay = started + i * interval - time.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                key = i % args.keys
                body = {
                    "dedup_key": f"bench-key-{key}",
                    "title": f"Integration {key} failing",
                    "severity": "critical" if key % 10 == 0 else "error",
                    "environment": "prod",
                    "system": f"system-{key % 4}",
                    "labels": {"lane": f"l{key % args.channels}"},
                }
                headers = {"Authorization": f"Bearer {TOKEN}"}
                async with client.post("/alerts", json=body, headers=headers) as answer:
                    await answer.read()
                    if answer.status == 202:
                        accepted += 1

        await asyncio.gather(*(sender() for _ in range(args.concurrency)))
        ingest_seconds = time.time() - started

    # Let the last counts reach Slack: wait until nothing is due or undelivered, then settle.
    deadline = time.time() + 120
    quiet_since: float | None = None
    while time.time() < deadline:
        async with sessions() as session:
            undelivered = await session.scalar(
                select(func.count())
                .select_from(OutboxMessage)
                .where(OutboxMessage.status.in_(("pending", "sending")))
            )
            due = await session.scalar(
                select(func.count()).select_from(AlertRow).where(AlertRow.next_flush_at.is_not(None))
            )
        if not undelivered and not due:
            quiet_since = quiet_since or time.time()
            if time.time() - quiet_since > 1.0:
                break
        else:
            quiet_since = None
        await asyncio.sleep(0.2)
    stop.set()
    await asyncio.gather(*workers)

    async with sessions() as session:
        persisted = int(await session.scalar(select(func.coalesce(func.sum(AlertRow.occurrences), 0))) or 0)
        alerts = (await session.scalars(select(AlertRow))).all()
        outbox_status = Counter((await session.scalars(select(OutboxMessage.status))).all())

    messages = {c: workspace.messages(c) for c in channels}
    posts = sum(len(found) for found in messages.values())
    updates = sum(len(m.history) for found in messages.values() for m in found)
    every = [m for found in messages.values() for m in found]
    top_level = [m for m in every if m.thread_ts in (None, m.ts)]
    first_post = min((float(m.ts) for m in every), default=None)
    result = {
        "events_sent": args.events,
        "events_accepted": accepted,
        "events_persisted": persisted,
        "alerts": len(alerts),
        "config": {
            "group_wait": args.group_wait,
            "group_interval": args.group_interval,
            "digest_update_interval": args.digest_interval,
            "per_channel_rate": 1.0,
            "database": engine.dialect.name,
        },
        "slack_calls": {
            "posts": posts,
            "updates": updates,
            "total": posts + updates,
            "attempts": totals.attempted,
            "digest_messages": sum(1 for m in top_level if m.text.startswith("Alert storm")),
        },
        "rate_limited_429s": totals.rate_limited,
        "injected_429s": args.inject_429,
        "server_errors_retried": totals.retried,
        "outbox": dict(outbox_status),
        "peak_messages_per_channel_per_second": max(
            (peak_per_window([float(m.ts) for m in found]) for found in messages.values()), default=0
        ),
        "time_to_first_post_s": round(first_post - started, 3) if first_post else None,
        "ingest_seconds": round(ingest_seconds, 3),
        "ingest_events_per_s": round(accepted / ingest_seconds, 1),
        "final_counts_match": all(shown_count(top_level, a.id) == a.occurrences for a in alerts),
    }
    await api_runner.cleanup()
    await slack_runner.cleanup()
    await engine.dispose()
    if schema:
        async with admin.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        await admin.dispose()
    tmp.cleanup()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--keys", type=int, default=20)
    parser.add_argument("--channels", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--group-wait", default="1s")
    parser.add_argument("--group-interval", default="5s")
    parser.add_argument("--digest-interval", default="2s")
    parser.add_argument("--inject-429", type=int, default=5)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args)), indent=2))


if __name__ == "__main__":
    main()
