"""Structured logging: JSON when not a TTY, with secrets redacted from every record.

Redaction works on both keys (anything named like a token or secret) and values (Slack tokens,
bearer headers, URL credentials), so a library that logs a header still cannot leak it.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any

import structlog

__all__ = ["REDACTED", "configure_logging", "redact_text", "redact_value"]

REDACTED = "[redacted]"
_SECRET_KEY = re.compile(
    r"(secret|password|passwd|token|authorization|api[_-]?key|cookie|signature|auth-token|otdsticket|^pat$)",
    re.IGNORECASE,
)
_SECRET_VALUE = re.compile(
    r"(xox[abposr]-[A-Za-z0-9-]+|xapp-[A-Za-z0-9-]+"
    r"|(?i:bearer|basic)\s+[A-Za-z0-9._~+/=-]+"
    r"|(?<=://)[^/\s:@]+:[^/\s@]+(?=@)"
    r"|(?i:(?:access_token|refresh_token|client_secret|app_secret|password|token)=)[^&\s]+)"
)


def redact_text(text: str) -> str:
    def replace(match: re.Match[str]) -> str:
        found = match.group(0)
        if "=" in found and not found.lower().startswith(("bearer", "basic")):
            return found.split("=", 1)[0] + "=" + REDACTED
        if found.lower().startswith(("bearer", "basic")):
            return found.split()[0] + " " + REDACTED
        return REDACTED

    return _SECRET_VALUE.sub(replace, text)


def redact_value(key: str, value: Any) -> Any:
    if key and _SECRET_KEY.search(key) and value not in (None, "", False):
        return REDACTED
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        return {k: redact_value(str(k), v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_value(key, v) for v in value]
    return value


def _redact_processor(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    for key in list(event_dict):
        if key in ("timestamp", "level", "logger"):
            continue
        event_dict[key] = redact_value("" if key == "event" else key, event_dict[key])
    return event_dict


def configure_logging(level: str = "INFO", fmt: str = "auto") -> None:
    """Route stdlib and structlog records through one redacting pipeline to stderr."""
    use_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.stdlib.ExtraAdder(),
        _redact_processor,
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer() if use_json else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            _redact_processor,
            renderer,
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("aiohttp.access", "httpx", "httpcore", "apscheduler.executors.default"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
