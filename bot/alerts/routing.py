"""Which channel an alert goes to and whom it mentions: the first matching route wins.

A route matches when every `match` label is equal, every `match_re` label fully matches its
regex, and the alert's severity is at least the route's `min_severity`; an alert no route takes
goes to `default_channel` (with `default_mention`). A missing label counts as the empty string,
as in Alertmanager.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

from bot.config.alerts import AlertRoute, AlertsConfig
from bot.domain.alerts import Severity

__all__ = ["RouteDecision", "route_alert", "route_matches"]


@dataclass(frozen=True)
class RouteDecision:
    channel: str
    mention: str | None
    route_index: int | None  # None: the default channel caught it


@lru_cache(maxsize=256)
def _regex(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def route_matches(route: AlertRoute, labels: Mapping[str, str], severity: Severity) -> bool:
    if not severity.at_least(route.min_severity):
        return False
    if any(labels.get(name, "") != value for name, value in route.match.items()):
        return False
    return all(_regex(pattern).fullmatch(labels.get(name, "")) for name, pattern in route.match_re.items())


def route_alert(
    labels: Mapping[str, str],
    severity: Severity,
    config: AlertsConfig,
    channel_ids: Mapping[str, str] | None = None,
) -> RouteDecision:
    """Pick the route; `channel_ids` (slack.channels: name -> id) turns `#name` into an id."""
    ids = channel_ids or {}
    for index, route in enumerate(config.routes):
        if route_matches(route, labels, severity):
            return RouteDecision(_channel_id(route.channel, ids), route.mention, index)
    return RouteDecision(_channel_id(config.default_channel, ids), config.default_mention, None)


def _channel_id(channel: str, ids: Mapping[str, str]) -> str:
    return ids.get(channel) or ids.get(channel.removeprefix("#")) or channel
