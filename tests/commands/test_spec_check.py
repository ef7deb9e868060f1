"""Interface specification pages against OpenText: the page reader, `/ops spec-check` over the
OpenText and Confluence emulators, and the drift alert raised and resolved through AlertService."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from bot.alerts.service import AlertService
from bot.config.alerts import AlertsConfig
from bot.domain.alerts import AlertStatus
from bot.jobs.outbox import Outbox
from commands.interface_spec import SpecError, SpecRow, parse_interface_spec
from commands.spec_check import SPEC_LABEL, SpecChecker, SpecDriftMonitor, spec_drift_key
from commands.workflow import PrecheckFailed
from connectors import confluence_storage as storage

from .opentext_world import World, world

__all__ = ["world"]  # the fixture, imported for pytest

ENVIRONMENTS = ("dev", "test", "prod")
HEADER = ["Message type", "Endpoint", "Test version", "Prod version"]
# What the OpenText emulator's seed runs in test and prod for the orders-edi solution.
IN_SYNC = [
    ["ORDERS D96A (inbound)", "orders-inbound-api", "1.2.0", "1.1.0"],
    ["ORDERS D96A to order XML", "orders-edi.orders-d96a-to-xml", "2.4.0", "2.3.0"],
    ["AS2 partner profiles", "orders-as2-partners", "v1.1.0", "1.1.0"],
]
DRIFTED = [
    ["ORDERS D96A (inbound)", "orders-inbound-api", "1.2.0", "1.2.0"],  # prod runs 1.1.0
    ["ORDERS D96A to order XML", "orders-edi.orders-d96a-to-xml", "2.4.0", "2.3.0"],
    ["DESADV D96A", "desadv-outbound-api", "1.0.0", "\u2014"],  # OpenText has no such artifact
    # AS2 partner profiles left out: OpenText runs them in test and prod
]


def spec_body(rows: Sequence[Sequence[str]], header: Sequence[str] = HEADER) -> str:
    return (
        storage.Document()
        .heading(1, "Orders EDI interface specification")
        .paragraph("Maintained by the integration architects.")
        .table(list(header), [list(row) for row in rows])
        .render()
    )


def rows_of(body: str, environments: Sequence[str] = ENVIRONMENTS) -> list[tuple[Any, ...]]:
    spec = parse_interface_spec(body, environments)
    return [(r.message_type, r.endpoint, r.environment, r.expected_version) for r in spec.rows]


# --- reading the page -----------------------------------------------------------------------------


def test_per_environment_version_columns_give_one_row_per_environment():
    assert rows_of(spec_body(IN_SYNC[:1])) == [
        ("ORDERS D96A (inbound)", "orders-inbound-api", "test", "1.2.0"),
        ("ORDERS D96A (inbound)", "orders-inbound-api", "prod", "1.1.0"),
    ]


def test_an_environment_column_with_a_version_column_is_read_row_by_row():
    body = (
        "<table><tbody><tr><td>Interface catalogue</td></tr>"
        "<tr><th>Env</th><th>Notes</th><th>Msg type</th><th>Expected version</th><th>Deployed version</th>"
        "<th>Artifact</th></tr>"
        "<tr><td>PROD</td><td>x</td><td>INVOIC</td><td>v3.0.0</td><td>2.9</td><td>invoice-outbound-api</td></tr>"
        "</tbody></table>"
    )
    assert rows_of(body) == [("INVOIC", "invoice-outbound-api", "PROD", "3.0.0")]


def test_the_heading_above_a_table_names_its_environment():
    body = (
        "<h2>Test (test)</h2><table><tbody><tr><th>Message</th><th>Endpoint</th><th>Version</th></tr>"
        "<tr><td>ORDERS</td><td>orders-inbound-api</td><td>1.2.0</td></tr></tbody></table>"
        "<h2>Production: prod</h2><table><tbody><tr><th>Message</th><th>Endpoint</th><th>Version</th></tr>"
        "<tr><td>ORDERS</td><td>orders-inbound-api</td><td>1.1.0</td></tr></tbody></table>"
    )
    assert rows_of(body) == [
        ("ORDERS", "orders-inbound-api", "test", "1.2.0"),
        ("ORDERS", "orders-inbound-api", "prod", "1.1.0"),
    ]


def test_links_lozenges_and_merged_cells_are_read_by_their_text():
    body = (
        "<table><tbody><tr><th>Message type</th><th>Endpoint</th><th>Version (prod)</th></tr>"
        '<tr><td rowspan="2">ORDERS</td><td><ac:link><ri:page ri:content-title="orders-inbound-api" /></ac:link>'
        '</td><td><ac:structured-macro ac:name="status"><ac:parameter ac:name="title">1.1.0</ac:parameter>'
        "</ac:structured-macro></td></tr>"
        "<tr><td>orders-as2-partners</td><td>1.1.0</td></tr></tbody></table>"
    )
    assert rows_of(body) == [
        ("ORDERS", "orders-inbound-api", "prod", "1.1.0"),
        ("ORDERS", "orders-as2-partners", "prod", "1.1.0"),
    ]


def test_a_dash_or_not_deployed_means_the_artifact_must_not_run_there():
    assert rows_of(spec_body([["DESADV", "desadv-api", "not deployed", "\u2014"]])) == [
        ("DESADV", "desadv-api", "test", None),
        ("DESADV", "desadv-api", "prod", None),
    ]


def test_rows_it_cannot_use_are_reported_not_guessed():
    spec = parse_interface_spec(
        spec_body([["ORDERS", "", "1.2.0", "1.1.0"], ["INVOIC", "invoice-outbound-api", "", ""]]),
        ENVIRONMENTS,
    )
    assert spec.rows == ()
    assert spec.problems == (
        "table 1, row 2: no endpoint or artifact for ORDERS; row skipped",
        "table 1, row 3: no version in any environment for invoice-outbound-api; row skipped",
    )


def test_a_table_without_any_environment_is_reported():
    body = "<table><tbody><tr><th>Message</th><th>Endpoint</th><th>Version</th></tr></tbody></table>"
    assert parse_interface_spec(body, ENVIRONMENTS).problems[0].startswith("table 1: no environment")


def test_a_page_without_a_specification_table_says_what_to_add():
    with pytest.raises(SpecError, match="Message type, Endpoint \\(or Artifact\\) and Version"):
        parse_interface_spec("<p>Nothing here yet.</p>", ENVIRONMENTS)


def test_a_row_says_where_it_came_from():
    assert SpecRow("ORDERS", "x", "prod", "1.0", 2, 5).where == "table 2, row 5"


# --- comparing with OpenText ----------------------------------------------------------------------


def checker(world: World) -> SpecChecker:
    return SpecChecker(world.config, world.registry.confluence, world.registry.opentext)


async def publish(world: World, rows: Sequence[Sequence[str]], *, title: str = "Orders EDI interface spec",
                  header: Sequence[str] = HEADER, label: bool = True) -> str:  # fmt: skip
    confluence = world.registry.confluence("prod")
    write = await confluence.upsert_page("INT", title, spec_body(rows, header))
    if label:
        await confluence.add_labels(write.page.id, [SPEC_LABEL])
    return write.page.id


async def test_a_page_that_matches_opentext_reports_no_difference(world):
    page_id = await publish(world, IN_SYNC)

    report = await checker(world).check(page_id)
    reply = await checker(world).spec_check("Orders EDI interface spec")

    assert report.in_sync and report.differences == ()
    assert [f.state for f in report.findings] == ["ok"] * 6
    assert "all 6 rows match OpenText" in reply


async def test_every_difference_between_the_page_and_opentext_is_reported(world):
    page_id = await publish(world, DRIFTED)

    report = await checker(world).check(page_id)

    assert sorted((f.state, f.environment, f.endpoint) for f in report.differences) == [
        ("different_version", "prod", "orders-inbound-api"),
        ("missing", "test", "desadv-outbound-api"),
        ("undocumented", "prod", "orders-edi.orders-as2-partners"),
        ("undocumented", "test", "orders-edi.orders-as2-partners"),
    ]
    reply = await checker(world).spec_check(page_id)
    assert "4 difference(s) from OpenText" in reply
    assert "prod: ORDERS D96A (inbound) via orders-inbound-api: the spec says 1.2.0, OpenText runs " in reply
    assert "test: DESADV D96A via desadv-outbound-api: OpenText has no artifact by that id or name" in reply
    assert "OpenText runs orders-edi.orders-as2-partners 1.1.0; the spec does not list it here" in reply


async def test_an_artifact_running_where_the_spec_says_it_must_not_is_a_difference(world):
    page_id = await publish(
        world, [*IN_SYNC[:2], ["AS2 partner profiles", "orders-as2-partners", "1.1.0", "-"]]
    )

    [difference] = (await checker(world).check(page_id)).differences

    assert (difference.state, difference.environment) == ("unexpected_deployment", "prod")
    assert (
        difference.detail == "the spec says not deployed, OpenText runs orders-edi.orders-as2-partners 1.1.0"
    )


async def test_unknown_and_unreachable_environments_are_reported_apart_from_version_drift(world):
    header = ["Message type", "Endpoint", "Environment", "Version"]
    rows = [
        ["ORDERS", "orders-inbound-api", "staging", "1.2.0"],
        ["ORDERS", "orders-inbound-api", "dr", "1.1.0"],
    ]
    page_id = await publish(world, rows, header=header)

    report = await checker(world).check(page_id)

    assert [f.state for f in report.differences] == ["unknown_environment"]
    assert [f.environment for f in report.unchecked] == ["dr"]
    reply = await checker(world).spec_check(page_id)
    assert "1 row(s) could not be checked (dr): OpenText could not be read" in reply


async def test_a_page_that_does_not_exist_is_refused_with_a_reason(world):
    with pytest.raises(PrecheckFailed, match="No page titled 'Nope' in INT"):
        await checker(world).check("Nope")
    with pytest.raises(PrecheckFailed, match="Confluence has no page with id 999999"):
        await checker(world).check("999999")


# --- the drift alert ------------------------------------------------------------------------------


def alert_service(database: Any, world: World) -> AlertService:
    return AlertService(
        database.sessions, world.clock, AlertsConfig(default_channel="C_ALERTS"), Outbox(world.clock)
    )


async def open_alerts(alerts: AlertService) -> list[Any]:
    views, _ = await alerts.list_alerts()
    return views


async def test_drift_raises_one_alert_per_page_and_resolves_it_when_the_page_matches_again(database, world):
    alerts = alert_service(database, world)
    monitor = SpecDriftMonitor(checker(world), alerts)
    page_id = await publish(world, DRIFTED)

    first = await monitor.check(page_id)
    again = await monitor.check("Orders EDI interface spec")  # by title: the same page, the same alert

    assert (first.state, first.alert) == ("drift", "raised")
    [alert] = await open_alerts(alerts)
    assert alert.dedup_key == spec_drift_key(page_id) and again.alert_id == alert.id
    assert alert.occurrences == 2
    assert alert.title == "Interface spec 'Orders EDI interface spec' differs from OpenText (4)"
    assert "prod: ORDERS D96A (inbound) via orders-inbound-api: the spec says 1.2.0" in alert.summary

    await publish(world, IN_SYNC)  # the architects fixed the page
    fixed = await monitor.check(page_id)

    assert (fixed.state, fixed.alert) == ("in_sync", "resolved")
    assert await open_alerts(alerts) == []
    [resolved] = (await alerts.list_alerts(statuses=[AlertStatus.RESOLVED]))[0]
    assert resolved.id == alert.id


async def test_a_page_in_sync_raises_nothing(database, world):
    alerts = alert_service(database, world)
    page_id = await publish(world, IN_SYNC)

    result = await SpecDriftMonitor(checker(world), alerts).check(page_id)

    assert (result.state, result.alert) == ("in_sync", "none")
    assert await open_alerts(alerts) == []


async def test_an_alert_is_neither_raised_nor_resolved_when_opentext_cannot_be_asked(database, world):
    alerts = alert_service(database, world)
    monitor = SpecDriftMonitor(checker(world), alerts)
    page_id = await publish(world, DRIFTED)
    await monitor.check(page_id)
    await publish(world, IN_SYNC)
    await world.opentext.fault(path=r"/deployments$", status=503)

    result = await monitor.check(page_id)

    assert (result.state, result.alert) == ("unknown", "none")
    assert len(await open_alerts(alerts)) == 1, "the open alert stays until the page is known to match"


async def test_the_scheduled_run_checks_every_labelled_page_and_no_other(database, world):
    alerts = alert_service(database, world)
    drifted = await publish(world, DRIFTED, title="Orders spec")
    in_sync = await publish(world, IN_SYNC, title="Orders spec (copy)")
    await publish(world, DRIFTED, title="Orders spec draft", label=False)

    results = await SpecDriftMonitor(checker(world), alerts).check_labelled()

    assert sorted((r.page_ref, r.state) for r in results) == sorted(
        [(drifted, "drift"), (in_sync, "in_sync")]
    )
    [alert] = await open_alerts(alerts)
    assert alert.dedup_key == spec_drift_key(drifted)
