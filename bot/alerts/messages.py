"""The outbox rows that show alerts in Slack: first post, storm digest, updates in place, replies.

Everything goes through the outbox in the caller's transaction, so an alert's state and the
message announcing it commit together, and a Slack outage delays messages without losing any.
All rows of an alert use its channel as the outbox conversation, so they are delivered in order.
Updates and thread replies reference the first post (`$ts_of` / `$channel_of` its dedup key).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from slack_sdk.models.blocks import Block
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.alerts.grouping import GroupingRules
from bot.alerts.views import alert_views, digest_view
from bot.blocks.alerts import (
    alert_fallback_text,
    build_alert_digest,
    build_alert_message,
    digest_fallback_text,
)
from bot.db.alert_models import AlertDigestRow, AlertRow
from bot.db.models import OutboxMessage
from bot.domain.alerts import Severity
from bot.jobs.outbox import Outbox

__all__ = ["AlertPublisher", "alert_message_key", "digest_message_key"]


def alert_message_key(alert_id: int) -> str:
    return f"alert:{alert_id}"


def digest_message_key(digest_id: int) -> str:
    return f"alert-digest:{digest_id}"


def _blocks(blocks: list[Block]) -> list[dict[str, Any]]:
    return [block.to_dict() for block in blocks]


class AlertPublisher:
    """Writes alert messages into the outbox and records on the rows what was shown when."""

    def __init__(
        self, outbox: Outbox, rules: GroupingRules, *, per_channel_rate: float, max_listed: int
    ) -> None:
        self._outbox = outbox
        self._rules = rules
        self._rate = per_channel_rate
        self._max_listed = max_listed

    # ------------------------------------------------------------------ alerts

    async def post_alert(self, session: AsyncSession, row: AlertRow, now: datetime) -> None:
        """The alert's own message (mentioning the route's group); starts repeat and escalation clocks."""
        view = (await alert_views(session, [row]))[0]
        key = alert_message_key(row.id)
        payload = {
            "channel": row.channel,
            "text": alert_fallback_text(view, mention=True),
            "blocks": _blocks(build_alert_message(view)),
            "unfurl_links": False,
            "unfurl_media": False,
        }
        await self._enqueue(session, row.channel, "chat.postMessage", payload, key=key, ref=view.ref)
        row.message_key = key
        self._mark_notified(row, now)

    async def update_alert(self, session: AsyncSession, row: AlertRow, now: datetime) -> None:
        """Re-render the alert's own message in place."""
        assert row.message_key is not None
        view = (await alert_views(session, [row]))[0]
        payload = {
            "channel": {"$channel_of": row.message_key},
            "ts": {"$ts_of": row.message_key},
            "text": alert_fallback_text(view),
            "blocks": _blocks(build_alert_message(view)),
        }
        await self._enqueue(session, row.channel, "chat.update", payload, ref=view.ref)
        row.last_rendered_at = now
        row.next_flush_at = None

    def fold(self, row: AlertRow, digest: AlertDigestRow, now: datetime, window_end: datetime) -> None:
        """Count the alert into the channel's storm digest; it lives in that message from now on."""
        row.digest_id = digest.id
        row.message_key = digest.message_key
        self._mark_notified(row, now)
        digest.alert_count += 1
        digest.closes_at = max(digest.closes_at, window_end)

    def _mark_notified(self, row: AlertRow, now: datetime) -> None:
        row.notified_at = now
        row.last_rendered_at = now
        row.next_flush_at = None
        row.repeat_at = self._rules.repeat_at(now)
        row.escalate_at = self._rules.escalate_at(now, Severity(row.severity))

    # ----------------------------------------------------------------- digests

    async def post_digest(self, session: AsyncSession, digest: AlertDigestRow, now: datetime) -> None:
        view = await digest_view(session, digest)
        payload = {
            "channel": digest.channel,
            "text": digest_fallback_text(view),
            "blocks": _blocks(
                build_alert_digest(view, per_channel_rate=self._rate, max_listed=self._max_listed)
            ),
            "unfurl_links": False,
        }
        await self._enqueue(
            session,
            digest.channel,
            "chat.postMessage",
            payload,
            key=digest.message_key,
            ref=f"ALD-{digest.id}",
        )
        digest.posted_at = now
        digest.last_rendered_at = now

    async def update_digest(self, session: AsyncSession, digest: AlertDigestRow, now: datetime) -> None:
        view = await digest_view(session, digest)
        payload = {
            "channel": {"$channel_of": digest.message_key},
            "ts": {"$ts_of": digest.message_key},
            "text": digest_fallback_text(view),
            "blocks": _blocks(
                build_alert_digest(view, per_channel_rate=self._rate, max_listed=self._max_listed)
            ),
        }
        await self._enqueue(session, digest.channel, "chat.update", payload, ref=f"ALD-{digest.id}")
        digest.last_rendered_at = now

    # ------------------------------------------------------------- in common

    async def show_change(self, session: AsyncSession, row: AlertRow, now: datetime) -> bool:
        """Reflect a status change at once in the message the alert lives in.

        Returns False when the alert is not shown yet (its post will carry the new state).
        """
        if row.digest_id is not None:
            row.next_flush_at = None
            digest = await session.get(AlertDigestRow, row.digest_id, with_for_update=True)
            if digest is None or digest.posted_at is None:
                return False
            await self.update_digest(session, digest, now)
            return True
        if row.message_key is None:
            return False
        await self.update_alert(session, row, now)
        return True

    async def reply(
        self, session: AsyncSession, *, row: AlertRow, text: str, blocks: list[Block], broadcast: bool = True
    ) -> None:
        """A thread reply under the message the alert lives in, also shown in the channel."""
        assert row.message_key is not None
        payload = {
            "channel": {"$channel_of": row.message_key},
            "thread_ts": {"$ts_of": row.message_key},
            "text": text,
            "blocks": _blocks(blocks),
            "reply_broadcast": broadcast,
        }
        await self._enqueue(session, row.channel, "chat.postMessage", payload, ref=f"ALR-{row.id}")

    async def channel_busy(
        self, session: AsyncSession, channel: str, now: datetime, spacing: timedelta
    ) -> bool:
        """Must a new post to `channel` wait? Yes while an earlier post (any, not only ours) is
        undelivered, or the last one was delivered less than `spacing` ago: pacing by delivery
        time keeps a backlog released after a Slack outage from arriving as a burst."""
        undelivered = await session.scalar(
            select(OutboxMessage.id)
            .where(
                OutboxMessage.status.in_(("pending", "sending")),
                OutboxMessage.conversation == channel,
                OutboxMessage.method == "chat.postMessage",
            )
            .limit(1)
        )
        if undelivered is not None:
            return True
        last_sent = await session.scalar(
            select(OutboxMessage.sent_at)
            .where(
                OutboxMessage.status == "sent",
                OutboxMessage.conversation == channel,
                OutboxMessage.method == "chat.postMessage",
            )
            .order_by(OutboxMessage.id.desc())
            .limit(1)
        )
        return last_sent is not None and last_sent + spacing > now

    async def update_pending(self, session: AsyncSession, ref: str) -> bool:
        """Is an update of this message still undelivered? (Then a throttled update waits.)"""
        found = await session.scalar(
            select(OutboxMessage.id)
            .where(
                OutboxMessage.status.in_(("pending", "sending")),
                OutboxMessage.request_ref == ref,
                OutboxMessage.method == "chat.update",
            )
            .limit(1)
        )
        return found is not None

    async def _enqueue(
        self,
        session: AsyncSession,
        conversation: str,
        method: str,
        payload: dict[str, Any],
        *,
        key: str | None = None,
        ref: str,
    ) -> None:
        await self._outbox.enqueue(
            session, conversation=conversation, method=method, payload=payload, dedup_key=key, request_ref=ref
        )
