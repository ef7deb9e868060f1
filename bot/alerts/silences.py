"""Silences in the database: create, find the active ones, match them to alert labels.

Queries take the caller's session and never commit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.alert_models import SilenceRow
from bot.domain.alerts import Matcher, SilenceView, matches_all

__all__ = ["active_silences", "first_matching", "matchers_for_labels", "silence_view"]


def silence_view(row: SilenceRow) -> SilenceView:
    return SilenceView(
        id=row.id,
        matchers=tuple(Matcher.from_json(m) for m in row.matchers),
        starts_at=row.starts_at,
        ends_at=row.ends_at,
        created_by=row.created_by,
        reason=row.reason,
        ended_at=row.ended_at,
        ended_by=row.ended_by,
    )


async def active_silences(session: AsyncSession, now: datetime) -> list[SilenceView]:
    """Silences in force at `now`, soonest ending first."""
    rows = await session.scalars(
        select(SilenceRow)
        .where(SilenceRow.ended_at.is_(None), SilenceRow.starts_at <= now, SilenceRow.ends_at > now)
        .order_by(SilenceRow.ends_at, SilenceRow.id)
    )
    return [silence_view(row) for row in rows]


def first_matching(silences: Sequence[SilenceView], labels: Mapping[str, str]) -> SilenceView | None:
    """The silence (if any) that mutes an alert with these labels; the longest-lasting wins."""
    hits = [s for s in silences if matches_all(s.matchers, labels)]
    return max(hits, key=lambda s: (s.ends_at, s.id)) if hits else None


def matchers_for_labels(labels: Mapping[str, str]) -> tuple[Matcher, ...]:
    """Exact matchers on an alert's labels (for the Silence buttons): source, environment,
    system and the free labels; severity is left out so a worse trigger stays silenced too."""
    skip = {"severity", "env"}
    return tuple(Matcher(name, "=", value) for name, value in sorted(labels.items()) if name not in skip)
