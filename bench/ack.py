"""Slash-command acknowledgement latency: opsgate's /promote against a bare bolt app.

Starts, as separate processes: the Slack emulator, a bare bolt hello-world app
(process_before_response=True), an opsgate web process (`build_service`, SQLite, persisting a
job per command) and an opsgate worker whose pre-checks take 2 s as a slow connector would. Then sends the same signed
/promote load to each at the same concurrency and prints JSON:
  {"bare": {req_per_s, p50_ms, p99_ms}, "opsgate": {...}, "ratio_req_per_s": opsgate/bare, ...}
Usage: python bench/ack.py [--requests 3000] [--concurrency 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

from bot.slack_signature import sign

SECRET = "bench-signing-secret"
ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ----------------------------------------------------------------- servers (child processes)


async def serve_bare(port: int) -> None:
    from aiohttp import web
    from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
    from slack_bolt.async_app import AsyncApp
    from slack_bolt.authorization import AuthorizeResult

    async def authorize(**kw: object) -> AuthorizeResult:
        return AuthorizeResult(enterprise_id=None, team_id="T0001", bot_token="xoxb-bench")

    app = AsyncApp(signing_secret=SECRET, authorize=authorize, process_before_response=True)

    @app.command("/promote")
    async def hello(ack: object) -> None:
        await ack(response_type="ephemeral", text="hello")  # type: ignore[operator]

    async def events(request: web.Request) -> web.Response:
        return await to_aiohttp_response(await app.async_dispatch(await to_bolt_request(request)))

    web_app = web.Application()
    web_app.router.add_post("/slack/events", events)
    await _run_forever(web_app, port)


async def serve_slack(port: int) -> None:
    from bot.emulators.slack import create_app

    await _run_forever(create_app(per_channel_rate=1000.0, burst=1000), port)


async def serve_opsgate(port: int, slack_url: str, db_dir: str, *, role: str = "web") -> None:
    from bot.domain.policy import Action
    from bot.emulators.slack_seed import DEFAULT_BOT_TOKEN
    from bot.service import build_service
    from bot.settings import Settings, parse_config
    from commands.workflow import Preview

    class SlowPrecheck:
        """A promotion whose connector takes 2 s to answer the pre-check."""

        action = Action.PROMOTION

        async def precheck(self, spec: object, *, requester: str) -> Preview:
            await asyncio.sleep(2.0)
            return Preview("bench")

        async def execute(self, request: object, ctx: object) -> object:
            raise NotImplementedError

    config = parse_config(
        {
            "environments": {"test": {}, "prod": {}},
            "groups": {"leads": ["U_APP1", "U_APP2"]},
            "slack": {"approvals_channel": "C_APPROVALS"},
            "policies": [
                {"name": "p", "action": "*", "environment": "*", "approvers": {"groups": ["leads"]}}
            ],
        },
        source="bench",
        env={},
    )
    settings = Settings(
        database_url=os.environ.get("BENCH_DATABASE_URL") or f"sqlite+aiosqlite:///{db_dir}/bench.db",
        slack_bot_token=DEFAULT_BOT_TOKEN,
        slack_signing_secret=SECRET,
        slack_api_url=slack_url + "/api/",
        opsgate_secret_key_file=Path(db_dir) / "key",
    )
    service = await build_service(
        settings,
        config,
        workflows={Action.PROMOTION: SlowPrecheck()},
        migrate=role == "web",  # type: ignore[dict-item]
    )
    if role == "worker":
        # The production topology: workers run the 2 s pre-checks, the web process only acks.
        service.runtime.runner._concurrency = 1000  # 2 s pre-checks pile up: keep them all in flight
        service.runtime.start_loops(with_scheduler=False)
        print("ready", flush=True)
        await asyncio.Event().wait()
    service.runtime.start_loops(with_scheduler=False, with_jobs=False)
    await _run_forever(service.web, port)


async def _run_forever(app: object, port: int) -> None:
    from aiohttp import web

    runner = web.AppRunner(app, access_log=None)  # type: ignore[arg-type]
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    print("ready", flush=True)
    await asyncio.Event().wait()


# ----------------------------------------------------------------------------- load


def signed(body: str) -> dict[str, str]:
    ts = int(time.time())
    return {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": str(ts),
        "X-Slack-Signature": sign(SECRET, ts, body.encode()),
    }


async def load(
    url: str, *, requests: int, concurrency: int, response_url: str, rate: float | None = None
) -> dict[str, float]:
    """Closed loop (`concurrency` clients, each sends when the last answer came) or, with `rate`,
    open loop: requests start on a fixed schedule whatever the answers, as Slack sends them."""
    import aiohttp  # lighter per request than httpx, so the client is not the bottleneck

    latencies: list[float] = []
    errors = 0
    counter = iter(range(requests))
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as client:

        async def worker() -> None:
            nonlocal errors
            for i in counter:
                body = urllib.parse.urlencode(
                    {
                        "team_id": "T0001", "channel_id": "C_ORDERS", "user_id": "U_REQ", "command": "/promote",
                        "text": f"artifact-{i} 1.0.{i % 50} test prod bench", "trigger_id": f"bench.{i}.{time.time_ns()}",
                        "response_url": response_url, "api_app_id": "A0001",
                    }
                )  # fmt: skip
                started = time.perf_counter()
                async with client.post(url, data=body.encode(), headers=signed(body)) as response:
                    await response.read()
                    if response.status != 200:
                        errors += 1
                latencies.append((time.perf_counter() - started) * 1000)

        async def one(i: int) -> None:
            nonlocal errors
            body = urllib.parse.urlencode(
                {
                    "team_id": "T0001", "channel_id": "C_ORDERS", "user_id": "U_REQ", "command": "/promote",
                    "text": f"artifact-{i} 1.0.{i % 50} test prod bench", "trigger_id": f"bench.{i}.{time.time_ns()}",
                    "response_url": response_url, "api_app_id": "A0001",
                }
            )  # fmt: skip
            began = time.perf_counter()
            async with client.post(url, data=body.encode(), headers=signed(body)) as response:
                await response.read()
                if response.status != 200:
                    errors += 1
            latencies.append((time.perf_counter() - began) * 1000)

        started = time.perf_counter()
        if rate is None:
            await asyncio.gather(*(worker() for _ in range(concurrency)))
        else:
            tasks = []
            for i in range(requests):
                await asyncio.sleep(max(0.0, started + i / rate - time.perf_counter()))
                tasks.append(asyncio.create_task(one(i)))
            await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "requests": requests,
        "errors": errors,
        "req_per_s": round(requests / elapsed, 1),
        "p50_ms": round(statistics.median(latencies), 2),
        "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1], 2),
    }


async def create_pg_database() -> str:
    import asyncpg

    name = f"opsgate_bench_{os.getpid()}"
    conn = await asyncpg.connect("postgresql://postgres@127.0.0.1:5432/postgres")
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    return f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"


async def drop_pg_database(url: str) -> None:
    import asyncpg

    conn = await asyncpg.connect("postgresql://postgres@127.0.0.1:5432/postgres")
    await conn.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')
    await conn.close()


def start(args: list[str]) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, __file__, *args], stdout=subprocess.PIPE, text=True, cwd=ROOT,
                            env={**os.environ, "OPSGATE_LOG_LEVEL": "WARNING"})  # fmt: skip
    assert proc.stdout is not None
    if proc.stdout.readline().strip() != "ready":
        raise RuntimeError(f"{args[1]} did not start")
    return proc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--serve", choices=["bare", "slack", "opsgate", "opsgate-worker"])
    parser.add_argument("--port", type=int)
    parser.add_argument("--slack-url")
    parser.add_argument("--db-dir")
    parser.add_argument(
        "--postgres", action="store_true", help="use a fresh PostgreSQL database at 127.0.0.1:5432"
    )
    parser.add_argument("--rate", type=float, help="open loop: requests per second (default: closed loop)")
    args = parser.parse_args()
    if args.serve == "bare":
        asyncio.run(serve_bare(args.port))
        return
    if args.serve == "slack":
        asyncio.run(serve_slack(args.port))
        return
    if args.serve in ("opsgate", "opsgate-worker"):
        role = "worker" if args.serve == "opsgate-worker" else "web"
        asyncio.run(serve_opsgate(args.port or 0, args.slack_url, args.db_dir, role=role))
        return

    procs = []
    database = asyncio.run(create_pg_database()) if args.postgres else None
    if database:
        os.environ["BENCH_DATABASE_URL"] = database
    with tempfile.TemporaryDirectory() as db_dir:
        try:
            bare_port, slack_port, opsgate_port = free_port(), free_port(), free_port()
            procs.append(start(["--serve", "bare", "--port", str(bare_port)]))
            procs.append(start(["--serve", "slack", "--port", str(slack_port)]))
            procs.append(
                start(
                    [
                        "--serve",
                        "opsgate",
                        "--port",
                        str(opsgate_port),
                        "--slack-url",
                        f"http://127.0.0.1:{slack_port}",
                        "--db-dir",
                        db_dir,
                    ]
                )
            )
            procs.append(start(["--serve", "opsgate-worker", "--slack-url", f"http://127.0.0.1:{slack_port}",
                                "--db-dir", db_dir]))  # fmt: skip
            # Answers to response_url go to the emulator (an unknown id: refused once, not retried).
            reply_to = f"http://127.0.0.1:{slack_port}/_response_url/bench"
            warm = min(200, args.requests)
            for port in (bare_port, opsgate_port):
                asyncio.run(load(f"http://127.0.0.1:{port}/slack/events", requests=warm,
                                 concurrency=args.concurrency, response_url=reply_to))  # fmt: skip
            bare = asyncio.run(load(f"http://127.0.0.1:{bare_port}/slack/events", requests=args.requests,
                                    concurrency=args.concurrency, response_url=reply_to))  # fmt: skip
            opsgate = asyncio.run(
                load(
                    f"http://127.0.0.1:{opsgate_port}/slack/events",
                    requests=args.requests,
                    concurrency=args.concurrency,
                    response_url=reply_to,
                )
            )
            opsgate_at_rate = (
                asyncio.run(load(f"http://127.0.0.1:{opsgate_port}/slack/events", requests=args.requests,
                                 concurrency=args.concurrency, response_url=reply_to, rate=args.rate))
                if args.rate else None
            )  # fmt: skip
        finally:
            for proc in procs:
                proc.terminate()
                proc.wait(timeout=10)
            if database:
                asyncio.run(drop_pg_database(database))
    print(
        json.dumps(
            {
                "benchmark": "ack",
                "concurrency": args.concurrency,
                "connector_latency_s": 2.0,
                "database": "postgresql" if database else "sqlite",
                "bare": bare,
                "opsgate": opsgate,
                "ratio_req_per_s": round(opsgate["req_per_s"] / bare["req_per_s"], 3),
                **(
                    {"opsgate_open_loop": {"rate_per_s": args.rate, **opsgate_at_rate}}
                    if opsgate_at_rate
                    else {}
                ),
                "targets": {"ratio_req_per_s": ">= 0.5", "opsgate_p99_ms": "< 50"},
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
