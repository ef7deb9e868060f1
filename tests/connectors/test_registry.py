"""ConnectorRegistry: lazy, cached connectors per (vendor, environment) and health probes over HTTP."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from bot.config.opsgate import OpsgateConfig, parse_config
from connectors.canto import CantoConnector
from connectors.confluence import ConfluenceConnector
from connectors.emulators import canto as canto_emulator
from connectors.emulators import confluence as confluence_emulator
from connectors.emulators import iconik as iconik_emulator
from connectors.emulators import opentext as opentext_emulator
from connectors.emulators.faults import start_app
from connectors.iconik import IconikConnector
from connectors.opentext import OpenTextConnector
from connectors.registry import (
    ConnectorNotConfigured,
    ConnectorRegistry,
    ConnectorUnhealthy,
    CredentialRejected,
)

NO_RETRIES = {"max_retries": 0, "connect_timeout": 1}


class FakeTime:
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@dataclass
class Urls:
    opentext: str
    confluence: str
    canto: str
    iconik: str


@pytest.fixture
async def urls() -> AsyncIterator[Urls]:
    apps = [
        opentext_emulator.create_app(rate_per_second=None),
        confluence_emulator.create_app(flavour="cloud"),
        canto_emulator.create_app(),
        iconik_emulator.create_app(),
    ]
    started = [await start_app(app) for app in apps]
    try:
        yield Urls(*(url for _, url in started))
    finally:
        for runner, _ in started:
            await runner.cleanup()


def opentext(url: str) -> dict[str, Any]:
    return {
        "base_url": url,
        "tenant_id": "acme-integration",
        "client_id": "opsgate-svc",
        "client_secret": "${OT_SECRET}",
        "http": NO_RETRIES,
    }


def confluence(url: str, token: str = "${CONFLUENCE_TOKEN}") -> dict[str, Any]:
    return {
        "flavour": "cloud",
        "base_url": url,
        "email": confluence_emulator.DEFAULT_EMAIL,
        "api_token": token,
        "http": NO_RETRIES,
    }


ENV = {
    "OT_SECRET": "opsgate-svc-secret",
    "CONFLUENCE_TOKEN": confluence_emulator.DEFAULT_API_TOKEN,
    "WRONG_TOKEN": "not-the-token",
    "CANTO_SECRET": canto_emulator.DEFAULT_APP_SECRET,
    "ICONIK_TOKEN": iconik_emulator.DEFAULT_AUTH_TOKEN,
}


def load(urls: Urls) -> OpsgateConfig:
    """The configuration as the YAML loader produces it (secrets from the environment)."""
    data = {
        "environments": {
            "test": {"opentext": opentext(urls.opentext)},
            "prod": {
                "opentext": opentext(urls.opentext),
                "confluence": confluence(urls.confluence),
                "canto": {
                    "base_url": urls.canto, "oauth_url": urls.canto, "app_id": canto_emulator.DEFAULT_APP_ID,
                    "app_secret": "${CANTO_SECRET}", "http": NO_RETRIES,
                },
                "iconik": {
                    "base_url": urls.iconik, "app_id": iconik_emulator.DEFAULT_APP_ID,
                    "auth_token": "${ICONIK_TOKEN}", "http": NO_RETRIES,
                },
            },
            "dr": {"opentext": opentext(closed_port_url()), "confluence": confluence(urls.confluence, "${WRONG_TOKEN}")},
        }
    }  # fmt: skip
    return parse_config(data, source="opsgate.yaml", env=ENV)


@pytest.fixture
async def registry(urls: Urls) -> AsyncIterator[ConnectorRegistry]:
    time = FakeTime()
    registry = ConnectorRegistry(load(urls), sleep=time.sleep, monotonic=time.monotonic)
    yield registry
    await registry.aclose()


async def test_each_vendor_and_environment_gets_one_cached_connector(registry):
    prod = registry.opentext("prod")

    assert registry.opentext("prod") is prod
    assert registry.opentext("test") is not prod
    assert isinstance(prod, OpenTextConnector)
    assert isinstance(registry.confluence("prod"), ConfluenceConnector)
    assert isinstance(registry.canto("prod"), CantoConnector)
    assert isinstance(registry.iconik("prod"), IconikConnector)


async def test_connectors_use_the_environment_settings(registry, urls):
    health = await registry.opentext("test").health()

    assert health.status == "ok"
    assert registry.opentext("test").settings.base_url == urls.opentext


async def test_a_vendor_missing_from_an_environment_names_the_config_key(registry):
    with pytest.raises(ConnectorNotConfigured) as caught:
        registry.confluence("test")

    assert (
        str(caught.value)
        == "environments.test.confluence is not configured (confluence is configured in: prod, dr)"
    )
    assert (caught.value.vendor, caught.value.environment) == ("confluence", "test")


async def test_an_unknown_environment_lists_the_known_ones(registry):
    with pytest.raises(
        ConnectorNotConfigured, match=r"environment 'staging' is not declared \(known: test, prod, dr\)"
    ):
        registry.opentext("staging")


async def test_probes_cover_every_configured_vendor_and_environment(registry):
    assert sorted(registry.probes()) == [
        "canto:prod", "confluence:dr", "confluence:prod", "iconik:prod", "opentext:dr", "opentext:prod",
        "opentext:test",
    ]  # fmt: skip


async def test_healthy_vendors_probe_quietly_over_http(registry):
    probes = registry.probes()

    for name in ("opentext:prod", "confluence:prod", "canto:prod", "iconik:prod"):
        assert await probes[name]() is None


async def test_an_unreachable_environment_probes_down(registry):
    with pytest.raises(ConnectorUnhealthy, match=r"^Unavailable: ConnectError"):
        await registry.probes()["opentext:dr"]()


async def test_a_degraded_opentext_probes_down_with_its_status(registry, urls):
    async with httpx.AsyncClient(base_url=urls.opentext) as control:
        fault = {"path": "/health$", "status": 200, "body": {"status": "degraded"}}
        (await control.post("/_control/faults", json=fault)).raise_for_status()

    with pytest.raises(ConnectorUnhealthy, match="OpenText reports status 'degraded'"):
        await registry.probes()["opentext:prod"]()


async def test_refused_credentials_probe_down_and_the_message_shows_no_secret(registry):
    with pytest.raises(ConnectorUnhealthy, match=r"^AuthError:") as caught:
        await registry.probes()["confluence:dr"]()

    assert "not-the-token" not in str(caught.value)


async def test_closing_closes_every_connector_and_refuses_new_lookups(registry):
    connector = registry.opentext("prod")

    await registry.aclose()

    with pytest.raises(RuntimeError, match="closed"):
        await connector.health()
    with pytest.raises(RuntimeError, match="the connector registry is closed"):
        registry.opentext("prod")


async def test_a_transport_override_carries_that_environments_traffic(urls):
    seen: list[str] = []

    class Recording(httpx.AsyncHTTPTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            seen.append(request.url.path)
            return await super().handle_async_request(request)

    registry = ConnectorRegistry(load(urls), transport_overrides={"opentext:prod": Recording()})
    try:
        await registry.opentext("prod").health()
        await registry.opentext("test").health()
    finally:
        await registry.aclose()

    assert seen == ["/im-admin/api/v1/health"]


def stale_credentials(urls: Urls) -> OpsgateConfig:
    """Canto and iconik configured with credentials the vendors refuse, next to an unreachable Canto."""
    data = {
        "environments": {
            "stale": {
                "canto": {
                    "base_url": urls.canto, "oauth_url": urls.canto, "app_id": canto_emulator.DEFAULT_APP_ID,
                    "app_secret": "${WRONG_TOKEN}", "http": NO_RETRIES,
                },
                "iconik": {
                    "base_url": urls.iconik, "app_id": iconik_emulator.DEFAULT_APP_ID,
                    "auth_token": "${WRONG_TOKEN}", "http": NO_RETRIES,
                },
            },
            "down": {
                "iconik": {
                    "base_url": closed_port_url(), "app_id": iconik_emulator.DEFAULT_APP_ID,
                    "auth_token": "${ICONIK_TOKEN}", "http": NO_RETRIES,
                },
            },
        }
    }  # fmt: skip
    return parse_config(data, source="opsgate.yaml", env=ENV)


@pytest.mark.parametrize("probe", ["canto:stale", "iconik:stale"])
async def test_refused_canto_or_iconik_credentials_probe_as_credential_rejected(urls, probe):
    async with ConnectorRegistry(stale_credentials(urls)) as registry:
        with pytest.raises(CredentialRejected) as caught:
            await registry.probes()[probe]()

    rejected = caught.value
    assert (f"{rejected.vendor}:{rejected.environment}", rejected.status) == (probe, 401)
    assert str(rejected).startswith("AuthError:")
    assert "not-the-token" not in str(rejected)


async def test_a_forbidden_answer_is_a_rejected_credential_too(registry, urls):
    async with httpx.AsyncClient(base_url=urls.iconik) as control:
        fault = {"path": "/API/metadata/v1/views/$", "status": 403, "times": 1}
        (await control.post("/_control/faults", json=fault)).raise_for_status()

    with pytest.raises(CredentialRejected) as caught:
        await registry.probes()["iconik:prod"]()

    assert caught.value.status == 403
    assert str(caught.value).startswith("Forbidden:")


async def test_a_vendor_not_answering_is_unhealthy_but_not_a_rejected_credential(urls):
    async with ConnectorRegistry(stale_credentials(urls)) as registry:
        with pytest.raises(ConnectorUnhealthy) as caught:
            await registry.probes()["iconik:down"]()

    assert not isinstance(caught.value, CredentialRejected)
    assert str(caught.value).startswith("Unavailable:")
