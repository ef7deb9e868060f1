"""Streaming keeps memory flat: bench/transfer.py run small, its peaks must not follow file size."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[3] / "bench" / "transfer.py"
PART_MB = 5


@pytest.mark.slow
def test_peak_memory_of_a_transfer_does_not_grow_with_the_file() -> None:
    done = subprocess.run(
        [sys.executable, str(BENCH), "--sizes-mb", "11", "21"],
        capture_output=True,
        text=True,
        timeout=400,
        check=True,
    )
    result = json.loads(done.stdout)
    small, large = result["runs"]
    assert all(all(run["verified"].values()) for run in result["runs"])
    for run in (small, large):
        heap = run["peak_heap_by_leg_mb"]
        # iconik and SFTP hold a chunk or two; S3 one part and the copies botocore makes of it.
        assert heap["iconik"] < 4 and heap["sftp"] < 4, result
        assert heap["s3"] < 3.5 * PART_MB, result
    for leg in ("iconik", "s3", "sftp"):
        # 10 MB more file; a buffered copy would add at least that much.
        assert large["peak_heap_by_leg_mb"][leg] - small["peak_heap_by_leg_mb"][leg] < 3, (leg, result)
        assert large["rss_growth_by_leg_mb"][leg] - small["rss_growth_by_leg_mb"][leg] < 8, (leg, result)
    assert large["peak_chunk_bytes"] <= 64 * 1024
