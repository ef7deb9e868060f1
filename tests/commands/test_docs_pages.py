"""The pure page builders: what each page says, and what it must never say (credentials)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from bot.config.opsgate import OpsgateConfig
from bot.domain.policy import PolicyRule
from commands.docs_pages import (
    MAX_TITLE_LENGTH,
    IncidentDetails,
    build_environment_page,
    build_incident_page,
    credential_ownership,
    incident_page_title,
    public_endpoint,
    upcoming_windows,
)
from commands.release_checklist import cell_text
from connectors.confluence_storage import parse_storage

NOW = datetime(2025, 3, 12, 9, 0, tzinfo=UTC)  # a Wednesday


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://svc:hunter2@ot.example.com/base/?api_key=s3cret#frag", "https://ot.example.com/base"),
        ("https://ot.example.com:8443/im-admin/api/v1", "https://ot.example.com:8443/im-admin/api/v1"),
        ("http://[::1]:9000/x", "http://[::1]:9000/x"),
        ("ot.example.com/path?token=s3cret", "ot.example.com/path"),
        ("user:pw@ot.example.com", "ot.example.com"),
    ],
)
def test_a_published_endpoint_keeps_no_user_info_query_or_fragment(url: str, shown: str) -> None:
    assert public_endpoint(url) == shown


def config_with_secrets() -> OpsgateConfig:
    return OpsgateConfig.model_validate(
        {
            "environments": {
                "prod": {
                    "production": True,
                    "opentext": {
                        "base_url": "https://svc:hunter2@ot.example.com",
                        "auth": "otds",
                        "otds": {
                            "base_url": "https://otds.example.com/otdsws?ticket=s3cret-ticket",
                            "user_name": "svc-opsgate",
                            "password": "s3cret-otds-password",
                        },
                    },
                    "canto": {
                        "base_url": "https://acme.canto.com",
                        "app_id": "app",
                        "app_secret": "s3cret-canto",
                    },
                    "iconik": {"app_id": "app", "auth_token": "s3cret-iconik"},
                    "confluence": {
                        "flavour": "datacenter",
                        "base_url": "https://wiki.example.com",
                        "pat": "s3cret-pat",
                    },
                },
            },
            "solutions": [{"name": "orders-edi", "confluence_space": "INT"}],
        }
    )


def test_the_environment_page_lists_every_endpoint_and_no_credential() -> None:
    config = config_with_secrets()

    body = build_environment_page(config, config.solutions[0], [])

    assert "s3cret" not in body and "hunter2" not in body
    codes = [cell_text(code) for code in parse_storage(body).iter("code")]
    assert codes[:5] == [
        "https://ot.example.com/im-admin/api/v1",
        "https://otds.example.com/otdsws",
        "https://wiki.example.com",
        "https://acme.canto.com",
        "https://app.iconik.io",
    ]
    assert "No configured credential is named after orders-edi." in body


def test_credential_ownership_tolerates_a_config_without_a_credentials_section() -> None:
    config = config_with_secrets()
    assert credential_ownership(SimpleNamespace(), config.solutions[0]) == []  # type: ignore[arg-type]


def test_credentials_belong_to_the_solution_they_are_named_after() -> None:
    config = OpsgateConfig.model_validate(
        {
            "environments": {"prod": {}},
            "solutions": [{"name": "orders"}],
            "credentials": [
                {"name": n, "environment": "prod", "credential_id": c, "owner": "U1", "schedule": "30d"}
                for n, c in [("orders-prod", "x"), ("legacy", "orders.client"), ("ordersx", "ordersx-client")]
            ],
        }
    )
    owned = credential_ownership(config, config.solutions[0])
    assert [c.name for c in owned] == ["legacy", "orders-prod"]
    assert owned[1].schedule == "every 30d"


def rule(*windows: dict[str, str]) -> PolicyRule:
    return PolicyRule.model_validate(
        {
            "name": "prod",
            "action": "*",
            "environment": "prod",
            "approvers": {"users": ["U1"]},
            "windows": windows,
        }
    )


def test_upcoming_windows_are_the_open_ones_and_those_opening_within_the_horizon_in_utc() -> None:
    policy = rule(
        {"kind": "allow", "cron": "0 9 * * 3", "duration": "2h", "timezone": "Europe/Berlin", "name": "now"},
        {"kind": "deny", "cron": "0 18 * * 5", "duration": "60h", "name": "freeze"},
        {"kind": "allow", "cron": "0 0 1 1 *", "duration": "1h", "name": "new year"},
    )

    windows = upcoming_windows([policy], NOW)

    assert [(w.label, w.open_now, w.opens_at, w.closes_at) for w in windows] == [
        ("now", True, datetime(2025, 3, 12, 8, 0, tzinfo=UTC), datetime(2025, 3, 12, 10, 0, tzinfo=UTC)),
        ("freeze", False, datetime(2025, 3, 14, 18, 0, tzinfo=UTC), datetime(2025, 3, 17, 6, 0, tzinfo=UTC)),
    ]
    assert len(upcoming_windows([policy], NOW, horizon=timedelta(days=366))) == 3


def test_an_incident_title_fits_confluence_and_reads_on_one_line() -> None:
    incident = IncidentDetails(
        source_ref="ALR-1", title="line one\nline\ttwo " + "x" * 400, environment="prod"
    )

    title = incident_page_title(incident)

    assert len(title) == MAX_TITLE_LENGTH
    assert title.startswith("Incident ALR-1: line one line two xxx") and title.endswith("…")


def test_an_incident_page_with_nothing_known_still_has_every_section_to_fill_in() -> None:
    incident = IncidentDetails(source_ref="PRM-9", title="promotion failed", environment="test")

    root = parse_storage(build_incident_page(incident, opened_at=NOW))

    headings = [cell_text(h) for h in root.iter("h2")]
    assert headings[-4:] == ["Impact", "Remediation", "Root cause", "Follow-up actions"]
    panels = [
        m
        for m in root.iter("{http://atlassian.com/content}structured-macro")
        if m.get("{http://atlassian.com/content}name") == "tip"
    ]
    assert len(panels) == 6  # message types, endpoints, impact, remediation, root cause, follow-up
    assert "No summary was recorded" in cell_text(root)
