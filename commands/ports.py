"""What use cases need of the open transaction, as Protocols (bot/db/transaction.Transaction fits).

The edge opens the transaction and passes it as a use case's first argument; the use case never
commits and never sees SQL. A transaction takes no connection before its first statement, which
is the use case's first call on `tx`: slow work (directory lookups, vendor pre-checks) is done
before that call, so it holds no lock.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol

from bot.domain.approvals import NewRequest, Transition
from bot.domain.audit import AuditRecord, ChainedRecord
from bot.domain.requests import ChangeRequest, RequestStatus

__all__ = [
    "AuditWriter",
    "JobWriter",
    "MessageTx",
    "OutboxWriter",
    "ReadingTx",
    "RequestStore",
    "RequestTx",
    "TransitionObserver",
]


class OutboxWriter(Protocol):
    """Slack calls queued in the transaction, delivered after it commits."""

    async def enqueue(
        self,
        *,
        conversation: str,
        method: str,
        payload: dict[str, Any],
        dedup_key: str | None = None,
        request_ref: str | None = None,
    ) -> int | None: ...


class JobWriter(Protocol):
    """Persisted jobs added in the transaction."""

    async def enqueue(
        self,
        *,
        kind: str,
        payload: Mapping[str, Any],
        dedup_key: str | None = None,
        run_at: datetime | None = None,
        request_id: int | None = None,
    ) -> int | None: ...


class AuditWriter(Protocol):
    """The hash-chained trail; if appending fails, the transaction fails with it."""

    async def append(self, record: AuditRecord) -> object: ...


class RequestStore(Protocol):
    """Change requests, approvals and target locks (bot/db/requests.RequestRepository)."""

    async def find(self, ref: str, *, lock: bool = False) -> ChangeRequest | None: ...

    async def by_idempotency_key(self, key: str) -> ChangeRequest | None: ...

    async def insert(self, draft: NewRequest) -> ChangeRequest | None: ...

    async def transition(self, request: ChangeRequest, change: Transition) -> ChangeRequest | None: ...

    async def change_parameters(
        self, request: ChangeRequest, *, parameters: dict[str, Any], params_hash: str, at: datetime
    ) -> ChangeRequest | None: ...

    async def mark_reviewed(
        self, request: ChangeRequest, *, reviewer: str, at: datetime
    ) -> ChangeRequest: ...

    async def set_reminder(self, request: ChangeRequest, at: datetime | None) -> None: ...

    async def add_approval(self, request: ChangeRequest, *, approver: str, at: datetime) -> ChangeRequest: ...

    async def acquire_lock(self, key: str, request: ChangeRequest, *, at: datetime) -> bool: ...

    async def release_lock(self, request: ChangeRequest) -> None: ...

    async def lock_holder(self, key: str) -> str | None: ...

    async def locked_targets(self) -> list[str]: ...

    async def list_requests(
        self,
        *,
        statuses: Sequence[RequestStatus] | None = None,
        requester: str | None = None,
        limit: int = 20,
        offset: int = 0,
    ) -> list[ChangeRequest]: ...

    async def awaiting(
        self,
        approver: str,
        *,
        policies: Collection[str],
        self_approval: Collection[str],
        limit: int = 20,
        offset: int = 0,
    ) -> list[ChangeRequest]: ...

    async def due_for_expiry(self, now: datetime) -> list[str]: ...

    async def due_reminders(self, now: datetime) -> list[ChangeRequest]: ...

    async def break_glass_reviews(
        self, now: datetime, *, reviewed_within: timedelta
    ) -> list[ChangeRequest]: ...

    async def audit_events(self, ref: str) -> list[ChainedRecord]: ...


class ReadingTx(Protocol):
    """A transaction a use case only reads in."""

    @property
    def requests(self) -> RequestStore: ...


class MessageTx(Protocol):
    """What announcing a change needs: the outbox and the job queue of the same transaction."""

    @property
    def outbox(self) -> OutboxWriter: ...

    @property
    def jobs(self) -> JobWriter: ...


class RequestTx(MessageTx, Protocol):
    """A transaction that changes requests: each change, its audit event and its messages."""

    @property
    def requests(self) -> RequestStore: ...

    @property
    def audit(self) -> AuditWriter: ...


class TransitionObserver(Protocol):
    """Told of every transition inside its transaction, so what it queues commits with it.

    The Slack edge implements this to queue message updates, DMs and execution jobs; whatever it
    raises rolls the transition back.
    """

    async def on_transition(
        self, tx: MessageTx, request: ChangeRequest, *, event: str, actor: str
    ) -> None: ...
