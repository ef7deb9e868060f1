"""Asset requests over real HTTP: caller -> opsgate -> Canto emulator -> webhook -> signed callback.

The caller, Canto's webhook and the callback receiver all talk to opsgate over loopback; jobs
run through the real JobRunner on SQLite and PostgreSQL, Slack messages through the outbox to
the Slack emulator. Time moves only when a test advances the clock.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web
from pydantic import SecretStr, ValidationError
from sqlalchemy import func, select

from bot.asset_requests import (
    DELIVERY_HEADER,
    EVENT_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    AssetRequests,
    AssetRequestSettings,
    CallbackGaveUp,
    add_asset_request_routes,
    callback_allowed,
    sign_callback,
    verify_callback_signature,
    wire_asset_requests,
)
from bot.config.opsgate import ConfigError, Settings, parse_config
from bot.config.webhooks import WebhookSettings
from bot.db.asset_request_models import AssetRequestRow
from bot.db.audit_log import verify_chain
from bot.db.models import AuditEvent, Job
from bot.domain.audit import Fingerprinter
from bot.domain.requests import FrozenClock
from bot.jobs.outbox import Outbox, OutboxDelivery
from bot.jobs.queue import JobQueue, JobRunner
from bot.web.webhooks import add_webhook_routes
from bot.wiring.root import wire
from bot.wiring.service import build_service
from commands.parsing import OpsArgs, OpsSub
from connectors.canto import CantoAssetRef, CantoConnector, CantoPropertyUpdate, CantoSettings
from connectors.emulators.canto import (
    DEFAULT_APP_ID,
    DEFAULT_APP_SECRET,
    CantoLibrary,
    canto_library_of,
    seed_asset_id,
)
from connectors.emulators.canto import create_app as create_canto
from connectors.emulators.faults import start_app
from connectors.http import HttpOptions

from .conftest import SlackEmulator

API_TOKEN = "asset-requests-api-token-5d1e"
SIGNING_SECRET = "callback-signing-secret-8c2f"
CANTO_TOKEN = "canto-secure-token-7f3a"
CHANNEL = "C_APPROVALS"
PARENT = "Campaigns/2025"
# For requests refused before any row is written: the backend makes no difference.
SQLITE_ONLY = pytest.mark.parametrize("database", ["sqlite"], indirect=True)


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    signature_valid: bool

    @property
    def json(self) -> dict[str, Any]:
        return dict(json.loads(self.body))


@dataclass
class CallbackReceiver:
    """A requester's endpoint: checks each delivery's signature as a real receiver would."""

    clock: FrozenClock
    answers: list[int] = field(default_factory=list)  # statuses to give, in order; then 200
    received: list[Received] = field(default_factory=list)
    port: int = 0
    _runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/opsgate"

    @property
    def prefix(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/"

    async def start(self) -> None:
        async def hook(request: web.Request) -> web.Response:
            body = await request.read()
            valid = verify_callback_signature(
                SIGNING_SECRET,
                body=body,
                timestamp=request.headers.get(TIMESTAMP_HEADER, ""),
                signature=request.headers.get(SIGNATURE_HEADER, ""),
                now=self.clock().timestamp(),
            )
            self.received.append(Received(dict(request.headers), body, valid))
            return web.Response(status=self.answers.pop(0) if self.answers else 200)

        app = web.Application()
        app.router.add_post("/hooks/opsgate", hook)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


@dataclass
class World:
    api: httpx.AsyncClient
    sessions: Any
    engine: Any
    clock: FrozenClock
    canto_app: web.Application
    canto: CantoConnector
    runner: JobRunner
    delivery: OutboxDelivery
    slack: SlackEmulator
    requests: AssetRequests
    receiver: CallbackReceiver
    gave_up: list[CallbackGaveUp]
    canto_url: str
    _times: Any = field(default_factory=lambda: itertools.count(1))

    @property
    def library(self) -> CantoLibrary:
        return canto_library_of(self.canto_app)

    async def ask(
        self, body: dict[str, Any], *, authorization: str | None = f"Bearer {API_TOKEN}"
    ) -> httpx.Response:
        headers = {"Authorization": authorization} if authorization is not None else {}
        return await self.api.post("/requests/assets", json=body, headers=headers)

    async def status(self, ref: str) -> dict[str, Any]:
        response = await self.api.get(
            f"/requests/assets/{ref}", headers={"Authorization": f"Bearer {API_TOKEN}"}
        )
        assert response.status_code == 200, response.text
        return dict(response.json())

    async def run_jobs(self) -> None:
        await self.runner.drain()

    async def slack_texts(self) -> list[str]:
        for _ in range(5):
            await self.delivery.deliver_due()
        return [message.text for message in self.slack.workspace.messages(CHANNEL)]

    async def upload(self, album_id: str, name: str) -> dict[str, Any]:
        """A supplier uploads a file into the request's album (Canto then calls the webhook)."""
        async with httpx.AsyncClient() as client:
            response = await client.post(
                f"{self.canto_url}/_control/canto/upload", json={"album_id": album_id, "name": name}
            )
        assert response.status_code == 201, response.text
        return dict(response.json())

    async def approve_in_canto(self, asset: dict[str, Any]) -> None:
        ref = self.canto_ref(asset)
        await self.canto.update_properties(
            [ref], [CantoPropertyUpdate(propertyId="approvalStatus", propertyValue="Approved")]
        )

    @staticmethod
    def canto_ref(asset: dict[str, Any]) -> CantoAssetRef:
        return CantoAssetRef(id=asset["id"], scheme=asset["scheme"], displayName=asset["name"])

    async def canto_webhook(
        self, asset: dict[str, Any], event: str, *, album: str | None = None
    ) -> httpx.Response:
        body: dict[str, Any] = {
            "id": asset["id"],
            "scheme": asset["scheme"],
            "displayname": asset["name"],
            "event": event,
            "time": f"2026112412{next(self._times):05d}",
            "secure_token": CANTO_TOKEN,
        }
        if album is not None:
            body["album"] = album
        return await self.api.post("/webhooks/canto", json=body)

    async def rows(self) -> list[AssetRequestRow]:
        async with self.sessions() as session:
            return list((await session.scalars(select(AssetRequestRow).order_by(AssetRequestRow.id))).all())

    async def jobs(self, kind: str | None = None) -> list[Job]:
        async with self.sessions() as session:
            query = select(Job).order_by(Job.id)
            if kind is not None:
                query = query.where(Job.kind == kind)
            return list((await session.scalars(query)).all())


WorldFactory = Callable[..., Awaitable[World]]


@pytest.fixture
async def make_world(
    database: Any, slack: SlackEmulator, clock: FrozenClock, fingerprinter: Fingerprinter
) -> AsyncIterator[WorldFactory]:
    async with AsyncExitStack() as stack:

        async def build(
            *, receiver_up: bool = True, answers: list[int] | None = None, **overrides: Any
        ) -> World:
            receiver = CallbackReceiver(clock, answers=list(answers or []))
            await receiver.start()
            stack.push_async_callback(receiver.stop)
            if not receiver_up:
                await receiver.stop()  # the port stays known: it refuses connections until restarted
            values: dict[str, Any] = {
                "api_token": SecretStr(API_TOKEN),
                "canto_environment": "prod",
                "album_parent": PARENT,
                "callback_signing_secret": SecretStr(SIGNING_SECRET),
                "allowed_callback_prefixes": [receiver.prefix],
                "tags": ["opsgate-request"],
                "callback_max_attempts": 4,
            }
            values.update(overrides)
            settings = AssetRequestSettings(**values)

            canto_app = create_canto(now=clock)
            canto_runner, canto_url = await start_app(canto_app)
            stack.push_async_callback(canto_runner.cleanup)
            canto = CantoConnector(
                CantoSettings(base_url=canto_url, oauth_url=canto_url, app_id=DEFAULT_APP_ID,
                              app_secret=DEFAULT_APP_SECRET, http=HttpOptions(max_retries=0)),
                now=clock,
            )  # fmt: skip
            stack.push_async_callback(canto.aclose)
            http = httpx.AsyncClient()
            stack.push_async_callback(http.aclose)

            jobs, outbox = JobQueue(clock), Outbox(clock)
            gave_up: list[CallbackGaveUp] = []

            async def give_up(failed: CallbackGaveUp) -> None:
                gave_up.append(failed)

            requests = AssetRequests(
                settings, sessions=database.sessions, clock=clock, jobs=jobs, outbox=outbox,
                canto=lambda: canto, http=http, fingerprinter=fingerprinter, slack_channel=CHANNEL,
                on_give_up=give_up,
            )  # fmt: skip
            app = web.Application()
            add_asset_request_routes(app, settings=settings, sessions=database.sessions, clock=clock, jobs=jobs,
                                     fingerprinter=fingerprinter)  # fmt: skip
            add_webhook_routes(
                app,
                settings=WebhookSettings(canto_secure_token=SecretStr(CANTO_TOKEN)),
                sessions=database.sessions,
                clock=clock,
                on_delivery=requests.on_canto_delivery,
            )
            bot_runner, bot_url = await start_app(app)
            stack.push_async_callback(bot_runner.cleanup)
            api = httpx.AsyncClient(base_url=bot_url)
            stack.push_async_callback(api.aclose)
            runner = JobRunner(database.sessions, requests.job_handlers(), clock, jitter=lambda: 0.0)
            delivery = OutboxDelivery(database.sessions, slack.client, clock)
            return World(api, database.sessions, database.engine, clock, canto_app, canto, runner, delivery, slack,
                         requests, receiver, gave_up, canto_url)  # fmt: skip

        yield build


def request_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "system": "jira",
        "external_id": "MKT-812",
        "title": "Hero shot for the spring newsletter",
        "description": "Landscape, 3000 px wide, product on a trail.",
        "requested_by": "dana@acme.example",
        "due_date": "2026-12-01",
        "tags": ["spring"],
        "fields": {"Campaign": "Spring Launch 2025"},
    }
    body.update(overrides)
    return body


async def open_request(world: World, **overrides: Any) -> tuple[str, str]:
    """POST a request and run the Canto set-up; returns (request id, album id)."""
    response = await world.ask(request_body(**overrides))
    assert response.status_code == 202, response.text
    ref = response.json()["id"]
    await world.run_jobs()
    status = await world.status(ref)
    assert status["status"] == "open", status
    return ref, status["canto"]["album_id"]


# -- intake -----------------------------------------------------------------------------------------


async def test_a_request_opens_an_album_in_canto_named_and_described_with_its_id(
    make_world: WorldFactory,
) -> None:
    world = await make_world()

    response = await world.ask(request_body())

    assert response.status_code == 202
    assert response.json() == {"id": "AR-1", "status": "requested", "status_url": "/requests/assets/AR-1"}
    assert response.headers["Location"] == "/requests/assets/AR-1"
    await world.run_jobs()
    status = await world.status("AR-1")
    assert status["status"] == "open"
    album = world.library.nodes[status["canto"]["album_id"]]
    assert album.scheme == "album" and album.name == "AR-1 Hero shot for the spring newsletter"
    assert world.library.nodes[album.parent_id or ""].name == "2025"
    assert "AR-1" in album.description and "jira MKT-812" in album.description
    assert status["canto"]["album_path"] == "Campaigns/2025/AR-1 Hero shot for the spring newsletter"
    [posted] = await world.slack_texts()
    assert "AR-1" in posted and "Campaigns/2025/AR-1 Hero shot" in posted and "Due 2026-12-01" in posted


async def test_the_same_external_id_twice_is_one_request_and_a_different_body_is_a_conflict(
    make_world: WorldFactory,
) -> None:
    world = await make_world()

    first = await world.ask(request_body())
    again = await world.ask(request_body())
    changed = await world.ask(request_body(title="Another shot"))
    other_system = await world.ask(request_body(system="servicenow"))

    assert (first.status_code, again.status_code) == (202, 200)
    assert again.json()["id"] == first.json()["id"] == "AR-1"
    assert changed.status_code == 409 and changed.json()["field"] == "external_id"
    assert other_system.status_code == 202 and other_system.json()["id"] == "AR-2"
    assert len(await world.rows()) == 2
    assert len(await world.jobs("asset_request.canto_setup")) == 2


@SQLITE_ONLY
@pytest.mark.parametrize("authorization", [None, "Bearer wrong-token", "Bearer", f"Basic {API_TOKEN}"])
async def test_a_request_without_the_bearer_token_is_refused_and_nothing_is_stored(
    make_world: WorldFactory, authorization: str | None, caplog: pytest.LogCaptureFixture
) -> None:
    world = await make_world()

    with caplog.at_level(logging.DEBUG):
        response = await world.ask(request_body(), authorization=authorization)
    lookup = await world.api.get("/requests/assets/AR-1", headers={"Authorization": "Bearer nope"})

    assert response.status_code == 401 and response.json() == {"error": "unauthorized"}
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert lookup.status_code == 401
    assert await world.rows() == [] and await world.jobs() == []
    assert "wrong-token" not in caplog.text and API_TOKEN not in caplog.text


@SQLITE_ONLY
@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({k: v for k, v in request_body().items() if k != "title"}, "title"),
        (request_body(title=""), "title"),
        (request_body(system="jira tickets"), "system"),
        (request_body(callbackUrl="http://127.0.0.1/x"), "callbackUrl"),
        (request_body(callback_url="https://evil.example/hooks/opsgate"), "callback_url"),
        (request_body(due_date="next friday"), "due_date"),
        (request_body(tags=["ok", "a,b"]), "tags.1"),
        (request_body(fields={"Opsgate Request": "AR-99"}), "fields.Opsgate Request"),
        ([request_body()], "body"),
    ],
)
async def test_an_invalid_request_answers_400_naming_the_field_at_fault(
    make_world: WorldFactory, body: Any, field: str
) -> None:
    world = await make_world()

    response = await world.api.post(
        "/requests/assets", json=body, headers={"Authorization": f"Bearer {API_TOKEN}"}
    )

    assert response.status_code == 400, response.text
    assert response.json()["field"] == field
    assert response.json()["message"]
    assert await world.rows() == []


@SQLITE_ONLY
async def test_a_body_that_is_not_json_answers_400(make_world: WorldFactory) -> None:
    world = await make_world()

    response = await world.api.post(
        "/requests/assets", content=b"{not json", headers={"Authorization": f"Bearer {API_TOKEN}"}
    )

    assert response.status_code == 400
    assert response.json()["error"] == "malformed_body" and response.json()["field"] == "body"


@SQLITE_ONLY
async def test_an_unknown_request_id_is_404(make_world: WorldFactory) -> None:
    world = await make_world()
    headers = {"Authorization": f"Bearer {API_TOKEN}"}

    assert (await world.api.get("/requests/assets/AR-41", headers=headers)).status_code == 404
    assert (await world.api.get("/requests/assets/PRM-1", headers=headers)).status_code == 404


# -- fulfilment and callbacks --------------------------------------------------------------------------


async def test_an_approved_upload_fulfils_the_request_and_the_callback_carries_a_valid_signature(
    make_world: WorldFactory,
) -> None:
    world = await make_world()
    ref, album_id = await open_request(world, callback_url=world.receiver.url)

    asset = await world.upload(album_id, "spring-hero-trail.jpg")
    uploaded = await world.canto_webhook(asset, "Upload", album=album_id)
    await world.run_jobs()

    assert uploaded.status_code == 202
    stamped = world.library.assets[asset["id"]]
    assert stamped.additional["Opsgate Request"] == ref
    assert stamped.additional["Campaign"] == "Spring Launch 2025"
    assert {"opsgate-request", "spring"} <= set(stamped.tag)
    assert (await world.status(ref))["status"] == "open"  # uploaded, not yet approved
    assert world.receiver.received == []

    await world.approve_in_canto(asset)
    approved = await world.canto_webhook(asset, "Update Metadata")  # no album: found by the asset
    await world.run_jobs()

    assert approved.status_code == 202
    status = await world.status(ref)
    assert status["status"] == "fulfilled"
    assert status["asset"] == {"scheme": "image", "id": asset["id"], "name": "spring-hero-trail.jpg"}
    assert status["callback"]["status"] == "delivered" and status["callback"]["attempts"] == 1
    [callback] = world.receiver.received
    assert callback.signature_valid
    assert callback.headers[EVENT_HEADER] == "asset_request.fulfilled"
    assert callback.headers[DELIVERY_HEADER] == f"{ref}.fulfilled"
    assert callback.json["request"]["id"] == ref and callback.json["request"]["external_id"] == "MKT-812"
    assert callback.json["request"]["asset"]["id"] == asset["id"]
    texts = await world.slack_texts()
    assert any("uploaded; waiting for its approval" in text for text in texts)
    assert any(f"*{ref}* fulfilled" in text and "spring-hero-trail.jpg" in text for text in texts)
    checked, problem = await verify_chain(world.engine)
    assert problem is None and checked == 4  # created, opened, fulfilled, callback delivered


async def test_an_album_left_behind_by_a_lost_answer_is_reused(make_world: WorldFactory) -> None:
    world = await make_world()
    response = await world.ask(request_body())
    parent = next(n for n in world.library.nodes.values() if n.name == "2025")
    earlier = world.library.add_node("AR-1 Hero shot for the spring newsletter", "album", parent.id)

    await world.run_jobs()

    status = await world.status(response.json()["id"])
    assert status["status"] == "open" and status["canto"]["album_id"] == earlier.id
    assert len([n for n in world.library.nodes.values() if n.name.startswith("AR-1 ")]) == 1


async def test_stamping_the_asset_triggers_no_second_edit(make_world: WorldFactory) -> None:
    world = await make_world()
    ref, album_id = await open_request(world)
    asset = await world.upload(album_id, "spring-detail.jpg")
    await world.canto_webhook(asset, "Upload", album=album_id)
    await world.run_jobs()
    modified = world.library.assets[asset["id"]].modified

    await world.canto_webhook(asset, "Update Metadata")  # Canto reporting our own stamp
    await world.run_jobs()

    assert world.library.assets[asset["id"]].modified == modified
    assert (await world.status(ref))["status"] == "open"


async def test_a_callback_endpoint_that_is_down_is_retried_and_delivered_once(
    make_world: WorldFactory,
) -> None:
    world = await make_world(receiver_up=False)
    ref, album_id = await open_request(world, callback_url=world.receiver.url)
    asset = await world.upload(album_id, "spring-hero-down.jpg")
    await world.approve_in_canto(asset)

    await world.canto_webhook(asset, "Upload", album=album_id)
    await world.run_jobs()

    status = await world.status(ref)
    assert status["status"] == "fulfilled"
    assert status["callback"]["status"] == "pending" and status["callback"]["attempts"] == 1
    assert "unreachable" in status["callback"]["last_error"]
    [job] = await world.jobs("asset_request.callback")
    assert job.status == "queued" and job.run_at > world.clock()

    await world.receiver.start()  # back up, on the same port
    await world.run_jobs()
    assert world.receiver.received == []  # not due yet: backoff
    world.clock.advance(timedelta(minutes=5))
    await world.run_jobs()
    world.clock.advance(timedelta(hours=1))
    await world.run_jobs()

    [callback] = world.receiver.received
    assert callback.signature_valid and callback.headers[DELIVERY_HEADER] == f"{ref}.fulfilled"
    status = await world.status(ref)
    assert status["callback"]["status"] == "delivered" and status["callback"]["attempts"] == 2
    assert (await world.jobs("asset_request.callback"))[0].status == "done"


async def test_a_callback_refused_every_time_gives_up_after_the_last_attempt_and_alerts(
    make_world: WorldFactory,
) -> None:
    world = await make_world(answers=[503, 500, 502], callback_max_attempts=3)
    ref, album_id = await open_request(world, callback_url=world.receiver.url)
    asset = await world.upload(album_id, "spring-hero-refused.jpg")
    await world.approve_in_canto(asset)
    await world.canto_webhook(asset, "Upload", album=album_id)

    for _ in range(4):
        await world.run_jobs()
        world.clock.advance(timedelta(minutes=10))

    assert [r.signature_valid for r in world.receiver.received] == [True, True, True]
    assert world.gave_up == [CallbackGaveUp(ref, "jira", "127.0.0.1", 3, "127.0.0.1 answered HTTP 502")]
    status = await world.status(ref)
    assert status["callback"]["status"] == "failed" and status["callback"]["attempts"] == 3
    assert (await world.jobs("asset_request.callback"))[0].status == "failed"
    async with world.sessions() as session:
        actions = (await session.scalars(select(AuditEvent.action).order_by(AuditEvent.seq))).all()
    assert actions[-1] == "asset_request.callback_failed"


async def test_a_missing_album_folder_fails_the_request_and_tells_the_caller(
    make_world: WorldFactory,
) -> None:
    world = await make_world(album_parent="Requests/Nowhere")

    response = await world.ask(request_body(callback_url=world.receiver.url))
    await world.run_jobs()

    status = await world.status(response.json()["id"])
    assert status["status"] == "failed" and "Requests/Nowhere" in status["failure_reason"]
    [callback] = world.receiver.received
    assert callback.signature_valid and callback.json["event"] == "asset_request.failed"
    assert any("could not be set up in Canto" in text for text in await world.slack_texts())
    assert (await world.jobs("asset_request.canto_setup"))[0].status == "failed"


async def test_deliveries_about_other_assets_queue_no_work(make_world: WorldFactory) -> None:
    world = await make_world()
    await open_request(world)
    seeded = world.library.assets[seed_asset_id("trail-runner-x-hero-front.jpg")]

    response = await world.canto_webhook(
        {"id": seeded.id, "scheme": seeded.scheme, "name": seeded.name},
        "Update Metadata",
        album="Spring Launch 2025",
    )

    assert response.status_code == 202
    assert await world.jobs("asset_request.check_upload") == []


async def test_ops_requests_lists_each_request_with_its_state(make_world: WorldFactory) -> None:
    world = await make_world()
    ref, _ = await open_request(world)
    await world.ask(request_body(external_id="MKT-813", title="Cut-down <for> social"))

    reply = await world.requests.listing()

    first, second, third = reply.text.splitlines()
    assert first == "*Asset requests* (newest 2)"
    assert second.startswith("• *AR-2* requested: Cut-down &lt;for&gt; social (jira MKT-813)")
    assert third.startswith(f"• *{ref}* open: Hero shot") and "album `Campaigns/2025/AR-1" in third


# -- pieces a receiver and an operator rely on -----------------------------------------------------------


def test_the_signature_covers_timestamp_and_body_and_expires() -> None:
    body = b'{"event":"asset_request.fulfilled"}'
    signature = sign_callback(SIGNING_SECRET, body, 1_764_000_000)

    assert signature.startswith("sha256=") and len(signature) == 7 + 64
    assert verify_callback_signature(
        SIGNING_SECRET, body=body, timestamp="1764000000", signature=signature, now=1_764_000_100
    )
    assert not verify_callback_signature(
        SIGNING_SECRET, body=body + b" ", timestamp="1764000000", signature=signature, now=1_764_000_100
    )
    assert not verify_callback_signature(
        SIGNING_SECRET, body=body, timestamp="1764000001", signature=signature, now=1_764_000_100
    )
    assert not verify_callback_signature(
        "another-secret", body=body, timestamp="1764000000", signature=signature, now=1_764_000_100
    )
    assert not verify_callback_signature(
        SIGNING_SECRET, body=body, timestamp="1764000000", signature=signature, now=1_764_000_000 + 301
    )


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://hooks.acme.example/opsgate/ar", True),
        ("https://hooks.acme.example/opsgate/", True),
        ("https://hooks.acme.example/opsgate-evil/ar", False),
        ("https://hooks.acme.example.evil.io/opsgate/ar", False),
        ("http://hooks.acme.example/opsgate/ar", False),
        ("https://hooks.acme.example:8443/opsgate/ar", False),
        ("https://hooks.acme.example/opsgate/../admin", False),
        ("https://user@hooks.acme.example/opsgate/ar", False),
        ("ftp://hooks.acme.example/opsgate/ar", False),
    ],
)
def test_callbacks_go_only_under_an_allowed_prefix(url: str, allowed: bool) -> None:
    assert callback_allowed(url, ["https://hooks.acme.example/opsgate/"]) is allowed


def test_a_prefix_without_a_trailing_slash_is_refused() -> None:
    with pytest.raises(ValidationError, match="must end with '/'"):
        AssetRequestSettings(
            api_token=SecretStr("t"), canto_environment="prod", album_parent="A",
            callback_signing_secret=SecretStr("s"), allowed_callback_prefixes=["https://hooks.acme.example/opsgate"],
        )  # fmt: skip


def config(section: dict[str, Any]) -> dict[str, Any]:
    return {"environments": {"prod": {}}, "asset_requests": section}


def test_the_token_and_signing_secret_must_be_environment_references() -> None:
    section = {"api_token": "plain-token", "canto_environment": "prod", "album_parent": PARENT,
               "callback_signing_secret": "${CALLBACK_SECRET}"}  # fmt: skip

    with pytest.raises(ConfigError) as caught:
        parse_config(config(section), source="opsgate.yaml", env={"CALLBACK_SECRET": "s3cret"})

    assert "asset_requests.api_token: secret values must not be written in the file" in str(caught.value)
    section["api_token"] = "${ASSET_API_TOKEN}"
    parsed = parse_config(
        config(section), source="opsgate.yaml", env={"CALLBACK_SECRET": "s3", "ASSET_API_TOKEN": "t0k"}
    )
    assert parsed.asset_requests is not None
    assert parsed.asset_requests.api_token.get_secret_value() == "t0k"
    assert "t0k" not in repr(parsed.asset_requests)


async def test_concurrent_retries_of_one_request_store_it_once(make_world: WorldFactory) -> None:
    world = await make_world()

    answers = await asyncio.gather(*(world.ask(request_body()) for _ in range(5)))

    assert sorted(a.status_code for a in answers) == [200, 200, 200, 200, 202]
    # Every caller gets the one stored request (on PostgreSQL a losing concurrent insert may
    # consume a sequence number, so the id itself is not necessarily AR-1).
    ids = {a.json()["id"] for a in answers}
    async with world.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(AssetRequestRow)) == 1
        stored = await session.scalar(select(AssetRequestRow.id))
    assert ids == {f"AR-{stored}"}


async def test_wiring_mounts_the_api_jobs_and_ops_handlers_on_the_service(
    database: Any, clock: FrozenClock, tmp_path: Path
) -> None:
    canto_app = create_canto(now=clock)
    canto_runner, canto_url = await start_app(canto_app)
    settings = Settings(database_url=database.url, opsgate_secret_key_file=tmp_path / "key")
    canto = {"base_url": canto_url, "oauth_url": canto_url, "app_id": DEFAULT_APP_ID,
             "app_secret": "${CANTO_SECRET}", "http": {"max_retries": 0}}  # fmt: skip
    config = parse_config(
        {
            "environments": {"prod": {"canto": canto}},
            "slack": {"approvals_channel": CHANNEL},
            "asset_requests": {"api_token": "${ASSET_API_TOKEN}", "canto_environment": "prod",
                               "album_parent": PARENT, "callback_signing_secret": "${CALLBACK_SECRET}"},
        },
        source="test",
        env={"CANTO_SECRET": DEFAULT_APP_SECRET, "ASSET_API_TOKEN": API_TOKEN, "CALLBACK_SECRET": SIGNING_SECRET},
    )  # fmt: skip
    service = await build_service(
        settings, config, clock=clock, migrate=False,
        engine_kwargs={"connect_args": database.connect_args} if database.connect_args else None,
    )  # fmt: skip
    wiring = await wire(service, settings, config, env={})
    if "ops.requests" not in service.context.extras:  # until wire() itself calls it
        wire_asset_requests(service, wiring, config)
    bot_runner, bot_url = await start_app(service.web)
    try:
        async with httpx.AsyncClient(base_url=bot_url) as api:
            response = await api.post(
                "/requests/assets", json=request_body(), headers={"Authorization": f"Bearer {API_TOKEN}"}
            )
        await service.runtime.runner.drain()
        reply = await service.context.extras["ops.requests"](OpsArgs(OpsSub.REQUESTS), "U_REQ")
        audit_reply = await service.context.extras["ops.audit"](OpsArgs(OpsSub.AUDIT, asset="abc"), "U_REQ")
    finally:
        await bot_runner.cleanup()
        await service.stop(timeout=1)
        await wiring.aclose()
        await canto_runner.cleanup()

    assert response.status_code == 202
    assert "*AR-1* open: Hero shot" in reply.text
    assert audit_reply.text.startswith("No media history recorded for asset `abc`")
    assert callable(service.runtime.extras["asset_requests.on_canto_delivery"])
    assert "media_history_import" in [name for _, _, name in service.runtime._scheduled]
