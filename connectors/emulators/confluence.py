"""Confluence emulator (Cloud REST v2 + v1, Data Center REST v1) answering as Atlassian does.

Cloud (``flavour="cloud"``): ``/wiki/api/v2/...`` and ``/wiki/rest/api/...``, Basic auth with
``email:api_token``. Data Center (``flavour="datacenter"``): ``/rest/api/...``, ``Authorization:
Bearer <PAT>``; an unknown PAT is treated as anonymous (401 unless ``anonymous_access``), exactly
the trap a client must detect with ``GET /rest/api/user/current``.

Behaviour kept from the vendor: missing read permission looks like 404; a stale
``version.number`` is a 409; bodies over 5 MB are a 413; malformed storage XHTML is a 400;
attachment uploads need ``X-Atlassian-Token: nocheck`` (else 403 "XSRF check failed"); v2 lists
page with an opaque cursor in ``_links.next`` (relative) and a ``Link`` header, v1 lists with
start/limit and ``_links.next`` relative to ``_links.base``. Seeded spaces: INT "Integration",
MKT "Marketing" (anonymous-readable), MEDIA "Media", and SEC "Security", which the emulated user
may not see. Fault injection and the request log come from ``faults``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import itertools
import json
import math
import re
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal
from urllib.parse import urlencode

from aiohttp import web
from multidict import MultiDict, MultiMapping

from connectors.confluence_storage import StorageFormatError, parse_storage
from connectors.emulators.faults import add_fault_injection, add_rate_limit

__all__ = [
    "DEFAULT_API_TOKEN",
    "DEFAULT_EMAIL",
    "DEFAULT_PAT",
    "MAX_BODY_BYTES",
    "ConfluenceState",
    "create_app",
    "state_of",
]

Flavour = Literal["cloud", "datacenter"]

DEFAULT_EMAIL: Final = "opsgate-bot@example.com"
DEFAULT_API_TOKEN: Final = "emulated-cloud-api-token"
DEFAULT_PAT: Final = "emulated-datacenter-pat"
MAX_BODY_BYTES: Final = 5 * 1024 * 1024  # "Requests for this resource can be at most 5242880 bytes"
V2_MAX_LIMIT: Final = 250
V1_MAX_LIMIT: Final = 200

_ACCOUNT_ID: Final = "557058:opsgate-bot"
_USERNAME: Final = "opsgate-bot"


# ---------------------------------------------------------------------------------------- state


@dataclass
class Label:
    id: str
    prefix: str
    name: str


@dataclass
class Attachment:
    id: str
    title: str
    media_type: str
    data: bytes
    comment: str
    version: int = 1


@dataclass
class Page:
    id: int
    space_id: int
    title: str
    body: str
    parent_id: int | None
    created_at: str
    version: int = 1
    version_message: str = ""
    version_at: str = ""
    labels: list[Label] = field(default_factory=list)
    attachments: list[Attachment] = field(default_factory=list)


@dataclass
class Space:
    id: int
    key: str
    name: str
    homepage_id: int
    anonymous_read: bool = False
    visible: bool = True  # the emulated user's permission; invisible spaces answer 404


@dataclass
class _Principal:
    known: bool


class ConfluenceState:
    """Spaces, pages, labels and attachments; `reset()` restores the seed."""

    def __init__(self) -> None:
        self.spaces: dict[int, Space] = {}
        self.pages: dict[int, Page] = {}
        self._ids: Iterator[int] = itertools.count()
        self.reset()

    def reset(self) -> None:
        """Forget every change and re-create the seeded spaces and pages."""
        self.spaces.clear()
        self.pages.clear()
        self._ids = itertools.count(65_537)
        for key, name, anonymous, visible in [
            ("INT", "Integration", False, True),
            ("MKT", "Marketing", True, True),
            ("MEDIA", "Media", False, True),
            ("SEC", "Security", False, False),
        ]:
            space_id = self.next_id()
            home = self.add_page(space_id, f"{name} Home", f"<p>Welcome to the {name} space.</p>", None)
            self.spaces[space_id] = Space(space_id, key, name, home.id, anonymous, visible)
        integration = self.space_by_key("INT")
        assert integration is not None
        runbooks = self.add_page(
            integration.id, "Runbooks", "<p>Operational runbooks.</p>", integration.homepage_id
        )
        self.add_page(integration.id, "Release Notes", "<h1>Release notes</h1>", integration.homepage_id)
        self.add_page(integration.id, "Rotate credentials", "<p>Rotate every 90 days.</p>", runbooks.id)
        self.add_page(integration.id, "Promote artifacts", "<p>Promote with approval.</p>", runbooks.id)
        media = self.space_by_key("MEDIA")
        assert media is not None
        self.add_page(media.id, "Asset Releases", "<p>Released assets.</p>", media.homepage_id)
        security = self.space_by_key("SEC")
        assert security is not None
        self.add_page(security.id, "Incident Response", "<p>Confidential.</p>", security.homepage_id)

    def next_id(self) -> int:
        return next(self._ids)

    def add_page(self, space_id: int, title: str, body: str, parent_id: int | None) -> Page:
        now = _now()
        page = Page(self.next_id(), space_id, title, body, parent_id, created_at=now, version_at=now)
        self.pages[page.id] = page
        return page

    def space_by_key(self, key: str) -> Space | None:
        return next((space for space in self.spaces.values() if space.key == key), None)

    def page_by_title(self, space_id: int, title: str) -> Page | None:
        return next((p for p in self.pages.values() if p.space_id == space_id and p.title == title), None)

    def pages_in(self, space_id: int) -> list[Page]:
        return sorted((p for p in self.pages.values() if p.space_id == space_id), key=lambda p: p.id)

    def children_of(self, page_id: int) -> list[Page]:
        return sorted((p for p in self.pages.values() if p.parent_id == page_id), key=lambda p: p.id)

    def ancestors_of(self, page: Page) -> list[Page]:
        chain: list[Page] = []
        parent_id = page.parent_id
        while parent_id is not None and parent_id in self.pages:
            parent = self.pages[parent_id]
            chain.insert(0, parent)
            parent_id = parent.parent_id
        return chain


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# ------------------------------------------------------------------------------- vendor errors


class _VendorError(Exception):
    """Raised by handlers; the middleware turns it into the vendor's response."""

    def __init__(self, response: web.Response) -> None:
        super().__init__(response.status)
        self.response = response


def _v2_error(status: int, code: str, title: str, headers: dict[str, str] | None = None) -> _VendorError:
    body = {"errors": [{"status": status, "code": code, "title": title, "detail": None}]}
    return _VendorError(web.json_response(body, status=status, headers=headers))


_REASONS: Final = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    409: "Conflict",
    413: "Request Entity Too Large",
    429: "Too Many Requests",
}


def _v1_error(status: int, message: str, headers: dict[str, str] | None = None) -> _VendorError:
    body = {
        "statusCode": status,
        "data": {
            "authorized": status not in (401, 403),
            "valid": status != 400,
            "errors": [],
            "successful": False,
        },
        "message": message,
        "reason": _REASONS.get(status, ""),
    }
    return _VendorError(web.json_response(body, status=status, headers=headers))


@web.middleware
async def _vendor_errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    try:
        return await handler(request)
    except _VendorError as error:
        return error.response


# ------------------------------------------------------------------------------------- paging


def _encode_cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"offset": offset}).encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> int | None:
    try:
        payload = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        offset = payload["offset"]
    except (ValueError, KeyError, TypeError, binascii.Error):
        return None
    return offset if isinstance(offset, int) and offset >= 0 else None


def _with_query(path: str, query: MultiMapping[str], **changes: str) -> str:
    merged = MultiDict(query)
    for name, value in changes.items():
        merged[name] = value
    return f"{path}?{urlencode(list(merged.items()))}"


class _Emulator:
    """Route handlers over one ConfluenceState for one flavour."""

    def __init__(
        self,
        state: ConfluenceState,
        *,
        flavour: Flavour,
        email: str,
        api_token: str,
        pat: str,
        anonymous_access: bool,
        link_header: bool,
        body_next_links: bool,
        context_path: str,
    ) -> None:
        self.state = state
        self.flavour = flavour
        self.anonymous_access = anonymous_access
        self.link_header = link_header
        self.body_next_links = body_next_links
        self._basic = "Basic " + base64.b64encode(f"{email}:{api_token}".encode()).decode()
        self._bearer = f"Bearer {pat}"
        self._email = email
        # v1 lives under /wiki on Cloud; Data Center under its context path (often /confluence).
        self.context = "/wiki" if flavour == "cloud" else context_path

    # -------------------------------------------------------------------------------- helpers

    def base(self, request: web.Request) -> str:
        return f"{request.scheme}://{request.host}{self.context}"

    def authenticate_v2(self, request: web.Request) -> _Principal:
        if request.headers.get("Authorization") != self._basic:
            raise _v2_error(
                401, "UNAUTHORIZED", "Unauthorized", {"WWW-Authenticate": 'Basic realm="Confluence"'}
            )
        return _Principal(known=True)

    def authenticate_v1(self, request: web.Request) -> _Principal:
        given = request.headers.get("Authorization")
        if self.flavour == "cloud":
            if given != self._basic:
                raise _v1_error(401, "Client must be authenticated to access this resource.")
            return _Principal(known=True)
        if given == self._bearer:
            return _Principal(known=True)
        # Data Center: a PAT it does not recognise is simply not a login; the request is anonymous.
        if self.anonymous_access:
            return _Principal(known=False)
        reason = "AUTHENTICATED_FAILED" if given else "AUTHENTICATION_DENIED"
        raise _v1_error(
            401, "Client must be authenticated to access this resource.", {"X-Seraph-LoginReason": reason}
        )

    @staticmethod
    def can_read(principal: _Principal, space: Space) -> bool:
        return space.visible if principal.known else space.anonymous_read

    def readable_space(self, principal: _Principal, space_id: int) -> Space | None:
        space = self.state.spaces.get(space_id)
        return space if space is not None and self.can_read(principal, space) else None

    def readable_page(self, principal: _Principal, page_id: int) -> Page | None:
        page = self.state.pages.get(page_id)
        if page is None or self.readable_space(principal, page.space_id) is None:
            return None
        return page

    @staticmethod
    async def read_json(request: web.Request, error: Callable[[str], _VendorError]) -> Any:
        raw = await request.read()
        if len(raw) > MAX_BODY_BYTES:
            raise error("too large")
        try:
            return json.loads(raw)
        except ValueError:
            raise error("invalid json") from None

    def v2_json_error(self, kind: str) -> _VendorError:
        if kind == "too large":
            return _v2_error(
                413,
                "REQUEST_ENTITY_TOO_LARGE",
                f"Request too large. Requests for this resource can be at most {MAX_BODY_BYTES} bytes",
            )
        return _v2_error(400, "INVALID_MESSAGE", "Invalid message: request body is not valid JSON")

    def v1_json_error(self, kind: str) -> _VendorError:
        if kind == "too large":
            return _v1_error(
                413, f"Request too large. Requests for this resource can be at most {MAX_BODY_BYTES} bytes"
            )
        return _v1_error(400, "Unrecognized token: the request body is not valid JSON")

    def v2_list(self, request: web.Request, items: list[dict[str, Any]]) -> web.Response:
        limit = _int_param(request, "limit", 25, lambda m: _v2_error(400, "INVALID_REQUEST_PARAMETER", m))
        if not 1 <= limit <= V2_MAX_LIMIT:
            raise _v2_error(400, "INVALID_REQUEST_PARAMETER", f"limit must be between 1 and {V2_MAX_LIMIT}")
        offset = 0
        if "cursor" in request.query:
            decoded = _decode_cursor(request.query["cursor"])
            if decoded is None:
                raise _v2_error(400, "INVALID_REQUEST_PARAMETER", "Invalid cursor")
            offset = decoded
        base = self.base(request)
        body: dict[str, Any] = {"results": items[offset : offset + limit], "_links": {"base": base}}
        headers: dict[str, str] = {}
        if offset + limit < len(items):
            next_link = _with_query(request.path, request.query, cursor=_encode_cursor(offset + limit))
            if self.body_next_links:
                body["_links"]["next"] = next_link
            if self.link_header:
                headers["Link"] = f'<{next_link}>; rel="next", <{base}>; rel="base"'
        return web.json_response(body, headers=headers)

    def v1_list(
        self, request: web.Request, items: list[dict[str, Any]], *, default_limit: int = 25
    ) -> dict[str, Any]:
        start = _int_param(request, "start", 0, lambda m: _v1_error(400, m))
        limit = min(_int_param(request, "limit", default_limit, lambda m: _v1_error(400, m)), V1_MAX_LIMIT)
        if start < 0 or limit < 0:
            raise _v1_error(400, "start and limit must not be negative")
        chunk = items[start : start + limit]
        relative_path = request.path.removeprefix(self.context)
        links: dict[str, Any] = {
            "base": self.base(request),
            "context": self.context,
            "self": f"{self.base(request)}{relative_path}",
        }
        if limit and start + limit < len(items):
            links["next"] = _with_query(
                relative_path, request.query, start=str(start + limit), limit=str(limit)
            )
        if start > 0:
            links["prev"] = _with_query(
                relative_path, request.query, start=str(max(0, start - limit)), limit=str(limit)
            )
        return {"results": chunk, "start": start, "limit": limit, "size": len(chunk), "_links": links}

    def check_storage(self, value: Any, error: Callable[[str], _VendorError]) -> str:
        if not isinstance(value, str):
            raise error("body value must be a string")
        try:
            parse_storage(value)
        except StorageFormatError as exc:
            raise error(f"Error parsing xhtml: {exc}") from None
        return value

    def title_taken(self, space_id: int, title: str, except_id: int | None = None) -> bool:
        existing = self.state.page_by_title(space_id, title)
        return existing is not None and existing.id != except_id

    # ------------------------------------------------------------------------------ v2 shapes

    def v2_space(self, request: web.Request, space: Space) -> dict[str, Any]:
        return {
            "id": str(space.id),
            "key": space.key,
            "name": space.name,
            "type": "global",
            "status": "current",
            "authorId": _ACCOUNT_ID,
            "createdAt": "2024-01-02T09:00:00.000Z",
            "homepageId": str(space.homepage_id),
            "_links": {"webui": f"/spaces/{space.key}"},
        }

    def v2_page(self, page: Page, body_format: str | None) -> dict[str, Any]:
        result: dict[str, Any] = {
            "id": str(page.id),
            "status": "current",
            "title": page.title,
            "spaceId": str(page.space_id),
            "parentId": None if page.parent_id is None else str(page.parent_id),
            "parentType": None if page.parent_id is None else "page",
            "position": None,
            "authorId": _ACCOUNT_ID,
            "ownerId": _ACCOUNT_ID,
            "lastOwnerId": None,
            "createdAt": page.created_at,
            "version": {
                "createdAt": page.version_at,
                "message": page.version_message,
                "number": page.version,
                "minorEdit": False,
                "authorId": _ACCOUNT_ID,
            },
            "body": {},
            "_links": {
                "webui": f"/spaces/{self.state.spaces[page.space_id].key}/pages/{page.id}",
                "editui": f"/pages/resumedraft.action?draftId={page.id}",
                "tinyui": f"/x/{page.id}",
            },
        }
        if body_format == "storage":
            result["body"] = {"storage": {"representation": "storage", "value": page.body}}
        if result["parentId"] is None:
            del result["parentId"], result["parentType"]
        return result

    # ---------------------------------------------------------------------------- v2 handlers

    def v2_body_format(self, request: web.Request) -> str | None:
        body_format = request.query.get("body-format")
        if body_format not in (None, "storage", "atlas_doc_format"):
            raise _v2_error(400, "INVALID_REQUEST_PARAMETER", f"Invalid body-format: {body_format}")
        return body_format

    async def v2_get_spaces(self, request: web.Request) -> web.Response:
        principal = self.authenticate_v2(request)
        keys = _csv(request.query.get("keys"))
        ids = _csv(request.query.get("ids"))
        if len(keys) > V2_MAX_LIMIT or len(ids) > V2_MAX_LIMIT:
            raise _v2_error(400, "INVALID_REQUEST_PARAMETER", "At most 250 keys or ids may be given")
        spaces = [
            self.v2_space(request, space)
            for space in sorted(self.state.spaces.values(), key=lambda s: s.id)
            if self.can_read(principal, space)
            and (not keys or space.key in keys)
            and (not ids or str(space.id) in ids)
        ]
        return self.v2_list(request, spaces)

    async def v2_get_space(self, request: web.Request) -> web.Response:
        principal = self.authenticate_v2(request)
        space = self.readable_space(principal, _path_id(request, _v2_not_found))
        if space is None:
            raise _v2_not_found()
        return web.json_response(self.v2_space(request, space))

    async def v2_get_pages(self, request: web.Request) -> web.Response:
        principal = self.authenticate_v2(request)
        body_format = self.v2_body_format(request)
        space_ids = _csv(request.query.get("space-id"))
        page_ids = _csv(request.query.get("id"))
        title = request.query.get("title")
        pages = [
            self.v2_page(page, body_format)
            for page in sorted(self.state.pages.values(), key=lambda p: p.id)
            if self.readable_space(principal, page.space_id) is not None
            and (not space_ids or str(page.space_id) in space_ids)
            and (not page_ids or str(page.id) in page_ids)
            and (title is None or page.title == title)
        ]
        return self.v2_list(request, pages)

    async def v2_get_space_pages(self, request: web.Request) -> web.Response:
        principal = self.authenticate_v2(request)
        space = self.readable_space(principal, _path_id(request, _v2_not_found))
        if space is None:
            raise _v2_not_found()
        body_format = self.v2_body_format(request)
        title = request.query.get("title")
        root_only = request.query.get("depth") == "root"
        pages = [
            self.v2_page(page, body_format)
            for page in self.state.pages_in(space.id)
            if (title is None or page.title == title) and (not root_only or page.parent_id is None)
        ]
        return self.v2_list(request, pages)

    async def v2_get_page(self, request: web.Request) -> web.Response:
        principal = self.authenticate_v2(request)
        page = self.readable_page(principal, _path_id(request, _v2_not_found))
        if page is None:
            raise _v2_not_found()
        result = self.v2_page(page, self.v2_body_format(request))
        if request.query.get("include-labels") == "true":
            result["labels"] = {
                "results": [{"id": lb.id, "name": lb.name, "prefix": lb.prefix} for lb in page.labels],
                "meta": {"hasMore": False, "cursor": ""},
                "_links": {},
            }
        return web.json_response(result)

    async def v2_get_children(self, request: web.Request) -> web.Response:
        principal = self.authenticate_v2(request)
        page = self.readable_page(principal, _path_id(request, _v2_not_found))
        if page is None:
            raise _v2_not_found()
        children = [
            {"id": str(child.id), "status": "current", "title": child.title, "spaceId": str(child.space_id),
             "childPosition": position}
            for position, child in enumerate(self.state.children_of(page.id))
        ]  # fmt: skip
        return self.v2_list(request, children)

    async def v2_get_labels(self, request: web.Request) -> web.Response:
        principal = self.authenticate_v2(request)
        page = self.readable_page(principal, _path_id(request, _v2_not_found))
        if page is None:
            raise _v2_not_found()
        prefix = request.query.get("prefix")
        labels = [
            {"id": label.id, "name": label.name, "prefix": label.prefix}
            for label in page.labels
            if prefix is None or label.prefix == prefix
        ]
        return self.v2_list(request, labels)

    def v2_body_value(self, payload: dict[str, Any]) -> str:
        body = payload.get("body")
        if not isinstance(body, dict):
            raise _v2_error(400, "INVALID_REQUEST_PARAMETER", "body is required")
        if "storage" in body and isinstance(body["storage"], dict):
            body = body["storage"]  # the nested form {"storage": {"representation", "value"}}
        if body.get("representation") != "storage":
            raise _v2_error(400, "INVALID_REQUEST_PARAMETER", "Only the storage representation is supported")
        return self.check_storage(
            body.get("value"), lambda message: _v2_error(400, "INVALID_REQUEST_PARAMETER", message)
        )

    async def v2_create_page(self, request: web.Request) -> web.Response:
        self.authenticate_v2(request)
        payload = await self.read_json(request, self.v2_json_error)
        if not isinstance(payload, dict) or not isinstance(payload.get("spaceId"), str):
            raise _v2_error(400, "INVALID_REQUEST_PARAMETER", "spaceId is required")
        if payload.get("status", "current") != "current":
            raise _v2_error(400, "INVALID_REQUEST_PARAMETER", "Only status current is supported here")
        title = payload.get("title")
        if not isinstance(title, str) or not title.strip():
            raise _v2_error(400, "INVALID_REQUEST_PARAMETER", "Title is required for a current page")
        space = self.readable_space(_Principal(known=True), _int_or(payload["spaceId"], -1))
        if space is None:
            raise _v2_not_found()
        body = self.v2_body_value(payload)
        parent_id = space.homepage_id
        if payload.get("parentId") is not None:
            parent = self.state.pages.get(_int_or(payload["parentId"], -1))
            if parent is None or parent.space_id != space.id:
                raise _v2_not_found()
            parent_id = parent.id
        if self.title_taken(space.id, title):
            raise _v2_error(
                400, "INVALID_REQUEST_PARAMETER", "A page with this title already exists in this space"
            )
        page = self.state.add_page(space.id, title, body, parent_id)
        result = self.v2_page(page, "storage")
        result["_links"]["base"] = self.base(request)
        return web.json_response(result)

    async def v2_update_page(self, request: web.Request) -> web.Response:
        self.authenticate_v2(request)
        page_id = _path_id(request, _v2_not_found)
        payload = await self.read_json(request, self.v2_json_error)
        page = self.readable_page(_Principal(known=True), page_id)
        if page is None:
            raise _v2_not_found()
        if not isinstance(payload, dict):
            raise _v2_error(400, "INVALID_REQUEST_PARAMETER", "A JSON object is required")
        missing = [name for name in ("id", "status", "title", "body", "version") if name not in payload]
        if missing:
            raise _v2_error(
                400, "INVALID_REQUEST_PARAMETER", f"Missing required fields: {', '.join(missing)}"
            )
        if str(payload["id"]) != str(page.id):
            raise _v2_error(400, "INVALID_REQUEST_PARAMETER", "Page id in body does not match the path")
        version = payload["version"].get("number") if isinstance(payload["version"], dict) else None
        if not isinstance(version, int):
            raise _v2_error(400, "INVALID_REQUEST_PARAMETER", "version.number is required")
        if version != page.version + 1:
            raise _v2_error(
                409,
                "CONFLICT",
                f"Version must be incremented on update. Current version is: {page.version}",
            )
        title = payload["title"]
        if not isinstance(title, str) or not title.strip():
            raise _v2_error(400, "INVALID_REQUEST_PARAMETER", "Title is required")
        if self.title_taken(page.space_id, title, except_id=page.id):
            raise _v2_error(
                400, "INVALID_REQUEST_PARAMETER", "A page with this title already exists in this space"
            )
        page.body = self.v2_body_value(payload)
        page.title = title
        page.version = version
        page.version_message = str(payload["version"].get("message") or "")
        page.version_at = _now()
        if payload.get("parentId") is not None:
            page.parent_id = _int_or(payload["parentId"], page.parent_id or 0)
        result = self.v2_page(page, "storage")
        result["_links"]["base"] = self.base(request)
        return web.json_response(result)

    # ------------------------------------------------------------------------------ v1 shapes

    def v1_space(self, request: web.Request, space: Space, *, with_homepage: bool) -> dict[str, Any]:
        result: dict[str, Any] = {
            "id": space.id,
            "key": space.key,
            "name": space.name,
            "type": "global",
            "status": "current",
            "_expandable": {"settings": "", "metadata": "", "operations": "", "lookAndFeel": "",
                            "permissions": "", "icon": "", "description": "", "theme": "", "history": ""},
            "_links": {"webui": f"/spaces/{space.key}", "self": f"{self.base(request)}/rest/api/space/{space.key}"},
        }  # fmt: skip
        if with_homepage:
            home = self.state.pages[space.homepage_id]
            result["homepage"] = self.v1_content(request, home, expand=set())
        else:
            result["_expandable"]["homepage"] = f"/rest/api/content/{space.homepage_id}"
        return result

    def v1_user(self, principal: _Principal) -> dict[str, Any]:
        picture = {
            "path": "/images/icons/profilepics/default.svg",
            "width": 48,
            "height": 48,
            "isDefault": True,
        }
        if not principal.known:
            return {"type": "anonymous", "profilePicture": picture, "displayName": "Anonymous", "_links": {}}
        if self.flavour == "cloud":
            return {"type": "known", "accountId": _ACCOUNT_ID, "accountType": "atlassian",
                    "email": self._email, "publicName": "opsgate", "profilePicture": picture,
                    "displayName": "opsgate bot", "isExternalCollaborator": False, "_links": {}}  # fmt: skip
        return {"type": "known", "username": _USERNAME, "userKey": "8a7f80a2opsgate",
                "profilePicture": picture, "displayName": "opsgate bot", "_links": {}}  # fmt: skip

    def v1_content(self, request: web.Request, page: Page, *, expand: set[str]) -> dict[str, Any]:
        space = self.state.spaces[page.space_id]
        result: dict[str, Any] = {
            "id": str(page.id),
            "type": "page",
            "status": "current",
            "title": page.title,
            "space": {"id": space.id, "key": space.key, "name": space.name, "type": "global",
                      "status": "current", "_expandable": {}, "_links": {"webui": f"/spaces/{space.key}"}},
            "version": {"by": self.v1_user(_Principal(known=True)), "when": page.version_at,
                        "message": page.version_message, "number": page.version, "minorEdit": False,
                        "_expandable": {}, "_links": {}},
            "extensions": {"position": "none"},
            "_expandable": {"children": "", "descendants": "", "history": "", "restrictions": ""},
            "_links": {
                "webui": f"/spaces/{space.key}/pages/{page.id}",
                "edit": f"/pages/resumedraft.action?draftId={page.id}",
                "tinyui": f"/x/{page.id}",
                "self": f"{self.base(request)}/rest/api/content/{page.id}",
            },
        }  # fmt: skip
        if "ancestors" in expand:
            result["ancestors"] = [
                self.v1_content(request, ancestor, expand=set()) for ancestor in self.state.ancestors_of(page)
            ]
        if "body.storage" in expand or "body" in expand:
            result["body"] = {
                "storage": {"value": page.body, "representation": "storage", "_expandable": {}},
                "_expandable": {"view": "", "export_view": ""},
            }
        return result

    def v1_attachment(self, request: web.Request, page: Page, attachment: Attachment) -> dict[str, Any]:
        return {
            "id": attachment.id,
            "type": "attachment",
            "status": "current",
            "title": attachment.title,
            "version": {"when": _now(), "number": attachment.version, "minorEdit": True, "_expandable": {},
                        "_links": {}},
            "metadata": {"comment": attachment.comment, "mediaType": attachment.media_type},
            "extensions": {"mediaType": attachment.media_type, "fileSize": len(attachment.data),
                           "comment": attachment.comment},
            "_expandable": {},
            "_links": {
                "download": f"/download/attachments/{page.id}/{attachment.title}?version={attachment.version}",
                "webui": f"/pages/viewpageattachments.action?pageId={page.id}",
                "self": f"{self.base(request)}/rest/api/content/{attachment.id}",
            },
        }  # fmt: skip

    # ---------------------------------------------------------------------------- v1 handlers

    async def v1_current_user(self, request: web.Request) -> web.Response:
        return web.json_response(self.v1_user(self.authenticate_v1(request)))

    async def v1_get_space(self, request: web.Request) -> web.Response:
        principal = self.authenticate_v1(request)
        space = self.state.space_by_key(request.match_info["key"])
        if space is None or not self.can_read(principal, space):
            raise _v1_error(404, f"No space found with key : {request.match_info['key']}")
        return web.json_response(self.v1_space(request, space, with_homepage="homepage" in _expand(request)))

    async def v1_get_contents(self, request: web.Request) -> web.Response:
        principal = self.authenticate_v1(request)
        expand = _expand(request)
        space_key = request.query.get("spaceKey")
        title = request.query.get("title")
        content_type = request.query.get("type", "page")
        pages = []
        if content_type == "page":
            pages = [
                self.v1_content(request, page, expand=expand)
                for page in sorted(self.state.pages.values(), key=lambda p: p.id)
                if (space := self.readable_space(principal, page.space_id)) is not None
                and (space_key is None or space.key == space_key)
                and (title is None or page.title == title)
            ]
        return web.json_response(self.v1_list(request, pages))

    async def v1_get_content(self, request: web.Request) -> web.Response:
        principal = self.authenticate_v1(request)
        page = self.readable_page(principal, _path_id(request, self.v1_not_found))
        if page is None:
            raise self.v1_not_found()
        return web.json_response(self.v1_content(request, page, expand=_expand(request)))

    async def v1_get_child_pages(self, request: web.Request) -> web.Response:
        principal = self.authenticate_v1(request)
        page = self.readable_page(principal, _path_id(request, self.v1_not_found))
        if page is None:
            raise self.v1_not_found()
        expand = _expand(request)
        children = [
            self.v1_content(request, child, expand=expand) for child in self.state.children_of(page.id)
        ]
        return web.json_response(self.v1_list(request, children))

    def v1_not_found(self) -> _VendorError:
        return _v1_error(404, "No content found with id")

    def v1_body_value(self, payload: dict[str, Any]) -> str:
        body = payload.get("body")
        storage = body.get("storage") if isinstance(body, dict) else None
        if not isinstance(storage, dict) or storage.get("representation") != "storage":
            raise _v1_error(400, "body.storage with representation storage is required")
        return self.check_storage(storage.get("value"), lambda message: _v1_error(400, message))

    def require_writer(self, principal: _Principal) -> None:
        if not principal.known:
            raise _v1_error(403, "Anonymous users are not permitted to perform this operation")

    async def v1_create_content(self, request: web.Request) -> web.Response:
        principal = self.authenticate_v1(request)
        payload = await self.read_json(request, self.v1_json_error)
        if not isinstance(payload, dict) or payload.get("type") != "page":
            raise _v1_error(400, "Content type must be page")
        self.require_writer(principal)
        space_key = (
            (payload.get("space") or {}).get("key") if isinstance(payload.get("space"), dict) else None
        )
        space = self.state.space_by_key(space_key) if isinstance(space_key, str) else None
        if space is None or not self.can_read(principal, space):
            # The v1 API answers a space you cannot use with 403 on create (see the spec).
            raise _v1_error(403, f"Space does not exist or you do not have permission: {space_key}")
        title = payload.get("title")
        if not isinstance(title, str) or not title.strip():
            raise _v1_error(400, "A page must have a title")
        body = self.v1_body_value(payload)
        parent_id: int | None = None  # v1 without ancestors: a top-level page of the space
        ancestors = payload.get("ancestors") or []
        if ancestors:
            parent = self.state.pages.get(_int_or(ancestors[-1].get("id"), -1))
            if parent is None or parent.space_id != space.id:
                raise _v1_error(404, "Parent page not found or not permitted")
            parent_id = parent.id
        if self.title_taken(space.id, title):
            raise _v1_error(400, "A page with this title already exists in this space")
        page = self.state.add_page(space.id, title, body, parent_id)
        return web.json_response(self.v1_content(request, page, expand={"body.storage", "ancestors"}))

    async def v1_update_content(self, request: web.Request) -> web.Response:
        principal = self.authenticate_v1(request)
        page_id = _path_id(request, self.v1_not_found)
        payload = await self.read_json(request, self.v1_json_error)
        page = self.readable_page(principal, page_id)
        if page is None:
            raise self.v1_not_found()
        self.require_writer(principal)
        if not isinstance(payload, dict) or payload.get("type") != "page":
            raise _v1_error(400, "Content type must be page")
        version = (
            payload.get("version", {}).get("number") if isinstance(payload.get("version"), dict) else None
        )
        if not isinstance(version, int):
            raise _v1_error(400, "Version is required for content updates")
        if version != page.version + 1:
            raise _v1_error(409, f"Version must be incremented on update. Current version is: {page.version}")
        title = payload.get("title")
        if not isinstance(title, str) or not title.strip():
            raise _v1_error(400, "Title is required when updating a page")
        if self.title_taken(page.space_id, title, except_id=page.id):
            raise _v1_error(400, "A page with this title already exists in this space")
        page.body = self.v1_body_value(payload)
        page.title = title
        page.version = version
        page.version_message = str(payload["version"].get("message") or "")
        page.version_at = _now()
        ancestors = payload.get("ancestors") or []
        if ancestors:
            page.parent_id = _int_or(ancestors[-1].get("id"), page.parent_id or 0)
        return web.json_response(self.v1_content(request, page, expand={"body.storage", "ancestors"}))

    async def v1_get_labels(self, request: web.Request) -> web.Response:
        principal = self.authenticate_v1(request)
        page = self.readable_page(principal, _path_id(request, self.v1_not_found))
        if page is None:
            raise self.v1_not_found()
        labels = [_v1_label(label) for label in page.labels]
        return web.json_response(self.v1_list(request, labels, default_limit=200))

    async def v1_add_labels(self, request: web.Request) -> web.Response:
        principal = self.authenticate_v1(request)
        page_id = _path_id(request, self.v1_not_found)
        payload = await self.read_json(request, self.v1_json_error)
        page = self.readable_page(principal, page_id)
        if page is None:
            raise self.v1_not_found()
        self.require_writer(principal)
        wanted = payload if isinstance(payload, list) else [payload]
        for item in wanted:
            name = item.get("name") if isinstance(item, dict) else None
            prefix = item.get("prefix", "global") if isinstance(item, dict) else None
            if not isinstance(name, str) or not _LABEL_NAME.fullmatch(name) or prefix not in _LABEL_PREFIXES:
                raise _v1_error(400, f"Label names must not contain spaces or these characters: {name!r}")
        for item in wanted:
            name = item["name"].lower()  # Confluence stores labels in lower case
            if not any(label.name == name for label in page.labels):
                label_id = str(int(hashlib.sha1(name.encode()).hexdigest()[:8], 16))
                page.labels.append(Label(label_id, item.get("prefix", "global"), name))
        labels = [_v1_label(label) for label in page.labels]
        return web.json_response(self.v1_list(request, labels, default_limit=200))

    async def v1_get_attachments(self, request: web.Request) -> web.Response:
        principal = self.authenticate_v1(request)
        page = self.readable_page(principal, _path_id(request, self.v1_not_found))
        if page is None:
            raise self.v1_not_found()
        filename = request.query.get("filename")
        items = [
            self.v1_attachment(request, page, att)
            for att in page.attachments
            if filename is None or att.title == filename
        ]
        return web.json_response(self.v1_list(request, items, default_limit=50))

    async def v1_upload_attachment(self, request: web.Request) -> web.Response:
        principal = self.authenticate_v1(request)
        if request.headers.get("X-Atlassian-Token", "").lower() != "nocheck":
            raise _VendorError(web.Response(status=403, text="XSRF check failed", content_type="text/plain"))
        page = self.readable_page(principal, _path_id(request, self.v1_not_found))
        if page is None:
            raise self.v1_not_found()
        self.require_writer(principal)
        if not request.content_type.startswith("multipart/"):
            raise _v1_error(400, "Attachments must be sent as multipart/form-data")
        form = await request.post()
        upload = form.get("file")
        if not isinstance(upload, web.FileField):
            raise _v1_error(400, "The multipart field 'file' is required")
        if "minorEdit" not in form:
            raise _v1_error(400, "The multipart field 'minorEdit' is required")
        comment = form.get("comment")
        data = upload.file.read()
        existing = next((att for att in page.attachments if att.title == upload.filename), None)
        if existing is not None and request.method == "POST":
            raise _v1_error(
                400,
                f"Cannot add a new attachment with same file name as an existing attachment: {upload.filename}",
            )
        media_type = upload.content_type or "application/octet-stream"
        comment_text = comment if isinstance(comment, str) else ""
        if existing is not None:
            existing.data, existing.media_type, existing.comment = data, media_type, comment_text
            existing.version += 1
            attachment = existing
        else:
            attachment = Attachment(
                f"att{self.state.next_id()}", upload.filename, media_type, data, comment_text
            )
            page.attachments.append(attachment)
        return web.json_response(self.v1_list(request, [self.v1_attachment(request, page, attachment)]))

    async def v1_search(self, request: web.Request) -> web.Response:
        principal = self.authenticate_v1(request)
        cql = request.query.get("cql", "")
        try:
            predicate = _parse_cql(cql)
        except ValueError as exc:
            raise _v1_error(400, f"Could not parse cql : {cql} ({exc})") from None
        hits = []
        for page in sorted(self.state.pages.values(), key=lambda p: p.id):
            space = self.readable_space(principal, page.space_id)
            if space is not None and predicate(page, space):
                hits.append(self.v1_search_result(request, page, space))
        if self.flavour == "cloud":
            body = self.v1_search_cursor_page(request, hits)
        else:
            body = self.v1_list(request, hits)
            body["totalSize"] = len(hits)
        body.update(cqlQuery=cql, searchDuration=3)
        return web.json_response(body)

    def v1_search_cursor_page(self, request: web.Request, hits: list[dict[str, Any]]) -> dict[str, Any]:
        limit = min(_int_param(request, "limit", 25, lambda m: _v1_error(400, m)), V1_MAX_LIMIT)
        offset = 0
        if "cursor" in request.query:
            decoded = _decode_cursor(request.query["cursor"])
            if decoded is None:
                raise _v1_error(400, "Invalid cursor")
            offset = decoded
        chunk = hits[offset : offset + limit]
        relative_path = request.path.removeprefix(self.context)
        links: dict[str, Any] = {"base": self.base(request), "context": self.context}
        if limit and offset + limit < len(hits):
            links["next"] = _with_query(
                relative_path,
                request.query,
                cursor=_encode_cursor(offset + limit),
                next="true",
                limit=str(limit),
            )
        return {"results": chunk, "start": offset, "limit": limit, "size": len(chunk), "totalSize": len(hits),
                "_links": links}  # fmt: skip

    def v1_search_result(self, request: web.Request, page: Page, space: Space) -> dict[str, Any]:
        return {
            "content": self.v1_content(request, page, expand=set()),
            "title": page.title,
            "excerpt": re.sub(r"<[^>]+>", " ", page.body)[:200].strip(),
            "url": f"/spaces/{space.key}/pages/{page.id}",
            "resultGlobalContainer": {"title": space.name, "displayUrl": f"/spaces/{space.key}"},
            "breadcrumbs": [],
            "entityType": "content",
            "iconCssClass": "aui-icon content-type-page",
            "lastModified": page.version_at,
            "friendlyLastModified": "just now",
            "score": 1.0,
        }


def _v2_not_found() -> _VendorError:
    return _v2_error(404, "NOT_FOUND", "Not Found")


def _v1_label(label: Label) -> dict[str, Any]:
    return {"prefix": label.prefix, "name": label.name, "id": label.id, "label": label.name}


_LABEL_NAME: Final = re.compile(r"[^\s!#&()*,.:;<>?@\[\]^]{1,255}")
_LABEL_PREFIXES: Final = frozenset({"global", "my", "team"})


def _csv(value: str | None) -> list[str]:
    return [part for part in (value or "").split(",") if part]


def _int_or(value: Any, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _path_id(request: web.Request, not_found: Callable[[], _VendorError]) -> int:
    value = _int_or(request.match_info["id"], -1)
    if value < 0:
        raise not_found()
    return value


def _int_param(request: web.Request, name: str, default: int, error: Callable[[str], _VendorError]) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        raise error(f"{name} must be an integer") from None


def _expand(request: web.Request) -> set[str]:
    return {part.strip() for value in request.query.getall("expand", []) for part in value.split(",")}


# -------------------------------------------------------------------------------------- CQL

_CQL_CLAUSE: Final = re.compile(
    r'\s*(?P<field>[a-zA-Z]+)\s*(?P<op>!=|=|~)\s*(?P<value>"(?:[^"\\]|\\.)*"|[\w.-]+)\s*', re.ASCII
)
_CQL_FIELDS: Final = frozenset({"space", "title", "type", "label", "text", "id", "parent"})

CqlPredicate = Callable[[Page, Space], bool]


def _parse_cql(cql: str) -> CqlPredicate:
    """The subset of CQL the bot uses: field (=, !=, ~) value clauses joined by AND; ORDER BY ignored."""
    query = re.split(r"\s+order\s+by\s+", cql, maxsplit=1, flags=re.IGNORECASE)[0].strip()
    if not query:
        raise ValueError("empty query")
    clauses: list[CqlPredicate] = []
    for part in re.split(r"\s+and\s+", query, flags=re.IGNORECASE):
        match = _CQL_CLAUSE.fullmatch(part)
        if match is None or match["field"].lower() not in _CQL_FIELDS:
            raise ValueError(f"unsupported clause {part!r}")
        value = match["value"]
        if value.startswith('"'):
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        clauses.append(_cql_clause(match["field"].lower(), match["op"], value))
    return lambda page, space: all(clause(page, space) for clause in clauses)


def _cql_clause(name: str, op: str, value: str) -> CqlPredicate:
    def field_values(page: Page, space: Space) -> list[str]:
        match name:
            case "space":
                return [space.key]
            case "title":
                return [page.title]
            case "type":
                return ["page"]
            case "label":
                return [label.name for label in page.labels]
            case "text":
                return [page.title, page.body]
            case "id":
                return [str(page.id)]
            case "parent":
                return [str(page.parent_id)]
            case _:
                return []

    def predicate(page: Page, space: Space) -> bool:
        values = field_values(page, space)
        if op == "~":
            return any(value.lower() in candidate.lower() for candidate in values)
        found = any(candidate.lower() == value.lower() for candidate in values)
        return found if op == "=" else not found

    return predicate


# ------------------------------------------------------------------------------------- the app

_STATE: Final = web.AppKey("confluence_state", ConfluenceState)


def state_of(app: web.Application) -> ConfluenceState:
    """The emulator's state, for tests that arrange data in-process."""
    return app[_STATE]


def _rate_limited_response(flavour: Flavour) -> Callable[[float], web.Response]:
    def respond(retry_after: float) -> web.Response:
        seconds = max(1, math.ceil(retry_after))
        reset = (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat(timespec="seconds")
        headers = {
            "Retry-After": str(seconds),
            "X-RateLimit-Limit": "0",
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": reset,
            "RateLimit-Reason": "confluence-burst-based",
        }
        if flavour == "cloud":
            return _v2_error(429, "TOO_MANY_REQUESTS", "Rate limit exceeded", headers).response
        return _v1_error(429, "Rate limit exceeded", headers).response

    return respond


def create_app(
    *,
    flavour: Flavour = "cloud",
    email: str = DEFAULT_EMAIL,
    api_token: str = DEFAULT_API_TOKEN,
    pat: str = DEFAULT_PAT,
    anonymous_access: bool = False,
    rate_limit_per_second: float | None = None,
    rate_limit_burst: int = 20,
    link_header: bool = True,
    body_next_links: bool = True,
    monotonic: Callable[[], float] = time.monotonic,
    context_path: str = "",
) -> web.Application:
    """A Confluence Cloud or Data Center emulator app (serve it with ``faults.start_app``).

    ``anonymous_access`` (Data Center) lets requests with a missing or unknown PAT read the
    anonymous-readable MKT space instead of failing with 401. ``rate_limit_per_second`` enables a
    vendor-shaped 429 with Retry-After (time from ``monotonic``). ``link_header`` / ``body_next_links`` choose where v2 lists
    advertise their next page (both by default, as Confluence does). ``context_path`` serves Data
    Center below a context such as ``/confluence``.
    """
    if flavour not in ("cloud", "datacenter"):
        raise ValueError(f"flavour must be 'cloud' or 'datacenter', got {flavour!r}")
    if context_path and (
        flavour == "cloud" or not context_path.startswith("/") or context_path.endswith("/")
    ):
        raise ValueError("context_path is for Data Center and looks like '/confluence'")
    state = ConfluenceState()
    emulator = _Emulator(
        state,
        flavour=flavour,
        email=email,
        api_token=api_token,
        pat=pat,
        anonymous_access=anonymous_access,
        link_header=link_header,
        body_next_links=body_next_links,
        context_path=context_path,
    )
    # Large enough that our handlers, not aiohttp, answer oversized bodies (with the vendor's 413).
    app = web.Application(client_max_size=4 * MAX_BODY_BYTES, middlewares=[_vendor_errors])
    app[_STATE] = state

    def fault_body(status: int) -> Any:
        if flavour == "cloud":
            return {
                "errors": [{"status": status, "code": "INJECTED", "title": "Injected fault", "detail": None}]
            }
        return {
            "statusCode": status,
            "message": "Injected fault",
            "data": {},
            "reason": _REASONS.get(status, ""),
        }

    add_fault_injection(app, reset=state.reset, error_body=fault_body)
    if rate_limit_per_second is not None:
        add_rate_limit(
            app,
            per_second=rate_limit_per_second,
            burst=rate_limit_burst,
            response=_rate_limited_response(flavour),
            monotonic=monotonic,
        )

    router = app.router
    if flavour == "cloud":
        v2 = "/wiki/api/v2"
        router.add_get(f"{v2}/spaces", emulator.v2_get_spaces)
        router.add_get(f"{v2}/spaces/{{id}}", emulator.v2_get_space)
        router.add_get(f"{v2}/spaces/{{id}}/pages", emulator.v2_get_space_pages)
        router.add_get(f"{v2}/pages", emulator.v2_get_pages)
        router.add_post(f"{v2}/pages", emulator.v2_create_page)
        router.add_get(f"{v2}/pages/{{id}}", emulator.v2_get_page)
        router.add_put(f"{v2}/pages/{{id}}", emulator.v2_update_page)
        router.add_get(f"{v2}/pages/{{id}}/children", emulator.v2_get_children)
        router.add_get(f"{v2}/pages/{{id}}/labels", emulator.v2_get_labels)
    v1 = f"{emulator.context}/rest/api"
    router.add_get(f"{v1}/user/current", emulator.v1_current_user)
    router.add_get(f"{v1}/space/{{key}}", emulator.v1_get_space)
    router.add_get(f"{v1}/content", emulator.v1_get_contents)
    router.add_post(f"{v1}/content", emulator.v1_create_content)
    router.add_get(f"{v1}/content/{{id}}", emulator.v1_get_content)
    router.add_put(f"{v1}/content/{{id}}", emulator.v1_update_content)
    router.add_get(f"{v1}/content/{{id}}/child/page", emulator.v1_get_child_pages)
    router.add_get(f"{v1}/content/{{id}}/label", emulator.v1_get_labels)
    router.add_post(f"{v1}/content/{{id}}/label", emulator.v1_add_labels)
    router.add_get(f"{v1}/content/{{id}}/child/attachment", emulator.v1_get_attachments)
    router.add_post(f"{v1}/content/{{id}}/child/attachment", emulator.v1_upload_attachment)
    router.add_put(f"{v1}/content/{{id}}/child/attachment", emulator.v1_upload_attachment)
    router.add_get(f"{v1}/search", emulator.v1_search)
    return app
