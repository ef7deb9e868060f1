"""`/ops` subcommands on change requests, as Slack-free use cases returning typed results.

Each takes the caller's transaction first and returns what was found; bot/blocks/ops.py renders
it for the person who asked.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from bot.config.opsgate import OpsgateConfig
from bot.domain.audit import ChainedRecord
from bot.domain.errors import InvalidTransition
from bot.domain.policy import Action
from bot.domain.requests import ChangeRequest, ChangeSpec, RequestStatus
from commands.approvals import Approvals
from commands.ports import ReadingTx, RequestTx
from commands.promote import rollback_spec
from commands.workflow import PrecheckFailed

__all__ = [
    "OPEN_STATUSES",
    "AuditListing",
    "OpsCommands",
    "RequestListing",
    "RollbackPlan",
    "StatusReport",
]

OPEN_STATUSES = (RequestStatus.PENDING, RequestStatus.APPROVED, RequestStatus.EXECUTING)
STATUS_WINDOW = 200  # `/ops status` counts this many of the latest requests
LISTING_SIZE = 25


@dataclass(frozen=True)
class StatusReport:
    """The latest requests counted by status, those still in flight, and the locked targets."""

    environment: str | None
    examined: int
    counts: Mapping[RequestStatus, int]
    in_flight: tuple[ChangeRequest, ...]
    locked_targets: tuple[str, ...]


@dataclass(frozen=True)
class RequestListing:
    scope: Literal["pending", "mine"]
    requests: tuple[ChangeRequest, ...]


@dataclass(frozen=True)
class AuditListing:
    """One request's audit trail, oldest first."""

    request: ChangeRequest
    events: tuple[ChainedRecord, ...]


@dataclass(frozen=True)
class RollbackPlan:
    """The promotion that puts back what `original` replaced; open it with RequestService."""

    original: ChangeRequest
    spec: ChangeSpec

    @property
    def reason(self) -> str:
        return f"Rollback of {self.original.human_id}"


@dataclass
class OpsCommands:
    approvals: Approvals
    config: OpsgateConfig

    async def status(self, tx: ReadingTx, environment: str | None) -> StatusReport:
        if environment and environment not in self.config.environments:
            raise PrecheckFailed(
                f"Unknown environment '{environment}'. Configured: {', '.join(sorted(self.config.environments))}."
            )
        recent = await self.approvals.list_requests(tx, limit=STATUS_WINDOW)
        if environment:
            recent = [r for r in recent if r.environment == environment]
        locks = await tx.requests.locked_targets()
        if environment:
            locks = [lock for lock in locks if lock.endswith(f"@{environment}")]
        return StatusReport(
            environment=environment,
            examined=len(recent),
            counts=Counter(r.status for r in recent),
            in_flight=tuple(r for r in recent if r.status in OPEN_STATUSES),
            locked_targets=tuple(locks),
        )

    async def pending(self, tx: ReadingTx) -> RequestListing:
        found = await self.approvals.list_requests(tx, statuses=[RequestStatus.PENDING], limit=LISTING_SIZE)
        return RequestListing("pending", tuple(found))

    async def mine(self, tx: ReadingTx, user: str) -> RequestListing:
        found = await self.approvals.list_requests(tx, requester=user, limit=LISTING_SIZE)
        return RequestListing("mine", tuple(found))

    async def show(self, tx: ReadingTx, ref: str) -> ChangeRequest:
        return await self.approvals.get(tx, ref)

    async def cancel(self, tx: RequestTx, ref: str, user: str) -> ChangeRequest:
        return await self.approvals.cancel(tx, ref, user=user)

    async def review(self, tx: RequestTx, ref: str, reviewer: str, notes: str) -> ChangeRequest:
        return await self.approvals.review_emergency(tx, ref, reviewer=reviewer, notes=notes)

    async def audit(self, tx: ReadingTx, ref: str) -> AuditListing:
        request = await self.approvals.get(tx, ref)  # a clear "no such request" first
        return AuditListing(request, tuple(await tx.requests.audit_events(request.human_id)))

    async def rollback(self, tx: ReadingTx, ref: str) -> RollbackPlan:
        """What rolling `ref` back would open; only finished promotions roll back."""
        original = await self.approvals.get(tx, ref)
        if original.action is not Action.PROMOTION:
            raise InvalidTransition(
                f"{original.human_id} is a {original.action.value}; only promotions roll back."
            )
        if original.status not in (RequestStatus.SUCCEEDED, RequestStatus.FAILED):
            raise InvalidTransition(
                f"{original.human_id} is {original.status.value}; roll back after it finishes."
            )
        return RollbackPlan(original, rollback_spec(original))  # the promotion knows what it replaced
