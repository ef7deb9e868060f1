"""iconik connector: assets, metadata, files and storages, transfer jobs, approvals, collections, webhooks.

Built to iconik's published OpenAPI specs (assets, files, jobs, metadata, notifications). Every
call carries the `App-ID` and `Auth-Token` headers; lists are followed through their relative
`next_url` and exposed as async iterators; errors arrive as `{"errors": [...]}` or
`{"errors": {"field": "message"}}` and become the typed errors of `connectors.errors`.

    async with IconikConnector(settings) as iconik:
        job_id = await iconik.copy_to_storage(storage_id, [asset_id])
        job = await iconik.wait_for_job(job_id, poll_interval=2, timeout=600)

Putting a file into iconik (`upload_original`) walks the files API step by step (asset, format,
file set, file, upload, close, ready); a failing step raises `IconikUploadFailed` naming the step
and carrying what the earlier steps created, so the caller can undo exactly that.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from types import TracebackType
from typing import Any, Generic, Literal, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from connectors.auth import StaticHeaders
from connectors.errors import AuthError, ConnectorError, InvalidResponse, NotFound, Unavailable
from connectors.http import HttpOptions, VendorClient
from connectors.transfer import DigestingStream

__all__ = [
    "TERMINAL_JOB_STATUSES",
    "IconikAppToken",
    "IconikApproval",
    "IconikApprovalStatus",
    "IconikAsset",
    "IconikAssetUpdate",
    "IconikAssetVersion",
    "IconikCollection",
    "IconikCollectionItem",
    "IconikConnector",
    "IconikFile",
    "IconikFileSet",
    "IconikFormat",
    "IconikHistoryEntry",
    "IconikJob",
    "IconikJobStatus",
    "IconikJobTimeout",
    "IconikMetadataField",
    "IconikMetadataValues",
    "IconikMetadataView",
    "IconikPage",
    "IconikSettings",
    "IconikStorage",
    "IconikTokenInfo",
    "IconikUpload",
    "IconikUploadFailed",
    "IconikUploadStep",
    "IconikWebhook",
    "MetadataMode",
]

T = TypeVar("T", bound=BaseModel)

DEFAULT_PER_PAGE = 100
MAX_STORAGES_PER_PAGE = 100  # the storages list caps per_page at 100
DEFAULT_POLL_INTERVAL = 2.0
DEFAULT_JOB_TIMEOUT = 600.0
MetadataMode = Literal["overwrite", "append", "delete"]
ObjectType = Literal["assets", "collections"]


class IconikSettings(BaseModel):
    """One iconik domain: host plus an application token (App-ID + Auth-Token)."""

    model_config = ConfigDict(extra="forbid")

    base_url: str = Field("https://app.iconik.io", description="regional hosts exist, e.g. us.iconik.io")
    app_id: str
    auth_token: SecretStr
    http: HttpOptions = Field(default_factory=HttpOptions)


class _IconikModel(BaseModel):
    model_config = ConfigDict(extra="ignore")


class IconikPage(_IconikModel, Generic[T]):
    """One page of any iconik list; `next_url` is relative to the host, None on the last page."""

    objects: list[T] = Field(default_factory=list)
    next_url: str | None = None
    page: int | None = None
    pages: int | None = None
    per_page: int | None = None
    total: int | None = None


class IconikAssetVersion(_IconikModel):
    """One version of an asset."""

    id: str
    status: str | None = None
    version_number: int | None = None
    date_created: datetime | None = None


class IconikAsset(_IconikModel):
    """An asset (AssetSchema): title, lifecycle status, archive state, links to Canto via external_id."""

    id: str
    title: str
    status: str | None = None
    archive_status: str | None = None
    type: str | None = None
    external_id: str | None = None
    external_link: str | None = None
    category: str | None = None
    is_online: bool | None = None
    is_blocked: bool | None = None
    warning: str | None = None
    date_created: datetime | None = None
    date_modified: datetime | None = None
    versions: list[IconikAssetVersion] = Field(default_factory=list)
    in_collections: list[str] = Field(default_factory=list)


class IconikAssetUpdate(BaseModel):
    """The writable asset fields; only the fields you set are sent (read-only ones never are)."""

    model_config = ConfigDict(extra="forbid")

    title: str | None = None
    external_id: str | None = None
    external_link: str | None = None
    category: str | None = None
    status: Literal["ACTIVE", "DELETED"] | None = None
    archive_status: Literal["NOT_ARCHIVED", "ARCHIVING", "FAILED_TO_ARCHIVE", "ARCHIVED"] | None = None
    is_blocked: bool | None = None
    is_online: bool | None = None
    warning: str | None = None

    def body(self) -> dict[str, Any]:
        """The JSON body: explicitly set fields only (an explicit None clears a field)."""
        return self.model_dump(exclude_unset=True)


class IconikHistoryEntry(_IconikModel):
    """One entry of an asset's history (transfers, metadata edits, approvals...).

    `share_id`/`share_user_id` are set when the asset was reached through a share link. Fields
    the model does not name are kept (`model_extra`) so an audit import can fingerprint
    credential-like values a deployment adds instead of silently dropping them.
    """

    model_config = ConfigDict(extra="allow")

    id: str
    operation_type: str
    operation_description: str | None = None
    asset_id: str | None = None
    job_id: str | None = None
    user_id: str | None = None
    share_id: str | None = None
    share_user_id: str | None = None
    date_created: datetime | None = None


class IconikFieldOption(_IconikModel):
    """An allowed value of a drop-down field."""

    label: str | None = None
    value: str


class IconikMetadataField(_IconikModel):
    """A field of a metadata view."""

    name: str
    label: str | None = None
    field_type: str | None = None
    multi: bool | None = None
    required: bool | None = None
    read_only: bool | None = None
    options: list[IconikFieldOption] = Field(default_factory=list)


class IconikMetadataView(_IconikModel):
    """A metadata view: a named set of fields."""

    id: str
    name: str
    description: str | None = None
    view_fields: list[IconikMetadataField] = Field(default_factory=list)


class IconikFieldValues(_IconikModel):
    """One field's values as iconik stores them: `[{"value": ...}, ...]`."""

    field_values: list[dict[str, Any]] = Field(default_factory=list)


class IconikMetadataValues(_IconikModel):
    """An object's metadata in one view."""

    object_id: str | None = None
    object_type: str | None = None
    version_id: str | None = None
    metadata_values: dict[str, IconikFieldValues] = Field(default_factory=dict)
    date_modified: datetime | None = None

    def values(self, field: str) -> list[Any]:
        """The plain values of `field` (empty when unset)."""
        entry = self.metadata_values.get(field)
        return [item.get("value") for item in entry.field_values] if entry else []

    def value(self, field: str) -> Any:
        """The first value of `field`, or None."""
        values = self.values(field)
        return values[0] if values else None


class IconikFile(_IconikModel):
    """A file of an asset on one storage; an OPEN file just created carries its `upload_url`."""

    id: str
    name: str | None = None
    original_name: str | None = None
    directory_path: str | None = None
    size: int | None = None
    status: str | None = None
    type: str | None = None
    asset_id: str | None = None
    storage_id: str | None = None
    format_id: str | None = None
    file_set_id: str | None = None
    version_id: str | None = None
    checksum: str | None = None
    storage_method: str | None = None
    upload_url: str | None = None
    upload_method: str | None = None


class IconikFileSet(_IconikModel):
    """A file set: where one format of an asset lives on one storage."""

    id: str
    name: str
    format_id: str
    storage_id: str | None = None
    base_dir: str | None = None
    status: str | None = None
    version_id: str | None = None
    file_count: int | None = None


class IconikFormat(_IconikModel):
    """A format of an asset (ORIGINAL, proxies...)."""

    id: str
    name: str
    status: str | None = None
    archive_status: str | None = None
    is_online: bool | None = None
    storage_methods: list[str] = Field(default_factory=list)
    version_id: str | None = None


class IconikStorage(_IconikModel):
    """A storage (purpose FILES, PROXIES, EXPORTS, ARCHIVE...); its settings are never read."""

    id: str
    name: str
    purpose: str
    method: str | None = None
    status: str | None = None
    status_message: str | None = None
    description: str | None = None
    default: bool | None = None


class IconikJobStatus(StrEnum):
    """Job states; see TERMINAL_JOB_STATUSES for the ones that never change again."""

    READY = "READY"
    STARTED = "STARTED"
    WAITING = "WAITING"
    PAUSED = "PAUSED"
    ABORT_PENDING = "ABORT_PENDING"
    FINISHED = "FINISHED"
    FINISHED_WITH_WARNING = "FINISHED_WITH_WARNING"
    SKIPPED = "SKIPPED"
    FAILED = "FAILED"
    ABORTED = "ABORTED"


TERMINAL_JOB_STATUSES = frozenset(
    {
        IconikJobStatus.FINISHED,
        IconikJobStatus.FINISHED_WITH_WARNING,
        IconikJobStatus.SKIPPED,
        IconikJobStatus.FAILED,
        IconikJobStatus.ABORTED,
    }
)
SUCCESSFUL_JOB_STATUSES = frozenset({IconikJobStatus.FINISHED, IconikJobStatus.FINISHED_WITH_WARNING})


class IconikJob(_IconikModel):
    """A background job (transfers, exports...)."""

    id: str
    status: str
    title: str | None = None
    type: str | None = None
    progress: int | None = None
    message: str | None = None
    error_message: str | None = None
    object_id: str | None = None
    object_type: str | None = None
    date_created: datetime | None = None
    date_modified: datetime | None = None
    completed_at: datetime | None = None

    @property
    def is_terminal(self) -> bool:
        """FINISHED, FINISHED_WITH_WARNING, SKIPPED, FAILED or ABORTED: it will not change again."""
        return self.status in TERMINAL_JOB_STATUSES

    @property
    def succeeded(self) -> bool:
        """FINISHED or FINISHED_WITH_WARNING."""
        return self.status in SUCCESSFUL_JOB_STATUSES


class _JobCreated(_IconikModel):
    job_id: str


class IconikApprovalStatus(StrEnum):
    """Approval states of an object (or of one user's approval)."""

    NOT_APPLICABLE = "N/A"
    REQUESTED = "REQUESTED"
    APPROVED = "APPROVED"
    NOT_APPROVED = "NOT_APPROVED"
    MIXED = "MIXED"


class IconikApproval(_IconikModel):
    """One user's approval of an object."""

    status: str
    object_id: str | None = None
    object_type: str | None = None
    user: str | None = None
    external: str | None = None
    change_date: datetime | None = None
    version_id: str | None = None


class IconikCollection(_IconikModel):
    """A collection."""

    id: str
    title: str
    status: str | None = None
    parent_id: str | None = None
    is_root: bool | None = None
    external_id: str | None = None
    storage_id: str | None = None
    in_collections: list[str] = Field(default_factory=list)


class IconikCollectionItem(_IconikModel):
    """An entry of a collection's contents: an asset or a sub-collection."""

    id: str
    title: str | None = None
    object_type: str | None = None
    status: str | None = None
    external_id: str | None = None


class IconikWebhook(_IconikModel):
    """A registered webhook (its headers, which carry our secret, are deliberately not kept)."""

    id: str
    url: str
    event_type: str
    status: str
    name: str | None = None
    realm: str | None = None
    operation: str | None = None


class _Webhooks(_IconikModel):
    objects: list[IconikWebhook] = Field(default_factory=list)


class _Views(_IconikModel):
    objects: list[IconikMetadataView] = Field(default_factory=list)


class IconikAppToken(_IconikModel):
    """A newly created application token; `token` is the secret, shown this once."""

    id: str
    token: SecretStr
    app_id: str | None = None
    user_id: str | None = None
    expires: datetime | None = None
    date_created: datetime | None = None


class IconikTokenInfo(_IconikModel):
    """A token as the token list shows it: never its value."""

    id: str
    app_id: str | None = None
    user_id: str | None = None
    expires: datetime | None = None
    date_created: datetime | None = None


class IconikUploadStep(StrEnum):
    """The steps of putting a file into iconik, in order."""

    ASSET = "asset"
    FORMAT = "format"
    FILE_SET = "file_set"
    FILE = "file"
    UPLOAD = "upload"
    CLOSE = "close"
    READY = "ready"


@dataclass(frozen=True)
class IconikUpload:
    """What an upload created so far: enough to undo it (`*_created` say what was ours)."""

    asset_id: str | None = None
    asset_created: bool = False
    format_id: str | None = None
    format_created: bool = False
    file_set_id: str | None = None
    file_id: str | None = None
    size: int | None = None
    md5: str | None = None
    sha256: str | None = None
    ready_job_id: str | None = None


class IconikUploadFailed(ConnectorError):
    """A step of `upload_original` failed; `upload` is what the earlier steps created.

    `cause` is the step's own error (None when iconik answered but refused, e.g. a failed
    transcode job); its status becomes this error's status.
    """

    def __init__(
        self,
        step: IconikUploadStep,
        upload: IconikUpload,
        detail: str,
        *,
        cause: ConnectorError | None = None,
    ) -> None:
        self.step = step
        self.upload = upload
        self.cause = cause
        super().__init__(
            f"upload failed at step {step.value!r}: {detail}",
            vendor=IconikConnector.vendor,
            status=cause.status if cause else None,
            request_id=cause.request_id if cause else None,
            method=cause.method if cause else None,
            url=cause.url if cause else None,
        )


class IconikJobTimeout(ConnectorError):
    """`wait_for_job` gave up before the job reached a terminal state; `job` is the last seen."""

    def __init__(self, job: IconikJob, *, waited: float) -> None:
        self.job = job
        self.waited = waited
        super().__init__(
            f"job {job.id} still {job.status} after {waited:.0f}s", vendor=IconikConnector.vendor
        )


def _segment(value: str) -> str:
    return quote(value, safe="")


def _field_values(values: Iterable[Any]) -> list[dict[str, Any]]:
    return [{"value": value} for value in values]


class IconikConnector:
    """Typed calls to one iconik domain; owns its HTTP client (use `async with` or `aclose`)."""

    vendor = "iconik"

    def __init__(
        self,
        settings: IconikSettings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sleep = sleep
        self._monotonic = monotonic
        self._app_id = settings.app_id
        self._auth_token = settings.auth_token
        self._client = VendorClient(
            vendor=self.vendor,
            base_url=settings.base_url,
            options=settings.http,
            auth=StaticHeaders({"App-ID": settings.app_id, "Auth-Token": settings.auth_token}),
            transport=transport,
            sleep=sleep,
            monotonic=monotonic,
        )

    @property
    def client(self) -> VendorClient:
        """The HTTP client (exposes `last_request_id` and the circuit breaker)."""
        return self._client

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self._client.aclose()

    async def __aenter__(self) -> IconikConnector:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def _paged(
        self, path: str, item: type[T], params: Mapping[str, str | int] | None = None
    ) -> AsyncIterator[T]:
        """Every object of a list, following `next_url` until it is empty."""
        url: str | None = path
        query: Mapping[str, str | int] | None = params
        seen: set[str] = set()
        while url:
            page = await self._client.get_model(url, IconikPage[item], params=query)  # type: ignore[valid-type]
            for obj in page.objects:
                yield obj
            query = None  # next_url already carries the query
            url = page.next_url or None
            if url is not None:
                if url in seen:
                    raise InvalidResponse(
                        f"next_url repeats {url!r}",
                        vendor=self.vendor,
                        request_id=self._client.last_request_id,
                    )
                seen.add(url)

    # -- assets --------------------------------------------------------------------------------

    async def get_asset(self, asset_id: str) -> IconikAsset:
        """One asset; NotFound if it does not exist."""
        return await self._client.get_model(f"/API/assets/v1/assets/{_segment(asset_id)}/", IconikAsset)

    async def update_asset(self, asset_id: str, changes: IconikAssetUpdate) -> IconikAsset:
        """Change some fields of an asset (PATCH); returns the updated asset.

        iconik's spec requires `title` in PATCH bodies too, so when `changes` leaves it out the
        current title is read first and sent back unchanged.
        """
        body = changes.body()
        if body.get("title") is None:
            body["title"] = (await self.get_asset(asset_id)).title
        return await self._client.send_model(
            "PATCH", f"/API/assets/v1/assets/{_segment(asset_id)}/", IconikAsset, json=body, idempotent=True
        )

    async def replace_asset(self, asset_id: str, asset: IconikAssetUpdate) -> IconikAsset:
        """Replace an asset's writable fields (PUT); `title` is required."""
        if asset.title is None:
            raise ValueError("replace_asset needs a title")
        return await self._client.send_model(
            "PUT", f"/API/assets/v1/assets/{_segment(asset_id)}/", IconikAsset, json=asset.body()
        )

    async def create_asset(self, asset: IconikAssetUpdate) -> IconikAsset:
        """Create an asset (POST `/API/assets/v1/assets/`); `title` is required."""
        if asset.title is None:
            raise ValueError("create_asset needs a title")
        # Not idempotent: a retried POST could create a twin, so only pre-send failures retry.
        return await self._client.send_model("POST", "/API/assets/v1/assets/", IconikAsset, json=asset.body())

    async def delete_asset(self, asset_id: str) -> None:
        """Delete an asset (iconik keeps it in its delete queue with status DELETED)."""
        await self._client.request("DELETE", f"/API/assets/v1/assets/{_segment(asset_id)}/")

    async def find_assets_by_external_id(self, external_id: str) -> list[IconikAsset]:
        """Assets whose `external_id` is exactly this (e.g. "canto:image:<id>"), oldest first.

        Uses the asset list's field filter (`GET /API/assets/v1/assets/?external_id=...`; the
        spec documents filtering "by field_name", unconfirmed for external_id), and keeps only
        exact matches in case the server matches loosely.
        """
        found = [
            asset
            async for asset in self._paged(
                "/API/assets/v1/assets/",
                IconikAsset,
                {"external_id": external_id, "per_page": DEFAULT_PER_PAGE},
            )
        ]
        return [asset for asset in found if asset.external_id == external_id]

    async def asset_history(
        self, asset_id: str, *, per_page: int = DEFAULT_PER_PAGE
    ) -> AsyncIterator[IconikHistoryEntry]:
        """Every history entry of an asset, newest first."""
        async for entry in self._paged(
            f"/API/assets/v1/assets/{_segment(asset_id)}/history/", IconikHistoryEntry, {"per_page": per_page}
        ):
            yield entry

    # -- metadata ------------------------------------------------------------------------------

    async def list_metadata_views(self) -> list[IconikMetadataView]:
        """Every metadata view of the domain."""
        return (await self._client.get_model("/API/metadata/v1/views/", _Views)).objects

    async def get_metadata_view(self, view_id: str) -> IconikMetadataView:
        """One metadata view with its fields."""
        return await self._client.get_model(
            f"/API/metadata/v1/views/{_segment(view_id)}/", IconikMetadataView
        )

    async def get_asset_metadata(self, asset_id: str, view_id: str) -> IconikMetadataValues:
        """An asset's values in one view."""
        return await self._client.get_model(
            f"/API/metadata/v1/assets/{_segment(asset_id)}/views/{_segment(view_id)}/", IconikMetadataValues
        )

    async def put_asset_metadata(
        self,
        asset_id: str,
        view_id: str,
        values: Mapping[str, Sequence[Any]],
        *,
        mode: MetadataMode = "overwrite",
    ) -> IconikMetadataValues:
        """Write field values (each field: a list of plain values) with one mode for all fields."""
        body = {
            "metadata_values": {
                field: {"field_values": _field_values(field_values), "mode": mode}
                for field, field_values in values.items()
            }
        }
        # overwrite/delete converge when repeated; append would duplicate values.
        return await self._client.send_model(
            "PUT",
            f"/API/metadata/v1/assets/{_segment(asset_id)}/views/{_segment(view_id)}/",
            IconikMetadataValues,
            json=body,
            idempotent=mode != "append",
        )

    # -- files and storages --------------------------------------------------------------------

    async def list_files(
        self, asset_id: str, *, per_page: int = DEFAULT_PER_PAGE
    ) -> AsyncIterator[IconikFile]:
        """Every file of an asset, on every storage."""
        async for file in self._paged(
            f"/API/files/v1/assets/{_segment(asset_id)}/files/", IconikFile, {"per_page": per_page}
        ):
            yield file

    async def list_formats(
        self, asset_id: str, *, per_page: int = DEFAULT_PER_PAGE
    ) -> AsyncIterator[IconikFormat]:
        """Every format of an asset (ORIGINAL, proxies...)."""
        async for fmt in self._paged(
            f"/API/files/v1/assets/{_segment(asset_id)}/formats/", IconikFormat, {"per_page": per_page}
        ):
            yield fmt

    async def file_download_url(self, asset_id: str, file_id: str) -> str:
        """A (signed, short-lived) URL to download one file."""
        answer = await self._client.get_model(
            f"/API/files/v1/assets/{_segment(asset_id)}/files/{_segment(file_id)}/download_url/", _DownloadUrl
        )
        return answer.url

    async def get_file(self, asset_id: str, file_id: str, *, signed_upload_url: bool = False) -> IconikFile:
        """One file of an asset; `signed_upload_url` asks iconik for a fresh upload URL of an OPEN file."""
        return await self._client.get_model(
            f"/API/files/v1/assets/{_segment(asset_id)}/files/{_segment(file_id)}/",
            IconikFile,
            params={"generate_signed_post_url": "true"} if signed_upload_url else None,
        )

    async def list_file_sets(
        self, asset_id: str, *, per_page: int = DEFAULT_PER_PAGE
    ) -> AsyncIterator[IconikFileSet]:
        """Every file set of an asset."""
        async for file_set in self._paged(
            f"/API/files/v1/assets/{_segment(asset_id)}/file_sets/", IconikFileSet, {"per_page": per_page}
        ):
            yield file_set

    async def create_format(
        self, asset_id: str, *, name: str = "ORIGINAL", storage_methods: Sequence[str] = ()
    ) -> IconikFormat:
        """Add a format (ORIGINAL...) to an asset; files are later attached to it."""
        body = {"name": name, "storage_methods": list(storage_methods)}
        return await self._client.send_model(
            "POST", f"/API/files/v1/assets/{_segment(asset_id)}/formats/", IconikFormat, json=body
        )

    async def delete_format(self, asset_id: str, format_id: str, *, immediately: bool = False) -> None:
        """Delete a format of an asset (marked DELETED, or gone at once with `immediately`)."""
        await self._client.request(
            "DELETE",
            f"/API/files/v1/assets/{_segment(asset_id)}/formats/{_segment(format_id)}/",
            params={"immediately": "true"} if immediately else None,
        )

    async def create_file_set(
        self,
        asset_id: str,
        *,
        format_id: str,
        storage_id: str,
        name: str,
        base_dir: str = "",
        component_ids: Sequence[str] = (),
    ) -> IconikFileSet:
        """Create the file set that places a format of the asset on a storage."""
        body = {
            "format_id": format_id,
            "storage_id": storage_id,
            "name": name,
            "base_dir": base_dir,
            "component_ids": list(component_ids),
        }
        return await self._client.send_model(
            "POST", f"/API/files/v1/assets/{_segment(asset_id)}/file_sets/", IconikFileSet, json=body
        )

    async def delete_file_set(self, asset_id: str, file_set_id: str, *, immediately: bool = False) -> None:
        """Delete a file set with its file entries and stored files."""
        await self._client.request(
            "DELETE",
            f"/API/files/v1/assets/{_segment(asset_id)}/file_sets/{_segment(file_set_id)}/",
            params={"immediately": "true"} if immediately else None,
        )

    async def create_file(
        self,
        asset_id: str,
        *,
        file_set_id: str,
        format_id: str,
        storage_id: str,
        original_name: str,
        size: int,
        directory_path: str = "",
        checksum: str | None = None,
    ) -> IconikFile:
        """Create an OPEN file entry; the answer's `upload_url` takes the bytes."""
        body: dict[str, Any] = {
            "file_set_id": file_set_id,
            "format_id": format_id,
            "storage_id": storage_id,
            "original_name": original_name,
            "directory_path": directory_path,
            "size": size,
            "type": "FILE",
        }
        if checksum is not None:
            body["checksum"] = checksum
        return await self._client.send_model(
            "POST", f"/API/files/v1/assets/{_segment(asset_id)}/files/", IconikFile, json=body
        )

    async def upload_bytes(
        self, upload_url: str, chunks: AsyncIterable[bytes], *, size: int, content_type: str
    ) -> None:
        """Stream the bytes to a file's upload URL in one PUT of exactly `size` bytes.

        The URL is signed for the storage, so our iconik credentials are never sent with it. A
        stream cannot be replayed, so only failures before sending are retried; a wrong byte
        count fails the request.
        """
        await self._client.request(
            "PUT",
            upload_url,
            content=self._exactly(chunks, size, upload_url),
            headers={"Content-Type": content_type, "Content-Length": str(size)},
            idempotent=False,
            authenticate=False,
        )

    async def _exactly(self, chunks: AsyncIterable[bytes], size: int, url: str) -> AsyncIterator[bytes]:
        """The chunks, refusing a stream longer or shorter than declared before the storage sees it."""
        sent = 0
        async for chunk in chunks:
            sent += len(chunk)
            if sent > size:
                break
            yield chunk
        if sent != size:
            raise Unavailable(
                f"the byte stream {'ran past' if sent > size else f'ended after {sent} of'} the declared {size} bytes",
                vendor=self.vendor,
                method="PUT",
                url=str(httpx.URL(url).copy_with(query=None)),
            )

    async def close_file(
        self, asset_id: str, file: IconikFile, *, size: int, checksum: str | None = None
    ) -> IconikFile:
        """Mark an uploaded file CLOSED (iconik then processes it, e.g. transcodes proxies)."""
        body: dict[str, Any] = {
            "status": "CLOSED",
            "size": size,
            # FileSchema requires these in every body, PATCH included.
            "file_set_id": file.file_set_id,
            "original_name": file.original_name,
            "directory_path": file.directory_path or "",
            "type": file.type or "FILE",
        }
        if checksum is not None:
            body["checksum"] = checksum
        return await self._client.send_model(
            "PATCH",
            f"/API/files/v1/assets/{_segment(asset_id)}/files/{_segment(file.id)}/",
            IconikFile,
            json=body,
            idempotent=True,
        )

    async def default_storage(self, purpose: str = "FILES") -> IconikStorage:
        """The default ACTIVE storage of a purpose (where new originals go)."""
        candidates = [s async for s in self.list_storages(purpose=purpose) if s.status in (None, "ACTIVE")]
        if not candidates:
            raise InvalidResponse(f"no ACTIVE {purpose} storage", vendor=self.vendor)
        return next((s for s in candidates if s.default), candidates[0])

    async def _storage(self, storage_id: str) -> IconikStorage:
        found = [s async for s in self.list_storages() if s.id == storage_id]
        if not found:
            raise NotFound(f"storage {storage_id} does not exist", vendor=self.vendor)
        return found[0]

    async def list_storages(
        self, *, purpose: str | None = None, status: str | None = None
    ) -> AsyncIterator[IconikStorage]:
        """Every storage, optionally only those of one purpose (EXPORTS...) or status."""
        params: dict[str, str | int] = {"per_page": MAX_STORAGES_PER_PAGE}
        if purpose:
            params["purpose"] = purpose
        if status:
            params["status"] = status
        async for storage in self._paged("/API/files/v1/storages/", IconikStorage, params):
            yield storage

    async def copy_to_storage(
        self,
        storage_id: str,
        object_ids: Sequence[str],
        *,
        object_type: ObjectType = "assets",
        format_name: str = "ORIGINAL",
    ) -> str:
        """Queue a copy of the objects' files to a storage; returns the job id."""
        return await self._bulk_transfer(
            storage_id, object_ids, object_type, format_name, delete_original=False
        )

    async def move_to_storage(
        self,
        storage_id: str,
        object_ids: Sequence[str],
        *,
        object_type: ObjectType = "assets",
        format_name: str = "ORIGINAL",
    ) -> str:
        """Queue a move (copy, then delete the source) of the objects' files; returns the job id."""
        return await self._bulk_transfer(
            storage_id, object_ids, object_type, format_name, delete_original=True
        )

    async def _bulk_transfer(
        self,
        storage_id: str,
        object_ids: Sequence[str],
        object_type: str,
        format_name: str,
        *,
        delete_original: bool,
    ) -> str:
        if not object_ids:
            raise ValueError("a transfer needs at least one object id")
        body = {
            "object_ids": list(object_ids),
            "object_type": object_type,
            "format_name": format_name,
            "delete_original": delete_original,
        }
        created = await self._client.send_model(
            "POST", f"/API/files/v1/storages/{_segment(storage_id)}/bulk/", _JobCreated, json=body
        )
        return created.job_id

    # -- jobs ----------------------------------------------------------------------------------

    async def get_job(self, job_id: str) -> IconikJob:
        """One job's current state."""
        return await self._client.get_model(f"/API/jobs/v1/jobs/{_segment(job_id)}/", IconikJob)

    async def wait_for_job(
        self,
        job_id: str,
        *,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        timeout: float = DEFAULT_JOB_TIMEOUT,
        sleep: Callable[[float], Awaitable[None]] | None = None,
    ) -> IconikJob:
        """Poll until the job is terminal and return it (check `succeeded`); IconikJobTimeout if not.

        Time waited is the larger of the connector's clock and the sum of the poll sleeps, so a
        fake `sleep` in tests still reaches the timeout.
        """
        if poll_interval <= 0 or timeout < 0:
            raise ValueError("poll_interval must be > 0 and timeout >= 0")
        pause = sleep or self._sleep
        started = self._monotonic()
        slept = 0.0
        while True:
            job = await self.get_job(job_id)
            if job.is_terminal:
                return job
            waited = max(self._monotonic() - started, slept)
            if waited + poll_interval > timeout:
                raise IconikJobTimeout(job, waited=waited)
            await pause(poll_interval)
            slept += poll_interval

    async def list_jobs(
        self,
        *,
        object_id: str | None = None,
        job_type: str | None = None,
        status: str | None = None,
        per_page: int = DEFAULT_PER_PAGE,
    ) -> AsyncIterator[IconikJob]:
        """Jobs, optionally of one object, type (TRANSCODE, TRANSFER...) or status."""
        params: dict[str, str | int] = {"per_page": per_page}
        for key, value in (("object_id", object_id), ("type", job_type), ("status", status)):
            if value:
                params[key] = value
        async for job in self._paged("/API/jobs/v1/jobs/", IconikJob, params):
            yield job

    async def wait_until_ready(
        self,
        asset_id: str,
        *,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        timeout: float = DEFAULT_JOB_TIMEOUT,
    ) -> IconikJob | None:
        """Wait for the asset's newest TRANSCODE job (started by closing a file); None if there is none."""
        jobs = [job async for job in self.list_jobs(object_id=asset_id, job_type="TRANSCODE")]
        if not jobs:
            return None
        newest = max(jobs, key=lambda job: (job.date_created is not None, job.date_created or 0))
        return await self.wait_for_job(newest.id, poll_interval=poll_interval, timeout=timeout)

    # -- putting a file into iconik ------------------------------------------------------------

    async def upload_original(
        self,
        chunks: AsyncIterable[bytes],
        *,
        size: int,
        original_name: str,
        title: str,
        content_type: str = "application/octet-stream",
        asset_id: str | None = None,
        external_id: str | None = None,
        storage_id: str | None = None,
        format_name: str = "ORIGINAL",
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        timeout: float = DEFAULT_JOB_TIMEOUT,
    ) -> IconikUpload:
        """Put a file into iconik as iconik documents it, streaming the bytes; returns what was made.

        The asset is `asset_id`, else the one with `external_id`, else a new one. Then: a format
        (reusing an ACTIVE one of that name), a file set and a file on `storage_id` (default: the
        default FILES storage), the bytes streamed to the file's upload URL, the file closed with
        their MD5, and the TRANSCODE job closing starts waited for. Each step that fails raises
        IconikUploadFailed with the step and what the earlier steps created.
        """
        done = IconikUpload(asset_id=asset_id)
        step = IconikUploadStep.ASSET
        try:
            if done.asset_id is None:
                existing = await self.find_assets_by_external_id(external_id) if external_id else []
                live = [asset for asset in existing if asset.status in (None, "ACTIVE")]
                if live:
                    done = replace(done, asset_id=live[0].id)
                else:
                    created = await self.create_asset(IconikAssetUpdate(title=title, external_id=external_id))
                    done = replace(done, asset_id=created.id, asset_created=True)
            assert done.asset_id is not None
            asset = done.asset_id
            storage = await self.default_storage() if storage_id is None else await self._storage(storage_id)
            step = IconikUploadStep.FORMAT
            active = [
                f async for f in self.list_formats(asset) if f.name == format_name and f.status == "ACTIVE"
            ]
            fmt = active[0] if active else None
            if fmt is None:
                fmt = await self.create_format(
                    asset, name=format_name, storage_methods=[storage.method] if storage.method else []
                )
                done = replace(done, format_id=fmt.id, format_created=True)
            else:
                done = replace(done, format_id=fmt.id)
            step = IconikUploadStep.FILE_SET
            file_set = await self.create_file_set(
                asset, format_id=fmt.id, storage_id=storage.id, name=original_name, base_dir=asset
            )
            done = replace(done, file_set_id=file_set.id)
            step = IconikUploadStep.FILE
            file = await self.create_file(
                asset, file_set_id=file_set.id, format_id=fmt.id, storage_id=storage.id,
                original_name=original_name, directory_path=asset, size=size,
            )  # fmt: skip
            done = replace(done, file_id=file.id)
            if not file.upload_url:  # documented for B2: ask again for a signed URL
                file = await self.get_file(asset, file.id, signed_upload_url=True)
            if not file.upload_url:
                raise IconikUploadFailed(
                    IconikUploadStep.FILE, done,
                    f"iconik gave no upload_url for storage method {file.storage_method!r}",
                )  # fmt: skip
            step = IconikUploadStep.UPLOAD
            metered = DigestingStream(chunks)
            await self.upload_bytes(file.upload_url, metered, size=size, content_type=content_type)
            done = replace(done, size=metered.size, md5=metered.md5, sha256=metered.sha256)
            step = IconikUploadStep.CLOSE
            await self.close_file(asset, file, size=metered.size, checksum=metered.md5)
            step = IconikUploadStep.READY
            job = await self.wait_until_ready(asset, poll_interval=poll_interval, timeout=timeout)
            if job is not None:
                done = replace(done, ready_job_id=job.id)
                if not job.succeeded:
                    raise IconikUploadFailed(
                        step,
                        done,
                        f"{job.type or 'job'} {job.id} ended {job.status}: {job.error_message or ''}".strip(),
                    )
        except IconikUploadFailed:
            raise
        except ConnectorError as exc:
            raise IconikUploadFailed(step, done, str(exc), cause=exc) from exc
        return done

    # -- app tokens (credential rotation) ------------------------------------------------------

    async def create_app_token(self, app_id: str | None = None) -> IconikAppToken:
        """A new token for the app (default: ours); the old one keeps working until revoked."""
        return await self._client.send_model(
            "POST", f"/API/auth/v1/apps/{_segment(app_id or self._app_id)}/token/", IconikAppToken
        )

    async def list_app_tokens(self, *, per_page: int = DEFAULT_PER_PAGE) -> list[IconikTokenInfo]:
        """The tokens iconik holds for us (ids and dates, never values)."""
        return [
            token
            async for token in self._paged(
                "/API/auth/v1/auth/tokens/", IconikTokenInfo, {"per_page": per_page}
            )
        ]

    async def token_is_valid(self, token: SecretStr | None = None) -> bool:
        """Whether iconik accepts `token` (default: the one in use): a call made with it succeeds."""
        presented = token or self._auth_token
        try:
            await self._client.request(
                "GET",
                "/API/auth/v1/auth/token/",
                headers={"App-ID": self._app_id, "Auth-Token": presented.get_secret_value()},
                authenticate=False,
            )
        except AuthError:
            return False
        return True

    def use_token(self, token: SecretStr) -> None:
        """Authenticate every later call with `token` (the switch step of a rotation)."""
        self._auth_token = token
        self._client.auth = StaticHeaders({"App-ID": self._app_id, "Auth-Token": token})

    async def revoke_token(self, token: SecretStr) -> None:
        """Revoke a token we hold the value of (`DELETE /auth/token/` authenticated with it)."""
        await self._client.request(
            "DELETE",
            "/API/auth/v1/auth/token/",
            headers={"App-ID": self._app_id, "Auth-Token": token.get_secret_value()},
            authenticate=False,
        )

    async def revoke_app_token(self, token_id: str) -> None:
        """Revoke a token by its id (from `list_app_tokens` or `create_app_token`)."""
        await self._client.request("DELETE", f"/API/auth/v1/auth/token/{_segment(token_id)}/")

    # -- approvals -----------------------------------------------------------------------------

    async def get_approvals(
        self, object_id: str, *, object_type: ObjectType = "assets"
    ) -> list[IconikApproval]:
        """Every user's approval of the object."""
        return [
            approval
            async for approval in self._paged(
                f"/API/assets/v1/{object_type}/{_segment(object_id)}/approvals/", IconikApproval
            )
        ]

    async def set_approval(
        self, object_id: str, status: IconikApprovalStatus, *, object_type: ObjectType = "assets"
    ) -> IconikApproval:
        """Record our (the token user's) approval status for the object."""
        return await self._client.send_model(
            "PUT",
            f"/API/assets/v1/{object_type}/{_segment(object_id)}/approvals/",
            IconikApproval,
            json={"status": str(status)},
        )

    # -- collections ---------------------------------------------------------------------------

    async def get_collection(self, collection_id: str) -> IconikCollection:
        """One collection."""
        return await self._client.get_model(
            f"/API/assets/v1/collections/{_segment(collection_id)}/", IconikCollection
        )

    async def list_collections(self, *, per_page: int = DEFAULT_PER_PAGE) -> AsyncIterator[IconikCollection]:
        """Every collection of the domain (`GET /API/assets/v1/collections/`), page by page."""
        async for collection in self._paged(
            "/API/assets/v1/collections/", IconikCollection, {"per_page": per_page}
        ):
            yield collection

    async def create_collection(
        self,
        title: str,
        *,
        parent_id: str | None = None,
        external_id: str | None = None,
        storage_id: str | None = None,
    ) -> IconikCollection:
        """Create a collection (`POST /API/assets/v1/collections/`), inside `parent_id` if given.

        `storage_id` routes files uploaded into the collection to that storage. Not idempotent:
        callers that may repeat it look for the collection (by `external_id`) first.
        """
        body: dict[str, Any] = {"title": title}
        for key, value in (
            ("parent_id", parent_id),
            ("external_id", external_id),
            ("storage_id", storage_id),
        ):
            if value is not None:
                body[key] = value
        return await self._client.send_model(
            "POST", "/API/assets/v1/collections/", IconikCollection, json=body
        )

    async def collection_contents(
        self, collection_id: str, *, per_page: int = DEFAULT_PER_PAGE
    ) -> AsyncIterator[IconikCollectionItem]:
        """Every asset and sub-collection in a collection."""
        async for item in self._paged(
            f"/API/assets/v1/collections/{_segment(collection_id)}/contents/",
            IconikCollectionItem,
            {"per_page": per_page},
        ):
            yield item

    async def add_to_collection(
        self, collection_id: str, object_id: str, *, object_type: ObjectType = "assets"
    ) -> None:
        """Add an asset (or collection) to a collection."""
        await self._client.request(
            "POST",
            f"/API/assets/v1/collections/{_segment(collection_id)}/contents/",
            json={"object_id": object_id, "object_type": object_type},
        )

    # -- webhooks ------------------------------------------------------------------------------

    async def register_webhook(
        self,
        url: str,
        *,
        event_type: str,
        headers: Mapping[str, str],
        realm: str | None = None,
        operation: str | None = None,
        name: str | None = None,
    ) -> IconikWebhook:
        """Register an enabled webhook; `headers` (our secret header) come back on every delivery."""
        body: dict[str, Any] = {
            "url": url,
            "event_type": event_type,
            "status": "ENABLED",
            "headers": dict(headers),
        }
        for key, value in (("realm", realm), ("operation", operation), ("name", name)):
            if value is not None:
                body[key] = value
        return await self._client.send_model(
            "POST", "/API/notifications/v1/webhooks/", IconikWebhook, json=body
        )

    async def list_webhooks(self) -> list[IconikWebhook]:
        """Every webhook registered in the domain."""
        return (await self._client.get_model("/API/notifications/v1/webhooks/", _Webhooks)).objects

    async def delete_webhook(self, webhook_id: str) -> None:
        """Remove a webhook."""
        await self._client.request("DELETE", f"/API/notifications/v1/webhooks/{_segment(webhook_id)}/")


class _DownloadUrl(_IconikModel):
    url: str
