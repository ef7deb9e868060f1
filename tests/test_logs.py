"""Logs never carry secrets, whatever shape they arrive in."""

from __future__ import annotations

import json
import logging

import structlog

from bot.logs import REDACTED, configure_logging, redact_text


def test_values_that_look_like_credentials_are_redacted():
    text = "POST https://user:pa55@host/x?client_secret=abc&x=1 Authorization: Bearer eyJhbGciOi xoxb-123-456-abc"
    clean = redact_text(text)
    for secret in ("pa55", "abc&", "eyJhbGciOi", "xoxb-123-456-abc"):
        assert secret not in clean
    assert "x=1" in clean and "Bearer [redacted]" in clean


def test_json_log_lines_redact_secret_keys_and_values(capsys):
    configure_logging("INFO", "json")
    structlog.get_logger("t").info(
        "token refreshed", access_token="at-123", headers={"Authorization": "Basic zzz"}
    )
    logging.getLogger("lib").warning("calling with xoxp-999-888 in the message")
    lines = [json.loads(line) for line in capsys.readouterr().err.strip().splitlines()]
    assert lines[0]["access_token"] == REDACTED
    assert lines[0]["headers"]["Authorization"] == REDACTED
    assert "xoxp-999-888" not in lines[1]["event"]
    assert lines[1]["level"] == "warning"


async def test_building_the_slack_app_leaves_opsgate_log_levels_alone(tmp_path):
    from bot.config.opsgate import Settings, parse_config
    from bot.wiring.service import build_service

    before = logging.getLogger("opsgate").level
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'l.db'}", opsgate_secret_key_file=tmp_path / "k"
    )
    service = await build_service(settings, parse_config({"environments": {"prod": {}}}, source="t", env={}))
    try:
        assert logging.getLogger("opsgate").level == before
        assert logging.getLogger("opsgate.connectors.http").getEffectiveLevel() == logging.getLogger().level
    finally:
        await service.stop(timeout=1)
