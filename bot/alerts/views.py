"""Alert and digest rows as the view objects the Block Kit builders render."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.alerts.silences import silence_view
from bot.db.alert_models import AlertDigestRow, AlertRow, SilenceRow
from bot.domain.alerts import AlertStatus, AlertView, DigestView, RetryTarget, Severity, SilenceView

__all__ = ["alert_view", "alert_views", "digest_view"]

# How many alerts of a digest are loaded to pick the listed ones from (open ones first).
DIGEST_SCAN = 200


def alert_view(row: AlertRow, silence: SilenceView | None = None) -> AlertView:
    return AlertView(
        id=row.id,
        dedup_key=row.dedup_key,
        source=row.source,
        severity=Severity(row.severity),
        environment=row.environment,
        system=row.system,
        title=row.title,
        summary=row.summary,
        labels=dict(row.labels or {}),
        status=AlertStatus(row.status),
        occurrences=row.occurrences,
        first_seen=row.first_seen,
        last_seen=row.last_seen,
        channel=row.channel,
        mention=row.mention,
        acknowledged_by=row.acknowledged_by,
        acknowledged_at=row.acknowledged_at,
        resolved_by=row.resolved_by,
        resolved_at=row.resolved_at,
        silence=silence,
        escalated_to=row.escalated_to,
        escalated_at=row.escalated_at,
        incident_url=row.incident_url,
        retry=RetryTarget.model_validate(row.retry) if row.retry else None,
        retry_requested_by=row.retry_requested_by,
        in_digest=row.digest_id is not None,
    )


async def alert_views(session: AsyncSession, rows: Sequence[AlertRow]) -> list[AlertView]:
    """Views of several rows, loading their silences in one query."""
    silence_ids = {row.silence_id for row in rows if row.silence_id is not None}
    silences: dict[int, SilenceView] = {}
    if silence_ids:
        found = await session.scalars(select(SilenceRow).where(SilenceRow.id.in_(silence_ids)))
        silences = {s.id: silence_view(s) for s in found}
    return [alert_view(row, silences.get(row.silence_id) if row.silence_id else None) for row in rows]


async def digest_view(session: AsyncSession, digest: AlertDigestRow) -> DigestView:
    open_first = case((AlertRow.status == AlertStatus.RESOLVED.value, 1), else_=0)
    rows = (
        await session.scalars(
            select(AlertRow)
            .where(AlertRow.digest_id == digest.id)
            .order_by(open_first, AlertRow.id)
            .limit(DIGEST_SCAN)
        )
    ).all()
    counts = (
        await session.execute(
            select(func.count(), func.coalesce(func.sum(1 - open_first), 0)).where(
                AlertRow.digest_id == digest.id
            )
        )
    ).one()
    return DigestView(
        id=digest.id,
        channel=digest.channel,
        opened_at=digest.opened_at,
        alerts=tuple(await alert_views(session, rows)),
        total=int(counts[0]),
        open_count=int(counts[1]),
    )
