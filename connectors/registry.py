"""One connector per (vendor, environment), built on first use from the YAML configuration.

    registry = ConnectorRegistry(config)
    opentext = registry.opentext("prod")        # the same object on every call
    ...
    await registry.aclose()                     # closes every connector it built

A vendor that an environment does not configure raises `ConnectorNotConfigured`, whose message
names the missing key (`environments.prod.confluence`). `probes()` gives the alert health checks
one callable per configured (vendor, environment); a probe whose credentials the vendor refuses
(401/403) raises `CredentialRejected`, so an alert can say "credential rejected" rather than
"not answering".

The registry reads the configuration through small Protocols instead of importing `bot.config.opsgate`:
connectors never import from `bot/`, and `OpsgateConfig` fits these shapes as it is.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Final, Literal, Protocol, TypeAlias, TypeVar, cast, get_args

import httpx

from connectors.canto import CantoConnector, CantoSettings
from connectors.confluence import ConfluenceConnector, ConfluenceSettings
from connectors.errors import AuthError, ConnectorError, Forbidden
from connectors.iconik import IconikConnector, IconikSettings
from connectors.opentext import OpenTextConnector, OpenTextSettings

__all__ = [
    "VENDORS",
    "ConnectorNotConfigured",
    "ConnectorRegistry",
    "ConnectorUnhealthy",
    "CredentialRejected",
    "Probe",
    "RegistryConfig",
    "Vendor",
    "VendorEnvironment",
]

Vendor: TypeAlias = Literal["opentext", "confluence", "canto", "iconik"]
VENDORS: Final[tuple[Vendor, ...]] = get_args(Vendor)

Connector: TypeAlias = OpenTextConnector | ConfluenceConnector | CantoConnector | IconikConnector
C = TypeVar("C", OpenTextConnector, ConfluenceConnector, CantoConnector, IconikConnector)


class VendorEnvironment(Protocol):
    """What the registry reads of one environment (bot.config.opsgate.EnvironmentConfig fits)."""

    @property
    def opentext(self) -> OpenTextSettings | None: ...
    @property
    def confluence(self) -> ConfluenceSettings | None: ...
    @property
    def canto(self) -> CantoSettings | None: ...
    @property
    def iconik(self) -> IconikSettings | None: ...


class RegistryConfig(Protocol):
    """What the registry reads of the configuration (bot.config.opsgate.OpsgateConfig fits)."""

    @property
    def environments(self) -> Mapping[str, VendorEnvironment]: ...


class ConnectorNotConfigured(LookupError):
    """The environment has no settings for this vendor (or the environment is unknown)."""

    def __init__(
        self, vendor: str, environment: str, *, known_environments: list[str], configured_in: list[str]
    ):
        self.vendor = vendor
        self.environment = environment
        self.key = f"environments.{environment}.{vendor}"
        if environment not in known_environments:
            problem = f"environment {environment!r} is not declared (known: {', '.join(known_environments) or 'none'})"
        else:
            where = ", ".join(configured_in) if configured_in else "no environment"
            problem = f"{self.key} is not configured ({vendor} is configured in: {where})"
        super().__init__(problem)


class ConnectorUnhealthy(Exception):
    """A health probe failed; the message says why (the vendor's words, never a secret)."""


class CredentialRejected(ConnectorUnhealthy):
    """The vendor answered but refused our credentials (401 or 403): rotate or fix them.

    `vendor`, `environment` and `status` say whose credential; the vendor is reachable.
    """

    def __init__(self, message: str, *, vendor: str, environment: str, status: int | None) -> None:
        self.vendor = vendor
        self.environment = environment
        self.status = status
        super().__init__(message)


# What bot.alerts.health runs: returns when healthy, raises when not.
Probe: TypeAlias = Callable[[], Awaitable[None]]


class ConnectorRegistry:
    """Builds and caches connectors from `config.environments[env].<vendor>` settings."""

    def __init__(
        self,
        config: RegistryConfig,
        *,
        transport_overrides: Mapping[str, httpx.AsyncBaseTransport] | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        """`transport_overrides` maps "vendor:env" (or just "vendor") to an httpx transport (tests)."""
        self._config = config
        self._transports = dict(transport_overrides or {})
        self._sleep = sleep
        self._monotonic = monotonic
        self._built: dict[tuple[str, str], Connector] = {}
        self._closed = False

    # --- lookup ---------------------------------------------------------------------------------

    def configured(self, vendor: Vendor) -> list[str]:
        """Environments that configure `vendor`, in configuration order."""
        return [
            env
            for env, settings in self._config.environments.items()
            if getattr(settings, vendor) is not None
        ]

    def is_configured(self, vendor: Vendor, environment: str) -> bool:
        settings = self._config.environments.get(environment)
        return settings is not None and getattr(settings, vendor) is not None

    def opentext(self, environment: str) -> OpenTextConnector:
        """The OpenText connector of `environment`; ConnectorNotConfigured if it has none."""
        return self._get("opentext", environment, OpenTextConnector)

    def confluence(self, environment: str) -> ConfluenceConnector:
        """The Confluence connector of `environment`; ConnectorNotConfigured if it has none."""
        return self._get("confluence", environment, ConfluenceConnector)

    def canto(self, environment: str) -> CantoConnector:
        """The Canto connector of `environment`; ConnectorNotConfigured if it has none."""
        return self._get("canto", environment, CantoConnector)

    def iconik(self, environment: str) -> IconikConnector:
        """The iconik connector of `environment`; ConnectorNotConfigured if it has none."""
        return self._get("iconik", environment, IconikConnector)

    def _get(self, vendor: Vendor, environment: str, kind: type[C]) -> C:
        if self._closed:
            raise RuntimeError("the connector registry is closed")
        key = (vendor, environment)
        existing = self._built.get(key)
        if existing is None:
            existing = self._built[key] = self._build(vendor, environment)
        return cast(C, existing)

    def _build(self, vendor: Vendor, environment: str) -> Connector:
        env = self._config.environments.get(environment)
        settings = None if env is None else getattr(env, vendor)
        if settings is None:
            raise ConnectorNotConfigured(
                vendor,
                environment,
                known_environments=list(self._config.environments),
                configured_in=self.configured(vendor),
            )
        transport = self._transports.get(f"{vendor}:{environment}") or self._transports.get(vendor)
        sleep, monotonic = self._sleep, self._monotonic
        if isinstance(settings, OpenTextSettings):
            return OpenTextConnector(settings, transport=transport, sleep=sleep, monotonic=monotonic)
        if isinstance(settings, ConfluenceSettings):
            return ConfluenceConnector(settings, transport=transport, sleep=sleep, monotonic=monotonic)
        if isinstance(settings, CantoSettings):
            return CantoConnector(settings, transport=transport, sleep=sleep, monotonic=monotonic)
        if isinstance(settings, IconikSettings):
            return IconikConnector(settings, transport=transport, sleep=sleep, monotonic=monotonic)
        raise TypeError(f"unexpected settings type {type(settings).__name__} for {vendor}")

    # --- health -------------------------------------------------------------------------------

    def probes(self) -> dict[str, Probe]:
        """{"vendor:env": probe} for every configured pair; a probe raises ConnectorUnhealthy when down."""
        probes: dict[str, Probe] = {}
        for vendor in VENDORS:
            for environment in self.configured(vendor):
                probes[f"{vendor}:{environment}"] = self._probe(vendor, environment)
        return probes

    def _probe(self, vendor: Vendor, environment: str) -> Probe:
        async def probe() -> None:
            try:
                problem = await self._check(vendor, environment)
            except (AuthError, Forbidden) as exc:
                raise CredentialRejected(
                    f"{type(exc).__name__}: {exc.detail}",
                    vendor=vendor,
                    environment=environment,
                    status=exc.status,
                ) from exc
            except ConnectorError as exc:
                raise ConnectorUnhealthy(f"{type(exc).__name__}: {exc.detail}") from exc
            if problem is not None:
                raise ConnectorUnhealthy(problem)

        probe.__qualname__ = f"probe[{vendor}:{environment}]"
        return probe

    async def _check(self, vendor: Vendor, environment: str) -> str | None:
        """The cheapest call proving reachability (and credentials where possible); a problem or None."""
        if vendor == "opentext":
            health = await self.opentext(environment).health()
            return None if health.status == "ok" else f"OpenText reports status {health.status!r}"
        if vendor == "confluence":
            await self.confluence(environment).verify_identity()
        elif vendor == "canto":
            await self.canto(environment).get_tree(layer=1)
        else:
            await self.iconik(environment).list_metadata_views()
        return None

    # --- lifecycle ----------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Close every connector built so far; later lookups raise RuntimeError."""
        self._closed = True
        built, self._built = list(self._built.values()), {}
        for connector in built:
            await connector.aclose()

    async def __aenter__(self) -> ConnectorRegistry:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
