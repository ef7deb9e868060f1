"""Button listeners: ack at once; decisions become jobs, the reject modal opens in the trigger window."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp

from bot.blocks.modals import build_reject_modal
from bot.ids import ActionId
from bot.listeners.context import HOME_JOB, INTERACTION_JOB, SlackContext
from bot.payloads import HomePage, RejectModalMetadata, RequestButton

__all__ = ["register"]

log = logging.getLogger("opsgate.slack.actions")


def _who(body: dict[str, Any]) -> tuple[str, str | None, str | None, bool]:
    user = str((body.get("user") or {}).get("id"))
    channel = (body.get("channel") or body.get("container") or {}).get("id") or (
        body.get("container") or {}
    ).get("channel_id")
    ts = (body.get("message") or {}).get("ts") or (body.get("container") or {}).get("message_ts")
    from_home = (body.get("view") or {}).get("type") == "home"
    return user, channel, ts, from_home


def register(app: AsyncApp, ctx: SlackContext) -> None:
    @app.action(ActionId.APPROVE.value)
    async def approve(ack: AsyncAck, body: dict[str, Any], action: dict[str, Any]) -> None:
        user, channel, ts, from_home = _who(body)
        await ctx.enqueue(
            INTERACTION_JOB,
            {"kind": "approve", "value": action.get("value", "{}"), "user_id": user, "channel_id": channel,
             "message_ts": ts, "from_home": from_home},
            # A retried delivery of the same click carries the same action_ts.
            dedup_key=f"act:{action.get('action_ts')}:{user}:{action.get('value')}",
        )  # fmt: skip
        await ack()

    @app.action(ActionId.REJECT.value)
    async def reject(ack: AsyncAck, body: dict[str, Any], action: dict[str, Any]) -> None:
        await ack()
        _, channel, ts, _ = _who(body)
        ctx.runtime.supervisor.spawn(
            _open_reject_modal(ctx, body["trigger_id"], action.get("value", "{}"), channel, ts),
            name="reject-modal",
        )

    for page_action in (ActionId.HOME_PAGE.value, ActionId.HOME_PAGE_BACK.value):

        @app.action(page_action)
        async def home_page(ack: AsyncAck, body: dict[str, Any], action: dict[str, Any]) -> None:
            await ack()
            page = HomePage.model_validate_json(action.get("value") or '{"page": 0}').page
            user = str((body.get("user") or {}).get("id"))
            await ctx.enqueue(HOME_JOB, {"user_id": user, "page": page}, dedup_key=None)


async def _open_reject_modal(
    ctx: SlackContext, trigger_id: str, value: str, channel: str | None, ts: str | None
) -> None:
    button = RequestButton.model_validate_json(value)
    deps = ctx.runtime.deps
    async with deps.database.reading() as reading:
        request = await deps.approvals.get(reading, button.ref)
    view = build_reject_modal(request, RejectModalMetadata(ref=button.ref, channel_id=channel, message_ts=ts))
    await ctx.runtime.slack.views_open(trigger_id=trigger_id, view=view)
