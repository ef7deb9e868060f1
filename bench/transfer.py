"""Transfer benchmark: one Canto original streamed into iconik, an S3 bucket and an SFTP drop.

Shows that moving a file never holds it in memory: the peak RSS of the process doing the transfer
must not grow with the file's size. This process serves the emulators (Canto, iconik, an asyncssh
SFTP server, moto's S3 server); for each size a fresh child process does the transfer, so its
peak RSS is the transfer's alone:

1. warm up: one call to every vendor (tokens, clients, code paths), then start a fresh peak-RSS
   window (Linux `clear_refs`) and note the RSS;
2. stream the Canto original three times: through iconik's upload flow (asset, format, file set,
   file, upload, close, ready), to S3 (multipart, 5 MiB parts) and to SFTP;
3. read the window's peak RSS; this process then checks each copy's SHA-256 against Canto's.

Prints one JSON object:
    runs[]              per size: size_mb, seconds, rss_before_mb (RSS before the transfer),
                        rss_growth_by_leg_mb {iconik, s3, sftp} (peak over the RSS before that
                        leg, each leg in its own window), rss_growth_mb (the largest of them),
                        peak_rss_mb (rss_before_mb + rss_growth_mb), peak_heap_by_leg_mb
                        {iconik, s3, sftp} (tracemalloc: the most Python held at once, in MB),
                        peak_chunk_bytes (largest chunk read from Canto), s3_peak_part_bytes,
                        verified {iconik, s3, sftp} (SHA-256 equal to the bytes Canto served)
    growth_spread_mb    rss_growth of the largest size minus that of the smallest
    flat                growth_spread_mb < 20% of the size difference (a buffered file would be 100%+)

Usage: python bench/transfer.py [--sizes-mb 5 50]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import hashlib
import json
import os
import resource
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aiobotocore.session import get_session

from connectors.emulators import canto as canto_emulator
from connectors.emulators import iconik as iconik_emulator
from connectors.emulators import s3 as s3_emulator
from connectors.emulators import sftp as sftp_emulator
from connectors.emulators.faults import start_app

MIB = 1024 * 1024
VIDEO = "spring-launch-2025-hero-30s.mp4"
BUCKET = "bench-drops"
PART_SIZE = 5 * MIB  # S3's minimum: the largest buffer any size needs
# glibc raises its mmap threshold after the first large free, after which freed parts stay in the
# heap and RSS shows allocator slack rather than live bytes; a fixed threshold keeps RSS honest.
CHILD_MALLOC = {"MALLOC_MMAP_THRESHOLD_": str(1024 * 1024)}


def _status_mb(field: str) -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return None


def reset_peak_rss() -> float:
    """Start a new peak window (RSS: clear_refs 5 resets VmHWM; Python heap: tracemalloc); RSS now, MB."""
    gc.collect()
    tracemalloc.reset_peak()
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass
    return _status_mb("VmRSS") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def peak_heap_mb() -> float:
    """The peak of memory Python allocated since reset_peak_rss (what was buffered), in MB."""
    return tracemalloc.get_traced_memory()[1] / MIB


def peak_rss_mb() -> float:
    """The peak RSS since reset_peak_rss (or since start where that reset is not possible)."""
    return _status_mb("VmHWM") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ----------------------------------------------------------------- the transfer (child process)


async def transfer(config: dict[str, Any]) -> dict[str, Any]:
    from connectors.canto import CantoConnector, CantoSettings
    from connectors.iconik import IconikConnector, IconikSettings
    from connectors.s3 import S3Drop, S3DropSettings
    from connectors.sftp import SftpDrop, SftpDropSettings
    from connectors.transfer import DeliveryItem, DigestingStream

    async def one_byte() -> Any:
        yield b"x"

    canto = CantoConnector(CantoSettings(base_url=config["canto"], oauth_url=config["canto"],
                                         app_id=canto_emulator.DEFAULT_APP_ID,
                                         app_secret=canto_emulator.DEFAULT_APP_SECRET))  # fmt: skip
    iconik = IconikConnector(IconikSettings(base_url=config["iconik"], app_id=iconik_emulator.DEFAULT_APP_ID,
                                            auth_token=iconik_emulator.DEFAULT_AUTH_TOKEN))  # fmt: skip
    s3 = S3Drop(S3DropSettings(name="Bench S3", bucket=BUCKET, prefix="bench", endpoint_url=config["s3"],
                               access_key_id=s3_emulator.DEFAULT_ACCESS_KEY_ID,
                               secret_access_key=s3_emulator.DEFAULT_SECRET_ACCESS_KEY, part_size=PART_SIZE))  # fmt: skip
    sftp = SftpDrop(SftpDropSettings(name="Bench SFTP", host="127.0.0.1", port=config["sftp_port"],
                                     username="retailer-a", password="retailer-a-drop-password",
                                     directory="bench", host_key=config["sftp_host_key"]))  # fmt: skip
    name = f"bench-{config['size']}.mp4"
    try:
        await canto.get_asset("video", config["asset_id"])
        await iconik.list_metadata_views()
        await s3.deliver(DeliveryItem(name="warm-up", size=1), one_byte())
        await sftp.deliver(DeliveryItem(name="warm-up", size=1), one_byte())
        tracemalloc.start()
        before = reset_peak_rss()
        started = time.perf_counter()
        peak_chunk = 0
        growth: dict[str, float] = {}
        heap: dict[str, float] = {}
        async with canto.open_original("video", config["asset_id"]) as download:
            assert download.size == config["size"]
            metered = DigestingStream(download.chunks)
            upload = await iconik.upload_original(
                metered, size=download.size, original_name=name, title=name, content_type=download.content_type,
                external_id=f"canto:video:{config['asset_id']}", poll_interval=0.05,
            )  # fmt: skip
            peak_chunk = max(peak_chunk, metered.peak_chunk)
        growth["iconik"], heap["iconik"] = peak_rss_mb() - before, peak_heap_mb()
        receipts = {}
        for label, drop in (("s3", s3), ("sftp", sftp)):
            leg_before = reset_peak_rss()
            async with canto.open_original("video", config["asset_id"]) as download:
                metered = DigestingStream(download.chunks)
                item = DeliveryItem(name=name, size=config["size"], content_type=download.content_type)
                receipts[label] = (await drop.deliver(item, metered)).location
                peak_chunk = max(peak_chunk, metered.peak_chunk)
            growth[label], heap[label] = peak_rss_mb() - leg_before, peak_heap_mb()
        seconds = time.perf_counter() - started
    finally:
        await canto.aclose()
        await iconik.aclose()
        await s3.aclose()
    return {
        "seconds": round(seconds, 2),
        "rss_before_mb": round(before, 1),
        "peak_rss_mb": round(before + max(growth.values()), 1),
        "rss_growth_mb": round(max(growth.values()), 1),
        "rss_growth_by_leg_mb": {leg: round(value, 1) for leg, value in growth.items()},
        "peak_heap_by_leg_mb": {leg: round(value, 1) for leg, value in heap.items()},
        "peak_chunk_bytes": peak_chunk,
        "s3_peak_part_bytes": s3.peak_part_bytes,
        "iconik_file_id": upload.file_id,
        "iconik_sha256": upload.sha256,
        "s3_key": receipts["s3"],
        "sftp_path": receipts["sftp"],
    }


# ----------------------------------------------------------------- emulators and checks (this process)


async def s3_sha256(emulator: s3_emulator.S3Emulator, key: str) -> str:
    digest = hashlib.sha256()
    async with get_session().create_client(
        "s3", region_name=emulator.region, endpoint_url=emulator.url,
        aws_access_key_id=emulator.access_key_id, aws_secret_access_key=emulator.secret_access_key,
    ) as s3:  # fmt: skip
        answer = await s3.get_object(Bucket=BUCKET, Key=key)
        async with answer["Body"] as body:
            async for chunk in body.iter_chunks(MIB):
                digest.update(chunk)
    return digest.hexdigest()


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(MIB):
            digest.update(chunk)
    return digest.hexdigest()


async def run(sizes_mb: list[int]) -> dict[str, Any]:
    canto_app, iconik_app = canto_emulator.create_app(), iconik_emulator.create_app()
    canto_runner, canto_url = await start_app(canto_app)
    iconik_runner, iconik_url = await start_app(iconik_app)
    sftp = await sftp_emulator.serve()
    s3 = await asyncio.to_thread(s3_emulator.start)
    await s3_emulator.create_buckets(s3, [BUCKET])
    asset_id = canto_emulator.seed_asset_id(VIDEO)
    runs = []
    try:
        for size_mb in sizes_mb:
            size = size_mb * MIB
            record = canto_emulator.canto_library_of(canto_app).assets[asset_id]
            record.size = size
            expected, _md5 = canto_emulator.original_digest(asset_id, size)
            config = {"canto": canto_url, "iconik": iconik_url, "s3": s3.url, "sftp_port": sftp.port,
                      "sftp_host_key": sftp.host_key, "asset_id": asset_id, "size": size}  # fmt: skip
            child = await asyncio.create_subprocess_exec(
                sys.executable, __file__, "--child", json.dumps(config), stdout=asyncio.subprocess.PIPE,
                env={**os.environ, **CHILD_MALLOC},
            )  # fmt: skip
            out, _ = await child.communicate()
            if child.returncode != 0:
                raise RuntimeError(f"transfer of {size_mb} MB failed (exit {child.returncode})")
            result = json.loads(out)
            received = iconik_emulator.iconik_domain_of(iconik_app).received[result.pop("iconik_file_id")]
            verified = {
                "iconik": received["sha256"] == expected == result.pop("iconik_sha256"),
                "s3": await s3_sha256(s3, result.pop("s3_key")) == expected,
                "sftp": file_sha256(sftp.path_of("retailer-a", result.pop("sftp_path"))) == expected,
            }
            runs.append({"size_mb": size_mb, **result, "verified": verified})
    finally:
        await s3.close()
        await sftp.close()
        await iconik_runner.cleanup()
        await canto_runner.cleanup()
    spread = runs[-1]["rss_growth_mb"] - runs[0]["rss_growth_mb"]
    return {
        "runs": runs,
        "growth_spread_mb": round(spread, 1),
        "flat": spread < 0.2 * (sizes_mb[-1] - sizes_mb[0])
        and all(all(r["verified"].values()) for r in runs),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes-mb", type=int, nargs="+", default=[5, 50])
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(asyncio.run(transfer(json.loads(args.child)))))
        return
    print(json.dumps(asyncio.run(run(sorted(args.sizes_mb))), indent=2))


if __name__ == "__main__":
    main()
