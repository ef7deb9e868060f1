"""Partner portal emulator: receives signed publications and keeps what was published.

    POST   /api/publications        signed JSON {event, asset{name, title, ...}, download_url} -> 201 {id, status, url}
    GET    /api/publications/{id}   signed -> the publication (status published | unpublished)
    DELETE /api/publications/{id}   signed -> 204, the publication is unpublished
    GET    /_control/portal/publications   everything received, for tests and the demo

Every /api/ request must carry a valid `X-Opsgate-Signature` for its method, path and body and a
timestamp within five minutes (connectors.portal.verify_portal_signature), else 401. Unknown
publications are 404; a body without an asset name or download link is 400.
"""

from __future__ import annotations

import dataclasses
import itertools
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from connectors.emulators.faults import add_fault_injection
from connectors.portal import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify_portal_signature

__all__ = ["DEFAULT_SECRET", "PUBLICATIONS_PATH", "PortalState", "create_app", "portal_state_of"]

DEFAULT_SECRET = "portal-emulator-signing-secret"
PUBLICATIONS_PATH = "/api/publications"

_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class PortalState:
    """Publications by id, and how many requests were refused for a bad signature."""

    publications: dict[str, dict[str, Any]] = field(default_factory=dict)
    rejected_signatures: int = 0


_STATE = web.AppKey("portal_state", PortalState)


def portal_state_of(app: web.Application) -> PortalState:
    """The state of an app from create_app (for in-process tests)."""
    return app[_STATE]


def create_app(
    *,
    seed: bool = True,
    secret: str = DEFAULT_SECRET,
    clock: Callable[[], float] = time.time,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> web.Application:
    """A portal that trusts requests signed with `secret`; `clock` judges signature timestamps.

    A portal starts with nothing published, so `seed` changes nothing (serve_all passes it).
    """
    app = web.Application()
    app[_STATE] = PortalState()
    ids = itertools.count(1)

    def state() -> PortalState:
        return app[_STATE]

    def reset() -> None:
        fresh = PortalState()
        for slot in dataclasses.fields(fresh):
            setattr(app[_STATE], slot.name, getattr(fresh, slot.name))

    @web.middleware
    async def verify_signature(request: web.Request, handler: _Handler) -> web.StreamResponse:
        if request.path.startswith("/api/"):
            body = await request.read()
            if not verify_portal_signature(
                secret,
                signature=request.headers.get(SIGNATURE_HEADER),
                timestamp=request.headers.get(TIMESTAMP_HEADER),
                method=request.method,
                path=request.raw_path,
                body=body,
                now=clock(),
            ):
                state().rejected_signatures += 1
                return web.json_response({"error": "invalid or expired signature"}, status=401)
        return await handler(request)

    def publication_or_404(request: web.Request) -> dict[str, Any]:
        publication = state().publications.get(request.match_info["publication_id"])
        if publication is None:
            raise web.HTTPNotFound(text='{"error": "no such publication"}', content_type="application/json")
        return publication

    def answer(request: web.Request, publication: dict[str, Any]) -> dict[str, Any]:
        origin = f"{request.scheme}://{request.host}"
        return {
            "id": publication["id"],
            "status": publication["status"],
            "url": f"{origin}{PUBLICATIONS_PATH}/{publication['id']}",
            "asset": publication["asset"],
        }

    async def publish(request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            return web.json_response({"error": "body is not JSON"}, status=400)
        asset = body.get("asset") if isinstance(body, dict) else None
        if not isinstance(asset, dict) or not asset.get("name") or not body.get("download_url"):
            return web.json_response({"error": "asset.name and download_url are required"}, status=400)
        publication_id = f"pub-{next(ids):04d}"
        state().publications[publication_id] = {
            "id": publication_id,
            "status": "published",
            "asset": asset,
            "download_url": body["download_url"],
            "download_expires_at": body.get("download_expires_at"),
            "published_at": now().isoformat(),
        }
        return web.json_response(answer(request, state().publications[publication_id]), status=201)

    async def get_publication(request: web.Request) -> web.Response:
        return web.json_response(answer(request, publication_or_404(request)))

    async def unpublish(request: web.Request) -> web.Response:
        publication = publication_or_404(request)
        publication["status"] = "unpublished"
        publication["unpublished_at"] = now().isoformat()
        return web.Response(status=204)

    async def list_publications(request: web.Request) -> web.Response:
        return web.json_response(
            {"publications": list(state().publications.values()), "rejected": state().rejected_signatures}
        )

    add_fault_injection(app, reset=reset, error_body=lambda status: {"error": f"injected fault ({status})"})
    app.middlewares.append(verify_signature)
    app.router.add_get("/_control/portal/publications", list_publications)
    app.router.add_post(PUBLICATIONS_PATH, publish)
    app.router.add_get(PUBLICATIONS_PATH + "/{publication_id}", get_publication)
    app.router.add_delete(PUBLICATIONS_PATH + "/{publication_id}", unpublish)
    return app
