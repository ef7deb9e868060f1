"""`POST /alerts`: other systems raise and resolve alerts over HTTP.

    POST /alerts
    Authorization: Bearer <alerts.ingest_token>
    {"dedup_key": "sap-idoc-backlog", "title": "IDoc backlog over 500", "severity": "critical",
     "environment": "prod", "system": "sap", "summary": "...", "labels": {"team": "orders"},
     "action": "trigger" | "resolve"}

-> 202 {"id": 42, "ref": "ALR-42", "status": "firing", "occurrences": 3, "created": false}
   once the event is persisted; 400 {"error": "invalid_field", "field": "severity", "detail": ...}
   for a bad body; 401 for a missing or wrong token; 503 when the database cannot take it (retry).
"""

from __future__ import annotations

import hmac
import json
import logging
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy.exc import SQLAlchemyError

from bot.alerts.service import AlertService
from bot.domain.alerts import MAX_DEDUP_KEY, AlertEvent, Severity

__all__ = ["ALERTS_PATH", "AlertIn", "add_alert_routes"]

log = logging.getLogger("opsgate.alerts.http")

ALERTS_PATH = "/alerts"


class AlertIn(BaseModel):
    """The request body; unknown fields are refused so that a typo is reported, not ignored."""

    model_config = ConfigDict(extra="forbid")

    dedup_key: str = Field(min_length=1, max_length=MAX_DEDUP_KEY)
    action: Literal["trigger", "resolve"] = "trigger"
    # Required to trigger (routing needs them), optional to resolve: see `missing_for_trigger`.
    title: str | None = Field(default=None, min_length=1, max_length=200)
    environment: str | None = Field(default=None, min_length=1, max_length=64)
    system: str | None = Field(default=None, min_length=1, max_length=128)
    severity: Severity = Severity.ERROR
    summary: str = Field(default="", max_length=2800)
    labels: dict[str, str] = Field(default_factory=dict, max_length=20)
    source: str = Field(default="api", pattern=r"^[a-z][a-z0-9_-]{0,31}$")

    def missing_for_trigger(self) -> list[str]:
        if self.action != "trigger":
            return []
        return [name for name in ("title", "environment", "system") if getattr(self, name) is None]

    def to_event(self) -> AlertEvent:
        return AlertEvent.model_validate(self.model_dump(exclude_none=True))


def _problem(status: int, error: str, detail: str, **extra: Any) -> web.Response:
    headers = {"WWW-Authenticate": 'Bearer realm="opsgate-alerts"'} if status == 401 else None
    return web.json_response({"error": error, "detail": detail, **extra}, status=status, headers=headers)


def _field(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc) or "(body)"


def _authorised(request: web.Request, token: str | None) -> bool:
    header = request.headers.get("Authorization", "")
    scheme, _, given = header.partition(" ")
    if token is None or scheme.lower() != "bearer" or not given:
        return False
    return hmac.compare_digest(given.strip().encode(), token.encode())


def add_alert_routes(app: web.Application, service: AlertService, token: str | None) -> None:
    """Mount `POST /alerts`; with `token` None (alerts.ingest_token unset) every call gets 401."""

    async def post_alert(request: web.Request) -> web.Response:
        if not _authorised(request, token):
            detail = (
                "alert ingestion is disabled: alerts.ingest_token is not configured"
                if token is None
                else "send the ingest token as `Authorization: Bearer <token>`"
            )
            return _problem(401, "unauthorized", detail)
        try:
            data = json.loads(await request.read())
        except (ValueError, UnicodeDecodeError):
            return _problem(400, "invalid_json", "the body must be a JSON object", field="(body)")
        if not isinstance(data, dict):
            return _problem(400, "invalid_json", "the body must be a JSON object", field="(body)")
        try:
            body = AlertIn.model_validate(data)
            problems = [
                {"field": name, "detail": "is required to trigger an alert"}
                for name in body.missing_for_trigger()
            ]
            event = body.to_event()
        except ValidationError as exc:
            problems = [
                {"field": _field(e["loc"]), "detail": str(e["msg"]).removeprefix("Value error, ")}
                for e in exc.errors()
            ]
        if problems:
            first = problems[0]
            return _problem(400, "invalid_field", first["detail"], field=first["field"], problems=problems)
        try:
            result = await service.ingest(event)
        except SQLAlchemyError:
            log.exception("alert could not be stored", extra={"dedup_key": event.dedup_key})
            return web.json_response(
                {"error": "unavailable", "detail": "the alert could not be stored; retry"},
                status=503,
                headers={"Retry-After": "5"},
            )
        answer = {
            "id": result.alert_id,
            "ref": f"ALR-{result.alert_id}" if result.alert_id else None,
            "status": result.status.value if result.status else None,
            "occurrences": result.occurrences,
            "created": result.created,
        }
        return web.json_response(answer, status=202)

    app.router.add_post(ALERTS_PATH, post_alert)
