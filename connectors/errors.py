"""Typed errors raised by every connector; messages carry the vendor's detail, never secrets.

ConnectorError(Exception)      vendor, status, detail, request_id, method, url
 ├─ AuthError                  401 / bad credentials / token endpoint refused
 ├─ Forbidden                  403
 ├─ NotFound                   404 (and 410)
 ├─ Conflict                   409 (e.g. Confluence stale version, promotion already running)
 ├─ BadRequest                 400 / 422 and other 4xx (vendor validation)
 ├─ RateLimited                429 after retries are exhausted; retry_after: float | None
 ├─ Unavailable                5xx after retries, connection errors, timeouts
 │    └─ CircuitOpen           breaker open: the call was not attempted
 └─ InvalidResponse            body not JSON / not the documented shape
"""

from __future__ import annotations

__all__ = [
    "AuthError",
    "BadRequest",
    "CircuitOpen",
    "Conflict",
    "ConnectorError",
    "Forbidden",
    "InvalidResponse",
    "NotFound",
    "RateLimited",
    "Unavailable",
    "error_for_status",
]


class ConnectorError(Exception):
    """A vendor call failed; `detail` is the vendor's own message and never contains secrets."""

    def __init__(
        self,
        detail: str,
        *,
        vendor: str,
        status: int | None = None,
        request_id: str | None = None,
        method: str | None = None,
        url: str | None = None,
    ) -> None:
        self.vendor = vendor
        self.status = status
        self.detail = detail
        self.request_id = request_id
        self.method = method
        self.url = url
        super().__init__(self._message())

    def _message(self) -> str:
        call = f" {self.method} {self.url}" if self.method and self.url else ""
        status = f" -> {self.status}" if self.status is not None else ""
        return f"{self.vendor}{call}{status}: {self.detail}"


class AuthError(ConnectorError):
    """The vendor refused our credentials (401, or the token endpoint said no)."""


class Forbidden(ConnectorError):
    """Authenticated but not allowed (403)."""


class NotFound(ConnectorError):
    """The addressed resource does not exist (404 / 410)."""


class Conflict(ConnectorError):
    """The request conflicts with the resource's current state (409)."""


class BadRequest(ConnectorError):
    """The vendor rejected the request as invalid (400 / 422 / other 4xx)."""


class RateLimited(ConnectorError):
    """Still throttled (429) after the retries; `retry_after` is the vendor's last hint in seconds."""

    def __init__(
        self,
        detail: str,
        *,
        vendor: str,
        status: int | None = 429,
        request_id: str | None = None,
        method: str | None = None,
        url: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.retry_after = retry_after
        super().__init__(detail, vendor=vendor, status=status, request_id=request_id, method=method, url=url)


class Unavailable(ConnectorError):
    """The vendor could not be reached or kept failing (5xx, connection errors, timeouts)."""


class CircuitOpen(Unavailable):
    """The circuit breaker is open: the call was refused locally without reaching the vendor."""


class InvalidResponse(ConnectorError):
    """The vendor answered with a body that is not JSON or not the documented shape."""


def error_for_status(status: int) -> type[ConnectorError]:
    """Map an HTTP status (>= 400) to the error class a caller should catch."""
    if status == 401:
        return AuthError
    if status == 403:
        return Forbidden
    if status in (404, 410):
        return NotFound
    if status == 409:
        return Conflict
    if status == 429:
        return RateLimited
    if status >= 500:
        return Unavailable
    if 400 <= status < 500:
        return BadRequest
    return ConnectorError
