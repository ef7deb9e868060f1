"""Slack acknowledgement latency: opsgate against a bare bolt app, then under mixed load.

Starts, as separate processes: the Slack emulator, a bare bolt hello-world app
(process_before_response=True), an opsgate web process (`build_service`, persisting a job per
delivery, acknowledging only) and an opsgate worker whose pre-checks take 2 s as a slow
connector would.

1. Closed loop (issue 3): the same signed /promote load at the same concurrency to the bare app
   and to opsgate, in alternating rounds so that both see the same machine (the worker's
   backlog grows as opsgate's rounds run, and slows the bare app's later rounds as much).
2. Open loop (issue 8, with --rate): first 1,000 commands whose pre-checks take 10 minutes, so
   1,000 workflows are in flight in the worker; then a mixed stream at --rate deliveries/s
   (slash commands, Approve clicks, App Home opens), each started on schedule whatever the
   answers, as Slack sends them.

Prints JSON: {"bare": {req_per_s, p50_ms, p99_ms}, "opsgate": {...}, "ratio_req_per_s": ...,
"opsgate_open_loop": {...}}.
Usage: python bench/ack.py [--postgres] [--requests 3000] [--concurrency 20] [--rounds 3] [--rate 200]
BENCH_WORKER_NICE=N runs the worker at that CPU niceness (a host shared by web and worker).
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
from typing import Any

from _pgdb import create_pg_database, drop_pg_database

from bot.web.slack_signature import sign

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
    from bot.config.opsgate import Settings, parse_config
    from bot.domain.policy import Action
    from bot.emulators.slack_seed import DEFAULT_BOT_TOKEN
    from bot.wiring.runtime import freeze_startup_heap
    from bot.wiring.service import build_service
    from commands.workflow import Preview

    class SlowPrecheck:
        """A promotion whose connector takes 2 s to answer the pre-check."""

        action = Action.PROMOTION

        async def precheck(self, spec: object, *, requester: str) -> Preview:
            # "hold-" artifacts stand for workflows in flight: their connector answers in 10 min.
            held = str(getattr(spec, "artifact", "")).startswith("hold-")
            await asyncio.sleep(600.0 if held else 2.0)
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
        if os.environ.get("BENCH_WORKER_NICE"):
            os.nice(int(os.environ["BENCH_WORKER_NICE"]))  # as deploy/systemd runs a co-located worker
        # The production topology: workers run the 2 s pre-checks, the web process only acks.
        service.runtime.runner._concurrency = 5000  # 1,000 held workflows plus the 2 s pre-checks
        service.runtime.start_loops(with_scheduler=False)
        freeze_startup_heap()  # as `opsgate worker` does
        print("ready", flush=True)
        await asyncio.Event().wait()
    service.runtime.start_loops(with_scheduler=False, with_jobs=False)
    freeze_startup_heap()  # as `opsgate serve` does
    await _run_forever(service.web, port)


async def _run_forever(app: object, port: int) -> None:
    from aiohttp import web

    runner = web.AppRunner(app, access_log=None)  # type: ignore[arg-type]
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    print("ready", flush=True)
    await asyncio.Event().wait()


# ----------------------------------------------------------------------------- load


def signed(body: str, content_type: str = "application/x-www-form-urlencoded") -> dict[str, str]:
    ts = int(time.time())
    return {
        "Content-Type": content_type,
        "X-Slack-Request-Timestamp": str(ts),
        "X-Slack-Signature": sign(SECRET, ts, body.encode()),
    }


def promote_body(i: int, response_url: str, artifact: str = "artifact") -> str:
    return urllib.parse.urlencode(
        {
            "team_id": "T0001", "channel_id": "C_ORDERS", "user_id": "U_REQ", "command": "/promote",
            "text": f"{artifact}-{i} 1.0.{i % 50} test prod bench", "trigger_id": f"bench.{i}.{time.time_ns()}",
            "response_url": response_url, "api_app_id": "A0001",
        }
    )  # fmt: skip


def approve_click_body(i: int, response_url: str) -> str:
    """An Approve click as Slack sends it (the request may be long decided: the ack is the same)."""
    action = {"type": "button", "action_id": "request_approve", "block_id": "decision",
              "value": json.dumps({"ref": f"PRM-{1 + i % 50}", "params_hash": "0" * 16}),
              "action_ts": f"{time.time():.6f}"}  # fmt: skip
    payload = {
        "type": "block_actions", "user": {"id": "U_APP1", "username": "approver", "team_id": "T0001"},
        "api_app_id": "A0001", "team": {"id": "T0001", "domain": "bench"},
        "container": {"type": "message", "message_ts": "1700000000.000100", "channel_id": "C_APPROVALS"},
        "channel": {"id": "C_APPROVALS", "name": "approvals"}, "trigger_id": f"click.{i}.{time.time_ns()}",
        "response_url": response_url, "actions": [action], "state": {"values": {}},
    }  # fmt: skip
    return urllib.parse.urlencode({"payload": json.dumps(payload)})


def home_opened_body(i: int) -> str:
    return json.dumps(
        {
            "team_id": "T0001", "api_app_id": "A0001", "type": "event_callback", "event_time": int(time.time()),
            "event_id": f"Ev{time.time_ns()}{i}",
            "event": {"type": "app_home_opened", "user": f"U_HOME{i % 20}", "channel": "D_HOME", "tab": "home",
                      "event_ts": f"{time.time():.6f}"},
            "authorizations": [{"team_id": "T0001", "user_id": "U_BOT", "is_bot": True}],
        }
    )  # fmt: skip


MIX = (("command", 5), ("click", 3), ("home", 2))  # per 10 deliveries


def delivery(kind: str, i: int, response_url: str) -> tuple[str, dict[str, str]]:
    if kind == "home":
        body = home_opened_body(i)
        return body, signed(body, "application/json")
    body = approve_click_body(i, response_url) if kind == "click" else promote_body(i, response_url)
    return body, signed(body)


def summary(latencies: list[float], requests: int, errors: int, elapsed: float) -> dict[str, float]:
    latencies = sorted(latencies)
    return {
        "requests": requests,
        "errors": errors,
        "req_per_s": round(requests / elapsed, 1),
        "p50_ms": round(statistics.median(latencies), 2),
        "p99_ms": round(latencies[max(0, int(len(latencies) * 0.99) - 1)], 2),
    }


async def closed_loop(
    url: str, *, requests: int, concurrency: int, response_url: str, artifact: str = "artifact"
) -> dict[str, Any]:
    """`concurrency` clients, each sending its next /promote when the last answer came."""
    import aiohttp  # lighter per request than httpx, so the client is not the bottleneck

    latencies: list[float] = []
    errors = 0
    counter = iter(range(requests))
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as client:

        async def worker() -> None:
            nonlocal errors
            for i in counter:
                body = promote_body(i, response_url, artifact)
                began = time.perf_counter()
                async with client.post(url, data=body.encode(), headers=signed(body)) as response:
                    await response.read()
                    errors += response.status != 200
                latencies.append((time.perf_counter() - began) * 1000)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return {"latencies": latencies, "errors": errors, "elapsed": elapsed, "requests": requests}


async def open_loop(url: str, *, requests: int, rate: float, response_url: str) -> dict[str, Any]:
    """Deliveries start on a fixed schedule whatever the answers, mixed as MIX says."""
    import aiohttp

    kinds = [kind for kind, share in MIX for _ in range(share)]
    latencies: dict[str, list[float]] = {kind: [] for kind, _ in MIX}
    errors = 0
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as client:

        async def one(i: int) -> None:
            nonlocal errors
            kind = kinds[i % len(kinds)]
            body, headers = delivery(kind, i, response_url)
            began = time.perf_counter()
            async with client.post(url, data=body.encode(), headers=headers) as response:
                await response.read()
                errors += response.status != 200
            latencies[kind].append((time.perf_counter() - began) * 1000)

        started = time.perf_counter()
        tasks = []
        for i in range(requests):
            await asyncio.sleep(max(0.0, started + i / rate - time.perf_counter()))
            tasks.append(asyncio.create_task(one(i)))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - started
    every = [ms for values in latencies.values() for ms in values]
    return {
        "rate_per_s": rate,
        **summary(every, requests, errors, elapsed),
        "by_kind": {kind: summary(values, len(values), 0, elapsed) for kind, values in latencies.items()},
    }


async def jobs_running(database_url: str) -> int:
    import asyncpg

    conn = await asyncpg.connect(database_url.replace("postgresql+asyncpg", "postgresql"))
    try:
        return int(await conn.fetchval("SELECT count(*) FROM jobs WHERE status = 'running'"))
    finally:
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
    parser.add_argument("--rounds", type=int, default=3, help="alternating bare/opsgate rounds")
    parser.add_argument("--serve", choices=["bare", "slack", "opsgate", "opsgate-worker"])
    parser.add_argument("--port", type=int)
    parser.add_argument("--slack-url")
    parser.add_argument("--db-dir")
    parser.add_argument(
        "--postgres", action="store_true", help="use a fresh PostgreSQL database at 127.0.0.1:5432"
    )
    parser.add_argument("--rate", type=float, help="then an open loop of mixed deliveries at this rate")
    parser.add_argument("--in-flight", type=int, default=1000, help="workflows held in flight (open loop)")
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
            procs.append(start(["--serve", "opsgate", "--port", str(opsgate_port),
                                "--slack-url", f"http://127.0.0.1:{slack_port}", "--db-dir", db_dir]))  # fmt: skip
            procs.append(start(["--serve", "opsgate-worker", "--slack-url", f"http://127.0.0.1:{slack_port}",
                                "--db-dir", db_dir]))  # fmt: skip
            # Answers to response_url go to the emulator (an unknown id: refused once, not retried).
            reply_to = f"http://127.0.0.1:{slack_port}/_response_url/bench"
            urls = {"bare": f"http://127.0.0.1:{bare_port}/slack/events",
                    "opsgate": f"http://127.0.0.1:{opsgate_port}/slack/events"}  # fmt: skip
            per_round = max(1, args.requests // args.rounds)
            for name in ("bare", "opsgate"):  # warm both up
                asyncio.run(closed_loop(urls[name], requests=min(200, per_round), concurrency=args.concurrency,
                                        response_url=reply_to, artifact="warm"))  # fmt: skip
            rounds: dict[str, list[dict[str, Any]]] = {"bare": [], "opsgate": []}
            for _ in range(args.rounds):
                for name in ("bare", "opsgate"):
                    rounds[name].append(asyncio.run(closed_loop(urls[name], requests=per_round,
                                        concurrency=args.concurrency, response_url=reply_to)))  # fmt: skip
            closed = {
                name: summary(
                    [ms for r in results for ms in r["latencies"]],
                    sum(r["requests"] for r in results),
                    sum(r["errors"] for r in results),
                    sum(r["elapsed"] for r in results),
                )
                | {"req_per_s_by_round": [round(r["requests"] / r["elapsed"], 1) for r in results]}
                for name, results in rounds.items()
            }
            open_loop_result = None
            if args.rate:
                held = 0
                if database and args.in_flight:
                    asyncio.run(closed_loop(urls["opsgate"], requests=args.in_flight, concurrency=args.concurrency,
                                            response_url=reply_to, artifact="hold"))  # fmt: skip
                    deadline = time.monotonic() + 120
                    while (
                        held := asyncio.run(jobs_running(database))
                    ) < args.in_flight and time.monotonic() < deadline:
                        time.sleep(1)
                    time.sleep(3)  # the closed-loop rounds' 2 s pre-checks finish meanwhile
                open_loop_result = asyncio.run(
                    open_loop(urls["opsgate"], requests=args.requests, rate=args.rate, response_url=reply_to)
                )
                open_loop_result["workflows_in_flight_at_start"] = held
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
                "rounds": args.rounds,
                "connector_latency_s": 2.0,
                "database": "postgresql" if database else "sqlite",
                "bare": closed["bare"],
                "opsgate": closed["opsgate"],
                "ratio_req_per_s": round(closed["opsgate"]["req_per_s"] / closed["bare"]["req_per_s"], 3),
                **({"opsgate_open_loop": open_loop_result} if open_loop_result else {}),
                "targets": {
                    "ratio_req_per_s": ">= 0.5",
                    "opsgate_p99_ms": "< 50 (closed loop, and open loop at 200/s with 1,000 in flight)",
                },
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
