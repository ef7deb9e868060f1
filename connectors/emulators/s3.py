"""An S3-compatible server for tests and the demo: moto's real HTTP server, in a thread.

`serve()` starts it on host:port (0: any free port) and, seeded, creates the partner buckets.
moto keeps its state per process (not per server), so tests name their own buckets. moto does
not check credentials; the connector still signs every request with the ones configured.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from aiobotocore.session import get_session
from moto.server import ThreadedMotoServer

__all__ = [
    "DEFAULT_ACCESS_KEY_ID",
    "DEFAULT_REGION",
    "DEFAULT_SECRET_ACCESS_KEY",
    "SEEDED_BUCKETS",
    "S3Emulator",
    "create_buckets",
    "serve",
    "start",
]

DEFAULT_ACCESS_KEY_ID = "opsgate-s3-emulator"
DEFAULT_SECRET_ACCESS_KEY = "opsgate-s3-emulator-secret"
DEFAULT_REGION = "us-east-1"
SEEDED_BUCKETS = ("partner-drops",)


@dataclass
class S3Emulator:
    """A running moto server: its URL, region, the credentials to use and the seeded buckets."""

    url: str
    server: ThreadedMotoServer = field(repr=False)
    region: str = DEFAULT_REGION
    access_key_id: str = DEFAULT_ACCESS_KEY_ID
    secret_access_key: str = field(default=DEFAULT_SECRET_ACCESS_KEY, repr=False)
    buckets: tuple[str, ...] = ()

    async def close(self) -> None:
        """Stop the server thread."""
        await asyncio.to_thread(self.server.stop)


async def create_buckets(emulator: S3Emulator, names: Sequence[str]) -> None:
    """Create buckets (an existing one is left as it is)."""
    async with get_session().create_client(
        "s3",
        region_name=emulator.region,
        endpoint_url=emulator.url,
        aws_access_key_id=emulator.access_key_id,
        aws_secret_access_key=emulator.secret_access_key,
    ) as s3:
        existing = {bucket["Name"] for bucket in (await s3.list_buckets()).get("Buckets", [])}
        for name in names:
            if name not in existing:
                await s3.create_bucket(Bucket=name)


def start(host: str = "127.0.0.1", port: int = 0) -> S3Emulator:
    """Start moto's S3 server in a thread (blocking until it listens), without buckets."""
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address=host, port=port, verbose=False)
    server.start()
    bound_host, bound_port = server.get_host_and_port()
    return S3Emulator(url=f"http://{bound_host}:{bound_port}", server=server)


async def serve(host: str = "127.0.0.1", port: int = 0, *, seed: bool = True) -> S3Emulator:
    """Start moto's S3 server; seeded, the partner buckets exist."""
    emulator = await asyncio.to_thread(start, host, port)
    try:
        if seed:
            await create_buckets(emulator, SEEDED_BUCKETS)
            emulator.buckets = SEEDED_BUCKETS
    except BaseException:
        await emulator.close()
        raise
    return emulator
