"""End of life for released assets: find what expired or is about to, and archive it in iconik.

`sweep_expiring_assets` asks Canto for Approved and Expired assets and sorts them into expired
and expiring-within-N-days, with their owners; `archive_specs` turns the expired ones into
ARCHIVE change requests. `ArchiveWorkflow` carries out an approved archive, each step recorded
before its side effect so a resumed run continues where the last one stopped:

    locate    the Canto asset and its iconik twin (external_id "canto:<scheme>:<id>")
    metadata  write the configured archive values (e.g. release_status = withdrawn)
    archive   move the original to the ARCHIVE storage (ONE job, never a second on resume),
              or set the asset's archive_status, as configured
    wait      poll the move job to a terminal state
    verify    the file is on the archive storage / the asset reads ARCHIVED
    canto     write the archive back to a Canto custom field
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from bot.config.archive import ArchiveSettings
from bot.domain.policy import Action
from bot.domain.requests import ChangeRequest, ChangeSpec
from commands.release import (
    CantoAssets,
    MediaAssets,
    ResumeAmbiguous,
    effective_approval,
    external_id_of,
    fetch_canto_asset,
    files_in_storage,
    resolve_storage,
    resolve_view,
    start_job_once,
)
from commands.workflow import ExecutionContext, ExecutionResult, PrecheckFailed, Preview, WorkflowFailed
from connectors.canto import CantoApprovalStatus, CantoAsset
from connectors.errors import ConnectorError, NotFound, RateLimited, Unavailable
from connectors.iconik import IconikAsset, IconikAssetUpdate, IconikJobTimeout, IconikStorage

__all__ = [
    "ARCHIVE_STEPS",
    "ArchiveSettings",
    "ArchiveWorkflow",
    "CantoSearch",
    "ExpiringAsset",
    "SweepResult",
    "archive_specs",
    "sweep_expiring_assets",
]

ARCHIVE_STEPS = ("locate", "metadata", "archive", "wait", "verify", "canto")
_LABELS = {
    "locate": "assets located",
    "metadata": "iconik metadata",
    "archive": "archive started",
    "wait": "archive finished",
    "verify": "archive verified",
    "canto": "Canto archive field",
}
DEFAULT_POLL_INTERVAL = 2.0
DEFAULT_JOB_TIMEOUT = 3600.0


class CantoSearch(Protocol):
    """The Canto search the sweep makes (CantoConnector fulfils it)."""

    def search(
        self, keyword: str = "", *, scheme: str | Sequence[str] | None = None, approval: str | None = None
    ) -> AsyncIterator[CantoAsset]: ...


# --------------------------------------------------------------------------- the sweep


@dataclass(frozen=True)
class ExpiringAsset:
    """An asset at or near the end of its usage rights."""

    ref: str  # "scheme:id"
    name: str
    status: str  # Canto's approval status as judged at the sweep ("Expired" once past expiry)
    expires_at: datetime | None
    owner: str | None

    def days_left(self, now: datetime) -> int | None:
        """Whole days until expiry (negative once past), None without an expiry date."""
        if self.expires_at is None:
            return None
        return (self.expires_at - now) // timedelta(days=1)


@dataclass(frozen=True)
class SweepResult:
    """Expired assets and those expiring within `within_days` of `checked_at`, soonest first."""

    checked_at: datetime
    within_days: int
    expired: tuple[ExpiringAsset, ...]
    expiring: tuple[ExpiringAsset, ...]

    def by_owner(self) -> dict[str | None, list[ExpiringAsset]]:
        """Both lists grouped by owner, to tell each owner about their own assets."""
        grouped: dict[str | None, list[ExpiringAsset]] = {}
        for asset in (*self.expired, *self.expiring):
            grouped.setdefault(asset.owner, []).append(asset)
        return grouped


async def sweep_expiring_assets(canto: CantoSearch, *, within_days: int, now: datetime) -> SweepResult:
    """Every Approved or Expired Canto asset that has expired or expires within `within_days`."""
    if within_days < 0:
        raise ValueError("within_days must be >= 0")
    horizon = now + timedelta(days=within_days)
    seen: set[str] = set()
    expired: list[ExpiringAsset] = []
    expiring: list[ExpiringAsset] = []
    # Canto may flip an asset to Expired late, so both states are asked for and judged here.
    for approval in (CantoApprovalStatus.EXPIRED, CantoApprovalStatus.APPROVED):
        async for asset in canto.search(approval=approval):
            ref = f"{asset.scheme}:{asset.id}"
            if ref in seen:
                continue
            seen.add(ref)
            status = effective_approval(asset, now)
            item = ExpiringAsset(ref, asset.name, status, asset.expiration_date, asset.owner_name)
            if status == CantoApprovalStatus.EXPIRED:
                expired.append(item)
            elif (
                status == CantoApprovalStatus.APPROVED
                and asset.expiration_date is not None
                and asset.expiration_date <= horizon
            ):
                expiring.append(item)
    return SweepResult(
        checked_at=now,
        within_days=within_days,
        expired=tuple(sorted(expired, key=_sort_key_aware)),
        expiring=tuple(sorted(expiring, key=_sort_key_aware)),
    )


def _sort_key_aware(asset: ExpiringAsset) -> tuple[int, float, str]:
    # Assets without a date (Expired by hand) go last; the rest soonest first.
    if asset.expires_at is None:
        return (1, 0.0, asset.name)
    return (0, asset.expires_at.timestamp(), asset.name)


def archive_specs(result: SweepResult, config: ArchiveSettings) -> list[ChangeSpec]:
    """One ARCHIVE change per expired asset of the sweep (expiring ones are only announced)."""
    specs = []
    for asset in result.expired:
        parameters: dict[str, Any] = {"asset": asset.ref, "reason": "expired"}
        if asset.expires_at is not None:
            parameters["expired_at"] = asset.expires_at.isoformat()
        specs.append(
            ChangeSpec(
                action=Action.ARCHIVE,
                target=asset.ref,
                environment=config.environment,
                parameters=parameters,
                lock_key=f"archive:{asset.ref}@{config.environment}",
            )
        )
    return specs


# --------------------------------------------------------------------------- the archive workflow


class ArchiveWorkflow:
    """Workflow for Action.ARCHIVE: take a Canto asset's iconik twin out of circulation."""

    action = Action.ARCHIVE

    def __init__(
        self,
        canto_for: Callable[[str], CantoAssets],
        iconik_for: Callable[[str], MediaAssets],
        settings: ArchiveSettings,
        *,
        clock: Callable[[], datetime],
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        job_timeout: float = DEFAULT_JOB_TIMEOUT,
    ) -> None:
        self._canto_for = canto_for
        self._iconik_for = iconik_for
        self.settings = settings
        self._clock = clock
        self._poll_interval = poll_interval
        self._job_timeout = job_timeout

    async def precheck(self, spec: ChangeSpec, *, requester: str) -> Preview:
        """The asset exists in Canto and in iconik, is not archived yet, and the storage resolves."""
        target = str(spec.parameters.get("asset") or spec.target)
        try:
            asset = await fetch_canto_asset(self._canto_for(spec.environment), target)
        except NotFound:
            raise PrecheckFailed(f"Canto has no asset {target}.") from None
        except (ValueError, LookupError) as exc:
            raise PrecheckFailed(str(exc)) from None
        except ConnectorError as exc:
            raise PrecheckFailed(f"Canto could not be asked about {target}: {exc.detail}") from exc
        try:
            iconik = self._iconik_for(spec.environment)
            twins = await iconik.find_assets_by_external_id(external_id_of(asset))
            storage = (
                await self._archive_storage(iconik) if self.settings.method == "archive_storage" else None
            )
        except LookupError as exc:
            raise PrecheckFailed(f"Archiving is misconfigured: {exc}.") from None
        except ConnectorError as exc:
            raise PrecheckFailed(f"iconik could not be asked about {asset.name}: {exc.detail}") from exc
        if not twins:
            raise PrecheckFailed(f"{asset.name} is not in iconik: there is nothing to archive.")
        twin = twins[0]
        if twin.archive_status == "ARCHIVED":
            raise PrecheckFailed(f"{asset.name} is already archived in iconik.")
        status = effective_approval(asset, self._clock())
        warnings = [] if status == CantoApprovalStatus.EXPIRED else [f"{asset.name} is {status}, not expired"]
        return Preview(
            summary=f"Archive {asset.name} in iconik ({spec.environment})",
            details={
                "asset": f"{asset.scheme}:{asset.id}",
                "asset_name": asset.name,
                "approval": status,
                "expires_at": asset.expiration_date.isoformat() if asset.expiration_date else "never",
                "owner": asset.owner_name,
                "iconik_asset": twin.id,
                "method": self.settings.method,
                "storage": storage.name if storage else None,
                "warnings": warnings,
            },
        )

    async def _archive_storage(self, iconik: MediaAssets) -> IconikStorage:
        if self.settings.iconik_archive_storage:
            return await resolve_storage(iconik, self.settings.iconik_archive_storage)
        async for storage in iconik.list_storages(purpose="ARCHIVE"):
            if storage.status in (None, "ACTIVE"):
                return storage
        raise LookupError("iconik has no active storage with purpose ARCHIVE")

    async def execute(self, request: ChangeRequest, ctx: ExecutionContext) -> ExecutionResult:
        """Run (or resume) the archive steps; WorkflowFailed with `partial` if one fails."""
        try:
            run = _ArchiveRun(self, request, ctx)
        except LookupError as exc:
            raise WorkflowFailed(f"{exc}.", step="locate") from None
        try:
            return await run.run()
        except ConnectorError as exc:
            raise run.failed(
                f"The {run.step} step failed: {exc.vendor} answered {exc.detail or type(exc).__name__}.",
                retryable=isinstance(exc, Unavailable | RateLimited),
                vendor=exc.vendor,
                status=exc.status,
                request_id=exc.request_id,
            ) from exc


class _ArchiveRun:
    def __init__(self, workflow: ArchiveWorkflow, request: ChangeRequest, ctx: ExecutionContext) -> None:
        self.workflow = workflow
        self.settings = workflow.settings
        self.request = request
        self.ctx = ctx
        self.canto = workflow._canto_for(request.environment)
        self.iconik = workflow._iconik_for(request.environment)
        self.done: dict[str, Any] = dict(ctx.state.get("done") or {})
        self.evidence: dict[str, Any] = {}
        self.step = "locate"

    async def _record(self, step: str, **state: Any) -> None:
        # The recorded step only moves forward (see the release workflow's _record).
        self.step = step
        recorded = self.ctx.step
        if recorded in ARCHIVE_STEPS and ARCHIVE_STEPS.index(recorded) > ARCHIVE_STEPS.index(step):
            if state:
                await self.ctx.record_step(recorded, done=dict(self.done), **state)
            return
        await self.ctx.record_step(step, done=dict(self.done), **state)

    def _planned(self) -> list[str]:
        skipped = set()
        if not (self.settings.metadata_view and self.settings.archive_values):
            skipped.add("metadata")
        if self.settings.method == "archive_status":
            skipped.add("wait")
        if not self.settings.canto_archive_field:
            skipped.add("canto")
        return [step for step in ARCHIVE_STEPS if step not in skipped]

    def failed(self, reason: str, *, retryable: bool = False, **evidence: Any) -> WorkflowFailed:
        done = [_LABELS[step] for step in ARCHIVE_STEPS if step in self.done]
        remaining = [_LABELS[step] for step in self._planned() if step not in self.done]
        return WorkflowFailed(
            f"{reason} Done: {', '.join(done) or 'nothing'}. Not done: {', '.join(remaining)}.",
            step=self.step,
            evidence={**self.evidence, **evidence},
            retryable=retryable,
            partial=self.done,
        )

    async def run(self) -> ExecutionResult:
        progress = self.ctx.progress
        target = str(self.request.parameters.get("asset") or self.request.target)
        if "locate" not in self.done:
            await self._record("locate")
        try:
            asset = await fetch_canto_asset(self.canto, target)
        except NotFound:
            raise self.failed(f"Canto has no asset {target} any more.") from None
        twin_id = self.ctx.state.get("iconik_asset_id")
        if not isinstance(twin_id, str) or not twin_id:
            twins = await self.iconik.find_assets_by_external_id(external_id_of(asset))
            if not twins:
                raise self.failed(f"{asset.name} is not in iconik: there is nothing to archive.")
            twin_id = twins[0].id
            self.done["locate"] = twin_id
            await self._record(
                "metadata", iconik_asset_id=twin_id, archived_at=self.workflow._clock().isoformat()
            )
            await progress.step("locate", f"{asset.name} is iconik asset {twin_id}", ok=True)
        self.evidence.update(canto_asset=f"{asset.scheme}:{asset.id}", iconik_asset_id=twin_id)

        if "metadata" in self._planned() and "metadata" not in self.done:
            if self.ctx.step != "metadata":
                await self._record("metadata")
            self.step = "metadata"
            assert self.settings.metadata_view is not None
            try:
                view = await resolve_view(self.iconik, self.settings.metadata_view)
            except LookupError as exc:
                raise self.failed(f"{exc}.") from None
            await self.iconik.put_asset_metadata(
                twin_id, view.id, self.settings.archive_values, mode="overwrite"
            )
            self.done["metadata"] = dict(self.settings.archive_values)
            await progress.step("metadata", f"{len(self.settings.archive_values)} field(s) set", ok=True)

        if self.settings.method == "archive_storage":
            await self._move_to_archive(twin_id)
        elif "verify" not in self.done:
            await self._record("archive")
            updated: IconikAsset = await self.iconik.update_asset(
                twin_id, IconikAssetUpdate(archive_status="ARCHIVED")
            )
            self.done["archive"] = "archive_status"
            self.step = "verify"
            if updated.archive_status != "ARCHIVED":
                raise self.failed(f"iconik kept archive_status {updated.archive_status!r} for {twin_id}.")
            self.done["verify"] = "ARCHIVED"
            await progress.step("archive", f"iconik asset {twin_id} marked ARCHIVED", ok=True)

        if self.settings.canto_archive_field and "canto" not in self.done:
            await self._record("canto")
            stamp = self.ctx.state.get("archived_at")
            when = datetime.fromisoformat(stamp) if isinstance(stamp, str) else self.workflow._clock()
            value = f"Archived in iconik on {when:%Y-%m-%d} ({self.request.human_id})"
            await self.canto.update_custom_fields([asset.ref], {self.settings.canto_archive_field: value})
            self.done["canto"] = value
            await progress.step("canto", f"{self.settings.canto_archive_field}: {value}", ok=True)

        result = {
            "asset": f"{asset.scheme}:{asset.id}",
            "asset_name": asset.name,
            "iconik_asset_id": twin_id,
            "method": self.settings.method,
            "job_id": self.ctx.state.get("job_id"),
            "canto_field": self.done.get("canto"),
        }
        return ExecutionResult(result=result, evidence=self.evidence)

    async def _move_to_archive(self, twin_id: str) -> None:
        progress = self.ctx.progress
        self.step = "archive"
        try:
            storage = await self.workflow._archive_storage(self.iconik)
        except LookupError as exc:
            raise self.failed(f"{exc}.") from None
        self.evidence["storage"] = storage.name

        async def start() -> str:
            return await self.iconik.move_to_storage(
                storage.id, [twin_id], format_name=self.settings.format_name
            )

        async def landed() -> bool:
            return bool(await files_in_storage(self.iconik, twin_id, storage.id))

        if "archive" not in self.done:
            try:
                job_id = await start_job_once(
                    self.ctx,
                    step="archive",
                    wait_step="wait",
                    start=start,
                    landed=landed,
                    state={"done": dict(self.done)},
                )
            except ResumeAmbiguous:
                raise self.failed(
                    f"An earlier run was starting the move to {storage.name} when it stopped, and whether "
                    f"iconik created the job is unknown; check iconik's jobs for asset {twin_id}."
                ) from None
            self.done["archive"] = job_id or "already in storage"
            if job_id is not None:
                await progress.step("archive", f"move job {job_id} to {storage.name}", ok=None)
        job_id = self.ctx.state.get("job_id")
        if isinstance(job_id, str) and "wait" not in self.done:
            self.step = "wait"
            try:
                job = await self.iconik.wait_for_job(
                    job_id, poll_interval=self.workflow._poll_interval, timeout=self.workflow._job_timeout
                )
            except IconikJobTimeout as exc:
                raise self.failed(
                    f"iconik job {job_id} was still {exc.job.status} after {exc.waited:.0f}s.", retryable=True
                ) from None
            if not job.succeeded:
                detail = f": {job.error_message}" if job.error_message else ""
                raise self.failed(f"iconik job {job_id} ended {job.status}{detail}.", job_id=job_id)
            self.done["wait"] = job.status
            self.evidence.update(job_id=job_id, job_status=job.status)
        if "verify" not in self.done:
            await self._record("verify")
            if not await files_in_storage(self.iconik, twin_id, storage.id):
                raise self.failed(
                    f"iconik reports the move done, but no file of the asset is on {storage.name}."
                )
            self.done["verify"] = storage.name
            await progress.step("verify", f"the original is on {storage.name}", ok=True)
