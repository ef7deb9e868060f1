"""Canto emulator: the OAuth token endpoint and the /api/v1 calls opsgate makes, over real HTTP.

Serves, on one app:
    POST /oauth/api/oauth2/token               query app_id, app_secret, grant_type, refresh_token
    GET  /api/v1/search                        keyword, scheme (a|b), approval, start, limit, sortBy...
    GET  /api/v1/{scheme}/{id}                 one asset
    POST /api/v1/batch/content                 [{id, scheme}] -> {docResult}
    PUT  /api/v1/batch/edit                    {contents, properties} -> text "success"
    GET  /api/v1/tree[/{folderId}]             library tree
    GET  /api/v1/info/album/{id}               album details
    GET  /api/v1/album/{id}                    album contents (start/limit)
    POST /api/v1/album/{parentFolderId}/{name} create an album
    POST /api/v1/batch/album                   {albumPath, contents} -> text "success"
    GET  /api_binary/v1/{scheme}/{id}/download the original's bytes (also /direct/{scheme}/{id}/original)
    GET  /_control/canto/tokens                token requests seen, by grant type
    GET  /_control/canto/originals/{id}        {id, name, size, sha256, md5} of the bytes served
    PUT  /_control/canto/originals/{id}        {size}: serve an original of that many bytes
    POST /_control/canto/upload                {album_id, name, scheme?, approval_status?, uploader?}:
                                               what a supplier's upload into an album leaves behind

Every API call needs `Authorization: Bearer <token>` from the token endpoint (401 otherwise).
Originals are generated, not stored: `original_chunks(asset_id, size)` makes the same bytes every
time, streamed with a Content-Length, so a test can size a file at will and prove by checksum
that what arrived elsewhere is what was served.
Seeded with a realistic library: product images, campaign videos and brand documents with
approval states, expiry dates relative to the injected clock (some expired, some expiring within
a week), custom fields Rights / Campaign / Product Line / Region, and an album tree.
"""

from __future__ import annotations

import base64
import contextvars
import copy
import dataclasses
import hashlib
import itertools
import math
import random
import secrets
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from connectors.emulators.faults import add_fault_injection, add_rate_limit

__all__ = [
    "DEFAULT_APP_ID",
    "DEFAULT_APP_SECRET",
    "CantoLibrary",
    "CantoTokenLedger",
    "canto_library_of",
    "canto_tokens_of",
    "create_app",
    "original_chunks",
    "original_digest",
    "seed_asset_id",
    "seed_library",
]

_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

DEFAULT_APP_ID = "opsgate-canto-app"
DEFAULT_APP_SECRET = "canto-emulator-secret"
MONTH_SECONDS = 30 * 24 * 3600
MAX_LIMIT = 1000
DEFAULT_LIMIT = 100
SCHEMES = ("image", "video", "audio", "document", "presentation", "other")
APPROVAL_STATUSES = ("Approved", "Pending", "Restricted", "Expired")
LIST_PROPERTIES = {"keyword", "tag"}


ORIGINAL_BLOCK = 64 * 1024


def original_chunks(asset_id: str, size: int) -> Iterator[bytes]:
    """The bytes of an asset's original, generated: the same for the same id and size, every run.

    One pseudo-random block per asset, rotated differently at each offset, so a lost, doubled
    or reordered chunk changes the checksum.
    """
    block = random.Random(asset_id).randbytes(ORIGINAL_BLOCK)
    offset = 0
    index = 0
    while offset < size:
        turn = (index * 4099) % ORIGINAL_BLOCK
        chunk = block[turn:] + block[:turn]
        take = min(ORIGINAL_BLOCK, size - offset)
        yield chunk[:take]
        offset += take
        index += 1


def original_digest(asset_id: str, size: int) -> tuple[str, str]:
    """(sha256, md5) hex digests of `original_chunks(asset_id, size)`."""
    sha256, md5 = hashlib.sha256(), hashlib.md5(usedforsecurity=False)
    for chunk in original_chunks(asset_id, size):
        sha256.update(chunk)
        md5.update(chunk)
    return sha256.hexdigest(), md5.hexdigest()


def _canto_date(value: datetime) -> str:
    utc = value.astimezone(UTC)
    return utc.strftime("%Y%m%d%H%M%S") + f"{utc.microsecond // 1000:03d}"


def _canto_id(*parts: str) -> str:
    # Canto ids are 26 lowercase base32-ish characters; derive them so seeds are stable.
    digest = hashlib.sha256("/".join(parts).encode()).digest()
    return base64.b32encode(digest).decode().lower()[:26]


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"status": status, "message": message}, status=status)


@dataclass
class CantoAssetRecord:
    """One asset as the emulator stores it (rendered to Canto's JSON on the way out)."""

    id: str
    scheme: str
    name: str
    approval_status: str
    uploaded: datetime
    expiration: datetime | None = None
    additional: dict[str, str] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    keyword: list[str] = field(default_factory=list)
    tag: list[str] = field(default_factory=list)
    copyright: str = "ACME Outdoor GmbH"
    terms: str = ""
    size: int = 0
    owner: str = "Dana Whitfield"
    modified: datetime | None = None

    def effective_status(self, now: datetime) -> str:
        """Approved assets whose expiration passed are Expired (Canto flips them)."""
        if self.approval_status == "Approved" and self.expiration is not None and self.expiration <= now:
            return "Expired"
        return self.approval_status

    def searchable_text(self) -> str:
        values: list[str] = [self.name, *self.keyword, *self.tag, *self.additional.values()]
        values.extend(str(value) for value in self.metadata.values())
        return " ".join(values).lower()


@dataclass
class CantoNode:
    """A folder or album of the library tree."""

    id: str
    name: str
    scheme: str  # "folder" | "album"
    parent_id: str | None
    description: str = ""
    children: list[str] = field(default_factory=list)
    asset_ids: list[str] = field(default_factory=list)


@dataclass
class CantoLibrary:
    """The emulator's whole data set: assets and the folder/album tree."""

    assets: dict[str, CantoAssetRecord] = field(default_factory=dict)
    nodes: dict[str, CantoNode] = field(default_factory=dict)
    roots: list[str] = field(default_factory=list)

    def add_node(self, name: str, scheme: str, parent_id: str | None, description: str = "") -> CantoNode:
        """Create a folder/album under `parent_id` (None: top level)."""
        node = CantoNode(
            id=_canto_id("node", parent_id or "", name), name=name, scheme=scheme, parent_id=parent_id,
            description=description,
        )  # fmt: skip
        self.nodes[node.id] = node
        (self.nodes[parent_id].children if parent_id else self.roots).append(node.id)
        return node

    def path_of(self, node: CantoNode) -> tuple[str, str]:
        """(idPath, namePath) from the top of the tree."""
        chain: list[CantoNode] = []
        current: CantoNode | None = node
        while current is not None:
            chain.append(current)
            current = self.nodes.get(current.parent_id) if current.parent_id else None
        chain.reverse()
        return "/".join(n.id for n in chain), "/".join(n.name for n in chain)

    def child_named(self, parent_id: str | None, name: str) -> CantoNode | None:
        """The child of `parent_id` called `name`, if any."""
        ids = self.nodes[parent_id].children if parent_id else self.roots
        return next((self.nodes[i] for i in ids if self.nodes[i].name == name), None)

    def albums_of(self, asset_id: str) -> list[CantoNode]:
        """Albums containing the asset."""
        return [n for n in self.nodes.values() if n.scheme == "album" and asset_id in n.asset_ids]


@dataclass
class CantoTokenLedger:
    """Issued tokens and how many token requests of each grant type arrived."""

    access: dict[str, float] = field(default_factory=dict)  # token -> expiry (monotonic)
    refresh: set[str] = field(default_factory=set)
    requests: Counter[str] = field(default_factory=Counter)

    def reset(self) -> None:
        self.access.clear()
        self.refresh.clear()
        self.requests.clear()


_LIBRARY = web.AppKey("canto_library", CantoLibrary)
# The id of the request being answered, for handlers that send their headers themselves.
_REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("canto_request_id")
_TOKENS = web.AppKey("canto_tokens", CantoTokenLedger)


def canto_library_of(app: web.Application) -> CantoLibrary:
    """The library served by an app from create_app (for in-process tests)."""
    return app[_LIBRARY]


def canto_tokens_of(app: web.Application) -> CantoTokenLedger:
    """The token ledger of an app from create_app (for in-process tests)."""
    return app[_TOKENS]


# -- seed data -----------------------------------------------------------------------------------

_RIGHTS_WORLDWIDE = "Worldwide, all media, perpetual"
_RIGHTS_EMEA = "EMEA digital only, until expiry"
_RIGHTS_NA = "North America print and digital, until expiry"
_RIGHTS_INTERNAL = "Internal use only"
_RIGHTS_EDITORIAL = "Editorial use only"

# fmt: off
# (scheme, name, approval, expires in days (None: never), product line, campaign, region, rights,
#  keywords, album path)
_SEED_ASSETS: tuple[tuple[str, str, str, int | None, str, str, str, str, tuple[str, ...], str], ...] = (
    ("image", "trail-runner-x-hero-front.jpg", "Approved", None, "Trail Runner X", "Spring Launch 2025", "Global", _RIGHTS_WORLDWIDE, ("sneaker", "hero", "trail"), "Campaigns/2025/Spring Launch 2025"),
    ("image", "trail-runner-x-side-studio.jpg", "Approved", 180, "Trail Runner X", "Spring Launch 2025", "Global", _RIGHTS_WORLDWIDE, ("sneaker", "studio", "trail"), "Campaigns/2025/Spring Launch 2025"),
    ("image", "trail-runner-x-mud-action.jpg", "Approved", 3, "Trail Runner X", "Spring Launch 2025", "EMEA", _RIGHTS_EMEA, ("sneaker", "action", "trail"), "Campaigns/2025/Spring Launch 2025"),
    ("image", "trail-runner-x-lifestyle-couple.jpg", "Approved", -12, "Trail Runner X", "Spring Launch 2025", "NA", _RIGHTS_NA, ("sneaker", "lifestyle"), "Campaigns/2025/Spring Launch 2025"),
    ("image", "trail-runner-x-colorways-grid.png", "Pending", None, "Trail Runner X", "Spring Launch 2025", "Global", _RIGHTS_WORLDWIDE, ("sneaker", "colorways"), "Products/Trail Runner X"),
    ("video", "spring-launch-2025-hero-30s.mp4", "Approved", 45, "Trail Runner X", "Spring Launch 2025", "Global", _RIGHTS_WORLDWIDE, ("tvc", "hero", "30s"), "Campaigns/2025/Spring Launch 2025"),
    ("video", "spring-launch-2025-cutdown-15s.mp4", "Approved", 6, "Trail Runner X", "Spring Launch 2025", "EMEA", _RIGHTS_EMEA, ("tvc", "cutdown", "15s"), "Campaigns/2025/Spring Launch 2025"),
    ("video", "spring-launch-2025-social-9x16.mp4", "Restricted", None, "Trail Runner X", "Spring Launch 2025", "APAC", _RIGHTS_EDITORIAL, ("social", "vertical"), "Campaigns/2025/Spring Launch 2025"),
    ("image", "urban-commuter-city-night.jpg", "Approved", None, "Urban Commuter", "Evergreen", "Global", _RIGHTS_WORLDWIDE, ("commuter", "city", "night"), "Products/Urban Commuter"),
    ("image", "urban-commuter-rain-detail.jpg", "Approved", 2, "Urban Commuter", "Evergreen", "EMEA", _RIGHTS_EMEA, ("commuter", "rain", "detail"), "Products/Urban Commuter"),
    ("image", "urban-commuter-bike-lane.jpg", "Expired", -40, "Urban Commuter", "Holiday 2024", "NA", _RIGHTS_NA, ("commuter", "bike"), "Campaigns/Holiday 2024"),
    ("video", "holiday-2024-gift-guide-60s.mov", "Approved", -1, "Urban Commuter", "Holiday 2024", "NA", _RIGHTS_NA, ("tvc", "holiday", "60s"), "Campaigns/Holiday 2024"),
    ("image", "holiday-2024-window-display.jpg", "Pending", None, "Urban Commuter", "Holiday 2024", "EMEA", _RIGHTS_INTERNAL, ("retail", "window"), "Campaigns/Holiday 2024"),
    ("image", "kids-explorer-playground.jpg", "Approved", 90, "Kids Explorer", "Back to School 2025", "NA", _RIGHTS_NA, ("kids", "playground"), "Campaigns/2025/Back to School 2025"),
    ("image", "kids-explorer-backpack-combo.jpg", "Approved", 5, "Kids Explorer", "Back to School 2025", "LATAM", _RIGHTS_WORLDWIDE, ("kids", "bundle"), "Campaigns/2025/Back to School 2025"),
    ("image", "kids-explorer-size-chart.png", "Restricted", None, "Kids Explorer", "Evergreen", "Global", _RIGHTS_INTERNAL, ("kids", "size chart"), "Products/Kids Explorer"),
    ("video", "back-to-school-2025-unboxing.mp4", "Pending", None, "Kids Explorer", "Back to School 2025", "NA", _RIGHTS_NA, ("unboxing", "social"), "Campaigns/2025/Back to School 2025"),
    ("image", "alpine-pro-summit.jpg", "Approved", 365, "Alpine Pro", "Evergreen", "Global", _RIGHTS_WORLDWIDE, ("boot", "mountain", "summit"), "Products/Alpine Pro"),
    ("image", "alpine-pro-crampon-fit.jpg", "Approved", -3, "Alpine Pro", "Evergreen", "EMEA", _RIGHTS_EMEA, ("boot", "crampon", "detail"), "Products/Alpine Pro"),
    ("video", "alpine-pro-athlete-interview.mp4", "Approved", 30, "Alpine Pro", "Evergreen", "APAC", _RIGHTS_WORLDWIDE, ("interview", "athlete"), "Products/Alpine Pro"),
    ("document", "acme-brand-guidelines-2025.pdf", "Approved", None, "All", "Evergreen", "Global", _RIGHTS_INTERNAL, ("brand", "guidelines"), "Brand/Brand Guidelines"),
    ("document", "retailer-a-asset-spec-sheet.pdf", "Approved", 20, "All", "Evergreen", "NA", _RIGHTS_INTERNAL, ("retailer", "spec"), "Partner Releases/Retailer A"),
    ("document", "broadcast-delivery-requirements.docx", "Pending", None, "All", "Evergreen", "EMEA", _RIGHTS_INTERNAL, ("broadcast", "delivery"), "Partner Releases/Broadcast Partner"),
    ("document", "spring-launch-2025-press-kit.pdf", "Approved", 4, "Trail Runner X", "Spring Launch 2025", "Global", _RIGHTS_EDITORIAL, ("press", "kit"), "Campaigns/2025/Spring Launch 2025"),
    ("image", "acme-logo-primary.png", "Approved", None, "All", "Evergreen", "Global", _RIGHTS_WORLDWIDE, ("logo", "brand"), "Brand/Logos"),
    ("image", "acme-logo-monochrome.png", "Approved", None, "All", "Evergreen", "Global", _RIGHTS_WORLDWIDE, ("logo", "brand", "mono"), "Brand/Logos"),
    ("image", "acme-logo-legacy-2019.png", "Expired", -400, "All", "Evergreen", "Global", _RIGHTS_INTERNAL, ("logo", "legacy"), "Brand/Logos"),
    ("image", "retailer-a-endcap-mockup.jpg", "Approved", 14, "Urban Commuter", "Holiday 2024", "NA", _RIGHTS_NA, ("retail", "mockup"), "Partner Releases/Retailer A"),
)

_FOLDERS_AND_ALBUMS = (
    "Brand/Logos",
    "Brand/Brand Guidelines",
    "Campaigns/2025/Spring Launch 2025",
    "Campaigns/2025/Back to School 2025",
    "Campaigns/Holiday 2024",
    "Products/Trail Runner X",
    "Products/Urban Commuter",
    "Products/Kids Explorer",
    "Products/Alpine Pro",
    "Partner Releases/Retailer A",
    "Partner Releases/Broadcast Partner",
)

_MIME = {"jpg": "image/jpeg", "png": "image/png", "mp4": "video/mp4", "mov": "video/quicktime",
         "pdf": "application/pdf", "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document"}
# fmt: on


def seed_asset_id(name: str) -> str:
    """The id the seeded library gives the asset called `name` (other emulators link to it)."""
    return _canto_id("asset", name)


def _ensure_album(library: CantoLibrary, album_path: str) -> CantoNode:
    """The album at `A/B/Album`, creating missing folders and the album itself."""
    parts = [part for part in album_path.strip().strip("/").split("/") if part]
    if not parts:
        raise ValueError("empty album path")
    parent_id: str | None = None
    for depth, part in enumerate(parts):
        is_album = depth == len(parts) - 1
        node = library.child_named(parent_id, part)
        if node is None:
            node = library.add_node(part, "album" if is_album else "folder", parent_id)
        elif node.scheme != ("album" if is_album else "folder"):
            raise ValueError(f"{part!r} is a {node.scheme}, not a {'album' if is_album else 'folder'}")
        parent_id = node.id
    assert parent_id is not None
    return library.nodes[parent_id]


def seed_library(now: datetime) -> CantoLibrary:
    """The seeded library; expiry dates are relative to `now`."""
    library = CantoLibrary()
    for album_path in _FOLDERS_AND_ALBUMS:
        _ensure_album(library, album_path)
    for index, row in enumerate(_SEED_ASSETS):
        scheme, name, approval, expires_in, product, campaign, region, rights, keywords, album = row
        extension = name.rsplit(".", 1)[-1]
        uploaded = now - timedelta(days=200 - index * 5, hours=index)
        asset = CantoAssetRecord(
            id=seed_asset_id(name),
            scheme=scheme,
            name=name,
            approval_status=approval,
            uploaded=uploaded,
            expiration=None if expires_in is None else now + timedelta(days=expires_in),
            additional={"Rights": rights, "Campaign": campaign, "Product Line": product, "Region": region},
            metadata={
                "File Type Extension": extension,
                "MIME Type": _MIME[extension],
                "Creator": "ACME Creative Studio",
            },
            keyword=list(keywords),
            tag=[campaign.lower().replace(" ", "-")],
            # Originals are generated at this size: small enough for the demo to move in seconds.
            size=(index + 1) * 262_144 * (4 if scheme == "video" else 1),
            terms="Usage subject to the rights field and partner agreement.",
        )
        library.assets[asset.id] = asset
        _ensure_album(library, album).asset_ids.append(asset.id)
    return library


# -- rendering -----------------------------------------------------------------------------------


def _origin(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}"


def _render_asset(
    library: CantoLibrary, asset: CantoAssetRecord, request: web.Request, now: datetime
) -> dict[str, Any]:
    origin = _origin(request)
    api = f"{origin}/api/v1/{asset.scheme}/{asset.id}"
    binary = f"{origin}/api_binary/v1/{asset.scheme}/{asset.id}"
    related = []
    for album in library.albums_of(asset.id):
        id_path, name_path = library.path_of(album)
        related.append({"id": album.id, "name": album.name, "idPath": id_path, "namePath": name_path,
                        "scheme": "album"})  # fmt: skip
    rendered: dict[str, Any] = {
        "id": asset.id,
        "scheme": asset.scheme,
        "name": asset.name,
        "approvalStatus": asset.effective_status(now),
        "owner": _canto_id("user", asset.owner),
        "ownerName": asset.owner,
        "size": str(asset.size),
        "time": _canto_date(asset.modified or asset.uploaded),
        "created": _canto_date(asset.uploaded),
        "lastUploaded": _canto_date(asset.uploaded),
        "md5": hashlib.md5(asset.id.encode()).hexdigest(),
        "keyword": list(asset.keyword),
        "tag": list(asset.tag),
        "copyright": asset.copyright,
        "termsAndConditions": asset.terms,
        "metadata": dict(asset.metadata),
        "additional": dict(asset.additional),
        "default": {
            "Name": asset.name,
            "Size": f"{asset.size / 1_048_576:.1f} MB",
            "Date uploaded": _canto_date(asset.uploaded),
            "Date modified": _canto_date(asset.modified or asset.uploaded),
            "Uploaded by": asset.owner,
            "Copyright": asset.copyright,
            "Content Type": asset.metadata.get("MIME Type", "application/octet-stream"),
        },
        "relatedAlbums": related,
        "versionHistory": [
            {
                "no": "1",
                "version": "1",
                "ownerName": asset.owner,
                "time": _canto_date(asset.uploaded),
                "created": _canto_date(asset.uploaded),
                "comment": "initial upload",
                "currentVersion": "true",
            },
        ],
        "url": {
            "preview": f"{binary}/preview",
            "download": f"{binary}/download",
            "detail": api,
            "metadata": f"{origin}/api/v1/metadata/{asset.scheme}/{asset.id}",
            "directUrlOriginal": f"{origin}/direct/{asset.scheme}/{asset.id}/original",
            "directUrlPreview": f"{origin}/direct/{asset.scheme}/{asset.id}/preview",
        },
    }
    if asset.expiration is not None:
        rendered["expirationDate"] = _canto_date(asset.expiration)
    if asset.scheme == "image":
        rendered.update({"width": "4000", "height": "2667", "dpi": "300"})
        rendered["url"].update({"PNG": f"{binary}/PNG", "HighJPG": f"{binary}/HighJPG",
                                "LowJPG": f"{binary}/LowJPG"})  # fmt: skip
    return rendered


def _render_node(library: CantoLibrary, node: CantoNode, *, layers: int) -> dict[str, Any]:
    id_path, name_path = library.path_of(node)
    rendered: dict[str, Any] = {
        "id": node.id,
        "name": node.name,
        "scheme": node.scheme,
        "idPath": id_path,
        "namePath": name_path,
        "description": node.description,
        "size": len(node.asset_ids) if node.scheme == "album" else len(node.children),
    }
    if node.scheme == "folder":
        children = sorted((library.nodes[i] for i in node.children), key=lambda n: n.name.lower())
        rendered["children"] = (
            [_render_node(library, child, layers=layers - 1) for child in children] if layers != 1 else []
        )
    return rendered


# -- request parsing -------------------------------------------------------------------------------


class _BadRequest(Exception):
    pass


def _int_param(request: web.Request, name: str, default: int, *, minimum: int = 0) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise _BadRequest(f"{name} must be an integer") from None
    if value < minimum:
        raise _BadRequest(f"{name} must be >= {minimum}")
    return value


def _asset_refs(items: Any) -> list[tuple[str, str]]:
    # batch/album has been seen sending contents keyed by id (a PHP associative array).
    if isinstance(items, dict):
        items = list(items.values())
    if not isinstance(items, list) or not items:
        raise _BadRequest("contents must be a non-empty list of {id, scheme}")
    refs = []
    for item in items:
        if (
            not isinstance(item, dict)
            or not isinstance(item.get("id"), str)
            or not isinstance(item.get("scheme"), str)
        ):
            raise _BadRequest("each content needs string id and scheme")
        refs.append((item["id"], item["scheme"]))
    return refs


def _sort_key(sort_by: str) -> Callable[[CantoAssetRecord], Any]:
    keys: dict[str, Callable[[CantoAssetRecord], Any]] = {
        "name": lambda a: a.name.lower(),
        "scheme": lambda a: (a.scheme, a.name.lower()),
        "size": lambda a: a.size,
        "owner": lambda a: a.owner,
        "time": lambda a: a.modified or a.uploaded,
    }
    if sort_by not in keys:
        raise _BadRequest(f"unknown sortBy {sort_by!r}")
    return keys[sort_by]


def create_app(
    *,
    app_id: str = DEFAULT_APP_ID,
    app_secret: str = DEFAULT_APP_SECRET,
    token_expires_in: int = MONTH_SECONDS,
    issue_refresh_tokens: bool = True,
    rate_per_second: float | None = None,
    burst: int = 20,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    monotonic: Callable[[], float] = time.monotonic,
) -> web.Application:
    """A Canto tenant plus its OAuth server; `now` drives expiry, `monotonic` token lifetimes."""
    app = web.Application()
    app[_LIBRARY] = seed_library(now())
    app[_TOKENS] = CantoTokenLedger()
    request_counter = itertools.count(1)

    def library() -> CantoLibrary:
        return app[_LIBRARY]

    def reset() -> None:
        # The app is running (frozen): re-seed the library object in place.
        fresh = seed_library(now())
        for slot in dataclasses.fields(fresh):
            setattr(app[_LIBRARY], slot.name, getattr(fresh, slot.name))
        app[_TOKENS].reset()

    def expire_tokens() -> None:
        app[_TOKENS].access.clear()

    @web.middleware
    async def vendor_edge(request: web.Request, handler: _Handler) -> web.StreamResponse:
        """Request ids on every answer; bearer auth on the API; vendor-shaped 400s."""
        request_id = f"canto-{next(request_counter)}"
        _REQUEST_ID.set(request_id)
        is_api = request.path.startswith(("/api/v1/", "/api_binary/v1/", "/direct/"))
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        expiry = app[_TOKENS].access.get(token) if scheme.lower() == "bearer" else None
        if is_api and (expiry is None or monotonic() >= expiry):
            response: web.StreamResponse = _error(401, "Unauthorized: invalid or expired access token")
        else:
            try:
                response = await handler(request)
            except _BadRequest as exc:
                response = _error(400, str(exc))
        if not response.prepared:  # a streamed original set its own id before sending headers
            response.headers.setdefault("X-Request-Id", request_id)
        return response

    # -- OAuth --

    async def token(request: web.Request) -> web.Response:
        ledger = app[_TOKENS]
        query = request.query
        grant_type = query.get("grant_type", "")
        ledger.requests[grant_type or "<missing>"] += 1
        if query.get("app_id") != app_id or not secrets.compare_digest(
            query.get("app_secret", "").encode(), app_secret.encode()
        ):
            return web.json_response(
                {"error": "invalid_client", "error_description": "Unknown app_id or wrong app_secret"},
                status=401,
            )
        if grant_type == "refresh_token":
            presented = query.get("refresh_token", "")
            if presented not in ledger.refresh:
                return web.json_response(
                    {"error": "invalid_grant", "error_description": "Refresh token is invalid or expired"},
                    status=400,
                )
            ledger.refresh.discard(presented)  # rotated: each refresh token works once
        elif grant_type != "client_credentials":
            return web.json_response(
                {"error": "unsupported_grant_type", "error_description": f"grant_type {grant_type!r}"},
                status=400,
            )
        access = secrets.token_hex(20)
        ledger.access[access] = monotonic() + token_expires_in
        body: dict[str, Any] = {"accessToken": access, "expiresIn": token_expires_in, "tokenType": "bearer"}
        if issue_refresh_tokens:
            refresh = secrets.token_hex(20)
            ledger.refresh.add(refresh)
            body["refreshToken"] = refresh
        return web.json_response(body)

    async def token_stats(request: web.Request) -> web.Response:
        ledger = app[_TOKENS]
        return web.json_response(
            {"total": sum(ledger.requests.values()), "by_grant_type": dict(ledger.requests)}
        )

    async def upload(request: web.Request) -> web.Response:
        body = await _json(request)
        if not isinstance(body, dict) or not isinstance(body.get("name"), str) or not body["name"].strip():
            raise _BadRequest("body must be {album_id, name, scheme?, approval_status?, uploader?}")
        album = _album(str(body.get("album_id", "")))
        if album is None:
            return _error(404, "The album does not exist")
        scheme = str(body.get("scheme") or "image")
        status = str(body.get("approval_status") or "Pending")
        if scheme not in SCHEMES or status not in APPROVAL_STATUSES:
            raise _BadRequest(f"unknown scheme {scheme!r} or approval status {status!r}")
        name = body["name"].strip()
        extension = name.rsplit(".", 1)[-1].lower() if "." in name else ""
        record = CantoAssetRecord(
            id=_canto_id("upload", album.id, name),
            scheme=scheme,
            name=name,
            approval_status=status,
            uploaded=now(),
            metadata={
                "File Type Extension": extension,
                "MIME Type": _MIME.get(extension, "application/octet-stream"),
            },
            owner=str(body.get("uploader") or "Supplier Upload"),
            size=1_048_576,
        )
        library().assets[record.id] = record
        album.asset_ids.append(record.id)
        return web.json_response(_render_asset(library(), record, request, now()), status=201)

    # -- search and assets --

    def _page(request: web.Request, records: list[CantoAssetRecord], *, default_sort: str) -> web.Response:
        start = _int_param(request, "start", 0)
        limit = min(_int_param(request, "limit", DEFAULT_LIMIT, minimum=1), MAX_LIMIT)
        sort_by = request.query.get("sortBy") or default_sort
        direction = request.query.get("sortDirection") or "descending"
        if direction not in ("ascending", "descending"):
            raise _BadRequest("sortDirection must be ascending or descending")
        ordered = sorted(records, key=_sort_key(sort_by), reverse=direction == "descending")
        current = now()
        facets = Counter(record.scheme for record in records)
        return web.json_response(
            {
                "results": [
                    _render_asset(library(), r, request, current) for r in ordered[start : start + limit]
                ],
                "found": len(records),
                "start": start,
                "limit": limit,
                "sortBy": sort_by,
                "sortDirection": direction,
                "matchExpr": request.query.get("keyword", ""),
                "facets": [{"name": "scheme", "value": [{"name": k, "hits": v} for k, v in facets.items()]}],
            }
        )

    async def search(request: web.Request) -> web.Response:
        keyword = request.query.get("keyword", "").strip().lower()
        schemes = {s for s in request.query.get("scheme", "").replace(",", "|").split("|") if s}
        approval = request.query.get("approval", "").strip().lower()
        current = now()
        matches = [
            record
            for record in library().assets.values()
            if (not keyword or all(word in record.searchable_text() for word in keyword.split()))
            and (not schemes or record.scheme in schemes)
            and (not approval or record.effective_status(current).lower() == approval)
        ]
        return _page(request, matches, default_sort="time")

    def _asset_or_none(scheme: str, asset_id: str) -> CantoAssetRecord | None:
        record = library().assets.get(asset_id)
        return record if record is not None and record.scheme == scheme else None

    async def get_asset(request: web.Request) -> web.Response:
        record = _asset_or_none(request.match_info["scheme"], request.match_info["id"])
        if record is None:
            return _error(404, "The content does not exist")
        return web.json_response(_render_asset(library(), record, request, now()))

    async def batch_content(request: web.Request) -> web.Response:
        refs = _asset_refs(await _json(request))
        current = now()
        found = [r for r in (_asset_or_none(s, i) for i, s in refs) if r is not None]
        return web.json_response(
            {"docResult": [_render_asset(library(), r, request, current) for r in found]}
        )

    async def batch_edit(request: web.Request) -> web.Response:
        body = await _json(request)
        if not isinstance(body, dict):
            raise _BadRequest("body must be {contents, properties}")
        records = []
        for asset_id, scheme in _asset_refs(body.get("contents")):
            record = _asset_or_none(scheme, asset_id)
            if record is None:
                return _error(404, f"The content {scheme}/{asset_id} does not exist")
            records.append(record)
        properties = body.get("properties")
        if not isinstance(properties, list) or not properties:
            raise _BadRequest("properties must be a non-empty list")
        for prop in properties:
            _check_property(prop)
        current = now()
        # All or nothing: edit copies, keep them only when every property applied.
        edited = [copy.deepcopy(record) for record in records]
        for record in edited:
            for prop in properties:
                _apply_property(record, prop, current)
            record.modified = current
        library().assets.update((record.id, record) for record in edited)
        return web.Response(text="success", content_type="text/plain")

    # -- albums --

    async def tree(request: web.Request) -> web.Response:
        layers = _int_param(request, "layer", -1, minimum=-1)
        lib = library()
        folder_id = request.match_info.get("folder_id")
        if folder_id is None:
            top = [lib.nodes[i] for i in lib.roots]
        else:
            folder = lib.nodes.get(folder_id)
            if folder is None or folder.scheme != "folder":
                return _error(404, "The folder does not exist")
            top = [lib.nodes[i] for i in folder.children]
        top.sort(key=lambda n: n.name.lower())
        return web.json_response(
            {
                "results": [_render_node(lib, node, layers=layers) for node in top],
                "sortBy": request.query.get("sortBy", "name"),
                "sortDirection": request.query.get("sortDirection", "ascending"),
            }
        )

    def _album(album_id: str) -> CantoNode | None:
        node = library().nodes.get(album_id)
        return node if node is not None and node.scheme == "album" else None

    async def album_info(request: web.Request) -> web.Response:
        album = _album(request.match_info["album_id"])
        if album is None:
            return _error(404, "The album does not exist")
        return web.json_response(_render_node(library(), album, layers=1))

    async def album_contents(request: web.Request) -> web.Response:
        album = _album(request.match_info["album_id"])
        if album is None:
            return _error(404, "The album does not exist")
        records = [library().assets[i] for i in album.asset_ids if i in library().assets]
        return _page(request, records, default_sort="time")

    async def create_album(request: web.Request) -> web.Response:
        lib = library()
        parent = lib.nodes.get(request.match_info["parent_id"])
        if parent is None or parent.scheme != "folder":
            return _error(404, "The parent folder does not exist")
        name = request.match_info["name"].strip()
        if not name:
            raise _BadRequest("album name must not be empty")
        if lib.child_named(parent.id, name) is not None:
            return _error(409, f"{name!r} already exists in {parent.name!r}")
        album = lib.add_node(name, "album", parent.id, description=request.query.get("description", ""))
        return web.json_response(_render_node(lib, album, layers=1))

    async def batch_album(request: web.Request) -> web.Response:
        body = await _json(request)
        if not isinstance(body, dict) or not isinstance(body.get("albumPath"), str):
            raise _BadRequest("body must be {albumPath, contents}")
        records = []
        for asset_id, scheme in _asset_refs(body.get("contents")):
            record = _asset_or_none(scheme, asset_id)
            if record is None:
                return _error(404, f"The content {scheme}/{asset_id} does not exist")
            records.append(record)
        try:
            album = _ensure_album(library(), body["albumPath"])
        except ValueError as exc:
            raise _BadRequest(str(exc)) from None
        for record in records:
            if record.id not in album.asset_ids:
                album.asset_ids.append(record.id)
        return web.Response(text="success", content_type="text/plain")

    async def download(request: web.Request) -> web.StreamResponse:
        record = _asset_or_none(request.match_info["scheme"], request.match_info["id"])
        if record is None:
            return _error(404, "The content does not exist")
        response = web.StreamResponse(
            headers={
                "Content-Type": record.metadata.get("MIME Type", "application/octet-stream"),
                "Content-Disposition": f'attachment; filename="{record.name}"',
                "X-Request-Id": _REQUEST_ID.get(),
            }
        )
        response.content_length = record.size
        await response.prepare(request)
        for chunk in original_chunks(record.id, record.size):
            await response.write(chunk)
        await response.write_eof()
        return response

    def _original_facts(record: CantoAssetRecord) -> dict[str, Any]:
        sha256, md5 = original_digest(record.id, record.size)
        return {"id": record.id, "name": record.name, "size": record.size, "sha256": sha256, "md5": md5}

    async def get_original(request: web.Request) -> web.Response:
        record = library().assets.get(request.match_info["id"])
        if record is None:
            return _error(404, "The content does not exist")
        return web.json_response(_original_facts(record))

    async def size_original(request: web.Request) -> web.Response:
        record = library().assets.get(request.match_info["id"])
        if record is None:
            return _error(404, "The content does not exist")
        body = await _json(request)
        size = body.get("size") if isinstance(body, dict) else None
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise _BadRequest("body must be {size: bytes >= 0}")
        record.size = size
        return web.json_response(_original_facts(record))

    add_fault_injection(
        app,
        reset=reset,
        expire_tokens=expire_tokens,
        error_body=lambda status: {"status": status, "message": "injected fault"},
    )
    if rate_per_second is not None:
        add_rate_limit(
            app,
            per_second=rate_per_second,
            burst=burst,
            monotonic=monotonic,
            response=lambda retry_after: web.json_response(
                {"status": 429, "message": "Too many requests"},
                status=429,
                headers={"Retry-After": str(max(1, math.ceil(retry_after)))},
            ),
        )
    app.middlewares.append(vendor_edge)

    schemes = "|".join(SCHEMES)
    router = app.router
    router.add_post("/oauth/api/oauth2/token", token)
    router.add_get("/_control/canto/tokens", token_stats)
    router.add_post("/_control/canto/upload", upload)
    router.add_get("/_control/canto/originals/{id}", get_original)
    router.add_put("/_control/canto/originals/{id}", size_original)
    router.add_get("/api/v1/search", search)
    router.add_post("/api/v1/batch/content", batch_content)
    router.add_put("/api/v1/batch/edit", batch_edit)
    router.add_post("/api/v1/batch/album", batch_album)
    router.add_get("/api/v1/tree", tree)
    router.add_get("/api/v1/tree/{folder_id}", tree)
    router.add_get("/api/v1/info/album/{album_id}", album_info)
    router.add_get("/api/v1/album/{album_id}", album_contents)
    router.add_post("/api/v1/album/{parent_id}/{name}", create_album)
    router.add_get(f"/api/v1/{{scheme:{schemes}}}/{{id}}", get_asset)
    router.add_get(f"/api_binary/v1/{{scheme:{schemes}}}/{{id}}/download", download)
    router.add_get(f"/direct/{{scheme:{schemes}}}/{{id}}/original", download)
    return app


async def _json(request: web.Request) -> Any:
    try:
        return await request.json()
    except ValueError:
        raise _BadRequest("body is not valid JSON") from None


def _check_property(prop: Any) -> None:
    if not isinstance(prop, dict):
        raise _BadRequest("each property must be an object")
    if not isinstance(prop.get("propertyId"), str) or not prop["propertyId"]:
        raise _BadRequest("propertyId is required")
    if not isinstance(prop.get("propertyValue"), str):
        raise _BadRequest("propertyValue must be a string")
    if prop.get("action", "") not in ("", "add", "remove", "delete"):
        raise _BadRequest(f"unknown action {prop.get('action')!r}")
    if not isinstance(prop.get("customField", False), bool):
        raise _BadRequest("customField must be a boolean")
    if not prop.get("customField") and prop["propertyId"] == "approvalStatus":
        if prop["propertyValue"] not in APPROVAL_STATUSES:
            raise _BadRequest(f"unknown approval status {prop['propertyValue']!r}")


def _edit_values(current: Iterable[str], value: str, action: str) -> list[str]:
    values = list(current)
    if action == "add":
        return values + [v for v in (s.strip() for s in value.split(",")) if v and v not in values]
    if action in ("remove", "delete"):
        removed = {s.strip() for s in value.split(",")}
        return [v for v in values if v not in removed]
    return [v for v in (s.strip() for s in value.split(",")) if v]


def _apply_property(record: CantoAssetRecord, prop: dict[str, Any], now: datetime) -> None:
    name, value, action = prop["propertyId"], prop["propertyValue"], prop.get("action", "")
    if prop.get("customField"):
        if action in ("remove", "delete"):
            record.additional.pop(name, None)
        elif action == "add" and record.additional.get(name):
            record.additional[name] = ", ".join(
                _edit_values(record.additional[name].split(", "), value, "add")
            )
        else:
            record.additional[name] = value
        return
    if name in LIST_PROPERTIES:
        setattr(record, name, _edit_values(getattr(record, name), value, action))
    elif name == "approvalStatus":
        record.approval_status = value
        if value != "Approved":
            record.expiration = None  # expiry is only kept on Approved assets
    elif name == "expirationDate":
        if record.effective_status(now) != "Approved":
            raise _BadRequest("an expiration date can only be set on Approved assets")
        try:
            parsed = datetime.strptime(value[:14], "%Y%m%d%H%M%S").replace(tzinfo=UTC)
        except ValueError:
            raise _BadRequest("expirationDate must be yyyyMMddHHmmssSSS") from None
        record.expiration = parsed
    elif name == "copyright":
        record.copyright = value
    elif name == "termsAndConditions":
        record.terms = value
    elif name == "name":
        record.name = value
    else:
        record.metadata[name] = value
