"""Release an approved Canto asset to a partner destination through iconik, and document it.

`precheck` reads the Canto asset and the destination: it must exist, be Approved, not be expired
and carry every field the destination requires. `execute` then runs these steps, recording each
one before its side effect so a resumed run continues where the last one stopped:

    check         the asset is still releasable (first run only)
    iconik_asset  find the iconik asset by external_id "canto:<scheme>:<id>", or create it
    metadata      write the mapped Canto fields into the destination's iconik metadata view
    copy          start ONE copy job to the destination storage (never a second one on resume)
    wait          poll the job to a terminal state
    verify        the file is present in the destination storage
    canto         write the release back to a Canto custom field
    release_log   append a row to the destination's Confluence release-log page (create it if missing)

A failure after the first side effect raises WorkflowFailed whose `partial` says what was done.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from bot.config.destinations import DestinationConfig, ReleaseLogPage
from bot.domain.policy import Action
from bot.domain.requests import ChangeRequest, ChangeSpec
from commands.workflow import (
    ExecutionContext,
    ExecutionResult,
    PrecheckFailed,
    Preview,
    WorkflowFailed,
)
from connectors.canto import CantoApprovalStatus, CantoAsset, CantoAssetRef
from connectors.confluence import Page, PageWrite
from connectors.confluence_storage import Document, StorageFormatError, parse_storage, table
from connectors.errors import ConnectorError, NotFound, RateLimited, Unavailable
from connectors.iconik import (
    IconikAsset,
    IconikAssetUpdate,
    IconikFile,
    IconikFormat,
    IconikJob,
    IconikJobTimeout,
    IconikMetadataValues,
    IconikMetadataView,
    IconikStorage,
    MetadataMode,
)

__all__ = [
    "CANTO_SCHEMES",
    "RELEASE_STEPS",
    "CantoAssets",
    "DestinationConfig",
    "DestinationsConfig",
    "MediaAssets",
    "ReleaseLogPage",
    "ReleaseLogStore",
    "ReleaseWorkflow",
    "ResumeAmbiguous",
    "canto_field_values",
    "connector_failure",
    "effective_approval",
    "external_id_of",
    "fetch_canto_asset",
    "files_in_storage",
    "parse_canto_target",
    "release_log_body",
    "release_logged",
    "release_spec",
    "resolve_storage",
    "resolve_view",
    "start_job_once",
]

# The order Canto schemes are tried in when a target gives only the id.
CANTO_SCHEMES = ("image", "video", "document", "audio", "presentation", "other")
RELEASE_STEPS = ("check", "iconik_asset", "metadata", "copy", "wait", "verify", "canto", "release_log")
STEP_LABELS = {
    "check": "Canto check",
    "iconik_asset": "iconik asset",
    "metadata": "iconik metadata",
    "copy": "copy started",
    "wait": "copy finished",
    "verify": "file verified in the destination storage",
    "canto": "Canto release field",
    "release_log": "release-log row",
}
RELEASE_LOG_HEADER = ("Released at", "Request", "Asset", "Canto id", "Destination", "Partner", "iconik job")
DEFAULT_POLL_INTERVAL = 2.0
DEFAULT_JOB_TIMEOUT = 1800.0
_TARGET = re.compile(r"^(?:(?P<scheme>[a-z]+):)?(?P<id>[A-Za-z0-9_-]+)$")

# --------------------------------------------------------------------------- configuration


# --------------------------------------------------------------------------- what the workflow calls


class CantoAssets(Protocol):
    """The Canto calls releases and archives make (CantoConnector fulfils it)."""

    async def get_asset(self, scheme: str, asset_id: str) -> CantoAsset: ...

    async def update_custom_fields(
        self, refs: Sequence[CantoAssetRef], fields: Mapping[str, str]
    ) -> None: ...


class MediaAssets(Protocol):
    """The iconik calls releases and archives make (IconikConnector fulfils it)."""

    async def find_assets_by_external_id(self, external_id: str) -> list[IconikAsset]: ...

    async def create_asset(self, asset: IconikAssetUpdate) -> IconikAsset: ...

    async def update_asset(self, asset_id: str, changes: IconikAssetUpdate) -> IconikAsset: ...

    async def list_metadata_views(self) -> list[IconikMetadataView]: ...

    async def put_asset_metadata(
        self, asset_id: str, view_id: str, values: Mapping[str, Sequence[Any]], *, mode: MetadataMode = ...
    ) -> IconikMetadataValues: ...

    def list_storages(
        self, *, purpose: str | None = None, status: str | None = None
    ) -> AsyncIterator[IconikStorage]: ...

    def list_files(self, asset_id: str, *, per_page: int = ...) -> AsyncIterator[IconikFile]: ...

    def list_formats(self, asset_id: str, *, per_page: int = ...) -> AsyncIterator[IconikFormat]: ...

    async def copy_to_storage(
        self, storage_id: str, object_ids: Sequence[str], *, format_name: str = ...
    ) -> str: ...

    async def move_to_storage(
        self, storage_id: str, object_ids: Sequence[str], *, format_name: str = ...
    ) -> str: ...

    async def wait_for_job(
        self,
        job_id: str,
        *,
        poll_interval: float = ...,
        timeout: float = ...,  # a polling budget, not a deadline on one await
    ) -> IconikJob: ...


class DestinationsConfig(Protocol):
    """What the workflow reads of the configuration (bot.config.opsgate.OpsgateConfig fits)."""

    @property
    def destinations(self) -> Sequence[DestinationConfig]: ...


class ReleaseLogStore(Protocol):
    """The Confluence calls the release log makes (ConfluenceConnector fulfils it)."""

    async def find_page(self, space_key: str, title: str) -> Page | None: ...

    async def upsert_page(
        self,
        space_key: str,
        title: str,
        body: str,
        *,
        parent_id: str | None = None,
        message: str | None = None,
    ) -> PageWrite: ...


# --------------------------------------------------------------------------- shared pieces


def parse_canto_target(target: str) -> tuple[str | None, str]:
    """Split "scheme:id" (or a bare id) into (scheme or None, id); ValueError if neither."""
    match = _TARGET.match(target.strip())
    if match is None:
        raise ValueError(
            f"{target!r} is not a Canto asset (expected scheme:id, e.g. image:abc123, or the id)"
        )
    return match.group("scheme"), match.group("id")


def external_id_of(asset: CantoAsset | CantoAssetRef) -> str:
    """The iconik external_id that links an iconik asset to its Canto original."""
    return f"canto:{asset.scheme}:{asset.id}"


def canto_field_values(asset: CantoAsset, name: str) -> list[str]:
    """A Canto field's values as text (empty when unset); see DestinationConfig for the names."""
    builtin: dict[str, Any] = {
        "id": asset.id,
        "name": asset.name,
        "scheme": asset.scheme,
        "approvalStatus": asset.approval_status,
        "expirationDate": asset.expiration_date.date().isoformat() if asset.expiration_date else None,
        "owner": asset.owner_name,
    }
    value = asset.additional.get(name)
    if value in (None, ""):
        value = asset.metadata.get(name)
    if value in (None, "") and name in builtin:
        value = builtin[name]
    if value is None:
        return []
    items = value if isinstance(value, list) else [value]
    return [str(item).strip() for item in items if str(item).strip()]


async def fetch_canto_asset(canto: CantoAssets, target: str) -> CantoAsset:
    """The Canto asset named by "scheme:id" or a bare id; NotFound if no scheme has it."""
    scheme, asset_id = parse_canto_target(target)
    last: NotFound | None = None
    for candidate in (scheme,) if scheme else CANTO_SCHEMES:
        try:
            return await canto.get_asset(candidate, asset_id)
        except NotFound as exc:
            last = exc
    assert last is not None
    raise last


def effective_approval(asset: CantoAsset, now: datetime) -> str:
    """Canto's approval status, with an Approved asset past its expiry counted as Expired."""
    status = asset.approval_status
    if status == CantoApprovalStatus.APPROVED and asset.expiration_date and asset.expiration_date <= now:
        return CantoApprovalStatus.EXPIRED
    return status


async def resolve_storage(iconik: MediaAssets, wanted: str, *, purpose: str | None = None) -> IconikStorage:
    """The storage whose id or name is `wanted`; LookupError naming the choices if none is."""
    storages = [storage async for storage in iconik.list_storages(purpose=purpose)]
    for storage in storages:
        if wanted in (storage.id, storage.name):
            return storage
    known = ", ".join(sorted(storage.name for storage in storages)) or "none"
    raise LookupError(f"iconik has no storage {wanted!r} (known: {known})")


async def resolve_view(iconik: MediaAssets, wanted: str) -> IconikMetadataView:
    """The metadata view whose id or name is `wanted`; LookupError naming the choices if none is."""
    views = await iconik.list_metadata_views()
    for view in views:
        if wanted in (view.id, view.name):
            return view
    known = ", ".join(sorted(view.name for view in views)) or "none"
    raise LookupError(f"iconik has no metadata view {wanted!r} (known: {known})")


async def files_in_storage(iconik: MediaAssets, asset_id: str, storage_id: str) -> list[IconikFile]:
    """The asset's files that sit on one storage."""
    return [file async for file in iconik.list_files(asset_id) if file.storage_id == storage_id]


class ResumeAmbiguous(Exception):
    """A previous run recorded that it was starting a job but not the job's id."""


async def start_job_once(
    ctx: ExecutionContext,
    *,
    step: str,
    wait_step: str,
    start: Callable[[], Awaitable[str]],
    landed: Callable[[], Awaitable[bool]],
    state: Mapping[str, Any] | None = None,
) -> str | None:
    """Start a vendor job unless an earlier run did; returns its id, or None if its work is done.

    The job id is recorded right after the job is created. A run that stopped between creating
    and recording leaves `step` recorded without an id: then, unless the work has visibly landed,
    starting again could make a second job, so this raises ResumeAmbiguous instead. `state` is
    recorded with both steps.
    """
    job_id = ctx.state.get("job_id")
    if isinstance(job_id, str) and job_id:
        return job_id
    if ctx.step == step:
        if await landed():
            return None
        raise ResumeAmbiguous()
    await ctx.record_step(step, **(state or {}))
    job_id = await start()
    await ctx.record_step(wait_step, **(state or {}), job_id=job_id)
    return job_id


def connector_failure(
    exc: ConnectorError, *, step: str, what: str, partial: Mapping[str, Any]
) -> WorkflowFailed:
    """A WorkflowFailed for a vendor error: retryable when the vendor was busy or unreachable."""
    return WorkflowFailed(
        f"{what} failed: {exc.vendor} answered {exc.detail or type(exc).__name__}",
        step=step,
        evidence={"vendor": exc.vendor, "status": exc.status, "request_id": exc.request_id},
        retryable=isinstance(exc, Unavailable | RateLimited),
        partial=partial,
    )


def release_spec(asset: str, destination: DestinationConfig) -> ChangeSpec:
    """The change a requester asks for when releasing `asset` ("scheme:id" or id) to a destination."""
    parse_canto_target(asset)
    return ChangeSpec(
        action=Action.RELEASE,
        target=asset.strip(),
        environment=destination.environment,
        parameters={"asset": asset.strip(), "destination": destination.name},
        # One release of an asset to one destination at a time; other destinations may proceed.
        lock_key=f"release:{asset.strip()}->{destination.name}",
    )


# --------------------------------------------------------------------------- the workflow


@dataclass
class _Checked:
    asset: CantoAsset
    approval: str
    mapped: dict[str, list[str]]


class ReleaseWorkflow:
    """Workflow for Action.RELEASE: Canto asset -> iconik destination storage, documented."""

    action = Action.RELEASE

    def __init__(
        self,
        canto_for: Callable[[str], CantoAssets],
        iconik_for: Callable[[str], MediaAssets],
        confluence_for: Callable[[str], ReleaseLogStore],
        config: Sequence[DestinationConfig] | DestinationsConfig,
        *,
        clock: Callable[[], datetime],
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        job_timeout: float = DEFAULT_JOB_TIMEOUT,
    ) -> None:
        """`config` is the OpsgateConfig (its `destinations` are used) or the destinations themselves."""
        destinations = config if isinstance(config, Sequence) else config.destinations
        self._destinations: dict[str, DestinationConfig] = {}
        for destination in destinations:
            if destination.name in self._destinations:
                raise ValueError(f"destination {destination.name!r} is configured twice")
            self._destinations[destination.name] = destination
        self._canto_for = canto_for
        self._iconik_for = iconik_for
        self._confluence_for = confluence_for
        self._clock = clock
        self._poll_interval = poll_interval
        self._job_timeout = job_timeout
        # Releases appending to one log page in this process take turns (Confluence would take
        # the later writer's body on a version conflict and drop the other row).
        self._page_locks: dict[tuple[str, str], asyncio.Lock] = {}

    def destination(self, name: str) -> DestinationConfig:
        """The configured destination called `name`; PrecheckFailed naming the choices if none is."""
        try:
            return self._destinations[name]
        except KeyError:
            known = ", ".join(sorted(self._destinations)) or "none configured"
            raise PrecheckFailed(f"Unknown release destination {name!r} (known: {known}).") from None

    # -- precheck ------------------------------------------------------------------------------

    async def precheck(self, spec: ChangeSpec, *, requester: str) -> Preview:
        """The asset exists, is Approved, not expired and complete; the destination resolves."""
        destination = self.destination(str(spec.parameters.get("destination", "")))
        if spec.environment != destination.environment:
            raise PrecheckFailed(
                f"Destination {destination.name!r} is in {destination.environment!r}, not {spec.environment!r}."
            )
        target = str(spec.parameters.get("asset") or spec.target)
        try:
            checked = await self._check_asset(target, destination)
        except ConnectorError as exc:
            raise PrecheckFailed(f"Canto could not be asked about {target}: {exc.detail}") from exc
        except _NotReleasable as exc:
            raise PrecheckFailed(str(exc)) from None
        warnings: list[str] = []
        try:
            iconik = self._iconik_for(destination.environment)
            storage = await resolve_storage(iconik, destination.iconik_storage)
            if destination.metadata_view:
                self._check_mapping(await resolve_view(iconik, destination.metadata_view), checked.mapped)
            existing = await iconik.find_assets_by_external_id(external_id_of(checked.asset))
        except LookupError as exc:
            raise PrecheckFailed(f"Destination {destination.name!r} is misconfigured: {exc}.") from None
        except ConnectorError as exc:
            raise PrecheckFailed(
                f"iconik could not be asked about {destination.name!r}: {exc.detail}"
            ) from exc
        if storage.status and storage.status != "ACTIVE":
            reason = f": {storage.status_message}" if storage.status_message else ""
            warnings.append(f"iconik storage {storage.name!r} is {storage.status}{reason}")
        if not existing:
            warnings.append(
                f"{checked.asset.name} is not in iconik yet: an asset will be created, and the copy "
                "needs its original ingested first"
            )
        asset = checked.asset
        expires = asset.expiration_date.isoformat() if asset.expiration_date else "never"
        return Preview(
            summary=f"Release {asset.name} to {destination.partner or destination.name} ({destination.environment})",
            details={
                "asset": f"{asset.scheme}:{asset.id}",
                "asset_name": asset.name,
                "approval": checked.approval,
                "expires_at": expires,
                "destination": destination.name,
                "partner": destination.partner,
                "storage": storage.name,
                "iconik_asset": existing[0].id if existing else None,
                "metadata": checked.mapped,
                "warnings": warnings,
            },
        )

    async def _check_asset(self, target: str, destination: DestinationConfig) -> _Checked:
        try:
            canto = self._canto_for(destination.environment)
            asset = await fetch_canto_asset(canto, target)
        except NotFound:
            raise _NotReleasable(f"Canto has no asset {target}.") from None
        except (ValueError, LookupError) as exc:
            # A malformed target, or no Canto configured for the environment (the registry says which).
            raise _NotReleasable(f"{exc}.".replace("..", ".")) from None
        approval = effective_approval(asset, self._clock())
        if approval == CantoApprovalStatus.EXPIRED:
            when = f" on {asset.expiration_date:%Y-%m-%d}" if asset.expiration_date else ""
            raise _NotReleasable(f"{asset.name} expired{when}; expired assets cannot be released.")
        if approval != CantoApprovalStatus.APPROVED:
            raise _NotReleasable(
                f"{asset.name} is {approval or 'not approved'} in Canto; only Approved assets can be released."
            )
        missing = [name for name in destination.required_metadata if not canto_field_values(asset, name)]
        if destination.require_expiry and asset.expiration_date is None:
            missing.append("expiration date")
        if missing:
            raise _NotReleasable(
                f"{asset.name} is missing metadata {destination.name!r} requires: {', '.join(missing)}."
            )
        return _Checked(asset, approval, _mapped_values(asset, destination))

    @staticmethod
    def _check_mapping(view: IconikMetadataView, mapped: Mapping[str, list[str]]) -> None:
        fields = {item.name: item for item in view.view_fields}
        for name, values in mapped.items():
            if name not in fields:
                raise LookupError(f"metadata view {view.name!r} has no field {name!r}")
            options = {option.value for option in fields[name].options}
            refused = [value for value in values if options and value not in options]
            if refused:
                raise LookupError(
                    f"iconik field {name!r} does not accept {', '.join(map(repr, refused))} "
                    f"(allowed: {', '.join(sorted(options))})"
                )

    # -- execute -------------------------------------------------------------------------------

    async def execute(self, request: ChangeRequest, ctx: ExecutionContext) -> ExecutionResult:
        """Run (or resume) the release steps; WorkflowFailed with `partial` if one fails."""
        try:
            destination = self.destination(str(request.parameters.get("destination", "")))
        except PrecheckFailed as exc:
            raise WorkflowFailed(str(exc), step="check") from None
        try:
            run = _ReleaseRun(self, request, ctx, destination)
        except LookupError as exc:
            raise WorkflowFailed(f"{exc}.", step="check") from None
        return await run.run()

    async def _append_release_log(
        self, store: ReleaseLogStore, page: ReleaseLogPage, row: Sequence[str], request_ref: str
    ) -> Page:
        lock = self._page_locks.setdefault((page.space, page.title), asyncio.Lock())
        async with lock:
            existing = await store.find_page(page.space, page.title)
            if existing is not None and release_logged(existing.body, request_ref):
                return existing  # a resumed run that had already written its row
            body = release_log_body(page.title, existing.body if existing else None, row)
            write = await store.upsert_page(
                page.space, page.title, body, message=f"{request_ref}: release logged"
            )
            return write.page


class _NotReleasable(Exception):
    """The asset may not be released as it is; the message says why."""


class _ReleaseRun:
    """One execution of one release request; `done` is what succeeded, kept in the job state."""

    def __init__(
        self,
        workflow: ReleaseWorkflow,
        request: ChangeRequest,
        ctx: ExecutionContext,
        destination: DestinationConfig,
    ) -> None:
        self.workflow = workflow
        self.request = request
        self.ctx = ctx
        self.destination = destination
        env = destination.environment
        self.canto = workflow._canto_for(env)
        self.iconik = workflow._iconik_for(env)
        self.done: dict[str, Any] = dict(ctx.state.get("done") or {})
        self.evidence: dict[str, Any] = {}
        self.step = "check"

    def _resumed_past(self, step: str) -> bool:
        recorded = self.ctx.step
        return recorded in RELEASE_STEPS and RELEASE_STEPS.index(recorded) > RELEASE_STEPS.index(step)

    async def _record(self, step: str, **state: Any) -> None:
        """Record `step` as started, unless a resumed run is redoing a step before the recorded one.

        The recorded step only moves forward: redoing an idempotent earlier step on resume must
        not hide that a later one (the copy) had been started.
        """
        self.step = step
        recorded = self.ctx.step
        if recorded in RELEASE_STEPS and RELEASE_STEPS.index(recorded) > RELEASE_STEPS.index(step):
            if state:
                await self.ctx.record_step(recorded, done=dict(self.done), **state)
            return
        await self.ctx.record_step(step, done=dict(self.done), **state)

    def _planned(self) -> list[str]:
        skipped = {"check"}
        if not self.destination.metadata_view or not (
            self.destination.field_mapping or self.destination.release_values
        ):
            skipped.add("metadata")
        if not self.destination.canto_release_field:
            skipped.add("canto")
        if self.destination.release_log_page is None:
            skipped.add("release_log")
        return [step for step in RELEASE_STEPS if step not in skipped]

    def _failed(self, reason: str, *, retryable: bool = False, **evidence: Any) -> WorkflowFailed:
        done = [STEP_LABELS[step] for step in RELEASE_STEPS if step in self.done]
        remaining = [STEP_LABELS[step] for step in self._planned() if step not in self.done]
        summary = f"{reason} Done: {', '.join(done) or 'nothing'}. Not done: {', '.join(remaining)}."
        return WorkflowFailed(
            summary,
            step=self.step,
            evidence={**self.evidence, **evidence},
            retryable=retryable,
            partial=self.done,
        )

    async def run(self) -> ExecutionResult:
        try:
            return await self._run()
        except ConnectorError as exc:
            failure = connector_failure(exc, step=self.step, what=f"The {self.step} step", partial=self.done)
            raise self._failed(failure.reason + ".", retryable=failure.retryable, **failure.evidence) from exc

    async def _run(self) -> ExecutionResult:
        progress = self.ctx.progress
        target = str(self.request.parameters.get("asset") or self.request.target)
        # -- check: on the first run only; a resumed release was releasable when it started
        if not self._resumed_past("check"):
            await self._record("check")
            try:
                checked = await self.workflow._check_asset(target, self.destination)
            except _NotReleasable as exc:
                raise WorkflowFailed(str(exc), step="check") from None
            asset, mapped = checked.asset, checked.mapped
            await progress.step("check", f"{asset.name} is {checked.approval}", ok=True)
        else:
            asset = await fetch_canto_asset(self.canto, target)
            mapped = _mapped_values(asset, self.destination)
        self.evidence.update(canto_asset=f"{asset.scheme}:{asset.id}", asset_name=asset.name)

        # -- iconik asset: found by external_id, created when missing (a resumed search finds it)
        iconik_id = self.ctx.state.get("iconik_asset_id")
        if not isinstance(iconik_id, str) or not iconik_id:
            await self._record("iconik_asset", released_at=self._released_at().isoformat())
            iconik_id = await self._iconik_asset(asset)
            self.done["iconik_asset"] = iconik_id
            await self._record("metadata", iconik_asset_id=iconik_id)
            await progress.step("iconik_asset", f"iconik asset {iconik_id}", ok=True)
        self.evidence["iconik_asset_id"] = iconik_id

        # -- metadata: overwrite mode, so writing again on resume converges
        if "metadata" not in self.done and (mapped and self.destination.metadata_view):
            if self.ctx.step == "metadata":
                self.step = "metadata"  # recorded with the iconik asset id just before
            else:
                await self._record("metadata")
            view = await self._view()
            await self.iconik.put_asset_metadata(iconik_id, view.id, mapped, mode="overwrite")
            self.done["metadata"] = {name: list(values) for name, values in mapped.items()}
            await progress.step("metadata", f"{len(mapped)} field(s) set in {view.name}", ok=True)

        # -- copy, wait: one job only
        storage = await self._storage()
        self.evidence["storage"] = storage.name
        if "copy" not in self.done:
            job_id = await self._start_copy(iconik_id, storage)
            self.done["copy"] = job_id or "already in storage"
            if job_id is not None:
                await progress.step("copy", f"copy job {job_id} to {storage.name}", ok=None)
        job_id = self.ctx.state.get("job_id")
        if isinstance(job_id, str) and "wait" not in self.done:
            self.step = "wait"
            job = await self._wait(job_id)
            self.done["wait"] = job.status
            self.evidence.update(job_id=job.id, job_status=job.status)
            await progress.step("wait", f"job {job.id} {job.status}", ok=True)

        # -- verify: the file is where the partner will pick it up
        await self._record("verify")
        files = await files_in_storage(self.iconik, iconik_id, storage.id)
        if not files:
            raise self._failed(
                f"iconik reports the copy done, but no file of the asset is on {storage.name}."
            )
        self.done["verify"] = files[0].id
        self.evidence["file"] = files[0].name or files[0].id
        await progress.step("verify", f"{files[0].name or files[0].id} is on {storage.name}", ok=True)

        # -- canto: the release, written back where the asset's owners look
        released_at = self._released_at()
        if self.destination.canto_release_field and "canto" not in self.done:
            await self._record("canto")
            value = f"Released to {self.destination.partner or self.destination.name} on {released_at:%Y-%m-%d} ({self.request.human_id})"
            await self.canto.update_custom_fields([asset.ref], {self.destination.canto_release_field: value})
            self.done["canto"] = value
            await progress.step("canto", f"{self.destination.canto_release_field}: {value}", ok=True)

        # -- release log
        links: dict[str, str] = {}
        page_ref = self.destination.release_log_page
        if page_ref is not None and "release_log" not in self.done:
            await self._record("release_log")
            row = (
                f"{released_at:%Y-%m-%d %H:%M} UTC",
                self.request.human_id,
                asset.name,
                f"{asset.scheme}:{asset.id}",
                self.destination.name,
                self.destination.partner,
                str(self.ctx.state.get("job_id") or "-"),
            )
            store = self.workflow._confluence_for(self.destination.environment)
            page = await self.workflow._append_release_log(store, page_ref, row, self.request.human_id)
            self.done["release_log"] = page.id
            if page.web_url:
                links["Release log"] = page.web_url
            await progress.step("release_log", f"row added to {page_ref.title}", ok=True)

        result = {
            "asset": f"{asset.scheme}:{asset.id}",
            "asset_name": asset.name,
            "destination": self.destination.name,
            "iconik_asset_id": iconik_id,
            "storage": storage.name,
            "job_id": self.ctx.state.get("job_id"),
            "file_id": self.done.get("verify"),
            "canto_field": self.done.get("canto"),
            "release_log_page": self.done.get("release_log"),
        }
        return ExecutionResult(result=result, evidence=self.evidence, links=links)

    def _released_at(self) -> datetime:
        stamp = self.ctx.state.get("released_at")
        if isinstance(stamp, str):
            return datetime.fromisoformat(stamp)
        return self.workflow._clock()

    async def _iconik_asset(self, asset: CantoAsset) -> str:
        found = await self.iconik.find_assets_by_external_id(external_id_of(asset))
        link = asset.url.detail
        if found:
            current = found[0]
            if len(found) > 1:
                self.evidence["iconik_duplicates"] = [item.id for item in found[1:]]
            if link and current.external_link != link:
                await self.iconik.update_asset(current.id, IconikAssetUpdate(external_link=link))
            return current.id
        created = await self.iconik.create_asset(
            IconikAssetUpdate(title=asset.name, external_id=external_id_of(asset), external_link=link)
        )
        self.evidence["iconik_asset_created"] = True
        return created.id

    async def _view(self) -> IconikMetadataView:
        assert self.destination.metadata_view is not None
        try:
            return await resolve_view(self.iconik, self.destination.metadata_view)
        except LookupError as exc:
            raise self._failed(f"{exc}.") from None

    async def _storage(self) -> IconikStorage:
        try:
            return await resolve_storage(self.iconik, self.destination.iconik_storage)
        except LookupError as exc:
            raise self._failed(f"{exc}.") from None

    async def _start_copy(self, iconik_id: str, storage: IconikStorage) -> str | None:
        format_name = self.destination.format_name
        self.step = "copy"
        if not self.ctx.state.get("job_id") and self.ctx.step != "copy":
            formats = [fmt.name async for fmt in self.iconik.list_formats(iconik_id)]
            if format_name not in formats:
                raise self._failed(
                    f"iconik holds no {format_name} file for this asset yet, so there is nothing to copy "
                    "(ingest the original from Canto first)."
                )

        async def start() -> str:
            return await self.iconik.copy_to_storage(storage.id, [iconik_id], format_name=format_name)

        async def landed() -> bool:
            return bool(await files_in_storage(self.iconik, iconik_id, storage.id))

        try:
            return await start_job_once(
                self.ctx,
                step="copy",
                wait_step="wait",
                start=start,
                landed=landed,
                state={"done": dict(self.done)},
            )
        except ResumeAmbiguous:
            raise self._failed(
                f"An earlier run was starting the copy to {storage.name} when it stopped, and whether "
                f"iconik created the job is unknown; check iconik's jobs for asset {iconik_id} before "
                "releasing again."
            ) from None

    async def _wait(self, job_id: str) -> IconikJob:
        try:
            job = await self.iconik.wait_for_job(
                job_id, poll_interval=self.workflow._poll_interval, timeout=self.workflow._job_timeout
            )
        except IconikJobTimeout as exc:
            raise self._failed(
                f"iconik job {job_id} was still {exc.job.status} after {exc.waited:.0f}s.", retryable=True
            ) from None
        if not job.succeeded:
            detail = f": {job.error_message or job.message}" if (job.error_message or job.message) else ""
            raise self._failed(
                f"iconik job {job_id} ended {job.status}{detail}.", job_id=job_id, job_status=job.status
            )
        return job


def _mapped_values(asset: CantoAsset, destination: DestinationConfig) -> dict[str, list[str]]:
    mapped = {
        iconik_field: values
        for canto_name, iconik_field in destination.field_mapping.items()
        if (values := canto_field_values(asset, canto_name))
    }
    for iconik_field, values in destination.release_values.items():
        mapped[iconik_field] = list(values)
    return mapped


# --------------------------------------------------------------------------- the release-log page


def release_logged(body: str, request_ref: str) -> bool:
    """Whether the page already has a row for this request (a resumed run wrote it)."""
    try:
        root = parse_storage(body)
    except StorageFormatError:
        return False
    return any("".join(cell.itertext()).strip() == request_ref for cell in root.iter("td"))


def _row_xml(row: Sequence[str]) -> str:
    # The builder renders whole tables only: render one, keep the body row it produced.
    rendered = str(table(list(RELEASE_LOG_HEADER), [list(row)]))
    return rendered[rendered.index("</tr>") + len("</tr>") : rendered.rindex("</tbody>")]


def release_log_body(title: str, current: str | None, row: Sequence[str]) -> str:
    """The page body with `row` appended to its (last) table; a new page when `current` is None."""
    if current is None:
        return (
            Document()
            .paragraph(f"{title}: every asset opsgate released, one row per release, newest last.")
            .table(list(RELEASE_LOG_HEADER), [list(row)])
            .render()
        )
    end = current.rfind("</tbody>")
    if end != -1:
        candidate = current[:end] + _row_xml(row) + current[end:]
        try:
            parse_storage(candidate)
        except StorageFormatError:
            pass
        else:
            return candidate
    # No table we can extend (someone restructured the page): start a new one below.
    return current + str(table(list(RELEASE_LOG_HEADER), [list(row)]))
