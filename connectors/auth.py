"""Auth strategies a VendorClient applies to each request: static headers and cached tokens.

`TokenProvider` caches a token, refreshes it `refresh_ahead` seconds before expiry, lets only one
caller fetch while the others wait (100 racing calls -> 1 token request) and, after a 401, drops
the token that was refused so the client's single retry uses a fresh one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import httpx
from pydantic import SecretStr

if TYPE_CHECKING:
    from connectors.http import VendorClient

__all__ = ["AuthStrategy", "StaticHeaders", "Token", "TokenProvider"]


class AuthStrategy(Protocol):
    """How a VendorClient authenticates its requests."""

    async def apply(self, request: httpx.Request, client: VendorClient) -> None:
        """Add credentials to `request` (headers); may fetch a token first."""
        ...

    async def on_unauthorized(self) -> bool:
        """Called after a 401: invalidate cached credentials; True if one retry is worthwhile."""
        ...


class StaticHeaders:
    """Fixed credential headers (iconik App-ID/Auth-Token, Basic auth, personal access tokens)."""

    def __init__(self, headers: Mapping[str, str | SecretStr]) -> None:
        self._headers = {
            name: value.get_secret_value() if isinstance(value, SecretStr) else value
            for name, value in headers.items()
        }

    def __repr__(self) -> str:
        return f"StaticHeaders({sorted(self._headers)!r})"

    async def apply(self, request: httpx.Request, client: VendorClient) -> None:
        """Set the configured headers on the request."""
        request.headers.update(self._headers)

    async def on_unauthorized(self) -> bool:
        """Static credentials cannot be refreshed, so a retry would fail the same way."""
        return False


@dataclass(frozen=True)
class Token:
    """A bearer token (value hidden from repr) and its expiry on the monotonic clock."""

    value: str | SecretStr = field(repr=False)
    expires_at: float
    refresh_token: str | None = field(default=None, repr=False)

    @classmethod
    def expiring_in(
        cls,
        value: str | SecretStr,
        seconds: float,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        refresh_token: str | None = None,
    ) -> Token:
        """A token that expires `seconds` from now on `monotonic` (use the provider's clock)."""
        return cls(value=value, expires_at=monotonic() + seconds, refresh_token=refresh_token)

    def reveal(self) -> str:
        """The raw token value, for putting on the wire only."""
        return self.value.get_secret_value() if isinstance(self.value, SecretStr) else self.value


# The token an in-flight call was sent with. `apply` and `on_unauthorized` run in the same task
# (VendorClient.request awaits both directly), so this tells a 401 which token it refused without
# widening the AuthStrategy protocol. It keeps 100 concurrent 401s from causing 100 refreshes.
_token_in_use: ContextVar[Token | None] = ContextVar("opsgate_token_in_use", default=None)


class TokenProvider:
    """OAuth-style bearer tokens: cached, refreshed ahead of expiry, fetched by one caller at a time."""

    def __init__(
        self,
        fetch: Callable[[], Awaitable[Token]],
        *,
        refresh_ahead: float = 60.0,
        monotonic: Callable[[], float] = time.monotonic,
        header: str = "Authorization",
        scheme: str = "Bearer",
    ) -> None:
        self._fetch = fetch
        self.refresh_ahead = refresh_ahead
        self.monotonic = monotonic
        self._header = header
        self._scheme = scheme
        self._token: Token | None = None
        self._inflight: asyncio.Future[Token] | None = None
        self.fetch_count = 0

    def __repr__(self) -> str:
        return f"TokenProvider(header={self._header!r}, cached={self._token is not None})"

    def _fresh(self, token: Token | None) -> bool:
        return token is not None and self.monotonic() < token.expires_at - self.refresh_ahead

    async def token(self) -> Token:
        """A token valid for at least `refresh_ahead` seconds, fetching it if needed (single flight).

        Concurrent callers share one fetch, including its failure: 100 callers facing a refusing
        token endpoint cause one request and 100 AuthErrors, not 100 requests.
        """
        token = self._token
        if token is not None and self._fresh(token):
            return token
        if self._inflight is None:
            self._inflight = asyncio.ensure_future(self._refresh())
        # shield: one caller being cancelled must not cancel the fetch the others wait for.
        return await asyncio.shield(self._inflight)

    async def _refresh(self) -> Token:
        try:
            self.fetch_count += 1
            self._token = await self._fetch()
            return self._token
        finally:
            self._inflight = None

    async def apply(self, request: httpx.Request, client: VendorClient) -> None:
        """Put the current token on the request as `<header>: <scheme> <token>`."""
        token = await self.token()
        _token_in_use.set(token)
        value = token.reveal()
        request.headers[self._header] = f"{self._scheme} {value}" if self._scheme else value

    async def on_unauthorized(self) -> bool:
        """Drop the refused token (unless another caller already replaced it); always retry once."""
        refused = _token_in_use.get()
        if refused is None or self._token is refused:
            self._token = None
        return True

    def invalidate(self) -> None:
        """Forget the cached token; the next call fetches a new one."""
        self._token = None
