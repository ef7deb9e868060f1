"""Contract tests: every ConfluenceConnector operation against the emulator, Cloud and Data Center.

Each connector's traffic is checked against Atlassian's OpenAPI documents when the test ends
(see conftest.py), so these tests also prove that the requests are the documented ones.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from connectors.confluence import ConfluenceSettings, cql_literal
from connectors.confluence_storage import Document, code_block, page_link, status
from connectors.emulators.confluence import state_of
from connectors.errors import AuthError, BadRequest, Conflict, InvalidResponse, NotFound, RateLimited

from .conftest import ConnectorFactory, Emulator, EmulatorFactory, Exchange, FakeClock, Flavour, Wiring

HOSTILE = "Release <1.4> & \"quotes\" 'single' ]]> \u00fcn\u00efc\u00f8d\u00e9 \U0001f680"


def hostile_body() -> str:
    return (
        Document()
        .heading(1, HOSTILE)
        .paragraph("State: ", status(HOSTILE, "Green"), " see ", page_link(HOSTILE, space_key="INT"))
        .table(["Artifact", "Version"], [[HOSTILE, "1.4.2"]])
        .add(code_block(f"if a]]>b: print('{HOSTILE}')", language="python", title=HOSTILE))
        .render()
    )


# ----------------------------------------------------------------------------------- spaces


async def test_get_space_returns_key_name_and_home_page(
    emulator: Emulator, connect: ConnectorFactory
) -> None:
    confluence = connect(emulator)
    space = await confluence.get_space("INT")
    assert (space.key, space.name) == ("INT", "Integration")
    assert space.homepage_id is not None
    home = await confluence.get_page(space.homepage_id)
    assert home.title == "Integration Home"


@pytest.mark.parametrize("key", ["SEC", "NOPE"])
async def test_space_without_permission_looks_like_a_missing_space(
    emulator: Emulator, connect: ConnectorFactory, key: str
) -> None:
    with pytest.raises(NotFound):
        await connect(emulator).get_space(key)


async def test_page_in_a_space_without_permission_is_not_found(
    emulator: Emulator, connect: ConnectorFactory
) -> None:
    state = state_of(emulator.app)
    security = state.space_by_key("SEC")
    assert security is not None
    with pytest.raises(NotFound) as info:
        await connect(emulator).get_page(str(security.homepage_id))
    assert info.value.status == 404


# ------------------------------------------------------------------------------------ pages


async def test_find_page_by_title_returns_storage_body_version_and_parent(
    emulator: Emulator, connect: ConnectorFactory
) -> None:
    confluence = connect(emulator)
    space = await confluence.get_space("INT")
    page = await confluence.find_page("INT", "Runbooks")
    assert page is not None
    assert page.body == "<p>Operational runbooks.</p>"
    assert page.version == 1
    assert page.parent_id == space.homepage_id
    assert page.space_id == space.id
    assert page.web_url is not None and page.web_url.startswith(emulator.url)
    assert await confluence.find_page("INT", "No such page") is None


async def test_created_page_sits_under_its_parent_and_keeps_hostile_body_exactly(
    emulator: Emulator, connect: ConnectorFactory
) -> None:
    confluence = connect(emulator)
    runbooks = await confluence.find_page("INT", "Runbooks")
    assert runbooks is not None
    body = hostile_body()

    created = await confluence.create_page("INT", HOSTILE, body, parent_id=runbooks.id)

    assert (created.title, created.version, created.parent_id) == (HOSTILE, 1, runbooks.id)
    fetched = await confluence.get_page(created.id)
    assert fetched.body == body
    assert fetched.title == HOSTILE
    children = [child.title async for child in confluence.iter_child_pages(runbooks.id)]
    assert HOSTILE in children


async def test_page_created_without_parent_goes_under_the_space_home_page(
    emulator: Emulator, connect: ConnectorFactory
) -> None:
    confluence = connect(emulator)
    space = await confluence.get_space("MEDIA")
    created = await confluence.create_page("MEDIA", "Loose page", "<p>x</p>")
    assert created.parent_id == space.homepage_id


async def test_creating_a_second_page_with_the_same_title_is_a_bad_request(
    emulator: Emulator, connect: ConnectorFactory
) -> None:
    with pytest.raises(BadRequest, match="already exists"):
        await connect(emulator).create_page("INT", "Runbooks", "<p>again</p>")


async def test_update_saves_the_next_version_and_keeps_the_title(
    emulator: Emulator, connect: ConnectorFactory
) -> None:
    confluence = connect(emulator)
    page = await confluence.find_page("INT", "Release Notes")
    assert page is not None

    updated = await confluence.update_page(page, body="<p>new notes</p>", message="opsgate: release 1.4")

    assert (updated.version, updated.title) == (page.version + 1, "Release Notes")
    assert (await confluence.get_page(page.id)).body == "<p>new notes</p>"
    assert state_of(emulator.app).pages[int(page.id)].version_message == "opsgate: release 1.4"


async def test_update_after_someone_else_saved_rereads_and_retries(
    emulator: Emulator, connect: ConnectorFactory, wiring: Wiring
) -> None:
    ours, theirs = connect(emulator), connect(emulator)
    stale = await ours.find_page("INT", "Release Notes")
    assert stale is not None
    await theirs.update_page(stale.id, body="<p>their edit</p>")

    updated = await ours.update_page(stale, body="<p>our edit</p>")

    assert updated.version == 3
    assert (await ours.get_page(stale.id)).body == "<p>our edit</p>"
    puts = [exchange.status for exchange in wiring.traffic(ours).exchanges if exchange.method == "PUT"]
    assert puts == [409, 200]


async def test_conflict_with_an_edit_that_already_says_the_same_saves_no_extra_version(
    emulator: Emulator, connect: ConnectorFactory, wiring: Wiring
) -> None:
    ours, theirs = connect(emulator), connect(emulator)
    stale = await ours.find_page("INT", "Release Notes")
    assert stale is not None
    await theirs.update_page(stale.id, body="<p>agreed text</p>")

    result = await ours.update_page(stale, body="<p>agreed text</p>")

    assert result.version == 2
    assert [e.status for e in wiring.traffic(ours).exchanges if e.method == "PUT"] == [409]


async def test_stale_version_conflict_carries_confluence_message(
    emulator: Emulator, connect: ConnectorFactory
) -> None:
    confluence = connect(emulator, max_update_attempts=1)
    stale = await confluence.find_page("INT", "Runbooks")
    assert stale is not None
    await confluence.update_page(stale.id, body="<p>first</p>")

    with pytest.raises(Conflict) as info:
        await confluence.update_page(stale, body="<p>second</p>")

    assert info.value.status == 409
    assert "Version must be incremented on update. Current version is: 2" in info.value.detail


async def test_update_gives_up_with_conflict_after_the_bounded_attempts(
    emulator: Emulator, connect: ConnectorFactory, wiring: Wiring
) -> None:
    confluence = connect(emulator, max_update_attempts=3)
    page = await confluence.find_page("INT", "Runbooks")
    assert page is not None
    await emulator.fault(path=r"/(pages|content)/\d+$", method="PUT", status=409)

    with pytest.raises(Conflict):
        await confluence.update_page(page, body="<p>never saved</p>")

    traffic = wiring.traffic(confluence)
    assert len([e for e in traffic.exchanges if e.method == "PUT"]) == 3
    rereads = [e for e in traffic.exchanges if e.method == "GET" and e.url.path.endswith(f"/{page.id}")]
    assert len(rereads) == 2


async def test_upsert_creates_then_updates_then_leaves_an_identical_page_alone(
    emulator: Emulator, connect: ConnectorFactory, wiring: Wiring
) -> None:
    confluence = connect(emulator)
    parent = await confluence.find_page("MEDIA", "Asset Releases")
    assert parent is not None

    first = await confluence.upsert_page("MEDIA", "Release R-1", "<p>draft</p>", parent_id=parent.id)
    second = await confluence.upsert_page("MEDIA", "Release R-1", hostile_body(), parent_id=parent.id)
    puts_before = len(wiring.traffic(confluence).calls("PUT", "/"))
    third = await confluence.upsert_page("MEDIA", "Release R-1", hostile_body(), parent_id=parent.id)

    assert (first.outcome, first.page.version, first.page.parent_id) == ("created", 1, parent.id)
    assert (second.outcome, second.page.version) == ("updated", 2)
    assert (third.outcome, third.page.version) == ("unchanged", 2)
    assert len(wiring.traffic(confluence).calls("PUT", "/")) == puts_before
    assert (await confluence.get_page(first.page.id)).body == hostile_body()


async def test_upsert_treats_ids_confluence_adds_on_save_as_identical(
    emulator: Emulator, connect: ConnectorFactory
) -> None:
    confluence = connect(emulator)
    body = str(status("OK", "Green"))
    written = await confluence.upsert_page("INT", "Status page", body)
    saved = state_of(emulator.app).pages[int(written.page.id)]
    saved.body = body.replace('ac:name="status"', 'ac:name="status" ac:schema-version="1" ac:macro-id="4f1c"')

    again = await confluence.upsert_page("INT", "Status page", body)

    assert again.outcome == "unchanged"


async def test_malformed_storage_body_is_refused_with_confluence_message(
    emulator: Emulator, connect: ConnectorFactory
) -> None:
    with pytest.raises(BadRequest, match="Error parsing xhtml") as info:
        await connect(emulator).create_page("INT", "Broken", "<p>unclosed <strong>tag</p>")
    assert info.value.status == 400


async def test_body_over_five_megabytes_is_refused_with_413(
    emulator: Emulator, connect: ConnectorFactory
) -> None:
    too_big = "<p>" + "x" * (5 * 1024 * 1024) + "</p>"
    with pytest.raises(BadRequest) as info:
        await connect(emulator).create_page("INT", "Huge", too_big)
    assert info.value.status == 413
    assert "5242880" in info.value.detail


# ------------------------------------------------------------------- labels, files, search


async def test_added_labels_are_returned_and_found_by_cql(
    emulator: Emulator, connect: ConnectorFactory
) -> None:
    confluence = connect(emulator)
    page = await confluence.find_page("INT", "Runbooks")
    assert page is not None

    labels = await confluence.add_labels(page.id, ["release", "opsgate"])

    assert {(label.prefix, label.name) for label in labels} == {("global", "release"), ("global", "opsgate")}
    hits = [hit async for hit in confluence.search(f"space = INT AND label = {cql_literal('release')}")]
    assert [(hit.id, hit.title, hit.type) for hit in hits] == [(page.id, "Runbooks", "page")]


async def test_attach_file_uploads_multipart_and_versions_the_same_file_name(
    emulator: Emulator, connect: ConnectorFactory, wiring: Wiring
) -> None:
    confluence = connect(emulator)
    page = await confluence.find_page("INT", "Runbooks")
    assert page is not None

    first = await confluence.attach_file(
        page.id, "report.csv", b"a,b\n1,2\n", media_type="text/csv", comment="v1"
    )
    second = await confluence.attach_file(page.id, "report.csv", b"a,b\n3,4\n", media_type="text/csv")

    assert (first.title, first.version, first.file_size, first.media_type) == ("report.csv", 1, 8, "text/csv")
    assert (second.id, second.version) == (first.id, 2)
    stored = state_of(emulator.app).pages[int(page.id)].attachments
    assert [(a.title, a.data) for a in stored] == [("report.csv", b"a,b\n3,4\n")]
    upload = wiring.traffic(confluence).calls("PUT", "/child/attachment")[0]
    assert upload.headers["X-Atlassian-Token"] == "nocheck"
    assert upload.headers["content-type"].startswith("multipart/form-data")


async def test_search_follows_next_links_across_several_pages(
    emulator: Emulator, connect: ConnectorFactory, wiring: Wiring
) -> None:
    state = state_of(emulator.app)
    media = state.space_by_key("MEDIA")
    assert media is not None
    titles = [f"Batch {n}" for n in range(5)]
    for title in titles:
        state.add_page(media.id, title, "<p>batch</p>", media.homepage_id)
    confluence = connect(emulator)

    hits = [hit.title async for hit in confluence.search('space = MEDIA AND title ~ "Batch"', page_size=2)]

    assert hits == titles
    assert len(wiring.traffic(confluence).calls("GET", "/search")) == 3


async def test_search_stops_at_max_results(
    emulator: Emulator, connect: ConnectorFactory, wiring: Wiring
) -> None:
    confluence = connect(emulator)
    hits = [hit async for hit in confluence.search("space = INT", page_size=2, max_results=3)]
    assert len(hits) == 3
    assert len(wiring.traffic(confluence).calls("GET", "/search")) == 2


async def test_search_with_unparseable_cql_is_a_bad_request(
    emulator: Emulator, connect: ConnectorFactory
) -> None:
    with pytest.raises(BadRequest, match="Could not parse cql"):
        [hit async for hit in connect(emulator).search("space === INT")]


async def test_cql_literal_keeps_user_text_inside_the_string(
    emulator: Emulator, connect: ConnectorFactory
) -> None:
    confluence = connect(emulator)
    hostile_title = 'Runbooks" OR space = "SEC'
    hits = [hit async for hit in confluence.search(f"title = {cql_literal(hostile_title)}")]
    assert hits == []


# ------------------------------------------------------------------------------- pagination


async def test_iter_pages_reads_a_whole_space_in_several_requests(
    emulator: Emulator, connect: ConnectorFactory, wiring: Wiring
) -> None:
    state = state_of(emulator.app)
    media = state.space_by_key("MEDIA")
    assert media is not None
    for n in range(5):
        state.add_page(media.id, f"Asset {n}", "<p/>", media.homepage_id)
    confluence = connect(emulator)

    pages = [page async for page in confluence.iter_pages("MEDIA", page_size=2)]

    expected = [page.title for page in state.pages_in(media.id)]
    assert [page.title for page in pages] == expected
    assert len(expected) == 7
    listing = "/pages" if emulator.flavour == "cloud" else "/content"
    assert len(wiring.traffic(confluence).calls("GET", listing)) == 4


async def test_v2_cursor_is_followed_from_the_link_header_when_the_body_has_no_next(
    start_emulator: EmulatorFactory, connect: ConnectorFactory, wiring: Wiring
) -> None:
    emulator = await start_emulator("cloud", body_next_links=False)
    runbooks_id = next(p.id for p in state_of(emulator.app).pages.values() if p.title == "Runbooks")
    state = state_of(emulator.app)
    for n in range(3):
        state.add_page(state.pages[runbooks_id].space_id, f"Child {n}", "<p/>", runbooks_id)
    confluence = connect(emulator)

    children = [child.title async for child in confluence.iter_child_pages(str(runbooks_id), page_size=2)]

    assert children == ["Rotate credentials", "Promote artifacts", "Child 0", "Child 1", "Child 2"]
    assert len(wiring.traffic(confluence).calls("GET", "/children")) == 3


async def test_a_next_link_that_repeats_is_an_invalid_response(
    start_emulator: EmulatorFactory, connect: ConnectorFactory
) -> None:
    emulator = await start_emulator("cloud")
    loop = "/wiki/api/v2/pages/65541/children?cursor=same"
    await emulator.fault(
        path="/children",
        status=200,
        body={"results": [{"id": "1", "title": "again", "spaceId": "2"}], "_links": {"next": loop}},
    )
    with pytest.raises(InvalidResponse, match="repeats"):
        [child async for child in connect(emulator).iter_child_pages("65541")]


# --------------------------------------------------------------------- broken answers, auth


async def test_malformed_json_is_an_invalid_response(
    emulator: Emulator, connect: ConnectorFactory, wiring: Wiring
) -> None:
    wiring.check_responses = False
    confluence = connect(emulator)
    page = await confluence.find_page("INT", "Runbooks")
    assert page is not None
    await emulator.fault(path=rf"/{page.id}$", method="GET", malformed_json=True, times=1)

    with pytest.raises(InvalidResponse, match="not valid JSON"):
        await confluence.get_page(page.id)


async def test_json_of_the_wrong_shape_is_an_invalid_response(
    emulator: Emulator, connect: ConnectorFactory, wiring: Wiring
) -> None:
    wiring.check_responses = False
    confluence = connect(emulator)
    await emulator.fault(path=r"/\d+$", method="GET", status=200, body={"unexpected": True}, times=1)
    with pytest.raises(InvalidResponse, match="shape"):
        await confluence.get_page("65540")


async def test_wrong_credentials_are_an_auth_error_without_the_secret(
    emulator: Emulator, connect: ConnectorFactory
) -> None:
    secret = "not-the-right-secret-123"
    wrong = {"api_token": secret} if emulator.flavour == "cloud" else {"pat": secret}
    with pytest.raises(AuthError) as info:
        await connect(emulator, **wrong).get_space("INT")
    assert info.value.status == 401
    assert "Client must be authenticated" in info.value.detail or "Unauthorized" in info.value.detail
    assert secret not in str(info.value) and secret not in repr(info.value.__dict__)


async def test_unknown_pat_served_as_anonymous_is_caught_by_the_identity_check(
    start_emulator: EmulatorFactory, connect: ConnectorFactory
) -> None:
    emulator = await start_emulator("datacenter", anonymous_access=True)

    with pytest.raises(AuthError, match="anonymous"):
        await connect(emulator, pat="revoked-token").get_space("MKT")

    # Why the check exists: without it the revoked token silently reads as anonymous.
    unchecked = connect(emulator, pat="revoked-token", verify_identity=False)
    assert (await unchecked.get_space("MKT")).key == "MKT"
    with pytest.raises(NotFound):
        await unchecked.get_space("INT")


async def test_identity_is_verified_once_per_connector(
    start_emulator: EmulatorFactory, connect: ConnectorFactory, wiring: Wiring
) -> None:
    emulator = await start_emulator("datacenter")
    confluence = connect(emulator)
    await confluence.get_space("INT")
    await confluence.find_page("INT", "Runbooks")
    assert len(wiring.traffic(confluence).calls("GET", "/user/current")) == 1
    assert (await confluence.current_user()).type == "known"


async def test_rate_limited_call_waits_for_retry_after_then_succeeds(
    start_emulator: EmulatorFactory,
    flavour: Flavour,
    connect: ConnectorFactory,
    clock: FakeClock,
    wiring: Wiring,
) -> None:
    emulator = await start_emulator(
        flavour, rate_limit_per_second=0.5, rate_limit_burst=1, monotonic=clock.monotonic
    )
    confluence = connect(emulator, verify_identity=False) if flavour == "datacenter" else connect(emulator)
    await confluence.get_space("INT")

    page = await confluence.find_page("INT", "Runbooks")

    assert page is not None
    assert clock.sleeps == [2.0]
    assert [e.status for e in wiring.traffic(confluence).exchanges] == [200, 429, 200]


async def test_rate_limit_beyond_the_retries_is_rate_limited_with_retry_after(
    start_emulator: EmulatorFactory, flavour: Flavour, connect: ConnectorFactory, clock: FakeClock
) -> None:
    from connectors.http import HttpOptions

    emulator = await start_emulator(
        flavour, rate_limit_per_second=0.5, rate_limit_burst=1, monotonic=clock.monotonic
    )
    overrides = {"http": HttpOptions(max_retries=0)}
    if flavour == "datacenter":
        overrides["verify_identity"] = False  # type: ignore[assignment]
    confluence = connect(emulator, **overrides)
    await confluence.get_space("INT")
    with pytest.raises(RateLimited) as info:
        await confluence.find_page("INT", "Runbooks")
    assert info.value.retry_after == 2.0


# --------------------------------------------------------------------------- settings, spec


def test_settings_demand_the_credentials_of_their_flavour() -> None:
    with pytest.raises(ValueError, match="email and api_token"):
        ConfluenceSettings(flavour="cloud", base_url="https://x.atlassian.net", pat="p")
    with pytest.raises(ValueError, match="pat"):
        ConfluenceSettings(
            flavour="datacenter", base_url="https://wiki.example.com", email="a@b", api_token="t"
        )
    cloud = ConfluenceSettings(
        flavour="cloud", base_url="https://x.atlassian.net/wiki/", email="a@b", api_token="tok-123"
    )
    assert cloud.base_url == "https://x.atlassian.net"
    assert "tok-123" not in repr(cloud)


def test_spec_check_rejects_traffic_that_breaks_the_documented_operation(
    check_exchange: Callable[[Exchange], list[str]],
) -> None:
    def exchange(
        method: str, url: str, body: bytes = b"", *, status: int = 500, answer: bytes = b""
    ) -> Exchange:
        headers = httpx.Headers({"content-type": "application/json"} if body else {})
        answer_headers = httpx.Headers({"content-type": "application/json"})
        return Exchange(method, httpx.URL(url), headers, body, status, answer_headers, answer)

    def upload(fields: dict[str, str]) -> Exchange:
        request = httpx.Request(
            "PUT",
            "http://h/rest/api/content/1/child/attachment",
            files={"file": ("a.csv", b"x")},
            data=fields,
        )
        return Exchange("PUT", request.url, request.headers, request.read(), 500, httpx.Headers(), b"")

    assert check_exchange(exchange("GET", "http://h/wiki/api/v2/pages/123?body-format=storage")) == []
    assert check_exchange(exchange("POST", "http://h/wiki/api/v2/pages", b'{"title": "no space id"}'))
    assert check_exchange(exchange("GET", "http://h/wiki/api/v2/pages?limit=0"))
    assert check_exchange(exchange("GET", "http://h/wiki/api/v2/pages/abc"))
    assert check_exchange(exchange("PUT", "http://h/rest/api/content/1", b'{"title": "no version"}'))
    assert check_exchange(exchange("GET", "http://h/rest/api/undocumented"))
    assert check_exchange(upload({"minorEdit": "true"})) == []
    assert check_exchange(upload({}))  # minorEdit is a required multipart field
    content_without_type = exchange("GET", "http://h/rest/api/content/1", status=200, answer=b'{"id": "1"}')
    assert check_exchange(content_without_type)


async def test_datacenter_below_a_context_path_keeps_it_on_every_call_and_next_link(
    start_emulator: EmulatorFactory, connect: ConnectorFactory, wiring: Wiring
) -> None:
    emulator = await start_emulator("datacenter", context_path="/confluence")
    confluence = connect(emulator, base_url=f"{emulator.url}/confluence")

    written = await confluence.upsert_page("INT", "Context page", "<p>x</p>")
    await confluence.add_labels(written.page.id, ["ctx"])
    await confluence.attach_file(written.page.id, "a.txt", b"a")
    pages = [page.title async for page in confluence.iter_pages("INT", page_size=2)]
    hits = [hit.title async for hit in confluence.search("space = INT", page_size=2)]

    assert "Context page" in pages and "Context page" in hits
    assert written.page.web_url == f"{emulator.url}/confluence/spaces/INT/pages/{written.page.id}"
    paths = {exchange.url.path for exchange in wiring.traffic(confluence).exchanges}
    assert all(path.startswith("/confluence/rest/api/") for path in paths)


@pytest.mark.parametrize("page_id", ["../../admin", "1?x=1", "", "12/label", "\u0661\u0662"])
async def test_page_ids_that_are_not_numbers_never_reach_the_wire(
    emulator: Emulator, connect: ConnectorFactory, wiring: Wiring, page_id: str
) -> None:
    confluence = (
        connect(emulator, verify_identity=False) if emulator.flavour == "datacenter" else connect(emulator)
    )
    with pytest.raises(ValueError, match="numeric"):
        await confluence.get_page(page_id)
    with pytest.raises(ValueError, match="numeric"):
        await confluence.add_labels(page_id, ["x"])
    assert wiring.traffic(confluence).exchanges == []
