"""Canto, iconik and Confluence emulators over loopback, connectors wired to them, and fakes of the
execution context, for the release and archive workflow tests (imported by those test modules)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp import web

from bot.domain.policy import ApproverSet, PolicyRule
from bot.domain.requests import ChangeRequest, ChangeSpec, RequestStatus
from connectors.canto import CantoConnector, CantoSettings
from connectors.confluence import ConfluenceConnector, ConfluenceSettings
from connectors.emulators import canto as canto_emulator
from connectors.emulators import confluence as confluence_emulator
from connectors.emulators import iconik as iconik_emulator
from connectors.emulators.faults import FaultInjector, fault_injector_of, start_app
from connectors.http import HttpOptions
from connectors.iconik import IconikConnector, IconikSettings

NOW = datetime(2025, 3, 10, 9, 0, tzinfo=UTC)
ENV = "prod"


class FakeTime:
    """Monotonic time and sleep for every connector: polling advances it instead of waiting."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class SimulatedCrash(Exception):
    """The process 'died' while recording a step: nothing of that step was persisted."""


@dataclass
class RecordingProgress:
    steps: list[tuple[str, str, bool | None]] = field(default_factory=list)

    async def step(self, name: str, detail: str = "", *, ok: bool | None = None) -> None:
        self.steps.append((name, detail, ok))


class FakeContext:
    """ExecutionContext whose state survives a 'crash' as a job row would: JSON, last good step."""

    def __init__(
        self, *, step: str | None = None, state: dict[str, Any] | None = None, attempt: int = 1
    ) -> None:
        self._step = step
        self._state: dict[str, Any] = json.loads(json.dumps(state or {}))
        self._attempt = attempt
        self.crash_at: str | None = None
        self.recorded: list[str] = []
        self._progress = RecordingProgress()

    @property
    def step(self) -> str | None:
        return self._step

    @property
    def state(self) -> dict[str, Any]:
        return self._state

    @property
    def attempt(self) -> int:
        return self._attempt

    @property
    def progress(self) -> RecordingProgress:
        return self._progress

    async def record_step(self, step: str, **state: Any) -> None:
        if step == self.crash_at:
            raise SimulatedCrash(step)
        # A job row stores JSON: anything else in the state would fail here, as it would there.
        self._state.update(json.loads(json.dumps(state)))
        self._step = step
        self.recorded.append(step)

    def resumed(self) -> FakeContext:
        """The context the next attempt sees: the persisted step and state, nothing else."""
        return FakeContext(step=self._step, state=self._state, attempt=self._attempt + 1)


def change_request(spec: ChangeSpec, *, number: int = 1, requester: str = "U_REQUESTER") -> ChangeRequest:
    prefix = "REL" if spec.action.value == "release" else "ARC"
    return ChangeRequest(
        id=number,
        human_id=f"{prefix}-{number}",
        action=spec.action,
        target=spec.target,
        environment=spec.environment,
        parameters=dict(spec.parameters),
        params_hash=spec.hash,
        requester=requester,
        reason="partner delivery",
        status=RequestStatus.EXECUTING,
        policy=PolicyRule(
            name="media", action="*", environment="*", approvers=ApproverSet(users=("U_APPROVER",))
        ),
        emergency=False,
        created_at=NOW,
        expires_at=NOW + timedelta(days=1),
    )


@dataclass
class MediaWorld:
    canto_app: web.Application
    iconik_app: web.Application
    confluence_app: web.Application
    time: FakeTime
    canto: CantoConnector
    iconik: IconikConnector
    confluence: ConfluenceConnector

    @property
    def library(self) -> canto_emulator.CantoLibrary:
        return canto_emulator.canto_library_of(self.canto_app)

    @property
    def domain(self) -> iconik_emulator.IconikDomain:
        return iconik_emulator.iconik_domain_of(self.iconik_app)

    @property
    def wiki(self) -> confluence_emulator.ConfluenceState:
        return confluence_emulator.state_of(self.confluence_app)

    @property
    def iconik_faults(self) -> FaultInjector:
        return fault_injector_of(self.iconik_app)

    def canto_ref(self, name: str) -> str:
        record = self.library.assets[canto_emulator.seed_asset_id(name)]
        return f"{record.scheme}:{record.id}"

    def iconik_asset(self, name: str) -> dict[str, Any]:
        return next(a for a in self.domain.assets.values() if a["title"] == name)

    def storage_id(self, name: str) -> str:
        return str(self.domain.storage_named(name)["id"])

    def view_id(self, name: str) -> str:
        return next(v["id"] for v in self.domain.views.values() if v["name"] == name)

    def files_on(self, asset_id: str, storage: str) -> list[dict[str, Any]]:
        return [f for f in self.domain.files.get(asset_id, []) if f["storage_id"] == self.storage_id(storage)]

    def transfer_requests(self) -> list[dict[str, Any]]:
        return [seen for seen in self.iconik_faults.requests if seen["path"].endswith("/bulk/")]

    def page(self, space: str, title: str) -> Any:
        space_row = self.wiki.space_by_key(space)
        assert space_row is not None
        return self.wiki.page_by_title(space_row.id, title)


@pytest.fixture
async def media() -> AsyncIterator[MediaWorld]:
    time = FakeTime()
    canto_app = canto_emulator.create_app(now=lambda: NOW, monotonic=time.monotonic)
    iconik_app = iconik_emulator.create_app(now=lambda: NOW, monotonic=time.monotonic)
    confluence_app = confluence_emulator.create_app(flavour="cloud", monotonic=time.monotonic)
    runners = []
    urls = []
    for app in (canto_app, iconik_app, confluence_app):
        runner, url = await start_app(app)
        runners.append(runner)
        urls.append(url)
    http = HttpOptions(max_retries=1, backoff_initial=0.1)
    canto = CantoConnector(
        CantoSettings(
            base_url=urls[0],
            oauth_url=urls[0],
            app_id=canto_emulator.DEFAULT_APP_ID,
            app_secret=canto_emulator.DEFAULT_APP_SECRET,
            http=http,
        ),
        sleep=time.sleep,
        monotonic=time.monotonic,
        now=lambda: NOW,
    )
    iconik = IconikConnector(
        IconikSettings(
            base_url=urls[1],
            app_id=iconik_emulator.DEFAULT_APP_ID,
            auth_token=iconik_emulator.DEFAULT_AUTH_TOKEN,
            http=http,
        ),
        sleep=time.sleep,
        monotonic=time.monotonic,
    )
    confluence = ConfluenceConnector(
        ConfluenceSettings(
            flavour="cloud",
            base_url=urls[2],
            email=confluence_emulator.DEFAULT_EMAIL,
            api_token=confluence_emulator.DEFAULT_API_TOKEN,
            http=http,
        ),
        sleep=time.sleep,
        monotonic=time.monotonic,
    )
    try:
        yield MediaWorld(canto_app, iconik_app, confluence_app, time, canto, iconik, confluence)
    finally:
        for connector in (canto, iconik, confluence):
            await connector.aclose()
        for runner in runners:
            await runner.cleanup()
