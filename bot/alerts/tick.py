"""The timed alert work `AlertService.tick()` runs, one transaction per pass:

1. end silences whose time is up (their alerts fire again);
2. flush alerts that are due: first posts after group_wait (paced per channel, the overflow
   folded into a storm digest), in-place count updates after group_interval, digest updates;
3. post digests waiting for a posting slot;
4. repeat still-firing unacknowledged alerts, escalate unacknowledged critical ones;
5. note the channel and ts Slack gave each message; 6. run connector health checks that are due.

Several workers may call it: on PostgreSQL an advisory lock lets one tick at a time (the others
return at once), and alert rows are claimed with FOR UPDATE SKIP LOCKED so ingestion and clicks
never wait on a whole tick.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import and_, or_, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from bot.alerts.health import run_due_health_checks
from bot.alerts.messages import digest_message_key
from bot.alerts.storm import PostPacer, plan_channel
from bot.alerts.views import alert_views
from bot.blocks.alerts import build_alert_reminder
from bot.db.alert_models import AlertChannelRow, AlertDigestRow, AlertRow, SilenceRow
from bot.db.models import OutboxMessage
from bot.db.upsert import insert_into
from bot.domain.alerts import AlertStatus

if TYPE_CHECKING:
    from bot.alerts.service import AlertService

__all__ = ["TickReport", "run_tick"]

TICK_LOCK_KEY = 0x616C7274  # "alrt": the advisory lock id of the alert tick, within the schema


@dataclass
class TickReport:
    posted: int = 0
    folded: int = 0
    deferred: int = 0
    updated: int = 0
    digests_posted: int = 0
    digests_updated: int = 0
    repeats: int = 0
    escalations: int = 0
    silences_ended: int = 0
    health_checks: int = 0

    @property
    def enqueued(self) -> int:
        """Outbox rows written (an escalation is a reply plus an update)."""
        return (
            self.posted
            + self.updated
            + self.digests_posted
            + self.digests_updated
            + self.repeats
            + 2 * self.escalations
        )


async def run_tick(service: AlertService) -> TickReport:
    """One transaction for all passes: on SQLite every transaction takes the single write lock,
    so a tick queues once behind a storm's ingestion instead of five times."""
    report = TickReport()
    async with service.write_turn(), service.sessions() as session, session.begin():
        if not await _tick_lock(session):
            return report  # another worker is ticking right now; its pass covers this one
        now = service.clock()
        await _end_expired_silences(service, session, now, report)
        await _flush_due(service, session, now, report)
        await _post_waiting_digests(service, session, now, report)
        await _remind(service, session, now, report)
        await _note_message_refs(service, session, now)
    if service.probes:
        report.health_checks = len(await run_due_health_checks(service))
    return report


async def _tick_lock(session: AsyncSession) -> bool:
    """One tick at a time across workers (PostgreSQL advisory lock, released at commit); SQLite
    serialises writers anyway."""
    if session.bind is None or session.bind.dialect.name != "postgresql":
        return True
    # Advisory locks are database-wide: key them by schema too, so installations (or test runs)
    # in different schemas of one database never block each other's ticks.
    return bool(
        await session.scalar(
            text("SELECT pg_try_advisory_xact_lock(hashtext(current_schema()), :key)"), {"key": TICK_LOCK_KEY}
        )
    )


# --------------------------------------------------------------------------- silences


async def _end_expired_silences(
    service: AlertService, session: AsyncSession, now: datetime, report: TickReport
) -> None:
    rows = (
        await session.scalars(
            select(SilenceRow)
            .where(SilenceRow.ended_at.is_(None), SilenceRow.ends_at <= now)
            .order_by(SilenceRow.id)
            .limit(service.batch)
            .with_for_update(skip_locked=True)
        )
    ).all()
    for silence in rows:
        silence.ended_at = silence.ends_at
        await service.lift_silence(session, silence.id, now)
        report.silences_ended += 1


# --------------------------------------------------------------------------- flush


async def _flush_due(service: AlertService, session: AsyncSession, now: datetime, report: TickReport) -> None:
    publisher, rules = service.publisher, service.rules
    rows = (
        await session.scalars(
            select(AlertRow)
            .where(
                AlertRow.status.in_([AlertStatus.FIRING.value, AlertStatus.ACKNOWLEDGED.value]),
                AlertRow.next_flush_at <= now,
            )
            .order_by(AlertRow.next_flush_at, AlertRow.id)
            .limit(service.batch)
            .with_for_update(skip_locked=True)
        )
    ).all()
    fresh: dict[str, list[AlertRow]] = defaultdict(list)
    in_digests: dict[int, list[AlertRow]] = defaultdict(list)
    for row in rows:
        if row.notified_at is None:
            fresh[row.channel].append(row)
        elif row.digest_id is not None:
            in_digests[row.digest_id].append(row)
        elif await publisher.update_pending(session, f"ALR-{row.id}"):
            # The last update has not gone out yet (Slack slow or down): one at a time.
            row.next_flush_at = now + rules.digest_update_interval
        else:
            await publisher.update_alert(session, row, now)
            report.updated += 1
    for channel in sorted(fresh):
        await _post_or_fold(service, session, channel, fresh[channel], now, report, in_digests)
    for digest_id in sorted(in_digests):
        await _render_digest(service, session, digest_id, in_digests[digest_id], now, report)


async def _pacing_row(session: AsyncSession, channel: str) -> AlertChannelRow:
    await session.execute(
        insert_into(session, AlertChannelRow).values(channel=channel).on_conflict_do_nothing()
    )
    row = await session.scalar(
        select(AlertChannelRow).where(AlertChannelRow.channel == channel).with_for_update()
    )
    assert row is not None
    return row


async def _slot_free(
    service: AlertService, session: AsyncSession, pacing: AlertChannelRow, pacer: PostPacer, now: datetime
) -> bool:
    if not pacer.free(pacing.next_post_at, now):
        return False
    return not await service.publisher.channel_busy(session, pacing.channel, now, pacer.spacing)


async def _post_or_fold(
    service: AlertService,
    session: AsyncSession,
    channel: str,
    alerts: list[AlertRow],
    now: datetime,
    report: TickReport,
    in_digests: dict[int, list[AlertRow]],
) -> None:
    """Post while the channel has a slot; beyond that, fold into the channel's digest."""
    publisher = service.publisher
    pacer = PostPacer(service.config.per_channel_rate)
    window = service.config.storm.window
    pacing = await _pacing_row(session, channel)
    digest = await _open_digest(session, pacing, now)
    slot_free = await _slot_free(service, session, pacing, pacer, now)
    plan = plan_channel(due=len(alerts), slot_free=slot_free, digest_open=digest is not None)
    for row in alerts[: plan.post]:
        pacing.next_post_at = pacer.take(pacing.next_post_at, now)
        await publisher.post_alert(session, row, now)
        report.posted += 1
        slot_free = False
    folding = alerts[plan.post : plan.post + plan.fold]
    for row in alerts[plan.post + plan.fold :]:
        row.next_flush_at = max(pacing.next_post_at or now, now + pacer.spacing)
        report.deferred += 1
    if not folding:
        return
    if digest is None:
        # The key names the digest's id, known after the insert; a unique placeholder until then.
        placeholder = f"alert-digest:new:{uuid.uuid4().hex}"
        digest = AlertDigestRow(
            channel=channel, message_key=placeholder, opened_at=now, closes_at=now + window, alert_count=0
        )
        session.add(digest)
        await session.flush()
        digest.message_key = digest_message_key(digest.id)
        pacing.digest_id = digest.id
    for row in folding:
        publisher.fold(row, digest, now, now + window)
        report.folded += 1
    if digest.posted_at is None:
        if slot_free:
            pacing.next_post_at = pacer.take(pacing.next_post_at, now)
            await session.flush()
            await publisher.post_digest(session, digest, now)
            report.digests_posted += 1
    else:
        in_digests[digest.id].extend(folding)


async def _open_digest(
    session: AsyncSession, pacing: AlertChannelRow, now: datetime
) -> AlertDigestRow | None:
    if pacing.digest_id is None:
        return None
    digest = await session.get(AlertDigestRow, pacing.digest_id, with_for_update=True)
    if digest is None or digest.closes_at <= now:
        pacing.digest_id = None
        return None
    return digest


async def _render_digest(
    service: AlertService,
    session: AsyncSession,
    digest_id: int,
    alerts: list[AlertRow],
    now: datetime,
    report: TickReport,
) -> None:
    """Update a digest in place, at most once per digest_update_interval."""
    publisher, rules = service.publisher, service.rules
    digest = await session.get(AlertDigestRow, digest_id, with_for_update=True)
    if digest is None or digest.posted_at is None:
        for row in alerts:
            row.next_flush_at = None  # the digest's post will show them as they are then
        return
    due = rules.digest_render_due(digest.last_rendered_at, now)
    if due > now or await publisher.update_pending(session, f"ALD-{digest.id}"):
        later = max(due, now + rules.digest_update_interval) if due <= now else due
        for row in alerts:
            row.next_flush_at = later
        return
    await session.flush()
    await publisher.update_digest(session, digest, now)
    report.digests_updated += 1
    for row in alerts:
        row.next_flush_at = None


async def _post_waiting_digests(
    service: AlertService, session: AsyncSession, now: datetime, report: TickReport
) -> None:
    pacer = PostPacer(service.config.per_channel_rate)
    waiting = (
        await session.execute(
            select(AlertDigestRow.id, AlertDigestRow.channel)
            .where(AlertDigestRow.posted_at.is_(None), AlertDigestRow.alert_count > 0)
            .order_by(AlertDigestRow.id)
            .limit(service.batch)
        )
    ).all()
    for digest_id, channel in waiting:
        pacing = await _pacing_row(session, channel)  # pacing before digest: one lock order
        if not await _slot_free(service, session, pacing, pacer, now):
            continue
        digest = await session.get(AlertDigestRow, digest_id, with_for_update=True)
        if digest is None or digest.posted_at is not None:
            continue
        pacing.next_post_at = pacer.take(pacing.next_post_at, now)
        await service.publisher.post_digest(session, digest, now)
        report.digests_posted += 1


# --------------------------------------------------------------------------- reminders


async def _remind(service: AlertService, session: AsyncSession, now: datetime, report: TickReport) -> None:
    """One reply per message and pass: an escalation first, else a repeat; each takes a slot."""
    pacer = PostPacer(service.config.per_channel_rate)
    escalation = service.config.escalation
    rows = (
        await session.scalars(
            select(AlertRow)
            .where(
                AlertRow.status == AlertStatus.FIRING.value,
                AlertRow.message_key.is_not(None),
                or_(
                    AlertRow.repeat_at <= now,
                    and_(AlertRow.escalate_at <= now, AlertRow.escalated_at.is_(None)),
                ),
            )
            .order_by(AlertRow.id)
            .limit(service.batch)
            .with_for_update(skip_locked=True)
        )
    ).all()
    groups: dict[str, list[AlertRow]] = defaultdict(list)
    for row in rows:
        assert row.message_key is not None
        groups[row.message_key].append(row)
    for group in groups.values():
        channel = group[0].channel
        if group[0].digest_id is not None:
            digest = await session.get(AlertDigestRow, group[0].digest_id)
            if digest is None or digest.posted_at is None:
                continue  # the reply must wait for the digest it threads under
        pacing = await _pacing_row(session, channel)
        if not await _slot_free(service, session, pacing, pacer, now):
            continue
        escalating = [
            r
            for r in group
            if escalation is not None
            and r.escalate_at is not None
            and r.escalate_at <= now
            and r.escalated_at is None
        ]
        if escalating and escalation is not None:
            for row in escalating:
                row.escalated_at = now
                row.escalated_to = escalation.group
                row.escalate_at = None
                row.repeat_at = service.rules.repeat_at(now)
            views = await alert_views(session, escalating)
            text, blocks = build_alert_reminder(views, kind="escalation", mention=escalation.group, now=now)
            await service.publisher.reply(session, row=escalating[0], text=text, blocks=blocks)
            # Alerts sharing a message share it: one update shows them all escalated.
            await service.publisher.show_change(session, escalating[0], now)
            report.escalations += len(escalating)
        else:
            repeating = [r for r in group if r.repeat_at is not None and r.repeat_at <= now]
            if not repeating:
                continue
            for row in repeating:
                row.repeat_at = service.rules.repeat_at(now)
            views = await alert_views(session, repeating)
            text, blocks = build_alert_reminder(views, kind="repeat", mention=repeating[0].mention, now=now)
            await service.publisher.reply(session, row=repeating[0], text=text, blocks=blocks)
            report.repeats += 1
        pacing.next_post_at = pacer.take(pacing.next_post_at, now)


# --------------------------------------------------------------------------- message refs


async def _note_message_refs(service: AlertService, session: AsyncSession, now: datetime) -> None:
    """Copy the channel id and ts Slack returned onto alerts (for permalinks and look-ups)."""
    found = (
        await session.execute(
            select(AlertRow, OutboxMessage.result)
            .join(OutboxMessage, OutboxMessage.dedup_key == AlertRow.message_key)
            .where(AlertRow.slack_ts.is_(None), OutboxMessage.status == "sent")
            .limit(service.batch)
            .with_for_update(skip_locked=True, of=AlertRow)
        )
    ).all()
    for row, result in found:
        if result and result.get("ts"):
            row.slack_ts = str(result["ts"])[:32]
            row.slack_channel = str(result.get("channel") or row.channel)[:32]
