"""Start-up time and idle memory of `opsgate serve`.

Starts `opsgate serve` on SQLite with a small configuration, measures the time until
GET /healthz answers 200, lets it idle, and reads its resident memory from /proc. Prints JSON.
Usage: python bench/startup.py [--runs 5] [--idle-seconds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

CONFIG = """
environments: {test: {}, prod: {}}
groups: {leads: [U1, U2]}
policies:
  - {name: prod, action: "*", environment: "*", approvers: {groups: [leads]}, min_approvals: 2}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def one_run(idle_seconds: float) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "opsgate.yaml").write_text(CONFIG)
        port = free_port()
        env = {**os.environ, "DATABASE_URL": f"sqlite+aiosqlite:///{tmp}/o.db", "PORT": str(port),
               "OPSGATE_HOST": "127.0.0.1", "OPSGATE_LOG_LEVEL": "WARNING",
               "SLACK_SIGNING_SECRET": "bench", "SLACK_BOT_TOKEN": "xoxb-bench"}  # fmt: skip
        started = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "bot.cli", "serve"], cwd=tmp, env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        try:
            while True:
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=0.5).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if proc.poll() is not None or time.perf_counter() - started > 30:
                    raise RuntimeError("opsgate serve did not start")
                time.sleep(0.02)
            ready = time.perf_counter() - started
            time.sleep(idle_seconds)
            return ready, rss_mb(proc.pid)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=15)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--idle-seconds", type=float, default=5.0)
    args = parser.parse_args()
    results = [one_run(args.idle_seconds) for _ in range(args.runs)]
    starts = sorted(r[0] for r in results)
    rss = sorted(r[1] for r in results)
    print(json.dumps({
        "benchmark": "startup",
        "runs": args.runs,
        "startup_seconds_median": round(statistics.median(starts), 2),
        "startup_seconds_max": round(starts[-1], 2),
        "idle_rss_mb_median": round(statistics.median(rss), 1),
        "idle_rss_mb_max": round(rss[-1], 1),
        "target": {"idle_rss_mb": "< 150"},
    }, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
