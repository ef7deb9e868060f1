"""What every listener and Slack job needs, in one object."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bot.config.opsgate import OpsgateConfig
from bot.wiring.runtime import Runtime
from commands.requests import RequestService

__all__ = ["COMMAND_JOB", "HOME_JOB", "INTERACTION_JOB", "SlackContext"]

COMMAND_JOB = "slack.command"
INTERACTION_JOB = "slack.interaction"
HOME_JOB = "slack.home"


@dataclass
class SlackContext:
    runtime: Runtime
    config: OpsgateConfig
    requests: RequestService
    extras: dict[str, Any] = field(default_factory=dict)

    async def enqueue(self, kind: str, payload: dict[str, Any], *, dedup_key: str | None) -> bool:
        """Persist the work, then wake the runner: the ack only waits for this insert.

        False when `dedup_key` was queued before (Slack retried the delivery)."""
        queued = await self.runtime.intake.submit(kind, payload, dedup_key=dedup_key)
        self.runtime.runner.wake.set()
        return queued
