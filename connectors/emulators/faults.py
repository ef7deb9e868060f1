"""Fault injection, request recording and rate limiting shared by every vendor emulator.

`add_fault_injection` registers control routes (never faulted, never authenticated):

    POST   /_control/faults    FaultSpec JSON -> {"id": ...}; matching requests misbehave
    DELETE /_control/faults    clear all faults
    POST   /_control/reset     clear faults and the request log, then call reset() (re-seed)
    GET    /_control/requests  recent requests [{method, path, query, headers (redacted), json}]
    DELETE /_control/requests  clear the request log and counters
    GET    /_control/stats     {"requests_total", "in_flight", "peak_in_flight"}

A fault matches when `path` (regex, searched in the request path) and `method` (if set) match; it
applies at most `times` times (null: until cleared). Effects, in order: `latency_ms` delay,
`expire_tokens` (calls the emulator's hook, then the request proceeds), `timeout` (never answers
until the client gives up or the server stops), `status` with `body` and `retry_after`,
`malformed_json` (a truncated JSON body with the given status, default 200).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from connectors.http import redact_headers

__all__ = [
    "CONTROL_PREFIX",
    "FaultInjector",
    "FaultSpec",
    "add_fault_injection",
    "add_rate_limit",
    "fault_injector_of",
    "start_app",
]

CONTROL_PREFIX = "/_control/"
REQUEST_LOG_SIZE = 1000
# A "timeout" fault holds the request at most this long; the client's read timeout ends it sooner.
TIMEOUT_FAULT_HOLD_SECONDS = 300.0
MALFORMED_JSON_BODY = '{"results": [{"id": "1", "name": '

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class FaultSpec(BaseModel):
    """How matching requests should misbehave (the JSON body of POST /_control/faults)."""

    model_config = ConfigDict(extra="forbid")

    path: str = ".*"
    method: str | None = None
    status: int | None = Field(None, ge=100, le=599)
    body: Any = None
    latency_ms: int | None = Field(None, ge=0)
    timeout: bool = False
    malformed_json: bool = False
    expire_tokens: bool = False
    retry_after: float | None = Field(None, ge=0)
    times: int | None = Field(None, ge=1)


@dataclass
class _ActiveFault:
    id: str
    spec: FaultSpec
    pattern: re.Pattern[str]
    remaining: int | None

    def matches(self, request: web.Request) -> bool:
        if self.spec.method is not None and self.spec.method.upper() != request.method:
            return False
        return self.pattern.search(request.path) is not None


@dataclass
class FaultInjector:
    """Per-app fault and request-log state; tests may also read it in-process."""

    reset_state: Callable[[], None]
    expire_tokens: Callable[[], None] | None = None
    error_body: Callable[[int], Any] | None = None
    faults: list[_ActiveFault] = field(default_factory=list)
    requests: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=REQUEST_LOG_SIZE))
    requests_total: int = 0
    in_flight: int = 0
    peak_in_flight: int = 0
    _ids: itertools.count[int] = field(default_factory=itertools.count)
    _stopping: asyncio.Event | None = None

    def add(self, spec: FaultSpec) -> str:
        """Activate a fault; returns its id."""
        fault_id = f"fault-{next(self._ids)}"
        self.faults.append(_ActiveFault(fault_id, spec, re.compile(spec.path), spec.times))
        return fault_id

    def clear_faults(self) -> None:
        """Remove every fault."""
        self.faults.clear()

    def clear_requests(self) -> None:
        """Forget the request log and counters."""
        self.requests.clear()
        self.requests_total = 0
        self.peak_in_flight = self.in_flight

    def count(self, *, path: str, method: str | None = None) -> int:
        """How many logged requests match `path` (regex search) and `method`."""
        pattern = re.compile(path)
        return sum(
            1
            for seen in self.requests
            if pattern.search(seen["path"]) and (method is None or seen["method"] == method.upper())
        )

    def take(self, request: web.Request) -> FaultSpec | None:
        """The first fault matching `request`, consuming one of its uses."""
        for fault in self.faults:
            if fault.matches(request):
                if fault.remaining is not None:
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self.faults.remove(fault)
                return fault.spec
        return None

    def stopping(self) -> asyncio.Event:
        """Set when the app shuts down, releasing requests held by timeout faults."""
        if self._stopping is None:
            self._stopping = asyncio.Event()
        return self._stopping


_INJECTOR = web.AppKey("opsgate_fault_injector", FaultInjector)


def fault_injector_of(app: web.Application) -> FaultInjector:
    """The FaultInjector registered on `app` by add_fault_injection."""
    return app[_INJECTOR]


async def _json_body(request: web.Request) -> Any:
    if not request.body_exists or request.content_type != "application/json":
        return None
    raw = await request.read()  # cached by aiohttp, so handlers can read it again
    try:
        return json.loads(raw)
    except ValueError:
        return None


def _default_error_body(status: int) -> Any:
    return {"error": "injected fault", "status": status}


async def _respond_with_fault(injector: FaultInjector, spec: FaultSpec) -> web.StreamResponse | None:
    if spec.latency_ms:
        await asyncio.sleep(spec.latency_ms / 1000)
    if spec.expire_tokens and injector.expire_tokens is not None:
        injector.expire_tokens()
    if spec.timeout:
        try:
            await asyncio.wait_for(injector.stopping().wait(), TIMEOUT_FAULT_HOLD_SECONDS)
        except TimeoutError:
            pass
        return web.json_response({"error": "injected timeout"}, status=504)
    headers = {"Retry-After": f"{spec.retry_after:g}"} if spec.retry_after is not None else {}
    if spec.malformed_json:
        return web.Response(
            status=spec.status or 200,
            text=MALFORMED_JSON_BODY,
            content_type="application/json",
            headers=headers,
        )
    if spec.status is not None:
        body = spec.body
        if body is None:
            body = (injector.error_body or _default_error_body)(spec.status)
        return web.json_response(body, status=spec.status, headers=headers)
    return None


def add_fault_injection(
    app: web.Application,
    *,
    reset: Callable[[], None],
    expire_tokens: Callable[[], None] | None = None,
    error_body: Callable[[int], Any] | None = None,
) -> FaultInjector:
    """Add the fault/recording middleware and the /_control routes to `app` (before it starts).

    `reset` re-seeds the emulator's state; `expire_tokens` makes every issued token invalid;
    `error_body(status)` shapes default fault bodies like the vendor's own errors.
    """
    injector = FaultInjector(reset_state=reset, expire_tokens=expire_tokens, error_body=error_body)
    app[_INJECTOR] = injector

    @web.middleware
    async def fault_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith(CONTROL_PREFIX):
            return await handler(request)
        injector.requests_total += 1
        injector.requests.append(
            {
                "method": request.method,
                "path": request.path,
                "query": dict(request.query),
                "headers": redact_headers(request.headers.items()),
                "json": await _json_body(request),
            }
        )
        injector.in_flight += 1
        injector.peak_in_flight = max(injector.peak_in_flight, injector.in_flight)
        try:
            spec = injector.take(request)
            if spec is not None:
                faulted = await _respond_with_fault(injector, spec)
                if faulted is not None:
                    return faulted
            return await handler(request)
        finally:
            injector.in_flight -= 1

    async def post_fault(request: web.Request) -> web.Response:
        try:
            spec = FaultSpec.model_validate(await request.json())
            re.compile(spec.path)
        except (ValidationError, ValueError, re.error) as exc:
            return web.json_response({"error": f"bad fault spec: {exc}"}, status=400)
        return web.json_response({"id": injector.add(spec)}, status=201)

    async def delete_faults(request: web.Request) -> web.Response:
        injector.clear_faults()
        return web.json_response({"cleared": True})

    async def post_reset(request: web.Request) -> web.Response:
        injector.clear_faults()
        injector.clear_requests()
        injector.reset_state()
        return web.json_response({"reset": True})

    async def get_requests(request: web.Request) -> web.Response:
        return web.json_response(list(injector.requests))

    async def delete_requests(request: web.Request) -> web.Response:
        injector.clear_requests()
        return web.json_response({"cleared": True})

    async def get_stats(request: web.Request) -> web.Response:
        return web.json_response(
            {
                "requests_total": injector.requests_total,
                "in_flight": injector.in_flight,
                "peak_in_flight": injector.peak_in_flight,
            }
        )

    async def release_held_requests(app: web.Application) -> None:
        injector.stopping().set()

    app.middlewares.append(fault_middleware)
    app.on_shutdown.append(release_held_requests)
    app.router.add_post("/_control/faults", post_fault)
    app.router.add_delete("/_control/faults", delete_faults)
    app.router.add_post("/_control/reset", post_reset)
    app.router.add_get("/_control/requests", get_requests)
    app.router.add_delete("/_control/requests", delete_requests)
    app.router.add_get("/_control/stats", get_stats)
    return injector


def add_rate_limit(
    app: web.Application,
    *,
    per_second: float,
    burst: int,
    response: Callable[[float], web.Response],
    monotonic: Callable[[], float] = time.monotonic,
    exempt: Callable[[web.Request], bool] | None = None,
) -> None:
    """Answer `response(retry_after_seconds)` (a vendor-shaped 429) beyond a token-bucket rate.

    Call after add_fault_injection so throttled requests are still logged. Control routes and
    requests for which `exempt(request)` is true are never throttled.
    """
    if per_second <= 0 or burst < 1:
        raise ValueError("per_second must be > 0 and burst >= 1")
    tokens = float(burst)
    refilled_at = monotonic()

    @web.middleware
    async def rate_limit_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        nonlocal tokens, refilled_at
        if request.path.startswith(CONTROL_PREFIX) or (exempt is not None and exempt(request)):
            return await handler(request)
        now = monotonic()
        tokens = min(float(burst), tokens + (now - refilled_at) * per_second)
        refilled_at = now
        if tokens < 1.0:
            return response((1.0 - tokens) / per_second)
        tokens -= 1.0
        return await handler(request)

    app.middlewares.append(rate_limit_middleware)


async def start_app(
    app: web.Application, host: str = "127.0.0.1", port: int = 0
) -> tuple[web.AppRunner, str]:
    """Serve `app` on host:port (0 = ephemeral); returns the runner and base URL without slash."""
    # handler_cancellation: a request held by a timeout fault ends when the client hangs up.
    runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=2.0, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    bound_port = runner.addresses[0][1]
    return runner, f"http://{host}:{bound_port}"
