"""Media audit: iconik's history of released assets, copied into opsgate's hash-chained audit trail.

Which assets: every succeeded release request (REL-...) stores the iconik asset it released in
`change_requests.result["iconik_asset_id"]`, and its environment says which iconik holds it.
Each history entry (transfers, downloads, approvals, exports...) becomes one audit event:

    action   "media.<operation type>"   e.g. media.download, media.export, media.transfer
    subject  "asset:<iconik asset id>"  what `opsgate audit export --asset <id>` selects
    actor    "iconik:<user id>"         the share's user when the asset was reached by a share link
    occurred_at                         when iconik says it happened
    evidence {environment, iconik_history_id, operation, description, job_id, iconik_user,
              canto_asset, release_ref, credential: {kind, fingerprint}}

The credential is never stored: a share id, or any token- or key-like value iconik returns, is
kept only as its keyed HMAC fingerprint (bot.domain.audit.Fingerprinter), so a reviewer can tell
two accesses used the same credential without learning it. A re-import adds nothing: the
`media_history_imports` row with the unique (asset_id, history_id) is written in the same
transaction as the event.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.blocks.reply import Reply
from bot.blocks.text import escaped
from bot.db.asset_request_models import MediaHistoryImport
from bot.db.audit_log import append_event
from bot.db.models import AuditEvent, AuditHead, ChangeRequestRow
from bot.db.upsert import insert_into
from bot.domain.audit import AuditRecord, Fingerprinter
from bot.domain.policy import Action
from bot.domain.requests import RequestStatus
from connectors.errors import ConnectorError
from connectors.iconik import IconikHistoryEntry

__all__ = [
    "MEDIA_SUBJECT_PREFIX",
    "AssetHistorySource",
    "ImportReport",
    "MediaAudit",
    "ReleasedAsset",
    "media_import_duty",
    "released_assets",
]

log = logging.getLogger("opsgate.media_audit")

MEDIA_SUBJECT_PREFIX = "asset:"
REPLY_EVENTS = 40
# Vendor fields that identify how the caller authenticated; their values are fingerprinted.
_CREDENTIAL_KEY = re.compile(r"(token|secret|password|api[_-]?key|app[_-]?id|key[_-]?id|credential)", re.I)


class AssetHistorySource(Protocol):
    """What the import needs of iconik (connectors.iconik.IconikConnector fits)."""

    def asset_history(self, asset_id: str, *, per_page: int = ...) -> AsyncIterator[IconikHistoryEntry]: ...


@dataclass(frozen=True)
class ReleasedAsset:
    """An iconik asset a succeeded release put there, and the latest release that did."""

    iconik_asset_id: str
    environment: str
    canto_asset: str | None
    release_ref: str


@dataclass
class ImportReport:
    assets: int = 0
    added: int = 0
    failed: list[str] = field(default_factory=list)


async def released_assets(session: AsyncSession) -> list[ReleasedAsset]:
    """Every (iconik asset, environment) of a succeeded release, with its latest release."""
    rows = (
        await session.execute(
            select(ChangeRequestRow.human_id, ChangeRequestRow.environment, ChangeRequestRow.result)
            .where(
                ChangeRequestRow.kind == Action.RELEASE.value,
                ChangeRequestRow.status == RequestStatus.SUCCEEDED.value,
                ChangeRequestRow.human_id.like("REL-%"),
            )
            .order_by(ChangeRequestRow.id)
        )
    ).all()
    found: dict[tuple[str, str], ReleasedAsset] = {}
    for human_id, environment, result in rows:
        iconik_id = (result or {}).get("iconik_asset_id")
        if not isinstance(iconik_id, str) or not iconik_id:
            continue
        canto = (result or {}).get("asset")
        found[(iconik_id, environment)] = ReleasedAsset(
            iconik_id, environment, canto if isinstance(canto, str) else None, human_id
        )
    return list(found.values())


def _aware(moment: datetime | None, default: datetime) -> datetime:
    if moment is None:
        return default
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


class MediaAudit:
    """Imports iconik history into the audit trail and answers `/ops audit asset <id>`."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        iconik: Callable[[str], AssetHistorySource],
        fingerprinter: Fingerprinter,
        clock: Callable[[], datetime],
    ) -> None:
        self._sessions = sessions
        self._iconik = iconik
        self._fingerprinter = fingerprinter
        self._clock = clock

    # ----------------------------------------------------------------- import

    async def import_history(self) -> ImportReport:
        """Import every released asset's new history entries; one asset's failure skips only it."""
        async with self._sessions() as session:
            assets = await released_assets(session)
        report = ImportReport(assets=len(assets))
        for asset in assets:
            try:
                report.added += await self.import_asset(asset)
            except (ConnectorError, LookupError) as exc:  # LookupError: iconik not configured there
                log.warning(
                    "iconik history not imported",
                    extra={
                        "asset": asset.iconik_asset_id,
                        "environment": asset.environment,
                        "error": str(exc),
                    },
                )
                report.failed.append(asset.iconik_asset_id)
        return report

    async def import_asset(self, asset: ReleasedAsset) -> int:
        """Append the asset's not yet imported history entries, oldest first; returns how many."""
        entries = [
            entry async for entry in self._iconik(asset.environment).asset_history(asset.iconik_asset_id)
        ]
        now = self._clock()
        added = 0
        async with self._sessions() as session, session.begin():
            # The audit head first: two importers then queue here instead of deadlocking
            # between a marker row and the head.
            await session.execute(select(AuditHead.id).where(AuditHead.id == 1).with_for_update())
            known = set(
                (
                    await session.scalars(
                        select(MediaHistoryImport.history_id).where(
                            MediaHistoryImport.asset_id == asset.iconik_asset_id
                        )
                    )
                ).all()
            )
            fresh = sorted(
                (entry for entry in entries if entry.id not in known),
                key=lambda entry: (_aware(entry.date_created, now), entry.id),
            )
            for entry in fresh:
                marker = await session.scalar(
                    insert_into(session, MediaHistoryImport)
                    .values(
                        asset_id=asset.iconik_asset_id,
                        history_id=entry.id,
                        environment=asset.environment,
                        imported_at=now,
                    )
                    .on_conflict_do_nothing(index_elements=["asset_id", "history_id"])
                    .returning(MediaHistoryImport.id)
                )
                if marker is None:
                    continue
                event = await append_event(session, self._record(asset, entry, now), self._fingerprinter)
                await session.execute(
                    update(MediaHistoryImport)
                    .where(MediaHistoryImport.id == marker)
                    .values(audit_seq=event.seq)
                )
                added += 1
        return added

    def _record(self, asset: ReleasedAsset, entry: IconikHistoryEntry, now: datetime) -> AuditRecord:
        who = entry.share_user_id or entry.user_id or "unknown"
        evidence: dict[str, Any] = {
            "environment": asset.environment,
            "iconik_history_id": entry.id,
            "iconik_asset_id": asset.iconik_asset_id,
            "operation": entry.operation_type,
            "description": entry.operation_description,
            "job_id": entry.job_id,
            "iconik_user": entry.user_id,
            "share_user": entry.share_user_id,
            "canto_asset": asset.canto_asset,
            "release_ref": asset.release_ref,
            "credential": self._credential(entry),
        }
        return AuditRecord(
            occurred_at=_aware(entry.date_created, now),
            actor=f"iconik:{who}"[:64],
            action=f"media.{entry.operation_type.lower()}"[:64],
            subject=f"{MEDIA_SUBJECT_PREFIX}{asset.iconik_asset_id}",
            reason=entry.operation_description,
            evidence={key: value for key, value in evidence.items() if value is not None},
        )

    def _credential(self, entry: IconikHistoryEntry) -> dict[str, str] | None:
        """The credential the access used, as a fingerprint: a share link, else a token-like field."""
        candidates: list[tuple[str, Any]] = [("share", entry.share_id)]
        candidates += [
            (name, value) for name, value in (entry.model_extra or {}).items() if _CREDENTIAL_KEY.search(name)
        ]
        for kind, value in candidates:
            if isinstance(value, str) and value:
                return {"kind": kind, "fingerprint": self._fingerprinter.fingerprint(value)}
        return None

    # ----------------------------------------------------------------- /ops audit asset

    async def audit_asset(self, asset: str) -> Reply:
        """Who accessed or moved the asset, when, with which credential, in which environment.

        `asset` is an iconik asset id or the Canto asset (`scheme:id` or bare id) a release
        took there. The asset's newest history is imported first; if iconik is unreachable the
        answer says so and shows what was imported before.
        """
        wanted = asset.strip()
        if not wanted:
            return Reply("Which asset? `/ops audit asset <iconik or Canto asset id>`")
        async with self._sessions() as session:
            matches = [
                released
                for released in await released_assets(session)
                if wanted in (released.iconik_asset_id, released.canto_asset)
                or (released.canto_asset or "").endswith(f":{wanted}")
            ]
        stale = []
        for released in matches:
            try:
                await self.import_asset(released)
            except (ConnectorError, LookupError):
                stale.append(released.environment)
        subjects = sorted({f"{MEDIA_SUBJECT_PREFIX}{m.iconik_asset_id}" for m in matches}) or [
            f"{MEDIA_SUBJECT_PREFIX}{wanted}"
        ]
        events = await self._events(subjects)
        return Reply(self._render(wanted, subjects, events, stale))

    async def _events(self, subjects: Sequence[str]) -> list[AuditEvent]:
        async with self._sessions() as session:
            return list(
                (
                    await session.scalars(
                        select(AuditEvent)
                        .where(AuditEvent.subject.in_(subjects), AuditEvent.action.like("media.%"))
                        .order_by(AuditEvent.occurred_at, AuditEvent.seq)
                    )
                ).all()
            )

    @staticmethod
    def _render(
        wanted: str, subjects: Sequence[str], events: Sequence[AuditEvent], stale: Sequence[str]
    ) -> str:
        ids = ", ".join(f"`{escaped(s.removeprefix(MEDIA_SUBJECT_PREFIX), 80)}`" for s in subjects)
        if not events:
            return (
                f"No media history recorded for asset `{escaped(wanted, 80)}`. History is imported from iconik "
                "for assets a release (REL-…) has put there."
            )
        lines = [
            f"*Media audit of asset `{escaped(wanted, 80)}`* (iconik {ids}; {len(events)} events, hash-chained)"
        ]
        if stale:
            lines.append(
                f":warning: iconik ({', '.join(sorted(set(stale)))}) did not answer; newer history may be missing."
            )
        for event in events[-REPLY_EVENTS:]:
            evidence = event.evidence or {}
            credential = evidence.get("credential") or {}
            via = (
                f" via {escaped(str(credential.get('kind')), 40)} `{Fingerprinter.short(str(credential.get('fingerprint')))}`"
                if credential
                else ""
            )
            what = f": {escaped(event.reason, 120)}" if event.reason else ""
            lines.append(
                f"• {event.occurred_at:%Y-%m-%d %H:%M:%S} UTC *{escaped(event.action.removeprefix('media.'), 40)}* "
                f"by `{escaped(event.actor, 64)}` in *{escaped(str(evidence.get('environment', '?')), 64)}*{via}{what} "
                f"`#{event.seq} {event.hash[:10]}`"
            )
        if len(events) > REPLY_EVENTS:
            lines.insert(
                2 if stale else 1,
                f"Newest {REPLY_EVENTS} shown; all of them: `opsgate audit export --asset "
                f"{escaped(subjects[0].removeprefix(MEDIA_SUBJECT_PREFIX), 80)}`",
            )
        return "\n".join(lines)


def media_import_duty(audit: MediaAudit) -> Callable[[], Awaitable[None]]:
    """The scheduled duty: import, log what happened, never raise into the scheduler."""

    async def run() -> None:
        try:
            report = await audit.import_history()
        except Exception:
            log.exception("media history import failed")
            return
        log.info(
            "media history imported",
            extra={"assets": report.assets, "added": report.added, "failed": len(report.failed)},
        )

    return run
