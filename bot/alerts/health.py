"""Scheduled connector health checks: one probe per vendor and environment (`iconik:prod`).

A probe is any `async () -> None` that raises when the connector cannot do its job (the lead
wires real connector calls). A check is down after `failures_before_down` failures in a row: it
then triggers an alert (`health:<name>`, counted again on each further failure) and resolves it
automatically on the first success. Each check is claimed in the database before it runs, so
several workers never probe the same connector in the same interval.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import ColumnElement, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.alert_models import HealthCheckRow
from bot.db.upsert import insert_into
from bot.domain.alerts import AlertEvent, AlertSource, Severity

if TYPE_CHECKING:
    from bot.alerts.service import AlertService, Probe

__all__ = ["HealthCheckResult", "health_event", "run_due_health_checks", "run_health_checks"]

MAX_ERROR = 500


@dataclass(frozen=True)
class HealthCheckResult:
    name: str
    ok: bool
    error: str | None
    consecutive_failures: int
    down: bool
    alert_id: int | None = None


def split_name(name: str) -> tuple[str, str]:
    """`iconik:prod` -> ("iconik", "prod"); a name without environment gets "-"."""
    vendor, _, environment = name.partition(":")
    return vendor or name, environment or "-"


def health_event(
    name: str, *, down: bool, failures: int = 0, error: str | None = None, severity: Severity = Severity.ERROR
) -> AlertEvent:
    """The alert event for a check going (or staying) down, or recovering."""
    vendor, environment = split_name(name)
    return AlertEvent(
        dedup_key=f"health:{name}"[:255],
        action="trigger" if down else "resolve",
        source=AlertSource.HEALTH.value,
        severity=severity,
        environment=environment[:64],
        system=vendor[:128],
        title=f"{vendor} is not answering in {environment}"[:200],
        summary=(f"{failures} health checks in a row failed. Last error: {error}" if down else "")[:2800],
        labels={"check": name[:255]},
    )


async def _probe(probe: Probe, timeout: float) -> str | None:
    try:
        await asyncio.wait_for(probe(), timeout=timeout)
    except TimeoutError:
        return f"no answer within {timeout:g}s"
    except Exception as exc:  # a probe's failure is data, never a crash of the tick
        text = str(exc) or type(exc).__name__
        return f"{type(exc).__name__}: {text}"[:MAX_ERROR]
    return None


async def _claim_due(service: AlertService, names: list[str], now: datetime, *, force: bool) -> list[str]:
    interval = service.config.health_check.interval
    async with service.sessions() as session, session.begin():
        for name in names:
            await session.execute(
                insert_into(session, HealthCheckRow)
                .values(name=name, consecutive_failures=0, down=False)
                .on_conflict_do_nothing()
            )
        due: list[ColumnElement[bool]] = [HealthCheckRow.name.in_(names)]
        if not force:
            due.append(or_(HealthCheckRow.next_check_at.is_(None), HealthCheckRow.next_check_at <= now))
        claimed = await session.scalars(
            update(HealthCheckRow)
            .where(*due)
            .values(next_check_at=now + interval)
            .returning(HealthCheckRow.name)
        )
        return sorted(claimed.all())


async def _record(
    service: AlertService, session: AsyncSession, name: str, error: str | None
) -> HealthCheckResult:
    config = service.config.health_check
    now = service.clock()
    row = await session.scalar(select(HealthCheckRow).where(HealthCheckRow.name == name).with_for_update())
    assert row is not None
    row.last_checked_at = now
    alert_id = None
    if error is None:
        row.consecutive_failures = 0
        row.last_ok_at = now
        row.last_error = None
        if row.down:
            row.down = False
            result, _ = await service.ingest_in(session, health_event(name, down=False))
            alert_id = result.alert_id
    else:
        row.consecutive_failures += 1
        row.last_error = error
        if row.consecutive_failures >= config.failures_before_down:
            row.down = True
            event = health_event(
                name,
                down=True,
                failures=row.consecutive_failures,
                error=error,
                severity=config.severity,
            )
            result, _ = await service.ingest_in(session, event)
            alert_id = result.alert_id
    return HealthCheckResult(name, error is None, error, row.consecutive_failures, row.down, alert_id)


async def run_health_checks(
    service: AlertService, probes: Mapping[str, Probe], *, force: bool = False
) -> list[HealthCheckResult]:
    """Run the probes that are due (all of them with `force`), concurrently, and record results."""
    if not probes:
        return []
    claimed = await _claim_due(service, sorted(probes), service.clock(), force=force)
    if not claimed:
        return []
    timeout = service.config.health_check.timeout.total_seconds()
    errors = await asyncio.gather(*(_probe(probes[name], timeout) for name in claimed))
    results = []
    for name, error in zip(claimed, errors, strict=True):
        async with service.sessions() as session, session.begin():
            results.append(await _record(service, session, name, error))
    service.wake()
    return results


async def run_due_health_checks(service: AlertService) -> list[HealthCheckResult]:
    return await run_health_checks(service, service.probes)
