"""Workflows benchmark: 1,000 concurrent asset releases against emulators answering in 200 ms.

A child process serves the Canto, iconik, Confluence and Slack emulators; every vendor call
(not Slack's) waits `--latency-ms` before it is answered. Canto and iconik hold `--releases`
release-ready assets (copies of the seeded approved image, each with its original file in
iconik). This process is the bot: `build_service` + `wire`, the real job runner and outbox.

1. Calibration: one release alone, through the job runner; its vendor calls and iconik job polls
   give the critical path: ideal_seconds = calls x latency + job-poll waits x poll interval.
2. The run: `--releases` requests are opened and approved through the approval use case (not
   timed), then the runtime's loops start and the clock runs until every request has finished.

Prints one JSON object:
    releases, succeeded, failed            requests and how they ended
    total_seconds                          loops started -> last request finished
    ideal_seconds                          the critical path of one release (see 1.)
    ratio                                  total_seconds / ideal_seconds (1.0 = perfectly parallel)
    solo_release_seconds                   the calibration release, measured end to end
    peak_rss_mb                            this process (the bot), resource.getrusage
    vendor_calls, vendor_peak_in_flight    per emulator, during the run
    settings                               job concurrency, vendor concurrency, destinations...

Usage: python bench/workflows.py [--releases 1000] [--latency-ms 200] [--destinations 10]
       [--job-concurrency 100] [--vendor-concurrency 200] [--database-url URL]
Destinations each have their own Confluence release-log page: rows appended to one page are
written one at a time, so one destination for 1,000 releases would measure that page alone.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import dataclasses
import json
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

ROOT = Path(__file__).resolve().parents[1]
HERO = "trail-runner-x-hero-front.jpg"  # Approved in Canto, with its original file in iconik
VENDORS = ("canto", "iconik", "confluence")
POLL_INTERVAL = 2.0  # ReleaseWorkflow's default, as `wire` builds it
SIGNING_SECRET = "bench-signing-secret"


# ----------------------------------------------------------------- emulators (child process)


def seed_release_ready_assets(canto_app: Any, iconik_app: Any, count: int) -> list[str]:
    """`count` copies of HERO in Canto and iconik (linked by external_id); their Canto refs."""
    from connectors.emulators.canto import canto_library_of, seed_asset_id
    from connectors.emulators.iconik import iconik_domain_of

    library = canto_library_of(canto_app)
    domain = iconik_domain_of(iconik_app)
    hero = library.assets[seed_asset_id(HERO)]
    hero_iconik = next(a for a in domain.assets.values() if a["title"] == HERO)
    refs = []
    for number in range(count):
        canto_id = f"bench{number:05d}{hero.id[:12]}"
        name = f"bench-{number:05d}-{HERO}"
        library.assets[canto_id] = dataclasses.replace(hero, id=canto_id, name=name)
        asset_id = str(uuid.uuid4())
        asset = copy.deepcopy(hero_iconik)
        asset.update(id=asset_id, title=name, external_id=f"canto:{hero.scheme}:{canto_id}")
        domain.assets[asset_id] = asset
        formats = copy.deepcopy(domain.formats[hero_iconik["id"]])
        renamed = {}
        for fmt in formats:
            renamed[fmt["id"]] = fmt["id"] = str(uuid.uuid4())
            fmt["asset_id"] = asset_id
        domain.formats[asset_id] = formats
        files = copy.deepcopy(domain.files[hero_iconik["id"]])
        for file in files:
            file.update(id=str(uuid.uuid4()), asset_id=asset_id, format_id=renamed[file["format_id"]])
        domain.files[asset_id] = files
        for (owner, view), values in list(domain.metadata.items()):
            if owner == hero_iconik["id"]:
                domain.metadata[(asset_id, view)] = copy.deepcopy(values)
        refs.append(f"{hero.scheme}:{canto_id}")
    return refs


async def serve_emulators(count: int, latency_ms: int) -> None:
    from bot.emulators.slack import create_app as create_slack
    from connectors.emulators import canto, confluence, iconik
    from connectors.emulators.faults import FaultSpec, fault_injector_of, start_app

    apps = {
        "canto": canto.create_app(),
        "iconik": iconik.create_app(),
        "confluence": confluence.create_app(flavour="cloud"),
        "slack": create_slack(per_channel_rate=100_000.0, burst=100_000),
    }
    refs = seed_release_ready_assets(apps["canto"], apps["iconik"], count)
    for vendor in VENDORS:
        fault_injector_of(apps[vendor]).add(FaultSpec(path=".*", latency_ms=latency_ms))
    urls = {}
    for name, app in apps.items():
        _, urls[name] = await start_app(app)
    print(json.dumps({"urls": urls, "assets": refs}), flush=True)
    # Serve until the parent closes our stdin (it exited, or is done).
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)


# ----------------------------------------------------------------------------- the bot


def bench_config(urls: dict[str, str], destinations: int, vendor_concurrency: int) -> dict[str, Any]:
    from connectors.emulators import canto, confluence, iconik

    http = {"max_concurrency": vendor_concurrency, "max_retries": 3, "read_timeout": 60}
    return {
        "environments": {
            "prod": {
                "canto": {"base_url": urls["canto"], "oauth_url": urls["canto"], "app_id": canto.DEFAULT_APP_ID,
                          "app_secret": "${CANTO_SECRET}", "http": http},
                "iconik": {"base_url": urls["iconik"], "app_id": iconik.DEFAULT_APP_ID,
                           "auth_token": "${ICONIK_TOKEN}", "http": http},
                "confluence": {"flavour": "cloud", "base_url": urls["confluence"], "email": confluence.DEFAULT_EMAIL,
                               "api_token": "${CONFLUENCE_TOKEN}", "http": http},
            }
        },
        "destinations": [
            {
                "name": f"partner-{number}", "environment": "prod", "iconik_storage": "Export - Retailer A",
                "partner": f"Partner {number}", "required_metadata": ["Campaign", "Product Line", "Region", "Rights"],
                "metadata_view": "Release",
                "field_mapping": {"Campaign": "campaign", "Region": "region", "Rights": "rights", "id": "canto_asset_id"},
                "release_values": {"release_status": ["released"]},
                "canto_release_field": "Last Release",
                "release_log_page": {"space": "MEDIA", "title": f"Partner {number} releases"},
            }
            for number in range(destinations)
        ],
        "groups": {"media": ["U_APP1"]},
        "slack": {"approvals_channel": "C_APPROVALS", "alerts_channel": "C_ALERTS"},
        "alerts": {"default_channel": "C_ALERTS"},
        "policies": [
            {"name": "releases", "action": "release", "environment": "prod", "approvers": {"groups": ["media"]}},
        ],
    }  # fmt: skip


async def vendor_stats(client: httpx.AsyncClient, urls: dict[str, str]) -> dict[str, dict[str, int]]:
    return {vendor: (await client.get(urls[vendor] + "/_control/stats")).json() for vendor in VENDORS}


async def open_and_approve(service: Any, config: Any, refs: list[str], destinations: int) -> list[str]:
    from commands.requests import release_spec

    deps = service.runtime.deps
    approvals = deps.approvals
    opened = []
    for number, ref in enumerate(refs):
        spec = release_spec(config, asset=ref, destination=f"partner-{number % destinations}")
        async with deps.database.transaction() as tx:
            request = await approvals.create(tx, spec, requester="U_REQ", reason="benchmark")
        async with deps.database.transaction() as tx:
            await approvals.approve(tx, request.human_id, approver="U_APP1")
        opened.append(request.human_id)
    return opened


async def finished(engine: Any, refs: list[str]) -> dict[str, int]:
    """Requests by status, read on a connection of our own (the bot's pool may be saturated)."""
    from sqlalchemy import func, select

    from bot.db.models import ChangeRequestRow

    async with engine.connect() as conn:
        rows = await conn.execute(
            select(ChangeRequestRow.status, func.count())
            .where(ChangeRequestRow.human_id.in_(refs))
            .group_by(ChangeRequestRow.status)
        )
        return {str(status): int(count) for status, count in rows.all()}


async def run_bot(
    args: argparse.Namespace, urls: dict[str, str], refs: list[str], workdir: Path
) -> dict[str, Any]:
    from bot.config.opsgate import Settings, parse_config
    from bot.db.engine import create_engine
    from bot.emulators.slack_seed import DEFAULT_BOT_TOKEN
    from bot.wiring.root import wire
    from bot.wiring.service import build_service
    from connectors.emulators import canto, confluence, iconik

    secrets = {
        "CANTO_SECRET": canto.DEFAULT_APP_SECRET,
        "ICONIK_TOKEN": iconik.DEFAULT_AUTH_TOKEN,
        "CONFLUENCE_TOKEN": confluence.DEFAULT_API_TOKEN,
    }
    config = parse_config(
        bench_config(urls, args.destinations, args.vendor_concurrency), source="bench", env=secrets
    )
    settings = Settings(
        database_url=args.database_url or f"sqlite+aiosqlite:///{workdir / 'bench.db'}",
        slack_bot_token=DEFAULT_BOT_TOKEN,
        slack_signing_secret=SIGNING_SECRET,
        slack_api_url=urls["slack"] + "/api/",
        opsgate_secret_key_file=workdir / "key",
    )
    service = await build_service(settings, config, migrate=True)
    wiring = await wire(service, settings, config, env={})
    runtime = service.runtime
    runtime.runner._concurrency = args.job_concurrency
    monitor = (
        create_engine(settings.database_url, pool_size=1, max_overflow=0)
        if not settings.is_sqlite
        else create_engine(settings.database_url)
    )
    try:
        async with httpx.AsyncClient(timeout=30) as client:
            # 1. Calibration: one release alone gives the critical path.
            before = await vendor_stats(client, urls)
            log_before = len((await client.get(urls["iconik"] + "/_control/requests")).json())
            started = time.perf_counter()
            [solo] = await open_and_approve(service, config, refs[:1], args.destinations)
            await runtime.runner.drain()
            solo_seconds = time.perf_counter() - started
            after = await vendor_stats(client, urls)
            iconik_log = (await client.get(urls["iconik"] + "/_control/requests")).json()[log_before:]
            solo_status = await finished(monitor, [solo])
            if solo_status != {"succeeded": 1}:
                raise SystemExit(f"the calibration release did not succeed: {solo_status}")
            calls = sum(after[v]["requests_total"] - before[v]["requests_total"] for v in VENDORS)
            polls = sum(1 for seen in iconik_log if "/jobs/" in seen["path"] and seen["method"] == "GET")
            ideal = calls * args.latency_ms / 1000 + max(polls - 1, 0) * POLL_INTERVAL

            # 2. The run: everything approved first, then the loops start and the clock runs.
            batch = refs[1 : args.releases + 1]
            opened = await open_and_approve(service, config, batch, args.destinations)
            before = await vendor_stats(client, urls)
            started = time.perf_counter()
            runtime.start_loops(with_scheduler=False)
            while True:
                counts = await finished(monitor, opened)
                if sum(counts.get(s, 0) for s in ("succeeded", "failed")) >= len(opened):
                    break
                await asyncio.sleep(0.25)
            total = time.perf_counter() - started
            after = await vendor_stats(client, urls)
    finally:
        await runtime.stop(timeout=5)
        await wiring.aclose()
        await monitor.dispose()
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "benchmark": "workflows",
        "releases": len(opened),
        "succeeded": counts.get("succeeded", 0),
        "failed": counts.get("failed", 0),
        "total_seconds": round(total, 2),
        "ideal_seconds": round(ideal, 2),
        "ratio": round(total / ideal, 2),
        "solo_release_seconds": round(solo_seconds, 2),
        "critical_path": {"vendor_calls": calls, "iconik_job_polls": polls, "poll_interval_s": POLL_INTERVAL},
        "peak_rss_mb": round(peak_rss_mb, 1),
        "vendor_calls": {v: after[v]["requests_total"] - before[v]["requests_total"] for v in VENDORS},
        "vendor_peak_in_flight": {v: after[v]["peak_in_flight"] for v in VENDORS},
        "settings": {
            "latency_ms": args.latency_ms,
            "destinations": args.destinations,
            "job_concurrency": args.job_concurrency,
            "vendor_concurrency": args.vendor_concurrency,
            "database": settings.database_url.split(":", 1)[0],
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--releases", type=int, default=1000)
    parser.add_argument("--latency-ms", type=int, default=200)
    parser.add_argument("--destinations", type=int, default=10)
    parser.add_argument(
        "--job-concurrency", type=int, default=100, help="jobs run at once in this process (opsgate: 16)"
    )
    parser.add_argument("--vendor-concurrency", type=int, default=200, help="http.max_concurrency per vendor")
    parser.add_argument("--database-url", help="default: a SQLite file in a temporary directory")
    parser.add_argument("--serve-emulators", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_emulators:
        asyncio.run(serve_emulators(args.releases + 1, args.latency_ms))
        return
    child = subprocess.Popen(
        [sys.executable, __file__, "--serve-emulators", "--releases", str(args.releases),
         "--latency-ms", str(args.latency_ms)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT,
    )  # fmt: skip
    try:
        assert child.stdout is not None
        started = json.loads(child.stdout.readline())
        with tempfile.TemporaryDirectory() as workdir:
            result = asyncio.run(run_bot(args, started["urls"], started["assets"], Path(workdir)))
    finally:
        if child.stdin is not None:
            child.stdin.close()
        child.wait(timeout=30)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
