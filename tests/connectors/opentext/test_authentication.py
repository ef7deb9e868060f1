"""OT2 tenant tokens and OTDS tickets against the emulator, with vendor-shaped errors."""

from __future__ import annotations

import asyncio
import logging

import pytest
from pydantic import SecretStr, ValidationError

from connectors.errors import AuthError, ConnectorError, Forbidden, InvalidResponse, RateLimited
from connectors.http import HttpOptions
from connectors.opentext import OpenTextConnector, OpenTextSettings, OtdsSettings


async def test_ot2_token_is_fetched_once_and_reused(world, connector: OpenTextConnector) -> None:
    await connector.list_environments()
    await connector.get_artifact("invoices.invoice-xml-to-ubl")
    assert world.requests("^/tenants/acme-integration/oauth2/token$", "POST") == 1
    token_form = next(r for r in world.state.tokens.values())
    assert token_form[0] == "opsgate-svc"


async def test_wrong_client_secret_raises_auth_error_with_apigee_detail(world) -> None:
    connector = world.connector(client_secret="not-the-secret")
    with pytest.raises(AuthError) as caught:
        await connector.list_environments()
    assert caught.value.detail == "Invalid client credentials (oauth.v2.InvalidClientCredentials)"
    assert "not-the-secret" not in str(caught.value)


async def test_unknown_tenant_is_refused(world) -> None:
    connector = world.connector(tenant_id="someone-else")
    with pytest.raises(AuthError, match="InvalidClientIdentifier"):
        await connector.list_environments()


async def test_token_expired_on_the_server_is_refreshed_and_the_call_retried(
    world, connector: OpenTextConnector
) -> None:
    await connector.list_environments()
    world.wall.advance(3601)  # the vendor expires it; our monotonic clock did not move
    environments = await connector.list_environments()
    assert [e.name for e in environments] == ["dev", "test", "prod"]
    assert world.requests("/oauth2/token$") == 2
    assert world.requests("/environments$") == 3  # ok, 401 (expired), retried ok


async def test_token_is_refreshed_ahead_of_its_expiry(world, connector: OpenTextConnector) -> None:
    await connector.list_environments()
    world.monotonic.now += 3600 - 59  # inside the 60 s refresh-ahead window
    await connector.list_environments()
    assert world.requests("/oauth2/token$") == 2
    assert world.requests("/environments$") == 2  # no 401 on the way


async def test_hundred_concurrent_calls_share_one_token_request(world) -> None:
    connector = world.connector(http=HttpOptions(max_concurrency=100))
    await world.inject(path="/oauth2/token$", latency_ms=30)
    results = await asyncio.gather(
        *(connector.get_credential("prod", "invoices-prod-client") for _ in range(100))
    )
    assert {c.owner for c in results} == {"team-invoices@acme.example"}
    assert world.requests("/oauth2/token$") == 1


async def test_otds_ticket_authenticates_the_admin_api(world) -> None:
    connector = world.connector(auth="otds")
    environments = await connector.list_environments()
    assert len(environments) == 3
    assert world.requests("^/otdsws/rest/authentication/credentials$", "POST") == 1
    assert world.requests("/oauth2/token$") == 0
    assert world.state.tickets  # the emulator issued a ticket and accepted it


async def test_otds_ticket_is_renewed_after_the_server_forgets_it(world) -> None:
    connector = world.connector(auth="otds")
    await connector.list_environments()
    await world.inject(path="/environments$", expire_tokens=True, times=1)
    await connector.list_environments()
    assert world.requests("/authentication/credentials$") == 2


async def test_wrong_otds_password_raises_auth_error_with_failure_reason(world, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    connector = world.connector(
        auth="otds", otds=OtdsSettings(base_url=world.url, user_name="svc-opsgate", password="bad-pass-123")
    )
    with pytest.raises(AuthError) as caught:
        await connector.list_environments()
    assert caught.value.detail == "Authentication failed"
    assert "bad-pass-123" not in caplog.text and "bad-pass-123" not in str(caught.value)


async def test_snake_case_user_name_field_is_configurable(world) -> None:
    otds = OtdsSettings(
        base_url=world.url, user_name="svc-opsgate", password="otds-svc-password", user_name_field="user_name"
    )
    connector = world.connector(auth="otds", otds=otds)
    await connector.list_environments()
    sent = [r for r in world.app_requests() if r["path"].endswith("/authentication/credentials")]
    assert set(sent[-1]["json"]) == {"user_name", "password"}


async def test_read_only_client_is_forbidden_to_promote(world) -> None:
    connector = world.connector(client_id="opsgate-readonly", client_secret="opsgate-readonly-secret")
    assert await connector.get_deployment("prod", "invoices.invoice-xml-to-ubl") is not None
    with pytest.raises(Forbidden) as caught:
        await connector.start_promotion(
            "invoices.invoice-xml-to-ubl", "1.2.0", source_environment="test",
            target_environment="prod", requested_by="ana",
        )  # fmt: skip
    assert caught.value.detail == "Insufficient scope: deploy required (steps.oauth.v2.InsufficientScope)"
    assert caught.value.status == 403


async def test_spike_arrest_is_retried_after_the_advertised_delay(world) -> None:
    await world.inject(
        path="/artifacts$", status=429, retry_after=3, times=1,
        body={"fault": {"faultstring": "Spike arrest violation", "detail": {"errorcode": "x"}}},
    )  # fmt: skip
    connector = world.connector()
    artifacts = await connector.list_artifacts()
    assert len(artifacts) == 7
    assert world.sleep.delays == [3.0]


@pytest.mark.parametrize("emulator_options", [{"rate_per_second": 1.0, "rate_burst": 3}])
async def test_emulator_rate_limit_surfaces_as_rate_limited_with_retry_after(world) -> None:
    connector = world.connector(http=HttpOptions(max_retries=1))
    with pytest.raises(RateLimited) as caught:
        for _ in range(6):
            await connector.get_artifact("orders-edi.orders-inbound-api")
    assert caught.value.retry_after is not None and caught.value.retry_after >= 1
    assert "Spike arrest violation" in caught.value.detail
    assert "SpikeArrestViolation" in caught.value.detail


async def test_health_needs_no_credentials(world, connector: OpenTextConnector) -> None:
    health = await connector.health()
    assert health.status == "ok"
    assert world.requests("/oauth2/token$") == 0


async def test_malformed_vendor_json_raises_invalid_response(world, connector: OpenTextConnector) -> None:
    await world.inject(path="/artifacts/", malformed_json=True, times=1)
    with pytest.raises(InvalidResponse):
        await connector.get_artifact("orders-edi.orders-inbound-api")


async def test_client_secret_can_be_checked_against_the_token_endpoint(world, connector) -> None:
    assert await connector.authenticate_client("invoices-prod", SecretStr("invoices-prod-secret-v1"))
    assert not await connector.authenticate_client("invoices-prod", SecretStr("guess"))


async def test_request_id_of_the_last_call_is_recorded(world, connector: OpenTextConnector) -> None:
    await connector.list_environments()
    sent = world.app_requests()[-1]["headers"]
    assert connector.last_request_id == {k.lower(): v for k, v in sent.items()}["x-request-id"]


def test_settings_require_credentials_for_the_auth_mode() -> None:
    with pytest.raises(ValidationError, match="tenant_id, client_id and client_secret"):
        OpenTextSettings(base_url="https://im.example", client_id="x")
    with pytest.raises(ValidationError, match="otds settings"):
        OpenTextSettings(base_url="https://im.example", auth="otds")
    with pytest.raises(ValidationError):
        OpenTextSettings(base_url="https://im.example", auth="otds", unknown_field=1)
    settings = OpenTextSettings(
        base_url="https://im.example/",
        path_prefix="custom/v2",
        tenant_id="t",
        client_id="c",
        client_secret="s",
    )
    assert settings.api_base_url == "https://im.example/custom/v2"
    assert "'s'" not in repr(settings)


async def test_otds_operations_need_otds_settings(world) -> None:
    connector = world.connector(otds=None)
    with pytest.raises(ConnectorError, match="OTDS is not configured"):
        await connector.get_otds_oauth_client("invoices-prod")
