"""Credentials, stepwise secret rotation and OTDS OAuth clients against the emulator."""

from __future__ import annotations

import logging

import pytest
from pydantic import SecretStr

from connectors.errors import BadRequest, Conflict, NotFound
from connectors.opentext import CredentialStatus, OpenTextConnector, RotationState

CRED = "orders-edi-prod-client"
CLIENT = "orders-edi-prod"
OLD_SECRET = SecretStr("orders-edi-prod-secret-v1")


async def test_credentials_show_owner_expiry_and_status(world, connector: OpenTextConnector) -> None:
    credentials = {c.id: c for c in await connector.list_credentials("prod")}
    assert {cid: c.status for cid, c in credentials.items()} == {
        "invoices-prod-client": CredentialStatus.ACTIVE,
        "legacy-ftp-bridge": CredentialStatus.EXPIRED,
        "orders-edi-prod-client": CredentialStatus.EXPIRING,
    }
    near = credentials[CRED]
    assert near.owner == "team-orders@acme.example"
    assert (near.expires_at - world.wall.now).days == 6
    assert near.client_id == CLIENT and near.rotation is None


async def test_credentials_can_be_filtered_by_status(connector: OpenTextConnector) -> None:
    expiring = await connector.list_credentials("test", status=CredentialStatus.EXPIRING)
    assert [c.id for c in expiring] == ["orders-edi-test-client"]


async def test_unknown_credential_raises_not_found(connector: OpenTextConnector) -> None:
    with pytest.raises(NotFound, match="credential_not_found"):
        await connector.get_credential("prod", "nope")


async def test_rotation_walks_pending_tested_active_completed_with_a_grace_period(
    world, connector: OpenTextConnector
) -> None:
    pending = await connector.start_rotation("prod", CRED, requested_by="ana", validity_days=180)
    assert pending.state is RotationState.PENDING
    new_secret = pending.secret
    # Pending: both the current and the pending secret authenticate.
    assert await connector.authenticate_client(CLIENT, new_secret)
    assert await connector.authenticate_client(CLIENT, OLD_SECRET)

    tested = await connector.test_rotation("prod", CRED, pending.rotation_id)
    assert tested.authenticated and tested.state is RotationState.TESTED

    active = await connector.activate_rotation("prod", CRED, pending.rotation_id, grace_seconds=600)
    assert active.state is RotationState.ACTIVE
    assert active.previous_valid_until is not None
    assert (active.previous_valid_until - world.wall.now).total_seconds() == 600
    assert await connector.authenticate_client(CLIENT, OLD_SECRET)  # still inside the grace period
    credential = await connector.get_credential("prod", CRED)
    assert credential.status is CredentialStatus.ACTIVE
    assert (credential.expires_at - world.wall.now).days == 180
    assert credential.rotation is not None and credential.rotation.state is RotationState.ACTIVE

    completed = await connector.revoke_previous_secret("prod", CRED, pending.rotation_id)
    assert completed.state is RotationState.COMPLETED
    assert not await connector.authenticate_client(CLIENT, OLD_SECRET)
    assert await connector.authenticate_client(CLIENT, new_secret)
    assert (await connector.get_credential("prod", CRED)).rotation is None


async def test_previous_secret_stops_working_when_the_grace_period_ends(
    world, connector: OpenTextConnector
) -> None:
    pending = await connector.start_rotation("prod", CRED, requested_by="ana")
    await connector.test_rotation("prod", CRED, pending.rotation_id)
    await connector.activate_rotation("prod", CRED, pending.rotation_id, grace_seconds=60)
    world.wall.advance(61)
    assert not await connector.authenticate_client(CLIENT, OLD_SECRET)


async def test_new_secret_is_returned_once_and_never_logged(world, connector, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    pending = await connector.start_rotation("prod", CRED, requested_by="ana")
    secret = pending.secret.get_secret_value()
    assert len(secret) >= 32
    assert secret not in repr(pending)
    fetched = await connector.get_rotation("prod", CRED, pending.rotation_id)
    assert fetched.state is RotationState.PENDING
    assert "secret" not in fetched.model_dump()
    token = await world.control.post(
        "/tenants/acme-integration/oauth2/token",
        data={
            "grant_type": "client_credentials",
            "client_id": "opsgate-svc",
            "client_secret": "opsgate-svc-secret",
        },
    )
    headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
    for path in (f"credentials/{CRED}", f"credentials/{CRED}/rotations/{pending.rotation_id}", "credentials"):
        raw = await world.control.get(f"/im-admin/api/v1/environments/prod/{path}", headers=headers)
        assert raw.status_code == 200 and secret not in raw.text
    assert secret not in caplog.text


async def test_activation_requires_a_successful_test(connector: OpenTextConnector) -> None:
    pending = await connector.start_rotation("prod", CRED, requested_by="ana")
    with pytest.raises(Conflict) as caught:
        await connector.activate_rotation("prod", CRED, pending.rotation_id)
    assert caught.value.detail.endswith("(invalid_rotation_state)")


async def test_only_one_rotation_may_be_open_per_credential(connector: OpenTextConnector) -> None:
    await connector.start_rotation("prod", CRED, requested_by="ana")
    with pytest.raises(Conflict, match="rotation_in_progress"):
        await connector.start_rotation("prod", CRED, requested_by="bo")


async def test_cancelled_rotation_discards_the_pending_secret(connector: OpenTextConnector) -> None:
    pending = await connector.start_rotation("prod", CRED, requested_by="ana")
    cancelled = await connector.cancel_rotation("prod", CRED, pending.rotation_id)
    assert cancelled.state is RotationState.CANCELLED
    assert not await connector.authenticate_client(CLIENT, pending.secret)
    assert await connector.authenticate_client(CLIENT, OLD_SECRET)
    with pytest.raises(Conflict, match="invalid_rotation_state"):
        await connector.test_rotation("prod", CRED, pending.rotation_id)


async def test_api_keys_are_not_rotatable_through_the_api(connector: OpenTextConnector) -> None:
    with pytest.raises(BadRequest, match="not_rotatable"):
        await connector.start_rotation("prod", "legacy-ftp-bridge", requested_by="ana")


async def test_unknown_rotation_raises_not_found(connector: OpenTextConnector) -> None:
    with pytest.raises(NotFound, match="rotation_not_found"):
        await connector.get_rotation("prod", CRED, "rot-999999")


async def test_otds_oauth_client_secret_is_read_and_replaced(world, connector: OpenTextConnector) -> None:
    client = await connector.get_otds_oauth_client(CLIENT)
    assert client.secret is not None and client.secret.get_secret_value() == OLD_SECRET.get_secret_value()
    assert client.confidential is True and client.permissible_scopes == ["read"]
    replacement = SecretStr("a-brand-new-otds-secret-0001")
    updated = await connector.set_otds_oauth_client_secret(CLIENT, replacement)
    assert updated.secret == replacement
    assert world.requests("/otdsws/rest/oauthclients/", "PUT") == 1
    sent = [r for r in world.app_requests() if r["method"] == "PUT"][-1]["json"]
    assert sent["id"] == CLIENT and sent["description"]  # the whole resource went back
    # OTDS has no grace period: the old secret is dead at once.
    assert not await connector.authenticate_client(CLIENT, OLD_SECRET)
    assert await connector.authenticate_client(CLIENT, replacement)


async def test_otds_rejects_a_too_short_secret_and_unknown_clients(connector: OpenTextConnector) -> None:
    with pytest.raises(BadRequest, match="at least 16 characters"):
        await connector.set_otds_oauth_client_secret(CLIENT, SecretStr("short"))
    with pytest.raises(NotFound, match="OAuth client not found"):
        await connector.get_otds_oauth_client("nobody")
