"""Canto DAM connector: app token, search, asset details, approval and expiry, metadata, albums.

Canto has no public OpenAPI; paths and shapes follow api.canto.com and public clients (see
/work/shared/reference/connectors.md). The API lives under `{base_url}/api/v1`, tokens come from
`{oauth_url}/oauth/api/oauth2/token` with every parameter in the query string, and dates are
`yyyyMMddHHmmssSSS` strings, read here as UTC.

    async with CantoConnector(settings) as canto:
        async for asset in canto.search("sneaker", scheme="image", approval="Approved"):
            approval = await canto.get_approval(asset.scheme, asset.id)
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from types import TracebackType
from typing import Annotated, Any
from urllib.parse import quote

import httpx
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, SecretStr

from connectors.auth import Token, TokenProvider
from connectors.errors import AuthError, BadRequest, Forbidden, InvalidResponse, Unavailable
from connectors.http import HttpOptions, VendorClient
from connectors.transfer import DEFAULT_CHUNK_SIZE, Download

__all__ = [
    "CANTO_API_PATH",
    "CANTO_TOKEN_PATH",
    "CantoApproval",
    "CantoApprovalStatus",
    "CantoAsset",
    "CantoAssetRef",
    "CantoAssetUrls",
    "CantoConnector",
    "CantoPropertyUpdate",
    "CantoRelatedAlbum",
    "CantoSearchPage",
    "CantoSettings",
    "CantoTokenResponse",
    "CantoTreeNode",
    "format_canto_date",
    "parse_canto_date",
]

logger = logging.getLogger("opsgate.connectors.canto")

CANTO_API_PATH = "/api/v1"
CANTO_TOKEN_PATH = "/oauth/api/oauth2/token"
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
# Canto does not document a batch size limit; chunking keeps one bad id from failing thousands.
BATCH_CHUNK = 100
BATCH_EDIT_SUCCESS = "success"
_SCHEME = re.compile(r"^[a-z]+$")
_CANTO_DATE = re.compile(r"^(\d{8})(\d{6})?(\d{3})?$")


class CantoSettings(BaseModel):
    """One Canto tenant: API host, OAuth host and the app's credentials."""

    model_config = ConfigDict(extra="forbid")

    base_url: str = Field(description="tenant host, e.g. https://acme.canto.com")
    oauth_url: str = Field("https://oauth.canto.com", description="OAuth host (canto.global, canto.de...)")
    app_id: str
    app_secret: SecretStr
    refresh_token: SecretStr | None = Field(None, description="from an authorization_code grant, if any")
    http: HttpOptions = Field(default_factory=HttpOptions)


class CantoApprovalStatus(StrEnum):
    """Canto's built-in approval states; tenants may add custom ones (kept as plain strings)."""

    APPROVED = "Approved"
    PENDING = "Pending"
    RESTRICTED = "Restricted"
    EXPIRED = "Expired"


def parse_canto_date(value: str) -> datetime:
    """Parse Canto's `yyyyMMddHHmmssSSS` (or its date / second-precision prefixes) as UTC."""
    match = _CANTO_DATE.match(value.strip())
    if not match:
        raise ValueError(f"not a Canto date (yyyyMMddHHmmssSSS): {value[:40]!r}")
    day, clock, millis = match.groups()
    parsed = datetime.strptime(day + (clock or "000000"), "%Y%m%d%H%M%S")
    return parsed.replace(microsecond=int(millis or 0) * 1000, tzinfo=UTC)


def format_canto_date(value: datetime) -> str:
    """Format an aware datetime as Canto's `yyyyMMddHHmmssSSS` in UTC."""
    if value.tzinfo is None:
        raise ValueError("Canto dates are formatted from aware datetimes")
    utc = value.astimezone(UTC)
    return utc.strftime("%Y%m%d%H%M%S") + f"{utc.microsecond // 1000:03d}"


def _optional_canto_date(value: Any) -> Any:
    if value is None or isinstance(value, datetime):
        return value
    if isinstance(value, int):
        value = str(value)
    if isinstance(value, str):
        return parse_canto_date(value) if value.strip() else None
    return value


def _string_list(value: Any) -> Any:
    # Canto returns keyword/tag as a list, but single values have been seen as plain strings.
    if value is None:
        return []
    if isinstance(value, str):
        return [value] if value else []
    return value


CantoDate = Annotated[datetime | None, BeforeValidator(_optional_canto_date)]
StringList = Annotated[list[str], BeforeValidator(_string_list)]


class _CantoModel(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True, frozen=True)


class CantoAssetRef(_CantoModel):
    """What Canto needs to address one asset: its id and scheme (image, video, document...)."""

    id: str
    scheme: str
    display_name: str = Field("", alias="displayName")


class CantoAssetUrls(_CantoModel):
    """The `url` block of an asset: API links to previews, metadata and the original."""

    preview: str | None = None
    download: str | None = None
    detail: str | None = None
    metadata: str | None = None
    direct_url_original: str | None = Field(None, alias="directUrlOriginal")
    direct_url_preview: str | None = Field(None, alias="directUrlPreview")
    png: str | None = Field(None, alias="PNG")
    high_jpg: str | None = Field(None, alias="HighJPG")
    low_jpg: str | None = Field(None, alias="LowJPG")


class CantoRelatedAlbum(_CantoModel):
    """An album an asset belongs to, with its place in the library tree."""

    id: str
    name: str = ""
    id_path: str = Field("", alias="idPath")
    name_path: str = Field("", alias="namePath")


class CantoAsset(_CantoModel):
    """One asset as returned by search, `/{scheme}/{id}` and `/batch/content`.

    `additional` holds the tenant's custom fields (Rights, Campaign, Product Line, Region...).
    The expiration date is read from `expirationDate` (field name unconfirmed).
    """

    id: str
    scheme: str
    name: str = ""
    approval_status: str = Field("", alias="approvalStatus")
    expiration_date: CantoDate = Field(None, alias="expirationDate")
    metadata: dict[str, Any] = Field(default_factory=dict)
    additional: dict[str, Any] = Field(default_factory=dict)
    default_fields: dict[str, Any] = Field(default_factory=dict, alias="default")
    keyword: StringList = Field(default_factory=list)
    tag: StringList = Field(default_factory=list)
    related_albums: list[CantoRelatedAlbum] = Field(default_factory=list, alias="relatedAlbums")
    url: CantoAssetUrls = Field(default_factory=CantoAssetUrls)
    size: str | int | None = None
    owner_name: str | None = Field(None, alias="ownerName")
    copyright: str | None = None
    terms_and_conditions: str | None = Field(None, alias="termsAndConditions")
    time: CantoDate = None
    created: CantoDate = None
    last_uploaded: CantoDate = Field(None, alias="lastUploaded")

    @property
    def ref(self) -> CantoAssetRef:
        """This asset's address for batch calls."""
        return CantoAssetRef(id=self.id, scheme=self.scheme, display_name=self.name)

    def custom_field(self, name: str) -> str | None:
        """A custom field's value as text (lists joined with ", "), or None when unset."""
        value = self.additional.get(name)
        if value is None or value == "":
            return None
        if isinstance(value, list):
            return ", ".join(str(item) for item in value)
        return str(value)


class CantoApproval(_CantoModel):
    """An asset's approval as of `checked_at`; an Approved asset past its expiry counts as Expired."""

    asset: CantoAssetRef
    status: str
    expires_at: datetime | None
    checked_at: datetime

    @property
    def is_usable(self) -> bool:
        """Approved and not expired: the only state in which an asset may be released."""
        return self.status == CantoApprovalStatus.APPROVED

    @property
    def is_expired(self) -> bool:
        """Canto says Expired, or the expiry passed before Canto flipped the status."""
        return self.status == CantoApprovalStatus.EXPIRED

    def expires_within(self, window: timedelta) -> bool:
        """Usable now but expiring within `window` of `checked_at`."""
        return self.is_usable and self.expires_at is not None and self.expires_at - self.checked_at <= window


class CantoSearchPage(_CantoModel):
    """One page of `/search` or `/album/{id}`: results plus the total found."""

    results: list[CantoAsset] = Field(default_factory=list)
    found: int = 0
    limit: int | None = None
    start: int | None = None


class CantoBatchContent(_CantoModel):
    """`POST /batch/content` answer."""

    doc_result: list[CantoAsset] = Field(default_factory=list, alias="docResult")


class CantoTreeNode(_CantoModel):
    """A folder or album of the library tree; folders carry `children`."""

    id: str
    name: str = ""
    scheme: str = ""
    id_path: str = Field("", alias="idPath")
    name_path: str = Field("", alias="namePath")
    description: str | None = None
    size: int | str | None = None
    children: list[CantoTreeNode] = Field(default_factory=list)

    @property
    def is_album(self) -> bool:
        """Albums hold assets; folders hold albums and folders."""
        return self.scheme == "album"

    def walk(self) -> Iterator[CantoTreeNode]:
        """This node and every node below it, depth first."""
        yield self
        for child in self.children:
            yield from child.walk()


class CantoTree(_CantoModel):
    """`GET /tree` answer."""

    results: list[CantoTreeNode] = Field(default_factory=list)


class CantoPropertyUpdate(_CantoModel):
    """One property change for `PUT /batch/edit`; custom fields need `custom_field=True`.

    `action` is "" to set the value; Canto also knows list actions (e.g. for keywords).
    """

    property_id: str = Field(alias="propertyId")
    property_value: str = Field(alias="propertyValue")
    action: str = ""
    custom_field: bool = Field(False, alias="customField")


class CantoTokenResponse(_CantoModel):
    """The OAuth token endpoint's camelCase answer."""

    access_token: SecretStr = Field(alias="accessToken")
    expires_in: int = Field(alias="expiresIn", gt=0)
    token_type: str = Field("bearer", alias="tokenType")
    refresh_token: SecretStr | None = Field(None, alias="refreshToken")


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _segment(value: str) -> str:
    return quote(value, safe="")


def _scheme_segment(scheme: str) -> str:
    if not _SCHEME.match(scheme):
        raise ValueError(f"not a Canto scheme: {scheme!r}")
    return scheme


def _check_page_size(page_size: int) -> None:
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise ValueError(f"page_size must be within 1..{MAX_PAGE_SIZE}")


def _chunks(items: Sequence[CantoAssetRef], size: int) -> Iterator[Sequence[CantoAssetRef]]:
    for offset in range(0, len(items), size):
        yield items[offset : offset + size]


class CantoConnector:
    """Typed calls to one Canto tenant; owns its HTTP clients (use `async with` or `aclose`)."""

    vendor = "canto"

    def __init__(
        self,
        settings: CantoSettings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        monotonic: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = _utc_now,
        refresh_ahead: float = 60.0,
    ) -> None:
        self._settings = settings
        self._now = now
        self._monotonic = monotonic
        self._refresh_token: str | None = (
            settings.refresh_token.get_secret_value() if settings.refresh_token else None
        )
        self._oauth = VendorClient(
            vendor=self.vendor,
            base_url=settings.oauth_url,
            options=settings.http,
            transport=transport,
            sleep=sleep,
            monotonic=monotonic,
        )
        self.tokens = TokenProvider(self._fetch_token, refresh_ahead=refresh_ahead, monotonic=monotonic)
        self._client = VendorClient(
            vendor=self.vendor,
            base_url=settings.base_url.rstrip("/") + CANTO_API_PATH,
            options=settings.http,
            auth=self.tokens,
            transport=transport,
            sleep=sleep,
            monotonic=monotonic,
        )

    @property
    def client(self) -> VendorClient:
        """The API client (exposes `last_request_id` and the circuit breaker)."""
        return self._client

    async def aclose(self) -> None:
        """Close both HTTP clients."""
        await self._client.aclose()
        await self._oauth.aclose()

    async def __aenter__(self) -> CantoConnector:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- OAuth ---------------------------------------------------------------------------------

    async def _fetch_token(self) -> Token:
        """A new app token: refresh_token grant when we hold one, else client_credentials."""
        if self._refresh_token is not None:
            try:
                return await self._request_token("refresh_token", refresh_token=self._refresh_token)
            except AuthError:
                # Refresh tokens expire or get revoked; the app credentials still work.
                logger.info("canto refresh token refused; falling back to client_credentials")
                self._refresh_token = None
        return await self._request_token("client_credentials")

    async def _request_token(self, grant_type: str, *, refresh_token: str | None = None) -> Token:
        params = {
            "app_id": self._settings.app_id,
            "app_secret": self._settings.app_secret.get_secret_value(),
            "grant_type": grant_type,
        }
        if refresh_token is not None:
            params["refresh_token"] = refresh_token
        try:
            answer = await self._oauth.send_model(
                "POST", CANTO_TOKEN_PATH, CantoTokenResponse, params=params, authenticate=False
            )
        except (BadRequest, Forbidden) as exc:
            # The token endpoint says "no" with 400/403 too: to callers that is an auth failure.
            raise AuthError(
                exc.detail,
                vendor=self.vendor,
                status=exc.status,
                request_id=exc.request_id,
                method=exc.method,
                url=exc.url,
            ) from exc
        if answer.refresh_token is not None:
            self._refresh_token = answer.refresh_token.get_secret_value()
        return Token.expiring_in(answer.access_token, answer.expires_in, monotonic=self._monotonic)

    # -- assets --------------------------------------------------------------------------------

    async def search(
        self,
        keyword: str = "",
        *,
        scheme: str | Sequence[str] | None = None,
        approval: str | None = None,
        page_size: int = DEFAULT_PAGE_SIZE,
        sort_by: str | None = None,
        sort_direction: str | None = None,
    ) -> AsyncIterator[CantoAsset]:
        """Every asset matching the search, fetched page by page (start/limit until found)."""
        _check_page_size(page_size)
        params: dict[str, str | int] = {"keyword": keyword}
        if scheme:
            params["scheme"] = scheme if isinstance(scheme, str) else "|".join(scheme)
        if approval:
            params["approval"] = approval
        if sort_by:
            params["sortBy"] = sort_by
        if sort_direction:
            params["sortDirection"] = sort_direction
        async for asset in self._paged("/search", params, page_size):
            yield asset

    async def _paged(
        self, path: str, params: Mapping[str, str | int], page_size: int
    ) -> AsyncIterator[CantoAsset]:
        start = 0
        while True:
            page = await self._client.get_model(
                path, CantoSearchPage, params={**params, "start": start, "limit": page_size}
            )
            for asset in page.results:
                yield asset
            # Advance by what arrived: a server that caps `limit` lower must not make us skip.
            start += len(page.results)
            if not page.results or start >= page.found:
                return

    async def get_asset(self, scheme: str, asset_id: str) -> CantoAsset:
        """One asset's full details (`GET /{scheme}/{id}`); NotFound if it does not exist."""
        return await self._client.get_model(f"/{_scheme_segment(scheme)}/{_segment(asset_id)}", CantoAsset)

    async def get_assets(self, refs: Sequence[CantoAssetRef]) -> list[CantoAsset]:
        """Details of many assets via `POST /batch/content`, in chunks; unknown ids are omitted."""
        found: list[CantoAsset] = []
        for chunk in _chunks(refs, BATCH_CHUNK):
            body = [{"id": ref.id, "scheme": ref.scheme} for ref in chunk]
            # A read despite POST: safe to retry.
            answer = await self._client.send_model(
                "POST", "/batch/content", CantoBatchContent, json=body, idempotent=True
            )
            found.extend(answer.doc_result)
        return found

    async def get_approval(self, scheme: str, asset_id: str) -> CantoApproval:
        """The asset's approval status and expiry, judged against the injected clock."""
        asset = await self.get_asset(scheme, asset_id)
        return self.approval_of(asset)

    def approval_of(self, asset: CantoAsset) -> CantoApproval:
        """Approval of an asset already fetched; an Approved asset past its expiry is Expired."""
        checked_at = self._now()
        status = asset.approval_status
        if (
            status == CantoApprovalStatus.APPROVED
            and asset.expiration_date is not None
            and asset.expiration_date <= checked_at
        ):
            status = CantoApprovalStatus.EXPIRED
        return CantoApproval(
            asset=asset.ref, status=status, expires_at=asset.expiration_date, checked_at=checked_at
        )

    async def download_url(self, scheme: str, asset_id: str) -> str:
        """The URL of the asset's original file (direct URL when Canto offers one)."""
        return self._original_url(await self.get_asset(scheme, asset_id))

    def _original_url(self, asset: CantoAsset) -> str:
        url = asset.url.direct_url_original or asset.url.download
        if not url:
            raise InvalidResponse(
                "asset has no download URL", vendor=self.vendor, request_id=self._client.last_request_id
            )
        return url

    @asynccontextmanager
    async def open_original(
        self, scheme: str, asset_id: str, *, chunk_size: int = DEFAULT_CHUNK_SIZE
    ) -> AsyncIterator[Download]:
        """Stream the asset's original: `download.chunks` yields it piece by piece, never whole.

        `download.size` is Canto's Content-Length. A connection lost mid-file raises Unavailable
        from the iterator; the transfer then starts again from the beginning.
        """
        asset = await self.get_asset(scheme, asset_id)
        url = self._original_url(asset)
        async with self._client.stream("GET", url) as response:
            length = response.headers.get("Content-Length")
            yield Download(
                name=asset.name,
                size=int(length) if length and length.isdigit() else None,
                content_type=response.headers.get("Content-Type", "application/octet-stream"),
                chunks=self._chunks_of(response, chunk_size),
            )

    async def _chunks_of(self, response: httpx.Response, chunk_size: int) -> AsyncIterator[bytes]:
        try:
            async for chunk in response.aiter_bytes(chunk_size):
                yield chunk
        except httpx.TransportError as exc:
            raise Unavailable(
                f"{type(exc).__name__} while downloading the original",
                vendor=self.vendor,
                request_id=self._client.last_request_id,
                method="GET",
                url=str(response.request.url.copy_with(query=None)),
            ) from exc

    # -- metadata ------------------------------------------------------------------------------

    async def update_properties(
        self, refs: Sequence[CantoAssetRef], updates: Sequence[CantoPropertyUpdate]
    ) -> None:
        """Apply property changes to every asset via `PUT /batch/edit` (answers plain `success`)."""
        if not refs or not updates:
            raise ValueError("update_properties needs at least one asset and one property")
        properties = [update.model_dump(by_alias=True) for update in updates]
        # Setting a value twice is harmless; list actions (add/remove) are not safe to repeat.
        idempotent = not any(update.action for update in updates)
        for chunk in _chunks(refs, BATCH_CHUNK):
            body = {
                "contents": [{"id": ref.id, "scheme": ref.scheme} for ref in chunk],
                "properties": properties,
            }
            response = await self._client.request("PUT", "/batch/edit", json=body, idempotent=idempotent)
            if response.text.strip().strip('"').lower() != BATCH_EDIT_SUCCESS:
                raise InvalidResponse(
                    f"batch edit did not answer {BATCH_EDIT_SUCCESS!r}: {response.text[:80]!r}",
                    vendor=self.vendor,
                    status=response.status_code,
                    request_id=self._client.last_request_id,
                    method="PUT",
                    url=str(response.request.url),
                )

    async def update_custom_fields(self, refs: Sequence[CantoAssetRef], fields: Mapping[str, str]) -> None:
        """Set custom fields (Rights, Campaign, Region...) on every asset."""
        await self.update_properties(
            refs,
            [
                CantoPropertyUpdate(property_id=name, property_value=value, custom_field=True)
                for name, value in fields.items()
            ],
        )

    # -- albums --------------------------------------------------------------------------------

    async def get_tree(self, folder_id: str | None = None, *, layer: int = -1) -> list[CantoTreeNode]:
        """The library tree (or one folder's subtree); `layer=-1` means all levels."""
        path = "/tree" if folder_id is None else f"/tree/{_segment(folder_id)}"
        tree = await self._client.get_model(path, CantoTree, params={"layer": layer})
        return tree.results

    async def find_album(self, name_path: str) -> CantoTreeNode | None:
        """The album at `Folder/Sub/Album` (as Canto's namePath), or None."""
        wanted = name_path.strip("/")
        for root in await self.get_tree():
            for node in root.walk():
                if node.is_album and node.name_path.strip("/") == wanted:
                    return node
        return None

    async def get_album(self, album_id: str) -> CantoTreeNode:
        """One album's details (`GET /info/album/{id}`)."""
        return await self._client.get_model(f"/info/album/{_segment(album_id)}", CantoTreeNode)

    async def album_contents(
        self, album_id: str, *, page_size: int = DEFAULT_PAGE_SIZE
    ) -> AsyncIterator[CantoAsset]:
        """Every asset of an album (`GET /album/{id}`), page by page."""
        _check_page_size(page_size)
        async for asset in self._paged(f"/album/{_segment(album_id)}", {}, page_size):
            yield asset

    async def create_album(self, name: str, *, parent_folder_id: str, description: str = "") -> CantoTreeNode:
        """Create an album inside a folder (`POST /album/{parent}/{name}`)."""
        return await self._client.send_model(
            "POST",
            f"/album/{_segment(parent_folder_id)}/{_segment(name)}",
            CantoTreeNode,
            params={"description": description},
        )

    async def assign_to_album(self, album_path: str, refs: Sequence[CantoAssetRef]) -> None:
        """Put assets into the album at `album_path` (`POST /batch/album`), creating it if needed."""
        if not refs:
            raise ValueError("assign_to_album needs at least one asset")
        body = {
            "albumPath": album_path,
            "contents": [
                {"id": ref.id, "scheme": ref.scheme, "displayName": ref.display_name} for ref in refs
            ],
        }
        await self._client.request("POST", "/batch/album", json=body)
