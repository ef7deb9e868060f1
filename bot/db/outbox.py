"""Outbox rows: every Slack call is written in the caller's transaction before it is delivered."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import OutboxMessage
from bot.db.upsert import insert_into

__all__ = ["METHODS", "OutboxRows"]

# What the delivery loop knows how to send.
METHODS = frozenset(
    {"chat.postMessage", "chat.update", "chat.postEphemeral", "views.publish", "response_url"}
)


class OutboxRows:
    """Writes outbox rows inside one transaction; never commits."""

    def __init__(self, session: AsyncSession, clock: Callable[[], datetime]) -> None:
        self._session = session
        self._clock = clock

    async def enqueue(
        self,
        *,
        conversation: str,
        method: str,
        payload: dict[str, Any],
        dedup_key: str | None = None,
        request_ref: str | None = None,
    ) -> int | None:
        """Queue one call; None when `dedup_key` was queued before (a retry or double click)."""
        if method not in METHODS:
            raise ValueError(f"unknown outbox method {method!r}")
        now = self._clock()
        values = {
            "conversation": conversation,
            "method": method,
            "payload": payload,
            "dedup_key": dedup_key,
            "status": "pending",
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
            "request_ref": request_ref,
        }
        statement = insert_into(self._session, OutboxMessage).values(**values)
        if dedup_key is not None:
            statement = statement.on_conflict_do_nothing(index_elements=["dedup_key"])
        return await self._session.scalar(statement.returning(OutboxMessage.id))

    async def result_of(self, dedup_key: str) -> dict[str, Any] | None:
        """What Slack answered to the sent row queued under `dedup_key` (None until it is sent)."""
        result: dict[str, Any] | None = await self._session.scalar(
            select(OutboxMessage.result).where(
                OutboxMessage.dedup_key == dedup_key, OutboxMessage.status == "sent"
            )
        )
        return result
