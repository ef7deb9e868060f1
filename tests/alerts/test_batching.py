"""Group commit: concurrent submissions share one batch; a failed batch is retried item by item."""

from __future__ import annotations

import asyncio

import pytest

from bot.alerts.batching import GroupCommit


async def test_concurrent_submissions_share_a_batch_and_each_gets_its_own_answer():
    batches: list[list[int]] = []

    async def run_batch(items: list[int]) -> list[int]:
        batches.append(items)
        await asyncio.sleep(0)
        return [i * 10 for i in items]

    async def run_one(item: int) -> int:
        raise AssertionError("not needed")

    commit = GroupCommit(run_batch, run_one, max_batch=3)
    results = await asyncio.gather(*(commit.submit(i) for i in range(7)))
    assert results == [i * 10 for i in range(7)]
    assert batches == [[0, 1, 2], [3, 4, 5], [6]]


async def test_a_failed_batch_is_retried_one_by_one_so_only_the_bad_item_fails():
    async def run_batch(items: list[int]) -> list[int]:
        raise RuntimeError("batch refused")

    async def run_one(item: int) -> int:
        if item == 2:
            raise ValueError("item 2 is bad")
        return item

    commit = GroupCommit(run_batch, run_one)
    results = await asyncio.gather(*(commit.submit(i) for i in range(4)), return_exceptions=True)
    assert results[:2] == [0, 1] and results[3] == 3
    assert isinstance(results[2], ValueError)
    with pytest.raises(ValueError):
        await commit.submit(2)
