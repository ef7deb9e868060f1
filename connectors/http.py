"""The one HTTP client factory for connectors: timeouts, retries, limits, breaker, redaction.

Every connector owns one `VendorClient` per environment. It speaks httpx, turns non-2xx answers
into the typed errors of `connectors.errors`, retries what is safe to retry, and never logs a
secret. Time (sleep, monotonic clock) and randomness (jitter) are injected so tests run instantly.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import httpx
from aiolimiter import AsyncLimiter
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from connectors.errors import (
    CircuitOpen,
    ConnectorError,
    InvalidResponse,
    RateLimited,
    Unavailable,
    error_for_status,
)

if TYPE_CHECKING:
    from connectors.auth import AuthStrategy

__all__ = [
    "IDEMPOTENT_METHODS",
    "CircuitBreaker",
    "HttpOptions",
    "VendorClient",
    "default_error_detail",
    "parse_retry_after",
    "redact_headers",
    "redact_url",
]

M = TypeVar("M", bound=BaseModel)

logger = logging.getLogger("opsgate.connectors.http")

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
# Statuses that say "try again later"; 501/505 are permanent so they are not retried.
RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})
REDACTED = "***"
SECRET_HEADERS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "auth-token",
        "app-id",
        "otdsticket",
        "cookie",
        "set-cookie",
        "x-api-key",
        "x-vault-token",
    }
)
SECRET_QUERY_PARAM = re.compile(r"token|secret|passw|key|signature|sig$|code|ticket|auth", re.IGNORECASE)
# Vendor request-id headers, checked in order; the first present wins over our own id.
VENDOR_REQUEST_ID_HEADERS = (
    "x-request-id",
    "x-correlation-id",
    "atl-traceid",
    "x-trace-id",
    "request-id",
    "x-amzn-requestid",
)
MAX_DETAIL_CHARS = 500

BreakerState = Literal["closed", "open", "half_open"]


class _RedactHttpxUrls(logging.Filter):
    """httpx logs every request URL at INFO; token-like query values must not reach the logs."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and any(isinstance(a, httpx.URL) for a in record.args):
            record.args = tuple(redact_url(a) if isinstance(a, httpx.URL) else a for a in record.args)
        return True


_httpx_logger = logging.getLogger("httpx")
if not any(isinstance(f, _RedactHttpxUrls) for f in _httpx_logger.filters):
    _httpx_logger.addFilter(_RedactHttpxUrls())


class HttpOptions(BaseModel):
    """Per-connector HTTP behaviour; every field has a safe default."""

    model_config = ConfigDict(extra="forbid")

    connect_timeout: float = Field(5.0, gt=0)
    read_timeout: float = Field(30.0, gt=0)
    max_retries: int = Field(3, ge=0)
    backoff_initial: float = Field(0.2, ge=0)
    backoff_max: float = Field(5.0, ge=0)
    retry_after_cap: float = Field(30.0, ge=0)
    max_concurrency: int = Field(10, ge=1)
    rate_per_second: float | None = Field(None, gt=0)
    breaker_failure_threshold: int = Field(5, ge=1)
    breaker_reset_seconds: float = Field(30.0, ge=0)


def redact_headers(headers: Mapping[str, str] | Iterable[tuple[str, str]]) -> dict[str, str]:
    """Return a copy of the headers safe to log: credentials replaced by ***."""
    items = headers.items() if isinstance(headers, Mapping) else headers
    return {name: (REDACTED if name.lower() in SECRET_HEADERS else value) for name, value in items}


def redact_url(url: httpx.URL | str) -> str:
    """Return the URL safe to log: values of token-like query parameters replaced by ***."""
    parsed = httpx.URL(str(url))
    if not parsed.query:
        return str(parsed)
    params: list[tuple[str, str | int | float | bool | None]] = [
        (name, REDACTED if SECRET_QUERY_PARAM.search(name) else value)
        for name, value in parsed.params.multi_items()
    ]
    return str(parsed.copy_with(query=None).copy_merge_params(httpx.QueryParams(params)))


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP date); None if absent/bad."""
    if value is None or not value.strip():
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def _text_of(value: Any) -> str | None:
    if isinstance(value, str) and value.strip():
        return value
    return None


def default_error_detail(response: httpx.Response) -> str:
    """The vendor's error message from common body shapes, else the start of the body."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        fault = body.get("fault")
        if isinstance(fault, dict) and _text_of(fault.get("faultstring")):
            return str(fault["faultstring"])
        for key in ("message", "error_description", "detail", "title", "errorMessage", "error"):
            text = _text_of(body.get(key))
            if text:
                return text
            nested = body.get(key)
            if isinstance(nested, dict):
                text = _text_of(nested.get("message")) or _text_of(nested.get("detail"))
                if text:
                    return text
        errors = body.get("errors")
        if isinstance(errors, list) and errors:
            parts = []
            for item in errors:
                if isinstance(item, dict):
                    text = _text_of(item.get("title")) or _text_of(item.get("message"))
                    parts.append(text or str(item.get("code", "")))
                else:
                    parts.append(str(item))
            return "; ".join(p for p in parts if p)
        if isinstance(errors, dict) and errors:
            return "; ".join(f"{field}: {msg}" for field, msg in errors.items())
    text = response.text.strip() if response.content else ""
    return text or response.reason_phrase or f"HTTP {response.status_code}"


class CircuitBreaker:
    """Opens after N consecutive failed attempts; after the reset time lets one probe through."""

    def __init__(
        self,
        *,
        failure_threshold: int,
        reset_seconds: float,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.failure_threshold = failure_threshold
        self.reset_seconds = reset_seconds
        self._monotonic = monotonic
        self.consecutive_failures = 0
        self._opened_at: float | None = None
        self._probe_in_flight = False

    @property
    def state(self) -> BreakerState:
        """closed: calls flow; open: calls refused; half_open: one probe call may go."""
        if self._opened_at is None:
            return "closed"
        if self._probe_in_flight or self._monotonic() - self._opened_at >= self.reset_seconds:
            return "half_open"
        return "open"

    def try_acquire(self) -> bool:
        """Whether a call may go out now; in half-open state only the first caller probes."""
        state = self.state
        if state == "closed":
            return True
        if state == "half_open" and not self._probe_in_flight:
            self._probe_in_flight = True
            return True
        return False

    def record_success(self) -> None:
        """The vendor answered (any status below 500): close the circuit."""
        self.consecutive_failures = 0
        self._opened_at = None
        self._probe_in_flight = False

    def record_failure(self) -> None:
        """A 5xx, timeout or connection error; a failed probe re-opens for a full reset period."""
        self.consecutive_failures += 1
        if self._probe_in_flight or self.consecutive_failures >= self.failure_threshold:
            self._opened_at = self._monotonic()
        self._probe_in_flight = False

    def abandon_probe(self) -> None:
        """The probe was cancelled before an outcome: let the next caller probe instead."""
        self._probe_in_flight = False


def _limiter_for(rate_per_second: float | None) -> AsyncLimiter | None:
    if rate_per_second is None:
        return None
    # One request per 1/rate seconds, no burst: vendors count short windows, so spacing is safest.
    return AsyncLimiter(1, 1.0 / rate_per_second)


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    return (url.scheme, url.host, url.port)


class VendorClient:
    """One per connector and environment; the only way connectors speak HTTP."""

    def __init__(
        self,
        *,
        vendor: str,
        base_url: str,
        options: HttpOptions | None = None,
        auth: AuthStrategy | None = None,
        headers: Mapping[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        monotonic: Callable[[], float] = time.monotonic,
        error_parser: Callable[[httpx.Response], str] | None = None,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.vendor = vendor
        self.options = options = options or HttpOptions()
        self.auth = auth
        self._sleep = sleep
        self._monotonic = monotonic
        self._error_parser = error_parser or default_error_detail
        self._jitter = jitter
        self._client = httpx.AsyncClient(
            base_url=base_url,
            headers=headers,
            transport=transport,
            timeout=httpx.Timeout(options.read_timeout, connect=options.connect_timeout),
            limits=httpx.Limits(
                max_connections=options.max_concurrency,
                max_keepalive_connections=options.max_concurrency,
            ),
            follow_redirects=False,
        )
        self._semaphore = asyncio.Semaphore(options.max_concurrency)
        self._limiter = _limiter_for(options.rate_per_second)
        self.breaker = CircuitBreaker(
            failure_threshold=options.breaker_failure_threshold,
            reset_seconds=options.breaker_reset_seconds,
            monotonic=monotonic,
        )
        self.last_request_id: str | None = None

    @property
    def base_url(self) -> httpx.URL:
        """The base URL relative paths are resolved against."""
        return self._client.base_url

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Any = None,
        json: Any = None,
        content: Any = None,
        data: Any = None,
        files: Any = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool | None = None,
        authenticate: bool = True,
    ) -> httpx.Response:
        """Send one logical call and return its 2xx response, or raise a ConnectorError subclass.

        `path` is relative to the base URL or absolute (next links); credentials are only attached
        for the base URL's origin. Idempotent calls (default: GET/HEAD/PUT/DELETE/OPTIONS) are
        retried on connection errors, timeouts, 5xx and 429; other calls only when the request
        never left (connect errors) or the vendor throttled it (429). A 401 invalidates the
        credentials and retries once. `authenticate=False` is for token endpoints themselves.
        """
        method = method.upper()
        if idempotent is None:
            idempotent = method in IDEMPOTENT_METHODS
        request_id = str(uuid.uuid4())
        retries = 0
        auth_retried = False
        while True:
            request = self._client.build_request(
                method, path, params=params, json=json, content=content, data=data, files=files,
                headers=headers,
            )  # fmt: skip
            request.headers["X-Request-Id"] = request_id
            if authenticate and self.auth is not None and self._same_origin(request.url):
                await self.auth.apply(request, self)
            try:
                response = await self._attempt(request, request_id)
            except httpx.TransportError as exc:
                # Connect-phase errors mean the vendor never saw the request: safe for any method.
                never_sent = isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)
                if (idempotent or never_sent) and retries < self.options.max_retries:
                    delay = self._backoff(retries)
                    retries += 1
                    logger.warning(
                        "%s %s %s failed (%s); retry %d in %.2fs",
                        self.vendor, method, redact_url(request.url), type(exc).__name__, retries, delay,
                    )  # fmt: skip
                    await self._sleep(delay)
                    continue
                raise Unavailable(
                    f"{type(exc).__name__} calling the vendor",
                    vendor=self.vendor,
                    request_id=request_id,
                    method=method,
                    url=self._safe_url(request.url),
                ) from exc

            status = response.status_code
            if status == 401 and authenticate and self.auth is not None and not auth_retried:
                auth_retried = True
                if await self.auth.on_unauthorized():
                    logger.info("%s %s 401: credentials refreshed, retrying once", self.vendor, method)
                    continue
            if status in RETRYABLE_STATUSES and (idempotent or status == 429):
                if retries < self.options.max_retries:
                    retry_after = parse_retry_after(response.headers.get("Retry-After"))
                    if retry_after is not None:
                        delay = min(retry_after, self.options.retry_after_cap)
                    else:
                        delay = self._backoff(retries)
                    retries += 1
                    logger.warning(
                        "%s %s %s -> %d; retry %d in %.2fs",
                        self.vendor, method, redact_url(request.url), status, retries, delay,
                    )  # fmt: skip
                    await self._sleep(delay)
                    continue
            if status >= 400:
                raise self._error_from(response, method)
            return response

    async def get_model(self, path: str, model: type[M], **kw: Any) -> M:
        """GET and validate the JSON body as `model`; a wrong shape raises InvalidResponse."""
        return self.parse_model(await self.request("GET", path, **kw), model)

    async def send_model(self, method: str, path: str, model: type[M], **kw: Any) -> M:
        """Send `method` and validate the JSON body as `model`; a wrong shape raises InvalidResponse."""
        return self.parse_model(await self.request(method, path, **kw), model)

    def parse_model(self, response: httpx.Response, model: type[M]) -> M:
        """Validate a response body as `model` (unknown fields ignored per model config)."""
        body = self.json_of(response)
        try:
            return model.model_validate(body)
        except ValidationError as exc:
            # Only locations and messages: input values could be secrets.
            first = exc.errors(include_url=False, include_input=False)[0]
            where = ".".join(str(part) for part in first["loc"]) or "<body>"
            raise self._invalid(
                response, f"unexpected {model.__name__} shape ({exc.error_count()} errors; {where}: "
                f"{first['msg']})"
            ) from exc  # fmt: skip

    def json_of(self, response: httpx.Response) -> Any:
        """The response's JSON body; a body that is not JSON raises InvalidResponse."""
        try:
            return response.json()
        except ValueError as exc:
            raise self._invalid(response, "response body is not valid JSON") from exc

    @asynccontextmanager
    async def stream(
        self, method: str, path: str, *, params: Any = None, headers: Mapping[str, str] | None = None
    ) -> AsyncIterator[httpx.Response]:
        """Send one call and yield its 2xx response with the body unread (`aiter_bytes` it).

        Errors map as in `request`; a 401 refreshes the credentials once. Nothing else is retried:
        a body half read cannot be resumed here, so callers retry the whole transfer.
        """
        method = method.upper()
        request_id = str(uuid.uuid4())
        auth_retried = False
        while True:
            request = self._client.build_request(method, path, params=params, headers=headers)
            request.headers["X-Request-Id"] = request_id
            if self.auth is not None and self._same_origin(request.url):
                await self.auth.apply(request, self)
            try:
                response = await self._attempt(request, request_id, stream=True)
            except httpx.TransportError as exc:
                raise Unavailable(
                    f"{type(exc).__name__} calling the vendor",
                    vendor=self.vendor, request_id=request_id, method=method, url=self._safe_url(request.url),
                ) from exc  # fmt: skip
            try:
                if response.status_code == 401 and self.auth is not None and not auth_retried:
                    auth_retried = True
                    if await self.auth.on_unauthorized():
                        continue
                if response.status_code >= 400:
                    await response.aread()
                    raise self._error_from(response, method)
                yield response
                return
            finally:
                await response.aclose()

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._client.aclose()

    async def __aenter__(self) -> VendorClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def _attempt(
        self, request: httpx.Request, request_id: str, *, stream: bool = False
    ) -> httpx.Response:
        """One trip to the vendor through the breaker, the rate limiter and the concurrency limit."""
        if self._limiter is not None:
            await self._limiter.acquire()
        async with self._semaphore:
            # Checked after waiting for a slot: the breaker may have opened meanwhile.
            if not self.breaker.try_acquire():
                raise CircuitOpen(
                    "circuit breaker open after repeated failures; call not attempted",
                    vendor=self.vendor,
                    request_id=request_id,
                    method=request.method,
                    url=self._safe_url(request.url),
                )
            logger.debug(
                "%s -> %s %s headers=%s",
                self.vendor, request.method, redact_url(request.url),
                redact_headers(request.headers.multi_items()),
            )  # fmt: skip
            started = self._monotonic()
            try:
                response = await self._client.send(request, stream=stream)
            except httpx.TransportError:
                self.breaker.record_failure()
                raise
            except BaseException:
                self.breaker.abandon_probe()
                raise
        if response.status_code >= 500:
            self.breaker.record_failure()
        else:
            self.breaker.record_success()
        self.last_request_id = self._vendor_request_id(response) or request_id
        logger.info(
            "%s %s %s -> %d in %.0fms request_id=%s",
            self.vendor, request.method, redact_url(request.url), response.status_code,
            (self._monotonic() - started) * 1000, self.last_request_id,
        )  # fmt: skip
        return response

    def _backoff(self, retries_so_far: int) -> float:
        # Full jitter (AWS architecture blog): spreads synchronized clients apart.
        ceiling = min(self.options.backoff_max, self.options.backoff_initial * (2.0**retries_so_far))
        return self._jitter() * ceiling

    def _same_origin(self, url: httpx.URL) -> bool:
        return _origin(url) == _origin(self._client.base_url)

    @staticmethod
    def _safe_url(url: httpx.URL) -> str:
        return str(url.copy_with(query=None))

    @staticmethod
    def _vendor_request_id(response: httpx.Response) -> str | None:
        for name in VENDOR_REQUEST_ID_HEADERS:
            value = response.headers.get(name)
            if value:
                return str(value)
        return None

    def _detail_of(self, response: httpx.Response) -> str:
        try:
            detail = self._error_parser(response)
        except Exception:  # a vendor parser must never hide the original error
            detail = default_error_detail(response)
        return detail[:MAX_DETAIL_CHARS]

    def _error_from(self, response: httpx.Response, method: str) -> ConnectorError:
        status = response.status_code
        common: dict[str, Any] = {
            "vendor": self.vendor,
            "status": status,
            "request_id": self._vendor_request_id(response) or response.request.headers.get("X-Request-Id"),
            "method": method,
            "url": self._safe_url(response.request.url),
        }
        detail = self._detail_of(response)
        if status == 429:
            return RateLimited(
                detail, retry_after=parse_retry_after(response.headers.get("Retry-After")), **common
            )
        return error_for_status(status)(detail, **common)

    def _invalid(self, response: httpx.Response, detail: str) -> InvalidResponse:
        return InvalidResponse(
            detail,
            vendor=self.vendor,
            status=response.status_code,
            request_id=self._vendor_request_id(response) or response.request.headers.get("X-Request-Id"),
            method=response.request.method,
            url=self._safe_url(response.request.url),
        )
