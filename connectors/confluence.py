"""Confluence connector: one typed interface over Cloud (REST v2 + v1) and Data Center (REST v1).

Cloud uses REST v2 for spaces and pages and v1 for what v2 cannot do (adding labels, uploading
attachments, CQL search); Data Center speaks v1 for everything. Callers see the same models and
errors either way::

    async with ConfluenceConnector(settings) as confluence:
        write = await confluence.upsert_page("INT", "Release 1.4", body, parent_id=runbooks.id)
        await confluence.add_labels(write.page.id, ["release"])
        async for hit in confluence.search(f"space = INT AND label = {cql_literal('release')}"):
            ...

Updates send ``version.number = current + 1``; when Confluence answers 409 (someone else saved
first) the page is re-read and the update retried, at most ``max_update_attempts`` times. On
Data Center an unknown personal access token is not rejected but served as the anonymous user,
so the connector checks ``GET /rest/api/user/current`` once before its first call.
"""

from __future__ import annotations

import asyncio
import base64
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, Literal, Protocol, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from connectors.auth import StaticHeaders
from connectors.confluence_storage import storage_equivalent
from connectors.errors import AuthError, Conflict, InvalidResponse, NotFound
from connectors.http import HttpOptions, VendorClient, default_error_detail

if TYPE_CHECKING:
    from connectors.base import DocumentStore

__all__ = [
    "Attachment",
    "ConfluenceConnector",
    "ConfluenceSettings",
    "CurrentUser",
    "Label",
    "Page",
    "PageSummary",
    "PageWrite",
    "SearchHit",
    "Space",
    "confluence_error_detail",
    "cql_literal",
]

VENDOR = "confluence"
DEFAULT_PAGE_SIZE = 25
_V2 = "/wiki/api/v2"


# -------------------------------------------------------------------------------- settings


class ConfluenceSettings(BaseModel):
    """Where and how to reach one Confluence site.

    ``base_url`` is the site root: ``https://example.atlassian.net`` for Cloud (a trailing ``/wiki``
    is tolerated), ``https://confluence.example.com[/context]`` for Data Center. Cloud
    authenticates with ``email`` + ``api_token`` (Basic), Data Center with a personal access token
    ``pat`` (Bearer).
    """

    model_config = ConfigDict(extra="forbid")

    flavour: Literal["cloud", "datacenter"]
    base_url: str
    email: str | None = None
    api_token: SecretStr | None = None
    pat: SecretStr | None = None
    verify_identity: bool = True
    max_update_attempts: int = Field(3, ge=1, le=10)
    http: HttpOptions = Field(default_factory=HttpOptions)

    @field_validator("base_url")
    @classmethod
    def _site_root(cls, value: str) -> str:
        url = httpx.URL(value)
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError("base_url must be an absolute http(s) URL")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _credentials_match_flavour(self) -> ConfluenceSettings:
        if self.flavour == "cloud":
            if not self.email or self.api_token is None:
                raise ValueError("Confluence Cloud needs email and api_token")
            if self.pat is not None:
                raise ValueError("Confluence Cloud uses email + api_token, not pat")
            self.base_url = self.base_url.removesuffix("/wiki")
        else:
            if self.pat is None:
                raise ValueError("Confluence Data Center needs pat (a personal access token)")
            if self.email or self.api_token is not None:
                raise ValueError("Confluence Data Center uses pat, not email + api_token")
        return self


# ------------------------------------------------------------------------------ public models


class _Result(BaseModel):
    model_config = ConfigDict(frozen=True)


class Space(_Result):
    """A space; ``homepage_id`` is where new pages go when no parent is given."""

    id: str
    key: str
    name: str
    homepage_id: str | None = None


class PageSummary(_Result):
    """A page as listed (no body, no version)."""

    id: str
    title: str
    space_id: str | None = None
    parent_id: str | None = None


class Page(_Result):
    """A page with its storage-format body and current version number."""

    id: str
    title: str
    space_id: str | None
    parent_id: str | None
    version: int
    body: str
    web_url: str | None = None


class PageWrite(_Result):
    """What upsert_page did: created a page, updated it, or found it already identical."""

    page: Page
    outcome: Literal["created", "updated", "unchanged"]


class Label(_Result):
    prefix: str
    name: str
    id: str | None = None


class Attachment(_Result):
    id: str
    title: str
    version: int | None = None
    media_type: str | None = None
    file_size: int | None = None
    download_url: str | None = None


class SearchHit(_Result):
    """One CQL search result; ``id``/``type`` are set when the hit is a piece of content."""

    title: str
    id: str | None = None
    type: str | None = None
    url: str | None = None
    excerpt: str | None = None
    space_name: str | None = None
    last_modified: str | None = None


class CurrentUser(_Result):
    """Who Confluence thinks we are; ``type`` is "known", "anonymous" or "unknown"."""

    type: str
    display_name: str | None = None
    account_id: str | None = None
    username: str | None = None


# ------------------------------------------------------------------------ wire shapes (vendor)


class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore")


class _Links(_Wire):
    next: str | None = None
    base: str | None = None
    webui: str | None = None
    download: str | None = None


W = TypeVar("W", bound=_Wire)


class _Listing(_Wire, Generic[W]):
    """A v2 or v1 list: ``results`` plus ``_links`` (``next`` when there is more)."""

    results: list[W]
    links: _Links = Field(default_factory=_Links, alias="_links")


class _V2Space(_Wire):
    id: str
    key: str
    name: str
    homepageId: str | None = None


class _BodyValue(_Wire):
    value: str


class _V2Body(_Wire):
    storage: _BodyValue | None = None


class _V2Version(_Wire):
    number: int


class _V2Page(_Wire):
    id: str
    title: str
    spaceId: str | None = None
    parentId: str | None = None
    version: _V2Version | None = None
    body: _V2Body | None = None
    links: _Links = Field(default_factory=_Links, alias="_links")


class _V2ChildPage(_Wire):
    id: str
    title: str
    spaceId: str | None = None


class _V1SpaceRef(_Wire):
    id: int | str | None = None
    key: str
    name: str | None = None


class _V1Version(_Wire):
    number: int


class _V1Body(_Wire):
    storage: _BodyValue | None = None


class _V1Ancestor(_Wire):
    id: str


class _V1Content(_Wire):
    id: str
    type: str
    title: str
    space: _V1SpaceRef | None = None
    version: _V1Version | None = None
    body: _V1Body | None = None
    ancestors: list[_V1Ancestor] | None = None
    links: _Links = Field(default_factory=_Links, alias="_links")


class _V1Space(_Wire):
    id: int | str
    key: str
    name: str
    homepage: _V1Ancestor | None = None


class _V1Label(_Wire):
    prefix: str
    name: str
    id: str | None = None


class _V1AttachmentExtensions(_Wire):
    mediaType: str | None = None
    fileSize: int | None = None


class _V1Attachment(_Wire):
    id: str
    title: str
    version: _V1Version | None = None
    extensions: _V1AttachmentExtensions | None = None
    links: _Links = Field(default_factory=_Links, alias="_links")


class _V1SearchContent(_Wire):
    id: str | None = None
    type: str | None = None


class _V1Container(_Wire):
    title: str | None = None


class _V1SearchResult(_Wire):
    title: str
    content: _V1SearchContent | None = None
    url: str | None = None
    excerpt: str | None = None
    resultGlobalContainer: _V1Container | None = None
    lastModified: str | None = None


class _V1User(_Wire):
    type: str
    displayName: str | None = None
    accountId: str | None = None
    username: str | None = None


# ---------------------------------------------------------------------------------- errors


def confluence_error_detail(response: httpx.Response) -> str:
    """The vendor's message from a v2 ``{"errors": [...]}`` or v1/DC ``{"statusCode", "message"}`` body."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        errors = body.get("errors")
        if isinstance(errors, list) and errors:
            parts = []
            for error in errors:
                if not isinstance(error, dict):
                    continue
                title = error.get("title") or error.get("code") or ""
                detail = error.get("detail")
                parts.append(f"{title}: {detail}" if detail else str(title))
            if any(parts):
                return "; ".join(part for part in parts if part)
        message = body.get("message")
        if isinstance(message, str) and message.strip():
            return message
    return default_error_detail(response)


_CONTENT_ID = re.compile(r"[0-9]{1,20}")


def _content_id(value: str) -> str:
    # Ids are put into URL paths: anything but digits could point the call elsewhere.
    if not _CONTENT_ID.fullmatch(value):
        raise ValueError(f"Confluence content ids are numeric, got {value!r}")
    return value


def _optional_id(value: str | None) -> str | None:
    return None if value is None else _content_id(value)


def cql_literal(value: str) -> str:
    """``value`` as a quoted CQL string, so user text cannot change the query."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


# ------------------------------------------------------------------------------- flavours


class _FlavourApi(Protocol):
    """The flavour-specific calls; ConfluenceConnector adds the shared behaviour on top."""

    async def get_space(self, key: str) -> Space: ...
    async def find_page(self, space: Space, title: str) -> Page | None: ...
    async def get_page(self, page_id: str) -> Page: ...
    async def create_page(self, space: Space, title: str, body: str, parent_id: str | None) -> Page: ...
    async def update_page(self, current: Page, title: str, body: str, message: str | None) -> Page: ...
    def iter_pages(self, space: Space, page_size: int) -> AsyncIterator[PageSummary]: ...
    def iter_child_pages(self, page_id: str, page_size: int) -> AsyncIterator[PageSummary]: ...


class _V1Api:
    """REST v1 calls shared by both flavours (Cloud under /wiki/rest/api, Data Center /rest/api)."""

    def __init__(self, client: VendorClient, *, context: str, site_url: str) -> None:
        self.client = client
        self.context = context  # "/wiki" on Cloud, "" on Data Center (base_url holds any context)
        self.root = f"{context}/rest/api"
        self.site_url = site_url

    async def iterate(
        self, path: str, params: Mapping[str, str | int], model: type[W], *, max_items: int | None = None
    ) -> AsyncIterator[W]:
        """Follow v1 ``_links.next`` (relative to the context path) until the last page."""
        url: str | None = path
        query: Mapping[str, str | int] | None = params
        seen: set[str] = set()
        yielded = 0
        while url is not None:
            response = await self.client.request("GET", url, params=query)
            page = self.client.parse_model(response, _Listing[model])  # type: ignore[valid-type]
            for item in page.results:
                if max_items is not None and yielded >= max_items:
                    return
                yielded += 1
                yield item
            url, query = _v1_next(page.links.next, self.context, seen, response), None

    def page_of(self, content: _V1Content) -> Page:
        ancestors = content.ancestors or []
        return Page(
            id=content.id,
            title=content.title,
            space_id=None if content.space is None or content.space.id is None else str(content.space.id),
            parent_id=ancestors[-1].id if ancestors else None,
            version=content.version.number if content.version else 0,
            body=content.body.storage.value if content.body and content.body.storage else "",
            web_url=self.web_url(content.links.webui),
        )

    def web_url(self, webui: str | None) -> str | None:
        return None if webui is None else f"{self.site_url}{self.context}{webui}"

    async def add_labels(self, page_id: str, names: list[str]) -> list[Label]:
        response = await self.client.request(
            "POST",
            f"{self.root}/content/{page_id}/label",
            json=[{"prefix": "global", "name": name} for name in names],
            # Adding the same labels again changes nothing, so a retry is safe.
            idempotent=True,
        )
        labels = self.client.parse_model(response, _Listing[_V1Label])
        return [Label(prefix=label.prefix, name=label.name, id=label.id) for label in labels.results]

    async def attach_file(
        self,
        page_id: str,
        filename: str,
        content: bytes,
        *,
        media_type: str,
        comment: str | None,
        minor_edit: bool,
    ) -> Attachment:
        data = {"minorEdit": "true" if minor_edit else "false"}
        if comment is not None:
            data["comment"] = comment
        response = await self.client.request(
            "PUT",  # create, or add a new version when the page already has this file name
            f"{self.root}/content/{page_id}/child/attachment",
            files={"file": (filename, content, media_type)},
            data=data,
            headers={"X-Atlassian-Token": "nocheck"},
            idempotent=False,
        )
        uploaded = self.client.parse_model(response, _Listing[_V1Attachment])
        if not uploaded.results:
            raise InvalidResponse(
                "attachment upload answered with no attachment", vendor=VENDOR, status=response.status_code
            )
        item = uploaded.results[0]
        download = item.links.download
        return Attachment(
            id=item.id,
            title=item.title,
            version=item.version.number if item.version else None,
            media_type=item.extensions.mediaType if item.extensions else None,
            file_size=item.extensions.fileSize if item.extensions else None,
            download_url=None if download is None else f"{self.site_url}{self.context}{download}",
        )

    async def search(self, cql: str, page_size: int, max_results: int | None) -> AsyncIterator[SearchHit]:
        async for result in self.iterate(
            f"{self.root}/search", {"cql": cql, "limit": page_size}, _V1SearchResult, max_items=max_results
        ):
            yield SearchHit(
                title=result.title,
                id=result.content.id if result.content else None,
                type=result.content.type if result.content else None,
                url=None if result.url is None else f"{self.site_url}{self.context}{result.url}",
                excerpt=result.excerpt,
                space_name=result.resultGlobalContainer.title if result.resultGlobalContainer else None,
                last_modified=result.lastModified,
            )

    async def current_user(self) -> CurrentUser:
        user = await self.client.get_model(f"{self.root}/user/current", _V1User)
        return CurrentUser(
            type=user.type, display_name=user.displayName, account_id=user.accountId, username=user.username
        )


def _v1_next(next_link: str | None, context: str, seen: set[str], response: httpx.Response) -> str | None:
    if not next_link:
        return None
    # Relative to the context path; resolved against our own base URL so credentials never follow
    # a host the vendor names (an absolute link keeps its host and gets no credentials).
    url = next_link if next_link.startswith(("http://", "https://")) else f"{context}{next_link}"
    return _guard_loop(url, seen, response)


def _v2_next(links: _Links, response: httpx.Response, seen: set[str]) -> str | None:
    next_link = links.next or response.links.get("next", {}).get("url")
    if not next_link:
        return None
    return _guard_loop(next_link, seen, response)


def _guard_loop(url: str, seen: set[str], response: httpx.Response) -> str:
    if url in seen:
        raise InvalidResponse(
            "pagination next link repeats a page already read",
            vendor=VENDOR,
            status=response.status_code,
            method="GET",
            url=str(response.request.url.copy_with(query=None)),
        )
    seen.add(url)
    return url


class _CloudApi:
    """Confluence Cloud: REST v2 for spaces and pages."""

    def __init__(self, client: VendorClient, v1: _V1Api) -> None:
        self.client = client
        self.v1 = v1

    async def iterate(self, path: str, params: Mapping[str, str | int], model: type[W]) -> AsyncIterator[W]:
        """Follow the v2 cursor: ``_links.next`` (site-relative), else the ``Link: rel="next"`` header."""
        url: str | None = path
        query: Mapping[str, str | int] | None = params
        seen: set[str] = set()
        while url is not None:
            response = await self.client.request("GET", url, params=query)
            page = self.client.parse_model(response, _Listing[model])  # type: ignore[valid-type]
            for item in page.results:
                yield item
            url, query = _v2_next(page.links, response, seen), None

    def page_of(self, page: _V2Page) -> Page:
        return Page(
            id=page.id,
            title=page.title,
            space_id=page.spaceId,
            parent_id=page.parentId,
            version=page.version.number if page.version else 0,
            body=page.body.storage.value if page.body and page.body.storage else "",
            web_url=self.v1.web_url(page.links.webui),
        )

    async def get_space(self, key: str) -> Space:
        async for space in self.iterate(f"{_V2}/spaces", {"keys": key}, _V2Space):
            if space.key == key:
                return Space(id=space.id, key=space.key, name=space.name, homepage_id=space.homepageId)
        raise NotFound(f"space {key!r} not found or not visible", vendor=VENDOR, status=404)

    async def find_page(self, space: Space, title: str) -> Page | None:
        params = {"space-id": space.id, "title": title, "body-format": "storage"}
        async for page in self.iterate(f"{_V2}/pages", params, _V2Page):
            if page.title == title:
                return self.page_of(page)
        return None

    async def get_page(self, page_id: str) -> Page:
        page = await self.client.get_model(
            f"{_V2}/pages/{page_id}", _V2Page, params={"body-format": "storage"}
        )
        return self.page_of(page)

    async def create_page(self, space: Space, title: str, body: str, parent_id: str | None) -> Page:
        payload: dict[str, Any] = {
            "spaceId": space.id,
            "status": "current",
            "title": title,
            "body": {"representation": "storage", "value": body},
        }
        if parent_id is not None:
            payload["parentId"] = parent_id
        return self.page_of(await self.client.send_model("POST", f"{_V2}/pages", _V2Page, json=payload))

    async def update_page(self, current: Page, title: str, body: str, message: str | None) -> Page:
        version: dict[str, Any] = {"number": current.version + 1}
        if message:
            version["message"] = message
        payload = {
            "id": current.id,
            "status": "current",
            "title": title,
            "body": {"representation": "storage", "value": body},
            "version": version,
        }
        page = await self.client.send_model("PUT", f"{_V2}/pages/{current.id}", _V2Page, json=payload)
        return self.page_of(page)

    async def iter_pages(self, space: Space, page_size: int) -> AsyncIterator[PageSummary]:
        async for page in self.iterate(f"{_V2}/spaces/{space.id}/pages", {"limit": page_size}, _V2Page):
            yield PageSummary(id=page.id, title=page.title, space_id=page.spaceId, parent_id=page.parentId)

    async def iter_child_pages(self, page_id: str, page_size: int) -> AsyncIterator[PageSummary]:
        async for child in self.iterate(
            f"{_V2}/pages/{page_id}/children", {"limit": page_size}, _V2ChildPage
        ):
            yield PageSummary(id=child.id, title=child.title, space_id=child.spaceId, parent_id=page_id)


class _DataCenterApi:
    """Confluence Data Center / Server: REST v1 /rest/api/content."""

    _EXPAND = "body.storage,version,space,ancestors"

    def __init__(self, client: VendorClient, v1: _V1Api) -> None:
        self.client = client
        self.v1 = v1

    def summary_of(self, content: _V1Content) -> PageSummary:
        page = self.v1.page_of(content)
        return PageSummary(id=page.id, title=page.title, space_id=page.space_id, parent_id=page.parent_id)

    async def get_space(self, key: str) -> Space:
        space = await self.client.get_model(
            f"{self.v1.root}/space/{quote(key, safe='~')}", _V1Space, params={"expand": "homepage"}
        )
        return Space(
            id=str(space.id),
            key=space.key,
            name=space.name,
            homepage_id=space.homepage.id if space.homepage else None,
        )

    async def find_page(self, space: Space, title: str) -> Page | None:
        params = {"spaceKey": space.key, "title": title, "type": "page", "expand": self._EXPAND}
        async for content in self.v1.iterate(f"{self.v1.root}/content", params, _V1Content):
            if content.title == title:
                return self.v1.page_of(content)
        return None

    async def get_page(self, page_id: str) -> Page:
        content = await self.client.get_model(
            f"{self.v1.root}/content/{page_id}", _V1Content, params={"expand": self._EXPAND}
        )
        return self.v1.page_of(content)

    async def create_page(self, space: Space, title: str, body: str, parent_id: str | None) -> Page:
        payload: dict[str, Any] = {
            "type": "page",
            "title": title,
            "space": {"key": space.key},
            "body": {"storage": {"value": body, "representation": "storage"}},
        }
        # v1 without ancestors makes a top-level page; Cloud v2 would use the home page: match it.
        parent = parent_id or space.homepage_id
        if parent is not None:
            payload["ancestors"] = [{"id": parent}]
        content = await self.client.send_model(
            "POST", f"{self.v1.root}/content", _V1Content, json=payload, params={"expand": self._EXPAND}
        )
        return self.v1.page_of(content)

    async def update_page(self, current: Page, title: str, body: str, message: str | None) -> Page:
        version: dict[str, Any] = {"number": current.version + 1}
        if message:
            version["message"] = message
        payload = {
            "id": current.id,
            "type": "page",
            "status": "current",
            "title": title,
            "body": {"storage": {"value": body, "representation": "storage"}},
            "version": version,
        }
        content = await self.client.send_model(
            "PUT", f"{self.v1.root}/content/{current.id}", _V1Content, json=payload,
            params={"expand": self._EXPAND},
        )  # fmt: skip
        return self.v1.page_of(content)

    async def iter_pages(self, space: Space, page_size: int) -> AsyncIterator[PageSummary]:
        params: dict[str, str | int] = {
            "spaceKey": space.key, "type": "page", "limit": page_size, "expand": "space,ancestors"
        }  # fmt: skip
        async for content in self.v1.iterate(f"{self.v1.root}/content", params, _V1Content):
            yield self.summary_of(content)

    async def iter_child_pages(self, page_id: str, page_size: int) -> AsyncIterator[PageSummary]:
        params: dict[str, str | int] = {"limit": page_size, "expand": "space,ancestors"}
        async for content in self.v1.iterate(
            f"{self.v1.root}/content/{page_id}/child/page", params, _V1Content
        ):
            yield self.summary_of(content)


# ------------------------------------------------------------------------------- connector


class ConfluenceConnector:
    """Spaces, pages, labels, attachments and CQL search on Confluence Cloud or Data Center."""

    def __init__(
        self,
        settings: ConfluenceSettings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        if settings.flavour == "cloud":
            assert settings.email is not None and settings.api_token is not None  # settings validated
            pair = f"{settings.email}:{settings.api_token.get_secret_value()}".encode()
            authorization = SecretStr(f"Basic {base64.b64encode(pair).decode()}")
        else:
            assert settings.pat is not None
            authorization = SecretStr(f"Bearer {settings.pat.get_secret_value()}")
        self.client = VendorClient(
            vendor=VENDOR,
            base_url=settings.base_url,
            options=settings.http,
            auth=StaticHeaders({"Authorization": authorization}),
            headers={"Accept": "application/json"},
            transport=transport,
            sleep=sleep,
            monotonic=monotonic,
            error_parser=confluence_error_detail,
        )
        context = "/wiki" if settings.flavour == "cloud" else ""
        self._v1 = _V1Api(self.client, context=context, site_url=settings.base_url)
        self._api: _FlavourApi = (
            _CloudApi(self.client, self._v1)
            if settings.flavour == "cloud"
            else _DataCenterApi(self.client, self._v1)
        )
        self._identity_checked = not (settings.flavour == "datacenter" and settings.verify_identity)
        self._identity_lock = asyncio.Lock()
        self._spaces: dict[str, Space] = {}

    async def __aenter__(self) -> ConfluenceConnector:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the HTTP connection pool."""
        await self.client.aclose()

    async def _ready(self) -> None:
        if self._identity_checked:
            return
        async with self._identity_lock:
            if not self._identity_checked:
                await self.verify_identity()
                self._identity_checked = True

    async def current_user(self) -> CurrentUser:
        """``GET .../user/current``: who Confluence takes the credentials to be."""
        return await self._v1.current_user()

    async def verify_identity(self) -> CurrentUser:
        """The current user, or AuthError when Confluence treats the credentials as anonymous."""
        user = await self.current_user()
        if user.type != "known":
            raise AuthError(
                f"credentials were not accepted: Confluence serves this client as {user.type!r} user",
                vendor=VENDOR,
                status=200,
                request_id=self.client.last_request_id,
                method="GET",
                url=f"{self.settings.base_url}{self._v1.root}/user/current",
            )
        return user

    async def get_space(self, key: str) -> Space:
        """The space with this key; NotFound if it does not exist or we may not see it."""
        await self._ready()
        return await self._space(key)

    async def _space(self, key: str) -> Space:
        # Spaces (id, home page) practically never change; one lookup per key and connector.
        space = self._spaces.get(key)
        if space is None:
            space = self._spaces[key] = await self._api.get_space(key)
        return space

    async def find_page(self, space_key: str, title: str) -> Page | None:
        """The page titled exactly ``title`` in the space (with body and version), or None."""
        await self._ready()
        return await self._api.find_page(await self._space(space_key), title)

    async def get_page(self, page_id: str) -> Page:
        """The page with its storage body and current version; NotFound if absent or hidden."""
        await self._ready()
        return await self._api.get_page(_content_id(page_id))

    async def create_page(
        self, space_key: str, title: str, body: str, *, parent_id: str | None = None
    ) -> Page:
        """Create a page under ``parent_id`` (default: the space home page) with a storage body."""
        await self._ready()
        space = await self._space(space_key)
        return await self._api.create_page(space, title, body, _optional_id(parent_id))

    async def update_page(
        self, page: Page | str, *, body: str, title: str | None = None, message: str | None = None
    ) -> Page:
        """Save a new version of the page (current version + 1), keeping its title unless given.

        Pass the ``Page`` you read to update from that version; if someone saved in between,
        Confluence answers 409 and the page is re-read and the update retried (at most
        ``settings.max_update_attempts`` attempts, then Conflict).
        """
        await self._ready()
        current = page if isinstance(page, Page) else await self._api.get_page(_content_id(page))
        wanted_title = title or current.title
        attempts = self.settings.max_update_attempts
        for attempt in range(1, attempts + 1):
            try:
                return await self._api.update_page(current, wanted_title, body, message)
            except Conflict:
                if attempt == attempts:
                    raise
                current = await self._api.get_page(current.id)
                # A retried PUT whose first try did land, or an editor who saved the same text:
                # the page already says what we want, so another version would be noise.
                if current.title == wanted_title and storage_equivalent(current.body, body):
                    return current
        raise AssertionError("unreachable")  # pragma: no cover

    async def upsert_page(
        self,
        space_key: str,
        title: str,
        body: str,
        *,
        parent_id: str | None = None,
        message: str | None = None,
    ) -> PageWrite:
        """Make the page titled ``title`` in the space show ``body``: create, update or leave it.

        A new page goes under ``parent_id`` (default: the space home page). An existing page is
        updated in place, wherever it sits in the tree, and left alone (no new version) when its
        body is already the same storage XML.
        """
        await self._ready()
        space = await self._space(space_key)
        existing = await self._api.find_page(space, title)
        if existing is None:
            return PageWrite(
                page=await self._api.create_page(space, title, body, parent_id), outcome="created"
            )
        if storage_equivalent(existing.body, body):
            return PageWrite(page=existing, outcome="unchanged")
        return PageWrite(page=await self.update_page(existing, body=body, message=message), outcome="updated")

    async def add_labels(self, page_id: str, labels: Iterable[str]) -> list[Label]:
        """Add global labels to a page (v1 API); returns all labels the page now has."""
        await self._ready()
        names = list(labels)
        if not names:
            return []
        return await self._v1.add_labels(_content_id(page_id), names)

    async def attach_file(
        self,
        page_id: str,
        filename: str,
        content: bytes,
        *,
        media_type: str = "application/octet-stream",
        comment: str | None = None,
        minor_edit: bool = True,
    ) -> Attachment:
        """Upload a file to a page (v1 multipart); the same file name again adds a new version."""
        await self._ready()
        return await self._v1.attach_file(
            _content_id(page_id),
            filename,
            content,
            media_type=media_type,
            comment=comment,
            minor_edit=minor_edit,
        )

    async def search(
        self, cql: str, *, page_size: int = DEFAULT_PAGE_SIZE, max_results: int | None = None
    ) -> AsyncIterator[SearchHit]:
        """CQL search (v1), following next links; quote user text with ``cql_literal``."""
        await self._ready()
        async for hit in self._v1.search(cql, page_size, max_results):
            yield hit

    async def iter_pages(
        self, space_key: str, *, page_size: int = DEFAULT_PAGE_SIZE
    ) -> AsyncIterator[PageSummary]:
        """Every page of a space, fetched ``page_size`` at a time."""
        await self._ready()
        space = await self._space(space_key)
        async for page in self._api.iter_pages(space, page_size):
            yield page

    async def iter_child_pages(
        self, page_id: str, *, page_size: int = DEFAULT_PAGE_SIZE
    ) -> AsyncIterator[PageSummary]:
        """The direct children of a page, fetched ``page_size`` at a time."""
        await self._ready()
        async for page in self._api.iter_child_pages(_content_id(page_id), page_size):
            yield page


if TYPE_CHECKING:
    # mypy proves the connector satisfies the capability the use cases depend on.
    _document_store: type[DocumentStore] = ConfluenceConnector
