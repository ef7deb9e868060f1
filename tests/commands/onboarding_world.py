"""OpenText, Confluence, Canto and iconik emulators over loopback with a registry wired to them and
an onboarding template, for the onboarding workflow tests (imported by those test modules).

One stepping clock drives the emulators' time, the connectors' monotonic clock and every sleep
(clone jobs are polled), so tests move time instead of waiting.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from bot.config.opsgate import OpsgateConfig
from bot.domain.requests import ChangeSpec
from commands.onboard import OnboardingWorkflow, onboarding_spec
from connectors.emulators import canto as canto_emulator
from connectors.emulators import confluence as confluence_emulator
from connectors.emulators import iconik as iconik_emulator
from connectors.emulators import opentext as opentext_emulator
from connectors.emulators.faults import start_app
from connectors.registry import ConnectorRegistry

from .opentext_world import TENANT, Emulator, SteppingClock

NO_RETRIES = {"max_retries": 0}
SECRETS = (
    "opsgate-svc-secret",
    canto_emulator.DEFAULT_APP_SECRET,
    iconik_emulator.DEFAULT_AUTH_TOKEN,
    confluence_emulator.DEFAULT_API_TOKEN,
)

TEMPLATE: dict[str, Any] = {
    "name": "edi-partner",
    "description": "EDIFACT trading partner {name} sending ORDERS over AS2",
    "solution": "orders-edi",
    "artifacts": [
        {"source": "orders-edi.orders-inbound-api", "name": "{name}-orders-api"},
        {"source": "orders-edi.orders-d96a-to-xml", "name": "{name}-d96a-to-xml", "version": "2.4.0"},
        {"source": "orders-edi.orders-as2-partners", "name": "{name}-as2-profile"},
    ],
    "credentials": [
        {
            "name": "{name}-{env}-client",
            "credential_id": "{name}-{env}-client",
            "owner": "U0PARTNEROPS",
            "owner_channel": "C0EDI",
            "description": "AS2 gateway client of {name}",
            "schedule": "90d",
            "grace_period": "12h",
        }
    ],
    "environments": {
        "prod": {"as2_url": "https://b2b.acme.example/as2/{name}", "as2_id": "ACME01"},
        "test": {"as2_url": "https://b2b-test.acme.example/as2/{name}", "as2_id": "ACME01T"},
    },
    "iconik": {
        "storage": "Export - Retailer A",
        "collection": "Partner {name}",
        "parent_collection": "Releases",
    },
    "canto": {"folder": "Partner Releases", "album": "{name}", "description": "Deliveries for {name}"},
    "interface_guide": "{name} posts ORDERS to the AS2 endpoint below.\n\nAcknowledgements come back as CONTRL.",
    "message_standards": ["EDIFACT ORDERS D96A", "EDIFACT CONTRL D3"],
    "testing": ["Send a test ORDERS to the {env} endpoint", "Check the order XML in the monitoring UI"],
    "support_contacts": [{"role": "EDI support", "contact": "#edi-support"}],
}


def build_config(
    urls: dict[str, str], *, template: dict[str, Any] | None = None, **extra: Any
) -> OpsgateConfig:
    opentext = {
        "base_url": urls["opentext"],
        "tenant_id": TENANT,
        "client_id": "opsgate-svc",
        "client_secret": "opsgate-svc-secret",
        "job_poll_interval": 2,
        "http": NO_RETRIES,
    }
    confluence = {
        "flavour": "cloud",
        "base_url": urls["confluence"],
        "email": confluence_emulator.DEFAULT_EMAIL,
        "api_token": confluence_emulator.DEFAULT_API_TOKEN,
        "http": NO_RETRIES,
    }
    canto = {
        "base_url": urls["canto"],
        "oauth_url": urls["canto"],
        "app_id": canto_emulator.DEFAULT_APP_ID,
        "app_secret": canto_emulator.DEFAULT_APP_SECRET,
        "http": NO_RETRIES,
    }
    iconik = {
        "base_url": urls["iconik"],
        "app_id": iconik_emulator.DEFAULT_APP_ID,
        "auth_token": iconik_emulator.DEFAULT_AUTH_TOKEN,
        "http": NO_RETRIES,
    }
    data: dict[str, Any] = {
        "environments": {
            "test": {"opentext": opentext},
            "prod": {
                "production": True,
                "opentext": opentext,
                "confluence": confluence,
                "canto": canto,
                "iconik": iconik,
            },
        },
        "solutions": [{"name": "orders-edi", "confluence_space": "INT"}],
        "onboarding_templates": [template or TEMPLATE],
    }
    data.update(extra)
    return OpsgateConfig.model_validate(data)


@dataclass
class OnboardingWorld:
    clock: SteppingClock
    opentext: Emulator
    confluence: Emulator
    canto: Emulator
    iconik: Emulator
    urls: dict[str, str]
    config: OpsgateConfig
    registry: ConnectorRegistry

    @property
    def ot(self) -> opentext_emulator.OpenTextState:
        return opentext_emulator.opentext_state_of(self.opentext.app)

    @property
    def wiki(self) -> confluence_emulator.ConfluenceState:
        return confluence_emulator.state_of(self.confluence.app)

    @property
    def library(self) -> canto_emulator.CantoLibrary:
        return canto_emulator.canto_library_of(self.canto.app)

    @property
    def domain(self) -> iconik_emulator.IconikDomain:
        return iconik_emulator.iconik_domain_of(self.iconik.app)

    def workflow(self, config: OpsgateConfig | None = None) -> OnboardingWorkflow:
        return OnboardingWorkflow(self.registry, config or self.config, clock=self.clock)

    def spec(
        self, name: str = "globex", env: str = "prod", config: OpsgateConfig | None = None
    ) -> ChangeSpec:
        return onboarding_spec(config or self.config, "edi-partner", name, env)

    # --- what the emulators hold --------------------------------------------------------------

    def artifacts_named(self, name: str) -> list[str]:
        return sorted(a for a in self.ot.artifacts if a.split(".", 1)[1].startswith(f"{name}-"))

    def collections_titled(self, title: str) -> list[dict[str, Any]]:
        return [c for c in self.domain.collections.values() if c["title"] == title]

    def albums_named(self, name: str) -> list[Any]:
        return [n for n in self.library.nodes.values() if n.scheme == "album" and n.name == name]

    def pages_titled(self, title: str) -> list[Any]:
        return [p for p in self.wiki.pages.values() if p.title == title]

    def storage_id(self, name: str) -> str:
        return str(self.domain.storage_named(name)["id"])


@pytest.fixture
async def onboarding() -> AsyncIterator[OnboardingWorld]:
    clock = SteppingClock()
    apps = {
        "opentext": opentext_emulator.create_app(
            clock=clock, job_seconds_per_step=None, rate_per_second=None
        ),
        "confluence": confluence_emulator.create_app(flavour="cloud"),
        "canto": canto_emulator.create_app(now=clock, monotonic=clock.monotonic),
        "iconik": iconik_emulator.create_app(now=clock, monotonic=clock.monotonic),
    }
    runners = []
    urls: dict[str, str] = {}
    for name, app in apps.items():
        runner, url = await start_app(app)
        runners.append(runner)
        urls[name] = url
    config = build_config(urls)
    registry = ConnectorRegistry(config, sleep=clock.sleep, monotonic=clock.monotonic)
    world = OnboardingWorld(
        clock=clock,
        opentext=Emulator(apps["opentext"], urls["opentext"]),
        confluence=Emulator(apps["confluence"], urls["confluence"]),
        canto=Emulator(apps["canto"], urls["canto"]),
        iconik=Emulator(apps["iconik"], urls["iconik"]),
        urls=urls,
        config=config,
        registry=registry,
    )
    try:
        yield world
    finally:
        await registry.aclose()
        for runner in runners:
            await runner.cleanup()


__all__ = ["SECRETS", "TEMPLATE", "OnboardingWorld", "build_config", "onboarding"]
