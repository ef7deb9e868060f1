"""Routing: config rules send alerts to a channel with a mention; a default catches the rest."""

from __future__ import annotations

import pytest

from bot.alerts.routing import route_alert
from bot.config.alerts import AlertRoute, AlertsConfig
from bot.domain.alerts import Severity, label_set

ROUTES = [
    {"match": {"env": "prod", "system": "opentext"}, "channel": "C_OPENTEXT", "mention": "S_ONCALL",
     "min_severity": "error"},
    {"match_re": {"system": "canto|iconik"}, "channel": "C_DAM"},
    {"match": {"team": "orders"}, "channel": "#sap-alerts", "min_severity": "warning"},
]  # fmt: skip


def labels(**kw: str) -> dict[str, str]:
    base = {"source": "api", "severity": "error", "environment": "prod", "system": "opentext"}
    base.update(kw)
    free = {k: v for k, v in base.items() if k not in ("source", "severity", "environment", "system")}
    return label_set(
        source=base["source"], severity=base["severity"], environment=base["environment"],
        system=base["system"], labels=free,
    )  # fmt: skip


@pytest.fixture
def config() -> AlertsConfig:
    return AlertsConfig.model_validate(
        {"default_channel": "#alerts", "default_mention": "S_LEADS", "routes": ROUTES}
    )


def test_first_matching_route_wins_with_its_mention(config):
    decision = route_alert(labels(), Severity.CRITICAL, config)
    assert (decision.channel, decision.mention, decision.route_index) == ("C_OPENTEXT", "S_ONCALL", 0)


def test_below_min_severity_a_route_is_skipped_and_the_default_catches_it(config):
    decision = route_alert(labels(), Severity.WARNING, config)
    assert (decision.channel, decision.mention, decision.route_index) == ("#alerts", "S_LEADS", None)


def test_regex_routes_match_the_whole_label_value(config):
    assert route_alert(labels(system="iconik"), Severity.INFO, config).channel == "C_DAM"
    assert route_alert(labels(system="iconik-proxy"), Severity.INFO, config).channel == "#alerts"


def test_free_labels_route_and_env_is_an_alias_of_environment(config):
    assert route_alert(labels(system="sap", team="orders"), Severity.ERROR, config).channel == "#sap-alerts"
    assert route_alert(labels(environment="test"), Severity.CRITICAL, config).channel == "#alerts"


def test_channel_names_resolve_to_ids_from_the_slack_channel_map(config):
    ids = {"sap-alerts": "C_SAP", "#alerts": "C_ALERTS"}
    assert route_alert(labels(system="sap", team="orders"), Severity.ERROR, config, ids).channel == "C_SAP"
    assert route_alert(labels(system="sap"), Severity.ERROR, config, ids).channel == "C_ALERTS"


def test_a_route_with_a_bad_regex_is_refused_at_load():
    with pytest.raises(ValueError, match="not a regular expression"):
        AlertRoute.model_validate({"match_re": {"system": "("}, "channel": "C_X"})


async def test_routed_alerts_land_in_their_channels_mentioning_their_group(harness):
    harness.reconfigure(routes=ROUTES, default_mention="S_LEADS")
    await harness.trigger("ot-1", system="opentext", severity="critical")
    await harness.trigger("dam-1", system="canto", severity="info")
    await harness.trigger("ot-2", system="opentext", severity="warning")
    await harness.step(30)
    [ot] = harness.slack.posts("C_OPENTEXT")
    assert ot.text.startswith("<!subteam^S_ONCALL>") and "ot-1" in ot.text
    [dam] = harness.slack.posts("C_DAM")
    assert "dam-1" in dam.text and "subteam" not in dam.text
    [caught] = harness.slack.posts("C_ALERTS")
    assert "ot-2" in caught.text and caught.text.startswith("<!subteam^S_LEADS>")
