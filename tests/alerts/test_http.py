"""`POST /alerts` over real HTTP: bearer token, validated body, persisted before 202."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from aiohttp import web

from bot.alerts.service import AlertService
from bot.config.alerts import AlertsConfig
from bot.db.engine import create_engine, create_session_factory
from bot.jobs.outbox import Outbox
from bot.web.alerts import add_alert_routes
from connectors.emulators.faults import start_app

TOKEN = "s3cret-ingest-token"
VALID = {
    "dedup_key": "sap-idoc-backlog",
    "title": "IDoc backlog over 500",
    "severity": "critical",
    "environment": "prod",
    "system": "sap",
    "labels": {"team": "orders"},
}


async def serve(service: AlertService, token: str | None):
    app = web.Application()
    add_alert_routes(app, service, token)
    runner, url = await start_app(app)
    return runner, httpx.AsyncClient(base_url=url, timeout=10)


@pytest.fixture
async def api(harness):
    runner, client = await serve(harness.service, TOKEN)
    yield client
    await client.aclose()
    await runner.cleanup()


def bearer(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_missing_or_wrong_token_is_refused_with_401_and_nothing_is_stored(api, harness):
    assert (await api.post("/alerts", json=VALID)).status_code == 401
    wrong = await api.post("/alerts", json=VALID, headers=bearer("guess"))
    assert wrong.status_code == 401 and wrong.headers["WWW-Authenticate"].startswith("Bearer")
    basic = await api.post("/alerts", json=VALID, headers={"Authorization": f"Basic {TOKEN}"})
    assert basic.status_code == 401
    assert TOKEN not in wrong.text
    assert await harness.alerts() == []


async def test_without_a_configured_token_ingestion_is_disabled(harness):
    runner, client = await serve(harness.service, None)
    try:
        answer = await client.post("/alerts", json=VALID, headers=bearer())
    finally:
        await client.aclose()
        await runner.cleanup()
    assert answer.status_code == 401 and "ingest_token" in answer.json()["detail"]


BAD_BODIES = [
    ({**VALID, "severity": "urgent"}, "severity"),
    ({k: v for k, v in VALID.items() if k != "dedup_key"}, "dedup_key"),
    ({**VALID, "dedup_key": "k" * 256}, "dedup_key"),
    ({**VALID, "sevrity": "critical"}, "sevrity"),
    ({**VALID, "labels": {"env": "prod"}}, "labels"),
    ({**VALID, "labels": {"team": 5}}, "labels.team"),
    ({k: v for k, v in VALID.items() if k != "title"}, "title"),
    ({**VALID, "action": "explode"}, "action"),
]


async def test_a_bad_body_gets_400_naming_the_field_at_fault(api, harness):
    for body, field in BAD_BODIES:
        answer = await api.post("/alerts", json=body, headers=bearer())
        assert answer.status_code == 400, field
        problem = answer.json()
        assert (problem["error"], problem["field"]) == ("invalid_field", field) and problem["detail"]
    assert await harness.alerts() == []


async def test_a_body_that_is_not_json_gets_400(api):
    answer = await api.post(
        "/alerts", content=b"{nope", headers=bearer() | {"Content-Type": "application/json"}
    )
    assert answer.status_code == 400 and answer.json()["error"] == "invalid_json"
    listed = await api.post("/alerts", json=[VALID], headers=bearer())
    assert listed.status_code == 400 and listed.json()["field"] == "(body)"


async def test_a_valid_alert_is_persisted_before_the_202(api, harness):
    answer = await api.post("/alerts", json=VALID, headers=bearer())
    assert answer.status_code == 202
    body = answer.json()
    assert body["ref"] == f"ALR-{body['id']}" and body["status"] == "firing" and body["created"] is True
    stored = await harness.alert(body["id"])
    assert (stored.dedup_key, stored.severity, stored.labels) == (
        "sap-idoc-backlog",
        "critical",
        {"team": "orders"},
    )
    again = (await api.post("/alerts", json=VALID, headers=bearer())).json()
    assert (again["id"], again["occurrences"], again["created"]) == (body["id"], 2, False)


async def test_resolve_needs_only_the_dedup_key(api, harness):
    opened = (await api.post("/alerts", json=VALID, headers=bearer())).json()
    answer = await api.post(
        "/alerts", json={"dedup_key": VALID["dedup_key"], "action": "resolve"}, headers=bearer()
    )
    assert answer.status_code == 202 and answer.json()["status"] == "resolved"
    assert (await harness.alert(opened["id"])).status == "resolved"


async def test_concurrent_posts_never_lose_a_valid_alert(api, harness):
    async def send(i: int) -> int:
        body = {**VALID, "dedup_key": f"burst-{i % 7}"}
        return (await api.post("/alerts", json=body, headers=bearer())).status_code

    statuses = await asyncio.gather(*(send(i) for i in range(120)))
    assert statuses == [202] * 120
    alerts = await harness.alerts()
    assert len(alerts) == 7 and sum(a.occurrences for a in alerts) == 120


async def test_when_the_database_is_down_the_caller_gets_503_to_retry(clock, tmp_path):
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'missing' / 'nowhere.db'}")
    broken = AlertService(create_session_factory(engine), clock, AlertsConfig(), Outbox(clock))
    runner, client = await serve(broken, TOKEN)
    try:
        answer = await client.post("/alerts", json=VALID, headers=bearer())
    finally:
        await client.aclose()
        await runner.cleanup()
        await engine.dispose()
    assert answer.status_code == 503 and answer.headers["Retry-After"] == "5"
