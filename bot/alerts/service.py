"""AlertService: the alert use cases over the database and the outbox, with no Slack client.

Every public method is one transaction (commit at this edge): the alert's new state, the outbox
rows announcing it, and (for people's actions) the audit event commit together or not at all.
Row locks keep ingest, ticks and clicks from overwriting each other; each transaction takes its
alert row locks before any digest or pacing row, so they cannot deadlock.

`tick()` is what the worker calls every few seconds: it posts alerts whose group_wait elapsed
(or folds them into a storm digest), updates counts in place, repeats, escalates, ends expired
silences and runs connector health checks that are due (see bot/alerts/tick.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.alerts.batching import GroupCommit
from bot.alerts.grouping import GroupingRules
from bot.alerts.messages import AlertPublisher
from bot.alerts.routing import route_alert
from bot.alerts.silences import active_silences, first_matching, matchers_for_labels, silence_view
from bot.alerts.tick import TickReport, run_tick
from bot.alerts.views import alert_views
from bot.config.alerts import AlertsConfig
from bot.db.alert_models import AlertRow, SilenceRow
from bot.db.audit_log import append_event
from bot.domain.alert_errors import (
    AlertClosed,
    AlertNotFound,
    IncidentPageUnavailable,
    InvalidSilence,
    NotRetryable,
    SilenceAlreadyEnded,
    SilenceNotFound,
)
from bot.domain.alerts import (
    OPEN_STATUSES,
    AlertEvent,
    AlertStatus,
    AlertView,
    Matcher,
    RetryTarget,
    Severity,
    SilenceView,
    label_set,
    matches_all,
)
from bot.domain.audit import AuditRecord, Fingerprinter
from bot.domain.durations import format_duration
from bot.domain.requests import Clock
from bot.jobs.outbox import Outbox

__all__ = [
    "AlertChange",
    "AlertService",
    "IngestResult",
    "Probe",
    "RetryPlan",
    "SilenceOutcome",
    "TickReport",
]

log = logging.getLogger("opsgate.alerts")

Probe = Callable[[], Awaitable[None]]
INGEST_ATTEMPTS = 3
RETRY_COOLDOWN = timedelta(minutes=1)
LIST_SCAN = 1000


@dataclass(frozen=True)
class IngestResult:
    """What `ingest` did; `alert_id` is None for a resolve of a key with no open alert."""

    alert_id: int | None
    status: AlertStatus | None
    occurrences: int
    created: bool = False


@dataclass(frozen=True)
class AlertChange:
    alert: AlertView
    changed: bool  # False when the alert already was in that state (a double click)


@dataclass(frozen=True)
class SilenceOutcome:
    silence: SilenceView
    alerts: int  # open alerts silenced (or unsilenced) right now


@dataclass(frozen=True)
class RetryPlan:
    """What the Retry button asks the caller to re-run; `idempotency_key` guards a double run."""

    alert_id: int
    target: RetryTarget
    requested_by: str
    idempotency_key: str


class AlertService:
    """Ingests alert events and applies people's actions; `tick()` does the timed work."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        clock: Clock,
        config: AlertsConfig,
        outbox: Outbox,
        *,
        channel_ids: Mapping[str, str] | None = None,
        fingerprinter: Fingerprinter | None = None,
        probes: Mapping[str, Probe] | None = None,
        wake: Callable[[], None] | None = None,
        batch: int = 500,
    ) -> None:
        """`channel_ids` is slack.channels (name -> id); `fingerprinter` enables audit events for
        people's actions; `probes` are connector health checks (`vendor:environment` -> probe);
        `wake` is called after a commit that queued Slack messages (the outbox delivery's event)."""
        self.sessions = sessions
        self.clock = clock
        self.config = config
        self.rules = GroupingRules.from_config(config)
        self.publisher = AlertPublisher(
            outbox, self.rules, per_channel_rate=config.per_channel_rate, max_listed=config.storm.max_listed
        )
        self.channel_ids = dict(channel_ids or {})
        self.probes: dict[str, Probe] = dict(probes or {})
        self.batch = batch
        self._fingerprinter = fingerprinter
        self._wake = wake
        self._group_commit = GroupCommit(self._ingest_batch, self._ingest_one)
        self._turns = asyncio.Lock()

    def write_turn(self) -> asyncio.Lock:
        """Ingest batches and ticks take turns in-process (FIFO): SQLite has one writer and its
        busy handler is not fair, so a storm's ingestion could otherwise starve the tick."""
        return self._turns

    def wake(self) -> None:
        if self._wake is not None:
            self._wake()

    # ------------------------------------------------------------------ ingest

    async def ingest(self, event: AlertEvent) -> IngestResult:
        """Persist one trigger or resolve; a trigger for an open key adds to it (PagerDuty).

        Nothing is posted here: a new alert waits group_wait for `tick()`, a repeated trigger
        is shown by the next in-place update. A resolve updates the message at once, and an
        alert resolved before it was ever shown never appears in Slack. Concurrent calls share
        one transaction (group commit); each returns only after that commit.
        """
        return await self._group_commit.submit(event)

    async def _ingest_batch(self, events: list[AlertEvent]) -> list[IngestResult]:
        """Several events in one transaction (group commit); rows are looked up once per key."""
        keys = sorted({event.dedup_key for event in events})
        async with self.write_turn(), self.sessions() as session, session.begin():
            # Lock every open alert of the batch at once, in id order (as ticks do): no deadlocks.
            found = await session.scalars(
                select(AlertRow).where(AlertRow.open_key.in_(keys)).order_by(AlertRow.id).with_for_update()
            )
            open_rows: dict[str, AlertRow | None] = dict.fromkeys(keys)
            open_rows.update({row.dedup_key: row for row in found})
            done = [await self._ingest(session, event, open_rows) for event in events]
        if any(shown for _, shown in done):
            self.wake()
        return [result for result, _ in done]

    async def _ingest_one(self, event: AlertEvent) -> IngestResult:
        for attempt in range(1, INGEST_ATTEMPTS + 1):
            try:
                async with self.write_turn(), self.sessions() as session, session.begin():
                    result, shown = await self._ingest(session, event)
                break
            except IntegrityError:
                # Another process opened the same key between our look-up and insert: add to it.
                if attempt == INGEST_ATTEMPTS:
                    raise
        if shown:
            self.wake()
        return result

    async def ingest_in(self, session: AsyncSession, event: AlertEvent) -> tuple[IngestResult, bool]:
        """`ingest` inside the caller's transaction (health checks record state and alert together);
        the flag says whether Slack messages were queued."""
        return await self._ingest(session, event)

    async def _ingest(
        self, session: AsyncSession, event: AlertEvent, open_rows: dict[str, AlertRow | None] | None = None
    ) -> tuple[IngestResult, bool]:
        """`open_rows` caches the open alert per key within one transaction (None: no open alert)."""
        now = self.clock()
        key = event.dedup_key
        if open_rows is not None and key in open_rows:
            row = open_rows[key]
        else:
            with session.no_autoflush:  # the cache covers rows changed but not flushed yet
                row = await session.scalar(select(AlertRow).where(AlertRow.open_key == key).with_for_update())
            if open_rows is not None:
                open_rows[key] = row
        if event.action == "resolve":
            if row is None:
                return IngestResult(None, None, 0), False
            shown = await self._resolve_row(session, row, now, by=None)
            if open_rows is not None:
                open_rows[key] = None
            return IngestResult(row.id, AlertStatus.RESOLVED, row.occurrences), shown
        if row is None:
            row = await self._open(session, event, now)
            if open_rows is not None:
                open_rows[key] = row
            return IngestResult(row.id, AlertStatus(row.status), 1, created=True), False
        row.occurrences += 1
        row.last_seen = now
        row.updated_at = now
        if event.title:
            row.title = event.title[:255]
        if event.summary:
            row.summary = event.summary
        if event.retry is not None:
            row.retry = event.retry.model_dump(mode="json")
        worse = event.severity.rank > Severity(row.severity).rank
        if worse:
            row.severity = event.severity.value
            if row.notified_at is not None and row.escalate_at is None and row.escalated_at is None:
                row.escalate_at = self.rules.escalate_at(now, event.severity)
        if row.notified_at is not None and row.status != AlertStatus.SILENCED:
            row.next_flush_at = self.rules.next_flush_after_trigger(
                now=now,
                scheduled=None if worse else row.next_flush_at,
                last_rendered_at=None if worse else row.last_rendered_at,
                in_digest=row.digest_id is not None,
            )
        return IngestResult(row.id, AlertStatus(row.status), row.occurrences), False

    async def _open(self, session: AsyncSession, event: AlertEvent, now: datetime) -> AlertRow:
        labels = label_set(
            source=event.source,
            severity=event.severity.value,
            environment=event.environment,
            system=event.system,
            labels=event.labels,
        )
        decision = route_alert(labels, event.severity, self.config, self.channel_ids)
        silence = first_matching(await active_silences(session, now), labels)
        row = AlertRow(
            dedup_key=event.dedup_key,
            open_key=event.dedup_key,
            source=event.source,
            severity=event.severity.value,
            environment=event.environment,
            system=event.system,
            title=event.display_title[:255],
            summary=event.summary,
            labels=dict(event.labels),
            retry=event.retry.model_dump(mode="json") if event.retry else None,
            status=(AlertStatus.SILENCED if silence else AlertStatus.FIRING).value,
            occurrences=1,
            first_seen=now,
            last_seen=now,
            channel=decision.channel,
            mention=decision.mention,
            silence_id=silence.id if silence else None,
            next_flush_at=self.rules.first_flush(now),
            retry_count=0,
            created_at=now,
            updated_at=now,
        )
        session.add(row)
        await session.flush()
        return row

    async def _resolve_row(
        self, session: AsyncSession, row: AlertRow, now: datetime, *, by: str | None
    ) -> bool:
        row.status = AlertStatus.RESOLVED.value
        row.open_key = None
        row.resolved_at = now
        row.resolved_by = by
        row.updated_at = now
        row.next_flush_at = None
        row.repeat_at = None
        row.escalate_at = None
        return await self.publisher.show_change(session, row, now)

    # ----------------------------------------------------------- people act

    async def acknowledge(self, alert_id: int, *, user: str) -> AlertChange:
        """Stop repeats and escalation, and show who took it; a closed alert cannot be acknowledged."""
        async with self.sessions() as session, session.begin():
            now = self.clock()
            row = await self._row(session, alert_id, lock=True)
            if row.status == AlertStatus.RESOLVED:
                raise AlertClosed(f"ALR-{alert_id} is already resolved; nothing to acknowledge.")
            if row.status == AlertStatus.ACKNOWLEDGED:
                return AlertChange((await alert_views(session, [row]))[0], changed=False)
            before = row.status
            row.status = AlertStatus.ACKNOWLEDGED.value
            row.acknowledged_by = user
            row.acknowledged_at = now
            row.repeat_at = None
            row.escalate_at = None
            row.updated_at = now
            await self.publisher.show_change(session, row, now)
            await self._audit(session, user, "alert.acknowledged", row, before=before)
            view = (await alert_views(session, [row]))[0]
        self.wake()
        return AlertChange(view, changed=True)

    async def resolve(self, alert_id: int, *, user: str) -> AlertChange:
        """Close the alert and update its message in place; the key may open a new alert later."""
        async with self.sessions() as session, session.begin():
            now = self.clock()
            row = await self._row(session, alert_id, lock=True)
            if row.status == AlertStatus.RESOLVED:
                return AlertChange((await alert_views(session, [row]))[0], changed=False)
            before = row.status
            await self._resolve_row(session, row, now, by=user)
            await self._audit(session, user, "alert.resolved", row, before=before)
            view = (await alert_views(session, [row]))[0]
        self.wake()
        return AlertChange(view, changed=True)

    async def get(self, alert_id: int) -> AlertView:
        async with self.sessions() as session:
            row = await self._row(session, alert_id)
            return (await alert_views(session, [row]))[0]

    async def list_alerts(
        self,
        *,
        matchers: Sequence[Matcher] = (),
        statuses: Sequence[AlertStatus] = tuple(OPEN_STATUSES),
        text: str = "",
        limit: int = 40,
    ) -> tuple[list[AlertView], int]:
        """Alerts in `statuses` whose labels match all `matchers` and whose title or key contains
        `text`, newest first; returns (the first `limit`, how many matched in all)."""
        async with self.sessions() as session:
            rows = (
                await session.scalars(
                    select(AlertRow)
                    .where(AlertRow.status.in_([s.value for s in statuses]))
                    .order_by(AlertRow.id.desc())
                    .limit(LIST_SCAN)
                )
            ).all()
            needle = text.lower()
            hits = [
                row
                for row in rows
                if (not matchers or matches_all(list(matchers), _labels(row)))
                and (not needle or needle in row.title.lower() or needle in row.dedup_key.lower())
            ]
            return await alert_views(session, hits[:limit]), len(hits)

    # ------------------------------------------------------------ silences

    async def create_silence(
        self,
        matchers: Sequence[Matcher],
        *,
        duration: timedelta,
        user: str,
        reason: str = "",
        source_alert_id: int | None = None,
    ) -> SilenceOutcome:
        """Mute alerts whose labels match every matcher for `duration`; open ones go quiet now."""
        if not matchers:
            raise InvalidSilence("Name at least one matcher, e.g. `env=prod system=opentext`.")
        if duration <= timedelta(0):
            raise InvalidSilence("The duration must be longer than 0s, e.g. 30m, 4h or 2d.")
        if duration > self.config.max_silence:
            raise InvalidSilence(
                f"Silences last at most {format_duration(self.config.max_silence)}; "
                f"{format_duration(duration)} is too long."
            )
        async with self.sessions() as session, session.begin():
            now = self.clock()
            open_rows = (
                await session.scalars(
                    select(AlertRow)
                    .where(AlertRow.status.in_([AlertStatus.FIRING.value, AlertStatus.ACKNOWLEDGED.value]))
                    .order_by(AlertRow.id)
                    .with_for_update()
                )
            ).all()
            row = SilenceRow(
                matchers=[m.to_json() for m in matchers],
                starts_at=now,
                ends_at=now + duration,
                created_by=user,
                reason=reason,
                created_at=now,
                source_alert_id=source_alert_id,
            )
            session.add(row)
            await session.flush()
            muted = [alert for alert in open_rows if matches_all(list(matchers), _labels(alert))]
            for alert in muted:
                alert.status = AlertStatus.SILENCED.value
                alert.silence_id = row.id
                alert.updated_at = now
                await self.publisher.show_change(session, alert, now)
            await self._audit_silence(session, user, "alert.silence_created", row, affected=len(muted))
            view = silence_view(row)
        self.wake()
        return SilenceOutcome(view, len(muted))

    async def silence_alert(self, alert_id: int, *, hours: int, user: str) -> SilenceOutcome:
        """The Silence 1 h / 4 h / 24 h buttons: a silence on the alert's labels."""
        alert = await self.get(alert_id)
        if not alert.is_open:
            raise AlertClosed(f"{alert.ref} is already resolved; there is nothing to silence.")
        labels = label_set(
            source=alert.source,
            severity=alert.severity.value,
            environment=alert.environment,
            system=alert.system,
            labels=alert.labels,
        )
        return await self.create_silence(
            matchers_for_labels(labels),
            duration=timedelta(hours=hours),
            user=user,
            reason=f"from {alert.ref}: {alert.title}"[:500],
            source_alert_id=alert_id,
        )

    async def unsilence(self, silence_id: int, *, user: str) -> SilenceOutcome:
        """Lift a silence now; alerts it muted fire again (unless another silence holds them)."""
        async with self.sessions() as session, session.begin():
            now = self.clock()
            row = await session.get(SilenceRow, silence_id, with_for_update=True)
            if row is None:
                raise SilenceNotFound(f"There is no silence SIL-{silence_id}; `/ops silences` lists them.")
            if row.ended_at is not None or row.ends_at <= now:
                raise SilenceAlreadyEnded(f"SIL-{silence_id} has already ended.")
            row.ended_at = now
            row.ended_by = user
            released = await self.lift_silence(session, row.id, now)
            await self._audit_silence(session, user, "alert.silence_lifted", row, affected=released)
            view = silence_view(row)
        self.wake()
        return SilenceOutcome(view, released)

    async def lift_silence(self, session: AsyncSession, silence_id: int, now: datetime) -> int:
        """After a silence ended: its alerts fire again, or move to another silence that matches."""
        rows = (
            await session.scalars(
                select(AlertRow)
                .where(
                    AlertRow.silence_id == silence_id, AlertRow.status.in_([s.value for s in OPEN_STATUSES])
                )
                .order_by(AlertRow.id)
                .with_for_update()
            )
        ).all()
        if not rows:
            return 0
        others = [s for s in await active_silences(session, now) if s.id != silence_id]
        released = 0
        for row in rows:
            other = first_matching(others, _labels(row))
            row.silence_id = other.id if other else None
            row.updated_at = now
            if other is None and row.status == AlertStatus.SILENCED:
                released += 1
                row.status = (AlertStatus.ACKNOWLEDGED if row.acknowledged_at else AlertStatus.FIRING).value
                if row.notified_at is None:
                    row.next_flush_at = now  # never shown: post it on this tick
                    continue
            await self.publisher.show_change(session, row, now)
        return released

    async def silences(self) -> list[SilenceView]:
        async with self.sessions() as session:
            return await active_silences(session, self.clock())

    # ------------------------------------------------- retry, incident page

    async def request_retry(self, alert_id: int, *, user: str) -> RetryPlan:
        """Record that `user` asked to re-run what failed, and say what to re-run."""
        async with self.sessions() as session, session.begin():
            now = self.clock()
            row = await self._row(session, alert_id, lock=True)
            if row.retry is None:
                raise NotRetryable(
                    f"ALR-{alert_id} has nothing to re-run: it did not come from a failed request or job."
                )
            if row.status == AlertStatus.RESOLVED:
                raise AlertClosed(f"ALR-{alert_id} is already resolved; nothing to retry.")
            if row.retry_requested_at is not None and now - row.retry_requested_at < RETRY_COOLDOWN:
                raise NotRetryable(
                    f"<@{row.retry_requested_by}> asked for a retry of ALR-{alert_id} moments ago; "
                    "wait for it to finish."
                )
            row.retry_count += 1
            row.retry_requested_by = user
            row.retry_requested_at = now
            row.updated_at = now
            await self.publisher.show_change(session, row, now)
            await self._audit(session, user, "alert.retry_requested", row, before=row.status)
            plan = RetryPlan(
                alert_id=row.id,
                target=RetryTarget.model_validate(row.retry),
                requested_by=user,
                idempotency_key=f"alert-retry:{row.id}:{row.retry_count}",
            )
        self.wake()
        return plan

    async def claim_incident_page(self, alert_id: int, *, user: str) -> AlertView:
        """Reserve the right to create the alert's incident page (one page per alert, even if two
        people click); the view's `incident_url` is set when a page already exists."""
        async with self.sessions() as session, session.begin():
            row = await self._row(session, alert_id, lock=True)
            if row.incident_url is None:
                if row.incident_claimed_by is not None:
                    raise IncidentPageUnavailable(
                        f"<@{row.incident_claimed_by}> is creating the incident page already."
                    )
                row.incident_claimed_by = user
            return (await alert_views(session, [row]))[0]

    async def release_incident_claim(self, alert_id: int) -> None:
        async with self.sessions() as session, session.begin():
            row = await self._row(session, alert_id, lock=True)
            if row.incident_url is None:
                row.incident_claimed_by = None

    async def record_incident_page(self, alert_id: int, *, url: str, user: str) -> AlertView:
        """Link the created page from the alert's message (updated in place)."""
        async with self.sessions() as session, session.begin():
            now = self.clock()
            row = await self._row(session, alert_id, lock=True)
            row.incident_url = url
            row.updated_at = now
            await self.publisher.show_change(session, row, now)
            await self._audit(
                session, user, "alert.incident_page", row, before=row.status, evidence={"url": url}
            )
            view = (await alert_views(session, [row]))[0]
        self.wake()
        return view

    # ----------------------------------------------------------------- tick

    async def tick(self) -> TickReport:
        """The timed work; safe to call from several workers at once (one ticks, others skip)."""
        report = await run_tick(self)
        if report.enqueued:
            self.wake()
        return report

    # ------------------------------------------------------------- internals

    async def _row(self, session: AsyncSession, alert_id: int, *, lock: bool = False) -> AlertRow:
        row = await session.get(AlertRow, alert_id, with_for_update=lock)
        if row is None:
            raise AlertNotFound(f"There is no alert ALR-{alert_id}.")
        return row

    async def _audit(
        self,
        session: AsyncSession,
        user: str,
        action: str,
        row: AlertRow,
        *,
        before: str | None,
        evidence: Mapping[str, Any] | None = None,
    ) -> None:
        if self._fingerprinter is None:
            return
        record = AuditRecord(
            occurred_at=self.clock(),
            actor=user,
            action=action,
            subject=f"ALR-{row.id}",
            before_status=before,
            after_status=row.status,
            evidence={
                "dedup_key": row.dedup_key,
                "severity": row.severity,
                "environment": row.environment,
                "system": row.system,
                **(evidence or {}),
            },
        )
        await append_event(session, record, self._fingerprinter)

    async def _audit_silence(
        self, session: AsyncSession, user: str, action: str, row: SilenceRow, *, affected: int
    ) -> None:
        if self._fingerprinter is None:
            return
        record = AuditRecord(
            occurred_at=self.clock(),
            actor=user,
            action=action,
            subject=f"SIL-{row.id}",
            reason=row.reason or None,
            evidence={
                "matchers": [str(Matcher.from_json(m)) for m in row.matchers],
                "ends_at": row.ends_at.isoformat(),
                "alerts_affected": affected,
            },
        )
        await append_event(session, record, self._fingerprinter)


def _labels(row: AlertRow) -> dict[str, str]:
    return label_set(
        source=row.source,
        severity=row.severity,
        environment=row.environment,
        system=row.system,
        labels=row.labels or {},
    )
