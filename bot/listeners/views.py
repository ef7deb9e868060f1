"""Modal submissions: validate inline (response_action errors), persist the decision, ack."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp

from bot.blocks.modals import validate_new_request_submission
from bot.ids import ActionId, BlockId, ViewId
from bot.listeners.context import INTERACTION_JOB, SlackContext
from bot.payloads import NewRequestModalMetadata, RejectModalMetadata

__all__ = ["register"]

MAX_REASON = 2000


def register(app: AsyncApp, ctx: SlackContext) -> None:
    @app.view(ViewId.REJECT_REASON.value)
    async def reject_reason(ack: AsyncAck, body: dict[str, Any], view: dict[str, Any]) -> None:
        values = view.get("state", {}).get("values", {})
        reason = str(
            (values.get(BlockId.REASON.value, {}).get(ActionId.REASON_INPUT.value) or {}).get("value") or ""
        )
        if not reason.strip():
            await ack(
                response_action="errors",
                errors={BlockId.REASON.value: "Say why, so the requester can fix it."},
            )
            return
        if len(reason) > MAX_REASON:
            await ack(
                response_action="errors", errors={BlockId.REASON.value: f"At most {MAX_REASON} characters."}
            )
            return
        metadata = RejectModalMetadata.model_validate_json(view.get("private_metadata") or "{}")
        user = str((body.get("user") or {}).get("id"))
        await ctx.enqueue(
            INTERACTION_JOB,
            {"kind": "reject", "ref": metadata.ref, "reason": reason.strip(), "user_id": user,
             "channel_id": metadata.channel_id, "from_home": metadata.channel_id is None},
            dedup_key=f"view:{view.get('id')}",
        )  # fmt: skip
        await ack()

    for callback_id, kind in (
        (ViewId.NEW_PROMOTION.value, "promotion"),
        (ViewId.NEW_ROTATION.value, "rotation"),
        (ViewId.NEW_RELEASE.value, "release"),
    ):
        app.view(callback_id)(_new_request_listener(ctx, kind))


def _new_request_listener(ctx: SlackContext, kind: str) -> Any:
    # bolt injects listener arguments by name, so the kind is bound in a closure, not a default.
    async def new_request(ack: AsyncAck, body: dict[str, Any], view: dict[str, Any]) -> None:
        values = view.get("state", {}).get("values", {})
        fields, errors = validate_new_request_submission(kind, values)  # type: ignore[arg-type]
        if errors:
            await ack(response_action="errors", errors=errors)
            return
        metadata = NewRequestModalMetadata.model_validate_json(
            view.get("private_metadata") or '{"kind": "promotion"}'
        )
        user = str((body.get("user") or {}).get("id"))
        await ctx.enqueue(
            INTERACTION_JOB,
            {"kind": "new_request", "request_kind": kind, "fields": fields, "user_id": user,
             "channel_id": metadata.channel_id, "view_id": view.get("id")},
            dedup_key=f"view:{view.get('id')}",
        )  # fmt: skip
        await ack()

    return new_request
