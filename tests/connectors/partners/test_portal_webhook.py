"""Portal partner destination: signed publish, acknowledgement, signed unpublish, refusals."""

from __future__ import annotations

import httpx
import pytest
from pydantic import SecretStr

from connectors.errors import AuthError, BadRequest, Unavailable
from connectors.portal import portal_signature, verify_portal_signature
from connectors.transfer import DeliveryItem

LINK = "https://drops.example/partner-drops/hero.mp4?X-Amz-Signature=abc"


def item(**overrides: object) -> DeliveryItem:
    values: dict[str, object] = {
        "name": "hero.mp4", "size": 1234, "content_type": "video/mp4", "title": "Spring hero 30s",
        "source_id": "canto:video:abc", "metadata": {"campaign": "Spring Launch 2025"},
        "download_url": SecretStr(LINK),
    }  # fmt: skip
    values.update(overrides)
    return DeliveryItem.model_validate(values)


async def test_a_publication_is_acknowledged_and_the_portal_keeps_what_was_sent(portal) -> None:
    async with portal.connector() as hook:
        receipt = await hook.deliver(item())

    (publication,) = portal.state.publications.values()
    assert receipt.acknowledgement_id == publication["id"]
    assert receipt.location.endswith(f"/api/publications/{publication['id']}")
    assert publication["asset"] == {
        "name": "hero.mp4", "title": "Spring hero 30s", "content_type": "video/mp4", "size": 1234,
        "source_id": "canto:video:abc", "metadata": {"campaign": "Spring Launch 2025"},
    }  # fmt: skip
    assert publication["download_url"] == LINK
    assert (receipt.kind, receipt.destination) == ("portal_webhook", "Retailer A portal")


async def test_revoke_unpublishes_with_a_signed_delete(portal) -> None:
    async with portal.connector() as hook:
        receipt = await hook.deliver(item())
        assert await hook.exists(receipt)
        await hook.revoke(receipt)
        assert not await hook.exists(receipt)
        await hook.revoke(receipt)  # twice is harmless
    assert portal.state.publications[receipt.acknowledgement_id]["status"] == "unpublished"
    assert portal.state.rejected_signatures == 0


async def test_a_wrong_secret_is_refused_with_401_and_nothing_is_published(portal) -> None:
    async with portal.connector(secret="not-the-shared-secret") as hook:
        with pytest.raises(AuthError) as caught:
            await hook.deliver(item())
    assert (caught.value.vendor, caught.value.status, caught.value.method) == ("portal", 401, "POST")
    assert portal.state.publications == {} and portal.state.rejected_signatures == 1
    assert "not-the-shared-secret" not in str(caught.value)


async def test_an_unsigned_or_stale_request_is_refused(portal) -> None:
    async with httpx.AsyncClient(base_url=portal.url) as plain:
        unsigned = await plain.post("/api/publications", json={"asset": {"name": "x"}, "download_url": "u"})
    assert unsigned.status_code == 401
    async with portal.connector() as hook:
        receipt = await hook.deliver(item())
        portal.clock.now += 3600  # the signer's clock and the portal's agree; an old signature would not
        assert await hook.exists(receipt)
    stamp = str(int(portal.clock.now) - 301)
    signature = portal_signature(
        "portal-emulator-signing-secret", timestamp=stamp, method="GET", path="/x", body=b""
    )
    assert not verify_portal_signature(
        "portal-emulator-signing-secret", signature=signature, timestamp=stamp, method="GET", path="/x", body=b"",
        now=portal.clock.now,
    )  # fmt: skip


def test_a_signature_is_bound_to_method_path_and_body() -> None:
    secret, stamp = "s3cret", "1741597200"
    signed = portal_signature(
        secret, timestamp=stamp, method="DELETE", path="/api/publications/pub-0001", body=b""
    )

    def ok(**changed: object) -> bool:
        values: dict[str, object] = {"method": "DELETE", "path": "/api/publications/pub-0001", "body": b""}
        values.update(changed)
        return verify_portal_signature(secret, signature=signed, timestamp=stamp, now=1741597200, **values)  # type: ignore[arg-type]

    assert ok()
    assert not ok(path="/api/publications/pub-0002")
    assert not ok(method="GET")
    assert not ok(body=b"{}")


async def test_a_portal_refusing_the_body_is_a_bad_request(portal) -> None:
    async with httpx.AsyncClient(base_url=portal.url) as control:
        fault = {
            "path": "^/api/publications$",
            "method": "POST",
            "status": 422,
            "body": {"error": "title too long"},
        }
        (await control.post("/_control/faults", json=fault)).raise_for_status()
    async with portal.connector() as hook:
        with pytest.raises(BadRequest, match=r"portal POST .* -> 422: title too long"):
            await hook.deliver(item())


async def test_a_portal_down_is_unavailable(portal) -> None:
    async with httpx.AsyncClient(base_url=portal.url) as control:
        fault = {"path": "^/api/publications", "status": 503}
        (await control.post("/_control/faults", json=fault)).raise_for_status()
    async with portal.connector() as hook:
        with pytest.raises(Unavailable):
            await hook.deliver(item())


async def test_a_publication_needs_a_download_link(portal) -> None:
    async with portal.connector() as hook:
        with pytest.raises(ValueError, match="needs the item's download_url"):
            await hook.deliver(item(download_url=None))
