"""Inbound Canto and iconik webhooks over real HTTP, recorded on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx
import pytest
from aiohttp import web
from pydantic import SecretStr, ValidationError
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config.opsgate import ConfigError, parse_config
from bot.config.webhooks import AlertAction, NotifyAction, ReleaseAction, WebhookActionRule, WebhookSettings
from bot.db.models import Job
from bot.db.webhook_models import WebhookDeliveryRow
from bot.domain.requests import FrozenClock
from bot.jobs.queue import JobQueue
from bot.web.webhooks import WebhookDelivery, add_webhook_routes, plan_webhook_actions
from connectors.emulators.faults import start_app

CANTO_TOKEN = "canto-secure-token-7f3a"
ICONIK_SECRET = "iconik-hook-secret-91c2"
HEADER = "X-Opsgate-Webhook-Token"


def canto_body(**overrides: Any) -> dict[str, Any]:
    body = {
        "id": "abc123",
        "scheme": "image",
        "displayname": "trail-runner-x-hero-front.jpg",
        "album": "Spring Launch 2025",
        "event": "Update Metadata",
        "time": "20250310090000000",
        "secure_token": CANTO_TOKEN,
    }
    body.update(overrides)
    return body


def iconik_body(**overrides: Any) -> dict[str, Any]:
    body = {
        "system_domain_id": "d-1",
        "object_id": "asset-1",
        "user_id": "u-1",
        "realm": "metadata",
        "operation": "update",
        "event_type": "assets",
        "request_id": "req-0001",
        "data": {"metadata_values": {"release_status": {"field_values": [{"value": "approved"}]}}},
    }
    body.update(overrides)
    return body


@dataclass
class Hooks:
    client: httpx.AsyncClient
    sessions: Any
    clock: FrozenClock
    delivered: list[WebhookDelivery] = field(default_factory=list)
    fail_next: bool = False

    async def rows(self) -> list[WebhookDeliveryRow]:
        async with self.sessions() as session:
            return list(
                (await session.scalars(select(WebhookDeliveryRow).order_by(WebhookDeliveryRow.id))).all()
            )

    async def jobs(self) -> int:
        async with self.sessions() as session:
            return int(await session.scalar(select(func.count()).select_from(Job)) or 0)

    async def canto(self, body: dict[str, Any]) -> httpx.Response:
        return await self.client.post("/webhooks/canto", json=body)

    async def iconik(self, body: dict[str, Any], headers: dict[str, str] | None = None) -> httpx.Response:
        sent = {HEADER: ICONIK_SECRET} if headers is None else headers
        return await self.client.post("/webhooks/iconik", json=body, headers=sent)


def settings(**overrides: Any) -> WebhookSettings:
    values: dict[str, Any] = {
        "canto_secure_token": SecretStr(CANTO_TOKEN),
        "iconik_secret": SecretStr(ICONIK_SECRET),
    }
    values.update(overrides)
    return WebhookSettings(**values)


async def serve(database: Any, webhook_settings: WebhookSettings) -> AsyncIterator[Hooks]:
    clock = FrozenClock()
    queue = JobQueue(clock)
    hooks: Hooks

    async def on_delivery(session: AsyncSession, delivery: WebhookDelivery) -> None:
        # Queues work in the delivery's transaction, as the bot's handler does.
        await queue.enqueue(session, kind="webhook.plan", payload={"delivery": delivery.id})
        if hooks.fail_next:
            hooks.fail_next = False
            raise RuntimeError("handler broke")
        hooks.delivered.append(delivery)

    app = web.Application()
    add_webhook_routes(
        app, settings=webhook_settings, sessions=database.sessions, clock=clock, on_delivery=on_delivery
    )
    runner, url = await start_app(app)
    async with httpx.AsyncClient(base_url=url) as client:
        hooks = Hooks(client, database.sessions, clock)
        yield hooks
    await runner.cleanup()


@pytest.fixture
async def hooks(database: Any) -> AsyncIterator[Hooks]:
    async for running in serve(database, settings()):
        yield running


# -- Canto ------------------------------------------------------------------------------------------


async def test_a_canto_delivery_with_the_secure_token_is_recorded_and_handled(hooks: Hooks) -> None:
    response = await hooks.canto(canto_body())

    assert response.status_code == 202
    assert response.json()["status"] == "accepted"
    [row] = await hooks.rows()
    assert (row.source, row.event_type, row.object_id) == ("canto", "Update Metadata", "image:abc123")
    assert row.delivery_id == response.json()["delivery_id"]
    assert "secure_token" not in row.payload and row.payload["displayname"] == "trail-runner-x-hero-front.jpg"
    assert row.received_at == hooks.clock.now and row.processed_at == hooks.clock.now
    [delivery] = hooks.delivered
    assert (delivery.id, delivery.object_id) == (row.id, "image:abc123")
    assert await hooks.jobs() == 1


async def test_a_repeated_canto_delivery_answers_200_and_is_recorded_once(hooks: Hooks) -> None:
    first = await hooks.canto(canto_body())
    hooks.clock.advance(timedelta(seconds=30))
    again = await hooks.canto(canto_body())

    assert (first.status_code, again.status_code) == (202, 200)
    assert again.json() == {"status": "duplicate", "delivery_id": first.json()["delivery_id"]}
    assert len(await hooks.rows()) == 1
    assert len(hooks.delivered) == 1
    assert await hooks.jobs() == 1


async def test_two_edits_of_one_canto_asset_are_two_deliveries(hooks: Hooks) -> None:
    await hooks.canto(canto_body())
    second = await hooks.canto(canto_body(time="20250310091500000"))

    assert second.status_code == 202
    assert len(await hooks.rows()) == 2


@pytest.mark.parametrize(
    ("token", "error"),
    [("wrong-token", "bad_token"), ("", "missing_token"), (None, "missing_token")],
)
async def test_a_canto_delivery_without_the_right_token_is_refused_and_not_recorded(
    hooks: Hooks, token: str | None, error: str, caplog: pytest.LogCaptureFixture
) -> None:
    body = canto_body(secure_token=token)
    if token is None:
        del body["secure_token"]

    with caplog.at_level(logging.WARNING, logger="opsgate.webhooks"):
        response = await hooks.canto(body)

    assert response.status_code == 401
    assert response.json() == {"error": error}
    assert await hooks.rows() == []
    assert hooks.delivered == []
    assert "wrong-token" not in caplog.text and CANTO_TOKEN not in caplog.text


async def test_a_canto_delivery_missing_the_asset_id_answers_400_naming_it(hooks: Hooks) -> None:
    body = canto_body()
    del body["id"]

    response = await hooks.canto(body)

    assert response.status_code == 400
    assert response.json() == {"error": "invalid_field", "field": "id"}
    assert await hooks.rows() == []


async def test_a_body_that_is_not_json_answers_400(hooks: Hooks) -> None:
    response = await hooks.client.post("/webhooks/canto", content=b"id=abc&secure_token=x")

    assert response.status_code == 400
    assert response.json() == {"error": "malformed_body", "field": "body"}


# -- iconik -----------------------------------------------------------------------------------------


async def test_an_iconik_delivery_with_the_secret_header_is_recorded_and_handled(hooks: Hooks) -> None:
    response = await hooks.iconik(iconik_body())

    assert response.status_code == 202
    [row] = await hooks.rows()
    assert (row.source, row.delivery_id, row.event_type, row.object_id) == (
        "iconik",
        "req-0001",
        "assets",
        "asset-1",
    )
    assert row.payload["realm"] == "metadata"
    [delivery] = hooks.delivered
    assert (delivery.realm, delivery.operation) == ("metadata", "update")


@pytest.mark.parametrize(
    ("headers", "error"),
    [({}, "missing_token"), ({HEADER: "guess"}, "bad_token"), ({"X-Other": ICONIK_SECRET}, "missing_token")],
)
async def test_an_iconik_delivery_without_the_secret_header_is_refused_and_not_recorded(
    hooks: Hooks, headers: dict[str, str], error: str
) -> None:
    response = await hooks.iconik(iconik_body(), headers=headers)

    assert response.status_code == 401
    assert response.json() == {"error": error}
    assert await hooks.rows() == []
    assert hooks.delivered == []


async def test_an_iconik_retry_with_the_same_request_id_is_a_duplicate(hooks: Hooks) -> None:
    await hooks.iconik(iconik_body())
    retry = await hooks.iconik(iconik_body(operation="update", data={}))

    assert retry.status_code == 200
    assert len(await hooks.rows()) == 1
    assert len(hooks.delivered) == 1


async def test_an_iconik_delivery_without_a_request_id_answers_400_naming_it(hooks: Hooks) -> None:
    body = iconik_body()
    del body["request_id"]

    response = await hooks.iconik(body)

    assert response.status_code == 400
    assert response.json() == {"error": "invalid_field", "field": "request_id"}


async def test_the_iconik_header_name_is_configurable(database: Any) -> None:
    async for hooks in serve(database, settings(iconik_header_name="X-Acme-Hook")):
        refused = await hooks.iconik(iconik_body())
        accepted = await hooks.iconik(iconik_body(), headers={"x-acme-hook": ICONIK_SECRET})

        assert (refused.status_code, accepted.status_code) == (401, 202)


# -- transactions and configuration ------------------------------------------------------------------


async def test_a_failing_handler_records_nothing_so_the_retry_is_processed(hooks: Hooks) -> None:
    hooks.fail_next = True

    failed = await hooks.canto(canto_body())
    retried = await hooks.canto(canto_body())

    assert (failed.status_code, retried.status_code) == (500, 202)
    assert len(await hooks.rows()) == 1
    assert await hooks.jobs() == 1  # the first attempt's job was rolled back with its delivery
    assert len(hooks.delivered) == 1


async def test_simultaneous_copies_of_one_delivery_are_handled_once(hooks: Hooks) -> None:
    answers = await asyncio.gather(*(hooks.iconik(iconik_body()) for _ in range(4)))

    assert sorted(answer.status_code for answer in answers) == [200, 200, 200, 202]
    assert len(await hooks.rows()) == 1
    assert len(hooks.delivered) == 1


async def test_an_unconfigured_source_answers_503_and_records_nothing(database: Any) -> None:
    async for hooks in serve(database, WebhookSettings()):
        response = await hooks.canto(canto_body())

        assert response.status_code == 503
        assert response.json() == {"error": "not_configured"}
        assert await hooks.rows() == []


def test_webhook_secrets_come_from_environment_references() -> None:
    data = {
        "environments": {"prod": {}},
        "webhooks": {
            "canto_secure_token": "${CANTO_WEBHOOK_TOKEN}",
            "iconik_secret": "${ICONIK_WEBHOOK_SECRET}",
            "actions": [
                {
                    "name": "approved",
                    "source": "iconik",
                    "realm": "metadata",
                    "action": {"kind": "notify", "channel": "#media"},
                }
            ],
        },
    }
    env = {"CANTO_WEBHOOK_TOKEN": CANTO_TOKEN, "ICONIK_WEBHOOK_SECRET": ICONIK_SECRET}

    config = parse_config(data, source="opsgate.yaml", env=env)

    hooks = config.webhooks
    assert hooks.canto_secure_token is not None and hooks.canto_secure_token.get_secret_value() == CANTO_TOKEN
    assert CANTO_TOKEN not in repr(hooks)
    assert hooks.iconik_header_name == "X-Opsgate-Webhook-Token"
    assert hooks.actions[0].action == NotifyAction(channel="#media")


def test_a_webhook_secret_written_into_the_file_is_refused() -> None:
    data = {"environments": {"prod": {}}, "webhooks": {"canto_secure_token": "plain-text-token"}}

    with pytest.raises(ConfigError, match=r"webhooks\.canto_secure_token: secret values must not be written"):
        parse_config(data, source="opsgate.yaml", env={})


# -- planning ---------------------------------------------------------------------------------------


def delivery(
    source: str, payload: dict[str, Any], *, event_type: str, object_id: str | None
) -> WebhookDelivery:
    return WebhookDelivery(
        id=1,
        source=source,  # type: ignore[arg-type]
        delivery_id="d-1",
        event_type=event_type,
        object_id=object_id,
        payload=payload,
        received_at=FrozenClock().now,
    )


RULES = [
    WebhookActionRule(
        name="release-approved",
        source="iconik",
        event="assets",
        realm="metadata",
        operation="update",
        conditions={"metadata.release_status": "approved"},
        action=ReleaseAction(destination="retailer-a"),
    ),
    WebhookActionRule(name="media-feed", source="iconik", action=NotifyAction(channel="#media-feed")),
    WebhookActionRule(
        name="canto-deletes",
        source="canto",
        event="delete",
        action=AlertAction(severity="critical"),
    ),
    WebhookActionRule(
        name="spring-album",
        source="canto",
        conditions={"album": ["Spring Launch 2025", "Summer 2025"]},
        action=NotifyAction(channel="#spring"),
    ),
]


def test_an_approved_iconik_metadata_update_plans_a_release_and_a_notice() -> None:
    payload = iconik_body()

    planned = plan_webhook_actions(
        delivery("iconik", payload, event_type="assets", object_id="asset-1"), RULES
    )

    assert [(p.rule, p.kind) for p in planned] == [("release-approved", "release"), ("media-feed", "notify")]
    assert planned[0].action == ReleaseAction(destination="retailer-a")
    assert planned[0].object_id == "asset-1"
    assert planned[0].summary() == "release-approved: iconik assets on asset-1"


def test_an_iconik_update_to_another_status_only_notifies() -> None:
    payload = iconik_body(
        data={"metadata_values": {"release_status": {"field_values": [{"value": "pending"}]}}}
    )

    planned = plan_webhook_actions(delivery("iconik", payload, event_type="assets", object_id="a"), RULES)

    assert [p.rule for p in planned] == ["media-feed"]


def test_canto_rules_match_event_names_case_insensitively_and_payload_conditions() -> None:
    payload = canto_body(event="Delete", album="Spring Launch 2025")
    payload.pop("secure_token")

    planned = plan_webhook_actions(
        delivery("canto", payload, event_type="Delete", object_id="image:abc123"), RULES
    )

    assert [(p.rule, p.kind) for p in planned] == [("canto-deletes", "alert"), ("spring-album", "notify")]
    assert planned[0].action == AlertAction(severity="critical")


def test_a_delivery_no_rule_matches_plans_nothing() -> None:
    payload = canto_body(event="Upload", album="Brand")

    assert (
        plan_webhook_actions(delivery("canto", payload, event_type="Upload", object_id="image:x"), RULES)
        == []
    )


def test_a_canto_rule_cannot_match_iconik_realms() -> None:
    with pytest.raises(ValidationError, match="realm and operation only apply to iconik deliveries"):
        WebhookActionRule(
            name="x", source="canto", realm="metadata", action={"kind": "notify", "channel": "#x"}
        )


def test_rule_names_must_be_unique() -> None:
    rule = {"name": "dup", "source": "canto", "action": {"kind": "alert"}}

    with pytest.raises(ValidationError, match="webhook action names must be unique: dup"):
        WebhookSettings(actions=[rule, rule])
