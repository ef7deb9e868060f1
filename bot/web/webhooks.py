"""Inbound Canto and iconik webhooks: authenticate, deduplicate, record, and plan what follows.

    POST /webhooks/canto    Canto's shared "Secure Token" in the JSON body (`secure_token`)
    POST /webhooks/iconik   our secret in a custom header registered with the iconik webhook

Answers: 401 when the token is missing or wrong (nothing is recorded), 400 naming the field at
fault when the body is malformed, 202 for a new delivery, 200 for one already recorded (vendors
retry; the (source, delivery_id) pair is unique in `webhook_deliveries`). A new delivery is
stored, without its token, in the same transaction in which `on_delivery` runs, so the jobs it
queues and the delivery row commit together or not at all; a failing `on_delivery` answers 500
and the vendor's retry gets a second chance.

`plan_webhook_actions` is the pure part: which configured rules a delivery triggers.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from aiohttp import web
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.config.webhooks import (
    WebhookAction,
    WebhookActionRule,
    WebhookSettings,
    WebhookSource,
)
from bot.db.upsert import insert_into
from bot.db.webhook_models import WebhookDeliveryRow
from connectors.webhooks import WebhookRejected, verify_canto_delivery, verify_iconik_delivery

__all__ = [
    "DeliveryHandler",
    "PlannedAction",
    "WebhookDelivery",
    "add_webhook_routes",
    "plan_webhook_actions",
]

log = logging.getLogger("opsgate.webhooks")


# --------------------------------------------------------------------------- deliveries and plans


@dataclass(frozen=True)
class WebhookDelivery:
    """A recorded delivery, as `on_delivery` and the rules see it (no secret in `payload`)."""

    id: int
    source: WebhookSource
    delivery_id: str
    event_type: str
    object_id: str | None
    payload: Mapping[str, Any]
    received_at: datetime

    @property
    def realm(self) -> str | None:
        """iconik's realm (entity, metadata...), None for Canto."""
        value = self.payload.get("realm")
        return str(value) if value is not None and self.source == "iconik" else None

    @property
    def operation(self) -> str | None:
        """iconik's operation (create, update, delete...), None for Canto."""
        value = self.payload.get("operation")
        return str(value) if value is not None and self.source == "iconik" else None


@dataclass(frozen=True)
class PlannedAction:
    """What one matching rule asks for, for one delivery."""

    rule: str
    action: WebhookAction
    source: WebhookSource
    delivery_id: str
    event_type: str
    object_id: str | None

    @property
    def kind(self) -> Literal["notify", "release", "alert"]:
        return self.action.kind

    def summary(self) -> str:
        """One line for people: which rule fired on what."""
        what = f"{self.source} {self.event_type}" + (f" on {self.object_id}" if self.object_id else "")
        return f"{self.rule}: {what}"


def _metadata_values(payload: Mapping[str, Any], field: str) -> list[Any]:
    data = payload.get("data")
    values = data.get("metadata_values") if isinstance(data, Mapping) else None
    entry = values.get(field) if isinstance(values, Mapping) else None
    items = entry.get("field_values") if isinstance(entry, Mapping) else entry
    if not isinstance(items, list):
        return [] if items is None else [items]
    return [item.get("value") if isinstance(item, Mapping) else item for item in items]


def _path_values(payload: Mapping[str, Any], path: str) -> list[str]:
    """Every value at a dotted path; lists along the way are searched element by element."""
    if path.startswith("metadata."):
        found = _metadata_values(payload, path.removeprefix("metadata."))
    else:
        found = [payload]
        for part in path.split("."):
            step: list[Any] = []
            for node in found:
                if isinstance(node, list):
                    node_items = node
                else:
                    node_items = [node]
                for item in node_items:
                    if isinstance(item, Mapping) and part in item:
                        step.append(item[part])
            found = step
    flat: list[str] = []
    for value in found:
        for item in value if isinstance(value, list) else [value]:
            if item is not None and not isinstance(item, Mapping | list):
                flat.append(str(item))
    return flat


def _same(expected: str | None, actual: str | None) -> bool:
    return expected is None or (actual is not None and expected.casefold() == actual.casefold())


def _rule_matches(rule: WebhookActionRule, delivery: WebhookDelivery) -> bool:
    if rule.source != delivery.source:
        return False
    if not (
        _same(rule.event, delivery.event_type)
        and _same(rule.realm, delivery.realm)
        and _same(rule.operation, delivery.operation)
    ):
        return False
    for path, wanted in rule.conditions.items():
        accepted = {wanted} if isinstance(wanted, str) else set(wanted)
        if not accepted.intersection(_path_values(delivery.payload, path)):
            return False
    return True


def plan_webhook_actions(
    delivery: WebhookDelivery, rules: Sequence[WebhookActionRule]
) -> list[PlannedAction]:
    """The actions of every rule the delivery matches, in rule order."""
    return [
        PlannedAction(
            rule=rule.name,
            action=rule.action,
            source=delivery.source,
            delivery_id=delivery.delivery_id,
            event_type=delivery.event_type,
            object_id=delivery.object_id,
        )
        for rule in rules
        if _rule_matches(rule, delivery)
    ]


# --------------------------------------------------------------------------- HTTP


DeliveryHandler = Callable[[AsyncSession, WebhookDelivery], Awaitable[None]]


@dataclass(frozen=True)
class _Accepted:
    source: WebhookSource
    delivery_id: str
    event_type: str
    object_id: str | None
    payload: dict[str, Any]


def _problem(status: int, error: str, *, field: str | None = None) -> web.Response:
    body: dict[str, Any] = {"error": error}
    if field:
        body["field"] = field
    return web.json_response(body, status=status)


def _rejection(source: str, exc: WebhookRejected, request: web.Request) -> web.Response:
    # The reason and field name only: never what was presented.
    log.warning(
        "webhook rejected",
        extra={"source": source, "reason": exc.reason, "field": exc.field, "remote": request.remote},
    )
    if exc.reason in ("missing_token", "bad_token"):
        return _problem(401, exc.reason)
    return _problem(400, exc.reason, field=exc.field or "body")


def _payload(body: bytes) -> dict[str, Any]:
    payload = json.loads(body)
    assert isinstance(payload, dict)  # the verifier accepted only JSON objects
    payload.pop("secure_token", None)
    return payload


def add_webhook_routes(
    app: web.Application,
    *,
    settings: WebhookSettings,
    sessions: async_sessionmaker[AsyncSession],
    clock: Callable[[], datetime],
    on_delivery: DeliveryHandler,
) -> None:
    """Mount POST /webhooks/canto and POST /webhooks/iconik on `app`."""

    async def record(accepted: _Accepted) -> web.Response:
        received_at = clock()
        async with sessions() as session, session.begin():
            row_id = await session.scalar(
                insert_into(session, WebhookDeliveryRow)
                .values(
                    source=accepted.source,
                    delivery_id=accepted.delivery_id,
                    event_type=accepted.event_type,
                    object_id=accepted.object_id,
                    payload=accepted.payload,
                    received_at=received_at,
                )
                .on_conflict_do_nothing(index_elements=["source", "delivery_id"])
                .returning(WebhookDeliveryRow.id)
            )
            if row_id is None:
                return web.json_response({"status": "duplicate", "delivery_id": accepted.delivery_id})
            delivery = WebhookDelivery(
                id=row_id,
                source=accepted.source,
                delivery_id=accepted.delivery_id,
                event_type=accepted.event_type,
                object_id=accepted.object_id,
                payload=accepted.payload,
                received_at=received_at,
            )
            await on_delivery(session, delivery)
            await session.execute(
                update(WebhookDeliveryRow).where(WebhookDeliveryRow.id == row_id).values(processed_at=clock())
            )
        return web.json_response({"status": "accepted", "delivery_id": accepted.delivery_id}, status=202)

    async def handle(source: WebhookSource, accepted: _Accepted) -> web.Response:
        try:
            return await record(accepted)
        except Exception:
            # Rolled back: nothing recorded, so the vendor's retry is processed afresh.
            log.exception(
                "webhook delivery failed", extra={"source": source, "delivery_id": accepted.delivery_id}
            )
            return _problem(500, "processing_failed")

    async def canto(request: web.Request) -> web.Response:
        token = settings.canto_secure_token
        if token is None or not token.get_secret_value():
            return _problem(503, "not_configured")
        body = await request.read()
        try:
            event = verify_canto_delivery(body, secure_token=token.get_secret_value())
        except WebhookRejected as exc:
            return _rejection("canto", exc, request)
        return await handle(
            "canto",
            _Accepted(
                source="canto",
                delivery_id=event.delivery_id,
                event_type=event.event or "unknown",
                object_id=f"{event.scheme}:{event.id}",
                payload=_payload(body),
            ),
        )

    async def iconik(request: web.Request) -> web.Response:
        secret = settings.iconik_secret
        if secret is None or not secret.get_secret_value():
            return _problem(503, "not_configured")
        body = await request.read()
        try:
            event = verify_iconik_delivery(
                request.headers,
                body,
                header_name=settings.iconik_header_name,
                secret=secret.get_secret_value(),
            )
        except WebhookRejected as exc:
            return _rejection("iconik", exc, request)
        return await handle(
            "iconik",
            _Accepted(
                source="iconik",
                delivery_id=event.delivery_id,
                event_type=event.event_type,
                object_id=event.object_id,
                payload=_payload(body),
            ),
        )

    app.router.add_post("/webhooks/canto", canto)
    app.router.add_post("/webhooks/iconik", iconik)
