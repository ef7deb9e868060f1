"""Asset requests from other systems: Canto upload albums, fulfilment on approval, signed callbacks.

    POST /requests/assets         Authorization: Bearer <asset_requests.api_token>, JSON body:
        {"system": "jira", "title": "Hero shot, spring", "external_id": "MKT-812",
         "description": "...", "requested_by": "dana@acme.example", "due_date": "2026-12-01",
         "callback_url": "https://hooks.acme.example/opsgate/", "tags": ["spring"],
         "fields": {"Campaign": "Spring Launch 2025"}}
    GET  /requests/assets/{id}    the request as JSON (same token)

Answers: 401 for a missing or wrong token; 400 `{"error", "field", "message"}` naming the field
at fault (unknown fields are refused too, so a misspelt `callbackUrl` is not silently ignored);
413 for a body over 64 KiB; 202 `{"id": "AR-7", "status": "requested", "status_url"}` for a new
request; 200 with the same answer when `external_id` was already used by that `system` with the
same body, 409 when it was used for a different one.

A request moves `requested` -> `open` (a persisted job created its album in Canto, under
`album_parent`, named and described with the request id) -> `fulfilled` (an asset uploaded to
the album is Approved) or `failed` (Canto refused to set the request up). Canto webhook
deliveries reach `AssetRequests.on_canto_delivery`, which matches them by album, by an asset
already seen for a request, or by the request custom field, and queues a check: the asset is
read back from Canto (a webhook body proves nothing about approval), stamped with the custom
field `request_field` = the request id, the configured tags and the caller's `fields`, and when
it is Approved the request is fulfilled, a Slack message is queued through the outbox and the
callback job is queued, all in one transaction.

Callbacks: `POST <callback_url>` with a JSON body and these headers:

    X-Opsgate-Event:      asset_request.fulfilled | asset_request.failed
    X-Opsgate-Delivery:   AR-7.fulfilled   (the same on every retry: deduplicate on it)
    X-Opsgate-Timestamp:  1764000000       (Unix seconds when this attempt was signed)
    X-Opsgate-Signature:  sha256=<hex>     HMAC-SHA256(callback_signing_secret, f"{timestamp}." + raw body)

A receiver recomputes the HMAC over the raw bytes it received, compares in constant time, and
refuses timestamps more than five minutes from its clock (`verify_callback_signature` is the
reference implementation). Any answer other than 2xx is retried by the job runner with
exponential backoff; after `callback_max_attempts` the callback is marked failed and
`on_give_up` is called (the bot raises an alert).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Annotated, Any, Protocol
from urllib.parse import urlsplit

import httpx
from aiohttp import web
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
)
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.blocks.reply import Reply
from bot.blocks.text import escaped, format_utc
from bot.config.asset_requests import AssetRequestSettings
from bot.config.limits import MAX_JOB_ATTEMPTS
from bot.db.asset_request_models import AssetRequestAssetRow, AssetRequestRow
from bot.db.audit_log import append_event
from bot.db.upsert import insert_into
from bot.domain.audit import AuditRecord, Fingerprinter, canonical_json
from bot.jobs.outbox import Outbox
from bot.jobs.queue import JobContext, JobHandler, JobQueue, PermanentJobError
from bot.web.webhooks import WebhookDelivery
from connectors.canto import CantoApproval, CantoAsset, CantoAssetRef, CantoPropertyUpdate, CantoTreeNode
from connectors.errors import BadRequest, Conflict, ConnectorError, Forbidden, NotFound

if TYPE_CHECKING:
    from bot.config.opsgate import OpsgateConfig
    from bot.wiring.root import Wiring
    from bot.wiring.service import OpsgateService
    from commands.parsing import OpsArgs

__all__ = [
    "CALLBACK_JOB",
    "CHECK_JOB",
    "DELIVERY_HEADER",
    "EVENT_HEADER",
    "SETUP_JOB",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "AssetRequestBody",
    "AssetRequestSettings",
    "AssetRequests",
    "CallbackGaveUp",
    "UploadLibrary",
    "add_asset_request_routes",
    "callback_allowed",
    "parse_request_ref",
    "request_view",
    "sign_callback",
    "verify_callback_signature",
    "wire_asset_requests",
]

log = logging.getLogger("opsgate.asset_requests")

SETUP_JOB = "asset_request.canto_setup"
CHECK_JOB = "asset_request.check_upload"
CALLBACK_JOB = "asset_request.callback"
SIGNATURE_HEADER = "X-Opsgate-Signature"
TIMESTAMP_HEADER = "X-Opsgate-Timestamp"
DELIVERY_HEADER = "X-Opsgate-Delivery"
EVENT_HEADER = "X-Opsgate-Event"
SIGNATURE_TOLERANCE_SECONDS = 300.0
MAX_BODY_BYTES = 64 * 1024
MAX_ALBUM_NAME = 100
OPS_LISTING = 20
_REF = re.compile(r"AR-0*([0-9]{1,12})", re.IGNORECASE)


# --------------------------------------------------------------------------- configuration


Tag = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64, pattern=r"^[^,]+$")
]
FieldName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
FieldValue = Annotated[str, StringConstraints(max_length=1000)]


class AssetRequestBody(BaseModel):
    """The JSON a caller sends; unknown keys are refused so a typo is a 400, not a lost callback."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    system: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$", description="the calling tool")
    title: str = Field(min_length=1, max_length=200)
    external_id: str | None = Field(None, min_length=1, max_length=128)
    description: str = Field("", max_length=4000)
    requested_by: str | None = Field(None, min_length=1, max_length=128)
    due_date: date | None = None
    callback_url: str | None = Field(None, min_length=1, max_length=2000)
    tags: list[Tag] = Field(default_factory=list, max_length=20)
    fields: dict[FieldName, FieldValue] = Field(default_factory=dict, max_length=20)

    def fingerprint(self) -> str:
        """The same request, however it was spaced or ordered, hashes the same."""
        return hashlib.sha256(canonical_json(self.model_dump(mode="json")).encode()).hexdigest()


def callback_allowed(url: str, prefixes: Sequence[str]) -> bool:
    """True when `url` is under one of `prefixes`: same scheme, host and port, path below it."""
    target = urlsplit(url)
    if target.scheme not in ("http", "https") or not target.hostname or target.username or target.password:
        return False
    segments = target.path.split("/")
    if any(s in (".", "..") or s.lower() in ("%2e", "%2e%2e") for s in segments) or "\\" in url:
        return False
    try:
        target_port = target.port
    except ValueError:
        return False
    for prefix in prefixes:
        allowed = urlsplit(prefix)
        same_origin = (target.scheme, target.hostname, target_port) == (
            allowed.scheme,
            allowed.hostname,
            allowed.port,
        )
        if same_origin and target.path.startswith(allowed.path):
            return True
    return False


def parse_request_ref(text: str) -> int | None:
    """ "ar-007" -> 7; None when it is not an asset request id."""
    match = _REF.fullmatch(text.strip())
    return int(match.group(1)) if match else None


# --------------------------------------------------------------------------- signatures


def sign_callback(secret: str, body: bytes, timestamp: int) -> str:
    """The X-Opsgate-Signature value: "sha256=" + hex HMAC-SHA256 over f"{timestamp}." + body."""
    signed = f"{timestamp}.".encode() + body
    return "sha256=" + hmac.new(secret.encode("utf-8"), signed, hashlib.sha256).hexdigest()


def verify_callback_signature(
    secret: str,
    *,
    body: bytes,
    timestamp: str,
    signature: str,
    now: float | None = None,
    tolerance: float = SIGNATURE_TOLERANCE_SECONDS,
) -> bool:
    """What a receiver runs: the signature matches the raw body and the timestamp is recent."""
    try:
        stamp = int(timestamp)
    except ValueError:
        return False
    current = time.time() if now is None else now
    if abs(current - stamp) > tolerance:
        return False  # an old, replayed delivery
    return hmac.compare_digest(sign_callback(secret, body, stamp), signature)


# --------------------------------------------------------------------------- views


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def request_view(row: AssetRequestRow, *, with_callback: bool = True) -> dict[str, Any]:
    """The request as GET /requests/assets/{id} and callbacks show it (no secret, no URL)."""
    scheme, _, asset_id = (row.asset_ref or "").partition(":")
    callback = {
        "status": row.callback_status,
        "attempts": row.callback_attempts,
        "last_error": row.callback_last_error,
        "delivered_at": _iso(row.callback_delivered_at),
    }
    return {
        "id": row.ref,
        "system": row.system,
        "external_id": row.external_id,
        "title": row.title,
        "status": row.status,
        "requested_by": row.requested_by,
        "due_date": row.due_date.isoformat() if row.due_date else None,
        "canto": {
            "environment": row.canto_environment,
            "album_id": row.canto_album_id,
            "album_path": row.canto_album_path,
        },
        "asset": {"scheme": scheme, "id": asset_id, "name": row.asset_name} if row.asset_ref else None,
        "failure_reason": row.failure_reason,
        "callback": callback if row.callback_url and with_callback else None,
        "created_at": _iso(row.created_at),
        "fulfilled_at": _iso(row.fulfilled_at),
    }


def _problem(status: int, error: str, *, field: str | None = None, message: str = "") -> web.Response:
    body: dict[str, Any] = {"error": error}
    if field:
        body["field"] = field
    if message:
        body["message"] = message
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return web.json_response(body, status=status, headers=headers)


async def _audit(
    session: AsyncSession,
    fingerprinter: Fingerprinter,
    row: AssetRequestRow,
    *,
    at: datetime,
    actor: str,
    action: str,
    before: str | None,
    after: str | None,
    reason: str | None = None,
    evidence: Mapping[str, Any] | None = None,
) -> None:
    await append_event(
        session,
        AuditRecord(
            occurred_at=at,
            actor=actor[:64],
            action=action,
            subject=f"asset-request:{row.ref}",
            before_status=before,
            after_status=after,
            reason=reason,
            evidence={"system": row.system, "external_id": row.external_id, **(evidence or {})},
        ),
        fingerprinter,
    )


# --------------------------------------------------------------------------- HTTP


def add_asset_request_routes(
    app: web.Application,
    *,
    settings: AssetRequestSettings,
    sessions: async_sessionmaker[AsyncSession],
    clock: Callable[[], datetime],
    jobs: JobQueue,
    fingerprinter: Fingerprinter,
    kick: Callable[[], None] = lambda: None,
) -> None:
    """Mount POST /requests/assets and GET /requests/assets/{id} on `app`."""

    def authorised(request: web.Request) -> web.Response | None:
        expected = settings.api_token.get_secret_value()
        if not expected:
            return _problem(503, "not_configured")
        scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            presented.strip().encode("utf-8"), expected.encode("utf-8")
        ):
            log.warning("asset request refused: bad token", extra={"remote": request.remote})
            return _problem(401, "unauthorized")
        return None

    def accepted(row: AssetRequestRow, status: int) -> web.Response:
        url = f"/requests/assets/{row.ref}"
        return web.json_response(
            {"id": row.ref, "status": row.status, "status_url": url}, status=status, headers={"Location": url}
        )

    async def create(request: web.Request) -> web.Response:
        refused = authorised(request)
        if refused is not None:
            return refused
        if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
            return _problem(413, "body_too_large", message=f"at most {MAX_BODY_BYTES} bytes")
        raw = bytearray()
        async for chunk in request.content.iter_chunked(16 * 1024):
            raw += chunk
            if len(raw) > MAX_BODY_BYTES:  # chunked bodies carry no Content-Length
                return _problem(413, "body_too_large", message=f"at most {MAX_BODY_BYTES} bytes")
        try:
            data = json.loads(bytes(raw))
        except (UnicodeDecodeError, json.JSONDecodeError):
            return _problem(400, "malformed_body", field="body", message="the body is not JSON")
        if not isinstance(data, dict):
            return _problem(400, "malformed_body", field="body", message="the body must be a JSON object")
        try:
            body = AssetRequestBody.model_validate(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            field = ".".join(str(part) for part in first["loc"]) or "body"
            return _problem(400, "invalid_field", field=field, message=str(first["msg"]))
        if body.callback_url is not None and not callback_allowed(
            body.callback_url, settings.allowed_callback_prefixes
        ):
            return _problem(
                400, "invalid_field", field="callback_url", message="not under an allowed callback prefix"
            )
        if settings.request_field in body.fields:
            return _problem(
                400,
                "invalid_field",
                field=f"fields.{settings.request_field}",
                message="this field carries the request id and is set by opsgate",
            )
        row, created = await record(body)
        if created:
            kick()
            return accepted(row, 202)
        if row.body_hash != body.fingerprint():
            return _problem(
                409,
                "conflict",
                field="external_id",
                message=f"already used for {row.ref} with a different body",
            )
        return accepted(row, 200)

    async def existing(session: AsyncSession, body: AssetRequestBody) -> AssetRequestRow | None:
        if body.external_id is None:
            return None
        return await session.scalar(
            select(AssetRequestRow).where(
                AssetRequestRow.system == body.system, AssetRequestRow.external_id == body.external_id
            )
        )

    async def record(body: AssetRequestBody) -> tuple[AssetRequestRow, bool]:
        now = clock()
        async with sessions() as session, session.begin():
            # Looked up first so that a retry does not spend a number (PostgreSQL's sequence
            # advances even when ON CONFLICT inserts nothing): ids stay AR-1, AR-2...
            found = await existing(session, body)
            if found is not None:
                return found, False
            values = {
                "system": body.system,
                "external_id": body.external_id,
                "body_hash": body.fingerprint(),
                "title": body.title,
                "description": body.description,
                "requested_by": body.requested_by,
                "callback_url": body.callback_url,
                "due_date": body.due_date,
                "tags": list(body.tags),
                "fields": dict(body.fields),
                "status": "requested",
                "canto_environment": settings.canto_environment,
                "callback_attempts": 0,
                "created_at": now,
                "updated_at": now,
            }
            insert = insert_into(session, AssetRequestRow).values(**values)
            # A retry racing this one inserts nothing and reads the winner.
            new_id = await session.scalar(
                insert.on_conflict_do_nothing(index_elements=["system", "external_id"]).returning(
                    AssetRequestRow.id
                )
            )
            if new_id is None:
                winner = await existing(session, body)
                assert winner is not None
                return winner, False
            row = await session.get_one(AssetRequestRow, new_id)
            await jobs.enqueue(
                session, kind=SETUP_JOB, payload={"request": new_id}, dedup_key=f"{SETUP_JOB}:{new_id}"
            )
            await _audit(
                session,
                fingerprinter,
                row,
                at=now,
                actor=f"api:{body.system}",
                action="asset_request.created",
                before=None,
                after="requested",
                reason=body.title,
                evidence={"requested_by": body.requested_by, "callback": bool(body.callback_url)},
            )
            return row, True

    async def show(request: web.Request) -> web.Response:
        refused = authorised(request)
        if refused is not None:
            return refused
        request_id = parse_request_ref(request.match_info["ref"])
        if request_id is None:
            return _problem(404, "not_found", message="asset request ids look like AR-12")
        async with sessions() as session:
            row = await session.get(AssetRequestRow, request_id)
        if row is None:
            return _problem(404, "not_found")
        return web.json_response(request_view(row))

    app.router.add_post("/requests/assets", create)
    app.router.add_get("/requests/assets/{ref}", show)


# --------------------------------------------------------------------------- Canto work


class UploadLibrary(Protocol):
    """What asset requests need of Canto (connectors.canto.CantoConnector fits)."""

    async def get_tree(self, folder_id: str | None = None, *, layer: int = -1) -> list[CantoTreeNode]: ...
    async def create_album(
        self, name: str, *, parent_folder_id: str, description: str = ""
    ) -> CantoTreeNode: ...
    async def get_asset(self, scheme: str, asset_id: str) -> CantoAsset: ...
    def approval_of(self, asset: CantoAsset) -> CantoApproval: ...
    async def update_properties(
        self, refs: Sequence[CantoAssetRef], updates: Sequence[CantoPropertyUpdate]
    ) -> None: ...


@dataclass(frozen=True)
class CallbackGaveUp:
    """A callback that was not delivered after the last attempt (no URL: it may hold a token)."""

    request_ref: str
    system: str
    host: str
    attempts: int
    error: str


GiveUpHook = Callable[[CallbackGaveUp], Awaitable[None]]


class _FolderMissing(Exception):
    """The configured album parent is not a folder in Canto."""


class CallbackNotDelivered(Exception):
    """The receiver did not answer 2xx; the job runner retries with backoff."""


def _album_name(row: AssetRequestRow) -> str:
    # "/" separates Canto path segments; a title must not create folders.
    title = " ".join(row.title.replace("/", "-").split())
    return f"{row.ref} {title}"[:MAX_ALBUM_NAME].rstrip()


def _album_description(row: AssetRequestRow, field: str) -> str:
    origin = row.system + (f" {row.external_id}" if row.external_id else "")
    due = f" Due {row.due_date.isoformat()}." if row.due_date else ""
    text = f"Asset request {row.ref} from {origin}: {row.title}.{due} {row.description}".strip()
    return f"{text} Uploads here are tagged {field}={row.ref}."[:1000]


def _host(url: str) -> str:
    return urlsplit(url).hostname or "?"


class AssetRequests:
    """The jobs and webhook handler behind asset requests; the HTTP intake is add_asset_request_routes."""

    def __init__(
        self,
        settings: AssetRequestSettings,
        *,
        sessions: async_sessionmaker[AsyncSession],
        clock: Callable[[], datetime],
        jobs: JobQueue,
        outbox: Outbox,
        canto: Callable[[], UploadLibrary],
        http: httpx.AsyncClient,
        fingerprinter: Fingerprinter,
        slack_channel: str,
        on_give_up: GiveUpHook | None = None,
        kick: Callable[[], None] = lambda: None,
    ) -> None:
        self.settings = settings
        self._sessions = sessions
        self._clock = clock
        self._jobs = jobs
        self._outbox = outbox
        self._canto = canto
        self._http = http
        self._fingerprinter = fingerprinter
        self._channel = slack_channel
        self._on_give_up = on_give_up
        self._kick = kick
        self._parent_folder_id: str | None = None

    def job_handlers(self) -> dict[str, JobHandler]:
        """Job kind -> handler, for JobRunner.register."""
        return {
            SETUP_JOB: self.set_up_in_canto,
            CHECK_JOB: self.check_upload,
            CALLBACK_JOB: self.deliver_callback,
        }

    # ----------------------------------------------------------------- set up

    async def set_up_in_canto(self, job: JobContext) -> None:
        """Create the request's album in Canto (or find the one a lost answer left), then open it."""
        row = await self._load(int(job.payload["request"]))
        if row is None or row.status != "requested":
            return
        canto = self._canto()
        name = _album_name(row)
        try:
            parent = await self._parent_folder(canto)
            album = await self._create_or_find_album(
                canto, name, parent, _album_description(row, self.settings.request_field)
            )
        except (BadRequest, NotFound, Forbidden, _FolderMissing) as exc:
            reason = exc.detail if isinstance(exc, ConnectorError) else str(exc)
            await self._fail(row, f"Canto refused to set the request up: {reason}")
            raise PermanentJobError(f"{row.ref}: {reason}") from None
        except ConnectorError as exc:
            if job.attempt < MAX_JOB_ATTEMPTS:
                raise  # an outage or throttling: the runner retries with backoff
            await self._fail(row, f"Canto did not answer after {job.attempt} attempts: {exc.detail}")
            raise PermanentJobError(f"{row.ref}: {exc.detail}") from None
        now = self._clock()
        async with self._sessions() as session, session.begin():
            result = await session.execute(
                update(AssetRequestRow)
                .where(AssetRequestRow.id == row.id, AssetRequestRow.status == "requested")
                .values(
                    status="open",
                    canto_album_id=album.id,
                    canto_album_name=album.name,
                    canto_album_path=album.name_path or album.name,
                    updated_at=now,
                )
            )
            if result.rowcount != 1:  # type: ignore[attr-defined]
                return
            row = await session.get_one(AssetRequestRow, row.id, populate_existing=True)
            await _audit(
                session, self._fingerprinter, row, at=now, actor="opsgate", action="asset_request.opened",
                before="requested", after="open", evidence={"canto_album": album.id, "album_path": row.canto_album_path},
            )  # fmt: skip
            origin = escaped(row.system + (f" {row.external_id}" if row.external_id else ""), 120)
            due = f" Due {row.due_date.isoformat()}." if row.due_date else ""
            await self._post(
                session,
                f":inbox_tray: *{row.ref}* asset requested by {origin}: {escaped(row.title, 200)}\n"
                f"Upload to the Canto album `{escaped(row.canto_album_path or '', 300)}`.{due}",
                dedup_key=f"asset-request:{row.ref}:opened",
            )
        self._kick()

    async def _parent_folder(self, canto: UploadLibrary) -> str:
        if self._parent_folder_id is None:
            wanted = self.settings.album_parent.strip("/")
            for root in await canto.get_tree():
                for node in root.walk():
                    if node.scheme == "folder" and wanted in (node.id, node.name_path.strip("/")):
                        self._parent_folder_id = node.id
                        break
                if self._parent_folder_id is not None:
                    break
            else:
                raise _FolderMissing(f"no Canto folder {wanted!r} (asset_requests.album_parent)")
        return self._parent_folder_id

    @staticmethod
    async def _create_or_find_album(
        canto: UploadLibrary, name: str, parent_id: str, description: str
    ) -> CantoTreeNode:
        try:
            return await canto.create_album(name, parent_folder_id=parent_id, description=description)
        except Conflict:
            # An earlier attempt created it but its answer was lost: the name carries the id.
            for node in await canto.get_tree(parent_id, layer=1):
                if node.is_album and node.name == name:
                    return node
            raise

    async def _fail(self, row: AssetRequestRow, reason: str) -> None:
        now = self._clock()
        async with self._sessions() as session, session.begin():
            result = await session.execute(
                update(AssetRequestRow)
                .where(AssetRequestRow.id == row.id, AssetRequestRow.status == "requested")
                .values(status="failed", failure_reason=reason, updated_at=now)
            )
            if result.rowcount != 1:  # type: ignore[attr-defined]
                return
            row = await session.get_one(AssetRequestRow, row.id, populate_existing=True)
            await _audit(
                session, self._fingerprinter, row, at=now, actor="opsgate", action="asset_request.failed",
                before="requested", after="failed", reason=reason,
            )  # fmt: skip
            await self._post(
                session,
                f":x: *{row.ref}* ({escaped(row.title, 200)}) could not be set up in Canto: {escaped(reason, 500)}",
                dedup_key=f"asset-request:{row.ref}:failed",
            )
            await self._queue_callback(session, row, "asset_request.failed")
        self._kick()

    # ----------------------------------------------------------------- webhooks

    async def on_canto_delivery(self, session: AsyncSession, delivery: WebhookDelivery) -> None:
        """Queue an upload check when a Canto delivery concerns an asset request (in its transaction).

        Matches by the delivery's album (id or name), by an asset already seen for a request, or
        by the request custom field when Canto includes custom fields in the body.
        """
        if delivery.source != "canto" or not delivery.object_id:
            return
        request_id = await self._match(session, delivery)
        if request_id is None:
            return
        await self._jobs.enqueue(
            session,
            kind=CHECK_JOB,
            payload={"request": request_id, "asset": delivery.object_id},
            dedup_key=f"{CHECK_JOB}:{delivery.delivery_id}",
        )

    async def _match(self, session: AsyncSession, delivery: WebhookDelivery) -> int | None:
        seen = await session.scalar(
            select(AssetRequestAssetRow.request_id).where(
                AssetRequestAssetRow.asset_ref == delivery.object_id
            )
        )
        if seen is not None:
            return int(seen)
        album = delivery.payload.get("album")
        if isinstance(album, str) and album.strip():
            found = await session.scalar(
                select(AssetRequestRow.id)
                .where(
                    (AssetRequestRow.canto_album_id == album.strip())
                    | (AssetRequestRow.canto_album_name == album.strip())
                )
                .order_by(AssetRequestRow.id.desc())
                .limit(1)
            )
            if found is not None:
                return int(found)
        custom = delivery.payload.get("additional")
        marked = custom.get(self.settings.request_field) if isinstance(custom, Mapping) else None
        marked = marked if marked is not None else delivery.payload.get(self.settings.request_field)
        if isinstance(marked, str) and (request_id := parse_request_ref(marked)) is not None:
            exists = await session.get(AssetRequestRow, request_id)
            return request_id if exists is not None else None
        return None

    # ----------------------------------------------------------------- uploads

    async def check_upload(self, job: JobContext) -> None:
        """Read the asset back from Canto; stamp it with the request id; fulfil when Approved."""
        row = await self._load(int(job.payload["request"]))
        if row is None or row.status != "open":
            return
        scheme, _, asset_id = str(job.payload["asset"]).partition(":")
        canto = self._canto()
        try:
            asset = await canto.get_asset(scheme, asset_id)
        except NotFound:
            return  # deleted before we looked: nothing to fulfil with
        if not self._belongs(asset, row):
            return
        await self._stamp(canto, asset, row)
        approval = canto.approval_of(asset)
        await self._record_upload(row, asset, approval)
        self._kick()

    def _belongs(self, asset: CantoAsset, row: AssetRequestRow) -> bool:
        in_album = any(album.id == row.canto_album_id for album in asset.related_albums)
        return in_album or asset.custom_field(self.settings.request_field) == row.ref

    async def _stamp(self, canto: UploadLibrary, asset: CantoAsset, row: AssetRequestRow) -> None:
        # Only what is missing: our own edit triggers another delivery, which must find nothing to do.
        wanted = {self.settings.request_field: row.ref, **{str(k): str(v) for k, v in row.fields.items()}}
        updates = [
            CantoPropertyUpdate(property_id=name, property_value=value, custom_field=True)
            for name, value in wanted.items()
            if asset.custom_field(name) != value
        ]
        missing_tags = [
            tag for tag in dict.fromkeys([*self.settings.tags, *row.tags]) if tag not in asset.tag
        ]
        if missing_tags:
            updates.append(
                CantoPropertyUpdate(property_id="tag", property_value=",".join(missing_tags), action="add")
            )
        if updates:
            await canto.update_properties([asset.ref], updates)

    async def _record_upload(self, row: AssetRequestRow, asset: CantoAsset, approval: CantoApproval) -> None:
        now = self._clock()
        asset_ref = f"{asset.scheme}:{asset.id}"
        async with self._sessions() as session, session.begin():
            insert = insert_into(session, AssetRequestAssetRow).values(
                request_id=row.id,
                asset_ref=asset_ref,
                approval_status=approval.status,
                first_seen_at=now,
                checked_at=now,
            )
            await session.execute(
                insert.on_conflict_do_update(
                    index_elements=["asset_ref"], set_={"approval_status": approval.status, "checked_at": now}
                )
            )
            if not approval.is_usable:
                # The dedup key makes this once per asset, however many deliveries follow.
                await self._post(
                    session,
                    f":arrow_up: *{row.ref}*: `{escaped(asset.name, 200)}` uploaded; waiting for its approval "
                    f"in Canto (now {escaped(approval.status or 'unset', 40)}).",
                    dedup_key=f"asset-request:{row.ref}:uploaded:{asset_ref}",
                )
                return
            result = await session.execute(
                update(AssetRequestRow)
                .where(AssetRequestRow.id == row.id, AssetRequestRow.status == "open")
                .values(
                    status="fulfilled",
                    fulfilled_at=now,
                    updated_at=now,
                    asset_ref=asset_ref,
                    asset_name=asset.name[:255],
                )
            )
            if result.rowcount != 1:  # type: ignore[attr-defined]
                return  # another asset fulfilled it first
            row = await session.get_one(AssetRequestRow, row.id, populate_existing=True)
            await _audit(
                session, self._fingerprinter, row, at=now, actor="canto", action="asset_request.fulfilled",
                before="open", after="fulfilled", evidence={"asset": asset_ref, "approval": approval.status},
            )  # fmt: skip
            await self._post(
                session,
                f":white_check_mark: *{row.ref}* fulfilled: `{escaped(asset.name, 200)}` is Approved in Canto "
                f"({escaped(row.title, 200)}, for {escaped(row.system, 64)}).",
                dedup_key=f"asset-request:{row.ref}:fulfilled",
            )
            await self._queue_callback(session, row, "asset_request.fulfilled")

    # ----------------------------------------------------------------- callbacks

    async def _queue_callback(self, session: AsyncSession, row: AssetRequestRow, event: str) -> None:
        if not row.callback_url:
            return
        delivery = f"{row.ref}.{event.rsplit('.', 1)[-1]}"
        row.callback_status = "pending"  # row belongs to `session`: flushed with the rest
        await self._jobs.enqueue(
            session,
            kind=CALLBACK_JOB,
            payload={
                "request": row.id,
                "event": event,
                "delivery": delivery,
                "url": row.callback_url,
                "body": {
                    "event": event,
                    "delivery": delivery,
                    "request": request_view(row, with_callback=False),
                },
            },
            dedup_key=f"{CALLBACK_JOB}:{delivery}",
        )

    async def deliver_callback(self, job: JobContext) -> None:
        """POST the signed body; a non-2xx answer is retried until callback_max_attempts."""
        url = str(job.payload["url"])
        body = canonical_json(job.payload["body"]).encode()
        stamp = int(self._clock().timestamp())
        headers = {
            "Content-Type": "application/json",
            EVENT_HEADER: str(job.payload["event"]),
            DELIVERY_HEADER: str(job.payload["delivery"]),
            TIMESTAMP_HEADER: str(stamp),
            SIGNATURE_HEADER: sign_callback(
                self.settings.callback_signing_secret.get_secret_value(), body, stamp
            ),
        }
        host = _host(url)
        try:
            response = await self._http.post(
                url, content=body, headers=headers, timeout=self.settings.callback_timeout
            )
        except httpx.HTTPError as exc:
            error = f"{host} unreachable ({type(exc).__name__})"
        else:
            if 200 <= response.status_code < 300:
                await self._callback_outcome(job, "delivered", None)
                return
            error = f"{host} answered HTTP {response.status_code}"
        if job.attempt >= self.settings.callback_max_attempts:
            row = await self._callback_outcome(job, "failed", error)
            if self._on_give_up is not None and row is not None:
                await self._on_give_up(CallbackGaveUp(row.ref, row.system, host, job.attempt, error))
            raise PermanentJobError(f"callback for request {job.payload['request']} given up: {error}")
        await self._callback_outcome(job, "pending", error)
        raise CallbackNotDelivered(error)

    async def _callback_outcome(
        self, job: JobContext, status: str, error: str | None
    ) -> AssetRequestRow | None:
        now = self._clock()
        async with self._sessions() as session, session.begin():
            row = await session.get(AssetRequestRow, int(job.payload["request"]))
            if row is None:
                return None
            row.callback_status = status
            row.callback_attempts = job.attempt
            row.callback_last_error = error
            row.updated_at = now
            if status == "delivered":
                row.callback_delivered_at = now
            if status in ("delivered", "failed"):
                await _audit(
                    session, self._fingerprinter, row, at=now, actor="opsgate", action=f"asset_request.callback_{status}",
                    before=row.status, after=row.status, reason=error,
                    evidence={"delivery": job.payload["delivery"], "host": _host(str(job.payload["url"])),
                              "attempts": job.attempt},
                )  # fmt: skip
            return row

    # ----------------------------------------------------------------- shared

    async def _load(self, request_id: int) -> AssetRequestRow | None:
        async with self._sessions() as session:
            return await session.get(AssetRequestRow, request_id)

    async def _post(self, session: AsyncSession, text: str, *, dedup_key: str) -> None:
        await self._outbox.enqueue(
            session,
            conversation=self._channel,
            method="chat.postMessage",
            payload={"channel": self._channel, "text": text},
            dedup_key=dedup_key,
        )

    # ----------------------------------------------------------------- /ops requests

    async def listing(self, *, limit: int = OPS_LISTING) -> Reply:
        """`/ops requests`: the newest asset requests, their state, asset and callback."""
        async with self._sessions() as session:
            rows = (
                await session.scalars(
                    select(AssetRequestRow).order_by(AssetRequestRow.id.desc()).limit(limit)
                )
            ).all()
        if not rows:
            return Reply("No asset requests yet. Other systems open them with `POST /requests/assets`.")
        lines = [f"*Asset requests* (newest {len(rows)})"]
        for row in rows:
            origin = escaped(row.system + (f" {row.external_id}" if row.external_id else ""), 100)
            parts = [f"• *{row.ref}* {row.status}: {escaped(row.title, 120)} ({origin})"]
            if row.asset_ref:
                parts.append(
                    f"asset `{escaped(row.asset_ref, 80)}` {escaped(row.asset_name or '', 80)}".rstrip()
                )
            elif row.canto_album_path:
                parts.append(f"album `{escaped(row.canto_album_path, 120)}`")
            if row.failure_reason:
                parts.append(escaped(row.failure_reason, 200))
            if row.callback_status:
                parts.append(f"callback {row.callback_status}")
            parts.append(format_utc(row.created_at))
            lines.append(" · ".join(parts))
        return Reply("\n".join(lines))


# --------------------------------------------------------------------------- wiring


def wire_asset_requests(service: OpsgateService, wiring: Wiring, config: OpsgateConfig) -> None:
    """Mount the routes, register jobs, /ops handlers and the scheduled media-history import.

    The media audit (`/ops audit asset`, hourly iconik import) is wired whatever the
    configuration; asset requests only with an `asset_requests:` section. The Canto webhook
    handler is left in `service.runtime.extras["asset_requests.on_canto_delivery"]` for the
    webhook wiring to chain.
    """
    from bot.domain.alerts import AlertEvent, Severity
    from bot.media_audit import MediaAudit, media_import_duty

    rt = service.runtime
    deps = rt.deps
    audit = MediaAudit(deps.sessions, wiring.registry.iconik, deps.fingerprinter, deps.clock)

    async def audit_asset(args: OpsArgs, user: str) -> Reply:
        return await audit.audit_asset(str(args.asset or ""))

    service.context.extras["ops.audit"] = audit_asset
    rt.add_scheduled(media_import_duty(audit), seconds=15 * 60, name="media_history_import")

    settings = config.asset_requests
    if settings is None:
        return
    environment = settings.canto_environment
    if not wiring.registry.is_configured("canto", environment):
        raise ValueError(
            f"asset_requests.canto_environment: {environment!r} does not configure Canto "
            f"(environments.{environment}.canto)"
        )

    async def give_up(failed: CallbackGaveUp) -> None:
        await wiring.alerts.ingest(
            AlertEvent(
                dedup_key=f"asset-request-callback:{failed.request_ref}",
                source="asset_requests",
                severity=Severity.WARNING,
                system=failed.system[:128],
                title=f"Callback for {failed.request_ref} to {failed.host} failed"[:200],
                summary=f"{failed.attempts} attempts; last: {failed.error}"[:2800],
            )
        )

    requests = AssetRequests(
        settings,
        sessions=deps.sessions,
        clock=deps.clock,
        jobs=rt.jobs,
        outbox=rt.outbox,
        canto=lambda: wiring.registry.canto(environment),
        http=rt.http,
        fingerprinter=deps.fingerprinter,
        slack_channel=settings.slack_channel or config.slack.approvals_channel,
        on_give_up=give_up,
        kick=rt.kick,
    )
    add_asset_request_routes(
        service.web,
        settings=settings,
        sessions=deps.sessions,
        clock=deps.clock,
        jobs=rt.jobs,
        fingerprinter=deps.fingerprinter,
        kick=rt.kick,
    )
    for kind, handler in requests.job_handlers().items():
        rt.register_job(kind, handler)

    async def listing(args: OpsArgs, user: str) -> Reply:
        return await requests.listing()

    service.context.extras["ops.requests"] = listing
    rt.extras["asset_requests.on_canto_delivery"] = requests.on_canto_delivery
