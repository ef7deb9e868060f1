"""The aiohttp application: health, metrics and (with the Slack issue) /slack/events."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from bot.metrics import Metrics
from bot.wiring.deps import Deps

__all__ = ["DEPS_KEY", "METRICS_KEY", "create_web_app"]

DEPS_KEY = web.AppKey("deps", Deps)
METRICS_KEY = web.AppKey("metrics", Metrics)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
KNOWN_PATHS = frozenset(
    {"/healthz", "/metrics", "/slack/events", "/alerts", "/webhooks/canto", "/webhooks/iconik"}
)


@web.middleware
async def _observe(request: web.Request, handler: Handler) -> web.StreamResponse:
    metrics = request.app[METRICS_KEY]
    path = request.path if request.path in KNOWN_PATHS else "other"
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        metrics.http_requests.labels(path, str(status)).inc()
        metrics.http_latency.labels(path).observe(time.perf_counter() - started)


async def healthz(request: web.Request) -> web.Response:
    ok = await request.app[DEPS_KEY].database_ok()
    request.app[METRICS_KEY].database_up.set(1 if ok else 0)
    return web.json_response({"ok": ok, "database": "up" if ok else "down"}, status=200 if ok else 503)


async def metrics_endpoint(request: web.Request) -> web.Response:
    body = generate_latest(request.app[METRICS_KEY].registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def create_web_app(deps: Deps, metrics: Metrics | None = None) -> web.Application:
    app = web.Application(middlewares=[_observe], client_max_size=6 * 1024 * 1024)
    app[DEPS_KEY] = deps
    app[METRICS_KEY] = metrics or Metrics()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics_endpoint)
    return app
