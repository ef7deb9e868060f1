"""Events API listeners: App Home is rebuilt in a job whenever someone opens it."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncApp

from bot.listeners.context import HOME_JOB, SlackContext

__all__ = ["register"]


def register(app: AsyncApp, ctx: SlackContext) -> None:
    @app.event("app_home_opened")
    async def home_opened(event: dict[str, Any], body: dict[str, Any]) -> None:
        if event.get("tab", "home") != "home":
            return
        # Slack's retries of one event share its event_id: publish once per event.
        await ctx.enqueue(
            HOME_JOB, {"user_id": event["user"], "page": 0}, dedup_key=f"event:{body.get('event_id')}"
        )
