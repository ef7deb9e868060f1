"""Turns request transitions into Slack messages and execution jobs, inside the same transaction.

The approval message is posted once (dedup key `approval:<ID>`) and every later transition
updates it in place through a `$ts_of` reference, so an update can never overtake its post.
The requester gets a DM for every decision; execution progress goes to the message's thread.
"""

from __future__ import annotations

import asyncio
import logging

from bot.blocks.requests import build_approval_message, build_decision_dm, build_progress_reply
from bot.config.opsgate import OpsgateConfig
from bot.domain.policy import describe_rule
from bot.domain.requests import ChangeRequest, Clock
from commands.ports import MessageTx

__all__ = ["EXECUTE_JOB", "SlackAnnouncer", "approval_key"]

log = logging.getLogger("opsgate.announcer")

EXECUTE_JOB = "request.execute"
DM_EVENTS = frozenset(
    {
        "approval.recorded",
        "request.approved",
        "request.rejected",
        "request.cancelled",
        "request.expired",
        "execution.started",
        "execution.succeeded",
        "execution.failed",
        "request.reviewed",
    }
)
THREAD_EVENTS = {
    "execution.started": ("Execution started", None),
    "execution.succeeded": ("Execution succeeded", True),
    "execution.failed": ("Execution failed", False),
    "request.reviewed": ("Break-glass change reviewed", True),
}


def approval_key(ref: str) -> str:
    return f"approval:{ref}"


class SlackAnnouncer:
    """The approval use case's TransitionObserver for Slack: queues through the transaction it is given."""

    def __init__(
        self, config: OpsgateConfig, clock: Clock, *, delivery_wake: asyncio.Event | None = None
    ) -> None:
        self._config = config
        self._clock = clock
        self.delivery_wake = delivery_wake  # set to start delivery at once instead of at the next poll

    def channel_for(self, request: ChangeRequest) -> str:
        name = request.policy.approval_channel or self._config.slack.approvals_channel
        return self._config.slack.channels.get(name.lstrip("#"), self._config.slack.channels.get(name, name))

    async def on_transition(self, tx: MessageTx, request: ChangeRequest, *, event: str, actor: str) -> None:
        channel = self.channel_for(request)
        text, blocks = build_approval_message(
            request,
            policy_text=describe_rule(request.policy, expires_at=request.expires_at),
            now=self._clock(),
        )
        message = {"channel": channel, "text": text, "blocks": [b.to_dict() for b in blocks]}
        ref = request.human_id
        if event in ("request.created", "request.break_glass"):
            await tx.outbox.enqueue(conversation=channel, method="chat.postMessage", payload=message,
                                    dedup_key=approval_key(ref), request_ref=ref)  # fmt: skip
        else:
            await tx.outbox.enqueue(
                conversation=channel,
                method="chat.update",
                payload={
                    **message,
                    "channel": {"$channel_of": approval_key(ref)},
                    "ts": {"$ts_of": approval_key(ref)},
                },
                request_ref=ref,
            )
        if event in THREAD_EVENTS:
            step, ok = THREAD_EVENTS[event]
            detail = request.failure_reason or "" if event == "execution.failed" else ""
            await self.thread_reply(tx, request, step=step, detail=detail, ok=ok)
        if event in DM_EVENTS:
            dm_text, dm_blocks = build_decision_dm(request, event=event, actor=actor)
            await tx.outbox.enqueue(
                conversation=request.requester,
                method="chat.postMessage",
                payload={
                    "channel": request.requester,
                    "text": dm_text,
                    "blocks": [b.to_dict() for b in dm_blocks],
                },
                dedup_key=f"dm:{ref}:{event}:{actor}:{len(request.approvals)}",
                request_ref=ref,
            )
        if event in ("request.approved", "request.break_glass"):
            await tx.jobs.enqueue(kind=EXECUTE_JOB, payload={"ref": ref}, dedup_key=f"execute:{ref}",
                                  request_id=request.id)  # fmt: skip
        if self.delivery_wake is not None:
            self.delivery_wake.set()

    async def thread_reply(
        self,
        tx: MessageTx,
        request: ChangeRequest,
        *,
        step: str,
        detail: str = "",
        ok: bool | None = None,
    ) -> None:
        channel = self.channel_for(request)
        text, blocks = build_progress_reply(request, step=step, detail=detail, ok=ok)
        await tx.outbox.enqueue(
            conversation=channel,
            method="chat.postMessage",
            payload={
                "channel": {"$channel_of": approval_key(request.human_id)},
                "thread_ts": {"$ts_of": approval_key(request.human_id)},
                "text": text,
                "blocks": [b.to_dict() for b in blocks],
            },
            request_ref=request.human_id,
        )
