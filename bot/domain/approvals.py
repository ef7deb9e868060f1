"""The approval engine: every state change of a change request, authorised when it happens.

Each public method is one database transaction that changes state with a conditional UPDATE
(`WHERE status = :expected`) and appends its audit event in the same transaction; if the event
cannot be written nothing changes. No Slack, no HTTP: callers render the results.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.db.audit_log import append_event
from bot.db.models import Approval, ChangeRequestRow, TargetLock
from bot.db.models import Sequence as SequenceRow
from bot.domain.audit import AuditRecord, Fingerprinter, canonical_json
from bot.domain.errors import (
    BreakGlassRefused,
    InvalidTransition,
    NotAnApprover,
    NotEligibleRequester,
    PolicyDenied,
    QuorumNotMet,
    RequestExpired,
    RequestNotFound,
    SelfApprovalRefused,
    TargetLocked,
)
from bot.domain.policy import Action, Directory, PolicyRule, PolicySet
from bot.domain.requests import (
    ACTION_PREFIX,
    ApprovalView,
    ChangeRequest,
    ChangeSpec,
    Clock,
    RequestStatus,
    parameters_hash,
    system_clock,
)

__all__ = ["ApprovalEngine", "ApprovalOutcome", "TransitionObserver"]

SYSTEM_ACTOR = "opsgate"


class TransitionObserver(Protocol):
    """Told of every transition inside its transaction, so what it queues commits atomically with it.

    The Slack layer implements this to queue message updates, DMs and execution jobs; whatever it
    raises rolls the transition back.
    """

    async def on_transition(
        self, session: AsyncSession, request: ChangeRequest, *, event: str, actor: str
    ) -> None: ...


@dataclass(frozen=True)
class ApprovalOutcome:
    request: ChangeRequest
    counted: bool  # False when this approver had already approved these parameters
    quorum_reached: bool


class ApprovalEngine:
    """Creates, decides, expires and starts change requests under a PolicySet."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        policies: PolicySet,
        directory: Directory,
        fingerprinter: Fingerprinter,
        *,
        clock: Clock = system_clock,
        observer: TransitionObserver | None = None,
    ) -> None:
        self.observer = observer
        self._sessions = sessions
        self.policies = policies
        self._directory = directory
        self._fingerprinter = fingerprinter
        self._clock = clock

    # ----------------------------------------------------------------- create

    async def create(
        self,
        spec: ChangeSpec,
        *,
        requester: str,
        reason: str = "",
        idempotency_key: str | None = None,
        emergency_reason: str | None = None,
        preview: Mapping[str, Any] | None = None,
        rollback_of: str | None = None,
    ) -> ChangeRequest:
        """Open a request (or return the one already opened under `idempotency_key`).

        Checks, in order: a rule governs the change (fail closed), the requester may request,
        break-glass rights or the change window, and that no other request holds the target.
        """
        if idempotency_key and (existing := await self._by_idempotency_key(idempotency_key)):
            return existing
        rule = self.policies.resolve(spec.action, spec.environment, spec.target)
        await self._require_eligible_requester(rule, requester)
        now = self._clock()
        emergency = emergency_reason is not None
        if emergency:
            await self._require_break_glass(rule, requester, emergency_reason or "")
        else:
            rule.require_window_open(now)

        try:
            async with self._sessions() as session, session.begin():
                rollback_row = await self._row(session, rollback_of) if rollback_of else None
                human_id = await self._next_human_id(session, spec.action)
                status = RequestStatus.APPROVED if emergency else RequestStatus.PENDING
                row = ChangeRequestRow(
                    human_id=human_id,
                    kind=spec.action.value,
                    target=spec.target,
                    environment=spec.environment,
                    parameters=dict(spec.parameters),
                    params_hash=spec.hash,
                    requester=requester,
                    reason=reason,
                    status=status.value,
                    policy_name=rule.name,
                    policy_snapshot=rule.model_dump(mode="json"),
                    emergency=emergency,
                    review_due_at=(now + rule.break_glass.review_within)
                    if emergency and rule.break_glass
                    else None,
                    rollback_of_id=rollback_row.id if rollback_row else None,
                    idempotency_key=idempotency_key,
                    decided_by=requester if emergency else None,
                    decision_reason=emergency_reason if emergency else None,
                    decided_at=now if emergency else None,
                    preview=dict(preview) if preview else None,
                    created_at=now,
                    updated_at=now,
                    expires_at=now + rule.expires_after,
                    remind_at=(now + rule.remind_every) if rule.remind_every and not emergency else None,
                )
                session.add(row)
                await session.flush()
                await self._acquire_lock(session, spec.effective_lock_key, row.id, now)
                await self._audit(
                    session,
                    actor=requester,
                    action="request.break_glass" if emergency else "request.created",
                    row=row,
                    before=None,
                    reason=emergency_reason if emergency else reason,
                    evidence={
                        "parameters": dict(spec.parameters),
                        "params_hash": spec.hash,
                        "policy": rule.name,
                        "policy_fingerprint": rule.fingerprint(),
                        "lock": spec.effective_lock_key,
                        **({"rollback_of": rollback_row.human_id} if rollback_row else {}),
                    },
                )
                return await self._view(session, row)
        except IntegrityError:
            if idempotency_key and (existing := await self._by_idempotency_key(idempotency_key)):
                return existing
            holder = await self._lock_holder(spec.effective_lock_key)
            if holder is None:
                raise
            raise TargetLocked(
                f"{spec.target} in {spec.environment} is locked by {holder}: one change per target at a time. "
                f"Wait for {holder} to finish or cancel it.",
                holder=holder,
            ) from None

    # ---------------------------------------------------------------- decide

    async def approve(self, request_ref: str, *, approver: str) -> ApprovalOutcome:
        """Record an approval if `approver` may give it now; reaching quorum approves the request."""
        expired = False
        async with self._sessions() as session, session.begin():
            row = await self._row(session, request_ref, lock=True)
            if await self._expire_if_due(session, row):
                expired = True
            else:
                self._require_status(row, RequestStatus.PENDING, verb="approve")
                rule = self._current_rule(row)
                await self._require_may_decide(rule, row, approver, verb="approve")
                already = await session.scalar(
                    select(func.count())
                    .select_from(Approval)
                    .where(
                        Approval.request_id == row.id,
                        Approval.approver == approver,
                        Approval.params_hash == row.params_hash,
                    )
                )
                if already:
                    return ApprovalOutcome(
                        await self._view(session, row), counted=False, quorum_reached=False
                    )
                now = self._clock()
                session.add(
                    Approval(
                        request_id=row.id, approver=approver, params_hash=row.params_hash, approved_at=now
                    )
                )
                await session.flush()
                valid = await self._count_valid_approvals(session, row)
                quorum = valid >= rule.min_approvals
                if quorum:
                    await self._transition(
                        session,
                        row,
                        RequestStatus.PENDING,
                        RequestStatus.APPROVED,
                        decided_by=approver,
                        decided_at=now,
                        remind_at=None,
                    )
                await self._audit(
                    session,
                    actor=approver,
                    action="request.approved" if quorum else "approval.recorded",
                    row=row,
                    before=RequestStatus.PENDING,
                    evidence={
                        "approvals": valid,
                        "required": rule.min_approvals,
                        "params_hash": row.params_hash,
                    },
                )
                return ApprovalOutcome(await self._view(session, row), counted=True, quorum_reached=quorum)
        assert expired
        raise RequestExpired(
            f"{request_ref} expired; nothing will run. Open a new request if it is still needed."
        )

    async def reject(self, request_ref: str, *, approver: str, reason: str) -> ChangeRequest:
        if not reason.strip():
            raise InvalidTransition("A rejection needs a reason, so the requester knows what to change.")
        async with self._sessions() as session, session.begin():
            row = await self._row(session, request_ref, lock=True)
            expired = await self._expire_if_due(session, row)
            if not expired:
                self._require_status(row, RequestStatus.PENDING, verb="reject")
                rule = self._current_rule(row)
                if approver == row.requester:
                    raise SelfApprovalRefused(
                        f"You cannot reject your own request; use `/ops cancel {row.human_id}` to withdraw it."
                    )
                await self._require_may_decide(rule, row, approver, verb="reject")
                now = self._clock()
                await self._transition(
                    session,
                    row,
                    RequestStatus.PENDING,
                    RequestStatus.REJECTED,
                    decided_by=approver,
                    decided_at=now,
                    decision_reason=reason,
                    finished_at=now,
                )
                await self._release_lock(session, row)
                await self._audit(
                    session,
                    actor=approver,
                    action="request.rejected",
                    row=row,
                    before=RequestStatus.PENDING,
                    reason=reason,
                )
                return await self._view(session, row)
        raise RequestExpired(f"{request_ref} expired before it was rejected; nothing will run.")

    async def cancel(self, request_ref: str, *, user: str, reason: str = "") -> ChangeRequest:
        """Only the requester withdraws a request, and only before it starts."""
        async with self._sessions() as session, session.begin():
            row = await self._row(session, request_ref, lock=True)
            if row.requester != user:
                raise PolicyDenied(f"Only <@{row.requester}> can cancel {row.human_id}.")
            before = RequestStatus(row.status)
            if before not in (RequestStatus.PENDING, RequestStatus.APPROVED):
                raise InvalidTransition(f"{row.human_id} is {before.value} and can no longer be cancelled.")
            now = self._clock()
            await self._transition(
                session,
                row,
                before,
                RequestStatus.CANCELLED,
                decided_by=user,
                decision_reason=reason or None,
                finished_at=now,
            )
            await self._release_lock(session, row)
            await self._audit(
                session, actor=user, action="request.cancelled", row=row, before=before, reason=reason
            )
            return await self._view(session, row)

    async def update_parameters(
        self, request_ref: str, *, user: str, parameters: Mapping[str, Any]
    ) -> ChangeRequest:
        """Change what is asked: every earlier approval stops counting and an approved request waits again."""
        async with self._sessions() as session, session.begin():
            row = await self._row(session, request_ref, lock=True)
            if row.requester != user:
                raise PolicyDenied(f"Only <@{row.requester}> can change {row.human_id}.")
            before = RequestStatus(row.status)
            if before not in (RequestStatus.PENDING, RequestStatus.APPROVED) or row.emergency:
                raise InvalidTransition(
                    f"{row.human_id} is {before.value}; its parameters can no longer change."
                )
            old_hash = row.params_hash
            new_hash = parameters_hash(Action(row.kind), row.target, row.environment, parameters)
            if new_hash == old_hash:
                return await self._view(session, row)
            voided = await self._count_valid_approvals(session, row)
            result = await session.execute(
                update(ChangeRequestRow)
                .where(
                    ChangeRequestRow.id == row.id,
                    ChangeRequestRow.status == before.value,
                    ChangeRequestRow.params_hash == old_hash,
                )
                .values(
                    parameters=dict(parameters),
                    params_hash=new_hash,
                    status=RequestStatus.PENDING.value,
                    decided_by=None,
                    decided_at=None,
                    updated_at=self._clock(),
                )
            )
            if result.rowcount != 1:  # type: ignore[attr-defined]
                raise InvalidTransition(f"{row.human_id} changed while you were editing it; try again.")
            await session.refresh(row)
            await self._audit(
                session,
                actor=user,
                action="request.parameters_changed",
                row=row,
                before=before,
                evidence={
                    "old_params_hash": old_hash,
                    "params_hash": new_hash,
                    "approvals_voided": voided,
                    "parameters": dict(parameters),
                },
            )
            return await self._view(session, row)

    async def expire_due(self) -> list[ChangeRequest]:
        """Expire every open request past its deadline; returns them so their messages can be updated."""
        now = self._clock()
        async with self._sessions() as session:
            refs = (
                await session.scalars(
                    select(ChangeRequestRow.human_id).where(
                        ChangeRequestRow.status.in_(
                            [RequestStatus.PENDING.value, RequestStatus.APPROVED.value]
                        ),
                        ChangeRequestRow.expires_at <= now,
                    )
                )
            ).all()
        expired = []
        for ref in refs:
            async with self._sessions() as session, session.begin():
                row = await self._row(session, ref, lock=True)
                if await self._expire_if_due(session, row):
                    expired.append(await self._view(session, row))
        return expired

    async def review_emergency(self, request_ref: str, *, reviewer: str, notes: str) -> ChangeRequest:
        """The after-the-fact review break-glass changes owe; by an approver other than the requester."""
        async with self._sessions() as session, session.begin():
            row = await self._row(session, request_ref, lock=True)
            if not row.emergency:
                raise InvalidTransition(
                    f"{row.human_id} was not a break-glass change; there is nothing to review."
                )
            if row.reviewed_by:
                raise InvalidTransition(f"{row.human_id} was already reviewed by <@{row.reviewed_by}>.")
            if reviewer == row.requester:
                raise SelfApprovalRefused("The person who used break-glass cannot review their own change.")
            rule = self._current_rule(row)
            if not await rule.approvers.contains(reviewer, self._directory):
                raise NotAnApprover(f"Only approvers under policy '{rule.name}' can review {row.human_id}.")
            now = self._clock()
            row.reviewed_by, row.reviewed_at, row.updated_at = reviewer, now, now
            await session.flush()
            await self._audit(
                session,
                actor=reviewer,
                action="request.reviewed",
                row=row,
                before=RequestStatus(row.status),
                reason=notes,
            )
            return await self._view(session, row)

    # --------------------------------------------------------------- execute

    async def start_execution(self, request_ref: str, *, actor: str = SYSTEM_ACTOR) -> ChangeRequest:
        """Move an approved request to executing exactly once, even across processes.

        Re-checks quorum for the current parameters and the change window (break-glass skips
        both), then a compare-and-set UPDATE decides the single winner.
        """
        async with self._sessions() as session, session.begin():
            row = await self._row(session, request_ref, lock=True)
            expired = await self._expire_if_due(session, row)
            if not expired:
                self._require_status(row, RequestStatus.APPROVED, verb="start")
                if not row.emergency:
                    rule = self._current_rule(row)
                    valid = await self._count_valid_approvals(session, row)
                    if valid < rule.min_approvals:
                        raise QuorumNotMet(
                            f"{row.human_id} has {valid} valid approval(s) of {rule.min_approvals} required."
                        )
                    rule.require_window_open(self._clock())
                now = self._clock()
                await self._transition(
                    session, row, RequestStatus.APPROVED, RequestStatus.EXECUTING, started_at=now
                )
                await self._audit(
                    session,
                    actor=actor,
                    action="execution.started",
                    row=row,
                    before=RequestStatus.APPROVED,
                    evidence={"params_hash": row.params_hash},
                )
                return await self._view(session, row)
        raise RequestExpired(f"{request_ref} expired before it started; nothing ran.")

    async def succeed(
        self,
        request_ref: str,
        *,
        result: Mapping[str, Any],
        evidence: Mapping[str, Any] | None = None,
        actor: str = SYSTEM_ACTOR,
    ) -> ChangeRequest:
        return await self._finish(
            request_ref, RequestStatus.SUCCEEDED, actor=actor, result=result, evidence=evidence, failure=None
        )

    async def fail(
        self,
        request_ref: str,
        *,
        reason: str,
        evidence: Mapping[str, Any] | None = None,
        actor: str = SYSTEM_ACTOR,
    ) -> ChangeRequest:
        return await self._finish(
            request_ref, RequestStatus.FAILED, actor=actor, result=None, evidence=evidence, failure=reason
        )

    async def _finish(
        self,
        request_ref: str,
        status: RequestStatus,
        *,
        actor: str,
        result: Mapping[str, Any] | None,
        evidence: Mapping[str, Any] | None,
        failure: str | None,
    ) -> ChangeRequest:
        async with self._sessions() as session, session.begin():
            row = await self._row(session, request_ref, lock=True)
            self._require_status(row, RequestStatus.EXECUTING, verb="finish")
            now = self._clock()
            await self._transition(
                session,
                row,
                RequestStatus.EXECUTING,
                status,
                finished_at=now,
                result=dict(result) if result else None,
                failure_reason=failure,
            )
            await self._release_lock(session, row)
            await self._audit(
                session,
                actor=actor,
                action=f"execution.{status.value}",
                row=row,
                before=RequestStatus.EXECUTING,
                reason=failure,
                evidence={**(evidence or {}), **({"result": dict(result)} if result else {})},
            )
            return await self._view(session, row)

    async def retry_failed(self, request_ref: str, *, actor: str) -> ChangeRequest:
        """Put a failed request back to approved so its execution resumes from the failed step.

        The retry is authorised now: the actor must be an approver under the current policy, the
        approvals must still cover the parameters, the target lock is taken again, and the request
        gets a fresh deadline to start in.
        """
        async with self._sessions() as session, session.begin():
            row = await self._row(session, request_ref, lock=True)
            self._require_status(row, RequestStatus.FAILED, verb="retry")
            rule = self._current_rule(row)
            if actor != row.requester and not await rule.approvers.contains(actor, self._directory):
                raise NotAnApprover(
                    f"Only <@{row.requester}> or an approver under '{rule.name}' can retry {row.human_id}."
                )
            if not row.emergency and await self._count_valid_approvals(session, row) < rule.min_approvals:
                raise QuorumNotMet(f"{row.human_id} no longer has enough approvals; open a new request.")
            now = self._clock()
            await self._transition(session, row, RequestStatus.FAILED, RequestStatus.APPROVED,
                                   expires_at=now + rule.expires_after, finished_at=None, failure_reason=None)  # fmt: skip
            await self._acquire_lock(session, self._lock_key_of(row), row.id, now)
            await self._audit(
                session, actor=actor, action="request.retried", row=row, before=RequestStatus.FAILED
            )
            return await self._view(session, row)

    @staticmethod
    def _lock_key_of(row: ChangeRequestRow) -> str:
        return ChangeSpec(Action(row.kind), row.target, row.environment, row.parameters).effective_lock_key

    async def record_slack_message(self, request_ref: str, *, channel: str, ts: str) -> None:
        """Remember where the approval message lives so later decisions update it in place."""
        async with self._sessions() as session, session.begin():
            await session.execute(
                update(ChangeRequestRow)
                .where(ChangeRequestRow.human_id == request_ref)
                .values(slack_channel=channel, slack_ts=ts)
            )

    # ---------------------------------------------------------------- read

    async def get(self, request_ref: str) -> ChangeRequest:
        async with self._sessions() as session:
            return await self._view(session, await self._row(session, request_ref))

    async def list_requests(
        self,
        *,
        statuses: Sequence[RequestStatus] | None = None,
        requester: str | None = None,
        limit: int = 20,
        offset: int = 0,
    ) -> list[ChangeRequest]:
        query = select(ChangeRequestRow).order_by(
            ChangeRequestRow.created_at.desc(), ChangeRequestRow.id.desc()
        )
        if statuses:
            query = query.where(ChangeRequestRow.status.in_([s.value for s in statuses]))
        if requester:
            query = query.where(ChangeRequestRow.requester == requester)
        async with self._sessions() as session:
            rows = (await session.scalars(query.limit(limit).offset(offset))).all()
            return await self._views(session, list(rows))

    async def awaiting(self, approver: str, *, limit: int = 20, offset: int = 0) -> list[ChangeRequest]:
        """Pending requests this person could approve now and has not yet approved.

        Membership is decided once per policy (not per request), and the rest is one query, so
        App Home stays fast with a large history.
        """
        eligible: list[str] = []
        self_allowed: list[str] = []
        for rule in self.policies.rules:
            if await rule.approvers.contains(approver, self._directory):
                eligible.append(rule.name)
                if rule.allow_self_approval:
                    self_allowed.append(rule.name)
        if not eligible:
            return []
        already = (
            select(Approval.id)
            .where(
                Approval.request_id == ChangeRequestRow.id,
                Approval.approver == approver,
                Approval.params_hash == ChangeRequestRow.params_hash,
            )
            .exists()
        )
        query = (
            select(ChangeRequestRow)
            .where(
                ChangeRequestRow.status == RequestStatus.PENDING.value,
                ChangeRequestRow.policy_name.in_(eligible),
                ~already,
                (ChangeRequestRow.requester != approver)
                | ChangeRequestRow.policy_name.in_(self_allowed or [""]),
            )
            .order_by(ChangeRequestRow.created_at.desc(), ChangeRequestRow.id.desc())
            .limit(limit)
            .offset(offset)
        )
        async with self._sessions() as session:
            rows = (await session.scalars(query)).all()
            return await self._views(session, list(rows))

    async def due_reminders(self) -> list[ChangeRequest]:
        """Pending requests whose reminder time has come; each is pushed to its next reminder."""
        now = self._clock()
        due = []
        async with self._sessions() as session, session.begin():
            rows = (
                await session.scalars(
                    select(ChangeRequestRow).where(
                        ChangeRequestRow.status == RequestStatus.PENDING.value,
                        ChangeRequestRow.remind_at.is_not(None),
                        ChangeRequestRow.remind_at <= now,
                        ChangeRequestRow.expires_at > now,
                    )
                )
            ).all()
            for row in rows:
                rule = PolicyRule.model_validate(row.policy_snapshot)
                row.remind_at = now + rule.remind_every if rule.remind_every else None
                due.append(await self._view(session, row))
        return due

    # ------------------------------------------------------------- internals

    async def _require_eligible_requester(self, rule: PolicyRule, requester: str) -> None:
        if rule.requesters is not None and not await rule.requesters.contains(requester, self._directory):
            raise NotEligibleRequester(
                f"<@{requester}> may not request this change under policy '{rule.name}' "
                f"(requesters: {rule.requesters.describe()})."
            )

    async def _require_break_glass(self, rule: PolicyRule, requester: str, reason: str) -> None:
        if rule.break_glass is None:
            raise BreakGlassRefused(
                f"Policy '{rule.name}' has no break-glass path; request a normal approval."
            )
        if not reason.strip():
            raise BreakGlassRefused('Break-glass needs a reason: --emergency "what is broken and why now".')
        if not await rule.break_glass.as_approver_set().contains(requester, self._directory):
            raise BreakGlassRefused(
                f"<@{requester}> may not use break-glass under policy '{rule.name}' "
                f"(allowed: {rule.break_glass.as_approver_set().describe()})."
            )

    async def _require_may_decide(
        self, rule: PolicyRule, row: ChangeRequestRow, user: str, *, verb: str
    ) -> None:
        if user == row.requester and not rule.allow_self_approval:
            raise SelfApprovalRefused(
                f"You requested {row.human_id}; policy '{rule.name}' does not allow self-approval."
            )
        if not await rule.approvers.contains(user, self._directory):
            raise NotAnApprover(
                f"You are not an approver for {row.human_id} (policy '{rule.name}': {rule.approvers.describe()})."
            )
        # Eligibility is checked again now: someone removed from the requesters since asking
        # must not get their change through (sso-elevator semantics). Rejecting stays possible.
        if verb == "approve" and rule.requesters is not None:
            if not await rule.requesters.contains(row.requester, self._directory):
                raise NotEligibleRequester(
                    f"<@{row.requester}> is no longer allowed to request this change, so {row.human_id} "
                    "cannot be approved. It can still be rejected or cancelled."
                )

    def _current_rule(self, row: ChangeRequestRow) -> PolicyRule:
        """Decisions use the policy in force now (fail closed if none governs the change any more)."""
        return self.policies.resolve(Action(row.kind), row.environment, row.target)

    @staticmethod
    def _require_status(row: ChangeRequestRow, expected: RequestStatus, *, verb: str) -> None:
        if row.status == RequestStatus.PENDING.value and expected is not RequestStatus.PENDING:
            raise InvalidTransition(f"{row.human_id} is still waiting for approval; it cannot {verb} yet.")
        if row.status != expected.value:
            by = (
                f" by <@{row.decided_by}>"
                if row.decided_by and row.status in ("approved", "rejected")
                else ""
            )
            raise InvalidTransition(f"{row.human_id} is already {row.status}{by}; it cannot {verb} now.")

    async def _expire_if_due(self, session: AsyncSession, row: ChangeRequestRow) -> bool:
        status = RequestStatus(row.status)
        if status not in (RequestStatus.PENDING, RequestStatus.APPROVED) or row.expires_at > self._clock():
            return False
        now = self._clock()
        await self._transition(session, row, status, RequestStatus.EXPIRED, finished_at=now, remind_at=None)
        await self._release_lock(session, row)
        await self._audit(session, actor=SYSTEM_ACTOR, action="request.expired", row=row, before=status)
        return True

    async def _transition(
        self,
        session: AsyncSession,
        row: ChangeRequestRow,
        before: RequestStatus,
        after: RequestStatus,
        **values: Any,
    ) -> None:
        result = await session.execute(
            update(ChangeRequestRow)
            .where(ChangeRequestRow.id == row.id, ChangeRequestRow.status == before.value)
            .values(status=after.value, updated_at=self._clock(), **values)
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            raise InvalidTransition(f"{row.human_id} is no longer {before.value}; someone acted first.")
        await session.refresh(row)

    async def _acquire_lock(self, session: AsyncSession, key: str, request_id: int, now: datetime) -> None:
        session.add(TargetLock(target_key=key, request_id=request_id, acquired_at=now))
        await session.flush()

    async def _release_lock(self, session: AsyncSession, row: ChangeRequestRow) -> None:
        await session.execute(delete(TargetLock).where(TargetLock.request_id == row.id))

    async def _lock_holder(self, key: str) -> str | None:
        async with self._sessions() as session:
            return await session.scalar(
                select(ChangeRequestRow.human_id)
                .join(TargetLock, TargetLock.request_id == ChangeRequestRow.id)
                .where(TargetLock.target_key == key)
            )

    async def _next_human_id(self, session: AsyncSession, action: Action) -> str:
        prefix = ACTION_PREFIX[action]
        value = await session.scalar(
            update(SequenceRow)
            .where(SequenceRow.name == prefix)
            .values(value=SequenceRow.value + 1)
            .returning(SequenceRow.value)
        )
        if value is None:
            raise RuntimeError(f"sequence {prefix} missing: run `opsgate db upgrade`")
        return f"{prefix}-{value}"

    async def _row(self, session: AsyncSession, request_ref: str, *, lock: bool = False) -> ChangeRequestRow:
        query = select(ChangeRequestRow).where(ChangeRequestRow.human_id == request_ref.strip().upper())
        if lock:
            query = query.with_for_update()
        row = await session.scalar(query)
        if row is None:
            raise RequestNotFound(f"There is no request {request_ref}. `/ops pending` lists open ones.")
        return row

    async def _by_idempotency_key(self, key: str) -> ChangeRequest | None:
        async with self._sessions() as session:
            row = await session.scalar(
                select(ChangeRequestRow).where(ChangeRequestRow.idempotency_key == key)
            )
            return await self._view(session, row) if row else None

    async def _count_valid_approvals(self, session: AsyncSession, row: ChangeRequestRow) -> int:
        count = await session.scalar(
            select(func.count())
            .select_from(Approval)
            .where(Approval.request_id == row.id, Approval.params_hash == row.params_hash)
        )
        return int(count or 0)

    async def _audit(
        self,
        session: AsyncSession,
        *,
        actor: str,
        action: str,
        row: ChangeRequestRow,
        before: RequestStatus | None,
        reason: str | None = None,
        evidence: Mapping[str, Any] | None = None,
    ) -> None:
        # The observer's writes (outbox rows, the execute job) go first: appending locks the single
        # audit head row until commit, and every transition of every process waits for that lock.
        if self.observer is not None:
            await self.observer.on_transition(
                session, await self._view(session, row), event=action, actor=actor
            )
        await append_event(
            session,
            AuditRecord(
                occurred_at=self._clock(),
                actor=actor,
                action=action,
                request_ref=row.human_id,
                subject=f"{row.kind}:{row.target}@{row.environment}",
                before_status=before.value if before else None,
                after_status=row.status,
                reason=reason or None,
                evidence=evidence or {},
            ),
            self._fingerprinter,
        )

    async def _view(self, session: AsyncSession, row: ChangeRequestRow) -> ChangeRequest:
        return (await self._views(session, [row]))[0]

    async def _views(self, session: AsyncSession, rows: list[ChangeRequestRow]) -> list[ChangeRequest]:
        """Read models for many rows with one approvals query (no N+1)."""
        if not rows:
            return []
        found = (
            await session.scalars(
                select(Approval).where(Approval.request_id.in_([r.id for r in rows])).order_by(Approval.id)
            )
        ).all()
        by_request: dict[int, list[Approval]] = {}
        for approval in found:
            by_request.setdefault(approval.request_id, []).append(approval)
        rules: dict[str, PolicyRule] = {}
        views = []
        for row in rows:
            key = f"{row.policy_name}:{canonical_json(row.policy_snapshot)}"
            if key not in rules:
                rules[key] = PolicyRule.model_validate(row.policy_snapshot)
            views.append(self._to_view(row, by_request.get(row.id, []), rules[key]))
        return views

    @staticmethod
    def _to_view(row: ChangeRequestRow, approvals: Sequence[Approval], rule: PolicyRule) -> ChangeRequest:
        return ChangeRequest(
            id=row.id,
            human_id=row.human_id,
            action=Action(row.kind),
            target=row.target,
            environment=row.environment,
            parameters=row.parameters,
            params_hash=row.params_hash,
            requester=row.requester,
            reason=row.reason,
            status=RequestStatus(row.status),
            policy=rule,
            emergency=row.emergency,
            created_at=row.created_at,
            expires_at=row.expires_at,
            approvals=tuple(ApprovalView(a.approver, a.approved_at, a.params_hash) for a in approvals),
            review_due_at=row.review_due_at,
            reviewed_by=row.reviewed_by,
            rollback_of_id=row.rollback_of_id,
            decided_by=row.decided_by,
            decision_reason=row.decision_reason,
            failure_reason=row.failure_reason,
            result=row.result,
            preview=row.preview,
            slack_channel=row.slack_channel,
            slack_ts=row.slack_ts,
            started_at=row.started_at,
            finished_at=row.finished_at,
        )
