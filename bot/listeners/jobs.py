"""The jobs behind Slack interactions: run the use case, answer the person, never raise at them.

Each handler turns typed errors into the message the person sees (through the outbox), so an
expected refusal ends the job instead of retrying it; unexpected errors are logged with an
incident reference and answered with a generic message, never a stack trace.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from bot.blocks.home import AlertSummary, build_home
from bot.blocks.ops import (
    render_audit,
    render_cancelled,
    render_listing,
    render_request,
    render_reviewed,
    render_rollback,
    render_status,
)
from bot.blocks.reply import Reply
from bot.domain.errors import DomainError
from bot.domain.requests import RequestStatus
from bot.jobs.queue import JobContext
from bot.listeners.context import SlackContext
from bot.payloads import RequestButton
from commands.ops import OPEN_STATUSES, OpsCommands
from commands.parsing import OpsArgs, PromoteArgs, ReleaseArgs, RotateArgs, UsageError, parse_command
from commands.requests import promotion_spec, release_spec, rotation_spec
from connectors.errors import ConnectorError

__all__ = ["SlackJobs"]

log = logging.getLogger("opsgate.slack.jobs")

HOME_PAGE_SIZE = 10


class SlackJobs:
    def __init__(self, ctx: SlackContext, ops: OpsCommands) -> None:
        self._ctx = ctx
        self._ops = ops
        self.alert_summaries: Any = None  # async (user) -> list[AlertSummary], wired when alerts exist

    # ----------------------------------------------------------------- answer

    async def _respond(self, payload: dict[str, Any], reply: Reply | str, *, replace: bool = True) -> None:
        reply = Reply(reply) if isinstance(reply, str) else reply
        url = payload.get("response_url")
        rt = self._ctx.runtime
        async with rt.deps.database.transaction() as tx:
            if url:
                body: dict[str, Any] = {
                    "response_type": "ephemeral",
                    "replace_original": replace,
                    "text": reply.text,
                }
                if reply.blocks:
                    body["blocks"] = reply.blocks_json()
                await tx.outbox.enqueue(conversation=f"user:{payload.get('user_id')}", method="response_url",
                                        payload={"url": url, "body": body})  # fmt: skip
            elif payload.get("channel_id"):
                await tx.outbox.enqueue(
                    conversation=str(payload["channel_id"]),
                    method="chat.postEphemeral",
                    payload={
                        "channel": payload["channel_id"],
                        "user": payload["user_id"],
                        "text": reply.text,
                    },
                )
            else:  # App Home: no channel, answer in the DM
                await tx.outbox.enqueue(conversation=str(payload["user_id"]), method="chat.postMessage",
                                        payload={"channel": payload["user_id"], "text": reply.text})  # fmt: skip
        rt.kick()

    async def _guarded(self, payload: dict[str, Any], work: Any) -> None:
        try:
            reply = await work()
        except UsageError as error:
            reply = Reply(f":warning: {error.message}\nUsage: `{error.usage}`")
        except DomainError as error:
            reply = Reply(f":no_entry: {error}")
        except ConnectorError as error:
            reply = Reply(
                f":warning: {error.vendor} did not answer as expected ({error.detail}); nothing was changed."
            )
        except Exception:
            incident = uuid.uuid4().hex[:8]
            log.exception("Slack job failed", extra={"incident": incident})
            reply = Reply(
                f":x: Something went wrong on our side (reference {incident}). Nothing was changed."
            )
        if reply is not None:
            await self._respond(payload, reply)

    # --------------------------------------------------------------- commands

    async def command(self, job: JobContext) -> None:
        payload = job.payload
        await self._guarded(payload, lambda: self._run_command(payload))

    async def _run_command(self, payload: dict[str, Any]) -> Reply:
        parsed = parse_command(
            str(payload["name"]), str(payload.get("text") or ""), command=str(payload["command"])
        )
        user = str(payload["user_id"])
        key = f"cmd:{payload.get('trigger_id')}" if payload.get("trigger_id") else None
        config = self._ctx.config
        if isinstance(parsed, PromoteArgs):
            spec = promotion_spec(config, artifact=parsed.artifact, version=parsed.version, from_env=parsed.from_env,
                                  to_env=parsed.to_env)  # fmt: skip
        elif isinstance(parsed, RotateArgs):
            spec = rotation_spec(config, credential=parsed.credential, environment=parsed.environment)
        elif isinstance(parsed, ReleaseArgs):
            spec = release_spec(config, asset=parsed.asset, destination=parsed.destination)
        elif isinstance(parsed, OpsArgs):
            return await self._ops_command(parsed, user, key)
        else:
            return Reply("Nothing to do.")
        async with self._ctx.runtime.deps.database.transaction() as tx:
            request = await self._ctx.requests.open(
                tx,
                spec,
                requester=user,
                reason=parsed.reason,
                emergency_reason=parsed.emergency_reason,
                idempotency_key=key,
            )
        channel = self._ctx.runtime.announcer.channel_for(request)
        where = f"<#{channel}>" if not channel.startswith("#") else channel
        if request.status is RequestStatus.APPROVED and request.emergency:
            return Reply(f":rotating_light: {request.human_id} opened with break-glass: running now; an approver must "
                         f"review it by {request.review_due_at:%Y-%m-%d %H:%M} UTC.")  # fmt: skip
        return Reply(f":white_check_mark: {request.human_id} opened; approval requested in {where}.")

    async def _ops_command(self, args: OpsArgs, user: str, key: str | None) -> Reply:
        sub = args.sub
        ops = self._ops
        deps = self._ctx.runtime.deps
        now = deps.clock()
        if sub in ("status", "pending", "mine", "show") or (sub == "audit" and args.asset is None):
            async with deps.database.reading() as reading:
                if sub == "status":
                    return render_status(await ops.status(reading, args.environment), now=now)
                if sub == "pending":
                    return render_listing(await ops.pending(reading), now=now)
                if sub == "mine":
                    return render_listing(await ops.mine(reading, user), now=now)
                if sub == "show":
                    return render_request(await ops.show(reading, str(args.ref)))
                # `audit asset <id>` is the "ops.audit" extra
                return render_audit(await ops.audit(reading, str(args.ref)))
        if sub == "cancel":
            async with deps.database.transaction() as tx:
                cancelled = await ops.cancel(tx, str(args.ref), user)
            return render_cancelled(cancelled)
        if sub == "review":
            async with deps.database.transaction() as tx:
                reviewed = await ops.review(tx, str(args.ref), user, args.reason or "reviewed")
            return render_reviewed(reviewed, reviewer=user)
        if sub == "rollback":
            async with deps.database.reading() as reading:
                plan = await ops.rollback(reading, str(args.ref))
            async with deps.database.transaction() as tx:  # the pre-check runs before its first statement
                opened = await self._ctx.requests.open(
                    tx,
                    plan.spec,
                    requester=user,
                    reason=plan.reason,
                    emergency_reason=args.emergency_reason,
                    idempotency_key=key or f"rollback:{args.ref}:{user}",
                    rollback_of=plan.original.human_id,
                )
            return render_rollback(plan, opened)
        handler = self._ctx.extras.get(f"ops.{sub}")
        if handler is not None:
            reply: Reply = await handler(args, user)
            return reply
        return Reply(f"`/ops {sub}` is not available in this installation yet. Try `/ops help`.")

    # ----------------------------------------------------------- interactions

    async def interaction(self, job: JobContext) -> None:
        payload = job.payload
        kind = payload["kind"]
        if kind == "approve":
            await self._guarded(payload, lambda: self._approve(payload))
        elif kind == "reject":
            await self._guarded(payload, lambda: self._reject(payload))
        elif kind == "new_request":
            await self._guarded(payload, lambda: self._new_request(payload))
        else:
            await self._respond(payload, "That button is no longer supported; nothing was changed.")
        if payload.get("from_home"):
            await self.publish_home(str(payload["user_id"]), page=0)

    async def _approve(self, payload: dict[str, Any]) -> Reply | None:
        button = RequestButton.model_validate_json(payload["value"])
        deps = self._ctx.runtime.deps
        async with deps.database.reading() as reading:
            current = await deps.approvals.get(reading, button.ref)
        if not current.params_hash.startswith(button.params_hash) and current.status is RequestStatus.PENDING:
            return Reply(f"{current.human_id} changed after this message was drawn; review the updated request "
                         "before approving.")  # fmt: skip
        async with deps.database.transaction() as tx:
            outcome = await deps.approvals.approve(tx, button.ref, approver=str(payload["user_id"]))
        if not outcome.counted:
            return Reply(f"You already approved {outcome.request.human_id}.")
        return None  # the updated message and the requester's DM say it all

    async def _reject(self, payload: dict[str, Any]) -> Reply | None:
        deps = self._ctx.runtime.deps
        async with deps.database.transaction() as tx:
            await deps.approvals.reject(tx, str(payload["ref"]), approver=str(payload["user_id"]),
                                        reason=str(payload["reason"]))  # fmt: skip
        return None

    async def _new_request(self, payload: dict[str, Any]) -> Reply:
        fields = dict(payload["fields"])
        kind = payload["request_kind"]
        config = self._ctx.config
        if kind == "promotion":
            spec = promotion_spec(config, artifact=fields["artifact"], version=fields["version"],
                                  from_env=fields["from_env"], to_env=fields["to_env"])  # fmt: skip
        elif kind == "rotation":
            spec = rotation_spec(config, credential=fields["credential"], environment=fields["environment"])
        else:
            spec = release_spec(config, asset=fields["asset"], destination=fields["destination"])
        async with self._ctx.runtime.deps.database.transaction() as tx:
            request = await self._ctx.requests.open(
                tx,
                spec,
                requester=str(payload["user_id"]),
                reason=fields.get("reason", ""),
                emergency_reason=fields.get("emergency_reason") or None,
                idempotency_key=f"view:{payload['view_id']}",
            )
        return Reply(f":white_check_mark: {request.human_id} opened; approval requested.")

    # --------------------------------------------------------------- App Home

    async def home_job(self, job: JobContext) -> None:
        await self.publish_home(str(job.payload["user_id"]), page=int(job.payload.get("page", 0)))

    async def publish_home(self, user: str, *, page: int) -> None:
        rt = self._ctx.runtime
        approvals = rt.deps.approvals
        async with rt.deps.database.reading() as reading:
            awaiting = await approvals.awaiting(reading, user, limit=HOME_PAGE_SIZE * (page + 1) + 1)
            mine = await approvals.list_requests(
                reading, requester=user, statuses=list(OPEN_STATUSES), limit=HOME_PAGE_SIZE
            )
            recent = await approvals.list_requests(reading, limit=HOME_PAGE_SIZE)
        start = page * HOME_PAGE_SIZE
        page_items = awaiting[start : start + HOME_PAGE_SIZE]
        alerts: list[AlertSummary] = await self.alert_summaries(user) if self.alert_summaries else []
        view = build_home(
            viewer=user,
            awaiting=page_items,
            mine=mine,
            recent=recent,
            alerts=alerts,
            page=page,
            has_more=len(awaiting) > start + HOME_PAGE_SIZE,
            now=rt.deps.clock(),
        )
        async with rt.deps.database.transaction() as tx:
            await tx.outbox.enqueue(conversation=f"home:{user}", method="views.publish",
                                    payload={"user_id": user, "view": view.to_dict()})  # fmt: skip
        rt.kick()
