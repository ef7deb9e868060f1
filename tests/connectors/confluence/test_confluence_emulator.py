"""The emulator answers raw HTTP as Confluence does: auth, errors, paging, limits, controls."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from connectors.emulators.confluence import DEFAULT_API_TOKEN, DEFAULT_EMAIL, DEFAULT_PAT, state_of

from .conftest import Emulator, EmulatorFactory, Exchange, FakeClock, RecordingTransport

BASIC = "Basic " + base64.b64encode(f"{DEFAULT_EMAIL}:{DEFAULT_API_TOKEN}".encode()).decode()
BEARER = f"Bearer {DEFAULT_PAT}"


@pytest.fixture
async def cloud(start_emulator: EmulatorFactory) -> Emulator:
    return await start_emulator("cloud")


@pytest.fixture
async def datacenter(start_emulator: EmulatorFactory) -> Emulator:
    return await start_emulator("datacenter")


@pytest.fixture
async def recorder() -> AsyncIterator[RecordingTransport]:
    transport = RecordingTransport()
    yield transport
    await transport.aclose()


def client(emulator: Emulator, transport: RecordingTransport, authorization: str | None) -> httpx.AsyncClient:
    headers = {"Authorization": authorization} if authorization else {}
    return httpx.AsyncClient(base_url=emulator.url, headers=headers, transport=transport)


async def test_cloud_401_bodies_follow_each_api_version(
    cloud: Emulator, recorder: RecordingTransport
) -> None:
    async with client(cloud, recorder, "Basic d3Jvbmc6d3Jvbmc=") as http:
        v2 = await http.get("/wiki/api/v2/spaces")
        v1 = await http.get("/wiki/rest/api/content/1")
    assert v2.status_code == 401
    assert v2.json() == {
        "errors": [{"status": 401, "code": "UNAUTHORIZED", "title": "Unauthorized", "detail": None}]
    }
    assert v1.status_code == 401
    assert v1.json()["statusCode"] == 401 and v1.json()["message"]


async def test_datacenter_rejects_unknown_pat_with_seraph_reason(
    datacenter: Emulator, recorder: RecordingTransport
) -> None:
    async with client(datacenter, recorder, "Bearer unknown") as http:
        response = await http.get("/rest/api/space/INT")
    assert response.status_code == 401
    assert response.headers["X-Seraph-LoginReason"] == "AUTHENTICATED_FAILED"
    assert response.json()["message"] == "Client must be authenticated to access this resource."


async def test_datacenter_with_anonymous_access_serves_unknown_pat_as_anonymous(
    start_emulator: EmulatorFactory, recorder: RecordingTransport
) -> None:
    emulator = await start_emulator("datacenter", anonymous_access=True)
    async with client(emulator, recorder, "Bearer unknown") as http:
        user = await http.get("/rest/api/user/current")
        public = await http.get("/rest/api/space/MKT")
        private = await http.get("/rest/api/space/INT")
        create = await http.post(
            "/rest/api/content",
            json={"type": "page", "title": "x", "space": {"key": "MKT"},
                  "body": {"storage": {"value": "<p/>", "representation": "storage"}}},
        )  # fmt: skip
    assert (user.status_code, user.json()["type"]) == (200, "anonymous")
    assert public.status_code == 200
    assert private.status_code == 404
    assert create.status_code == 403


async def test_v2_lists_link_the_next_page_in_body_and_link_header(
    cloud: Emulator, recorder: RecordingTransport, check_exchange: Callable[[Exchange], list[str]]
) -> None:
    async with client(cloud, recorder, BASIC) as http:
        first = await http.get("/wiki/api/v2/spaces", params={"limit": 2})
        next_link = first.json()["_links"]["next"]
        second = await http.get(next_link)
    assert next_link.startswith("/wiki/api/v2/spaces?")
    assert first.links["next"]["url"] == next_link
    assert first.links["base"]["url"] == f"{cloud.url}/wiki"
    assert [space["key"] for space in first.json()["results"]] == ["INT", "MKT"]
    assert [space["key"] for space in second.json()["results"]] == ["MEDIA"]  # SEC is not visible
    assert "next" not in second.json()["_links"] and "Link" not in second.headers
    assert [violation for exchange in recorder.exchanges for violation in check_exchange(exchange)] == []


async def test_v1_lists_page_with_start_and_limit_relative_to_base(
    datacenter: Emulator, recorder: RecordingTransport, check_exchange: Callable[[Exchange], list[str]]
) -> None:
    async with client(datacenter, recorder, BEARER) as http:
        first = await http.get("/rest/api/content", params={"spaceKey": "INT", "limit": 3})
        links = first.json()["_links"]
        second = await http.get(links["base"] + links["next"])
    assert (first.json()["start"], first.json()["size"]) == (0, 3)
    assert links["next"] == "/rest/api/content?spaceKey=INT&limit=3&start=3"
    assert (second.json()["start"], second.json()["size"]) == (3, 2)
    assert "next" not in second.json()["_links"]
    assert [violation for exchange in recorder.exchanges for violation in check_exchange(exchange)] == []


async def test_v2_rejects_out_of_range_limit_and_incomplete_update(
    cloud: Emulator, recorder: RecordingTransport
) -> None:
    async with client(cloud, recorder, BASIC) as http:
        bad_limit = await http.get("/wiki/api/v2/pages", params={"limit": 251})
        incomplete = await http.put("/wiki/api/v2/pages/65538", json={"id": "65538", "title": "x"})
    assert bad_limit.status_code == 400
    assert bad_limit.json()["errors"][0]["code"] == "INVALID_REQUEST_PARAMETER"
    assert incomplete.status_code == 400
    assert "status, body, version" in incomplete.json()["errors"][0]["title"]


async def test_attachment_upload_without_nocheck_header_fails_the_xsrf_check(
    cloud: Emulator, recorder: RecordingTransport
) -> None:
    async with client(cloud, recorder, BASIC) as http:
        response = await http.post(
            "/wiki/rest/api/content/65538/child/attachment",
            files={"file": ("a.txt", b"hello")},
            data={"minorEdit": "true"},
        )
    assert (response.status_code, response.text) == (403, "XSRF check failed")


async def test_posting_an_existing_attachment_name_is_refused_but_put_versions_it(
    datacenter: Emulator, recorder: RecordingTransport
) -> None:
    upload = {"files": {"file": ("a.txt", b"hello")}, "data": {"minorEdit": "true"},
              "headers": {"X-Atlassian-Token": "nocheck"}}  # fmt: skip
    async with client(datacenter, recorder, BEARER) as http:
        created = await http.post("/rest/api/content/65538/child/attachment", **upload)  # type: ignore[arg-type]
        again = await http.post("/rest/api/content/65538/child/attachment", **upload)  # type: ignore[arg-type]
        versioned = await http.put("/rest/api/content/65538/child/attachment", **upload)  # type: ignore[arg-type]
    assert created.status_code == 200
    assert again.status_code == 400
    assert versioned.json()["results"][0]["version"]["number"] == 2


async def test_rate_limit_answers_429_with_retry_after_and_rate_limit_headers(
    start_emulator: EmulatorFactory, recorder: RecordingTransport, clock: FakeClock
) -> None:
    emulator = await start_emulator(
        "cloud", rate_limit_per_second=1, rate_limit_burst=2, monotonic=clock.monotonic
    )
    async with client(emulator, recorder, BASIC) as http:
        statuses = [(await http.get("/wiki/api/v2/spaces")).status_code for _ in range(3)]
        throttled = recorder.exchanges[-1]
        clock.now += 1.0
        after_wait = await http.get("/wiki/api/v2/spaces")
    assert statuses == [200, 200, 429]
    assert throttled.response_headers["Retry-After"] == "1"
    assert throttled.response_headers["X-RateLimit-Remaining"] == "0"
    assert "X-RateLimit-Reset" in throttled.response_headers
    assert after_wait.status_code == 200


async def test_injected_faults_use_the_vendor_error_shape(
    cloud: Emulator, recorder: RecordingTransport
) -> None:
    await cloud.fault(path="/spaces", status=503, times=1)
    async with client(cloud, recorder, BASIC) as http:
        faulted = await http.get("/wiki/api/v2/spaces")
        healthy = await http.get("/wiki/api/v2/spaces")
    assert faulted.status_code == 503
    assert faulted.json()["errors"][0]["status"] == 503
    assert healthy.status_code == 200


async def test_reset_restores_the_seeded_spaces_and_pages(
    cloud: Emulator, recorder: RecordingTransport
) -> None:
    state = state_of(cloud.app)
    seeded = {page.title for page in state.pages.values()}
    integration = state.space_by_key("INT")
    assert integration is not None
    state.add_page(integration.id, "Scratch", "<p/>", integration.homepage_id)

    await cloud.control("POST", "/_control/reset")

    assert {page.title for page in state.pages.values()} == seeded
    assert {space.key for space in state.spaces.values()} == {"INT", "MKT", "MEDIA", "SEC"}
