"""The unit of work: one commit for everything a transaction wrote, or nothing at all."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import func, select

from bot.db.models import OutboxMessage
from bot.db.transaction import Database
from bot.domain.errors import InvalidTransition, RequestExpired
from bot.domain.requests import FrozenClock


async def queued(store: Database) -> int:
    async with store.reading() as tx:
        return int(await tx.session.scalar(select(func.count()).select_from(OutboxMessage)) or 0)


async def queue_one(tx) -> None:
    await tx.outbox.enqueue(
        conversation="C1", method="chat.postMessage", payload={"channel": "C1", "text": "x"}
    )


async def test_a_refusal_rolls_back_everything_the_transaction_wrote(database, fingerprinter):
    store = Database(database.engine, clock=FrozenClock(), fingerprinter=fingerprinter)
    with pytest.raises(InvalidTransition, match="someone acted first"):
        async with store.transaction() as tx:
            await queue_one(tx)
            raise InvalidTransition("PRM-1 is no longer pending; someone acted first.")
    assert await queued(store) == 0
    async with store.transaction() as tx:
        await queue_one(tx)
    assert await queued(store) == 1


async def test_an_error_reporting_its_own_change_commits_it_then_reaches_the_caller(database, fingerprinter):
    store = Database(database.engine, clock=FrozenClock(), fingerprinter=fingerprinter)
    with pytest.raises(RequestExpired, match="PRM-1 expired"):
        async with store.transaction() as tx:
            await queue_one(tx)  # stands for the expiry and its message
            raise RequestExpired("PRM-1 expired; nothing will run.")
    assert await queued(store) == 1


async def test_an_open_transaction_holds_no_lock_before_its_first_statement(database, fingerprinter):
    """What lets a use case ask the directory or a vendor first without making writers wait."""
    store = Database(database.engine, clock=FrozenClock(), fingerprinter=fingerprinter)

    async def write_elsewhere() -> None:
        async with store.transaction() as other:
            await queue_one(other)

    async with store.transaction() as idle:
        await asyncio.wait_for(write_elsewhere(), timeout=5)  # SQLite's BEGIN IMMEDIATE would block it
        await queue_one(idle)
    assert await queued(store) == 2
