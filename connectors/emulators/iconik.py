"""iconik emulator: the assets, files, jobs, metadata and notifications calls opsgate makes.

Paths, parameters and bodies follow iconik's OpenAPI specs (tests check requests and answers
against them). Every `/API/` call needs the `App-ID` and `Auth-Token` headers, else 401
`{"errors": [...]}`; validation failures are 400 `{"errors": {"field": "message"}}`; missing
objects are 404. Lists page with `page`/`per_page` (files and formats with `last_id`) and carry
a relative `next_url`.

Transfer jobs progress one state per poll, READY -> STARTED -> FINISHED (`job_steps`), and on
FINISHED copy or move the files. A job fails when its target storage is FAILING, or when an
outcome was queued with `POST /_control/iconik/job_outcomes {"status": "FAILED", "error_message":
"...", "times": 1}`. `POST /_control/iconik/history {"asset_id", "operation_type", "user_id",
"share_id", ...}` adds what a person did in iconik's UI (a download, an export) to the asset's
history. Seeded with storages (FILES, PROXIES, ARCHIVE and one EXPORTS storage per
partner destination), a "Release" metadata view, assets with files and formats, approvals,
collections and a webhook registry.

Collections can be listed and created (`GET|POST /API/assets/v1/collections/`, for onboarding):
a new collection may name a `parent_id` (it joins the parent's contents), an `external_id` and a
`storage_id` (an unknown storage is a 400, as is a missing title).

Putting a file into iconik follows the files API: create a format, a file set and a file (with
its `size` and optional MD5 `checksum`); the file answer carries a signed `upload_url` taking
one streamed `PUT` of the bytes (whatever the storage method: real iconik hands out GCS, S3 or
B2 specific URLs); `PATCH` the file to `status: CLOSED` and a TRANSCODE job starts for the asset.
Closing refuses (400) a file whose received bytes differ in size or MD5 from what was declared.
The emulator keeps no bytes, only what arrived: `GET /_control/iconik/files/{file_id}` answers
`{size, sha256, md5}` of the upload. Assets, formats and file sets can be deleted (compensation).

Jobs of other types can be failed too: queued outcomes take an optional `job_type` (default
TRANSFER, or TRANSCODE for the job a file close starts), and `POST /_control/iconik/jobs/{id}/fail
{"error_message"}` fails a running job on the spot.

App tokens (auth API): `POST /API/auth/v1/apps/{app_id}/token/` creates one, `GET
/API/auth/v1/auth/tokens/` lists them (never their values), `GET /API/auth/v1/auth/token/`
answers whether the presented token is valid, `DELETE /API/auth/v1/auth/token/` revokes the
presented token and `DELETE /API/auth/v1/auth/token/{id}/` any token: a revoked token gets 401.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import math
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from connectors.emulators.canto import seed_asset_id
from connectors.emulators.faults import add_fault_injection, add_rate_limit

__all__ = [
    "DEFAULT_APP_ID",
    "DEFAULT_AUTH_TOKEN",
    "IconikDomain",
    "create_app",
    "iconik_domain_of",
    "seed_domain",
]

_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

DEFAULT_APP_ID = "opsgate-iconik-app"
DEFAULT_AUTH_TOKEN = "iconik-emulator-token"
DEFAULT_PER_PAGE = 10
MAX_PER_PAGE = 500
MAX_STORAGES_PER_PAGE = 100
DEFAULT_JOB_STEPS = ("READY", "STARTED", "FINISHED")
TERMINAL = {"FINISHED", "FINISHED_WITH_WARNING", "SKIPPED", "FAILED", "ABORTED"}
# AssetHistorySchema.operation_type in iconik's assets spec.
HISTORY_OPERATIONS = frozenset(
    {"EXPORT", "TRANSCODE", "ANALYZE", "ADD_FORMAT", "DELETE_FORMAT", "RESTORE_FORMAT", "DELETE_FILESET",
     "DELETE_FILE", "RESTORE_FILESET", "MODIFY_FILESET", "APPROVE", "REJECT", "DOWNLOAD", "METADATA", "CUSTOM",
     "TRANSCRIPTION", "VERSION_CREATE", "VERSION_DELETE", "VERSION_UPDATE", "VERSION_PROMOTE", "RESTORE",
     "RESTORE_FROM_GLACIER", "ARCHIVE", "RESTORE_ARCHIVE", "DELETE", "TRANSFER", "UNLINK_SUBCLIP",
     "FACE_RECOGNITION"}
)  # fmt: skip
_NAMESPACE = uuid.UUID("6f1c3a5e-7d2b-4f0a-9c1e-2b8d4e6f8a10")


def _uuid(*parts: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, "/".join(parts)))


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat()


class _Problem(Exception):
    """An error answer in iconik's shape."""

    def __init__(self, status: int, errors: list[str] | dict[str, str]) -> None:
        super().__init__(str(errors))
        self.status = status
        self.errors = errors

    def response(self) -> web.Response:
        return web.json_response({"errors": self.errors}, status=self.status)


def _not_found(what: str) -> _Problem:
    return _Problem(404, [f"{what} does not exist"])


# -- state ---------------------------------------------------------------------------------------


@dataclass
class IconikDomain:
    """The emulator's data: one iconik system domain."""

    user_id: str
    assets: dict[str, dict[str, Any]] = field(default_factory=dict)
    history: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    formats: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    files: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    storages: dict[str, dict[str, Any]] = field(default_factory=dict)
    views: dict[str, dict[str, Any]] = field(default_factory=dict)
    metadata: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    job_plans: dict[str, dict[str, Any]] = field(default_factory=dict)
    approvals: dict[tuple[str, str], dict[str, dict[str, Any]]] = field(default_factory=dict)
    collections: dict[str, dict[str, Any]] = field(default_factory=dict)
    collection_contents: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    webhooks: dict[str, dict[str, Any]] = field(default_factory=dict)
    queued_outcomes: list[dict[str, Any]] = field(default_factory=list)
    file_sets: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    received: dict[str, dict[str, Any]] = field(default_factory=dict)  # file id -> {size, sha256, md5}
    tokens: dict[str, dict[str, Any]] = field(default_factory=dict)  # token id -> record with value

    def storage_named(self, name: str) -> dict[str, Any]:
        """The storage called `name` (seeded names are unique)."""
        return next(s for s in self.storages.values() if s["name"] == name)


_DOMAIN = web.AppKey("iconik_domain", IconikDomain)


def iconik_domain_of(app: web.Application) -> IconikDomain:
    """The domain served by an app from create_app (for in-process tests)."""
    return app[_DOMAIN]


# -- seed data -----------------------------------------------------------------------------------

_STORAGES = (
    # name, purpose, method, status, default, description
    ("ACME Main Files", "FILES", "S3", "ACTIVE", True, "Masters ingested from Canto"),
    ("ACME Proxies", "PROXIES", "GCS", "ACTIVE", True, "Browse proxies and keyframes"),
    ("Export - Retailer A", "EXPORTS", "S3", "ACTIVE", False, "Retailer A partner drop bucket"),
    ("Export - Broadcast Partner", "EXPORTS", "S3", "ACTIVE", False, "Broadcast playout ingest"),
    ("Export - Social Agency", "EXPORTS", "SFTP", "ACTIVE", False, "Agency SFTP for social cut-downs"),
    ("Export - Legacy FTP", "EXPORTS", "FTP", "FAILING", False, "Old distributor FTP (credentials expired)"),
    ("Deep Archive", "ARCHIVE", "S3", "ACTIVE", True, "Glacier deep archive"),
)

_RELEASE_FIELDS: tuple[dict[str, Any], ...] = (
    {"name": "release_status", "label": "Release status", "field_type": "drop_down", "multi": False,
     "options": [{"label": v.title(), "value": v} for v in ("pending", "approved", "released", "withdrawn")]},
    {"name": "partner_destination", "label": "Partner destination", "field_type": "drop_down", "multi": True,
     "options": [{"label": v, "value": v} for v in ("Retailer A", "Broadcast Partner", "Social Agency")]},
    {"name": "canto_asset_id", "label": "Canto asset id", "field_type": "string", "multi": False,
     "options": []},
    {"name": "rights", "label": "Rights", "field_type": "text", "multi": False, "options": []},
    {"name": "campaign", "label": "Campaign", "field_type": "string", "multi": False, "options": []},
    {"name": "region", "label": "Region", "field_type": "drop_down", "multi": True,
     "options": [{"label": v, "value": v} for v in ("Global", "EMEA", "NA", "APAC", "LATAM")]},
    {"name": "expires_on", "label": "Rights expire on", "field_type": "date", "multi": False, "options": []},
)  # fmt: skip

_TECH_FIELDS: tuple[dict[str, Any], ...] = (
    {"name": "video_codec", "label": "Video codec", "field_type": "string", "multi": False, "options": []},
    {"name": "resolution", "label": "Resolution", "field_type": "string", "multi": False, "options": []},
    {"name": "duration_ms", "label": "Duration (ms)", "field_type": "integer", "multi": False, "options": []},
)  # fmt: skip

# title (as in the Canto emulator), Canto scheme, campaign, region, release status, approval
_ASSETS = (
    ("spring-launch-2025-hero-30s.mp4", "video", "Spring Launch 2025", "Global", "approved", "APPROVED"),
    ("spring-launch-2025-cutdown-15s.mp4", "video", "Spring Launch 2025", "EMEA", "approved", "APPROVED"),
    ("spring-launch-2025-social-9x16.mp4", "video", "Spring Launch 2025", "APAC", "pending", "REQUESTED"),
    ("trail-runner-x-hero-front.jpg", "image", "Spring Launch 2025", "Global", "released", "APPROVED"),
    ("trail-runner-x-mud-action.jpg", "image", "Spring Launch 2025", "EMEA", "pending", "REQUESTED"),
    ("holiday-2024-gift-guide-60s.mov", "video", "Holiday 2024", "NA", "withdrawn", "NOT_APPROVED"),
    ("urban-commuter-city-night.jpg", "image", "Evergreen", "Global", "released", "APPROVED"),
    ("alpine-pro-athlete-interview.mp4", "video", "Evergreen", "APAC", "pending", "N/A"),
    ("kids-explorer-playground.jpg", "image", "Back to School 2025", "NA", "approved", "APPROVED"),
    ("acme-brand-guidelines-2025.pdf", "document", "Evergreen", "Global", "released", "APPROVED"),
    ("back-to-school-2025-unboxing.mp4", "video", "Back to School 2025", "NA", "pending", "REQUESTED"),
    ("retailer-a-endcap-mockup.jpg", "image", "Holiday 2024", "NA", "approved", "APPROVED"),
)


def _file(
    asset_id: str, version_id: str, fmt: dict[str, Any], storage: dict[str, Any], name: str, size: int,
    created: datetime,
) -> dict[str, Any]:  # fmt: skip
    file_set_id = _uuid("fileset", asset_id, fmt["name"], storage["id"])
    return {
        "id": _uuid("file", asset_id, fmt["name"], storage["id"], name),
        "asset_id": asset_id,
        "version_id": version_id,
        "format_id": fmt["id"],
        "file_set_id": file_set_id,
        "storage_id": storage["id"],
        "storage_method": storage["method"],
        "name": name,
        "original_name": name,
        "directory_path": f"{created:%Y/%m}/{asset_id[:8]}",
        "size": size,
        "status": "CLOSED",
        "type": "FILE",
        "checksum": hashlib.md5(f"{asset_id}{name}".encode()).hexdigest(),
        "date_created": _iso(created),
        "date_modified": _iso(created),
    }


def seed_domain(now: datetime) -> IconikDomain:
    """The seeded domain; dates are relative to `now`."""
    domain = IconikDomain(user_id=_uuid("user", "opsgate-bot"))
    reviewer = _uuid("user", "reviewer-marta")
    for name, purpose, method, status, default, description in _STORAGES:
        storage_id = _uuid("storage", name)
        domain.storages[storage_id] = {
            "id": storage_id, "name": name, "purpose": purpose, "method": method, "status": status,
            "default": default, "description": description,
            "settings": {"bucket": name.lower().replace(" ", "-")},
            "status_message": "Authentication failed" if status == "FAILING" else None, "last_scanned": None,
            "scanner_status": None, "version": "1",
        }  # fmt: skip
    for view_name, fields in (("Release", _RELEASE_FIELDS), ("Technical", _TECH_FIELDS)):
        view_id = _uuid("view", view_name)
        domain.views[view_id] = {
            "id": view_id, "name": view_name, "description": f"{view_name} metadata",
            "date_created": _iso(now - timedelta(days=400)), "date_modified": _iso(now - timedelta(days=30)),
            "view_fields": [dict(f) for f in fields],
        }  # fmt: skip
    release_view = domain.views[_uuid("view", "Release")]
    main = domain.storage_named("ACME Main Files")
    proxies = domain.storage_named("ACME Proxies")
    for index, (title, media, campaign, region, release_status, approval) in enumerate(_ASSETS):
        asset_id = _uuid("asset", title)
        version_id = _uuid("version", title, "1")
        created = now - timedelta(days=120 - index * 7)
        domain.assets[asset_id] = {
            "id": asset_id, "title": title, "type": "ASSET", "status": "ACTIVE",
            "archive_status": "NOT_ARCHIVED",
            "analyze_status": "N/A", "face_recognition_status": "N/A", "is_online": True, "is_blocked": False,
            "external_id": f"canto:{media}:{seed_asset_id(title)}",
            "external_link": None, "category": media, "warning": None,
            "created_by_user": domain.user_id, "date_created": _iso(created), "date_imported": _iso(created),
            "date_modified": _iso(created), "in_collections": [],
            "versions": [{"id": version_id, "version_number": 1, "status": "ACTIVE", "analyze_status": "N/A",
                          "archive_status": "NOT_ARCHIVED", "face_recognition_status": "N/A",
                          "transcribe_status": "N/A", "is_online": True, "created_by_user": domain.user_id,
                          "date_created": _iso(created)}],
        }  # fmt: skip
        original = {
            "id": _uuid("format", title, "ORIGINAL"), "name": "ORIGINAL", "asset_id": asset_id,
            "version_id": version_id, "status": "ACTIVE", "archive_status": "NOT_ARCHIVED", "is_online": True,
            "storage_methods": [main["method"]], "user_id": domain.user_id, "metadata": [], "warnings": [],
            "components": [], "date_created": _iso(created), "date_modified": _iso(created),
        }  # fmt: skip
        domain.formats[asset_id] = [original]
        size = (index + 1) * (750_000_000 if media == "video" else 12_000_000)
        domain.files[asset_id] = [_file(asset_id, version_id, original, main, title, size, created)]
        if media == "video":
            proxy = {**original, "id": _uuid("format", title, "PPRO_PROXY"), "name": "PPRO_PROXY",
                     "storage_methods": [proxies["method"]]}  # fmt: skip
            domain.formats[asset_id].append(proxy)
            proxy_name = title.rsplit(".", 1)[0] + "_proxy.mp4"
            domain.files[asset_id].append(
                _file(asset_id, version_id, proxy, proxies, proxy_name, size // 20, created)
            )
        domain.history[asset_id] = [
            {"id": _uuid("history", title, "transcode"), "asset_id": asset_id, "version_id": version_id,
             "operation_type": "TRANSCODE", "operation_description": "Proxy generated", "job_id": None,
             "user_id": domain.user_id, "system_domain_id": _uuid("domain"), "date_created": _iso(created),
             "date_modified": _iso(created)},
            {"id": _uuid("history", title, "metadata"), "asset_id": asset_id, "version_id": version_id,
             "operation_type": "METADATA", "operation_description": "Release view updated", "job_id": None,
             "user_id": domain.user_id, "system_domain_id": _uuid("domain"),
             "date_created": _iso(created + timedelta(hours=2)),
             "date_modified": _iso(created + timedelta(hours=2))},
        ]  # fmt: skip
        domain.metadata[(asset_id, release_view["id"])] = {
            "release_status": [release_status],
            "campaign": [campaign],
            "region": [region],
            "canto_asset_id": [domain.assets[asset_id]["external_id"].rsplit(":", 1)[-1]],
        }
        if approval != "N/A":
            domain.approvals[("assets", asset_id)] = {
                reviewer: {
                    "user": reviewer,
                    "status": approval,
                    "change_date": _iso(created + timedelta(days=1)),
                }
            }
    releases = _uuid("collection", "Releases")
    for title, parent, members in (
        ("Releases", None, ()),
        ("Retailer A - Spring 2025", releases,
         ("trail-runner-x-hero-front.jpg", "retailer-a-endcap-mockup.jpg")),
        ("Broadcast Partner - Q3", releases,
         ("spring-launch-2025-hero-30s.mp4", "spring-launch-2025-cutdown-15s.mp4")),
        ("Brand Library", None, ("acme-brand-guidelines-2025.pdf", "urban-commuter-city-night.jpg")),
    ):  # fmt: skip
        collection_id = _uuid("collection", title)
        domain.collections[collection_id] = {
            "id": collection_id, "title": title, "status": "ACTIVE", "object_type": "collections",
            "parent_id": parent, "is_root": parent is None, "in_collections": [parent] if parent else [],
            "parents": [parent] if parent else [], "external_id": None, "category": None,
            "created_by_user": domain.user_id, "date_created": _iso(now - timedelta(days=90)),
            "date_modified": _iso(now - timedelta(days=3)), "keyframe_asset_ids": [], "keyframes": [],
        }  # fmt: skip
        domain.collection_contents[collection_id] = [("assets", _uuid("asset", m)) for m in members]
        if parent:
            domain.collection_contents[parent].append(("collections", collection_id))
        for member in members:
            domain.assets[_uuid("asset", member)]["in_collections"].append(collection_id)
    hook_id = _uuid("webhook", "legacy-dam-sync")
    domain.webhooks[hook_id] = {
        "id": hook_id, "name": "legacy DAM sync", "url": "https://dam-sync.acme.example/iconik",
        "event_type": "assets", "realm": "entity", "operation": "update", "status": "DISABLED",
        "headers": {"X-Sync-Secret": "legacy-secret"}, "description": "replaced by opsgate",
        "date_created": _iso(now - timedelta(days=700)), "date_modified": _iso(now - timedelta(days=60)),
    }  # fmt: skip
    return domain


# -- pagination ----------------------------------------------------------------------------------


def _int_query(request: web.Request, name: str, default: int, *, minimum: int, maximum: int) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise _Problem(400, {name: "Not a valid integer."}) from None
    if not minimum <= value <= maximum:
        raise _Problem(400, {name: f"Must be between {minimum} and {maximum}."})
    return value


def _page(
    request: web.Request, items: list[dict[str, Any]], *, max_per_page: int = MAX_PER_PAGE
) -> dict[str, Any]:
    per_page = _int_query(request, "per_page", DEFAULT_PER_PAGE, minimum=1, maximum=max_per_page)
    pages = max(1, math.ceil(len(items) / per_page))
    page = _int_query(request, "page", 1, minimum=1, maximum=10**6)
    if page > pages:
        raise _Problem(404, ["Requested page does not exist"])

    def url(number: int) -> str:
        query = {k: v for k, v in request.query.items() if k not in ("page", "per_page")}
        return f"{request.path}?{urlencode({**query, 'page': number, 'per_page': per_page})}"

    start = (page - 1) * per_page
    body: dict[str, Any] = {
        "objects": items[start : start + per_page],
        "page": page,
        "pages": pages,
        "per_page": per_page,
        "total": len(items),
        "first_url": url(1),
        "last_url": url(pages),
    }
    if page < pages:
        body["next_url"] = url(page + 1)
    if page > 1:
        body["prev_url"] = url(page - 1)
    return body


def _page_after(request: web.Request, items: list[dict[str, Any]]) -> dict[str, Any]:
    """Files and formats page by `last_id` (the id of the previous page's last object)."""
    per_page = _int_query(request, "per_page", DEFAULT_PER_PAGE, minimum=1, maximum=MAX_PER_PAGE)
    last_id = request.query.get("last_id")
    start = 0
    if last_id:
        ids = [item["id"] for item in items]
        if last_id not in ids:
            raise _Problem(400, {"last_id": "Unknown last_id."})
        start = ids.index(last_id) + 1
    chunk = items[start : start + per_page]
    body: dict[str, Any] = {"objects": chunk, "per_page": per_page, "total": len(items)}
    if start + per_page < len(items):
        query = {k: v for k, v in request.query.items() if k != "last_id"}
        body["next_url"] = f"{request.path}?{urlencode({**query, 'last_id': chunk[-1]['id']})}"
    return body


# -- bodies --------------------------------------------------------------------------------------


async def _json_object(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise _Problem(400, ["Request body is not valid JSON"]) from None
    if not isinstance(body, dict):
        raise _Problem(400, ["Request body must be a JSON object"])
    return body


def _check_enum(body: Mapping[str, Any], name: str, allowed: Iterable[str]) -> None:
    if name in body and body[name] not in set(allowed):
        raise _Problem(400, {name: f"Must be one of: {', '.join(sorted(allowed))}."})


def _check_string(
    body: Mapping[str, Any], name: str, *, required: bool = False, nullable: bool = True
) -> None:
    if name not in body:
        if required:
            raise _Problem(400, {name: "Missing data for required field."})
        return
    value = body[name]
    if value is None and nullable and not required:
        return
    if not isinstance(value, str) or (required and not value):
        raise _Problem(400, {name: "Not a valid string."})


_ASSET_WRITABLE = ("title", "external_id", "external_link", "category", "status", "archive_status", "type",
                   "is_blocked", "is_online", "warning")  # fmt: skip


def create_app(
    *,
    app_id: str = DEFAULT_APP_ID,
    auth_token: str = DEFAULT_AUTH_TOKEN,
    job_steps: tuple[str, ...] = DEFAULT_JOB_STEPS,
    rate_per_second: float | None = None,
    burst: int = 50,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    monotonic: Callable[[], float] = time.monotonic,
) -> web.Application:
    """An iconik domain; `job_steps` is the status sequence a job walks, one step per poll.

    `rate_per_second`/`burst` throttle /API/ calls (429 + Retry-After) on the `monotonic` clock.
    """
    if not job_steps or job_steps[-1] not in TERMINAL:
        raise ValueError("job_steps must end in a terminal status")
    app = web.Application()
    # Signs download and upload URLs; not a credential anyone is given.
    url_key = secrets.token_hex(16)

    def seeded() -> IconikDomain:
        fresh = seed_domain(now())
        token_id = _uuid("token", app_id)
        fresh.tokens[token_id] = {
            "id": token_id, "token": auth_token, "app_id": app_id, "user_id": fresh.user_id,
            "date_created": _iso(now() - timedelta(days=180)), "date_modified": _iso(now() - timedelta(days=180)),
        }  # fmt: skip
        return fresh

    app[_DOMAIN] = seeded()

    def domain() -> IconikDomain:
        return app[_DOMAIN]

    def reset() -> None:
        # The app is running (frozen): re-seed the domain object in place.
        fresh = seeded()
        for slot in dataclasses.fields(fresh):
            setattr(app[_DOMAIN], slot.name, getattr(fresh, slot.name))

    def presented_token(request: web.Request) -> dict[str, Any] | None:
        """The live token record the request authenticates with, if any."""
        if request.headers.get("App-ID", "") != app_id:
            return None
        presented = request.headers.get("Auth-Token", "").encode()
        found = None
        for record in domain().tokens.values():
            # Compare against every token so timing does not tell which one nearly matched.
            if secrets.compare_digest(presented, record["token"].encode()):
                found = record
        return found

    @web.middleware
    async def vendor_edge(request: web.Request, handler: _Handler) -> web.StreamResponse:
        """Header auth on /API/; iconik-shaped errors for everything the handlers reject."""
        if request.path.startswith("/API/"):
            if not request.headers.get("App-ID") or not request.headers.get("Auth-Token"):
                return _Problem(401, ["App-ID and Auth-Token headers are required"]).response()
            if presented_token(request) is None:
                return _Problem(401, ["Token is invalid"]).response()
        try:
            return await handler(request)
        except _Problem as problem:
            return problem.response()

    def url_signature(file_id: str, expires: str) -> str:
        return hashlib.sha256(f"{file_id}{expires}{url_key}".encode()).hexdigest()[:32]

    def signed_url(request: web.Request, prefix: str, file_id: str) -> str:
        expires = str(int((now() + timedelta(hours=1)).timestamp()))
        origin = f"{request.scheme}://{request.host}"
        return f"{origin}/{prefix}/{file_id}?expires={expires}&signature={url_signature(file_id, expires)}"

    def signature_ok(request: web.Request, file_id: str) -> bool:
        expected = url_signature(file_id, request.query.get("expires", ""))
        return secrets.compare_digest(request.query.get("signature", "").encode(), expected.encode())

    # -- assets --

    def asset_or_404(asset_id: str) -> dict[str, Any]:
        asset = domain().assets.get(asset_id)
        if asset is None:
            raise _not_found("Asset")
        return asset

    def add_history(asset_id: str, operation: str, description: str, job_id: str | None = None) -> None:
        asset = asset_or_404(asset_id)
        stamp = _iso(now())
        domain().history.setdefault(asset_id, []).append(
            {"id": str(uuid.uuid4()), "asset_id": asset_id, "version_id": asset["versions"][0]["id"],
             "operation_type": operation, "operation_description": description, "job_id": job_id,
             "user_id": domain().user_id, "system_domain_id": _uuid("domain"), "date_created": stamp,
             "date_modified": stamp}
        )  # fmt: skip

    async def get_asset(request: web.Request) -> web.Response:
        return web.json_response(asset_or_404(request.match_info["asset_id"]))

    async def update_asset(request: web.Request) -> web.Response:
        asset = asset_or_404(request.match_info["asset_id"])
        body = await _json_object(request)
        # The spec's AssetSchema requires a title in PUT and PATCH bodies alike.
        _check_string(body, "title", required=True, nullable=False)
        for name in ("external_id", "external_link", "category", "warning"):
            _check_string(body, name)
        _check_enum(body, "status", ("ACTIVE", "DELETED"))
        _check_enum(body, "archive_status", ("NOT_ARCHIVED", "ARCHIVING", "FAILED_TO_ARCHIVE", "ARCHIVED"))
        _check_enum(
            body, "type", ("ASSET", "SEQUENCE", "NLE_PROJECT", "PLACEHOLDER", "CUSTOM", "LINK", "SUBCLIP")
        )
        for name in ("is_blocked", "is_online"):
            if name in body and not isinstance(body[name], bool):
                raise _Problem(400, {name: "Not a valid boolean."})
        # Read-only fields in the body are ignored, as iconik does.
        asset.update({name: body[name] for name in _ASSET_WRITABLE if name in body})
        asset["date_modified"] = _iso(now())
        asset["updated_by_user"] = domain().user_id
        return web.json_response(asset)

    async def list_assets(request: web.Request) -> web.Response:
        # The list filters by any writable field given as a query parameter (external_id...).
        assets = [
            asset
            for asset in domain().assets.values()
            if all(
                str(asset.get(name)) == request.query[name]
                for name in _ASSET_WRITABLE
                if name in request.query
            )
        ]
        return web.json_response(_page(request, sorted(assets, key=lambda a: a["date_created"])))

    async def create_asset(request: web.Request) -> web.Response:
        body = await _json_object(request)
        _check_string(body, "title", required=True, nullable=False)
        for name in ("external_id", "external_link", "category", "warning"):
            _check_string(body, name)
        _check_enum(body, "status", ("ACTIVE", "DELETED"))
        asset_id, version_id, stamp = str(uuid.uuid4()), str(uuid.uuid4()), _iso(now())
        asset: dict[str, Any] = {
            "id": asset_id, "title": body["title"], "type": "ASSET", "status": "ACTIVE",
            "archive_status": "NOT_ARCHIVED", "analyze_status": "N/A", "face_recognition_status": "N/A",
            "is_online": True, "is_blocked": False, "external_id": None, "external_link": None,
            "category": None, "warning": None, "created_by_user": domain().user_id, "date_created": stamp,
            "date_imported": stamp, "date_modified": stamp, "in_collections": [],
            "versions": [{"id": version_id, "version_number": 1, "status": "ACTIVE", "analyze_status": "N/A",
                          "archive_status": "NOT_ARCHIVED", "face_recognition_status": "N/A",
                          "transcribe_status": "N/A", "is_online": True, "created_by_user": domain().user_id,
                          "date_created": stamp}],
        }  # fmt: skip
        asset.update({name: body[name] for name in _ASSET_WRITABLE if name in body})
        domain().assets[asset_id] = asset
        domain().formats[asset_id] = []
        domain().files[asset_id] = []
        return web.json_response(asset, status=201)

    async def asset_history(request: web.Request) -> web.Response:
        asset_or_404(request.match_info["asset_id"])
        entries = sorted(
            domain().history.get(request.match_info["asset_id"], []),
            key=lambda e: e["date_created"],
            reverse=True,
        )
        return web.json_response(_page(request, entries))

    # -- metadata --

    def view_or_404(view_id: str) -> dict[str, Any]:
        view = domain().views.get(view_id)
        if view is None:
            raise _Problem(404, ["Metadata view doesn't exist"])
        return view

    async def list_views(request: web.Request) -> web.Response:
        return web.json_response({"objects": list(domain().views.values())})

    async def get_view(request: web.Request) -> web.Response:
        return web.json_response(view_or_404(request.match_info["view_id"]))

    def metadata_answer(object_type: str, object_id: str, view_id: str) -> dict[str, Any]:
        values = domain().metadata.get((object_id, view_id), {})
        asset = domain().assets[object_id]
        return {
            "object_id": object_id,
            "object_type": object_type,
            "version_id": asset["versions"][0]["id"],
            "metadata_values": {
                name: {"field_values": [{"value": v} for v in vals]} for name, vals in values.items()
            },
            "date_created": asset["date_created"],
            "date_modified": asset["date_modified"],
        }

    def metadata_target(request: web.Request) -> tuple[str, str, dict[str, Any]]:
        object_type = request.match_info["object_type"]
        if object_type != "assets":
            raise _Problem(400, {"object_type": "Only assets are emulated."})
        object_id = request.match_info["object_id"]
        asset_or_404(object_id)
        return object_type, object_id, view_or_404(request.match_info["view_id"])

    async def get_metadata(request: web.Request) -> web.Response:
        object_type, object_id, view = metadata_target(request)
        return web.json_response(metadata_answer(object_type, object_id, view["id"]))

    async def put_metadata(request: web.Request) -> web.Response:
        object_type, object_id, view = metadata_target(request)
        body = await _json_object(request)
        values = body.get("metadata_values")
        if not isinstance(values, dict):
            raise _Problem(400, {"metadata_values": "Missing data for required field."})
        fields = {f["name"]: f for f in view["view_fields"]}
        stored = copy.deepcopy(domain().metadata.get((object_id, view["id"]), {}))
        for name, change in values.items():
            if name not in fields:
                raise _Problem(400, {name: f"Field is not part of view {view['name']!r}."})
            if not isinstance(change, dict) or not isinstance(change.get("field_values", []), list):
                raise _Problem(400, {name: "Expected {field_values: [...], mode}."})
            mode = change.get("mode", "overwrite")
            if mode not in ("overwrite", "append", "delete"):
                raise _Problem(400, {name: "mode must be one of: append, delete, overwrite."})
            new_values = []
            for item in change.get("field_values", []):
                if not isinstance(item, dict) or "value" not in item:
                    raise _Problem(400, {name: "Each field value needs a 'value'."})
                new_values.append(item["value"])
            options = {o["value"] for o in fields[name].get("options", [])}
            if options and mode != "delete" and any(v not in options for v in new_values):
                raise _Problem(400, {name: f"Values must be among: {', '.join(sorted(options))}."})
            current = stored.get(name, [])
            if mode == "overwrite":
                current = new_values
            elif mode == "append":
                current = current + [v for v in new_values if v not in current]
            else:
                current = [v for v in current if v not in new_values] if new_values else []
            if not fields[name].get("multi") and len(current) > 1:
                raise _Problem(400, {name: "Field accepts a single value."})
            stored[name] = current
        domain().metadata[(object_id, view["id"])] = stored
        domain().assets[object_id]["date_modified"] = _iso(now())
        add_history(object_id, "METADATA", f"{view['name']} view updated")
        return web.json_response(metadata_answer(object_type, object_id, view["id"]))

    # -- files, formats, storages --

    async def list_files(request: web.Request) -> web.Response:
        asset_id = request.match_info["asset_id"]
        asset_or_404(asset_id)
        return web.json_response(_page_after(request, domain().files.get(asset_id, [])))

    async def list_formats(request: web.Request) -> web.Response:
        asset_id = request.match_info["asset_id"]
        asset_or_404(asset_id)
        return web.json_response(_page_after(request, domain().formats.get(asset_id, [])))

    async def download_url(request: web.Request) -> web.Response:
        asset_id, file_id = request.match_info["asset_id"], request.match_info["file_id"]
        asset_or_404(asset_id)
        if not any(f["id"] == file_id for f in domain().files.get(asset_id, [])):
            raise _Problem(404, ["File for this asset doesn't exist"])
        return web.json_response({"url": signed_url(request, "_downloads", file_id)})

    async def download(request: web.Request) -> web.Response:
        file_id = request.match_info["file_id"]
        if not signature_ok(request, file_id):
            return web.Response(status=403, text="signature does not match")
        return web.Response(
            body=f"emulated bytes of file {file_id}".encode(), content_type="application/octet-stream"
        )

    # -- putting a file into iconik: format, file set, file, upload, close --

    def format_or_404(asset_id: str, format_id: str) -> dict[str, Any]:
        found = next((f for f in domain().formats.get(asset_id, []) if f["id"] == format_id), None)
        if found is None:
            raise _Problem(404, ["Format for this asset doesn't exist"])
        return found

    def file_set_or_404(asset_id: str, file_set_id: str) -> dict[str, Any]:
        found = next((f for f in domain().file_sets.get(asset_id, []) if f["id"] == file_set_id), None)
        if found is None:
            raise _Problem(404, ["File set for this asset doesn't exist"])
        return found

    def file_or_404(asset_id: str, file_id: str) -> dict[str, Any]:
        asset_or_404(asset_id)
        found = next((f for f in domain().files.get(asset_id, []) if f["id"] == file_id), None)
        if found is None:
            raise _Problem(404, ["File for this asset doesn't exist"])
        return found

    def storage_field(body: Mapping[str, Any], name: str = "storage_id") -> dict[str, Any]:
        _check_string(body, name, required=True, nullable=False)
        storage = domain().storages.get(body[name])
        if storage is None:
            raise _Problem(400, {name: "Storage does not exist."})
        return storage

    async def create_format(request: web.Request) -> web.Response:
        asset = asset_or_404(request.match_info["asset_id"])
        body = await _json_object(request)
        _check_string(body, "name", required=True, nullable=False)
        methods = body.get("storage_methods", [])
        if not isinstance(methods, list) or not all(isinstance(m, str) for m in methods):
            raise _Problem(400, {"storage_methods": "Must be a list of strings."})
        stamp = _iso(now())
        fmt = {
            "id": str(uuid.uuid4()), "name": body["name"], "asset_id": asset["id"],
            "version_id": body.get("version_id") or asset["versions"][0]["id"], "status": "ACTIVE",
            "archive_status": "NOT_ARCHIVED", "is_online": True, "storage_methods": methods,
            "user_id": domain().user_id, "metadata": [], "warnings": [], "components": [],
            "date_created": stamp, "date_modified": stamp,
        }  # fmt: skip
        domain().formats.setdefault(asset["id"], []).append(fmt)
        add_history(asset["id"], "ADD_FORMAT", f"Format {fmt['name']} added")
        return web.json_response(fmt, status=201)

    async def delete_format(request: web.Request) -> web.Response:
        asset_id = request.match_info["asset_id"]
        asset_or_404(asset_id)
        fmt = format_or_404(asset_id, request.match_info["format_id"])
        if request.query.get("immediately", "").lower() == "true":
            domain().formats[asset_id].remove(fmt)
            add_history(asset_id, "DELETE_FORMAT", f"Format {fmt['name']} deleted")
            return web.Response(status=204)
        fmt.update({"status": "DELETED", "date_modified": _iso(now())})
        add_history(asset_id, "DELETE_FORMAT", f"Format {fmt['name']} deleted")
        return web.Response(status=200)

    async def create_file_set(request: web.Request) -> web.Response:
        asset = asset_or_404(request.match_info["asset_id"])
        body = await _json_object(request)
        for name in ("base_dir", "name", "format_id"):
            _check_string(body, name, required=name != "base_dir", nullable=False)
        if not isinstance(body.get("base_dir"), str):
            raise _Problem(400, {"base_dir": "Missing data for required field."})
        if not isinstance(body.get("component_ids"), list):
            raise _Problem(400, {"component_ids": "Missing data for required field."})
        fmt = format_or_404(asset["id"], body["format_id"])
        storage = storage_field(body)
        stamp = _iso(now())
        file_set = {
            "id": str(uuid.uuid4()), "asset_id": asset["id"], "format_id": fmt["id"], "storage_id": storage["id"],
            "base_dir": body["base_dir"], "name": body["name"], "component_ids": body["component_ids"],
            "version_id": fmt["version_id"], "status": "ACTIVE", "is_archive": False, "file_count": 0,
            "date_created": stamp, "date_modified": stamp,
        }  # fmt: skip
        domain().file_sets.setdefault(asset["id"], []).append(file_set)
        return web.json_response(file_set, status=201)

    async def list_file_sets(request: web.Request) -> web.Response:
        asset_id = request.match_info["asset_id"]
        asset_or_404(asset_id)
        return web.json_response(_page_after(request, domain().file_sets.get(asset_id, [])))

    async def delete_file_set(request: web.Request) -> web.Response:
        """The file set, its file entries and (in iconik) the stored bytes go."""
        asset_id = request.match_info["asset_id"]
        asset_or_404(asset_id)
        file_set = file_set_or_404(asset_id, request.match_info["file_set_id"])
        files = domain().files.get(asset_id, [])
        for gone in [f for f in files if f["file_set_id"] == file_set["id"]]:
            files.remove(gone)
            domain().received.pop(gone["id"], None)
        add_history(asset_id, "DELETE_FILESET", f"File set {file_set['name']} deleted")
        if request.query.get("immediately", "").lower() == "true":
            domain().file_sets[asset_id].remove(file_set)
            return web.Response(status=204)
        file_set.update({"status": "DELETED", "file_count": 0, "date_modified": _iso(now())})
        return web.Response(status=200)

    async def create_file(request: web.Request) -> web.Response:
        asset = asset_or_404(request.match_info["asset_id"])
        body = await _json_object(request)
        for name in ("original_name", "type"):
            _check_string(body, name, required=True, nullable=False)
        if not isinstance(body.get("directory_path"), str):  # "" is the storage's root
            raise _Problem(400, {"directory_path": "Missing data for required field."})
        _check_enum(body, "type", ("FILE", "DIRECTORY", "SYMLINK"))
        for name in ("file_set_id", "format_id"):
            _check_string(body, name, required=True, nullable=False)
        file_set = file_set_or_404(asset["id"], body["file_set_id"])
        if file_set["format_id"] != body["format_id"]:
            raise _Problem(400, {"format_id": "Does not match the file set's format."})
        storage = storage_field(body)
        size = body.get("size")
        if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 0):
            raise _Problem(400, {"size": "Not a valid integer."})
        _check_string(body, "checksum")
        stamp = _iso(now())
        file_id = str(uuid.uuid4())
        record = {
            "id": file_id, "asset_id": asset["id"], "version_id": file_set["version_id"],
            "format_id": file_set["format_id"], "file_set_id": file_set["id"], "storage_id": storage["id"],
            "storage_method": storage["method"], "name": body.get("name") or body["original_name"],
            "original_name": body["original_name"], "directory_path": body["directory_path"], "size": size,
            "status": "OPEN", "type": body["type"], "checksum": body.get("checksum"),
            "date_created": stamp, "date_modified": stamp,
            "upload_url": signed_url(request, "_uploads", file_id),
            "upload_filename": body.get("name") or body["original_name"],
        }  # fmt: skip
        domain().files.setdefault(asset["id"], []).append(record)
        file_set["file_count"] = file_set.get("file_count", 0) + 1
        return web.json_response(record, status=201)

    async def get_file(request: web.Request) -> web.Response:
        return web.json_response(file_or_404(request.match_info["asset_id"], request.match_info["file_id"]))

    async def update_file(request: web.Request) -> web.Response:
        asset_id = request.match_info["asset_id"]
        record = file_or_404(asset_id, request.match_info["file_id"])
        body = await _json_object(request)
        _check_enum(body, "status", ("OPEN", "GROWING", "AWAITED", "CLOSED", "FAILED", "ARCHIVED", "MISSING",
                                     "REDISCOVERED", "DELETED"))  # fmt: skip
        closing = body.get("status") == "CLOSED" and record["status"] != "CLOSED"
        if closing:
            received = domain().received.get(record["id"])
            declared_size = body.get("size", record["size"])
            declared_md5 = body.get("checksum", record["checksum"])
            if received is None and declared_size:
                raise _Problem(400, {"status": "No bytes were uploaded for this file."})
            got = received or {"size": 0, "md5": hashlib.md5(b"", usedforsecurity=False).hexdigest()}
            if declared_size is not None and got["size"] != declared_size:
                raise _Problem(400, {"size": f"Declared {declared_size} bytes, received {got['size']}."})
            if declared_md5 and got["md5"] != declared_md5:
                raise _Problem(400, {"checksum": "Does not match the uploaded bytes."})
        for name in ("size", "checksum", "status", "name", "directory_path", "original_name"):
            if name in body:
                record[name] = body[name]
        record["date_modified"] = _iso(now())
        if closing:
            record.pop("upload_url", None)
            file_set_or_404(asset_id, record["file_set_id"])["status"] = "ACTIVE"
            format_or_404(asset_id, record["format_id"])["status"] = "ACTIVE"
            start_job("TRANSCODE", f"Transcode {record['original_name']}", asset_id,
                      {"kind": "transcode", "file_id": record["id"]})  # fmt: skip
        return web.json_response(record)

    async def receive_upload(request: web.Request) -> web.Response:
        """The storage side of an upload URL: read the streamed body, keep only its size and digests."""
        file_id = request.match_info["file_id"]
        if not signature_ok(request, file_id):
            return web.json_response({"error": "signature does not match"}, status=403)
        record = next((f for files in domain().files.values() for f in files if f["id"] == file_id), None)
        if record is None:
            return web.json_response({"error": "no such upload"}, status=404)
        if record["status"] != "OPEN":
            return web.json_response({"error": f"file is {record['status']}"}, status=409)
        sha256, md5, size = hashlib.sha256(), hashlib.md5(usedforsecurity=False), 0
        async for chunk in request.content.iter_chunked(64 * 1024):
            sha256.update(chunk)
            md5.update(chunk)
            size += len(chunk)
        received = {"size": size, "sha256": sha256.hexdigest(), "md5": md5.hexdigest()}
        domain().received[file_id] = received
        return web.json_response(received)

    async def control_file(request: web.Request) -> web.Response:
        file_id = request.match_info["file_id"]
        record = next((f for files in domain().files.values() for f in files if f["id"] == file_id), None)
        if record is None:
            raise _Problem(404, ["File does not exist"])
        return web.json_response({**record, "received": domain().received.get(file_id)})

    async def delete_asset(request: web.Request) -> web.Response:
        asset = asset_or_404(request.match_info["asset_id"])
        asset.update({"status": "DELETED", "date_modified": _iso(now())})
        add_history(asset["id"], "DELETE", "Asset deleted")
        return web.Response(status=204)

    # -- app tokens (auth API) --

    def token_info(record: Mapping[str, Any]) -> dict[str, Any]:
        return {name: value for name, value in record.items() if name != "token"}

    async def create_app_token(request: web.Request) -> web.Response:
        if request.match_info["app_id"] != app_id:
            raise _Problem(404, ["App does not exist"])
        stamp = _iso(now())
        record = {
            "id": str(uuid.uuid4()), "token": secrets.token_urlsafe(32), "app_id": app_id,
            "user_id": domain().user_id, "date_created": stamp, "date_modified": stamp,
        }  # fmt: skip
        domain().tokens[record["id"]] = record
        return web.json_response(record)

    async def list_tokens(request: web.Request) -> web.Response:
        records = sorted(domain().tokens.values(), key=lambda t: (t["date_created"], t["id"]))
        return web.json_response(_page_after(request, [token_info(t) for t in records]))

    async def check_token(request: web.Request) -> web.Response:
        return web.Response(status=200)  # vendor_edge already refused an invalid token

    async def revoke_presented_token(request: web.Request) -> web.Response:
        record = presented_token(request)
        if record is None:  # revoked by a concurrent request since vendor_edge checked it
            raise _Problem(401, ["Token is invalid"])
        del domain().tokens[record["id"]]
        return web.Response(status=200)

    async def get_token(request: web.Request) -> web.Response:
        record = domain().tokens.get(request.match_info["token_id"])
        if record is None:
            raise _Problem(404, ["Token does not exist"])
        return web.json_response(token_info(record))

    async def revoke_token(request: web.Request) -> web.Response:
        if domain().tokens.pop(request.match_info["token_id"], None) is None:
            raise _Problem(404, ["Token does not exist"])
        return web.Response(status=200)

    async def list_storages(request: web.Request) -> web.Response:
        storages = sorted(domain().storages.values(), key=lambda s: s["name"])
        for name in ("purpose", "status", "method", "name"):
            wanted = request.query.get(name)
            if wanted:
                storages = [s for s in storages if s[name] == wanted]
        return web.json_response(_page(request, storages, max_per_page=MAX_STORAGES_PER_PAGE))

    async def bulk_transfer(request: web.Request) -> web.Response:
        storage = domain().storages.get(request.match_info["storage_id"])
        if storage is None:
            raise _Problem(404, ["Storage not found"])
        body = await _json_object(request)
        object_ids = body.get("object_ids")
        if (
            not isinstance(object_ids, list)
            or not object_ids
            or not all(isinstance(i, str) for i in object_ids)
        ):
            raise _Problem(400, {"object_ids": "Missing data for required field."})
        _check_enum(body, "object_type", ("assets", "collections", "saved_searches"))
        if body.get("object_type") != "assets":
            raise _Problem(400, {"object_type": "Only assets are emulated."})
        for object_id in object_ids:
            asset_or_404(object_id)
        format_name = body.get("format_name", "ORIGINAL")
        delete_original = bool(body.get("delete_original", False))
        verb = "Move" if delete_original else "Copy"
        job_id = str(uuid.uuid4())
        stamp = _iso(now())
        domain().jobs[job_id] = {
            "id": job_id, "title": f"{verb} {len(object_ids)} asset(s) to {storage['name']}",
            "type": "TRANSFER",
            "status": job_steps[0], "progress": 0, "object_type": "assets", "object_id": object_ids[0],
            "created_by": domain().user_id, "date_created": stamp, "date_modified": stamp,
            "priority": 5, "has_children": False, "job_context": {"storage_id": storage["id"]},
        }  # fmt: skip
        plan: dict[str, Any] = {
            "step": 0, "object_ids": list(object_ids), "storage_id": storage["id"],
            "format_name": format_name, "delete_original": delete_original, "outcome": None,
        }  # fmt: skip
        if storage["status"] == "FAILING":
            plan["outcome"] = {"status": "FAILED", "error_message": f"Storage {storage['name']} is failing"}
        else:
            plan["outcome"] = take_outcome("TRANSFER")
        domain().job_plans[job_id] = plan
        return web.json_response({"job_id": job_id}, status=202)

    def take_outcome(job_type: str) -> dict[str, Any] | None:
        """The first queued outcome for jobs of this type, consuming one of its uses."""
        # Outcomes queued without a type (older callers, in-process tests) are for transfers.
        queued = next(
            (q for q in domain().queued_outcomes if q.get("job_type", "TRANSFER") == job_type), None
        )
        if queued is None:
            return None
        if queued.get("times") is not None:
            queued["times"] -= 1
            if queued["times"] <= 0:
                domain().queued_outcomes.remove(queued)
        return {"status": queued["status"], "error_message": queued.get("error_message")}

    def start_job(job_type: str, title: str, object_id: str, plan: dict[str, Any]) -> dict[str, Any]:
        job_id = str(uuid.uuid4())
        stamp = _iso(now())
        job = {
            "id": job_id, "title": title, "type": job_type, "status": job_steps[0], "progress": 0,
            "object_type": "assets", "object_id": object_id, "created_by": domain().user_id,
            "date_created": stamp, "date_modified": stamp, "priority": 5, "has_children": False,
        }  # fmt: skip
        domain().jobs[job_id] = job
        domain().job_plans[job_id] = {"step": 0, "outcome": take_outcome(job_type), **plan}
        return job

    # -- jobs --

    def finish_transfer(job: dict[str, Any], plan: dict[str, Any]) -> None:
        target = domain().storages[plan["storage_id"]]
        for asset_id in plan["object_ids"]:
            files = domain().files.setdefault(asset_id, [])
            fmt = next(
                (f for f in domain().formats.get(asset_id, []) if f["name"] == plan["format_name"]), None
            )
            if fmt is None:
                continue
            sources = [f for f in files if f["format_id"] == fmt["id"] and f["storage_id"] != target["id"]]
            for source in sources[:1]:
                copied = {**source, "id": str(uuid.uuid4()), "storage_id": target["id"],
                          "storage_method": target["method"], "file_set_id": str(uuid.uuid4()),
                          "date_created": _iso(now()), "date_modified": _iso(now())}  # fmt: skip
                files.append(copied)
                if plan["delete_original"]:
                    files.remove(source)
            verb = "Moved" if plan["delete_original"] else "Copied"
            add_history(asset_id, "TRANSFER", f"{verb} {plan['format_name']} to {target['name']}", job["id"])

    async def get_job(request: web.Request) -> web.Response:
        job = domain().jobs.get(request.match_info["job_id"])
        if job is None:
            raise _Problem(404, ["Job does not exist"])
        answer = dict(job)
        plan = domain().job_plans.get(job["id"])
        if plan is not None and job["status"] not in TERMINAL:
            plan["step"] += 1
            outcome = plan["outcome"]
            next_status = job_steps[min(plan["step"], len(job_steps) - 1)]
            if next_status in TERMINAL and outcome is not None:
                next_status = outcome["status"]
                if outcome.get("error_message"):
                    job["error_message"] = outcome["error_message"]
            job["status"] = next_status
            job["progress"] = 100 if next_status in TERMINAL else 50
            job["date_modified"] = _iso(now())
            if next_status == "STARTED":
                job["started_at"] = job["date_modified"]
            if next_status in TERMINAL:
                job["completed_at"] = job["date_modified"]
                if next_status in ("FINISHED", "FINISHED_WITH_WARNING"):
                    if plan.get("kind", "transfer") == "transfer":
                        finish_transfer(job, plan)
                    else:
                        add_history(job["object_id"], "TRANSCODE", "Proxies generated", job["id"])
        return web.json_response(answer)

    async def list_jobs(request: web.Request) -> web.Response:
        jobs = sorted(domain().jobs.values(), key=lambda j: (j["date_created"], j["id"]), reverse=True)
        for name in ("object_id", "object_type", "type", "status"):
            wanted = request.query.get(name)
            if wanted:
                jobs = [job for job in jobs if job.get(name) == wanted]
        return web.json_response(_page(request, jobs))

    async def fail_job(request: web.Request) -> web.Response:
        """Fail a job now, as a storage outage or a transcoder crash would."""
        job = domain().jobs.get(request.match_info["job_id"])
        if job is None:
            raise _Problem(404, ["Job does not exist"])
        if job["status"] in TERMINAL:
            raise _Problem(409, [f"Job is already {job['status']}"])
        body = await _json_object(request) if request.body_exists else {}
        stamp = _iso(now())
        job.update({"status": "FAILED", "progress": 100, "date_modified": stamp, "completed_at": stamp,
                    "error_message": str(body.get("error_message") or "Failed on request")})  # fmt: skip
        return web.json_response(job)

    async def queue_outcome(request: web.Request) -> web.Response:
        body = await _json_object(request)
        if body.get("status") not in TERMINAL:
            raise _Problem(400, {"status": f"Must be one of: {', '.join(sorted(TERMINAL))}."})
        times = body.get("times", 1)
        if times is not None and (not isinstance(times, int) or times < 1):
            raise _Problem(400, {"times": "Must be a positive integer or null."})
        job_type = body.get("job_type", "TRANSFER")
        if job_type not in ("TRANSFER", "TRANSCODE"):
            raise _Problem(400, {"job_type": "Must be TRANSFER or TRANSCODE."})
        domain().queued_outcomes.append(
            {"status": body["status"], "error_message": body.get("error_message"), "times": times,
             "job_type": job_type}
        )  # fmt: skip
        return web.json_response({"queued": len(domain().queued_outcomes)}, status=201)

    async def record_history(request: web.Request) -> web.Response:
        """What people do in iconik's UI (download, export, share access) as history entries."""
        body = await _json_object(request)
        asset = asset_or_404(str(body.get("asset_id", "")))
        if body.get("operation_type") not in HISTORY_OPERATIONS:
            raise _Problem(400, {"operation_type": "Not a valid choice."})
        stamp = str(body.get("date_created") or _iso(now()))
        entry = {"id": str(uuid.uuid4()), "asset_id": asset["id"], "version_id": asset["versions"][0]["id"],
                 "operation_description": None, "job_id": None, "user_id": domain().user_id,
                 "system_domain_id": _uuid("domain"), "date_created": stamp, "date_modified": stamp}  # fmt: skip
        entry.update({name: value for name, value in body.items() if name not in ("id", "date_created")})
        domain().history.setdefault(asset["id"], []).append(entry)
        return web.json_response(entry, status=201)

    # -- approvals --

    def approvals_target(request: web.Request) -> tuple[str, str]:
        object_type, object_id = request.match_info["object_type"], request.match_info["object_id"]
        if object_type == "assets":
            asset_or_404(object_id)
        elif object_type == "collections":
            if object_id not in domain().collections:
                raise _not_found("Collection")
        else:
            raise _Problem(400, {"object_type": "Must be assets or collections."})
        return object_type, object_id

    def approval_answer(object_type: str, object_id: str, entry: Mapping[str, Any]) -> dict[str, Any]:
        answer = {"object_type": object_type, "object_id": object_id, **entry}
        if object_type == "assets":
            answer["version_id"] = domain().assets[object_id]["versions"][0]["id"]
        return answer

    async def get_approvals(request: web.Request) -> web.Response:
        object_type, object_id = approvals_target(request)
        entries = domain().approvals.get((object_type, object_id), {})
        items = [approval_answer(object_type, object_id, e) for e in entries.values()]
        return web.json_response(_page(request, items))

    async def put_approval(request: web.Request) -> web.Response:
        object_type, object_id = approvals_target(request)
        body = await _json_object(request)
        if "status" not in body:
            raise _Problem(400, {"status": "Missing data for required field."})
        _check_enum(body, "status", ("N/A", "REQUESTED", "APPROVED", "NOT_APPROVED", "MIXED"))
        entry = {"user": domain().user_id, "status": body["status"], "change_date": _iso(now())}
        domain().approvals.setdefault((object_type, object_id), {})[domain().user_id] = entry
        if object_type == "assets" and body["status"] in ("APPROVED", "NOT_APPROVED"):
            add_history(
                object_id, "APPROVE" if body["status"] == "APPROVED" else "REJECT", "Approval set by opsgate"
            )
        return web.json_response(approval_answer(object_type, object_id, entry))

    # -- collections --

    def collection_or_404(collection_id: str) -> dict[str, Any]:
        collection = domain().collections.get(collection_id)
        if collection is None:
            raise _not_found("Collection")
        return collection

    async def get_collection(request: web.Request) -> web.Response:
        return web.json_response(collection_or_404(request.match_info["collection_id"]))

    async def list_collections(request: web.Request) -> web.Response:
        collections = sorted(domain().collections.values(), key=lambda c: (c["date_created"], c["id"]))
        if "is_root" in request.query:
            wanted = request.query["is_root"].lower() == "true"
            collections = [c for c in collections if bool(c.get("is_root")) == wanted]
        if request.query.get("status"):
            collections = [c for c in collections if c.get("status") == request.query["status"]]
        return web.json_response(_page(request, collections))

    async def create_collection(request: web.Request) -> web.Response:
        body = await _json_object(request)
        _check_string(body, "title", required=True, nullable=False)
        for name in ("parent_id", "external_id", "storage_id", "category"):
            _check_string(body, name)
        parent = body.get("parent_id")
        if parent is not None:
            collection_or_404(parent)
        if body.get("storage_id") is not None and body["storage_id"] not in domain().storages:
            raise _Problem(400, {"storage_id": "Storage does not exist."})
        stamp = _iso(now())
        collection_id = str(uuid.uuid4())
        collection = {
            "id": collection_id, "title": body["title"], "status": "ACTIVE", "object_type": "collections",
            "parent_id": parent, "is_root": parent is None, "in_collections": [parent] if parent else [],
            "parents": [parent] if parent else [], "external_id": body.get("external_id"),
            "storage_id": body.get("storage_id"), "category": body.get("category"),
            "created_by_user": domain().user_id, "date_created": stamp, "date_modified": stamp,
            "keyframe_asset_ids": [], "keyframes": [],
        }  # fmt: skip
        domain().collections[collection_id] = collection
        domain().collection_contents[collection_id] = []
        if parent is not None:
            domain().collection_contents.setdefault(parent, []).append(("collections", collection_id))
        return web.json_response(collection, status=201)

    async def collection_contents(request: web.Request) -> web.Response:
        collection_id = request.match_info["collection_id"]
        collection_or_404(collection_id)
        items = []
        for object_type, object_id in domain().collection_contents.get(collection_id, []):
            source = (domain().assets if object_type == "assets" else domain().collections).get(object_id)
            if source is not None:
                item = {k: v for k, v in source.items() if k not in ("versions", "parents", "keyframes")}
                items.append({**item, "object_type": object_type})
        return web.json_response(_page(request, items))

    async def add_collection_content(request: web.Request) -> web.Response:
        collection_id = request.match_info["collection_id"]
        collection_or_404(collection_id)
        body = await _json_object(request)
        _check_string(body, "object_id", required=True, nullable=False)
        _check_string(body, "object_type", required=True, nullable=False)
        object_type, object_id = body["object_type"], body["object_id"]
        if object_type == "assets":
            target = asset_or_404(object_id)
        elif object_type == "collections":
            target = collection_or_404(object_id)
        else:
            raise _Problem(400, {"object_type": "Must be assets or collections."})
        contents = domain().collection_contents.setdefault(collection_id, [])
        if (object_type, object_id) not in contents:
            contents.append((object_type, object_id))
            target.setdefault("in_collections", []).append(collection_id)
        return web.Response(status=201)

    # -- webhooks --

    async def list_webhooks(request: web.Request) -> web.Response:
        return web.json_response({"objects": list(domain().webhooks.values())})

    async def create_webhook(request: web.Request) -> web.Response:
        body = await _json_object(request)
        _check_string(body, "url", required=True, nullable=False)
        if not body["url"].startswith(("http://", "https://")):
            raise _Problem(400, {"url": "Not a valid URL."})
        _check_string(body, "event_type", required=True, nullable=False)
        if "status" not in body:
            raise _Problem(400, {"status": "Missing data for required field."})
        _check_enum(body, "status", ("ENABLED", "DISABLED", "FAILING", "DELETED"))
        for name in ("realm", "operation", "name", "description"):
            _check_string(body, name)
        headers = body.get("headers", {})
        if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
            raise _Problem(400, {"headers": "Must be an object of strings."})
        hook_id = str(uuid.uuid4())
        stamp = _iso(now())
        hook = {
            "id": hook_id, "url": body["url"], "event_type": body["event_type"], "status": body["status"],
            "realm": body.get("realm"), "operation": body.get("operation"), "headers": headers,
            "name": body.get("name") or body["url"], "description": body.get("description") or "",
            "date_created": stamp, "date_modified": stamp,
        }  # fmt: skip
        domain().webhooks[hook_id] = hook
        return web.json_response(hook, status=201)

    async def get_webhook(request: web.Request) -> web.Response:
        hook = domain().webhooks.get(request.match_info["webhook_id"])
        if hook is None:
            raise _not_found("Webhook")
        return web.json_response(hook)

    async def delete_webhook(request: web.Request) -> web.Response:
        if domain().webhooks.pop(request.match_info["webhook_id"], None) is None:
            raise _not_found("Webhook")
        return web.Response(status=204)

    add_fault_injection(
        app, reset=reset, error_body=lambda status: {"errors": [f"injected fault ({status})"]}
    )
    if rate_per_second is not None:
        add_rate_limit(
            app,
            per_second=rate_per_second,
            burst=burst,
            monotonic=monotonic,
            response=lambda retry_after: web.json_response(
                {"errors": ["Too many requests"]},
                status=429,
                headers={"Retry-After": str(max(1, math.ceil(retry_after)))},
            ),
        )
    app.middlewares.append(vendor_edge)

    r = app.router
    r.add_post("/_control/iconik/job_outcomes", queue_outcome)
    r.add_post("/_control/iconik/history", record_history)
    r.add_post("/_control/iconik/jobs/{job_id}/fail", fail_job)
    r.add_get("/_control/iconik/files/{file_id}", control_file)
    r.add_get("/_downloads/{file_id}", download)
    r.add_put("/_uploads/{file_id}", receive_upload)
    r.add_get("/API/assets/v1/assets/", list_assets)
    r.add_post("/API/assets/v1/assets/", create_asset)
    r.add_get("/API/assets/v1/assets/{asset_id}/", get_asset)
    r.add_put("/API/assets/v1/assets/{asset_id}/", update_asset)
    r.add_patch("/API/assets/v1/assets/{asset_id}/", update_asset)
    r.add_delete("/API/assets/v1/assets/{asset_id}/", delete_asset)
    r.add_get("/API/assets/v1/assets/{asset_id}/history/", asset_history)
    r.add_get("/API/assets/v1/collections/", list_collections)
    r.add_post("/API/assets/v1/collections/", create_collection)
    r.add_get("/API/assets/v1/collections/{collection_id}/", get_collection)
    r.add_get("/API/assets/v1/collections/{collection_id}/contents/", collection_contents)
    r.add_post("/API/assets/v1/collections/{collection_id}/contents/", add_collection_content)
    r.add_get("/API/assets/v1/{object_type}/{object_id}/approvals/", get_approvals)
    r.add_put("/API/assets/v1/{object_type}/{object_id}/approvals/", put_approval)
    r.add_get("/API/metadata/v1/views/", list_views)
    r.add_get("/API/metadata/v1/views/{view_id}/", get_view)
    r.add_get("/API/metadata/v1/{object_type}/{object_id}/views/{view_id}/", get_metadata)
    r.add_put("/API/metadata/v1/{object_type}/{object_id}/views/{view_id}/", put_metadata)
    r.add_get("/API/files/v1/assets/{asset_id}/files/", list_files)
    r.add_post("/API/files/v1/assets/{asset_id}/files/", create_file)
    r.add_get("/API/files/v1/assets/{asset_id}/files/{file_id}/", get_file)
    r.add_patch("/API/files/v1/assets/{asset_id}/files/{file_id}/", update_file)
    r.add_get("/API/files/v1/assets/{asset_id}/formats/", list_formats)
    r.add_post("/API/files/v1/assets/{asset_id}/formats/", create_format)
    r.add_delete("/API/files/v1/assets/{asset_id}/formats/{format_id}/", delete_format)
    r.add_get("/API/files/v1/assets/{asset_id}/file_sets/", list_file_sets)
    r.add_post("/API/files/v1/assets/{asset_id}/file_sets/", create_file_set)
    r.add_delete("/API/files/v1/assets/{asset_id}/file_sets/{file_set_id}/", delete_file_set)
    r.add_get("/API/files/v1/assets/{asset_id}/files/{file_id}/download_url/", download_url)
    r.add_get("/API/files/v1/storages/", list_storages)
    r.add_post("/API/files/v1/storages/{storage_id}/bulk/", bulk_transfer)
    r.add_get("/API/jobs/v1/jobs/", list_jobs)
    r.add_get("/API/jobs/v1/jobs/{job_id}/", get_job)
    r.add_post("/API/auth/v1/apps/{app_id}/token/", create_app_token)
    r.add_get("/API/auth/v1/auth/tokens/", list_tokens)
    r.add_get("/API/auth/v1/auth/token/", check_token)
    r.add_delete("/API/auth/v1/auth/token/", revoke_presented_token)
    r.add_get("/API/auth/v1/auth/token/{token_id}/", get_token)
    r.add_delete("/API/auth/v1/auth/token/{token_id}/", revoke_token)
    r.add_get("/API/notifications/v1/webhooks/", list_webhooks)
    r.add_post("/API/notifications/v1/webhooks/", create_webhook)
    r.add_get("/API/notifications/v1/webhooks/{webhook_id}/", get_webhook)
    r.add_delete("/API/notifications/v1/webhooks/{webhook_id}/", delete_webhook)
    return app
