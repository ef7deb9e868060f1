"""The `alerts:` configuration section as the YAML loader reads it."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bot.config.opsgate import ConfigError, parse_config


def load(alerts, env=None):
    return parse_config(
        {"environments": {"prod": {}}, "alerts": alerts}, source="opsgate.yaml", env=env or {}
    )


def test_defaults_match_alertmanager():
    config = parse_config({"environments": {"prod": {}}}, source="x", env={}).alerts
    assert (config.group_wait, config.group_interval, config.repeat_interval) == (
        timedelta(seconds=30), timedelta(minutes=5), timedelta(hours=4),
    )  # fmt: skip
    assert config.per_channel_rate == 1.0 and config.ingest_token is None and config.escalation is None


def test_a_full_section_loads_with_durations_and_the_token_from_the_environment():
    config = load(
        {
            "default_channel": "#integration-alerts",
            "routes": [
                {
                    "match": {"env": "prod"},
                    "match_re": {"system": "open.*"},
                    "channel": "#ot",
                    "mention": "S_ONCALL",
                    "min_severity": "error",
                }
            ],
            "group_wait": "10s",
            "group_interval": "2m",
            "repeat_interval": "1h",
            "escalation": {"after": "15m", "group": "S_LEADS"},
            "ingest_token": "${ALERTS_TOKEN}",
            "health_check": {"interval": "30s", "failures_before_down": 5},
        },
        env={"ALERTS_TOKEN": "from-env"},
    ).alerts
    assert config.group_wait == timedelta(seconds=10) and config.escalation is not None
    assert config.ingest_token is not None and config.ingest_token.get_secret_value() == "from-env"
    assert "from-env" not in repr(config)
    assert config.health_check.failures_before_down == 5


def test_the_ingest_token_must_be_an_environment_reference():
    with pytest.raises(ConfigError, match=r"alerts\.ingest_token: secret values must not be written"):
        load({"ingest_token": "plain-text"})


@pytest.mark.parametrize(
    ("alerts", "problem"),
    [
        ({"group_wait": "soon"}, "alerts.group_wait"),
        ({"routes": [{"match": {"env": "prod"}}]}, r"alerts\.routes\[0\]\.channel: is required"),
        ({"routes": [{"channel": "#x", "min_severity": "fatal"}]}, r"alerts\.routes\[0\]\.min_severity"),
        ({"per_channel_rate": 0}, "alerts.per_channel_rate"),
        ({"repeat_interval": "0s"}, "repeat_interval: must be longer than 0s"),
        ({"escalation": {"after": "15m"}}, r"alerts\.escalation\.group: is required"),
        ({"colour": "red"}, "alerts.colour: is not a known key"),
    ],
)
def test_mistakes_are_reported_with_their_key(alerts, problem):
    with pytest.raises(ConfigError, match=problem):
        load(alerts)
