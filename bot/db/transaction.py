"""The unit of work: one database transaction and the repositories bound to it.

Edge code (a listener's job, a scheduled duty, a webhook route) owns the transaction::

    async with database.transaction() as tx:
        outcome = await approvals.approve(tx, ref, approver=user)

Repositories never commit; the block commits when it exits cleanly and rolls back when it
raises, so a state change, its audit event and the messages announcing it land together or
not at all. The one exception is an error that reports a change it made itself
(`DomainError.keeps_changes`, e.g. RequestExpired): that change commits, then the error goes on
to the caller. Use cases see `tx` through the Protocols they declare (commands/ports.py), never
this class or SQLAlchemy.

The transaction's first statement is the first call a use case makes on `tx`: no connection is
taken before it, so slow work done first (directory lookups, vendor pre-checks) holds no lock.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.db.audit_log import AuditTrail
from bot.db.engine import READ_ONLY, create_session_factory
from bot.db.jobs import JobRows
from bot.db.outbox import OutboxRows
from bot.db.requests import RequestRepository
from bot.domain.audit import Fingerprinter
from bot.domain.errors import DomainError

__all__ = ["Database", "Transaction"]


class Transaction:
    """The repositories of one open transaction."""

    def __init__(
        self, session: AsyncSession, *, clock: Callable[[], datetime], fingerprinter: Fingerprinter
    ) -> None:
        self.session = session  # for repositories and edge code; use cases never touch it
        self.outbox = OutboxRows(session, clock)
        self.jobs = JobRows(session, clock)
        self.audit = AuditTrail(session, fingerprinter)
        self.requests = RequestRepository(session)


class Database:
    """The engine, its session factory, and the one way to open a transaction."""

    def __init__(
        self, engine: AsyncEngine, *, clock: Callable[[], datetime], fingerprinter: Fingerprinter
    ) -> None:
        self.engine = engine
        self.sessions: async_sessionmaker[AsyncSession] = create_session_factory(engine)
        self._clock = clock
        self._fingerprinter = fingerprinter

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        """A read-write transaction (SQLite: BEGIN IMMEDIATE at its first statement)."""
        kept: DomainError | None = None
        async with self.sessions() as session:
            async with session.begin():
                try:
                    yield Transaction(session, clock=self._clock, fingerprinter=self._fingerprinter)
                except DomainError as error:
                    if not error.keeps_changes:
                        raise
                    kept = error
            if kept is not None:
                raise kept

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[Transaction]:
        """A transaction that only reads: on SQLite it does not queue writers behind it."""
        async with self.sessions(bind=self.engine.execution_options(**{READ_ONLY: True})) as session:
            async with session.begin():
                yield Transaction(session, clock=self._clock, fingerprinter=self._fingerprinter)

    async def is_up(self) -> bool:
        """Whether the database answers (health checks report, they do not raise)."""
        try:
            async with self.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        except Exception:
            return False
        return True

    async def close(self) -> None:
        await self.engine.dispose()
