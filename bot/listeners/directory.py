"""Who is in a Slack user group, asked at decision time with a short cache.

Groups declared in the config answer without Slack; anything else is treated as a Slack user
group (ID `S...` or handle) and resolved with usergroups.users.list. A failed lookup answers
"nobody" (fail closed) rather than an old answer that may grant access.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.domain.policy import StaticDirectory

__all__ = ["SlackDirectory"]

log = logging.getLogger("opsgate.directory")


class SlackDirectory:
    def __init__(
        self,
        client: AsyncWebClient,
        static: StaticDirectory,
        *,
        ttl_seconds: float = 60.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._static = static
        self._ttl = ttl_seconds
        self._monotonic = monotonic
        self._cache: dict[str, tuple[float, frozenset[str]]] = {}

    async def members(self, group: str) -> frozenset[str]:
        if group in self._static.groups:
            return self._static.groups[group]
        cached = self._cache.get(group)
        if cached and self._monotonic() - cached[0] < self._ttl:
            return cached[1]
        try:
            response = await self._client.usergroups_users_list(usergroup=group)
            listed: list[str] = list(response.get("users") or [])
            users = frozenset(str(u) for u in listed)
        except (SlackApiError, OSError, TimeoutError) as exc:
            log.warning(
                "user group lookup failed; treating it as empty", extra={"group": group, "error": str(exc)}
            )
            return frozenset()
        self._cache[group] = (self._monotonic(), users)
        return users
