"""create_bolt_app: the bolt AsyncApp with every listener registered, acknowledging inline.

`process_before_response=True` answers Slack as soon as a listener returns, without bolt's 10 ms
ack polling; so listeners only parse, persist a job (or spawn a supervised task for modals that
must open within the 3-second trigger window) and ack. Everything slow happens in jobs.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.authorization import AuthorizeResult
from slack_bolt.error import BoltUnhandledRequestError
from slack_bolt.response import BoltResponse

from bot.config.opsgate import Settings
from bot.listeners import actions, commands, events, views
from bot.listeners.context import INTERACTION_JOB, SlackContext

__all__ = ["create_bolt_app"]

log = logging.getLogger("opsgate.slack")


def create_bolt_app(ctx: SlackContext, settings: Settings) -> AsyncApp:
    signing_secret = (
        settings.slack_signing_secret.get_secret_value()
        if settings.slack_signing_secret
        # No secret configured: a random one makes every request fail verification (fail closed).
        else secrets.token_hex(32)
    )
    bot_token = (
        settings.slack_bot_token.get_secret_value() if settings.slack_bot_token else "xoxb-not-configured"
    )

    async def authorize(**kwargs: Any) -> AuthorizeResult:
        # No auth.test round trip on the first request: the token is ours and fixed.
        return AuthorizeResult(
            enterprise_id=kwargs.get("enterprise_id"),
            team_id=kwargs.get("team_id"),
            bot_token=bot_token,
            bot_user_id=None,
            bot_id=None,
        )

    app = AsyncApp(
        # bolt names a logger after the app and sets its level: keep it out of our "opsgate.*"
        # namespace, or every opsgate logger would inherit bolt's WARNING.
        name="slack_bolt.opsgate",
        client=ctx.runtime.slack,
        signing_secret=signing_secret,
        authorize=authorize,
        process_before_response=True,
        # Unknown commands and actions reach on_error below, whatever order listeners were added in.
        raise_error_for_unhandled_request=True,
        ssl_check_enabled=True,
    )
    allowed = frozenset(ctx.config.slack.allowed_team_ids)
    if allowed:
        app.middleware(_team_gate(allowed))
    commands.register(app, ctx)
    actions.register(app, ctx)
    views.register(app, ctx)
    events.register(app, ctx)

    @app.error
    async def on_error(error: Exception, body: dict[str, Any], logger: logging.Logger) -> BoltResponse:
        if isinstance(error, BoltUnhandledRequestError):
            return await _unhandled(ctx, body)
        log.exception("listener failed", exc_info=error)
        return BoltResponse(status=200, body="")

    return app


async def _unhandled(ctx: SlackContext, body: dict[str, Any]) -> BoltResponse:
    """A command or button nothing handles: say so to the person, record nothing else."""
    if body.get("command"):
        text = f"opsgate does not know `{body.get('command')}`. Try `/ops help`."
        return BoltResponse(
            status=200,
            body=json.dumps({"response_type": "ephemeral", "text": text}),
            headers={"content-type": "application/json"},
        )
    if body.get("type") == "block_actions":
        log.warning(
            "unknown action", extra={"actions": [a.get("action_id") for a in body.get("actions", [])]}
        )
        user = str((body.get("user") or {}).get("id"))
        channel = (body.get("channel") or {}).get("id")
        if channel:
            await ctx.enqueue(INTERACTION_JOB, {"kind": "unknown", "user_id": user, "channel_id": channel},
                              dedup_key=None)  # fmt: skip
    return BoltResponse(status=200, body="")


def _team_gate(allowed: frozenset[str]) -> Callable[..., Awaitable[Any]]:
    async def gate(body: dict[str, Any], next: Callable[[], Awaitable[Any]]) -> Any:
        team = (
            body.get("team_id")
            or (body.get("team") or {}).get("id")
            or (body.get("user") or {}).get("team_id")
        )
        if team not in allowed:
            log.warning("request from a workspace that is not allowed", extra={"team": team})
            if body.get("command"):
                return BoltResponse(
                    status=200,
                    body='{"response_type":"ephemeral","text":"opsgate is not enabled for this workspace."}',
                    headers={"content-type": "application/json"},
                )
            return BoltResponse(status=403, body="")
        return await next()

    return gate
