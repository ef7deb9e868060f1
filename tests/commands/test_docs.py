"""Documentation use cases against the OpenText and Confluence emulators over loopback HTTP.

One world per test: both emulators, connectors per environment (dr points at a port where
nothing listens), the approval use case on SQLite, and a frozen clock (Monday 2025-03-10 09:00 UTC,
ISO week 11) that the OpenText emulator shares, so deployment dates on the pages are stable.
"""

from __future__ import annotations

import socket
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web

from bot.config.opsgate import OpsgateConfig
from bot.db.engine import create_engine
from bot.db.migrate import upgrade_async
from bot.db.transaction import Database
from bot.domain.alerts import AlertStatus, AlertView, Severity
from bot.domain.audit import Fingerprinter
from bot.domain.policy import Action, StaticDirectory
from bot.domain.requests import ChangeSpec, FrozenClock
from bot.wiring.deps import RequestHistoryReader
from commands.alerts import IncidentPageRequest
from commands.approvals import Approvals
from commands.docs import (
    DocsCommands,
    alert_summary,
    incident_from_alert,
    incident_from_request,
    open_incident_page,
)
from commands.docs_pages import AlertSummary, IncidentDetails, TimelineEntry
from commands.release_checklist import cell_text
from commands.workflow import PrecheckFailed
from connectors.confluence import ConfluenceConnector, Page
from connectors.confluence_storage import AC_NAMESPACE, RI_NAMESPACE, parse_storage
from connectors.emulators import confluence as confluence_emulator
from connectors.emulators import opentext as opentext_emulator
from connectors.emulators.faults import start_app
from connectors.opentext import OpenTextConnector

from .approvals_world import EachCallCommits

NOW = datetime(2025, 3, 10, 9, 0, tzinfo=UTC)
REQUESTER = "U0REQUESTER"
APPROVER = "U0APPROVER"
HOSTILE = "Orders <script>alert('x')</script> & \"EDI\" ]]> done"
HOSTILE_SYSTEM = "SAP <S/4HANA> & partner ]]><b>portal</b>"
NO_RETRIES = {"max_retries": 0, "connect_timeout": 1}
SECRETS = ("opsgate-svc-secret", confluence_emulator.DEFAULT_API_TOKEN)
ENV_PAGE = "orders-edi: environments and deployments"


def unused_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def build_config(opentext_url: str, confluence_url: str, unreachable_url: str) -> OpsgateConfig:
    def opentext(url: str) -> dict[str, Any]:
        return {
            "base_url": url,
            "tenant_id": "acme-integration",
            "client_id": "opsgate-svc",
            "client_secret": "opsgate-svc-secret",
            "http": NO_RETRIES,
        }

    return OpsgateConfig.model_validate(
        {
            "environments": {
                "dev": {"description": "<dev> & friends", "opentext": opentext(opentext_url)},
                "test": {"opentext": opentext(opentext_url)},
                "prod": {
                    "production": True,
                    "opentext": opentext(opentext_url),
                    "confluence": {
                        "flavour": "cloud",
                        "base_url": confluence_url,
                        "email": confluence_emulator.DEFAULT_EMAIL,
                        "api_token": confluence_emulator.DEFAULT_API_TOKEN,
                        "http": NO_RETRIES,
                    },
                },
                "dr": {"opentext": opentext(unreachable_url)},
                "sandbox": {},
            },
            "solutions": [
                {
                    "name": "orders-edi",
                    "description": HOSTILE,
                    "team": "Team <Orders>",
                    "channel": "#orders-edi",
                    "confluence_space": "INT",
                    "artifacts": ["orders-edi.orders-d96a-to-xml", "orders-edi.orders-inbound-api"],
                    "downstream_systems": [HOSTILE_SYSTEM],
                },
                {"name": "invoices", "confluence_space": "MEDIA"},
                {"name": "shipping-notices"},
            ],
            "credentials": [
                {
                    "name": "orders-edi-prod",
                    "environment": "prod",
                    "credential_id": "orders-edi-prod-client",
                    "owner": "U0ORDERS",
                    "owner_channel": "C0ORDERS",
                    "schedule": "90d",
                },
                {
                    "name": "invoices-prod",
                    "environment": "prod",
                    "credential_id": "invoices-prod-client",
                    "owner": "U0INVOICES",
                    "schedule": "0 3 * * 1",
                },
            ],
            "policies": [
                {
                    "name": "non-production",
                    "action": "*",
                    "environment": "*",
                    "approvers": {"users": [APPROVER]},
                },
                {
                    "name": "production",
                    "action": "*",
                    "environment": "prod",
                    "approvers": {"users": [APPROVER]},
                    "windows": [
                        {
                            "kind": "allow",
                            "cron": "0 8 * * 1",
                            "duration": "4h",
                            "name": "Monday release slot",
                        },
                        {"kind": "deny", "cron": "0 18 * * 5", "duration": "60h", "name": "Weekend freeze"},
                    ],
                },
            ],
        }
    )


@dataclass
class World:
    clock: FrozenClock
    opentext_app: web.Application
    confluence_url: str
    config: OpsgateConfig
    wiki: ConfluenceConnector
    opentext: dict[str, OpenTextConnector]
    engine: EachCallCommits
    docs: DocsCommands

    @property
    def ot(self) -> opentext_emulator.OpenTextState:
        return opentext_emulator.opentext_state_of(self.opentext_app)

    async def fault(self, **spec: Any) -> None:
        async with httpx.AsyncClient(base_url=self.confluence_url) as client:
            (await client.post("/_control/faults", json=spec)).raise_for_status()

    async def titles(self, space: str) -> list[str]:
        return [page.title async for page in self.wiki.iter_pages(space)]

    async def page(self, space: str, title: str) -> Page:
        page = await self.wiki.find_page(space, title)
        assert page is not None, f"no page {title!r} in {space}"
        return page


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    clock = FrozenClock(NOW)
    opentext_app = opentext_emulator.create_app(
        clock=lambda: NOW, job_seconds_per_step=None, rate_per_second=None
    )
    confluence_app = confluence_emulator.create_app(flavour="cloud")
    ot_runner, ot_url = await start_app(opentext_app)
    wiki_runner, wiki_url = await start_app(confluence_app)
    config = build_config(ot_url, wiki_url, unused_port_url())
    database = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'opsgate.db'}")
    await upgrade_async(database)
    opentext = {
        name: OpenTextConnector(env.opentext) for name, env in config.environments.items() if env.opentext
    }
    prod_wiki = config.environments["prod"].confluence
    assert prod_wiki is not None
    wiki = ConfluenceConnector(prod_wiki)
    approvals = Approvals(config.policy_set(), StaticDirectory({}), clock=clock)
    store = Database(database, clock=clock, fingerprinter=Fingerprinter(b"test-fingerprint-key-0123456789"))
    engine = EachCallCommits(approvals, store)
    docs = DocsCommands(
        config=config,
        confluence_for=lambda environment: {"prod": wiki}[environment],
        opentext_for=lambda environment: opentext[environment],
        requests=RequestHistoryReader(store, approvals),
        clock=clock,
    )
    try:
        yield World(clock, opentext_app, wiki_url, config, wiki, opentext, engine, docs)
    finally:
        await wiki.aclose()
        for connector in opentext.values():
            await connector.aclose()
        await database.dispose()
        await ot_runner.cleanup()
        await wiki_runner.cleanup()


def text_of(element: ET.Element) -> str:
    """What a reader sees (a status lozenge reads as its title)."""
    return cell_text(element)


def section_tables(body: str) -> dict[str, list[list[str]]]:
    """Each h2 heading's first table, as rows of cell texts."""
    root = parse_storage(body)
    tables: dict[str, list[list[str]]] = {}
    heading = ""
    for element in root:
        if element.tag == "h2":
            heading = text_of(element)
        elif element.tag == "table" and heading not in tables:
            tables[heading] = [[text_of(cell) for cell in row] for row in element.iter("tr")]
    return tables


def h2_sections(body: str) -> list[str]:
    return [text_of(h) for h in parse_storage(body).iter("h2")]


# ------------------------------------------------------------------------------ publish-docs


async def test_publish_docs_creates_the_environment_page_with_versions_per_environment(world: World) -> None:
    reply = await world.docs.publish_docs("orders-edi")

    page = await world.page("INT", ENV_PAGE)
    assert f"orders-edi: created <{page.web_url}|{ENV_PAGE}>" in reply
    assert "OpenText could not be read in dr" in reply
    tables = section_tables(page.body)
    versions = {row[0]: row[1:] for row in tables["Deployed versions"]}
    assert versions["Artifact"] == ["dev", "test", "prod", "dr"]
    assert versions["orders-edi.orders-d96a-to-xml"] == [
        "2.4.1 since 2025-03-04",
        "2.4.0 since 2025-02-06",
        "2.3.0 since 2024-11-15",
        "unknown",
    ]
    assert versions["orders-edi.orders-as2-partners"][:3] == [
        "1.1.0 since 2025-01-19",
        "1.1.0 since 2025-01-21",
        "1.1.0 since 2025-01-24",
    ]
    environments = {row[0]: row for row in tables["Environments"]}
    assert environments["sandbox"][3] == "OpenText not connected"
    assert environments["prod"][1] == "Production"
    owners = tables["Credential ownership"]
    assert [row[0] for row in owners[1:]] == ["orders-edi-prod"]
    assert owners[1][3:6] == ["U0ORDERS", "C0ORDERS", "every 90d"]
    endpoints = {(row[0], row[1]): row[2] for row in tables["Endpoints"][1:]}
    opentext_url = world.config.environments["prod"].opentext
    assert opentext_url is not None
    assert endpoints[("prod", "OpenText admin API")] == opentext_url.api_base_url
    assert endpoints[("prod", "Confluence")] == world.confluence_url
    assert {"Deployment", "Rollback", "Downstream systems"} <= set(h2_sections(page.body))
    assert not any(secret in page.body for secret in SECRETS)


async def test_publishing_again_leaves_the_page_unchanged_and_a_new_deployment_updates_it_in_place(
    world: World,
) -> None:
    await world.docs.publish_docs("orders-edi")
    first = await world.page("INT", ENV_PAGE)

    again = await world.docs.publish_environment_pages("orders-edi")
    assert [p.outcome for p in again] == ["unchanged"]
    assert (await world.page("INT", ENV_PAGE)).version == first.version

    deployed = world.ot.deployments[("prod", "orders-edi.orders-d96a-to-xml")]
    deployed.version = "2.4.1"
    reply = await world.docs.publish_docs("orders-edi")

    assert "orders-edi: updated" in reply
    updated = await world.page("INT", ENV_PAGE)
    assert (updated.id, updated.version) == (first.id, first.version + 1)
    versions = {row[0]: row[1:] for row in section_tables(updated.body)["Deployed versions"]}
    assert versions["orders-edi.orders-d96a-to-xml"][2].startswith("2.4.1")
    assert (await world.titles("INT")).count(ENV_PAGE) == 1


async def test_publishing_every_solution_skips_those_without_a_space(world: World) -> None:
    reply = await world.docs.publish_docs()

    lines = reply.splitlines()
    assert lines[1].startswith("• orders-edi: created")
    assert lines[2].startswith("• invoices: created")
    assert lines[3] == "• shipping-notices: skipped: no confluence_space configured for this solution"
    assert "invoices: environments and deployments" in await world.titles("MEDIA")


async def test_publishing_an_unknown_solution_is_refused_with_the_known_ones(world: World) -> None:
    with pytest.raises(
        PrecheckFailed, match=r"Unknown solution 'billing'\. Configured: orders-edi, invoices"
    ):
        await world.docs.publish_docs("billing")


async def test_a_confluence_failure_is_reported_for_the_solution_it_hit(world: World) -> None:
    await world.fault(path="/wiki/api/v2/pages$", method="POST", status=500)

    reply = await world.docs.publish_docs("orders-edi")

    assert "• orders-edi: failed: Confluence:" in reply
    assert ENV_PAGE not in await world.titles("INT")


async def test_hostile_config_text_stays_text_on_the_published_page(world: World) -> None:
    await world.docs.publish_docs("orders-edi")

    root = parse_storage((await world.page("INT", ENV_PAGE)).body)
    text = "".join(root.itertext())
    assert HOSTILE in text
    assert HOSTILE_SYSTEM in text
    assert "Team <Orders>" in text
    assert "<dev> & friends" in text
    assert not list(root.iter("script"))
    assert [text_of(b) for b in root.iter("b")] == []


# --------------------------------------------------------------------------------- readiness

CHECKLIST = """<h1>Release 2025.03</h1><p>Sign-off&nbsp;table:</p>
<table class="wrapped"><colgroup><col /><col /><col /><col /><col /><col /></colgroup><tbody>
<tr><th>#</th><th><p><strong>Artifact</strong></p></th><th>Environment</th><th>Owner</th>
    <th>Expected&nbsp;version</th><th>Current version</th></tr>
<tr><td>1</td><td><p>  orders-edi.orders-d96a-to-xml  </p></td><td>dev</td><td>Maria</td><td> v2.4.1 </td><td>?</td></tr>
<tr><td>2</td><td rowspan="2"><ac:link><ri:page ri:content-title="orders-inbound-api" /></ac:link></td>
    <td>PROD</td><td /><td>1.2.0</td><td /></tr>
<tr><td>3</td><td>test</td><td /><td>1.2.0</td><td /></tr>
<tr><td>4</td><td><a href="https://ot.example/a/1">invoices.invoice-sftp-delivery</a></td><td>prod</td><td />
    <td><ac:structured-macro ac:name="status"><ac:parameter ac:name="colour">Green</ac:parameter>
    <ac:parameter ac:name="title">1.0.0</ac:parameter></ac:structured-macro></td><td /></tr>
<tr><td>5</td><td>orders-edi.ghost-map</td><td>dev</td><td /><td>1.0.0</td><td /></tr>
<tr><td>6</td><td>orders-edi.orders-as2-partners</td><td>staging</td><td /><td>1.1.0</td><td /></tr>
<tr><td>7</td><td>orders-edi.orders-as2-partners</td><td>dr</td><td /><td>1.1.0</td><td /></tr>
<tr><td>8</td><td>invoices.invoice-xml-to-ubl</td><td>test</td><td /><td> </td><td /></tr>
</tbody></table>"""

CLEAN_CHECKLIST = """<table><tbody>
<tr><td><strong>Artifact</strong></td><td><strong>Env</strong></td><td><strong>Version</strong></td></tr>
<tr><td>orders-edi.orders-as2-partners</td><td>prod</td><td>1.1.0</td></tr>
<tr><td>invoices.invoice-outbound-api</td><td>test</td><td>3.0.0</td></tr>
</tbody></table>"""


async def test_readiness_reports_every_kind_of_drift_between_the_checklist_and_opentext(world: World) -> None:
    await world.wiki.create_page("INT", "Release 2025.03 checklist", CHECKLIST)

    report = await world.docs.check_readiness("Release 2025.03 checklist")

    states = [(c.row.artifact, c.row.environment, c.state) for c in report.checks]
    assert states == [
        ("orders-edi.orders-d96a-to-xml", "dev", "ok"),
        ("orders-inbound-api", "PROD", "different_version"),
        ("orders-inbound-api", "test", "ok"),
        ("invoices.invoice-sftp-delivery", "prod", "not_deployed"),
        ("orders-edi.ghost-map", "dev", "missing"),
        ("orders-edi.orders-as2-partners", "staging", "unknown_environment"),
        ("orders-edi.orders-as2-partners", "dr", "unavailable"),
    ]
    assert report.checks[1].deployed_version == "1.1.0"
    assert report.problems == ("table 1, row 9: no expected version; row skipped",)
    assert not report.ready

    reply = await world.docs.readiness("Release 2025.03 checklist")
    lines = reply.splitlines()
    assert lines[0].endswith("|Release 2025.03 checklist>*: 5 of 7 rows differ from OpenText.")
    assert "• `orders-inbound-api` in *PROD*: expected 1.2.0, OpenText runs 1.1.0" in lines
    assert "• `invoices.invoice-sftp-delivery` in *prod*: expected 1.0.0, not deployed" in lines
    assert "• `orders-edi.ghost-map` in *dev*: expected 1.0.0, OpenText knows no such artifact" in lines
    assert "1 row(s) could not be read:" in lines


async def test_readiness_without_drift_says_every_row_matches(world: World) -> None:
    page = await world.wiki.create_page("INT", "Release 2025.04 checklist", CLEAN_CHECKLIST)

    reply = await world.docs.readiness(page.id)

    assert reply.endswith("|Release 2025.04 checklist>*: all 2 rows match OpenText.")


async def test_readiness_of_a_page_that_does_not_exist_names_where_it_looked(world: World) -> None:
    with pytest.raises(PrecheckFailed, match="No page titled 'Nope' in INT, MEDIA"):
        await world.docs.readiness("Nope")
    with pytest.raises(PrecheckFailed, match="no page with id 999999"):
        await world.docs.readiness("999999")


async def test_readiness_of_a_page_without_a_checklist_table_explains_the_expected_columns(
    world: World,
) -> None:
    await world.wiki.create_page("INT", "Notes", "<table><tr><td>Owner</td><td>Maria</td></tr></table>")

    with pytest.raises(PrecheckFailed, match="Artifact, Environment and Expected version"):
        await world.docs.readiness("Notes")


# ---------------------------------------------------------------------------------- incidents


def failing_alert() -> AlertView:
    return AlertView(
        id=12,
        dedup_key="opentext:prod:orders",
        source="workflow",
        severity=Severity.CRITICAL,
        environment="prod",
        system="opentext",
        title="ORDERS <D96A> rejected & queued",
        summary="Partner GLOBEX orders fail schema validation.",
        labels={"message_types": "ORDERS D96A, DESADV", "solution": "orders-edi"},
        status=AlertStatus.FIRING,
        occurrences=3,
        first_seen=NOW - timedelta(minutes=30),
        last_seen=NOW - timedelta(minutes=5),
        channel="C0ALERTS",
        acknowledged_by="U0ONCALL",
        acknowledged_at=NOW - timedelta(minutes=20),
    )


async def test_an_incident_page_has_every_section_and_a_second_click_returns_the_same_page(
    world: World,
) -> None:
    incident = incident_from_alert(failing_alert(), world.config)

    url = await world.docs.open_incident(incident)

    title = "Incident ALR-12: ORDERS <D96A> rejected & queued (prod)"
    page = await world.page("INT", title)
    assert url == page.web_url
    assert h2_sections(page.body) == [
        "Summary",
        "Failed message types",
        "Affected endpoints and systems",
        "Timeline",
        "Impact",
        "Remediation",
        "Root cause",
        "Follow-up actions",
    ]
    root = parse_storage(page.body)
    bullets = [text_of(li) for li in root.iter("li")]
    assert bullets[:2] == ["ORDERS D96A", "DESADV"]
    opentext = world.config.environments["prod"].opentext
    assert opentext is not None
    assert opentext.api_base_url in bullets
    assert HOSTILE_SYSTEM in bullets
    timeline = section_tables(page.body)["Timeline"]
    assert [row[1] for row in timeline[1:]] == [
        "First seen (workflow): ORDERS <D96A> rejected & queued",
        "Acknowledged by U0ONCALL",
        "Last seen (3 occurrences)",
    ]
    assert "Fill in after the incident" in page.body

    # People write into the page; opening the incident again must not overwrite them.
    edited = page.body + "<p>Root cause: expired partner certificate.</p>"
    await world.wiki.update_page(page, body=edited)
    assert await world.docs.open_incident(incident) == url
    again = await world.page("INT", title)
    assert (again.version, again.body) == (page.version + 1, edited)
    assert (await world.titles("INT")).count(title) == 1


async def test_the_alert_button_opens_the_page_in_the_space_of_the_alerts_solution(world: World) -> None:
    alert = replace(failing_alert(), labels={"solution": "invoices"}, id=13)

    url = await world.docs.incident_page_for_alert(IncidentPageRequest(alert, "U0ONCALL"))

    page = await world.page("MEDIA", "Incident ALR-13: ORDERS <D96A> rejected & queued (prod)")
    assert url == page.web_url
    facts = {row[0]: row[1] for row in section_tables("<h2>-</h2>" + page.body)["-"]}
    assert (facts["Opened by"], facts["Severity"], facts["Opened"]) == (
        "U0ONCALL",
        "critical",
        "2025-03-10 09:00 UTC",
    )


async def test_an_incident_page_from_a_failed_request_lists_its_timeline_and_endpoints(world: World) -> None:
    spec = ChangeSpec(Action.PROMOTION, "orders-edi.orders-inbound-api", "test", {"version": "1.2.0"})
    request = await world.engine.create(spec, requester=REQUESTER, reason="GLOBEX go-live")
    await world.engine.approve(request.human_id, approver=APPROVER)
    await world.engine.start_execution(request.human_id)
    failed = await world.engine.fail(request.human_id, reason="OpenText job JOB-7 failed: schema error")

    url = await open_incident_page(
        world.wiki, space="MEDIA", incident=incident_from_request(failed, world.config), opened_at=NOW
    )

    page = await world.page(
        "MEDIA", "Incident PRM-1: promotion of orders-edi.orders-inbound-api failed (test)"
    )
    assert url == page.web_url
    timeline = section_tables(page.body)["Timeline"]
    assert [row[1] for row in timeline[1:]] == [
        f"{REQUESTER} requested it: GLOBEX go-live",
        f"{APPROVER} approved",
        "opsgate started the change",
        "failed: OpenText job JOB-7 failed: schema error",
    ]
    assert "OpenText job JOB-7 failed: schema error" in text_of(parse_storage(page.body))


async def test_a_hostile_incident_stays_text_and_empty_sections_carry_guidance(world: World) -> None:
    incident = IncidentDetails(
        source_ref="ALR-99",
        title="]]><script>x</script>",
        environment="prod",
        summary="<ac:structured-macro ac:name='html'>boom</ac:structured-macro> & more",
        timeline=(TimelineEntry(NOW, "<b>not bold</b>"),),
    )

    await world.docs.open_incident(incident, space="MEDIA")

    page = await world.page("MEDIA", "Incident ALR-99: ]]><script>x</script> (prod)")
    root = parse_storage(page.body)
    assert not list(root.iter("script")) and not list(root.iter("b"))
    assert incident.summary in "".join(root.itertext())
    macros = [m.get(f"{{{AC_NAMESPACE}}}name") for m in root.iter(f"{{{AC_NAMESPACE}}}structured-macro")]
    assert "html" not in macros
    assert "None were recorded: list the message types" in page.body
    assert "List the endpoints and downstream systems" in page.body


# ------------------------------------------------------------------------------- weekly status


async def make_week_of_changes(world: World) -> None:
    """Before the week: one success. This week: a prod failure, a test success, a pending, a cancel."""
    engine, clock = world.engine, world.clock
    clock.now = datetime(2025, 3, 1, 10, 0, tzinfo=UTC)
    old = await engine.create(
        ChangeSpec(Action.PROMOTION, "invoices.invoice-xml-to-ubl", "test"), requester=REQUESTER
    )
    await engine.approve(old.human_id, approver=APPROVER)
    await engine.start_execution(old.human_id)
    await engine.succeed(old.human_id, result={})

    clock.now = NOW  # Monday 09:00, inside the production release slot
    prod = await engine.create(
        ChangeSpec(Action.PROMOTION, "orders-edi.orders-inbound-api", "prod"), requester=REQUESTER
    )
    await engine.approve(prod.human_id, approver=APPROVER)
    await engine.start_execution(prod.human_id)
    await engine.fail(prod.human_id, reason="verification failed")
    test = await engine.create(
        ChangeSpec(Action.PROMOTION, "orders-edi.orders-d96a-to-xml", "test"), requester=REQUESTER
    )
    await engine.approve(test.human_id, approver=APPROVER)
    await engine.start_execution(test.human_id)
    await engine.succeed(test.human_id, result={})
    await engine.create(ChangeSpec(Action.ROTATION, "orders-edi-dev", "dev"), requester=REQUESTER)
    cancelled = await engine.create(ChangeSpec(Action.RELEASE, "asset-1", "dev"), requester=REQUESTER)
    await engine.cancel(cancelled.human_id, user=REQUESTER)


ALERTS = [
    AlertSummary("ALR-2", "Disk filling", "warning", "dev", since=NOW),
    AlertSummary("ALR-1", "Orders <rejected>", "critical", "prod", since=NOW - timedelta(hours=1)),
]


async def test_the_weekly_summary_counts_this_weeks_changes_alerts_and_upcoming_windows(world: World) -> None:
    await make_week_of_changes(world)
    world.clock.now = datetime(2025, 3, 12, 9, 0, tzinfo=UTC)  # Wednesday of week 11

    published = await world.docs.publish_weekly_summary(ALERTS)

    assert published.page.outcome == "created"
    page = await world.page("INT", "Ops status 2025-W11")
    tables = section_tables(page.body)
    totals = parse_storage(page.body).find("table")
    assert totals is not None
    assert [[text_of(c) for c in row] for row in totals.iter("tr")][1] == ["4", "1", "1", "1", "1", "0", "2"]
    environments = {row[0]: row[1:] for row in tables["Environment status"][1:]}
    assert environments["prod (production)"] == ["Attention", "healthy", "1", "1", "0", "1"]
    assert environments["dev"] == ["Watch", "healthy", "2", "0", "1", "1"]
    assert environments["dr"][1].startswith("unreachable: ")
    assert environments["sandbox"][:2] == ["Not connected", "not connected"]
    changes = tables["Changes this week"]
    assert [row[0] for row in changes[1:]] == ["PRM-2", "PRM-3", "ROT-1", "REL-1"]
    assert [row[0] for row in tables["Open alerts"][1:]] == ["ALR-1", "ALR-2"]
    windows = [(row[2], row[4]) for row in tables["Upcoming change windows"][1:]]
    assert windows == [
        ("Weekend freeze", "2025-03-14 18:00 UTC"),
        ("Monday release slot", "2025-03-17 08:00 UTC"),
    ]
    text = published.text
    assert text.startswith(
        "*Ops status 2025-W11*: 4 change(s): 1 succeeded, 1 failed, 1 in flight; 2 open alert(s) (1 critical)."
    )
    assert "Needs attention: prod, dr." in text
    assert "Next change window: Weekend freeze (production, prod) opens Fri 14 Mar 18:00 UTC." in text
    assert text.endswith(f"<{page.web_url}|Details in Confluence>")
    assert "Orders &lt;rejected&gt;" not in text  # alert titles stay on the page, not in the channel
    assert "Orders <rejected>" in "".join(parse_storage(page.body).itertext())


async def test_the_weekly_page_is_one_page_per_iso_week_updated_in_place(world: World) -> None:
    await make_week_of_changes(world)
    world.clock.now = datetime(2025, 3, 12, 9, 0, tzinfo=UTC)
    await world.docs.publish_weekly_summary(ALERTS)
    first = await world.page("INT", "Ops status 2025-W11")

    same = await world.docs.publish_weekly_summary(ALERTS)
    assert same.page.outcome == "unchanged"
    fewer = await world.docs.publish_weekly_summary(ALERTS[:1])
    assert (fewer.page.outcome, fewer.page.page.id) == ("updated", first.id)

    world.clock.now = datetime(2025, 3, 17, 7, 0, tzinfo=UTC)  # Monday of week 12
    next_week = await world.docs.publish_weekly_summary([])
    assert next_week.page.outcome == "created"
    assert next_week.summary.changes == ()
    titles = await world.titles("INT")
    assert (titles.count("Ops status 2025-W11"), titles.count("Ops status 2025-W12")) == (1, 1)
    assert "Monday release slot" in next_week.text


async def test_the_week_is_the_iso_week_even_across_new_year(world: World) -> None:
    world.clock.now = datetime(2027, 1, 1, 12, 0, tzinfo=UTC)  # a Friday: ISO week 53 of 2026

    summary = await world.docs.weekly_summary([])

    assert (summary.label, summary.starts, summary.ends) == (
        "2026-W53",
        datetime(2026, 12, 28, tzinfo=UTC),
        datetime(2027, 1, 4, tzinfo=UTC),
    )


def test_an_alert_becomes_a_weekly_summary_line() -> None:
    summary = alert_summary(failing_alert())
    assert summary == AlertSummary(
        "ALR-12", "ORDERS <D96A> rejected & queued", "critical", "prod", "firing", NOW - timedelta(minutes=30)
    )


async def test_every_published_page_is_well_formed_storage_with_the_ac_and_ri_namespaces(
    world: World,
) -> None:
    await world.docs.publish_docs()
    await world.docs.open_incident(incident_from_alert(failing_alert(), world.config))
    await world.docs.publish_weekly_summary(ALERTS)

    ours = [t for t in await world.titles("INT") if t.startswith(("orders-edi:", "Incident", "Ops status"))]
    assert len(ours) == 3
    for title in ours:
        body = (await world.page("INT", title)).body
        ET.fromstring(f'<root xmlns:ac="{AC_NAMESPACE}" xmlns:ri="{RI_NAMESPACE}">{body}</root>')
