"""The persisted outbox: every Slack call the bot makes is a row first, then a delivery.

Rows are written in the same transaction as the state change they announce, so a Slack outage
loses nothing. Delivery goes per conversation strictly in id order: only the oldest undelivered
row of a conversation may be sent, which keeps an update from overtaking its post. A 429 pauses
that conversation for Retry-After; 5xx and connection errors back off; Slack's own refusals
(channel_not_found...) mark the row dead with the reason, and the conversation moves on.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.db.models import OutboxMessage
from bot.db.outbox import OutboxRows
from bot.db.requests import RequestRepository

__all__ = ["DeliveryReport", "Outbox", "OutboxDelivery"]

log = logging.getLogger("opsgate.outbox")

LEASE = timedelta(seconds=60)
BACKOFF_INITIAL = 1.0
BACKOFF_MAX = 300.0
RETRY_AFTER_CAP = 120.0
# Recording a delivery is retried for about half a lease (1+2+4+8+16 s) before giving up.
FINISH_ATTEMPTS = 6
# Slack errors worth retrying even though the call "succeeded" at the HTTP level.
TRANSIENT_SLACK_ERRORS = frozenset(
    {"ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"}
)


class Outbox:
    """Writes outbox rows inside the caller's transaction."""

    def __init__(self, clock: Callable[[], datetime]) -> None:
        self._clock = clock

    async def enqueue(
        self,
        session: AsyncSession,
        *,
        conversation: str,
        method: str,
        payload: dict[str, Any],
        dedup_key: str | None = None,
        request_ref: str | None = None,
    ) -> int | None:
        """Queue one call; None when `dedup_key` was queued before (a retry or double click)."""
        return await OutboxRows(session, self._clock).enqueue(
            conversation=conversation,
            method=method,
            payload=payload,
            dedup_key=dedup_key,
            request_ref=request_ref,
        )

    async def result_of(self, session: AsyncSession, dedup_key: str) -> dict[str, Any] | None:
        return await OutboxRows(session, self._clock).result_of(dedup_key)


@dataclass
class DeliveryReport:
    sent: int = 0
    retried: int = 0
    rate_limited: int = 0
    dead: int = 0

    @property
    def attempted(self) -> int:
        return self.sent + self.retried + self.rate_limited + self.dead


class _Retry(Exception):
    def __init__(self, delay: float, reason: str, *, rate_limited: bool = False) -> None:
        super().__init__(reason)
        self.delay = delay
        self.rate_limited = rate_limited


class _Unresolved(Exception):
    """A $ts_of reference whose message is not delivered yet (or died)."""


class OutboxDelivery:
    """Sends due rows; safe to run in several processes (rows are leased before sending)."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        client: AsyncWebClient,
        clock: Callable[[], datetime],
        *,
        http: httpx.AsyncClient | None = None,
        batch: int = 100,
        worker_id: str = "outbox",
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self._sessions = sessions
        self._client = client
        self._clock = clock
        self._http = http
        self._batch = batch
        self._worker_id = worker_id
        self._jitter = jitter

    async def deliver_due(self) -> DeliveryReport:
        """One pass: claim the head row of every conversation that is due, send them concurrently."""
        claimed = await self._claim()
        report = DeliveryReport()
        if claimed:
            await asyncio.gather(*(self._deliver(row, report) for row in claimed))
        return report

    async def run(self, stop: asyncio.Event, wake: asyncio.Event, *, idle_seconds: float = 1.0) -> None:
        """Deliver until `stop`; `wake` is set by whoever enqueues, so delivery starts at once."""
        while not stop.is_set():
            try:
                report = await self.deliver_due()
            except Exception:
                log.exception("outbox pass failed; retrying")
                report = DeliveryReport()
            if report.attempted:
                continue
            wake.clear()
            waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(wake.wait())]
            await asyncio.wait(waiters, timeout=idle_seconds, return_when=asyncio.FIRST_COMPLETED)
            for waiter in waiters:
                waiter.cancel()

    async def pending_count(self) -> int:
        async with self._sessions() as session:
            count = await session.scalar(
                select(func.count())
                .select_from(OutboxMessage)
                .where(OutboxMessage.status.in_(["pending", "sending"]))
            )
            return int(count or 0)

    # ----------------------------------------------------------------- claim

    async def _claim(self) -> list[OutboxMessage]:
        now = self._clock()
        older = OutboxMessage.__table__.alias("older")
        unfinished = or_(
            OutboxMessage.status == "pending",
            and_(OutboxMessage.status == "sending", OutboxMessage.next_attempt_at <= now),
        )
        # A row is a conversation's head when no older row of that conversation is unfinished.
        blocked_by_older = (
            select(older.c.id)
            .where(
                older.c.conversation == OutboxMessage.conversation,
                older.c.id < OutboxMessage.id,
                older.c.status.in_(["pending", "sending"]),
            )
            .exists()
        )
        async with self._sessions() as session, session.begin():
            rows = (
                await session.scalars(
                    select(OutboxMessage)
                    .where(unfinished, OutboxMessage.next_attempt_at <= now, ~blocked_by_older)
                    .order_by(OutboxMessage.id)
                    .limit(self._batch)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            for row in rows:
                row.status = "sending"
                row.attempts += 1
                row.next_attempt_at = now + LEASE  # lease: a crashed sender's rows come back
            await session.flush()
            return list(rows)

    # --------------------------------------------------------------- deliver

    async def _deliver(self, row: OutboxMessage, report: DeliveryReport) -> None:
        try:
            payload = await self._resolve(row.payload)
            result = await self._send(row.method, payload)
        except _Unresolved as exc:
            await self._finish(row, "dead", error=str(exc))
            report.dead += 1
            log.warning("outbox message dead", extra={"id": row.id, "reason": str(exc)})
            return
        except _Retry as exc:
            await self._reschedule(row, exc.delay, str(exc))
            if exc.rate_limited:
                report.rate_limited += 1
            else:
                report.retried += 1
            return
        except SlackApiError as exc:
            error = str(exc.response.get("error", "unknown_error"))
            await self._finish(row, "dead", error=error)
            report.dead += 1
            log.error("Slack refused a message", extra={"id": row.id, "method": row.method, "error": error})
            return
        await self._finish(row, "sent", result=result)
        report.sent += 1

    async def _send(self, method: str, payload: dict[str, Any]) -> dict[str, Any]:
        if method == "response_url":
            return await self._post_response_url(payload)
        try:
            response = await self._client.api_call(method, json=payload)
        except SlackApiError as exc:
            status = exc.response.status_code
            error = str(exc.response.get("error", ""))
            if status == 429 or error == "ratelimited":
                raise _Retry(
                    self._retry_after(exc.response.headers), "rate limited", rate_limited=True
                ) from exc
            if status >= 500 or error in TRANSIENT_SLACK_ERRORS:
                raise _Retry(-1, f"Slack answered {status} {error}") from exc
            raise
        except (TimeoutError, OSError, httpx.TransportError) as exc:
            raise _Retry(-1, f"connection problem: {type(exc).__name__}") from exc
        data = response.data if isinstance(response.data, dict) else {}
        return {k: data[k] for k in ("ts", "channel", "message_ts") if k in data}

    async def _post_response_url(self, payload: dict[str, Any]) -> dict[str, Any]:
        if self._http is None:
            raise _Unresolved("no HTTP client for response_url deliveries")
        try:
            response = await self._http.post(payload["url"], json=payload["body"], timeout=10)
        except httpx.TransportError as exc:
            raise _Retry(-1, f"response_url unreachable: {type(exc).__name__}") from exc
        if response.status_code == 429:
            raise _Retry(self._retry_after(response.headers), "rate limited", rate_limited=True)
        if response.status_code >= 500:
            raise _Retry(-1, f"response_url answered {response.status_code}")
        if response.status_code >= 400:
            raise _Unresolved(f"response_url refused: {response.status_code} {response.text[:200]}")
        return {"status": response.status_code}

    @staticmethod
    def _retry_after(headers: Any) -> float:
        try:
            value = float(headers.get("Retry-After", headers.get("retry-after", 1)))
        except (TypeError, ValueError):
            value = 1.0
        return min(max(value, 0.0), RETRY_AFTER_CAP)

    async def _resolve(self, value: Any) -> Any:
        if isinstance(value, dict):
            if len(value) == 1 and ("$ts_of" in value or "$channel_of" in value):
                key, ref = next(iter(value.items()))
                async with self._sessions() as session:
                    # Two columns, not the row: its payload (a whole Block Kit message) is not needed.
                    row = (
                        await session.execute(
                            select(OutboxMessage.status, OutboxMessage.result).where(
                                OutboxMessage.dedup_key == ref
                            )
                        )
                    ).first()
                if row is None or row.status == "dead" or (row.status == "sent" and not row.result):
                    raise _Unresolved(f"referenced message {ref!r} was never delivered")
                if row.status != "sent" or row.result is None:
                    raise _Retry(1.0, f"waiting for {ref!r} to be delivered")
                return row.result.get("ts" if key == "$ts_of" else "channel")
            return {k: await self._resolve(v) for k, v in value.items()}
        if isinstance(value, list):
            return [await self._resolve(v) for v in value]
        return value

    async def _reschedule(self, row: OutboxMessage, delay: float, reason: str) -> None:
        if delay < 0:  # exponential backoff with full jitter
            delay = min(BACKOFF_MAX, BACKOFF_INITIAL * 2 ** min(row.attempts - 1, 16)) * (
                0.5 + self._jitter() / 2
            )
        async with self._sessions() as session, session.begin():
            await session.execute(
                update(OutboxMessage)
                .where(OutboxMessage.id == row.id, OutboxMessage.status == "sending")
                .values(
                    status="pending",
                    next_attempt_at=self._clock() + timedelta(seconds=delay),
                    last_error=reason,
                )
            )

    async def _finish(
        self,
        row: OutboxMessage,
        status: str,
        *,
        result: dict[str, Any] | None = None,
        error: str | None = None,
    ) -> None:
        """Record the outcome; retried, because a sent message left `sending` is sent again."""
        for attempt in range(FINISH_ATTEMPTS):
            try:
                await self._record_outcome(row, status, result=result, error=error)
                return
            except (SQLAlchemyError, OSError, TimeoutError):
                if attempt == FINISH_ATTEMPTS - 1:
                    raise
                log.warning("recording a delivery failed; retrying", extra={"id": row.id}, exc_info=True)
                await asyncio.sleep(
                    min(BACKOFF_MAX, BACKOFF_INITIAL * 2**attempt) * (0.5 + self._jitter() / 2)
                )

    async def _record_outcome(
        self,
        row: OutboxMessage,
        status: str,
        *,
        result: dict[str, Any] | None = None,
        error: str | None = None,
    ) -> None:
        async with self._sessions() as session, session.begin():
            await session.execute(
                update(OutboxMessage)
                .where(OutboxMessage.id == row.id)
                .values(
                    status=status,
                    result=result,
                    last_error=error,
                    sent_at=self._clock() if status == "sent" else None,
                )
            )
            if status == "sent" and result and row.dedup_key and row.dedup_key.startswith("approval:"):
                await RequestRepository(session).record_slack_message(
                    row.dedup_key.removeprefix("approval:"),
                    channel=result.get("channel"),
                    ts=result.get("ts"),
                )
