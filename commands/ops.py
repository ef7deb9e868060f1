"""`/ops` subcommands as Slack-free use cases returning text for the person who asked."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select

from bot.blocks.requests import build_request_line
from bot.config.opsgate import OpsgateConfig
from bot.db.models import AuditEvent, TargetLock
from bot.domain.approvals import ApprovalEngine
from bot.domain.errors import InvalidTransition
from bot.domain.policy import Action, describe_rule
from bot.domain.requests import ChangeRequest, Clock, RequestStatus
from commands.requests import RequestService
from commands.workflow import PrecheckFailed

__all__ = ["OPEN_STATUSES", "OpsCommands", "Reply"]

OPEN_STATUSES = (RequestStatus.PENDING, RequestStatus.APPROVED, RequestStatus.EXECUTING)


@dataclass
class Reply:
    text: str
    blocks: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class OpsCommands:
    engine: ApprovalEngine
    config: OpsgateConfig
    requests: RequestService
    clock: Clock

    async def status(self, environment: str | None) -> Reply:
        if environment and environment not in self.config.environments:
            raise PrecheckFailed(
                f"Unknown environment '{environment}'. Configured: {', '.join(sorted(self.config.environments))}."
            )
        recent = await self.engine.list_requests(limit=200)
        if environment:
            recent = [r for r in recent if r.environment == environment]
        counts = Counter(r.status.value for r in recent)
        scope = f"*{environment}*" if environment else "all environments"
        lines = [f"Status for {scope} (last {len(recent)} requests):"]
        lines.append(
            ", ".join(f"{status}: {counts.get(status.value, 0)}" for status in RequestStatus) or "none"
        )
        in_flight = [r for r in recent if r.status in OPEN_STATUSES]
        if in_flight:
            lines.append("In flight:")
            lines.extend(f"• {build_request_line(r, now=self.clock())}" for r in in_flight[:15])
        async with self.engine._sessions() as session:
            locks = (await session.scalars(select(TargetLock.target_key))).all()
        if environment:
            locks = [lock for lock in locks if lock.endswith(f"@{environment}")]
        lines.append(f"Locked targets: {', '.join(locks) if locks else 'none'}")
        return Reply("\n".join(lines))

    async def pending(self) -> Reply:
        pending = await self.engine.list_requests(statuses=[RequestStatus.PENDING], limit=25)
        return self._listing("Waiting for approval", pending)

    async def mine(self, user: str) -> Reply:
        mine = await self.engine.list_requests(requester=user, limit=25)
        return self._listing("Your requests", mine)

    def _listing(self, title: str, requests: list[ChangeRequest]) -> Reply:
        if not requests:
            return Reply(f"{title}: none.")
        now = self.clock()
        return Reply("\n".join([f"*{title}*", *(f"• {build_request_line(r, now=now)}" for r in requests)]))

    async def show(self, ref: str) -> Reply:
        request = await self.engine.get(ref)
        policy = describe_rule(request.policy, expires_at=request.expires_at)
        lines = [
            f"*{request.human_id}* {request.action.value} of `{request.target}` in *{request.environment}*: "
            f"*{request.status.value}*",
            f"Requested by <@{request.requester}>: {request.reason or '(no reason given)'}",
            f"Parameters: {', '.join(f'{k}={v}' for k, v in request.parameters.items())}",
            f"Policy '{request.policy.name}': {policy}",
            "Approvals: " + (", ".join(f"<@{a.approver}>" for a in request.valid_approvals) or "none yet"),
        ]
        if request.failure_reason:
            lines.append(f"Failure: {request.failure_reason}")
        if request.emergency:
            lines.append(
                f"Break-glass change; review {'done by <@' + request.reviewed_by + '>' if request.reviewed_by else 'due'}"
            )
        return Reply("\n".join(lines))

    async def cancel(self, ref: str, user: str) -> Reply:
        request = await self.engine.cancel(ref, user=user)
        return Reply(f"{request.human_id} cancelled. Its target is free again.")

    async def audit(self, ref: str) -> Reply:
        await self.engine.get(ref)  # a clear "no such request" first
        async with self.engine._sessions() as session:
            events = (
                await session.scalars(
                    select(AuditEvent).where(AuditEvent.request_ref == ref.upper()).order_by(AuditEvent.seq)
                )
            ).all()
        lines = [f"*Audit trail of {ref.upper()}* ({len(events)} events, hash-chained)"]
        for event in events[:40]:
            when = _utc(event.occurred_at)
            change = f" {event.before_status or '∅'} → {event.after_status}" if event.after_status else ""
            reason = f": {event.reason}" if event.reason else ""
            lines.append(
                f"• {when} <@{event.actor}> {event.action}{change}{reason} `#{event.seq} {event.hash[:10]}`"
            )
        return Reply("\n".join(lines))

    async def rollback(
        self, ref: str, user: str, *, emergency_reason: str | None, idempotency_key: str
    ) -> Reply:
        original = await self.engine.get(ref)
        if original.action is not Action.PROMOTION:
            raise InvalidTransition(
                f"{original.human_id} is a {original.action.value}; only promotions roll back."
            )
        if original.status not in (RequestStatus.SUCCEEDED, RequestStatus.FAILED):
            raise InvalidTransition(
                f"{original.human_id} is {original.status.value}; roll back after it finishes."
            )
        from commands.promote import rollback_spec  # the promotion workflow knows the previous version

        spec = rollback_spec(original)
        opened = await self.requests.open(
            spec,
            requester=user,
            reason=f"Rollback of {original.human_id}",
            emergency_reason=emergency_reason,
            idempotency_key=idempotency_key,
            rollback_of=original.human_id,
        )
        return Reply(
            f"{opened.human_id} opened: promote {spec.target} {spec.parameters.get('version')} back into "
            f"{spec.environment} (rollback of {original.human_id}), status {opened.status.value}."
        )


def _utc(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")
