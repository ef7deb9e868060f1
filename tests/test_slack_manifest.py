"""manifest.yml: the Slack app manifest parses and stays inside Slack's limits."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

MANIFEST = Path(__file__).resolve().parents[1] / "manifest.yml"


@pytest.fixture(scope="module")
def manifest() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(MANIFEST.read_text())
    return loaded


def test_manifest_is_a_yaml_mapping(manifest: dict[str, Any]) -> None:
    assert {"display_information", "features", "oauth_config", "settings"} <= manifest.keys()


def test_app_name_fits_slacks_35_character_limit(manifest: dict[str, Any]) -> None:
    assert 0 < len(manifest["display_information"]["name"]) <= 35


def test_every_slash_command_fits_slacks_32_character_limit(manifest: dict[str, Any]) -> None:
    commands = manifest["features"]["slash_commands"]
    assert commands
    for command in commands:
        assert command["command"].startswith("/")
        assert len(command["command"]) <= 32
        assert command["description"]
        assert command["usage_hint"]


def test_the_bot_offers_its_five_commands(manifest: dict[str, Any]) -> None:
    assert [c["command"] for c in manifest["features"]["slash_commands"]] == [
        "/promote",
        "/rotate",
        "/release",
        "/ops",
        "/onboard",
    ]


def test_app_home_tab_and_messages_tab_are_enabled(manifest: dict[str, Any]) -> None:
    assert manifest["features"]["app_home"]["home_tab_enabled"] is True
    assert manifest["features"]["app_home"]["messages_tab_enabled"] is True
    assert manifest["settings"]["event_subscriptions"]["bot_events"] == ["app_home_opened"]


def test_bot_scopes_cover_what_the_bot_calls(manifest: dict[str, Any]) -> None:
    assert set(manifest["oauth_config"]["scopes"]["bot"]) == {
        "commands",
        "chat:write",
        "chat:write.public",
        "im:write",
        "users:read",
        "usergroups:read",
        "channels:read",
        "groups:read",
    }


def test_http_mode_sends_everything_to_one_https_endpoint(manifest: dict[str, Any]) -> None:
    settings = manifest["settings"]
    assert settings["socket_mode_enabled"] is False
    assert settings["interactivity"]["is_enabled"] is True
    urls = {
        settings["event_subscriptions"]["request_url"],
        settings["interactivity"]["request_url"],
        *(c["url"] for c in manifest["features"]["slash_commands"]),
    }
    assert urls == {"https://opsgate.example.com/slack/events"}
