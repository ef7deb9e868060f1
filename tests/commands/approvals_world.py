"""The approval use case on a real database (SQLite and PostgreSQL), driven the way the edge does.

`make_engine(*rules)` gives the use case behind `EachCallCommits`: every call runs in a
transaction of its own that commits when it returns (and rolls back when it raises), exactly as
a listener or job calls it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from bot.db.transaction import Database
from bot.domain.audit import Fingerprinter
from bot.domain.policy import PolicyRule, PolicySet, StaticDirectory
from bot.domain.requests import FrozenClock
from commands.approvals import Approvals

from ..domain.conftest import GROUPS, prod_rule

__all__ = ["EachCallCommits", "clock", "groups", "make_engine", "prod_rule"]


class EachCallCommits:
    """`await engine.approve(ref, ...)` = `async with database.transaction() as tx: approvals.approve(tx, ...)`."""

    def __init__(self, approvals: Approvals, database: Database) -> None:
        self.approvals = approvals
        self.database = database

    def __getattr__(self, name: str) -> Callable[..., Awaitable[Any]]:
        method = getattr(self.approvals, name)

        async def in_a_transaction(*args: Any, **kwargs: Any) -> Any:
            async with self.database.transaction() as tx:
                return await method(tx, *args, **kwargs)

        return in_a_transaction


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture
def groups() -> dict[str, frozenset[str]]:
    return {k: frozenset(v) for k, v in GROUPS.items()}


@pytest.fixture
def make_engine(
    database, fingerprinter: Fingerprinter, clock: FrozenClock, groups
) -> Callable[..., EachCallCommits]:
    store = Database(database.engine, clock=clock, fingerprinter=fingerprinter)

    def build(*rules: PolicyRule) -> EachCallCommits:
        approvals = Approvals(PolicySet(rules or (prod_rule(),)), StaticDirectory(groups), clock=clock)
        return EachCallCommits(approvals, store)

    return build
