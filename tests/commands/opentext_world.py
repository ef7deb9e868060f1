"""OpenText, Confluence and Vault emulators over loopback, a registry wired to them, and fakes of
the execution context, for the promotion and rotation workflow tests (imported by those modules).

One stepping clock drives everything: the OpenText emulator's time (grace periods, token
lifetimes), the connectors' monotonic clock and every sleep (job polling, retries), so tests
move time instead of waiting.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web
from sqlalchemy import inspect, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.config.opsgate import OpsgateConfig
from bot.db.engine import create_engine, create_session_factory
from bot.db.migrate import upgrade_async
from bot.domain.audit import Fingerprinter
from bot.domain.policy import ApproverSet, PolicyRule
from bot.domain.requests import ApprovalView, ChangeRequest, ChangeSpec, RequestStatus
from connectors.emulators import confluence as confluence_emulator
from connectors.emulators import opentext as opentext_emulator
from connectors.emulators import vault as vault_emulator
from connectors.emulators.faults import fault_injector_of, start_app
from connectors.registry import ConnectorRegistry
from connectors.secrets import LocalSecretStore, VaultKV2Store, VaultSettings

NOW = datetime(2025, 3, 10, 9, 0, tzinfo=UTC)
TENANT = "acme-integration"
REQUESTER = "U0REQUESTER"
APPROVER = "U0APPROVER"
NO_RETRIES = {"max_retries": 0}


class SteppingClock:
    """Wall clock, monotonic clock and sleep in one: sleeping moves time forward at once."""

    def __init__(self, now: datetime = NOW) -> None:
        self.now = now
        self.sleeps: list[float] = []

    def __call__(self) -> datetime:
        return self.now

    def monotonic(self) -> float:
        return (self.now - NOW).total_seconds() + 1000.0

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += timedelta(seconds=seconds)

    def advance(self, delta: timedelta) -> None:
        self.now += delta


class SimulatedCrash(Exception):
    """The process 'died' while recording a step: nothing of that step was persisted."""


@dataclass
class RecordingProgress:
    steps: list[tuple[str, str, bool | None]] = field(default_factory=list)

    async def step(self, name: str, detail: str = "", *, ok: bool | None = None) -> None:
        self.steps.append((name, detail, ok))

    @property
    def names(self) -> list[str]:
        return [name for name, _, _ in self.steps]

    def text(self) -> str:
        return "\n".join(f"{name}: {detail} ({ok})" for name, detail, ok in self.steps)


class FakeContext:
    """ExecutionContext whose state survives a 'crash' as a job row's would: JSON, last recorded step.

    `crash_at` makes record_step(<that step>) raise SimulatedCrash without persisting anything;
    `before_step` runs a coroutine just before a step is recorded (to inject a fault mid-run).
    """

    def __init__(
        self,
        *,
        step: str | None = None,
        state: Mapping[str, Any] | None = None,
        attempt: int = 1,
        crash_at: str | None = None,
        before_step: Mapping[str, Callable[[], Awaitable[None]]] | None = None,
    ) -> None:
        self._step = step
        self._state: dict[str, Any] = dict(state or {})
        self._attempt = attempt
        self.crash_at = crash_at
        self.before_step = dict(before_step or {})
        self.progress = RecordingProgress()
        self.recorded: list[tuple[str, dict[str, Any]]] = []
        self.persisted: tuple[str | None, str] = (step, json.dumps(self._state, sort_keys=True))

    @property
    def step(self) -> str | None:
        return self._step

    @property
    def state(self) -> dict[str, Any]:
        return self._state

    @property
    def attempt(self) -> int:
        return self._attempt

    async def record_step(self, step: str, **state: Any) -> None:
        hook = self.before_step.pop(step, None)
        if hook is not None:
            await hook()
        if step == self.crash_at:
            self.crash_at = None
            raise SimulatedCrash(step)
        self._state.update(state)
        self._step = step
        # A job payload is JSON: anything that is not would fail here, as it would in the database.
        self.persisted = (step, json.dumps(self._state, sort_keys=True))
        self.recorded.append((step, dict(state)))

    def resumed(self) -> FakeContext:
        """A new context as the next attempt would load it from the job row."""
        step, state = self.persisted
        return FakeContext(step=step, state=json.loads(state), attempt=self._attempt + 1)


def make_request(
    spec: ChangeSpec,
    *,
    human_id: str = "PRM-1",
    reason: str = "Partner GLOBEX needs the delivery notes mapping",
    approvers: tuple[str, ...] = (APPROVER,),
    result: Mapping[str, Any] | None = None,
    preview: Mapping[str, Any] | None = None,
    now: datetime = NOW,
) -> ChangeRequest:
    rule = PolicyRule(
        name="test", action="*", environment="*", approvers=ApproverSet(users=(APPROVER, "U0OTHER"))
    )
    return ChangeRequest(
        id=1,
        human_id=human_id,
        action=spec.action,
        target=spec.target,
        environment=spec.environment,
        parameters=dict(spec.parameters),
        params_hash=spec.hash,
        requester=REQUESTER,
        reason=reason,
        status=RequestStatus.EXECUTING,
        policy=rule,
        emergency=False,
        created_at=now - timedelta(hours=1),
        expires_at=now + timedelta(days=1),
        approvals=tuple(ApprovalView(a, now - timedelta(minutes=30), spec.hash) for a in approvers),
        result=result,
        preview=preview,
    )


@dataclass
class Emulator:
    app: web.Application
    url: str

    async def control(self, method: str, path: str, body: Any = None) -> Any:
        async with httpx.AsyncClient(base_url=self.url) as client:
            response = await client.request(method, path, json=body)
            response.raise_for_status()
            return response.json() if response.content else None

    async def fault(self, **spec: Any) -> None:
        await self.control("POST", "/_control/faults", spec)

    async def clear_faults(self) -> None:
        await self.control("DELETE", "/_control/faults")

    def count(self, path: str, method: str | None = None) -> int:
        """How many requests matching `path` (regex) the emulator received."""
        return fault_injector_of(self.app).count(path=path, method=method)


def unused_port_url() -> str:
    """A loopback URL where nothing listens (bound, then released)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@dataclass
class World:
    clock: SteppingClock
    opentext: Emulator
    confluence: Emulator
    vault: Emulator
    config: OpsgateConfig
    registry: ConnectorRegistry
    fingerprinter: Fingerprinter

    @property
    def ot(self) -> opentext_emulator.OpenTextState:
        return opentext_emulator.opentext_state_of(self.opentext.app)

    @property
    def wiki(self) -> confluence_emulator.ConfluenceState:
        return confluence_emulator.state_of(self.confluence.app)

    def vault_store(self, **overrides: Any) -> VaultKV2Store:
        settings: dict[str, Any] = {
            "base_url": self.vault.url,
            "token": vault_emulator.DEFAULT_TOKEN,
            "http": NO_RETRIES,
        }
        settings.update(overrides)
        return VaultKV2Store(
            VaultSettings.model_validate(settings),
            fingerprints=self.fingerprinter,
            sleep=self.clock.sleep,
            monotonic=self.clock.monotonic,
        )


def build_config(opentext_url: str, confluence_url: str, *, unreachable_url: str) -> OpsgateConfig:
    def opentext(url: str) -> dict[str, Any]:
        return {
            "base_url": url,
            "tenant_id": TENANT,
            "client_id": "opsgate-svc",
            "client_secret": "opsgate-svc-secret",
            "job_poll_interval": 2,
            "http": {**NO_RETRIES, "connect_timeout": 1},
        }

    confluence = {
        "flavour": "cloud",
        "base_url": confluence_url,
        "email": confluence_emulator.DEFAULT_EMAIL,
        "api_token": confluence_emulator.DEFAULT_API_TOKEN,
        "http": NO_RETRIES,
    }
    return OpsgateConfig.model_validate(
        {
            "environments": {
                "dev": {"opentext": opentext(opentext_url)},
                "test": {"opentext": opentext(opentext_url)},
                "prod": {"production": True, "opentext": opentext(opentext_url), "confluence": confluence},
                "dr": {"opentext": opentext(unreachable_url)},
                "sandbox": {},
            },
            "solutions": [
                {
                    "name": "orders-edi",
                    "confluence_space": "INT",
                    "downstream_systems": ["SAP S/4HANA order intake", "Partner portal <EU> & US"],
                    "artifacts": ["orders-edi.orders-d96a-to-xml", "orders-edi.orders-inbound-api"],
                },
                {"name": "invoices", "downstream_systems": ["Invoice archive (SFTP)"]},
            ],
            "credentials": [
                {
                    "name": "orders-edi-prod",
                    "environment": "prod",
                    "credential_id": "orders-edi-prod-client",
                    "owner": "U0ORDERS",
                    "owner_channel": "C0ORDERS",
                    "schedule": "90d",
                    "grace_period": "24h",
                    "store": "local",
                },
                {
                    "name": "invoices-prod",
                    "environment": "prod",
                    "credential_id": "invoices-prod-client",
                    "owner": "U0INVOICES",
                    "schedule": "0 3 * * 1",
                    "grace_period": "2h",
                    "store": "vault",
                    "expiry_warnings_days": [30, 7],
                },
                {
                    "name": "legacy-ftp",
                    "environment": "prod",
                    "credential_id": "legacy-ftp-bridge",
                    "owner": "U0OPS",
                    "schedule": "30d",
                },
            ],
        }
    )


@pytest.fixture
async def world() -> AsyncIterator[World]:
    clock = SteppingClock()
    opentext_app = opentext_emulator.create_app(clock=clock, job_seconds_per_step=None, rate_per_second=None)
    confluence_app = confluence_emulator.create_app(flavour="cloud")
    vault_app = vault_emulator.create_app(clock=clock)
    runners = []
    urls = []
    for app in (opentext_app, confluence_app, vault_app):
        runner, url = await start_app(app)
        runners.append(runner)
        urls.append(url)
    config = build_config(urls[0], urls[1], unreachable_url=unused_port_url())
    registry = ConnectorRegistry(config, sleep=clock.sleep, monotonic=clock.monotonic)
    world = World(
        clock=clock,
        opentext=Emulator(opentext_app, urls[0]),
        confluence=Emulator(confluence_app, urls[1]),
        vault=Emulator(vault_app, urls[2]),
        config=config,
        registry=registry,
        fingerprinter=Fingerprinter(b"test-fingerprint-key-0123456789"),
    )
    try:
        yield world
    finally:
        await registry.aclose()
        for runner in runners:
            await runner.cleanup()


@dataclass
class SqliteDatabase:
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]

    async def dump(self) -> str:
        """Every value of every row of every table, as one text (for leak scans)."""
        async with self.engine.connect() as conn:
            tables = await conn.run_sync(lambda sync: inspect(sync).get_table_names())
            parts = []
            for name in tables:
                for row in (await conn.execute(text(f'SELECT * FROM "{name}"'))).all():
                    parts.append(repr(tuple(row)))
                    parts.extend(str(value) for value in row)
        return "\n".join(parts)


@pytest.fixture
async def sqlite_db(tmp_path: Path) -> AsyncIterator[SqliteDatabase]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'opsgate.db'}")
    await upgrade_async(engine)
    try:
        yield SqliteDatabase(engine, create_session_factory(engine))
    finally:
        await engine.dispose()


def local_store(db: SqliteDatabase, world: World, key: bytes) -> LocalSecretStore:
    return LocalSecretStore(db.sessions, keys=key, fingerprints=world.fingerprinter, clock=world.clock)


__all__ = [
    "APPROVER",
    "NOW",
    "REQUESTER",
    "FakeContext",
    "SimulatedCrash",
    "SqliteDatabase",
    "SteppingClock",
    "World",
    "local_store",
    "make_request",
    "sqlite_db",
    "unused_port_url",
    "world",
]
