"""Change requests through their lives: open, decide, expire, start and finish, under a PolicySet.

Each method takes the caller's open transaction first and applies the rules of
bot/domain/approvals.py to what the store holds: it locks the request's row, checks, changes
state by compare-and-set, tells the observer and appends the audit event, all in `tx`. It never
commits; if anything fails, the edge's transaction rolls every part back together. The directory
is asked before the first statement, so no lock is held while Slack answers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bot.domain import approvals as rules
from bot.domain.approvals import SYSTEM_ACTOR, Memberships, Transition
from bot.domain.errors import InvalidTransition, PolicyDenied, RequestExpired
from bot.domain.policy import Directory, PolicyRule, PolicySet
from bot.domain.requests import (
    ChangeRequest,
    ChangeSpec,
    Clock,
    RequestStatus,
    parameters_hash,
    system_clock,
)
from commands.ports import ReadingTx, RequestTx, TransitionObserver

__all__ = ["ApprovalOutcome", "Approvals"]


@dataclass(frozen=True)
class ApprovalOutcome:
    """What one approval did: the request as it now is, and whether the click counted."""

    request: ChangeRequest
    counted: bool  # False when this approver had already approved these parameters
    quorum_reached: bool


class Approvals:
    """The approval use case: every state change of a change request, authorised when it happens."""

    def __init__(
        self,
        policies: PolicySet,
        directory: Directory,
        *,
        clock: Clock = system_clock,
        observer: TransitionObserver | None = None,
    ) -> None:
        self.policies = policies
        self._directory = directory
        self._clock = clock
        self._observer = observer

    # ---------------------------------------------------------------------------- open

    async def create(
        self,
        tx: RequestTx,
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
        try:
            rule = self.policies.resolve(spec.action, spec.environment, spec.target)
        except PolicyDenied:
            # A retry under a known key gets its request back, whatever the policies say now.
            if idempotency_key and (existing := await tx.requests.by_idempotency_key(idempotency_key)):
                return existing
            raise
        members = await self._ask([rule])
        if idempotency_key and (existing := await tx.requests.by_idempotency_key(idempotency_key)):
            return existing
        now = self._clock()
        rules.require_may_open(rule, requester, members, now=now, emergency_reason=emergency_reason)
        original = rules.found(await tx.requests.find(rollback_of), rollback_of) if rollback_of else None
        draft = rules.draft_request(
            spec,
            rule,
            requester=requester,
            reason=reason,
            now=now,
            emergency_reason=emergency_reason,
            preview=preview,
            rollback_of=original,
            idempotency_key=idempotency_key,
        )
        request = await tx.requests.insert(draft)
        if request is None:
            if idempotency_key and (existing := await tx.requests.by_idempotency_key(idempotency_key)):
                return existing
            holder = await tx.requests.lock_holder(draft.lock_key)
            if holder is None:  # the holder finished between our insert and this read
                raise InvalidTransition(
                    f"{spec.target} in {spec.environment} was busy a moment ago; try again."
                )
            raise rules.target_locked(spec, holder)
        emergency = draft.emergency
        await self._record(
            tx,
            request,
            action="request.break_glass" if emergency else "request.created",
            actor=requester,
            before=None,
            reason=emergency_reason if emergency else reason,
            evidence=rules.creation_evidence(draft, original),
        )
        return request

    # -------------------------------------------------------------------------- decide

    async def approve(self, tx: RequestTx, request_ref: str, *, approver: str) -> ApprovalOutcome:
        """Record an approval if `approver` may give it now; reaching quorum approves the request."""
        members = await self._ask()
        request = await self._locked(tx, request_ref)
        await self._expire_if_due(
            tx, request, f"{request_ref} expired; nothing will run. Open a new request if it is still needed."
        )
        rules.require_status(request, RequestStatus.PENDING, verb="approve")
        rule = rules.rule_in_force(self.policies, request)
        rules.require_may_decide(rule, request, approver, members, verb="approve")
        if request.approved_by(approver):
            return ApprovalOutcome(request, counted=False, quorum_reached=False)
        now = self._clock()
        request = await tx.requests.add_approval(request, approver=approver, at=now)
        quorum = rules.quorum_reached(request, rule)
        if quorum:
            request = await self._apply(tx, request, rules.approved(by=approver, at=now))
        await self._record(
            tx,
            request,
            action="request.approved" if quorum else "approval.recorded",
            actor=approver,
            before=RequestStatus.PENDING,
            evidence={
                "approvals": len(request.valid_approvals),
                "required": rule.min_approvals,
                "params_hash": request.params_hash,
            },
        )
        return ApprovalOutcome(request, counted=True, quorum_reached=quorum)

    async def reject(self, tx: RequestTx, request_ref: str, *, approver: str, reason: str) -> ChangeRequest:
        rules.require_rejection_reason(reason)
        members = await self._ask()
        request = await self._locked(tx, request_ref)
        await self._expire_if_due(
            tx, request, f"{request_ref} expired before it was rejected; nothing will run."
        )
        rules.require_status(request, RequestStatus.PENDING, verb="reject")
        rule = rules.rule_in_force(self.policies, request)
        rules.require_may_reject(rule, request, approver, members)
        request = await self._apply(tx, request, rules.rejected(by=approver, reason=reason, at=self._clock()))
        await tx.requests.release_lock(request)
        await self._record(
            tx,
            request,
            action="request.rejected",
            actor=approver,
            before=RequestStatus.PENDING,
            reason=reason,
        )
        return request

    async def cancel(self, tx: RequestTx, request_ref: str, *, user: str, reason: str = "") -> ChangeRequest:
        """Only the requester withdraws a request, and only before it starts."""
        request = await self._locked(tx, request_ref)
        rules.require_may_cancel(request, user)
        before = request.status
        request = await self._apply(
            tx, request, rules.cancelled(request, by=user, reason=reason, at=self._clock())
        )
        await tx.requests.release_lock(request)
        await self._record(tx, request, action="request.cancelled", actor=user, before=before, reason=reason)
        return request

    async def update_parameters(
        self, tx: RequestTx, request_ref: str, *, user: str, parameters: Mapping[str, Any]
    ) -> ChangeRequest:
        """Change what is asked: every earlier approval stops counting and an approved request waits again."""
        request = await self._locked(tx, request_ref)
        rules.require_may_change_parameters(request, user)
        before, old_hash = request.status, request.params_hash
        new_hash = parameters_hash(request.action, request.target, request.environment, parameters)
        if new_hash == old_hash:
            return request
        voided = len(request.valid_approvals)
        changed = await tx.requests.change_parameters(
            request, parameters=dict(parameters), params_hash=new_hash, at=self._clock()
        )
        if changed is None:
            raise InvalidTransition(f"{request.human_id} changed while you were editing it; try again.")
        await self._record(
            tx,
            changed,
            action="request.parameters_changed",
            actor=user,
            before=before,
            evidence={
                "old_params_hash": old_hash,
                "params_hash": new_hash,
                "approvals_voided": voided,
                "parameters": dict(parameters),
            },
        )
        return changed

    async def expire_due(self, tx: RequestTx) -> list[ChangeRequest]:
        """Expire every open request past its deadline; returns them so their messages can be updated."""
        expired = []
        for ref in await tx.requests.due_for_expiry(self._clock()):
            request = await self._locked(tx, ref)
            if (change := rules.expiry(request, self._clock())) is not None:
                expired.append(await self._expire(tx, request, change))
        return expired

    async def review_emergency(
        self, tx: RequestTx, request_ref: str, *, reviewer: str, notes: str
    ) -> ChangeRequest:
        """The after-the-fact review break-glass changes owe; by an approver other than the requester."""
        members = await self._ask()
        request = await self._locked(tx, request_ref)
        rules.require_reviewable(request, reviewer)
        rules.require_reviewer(rules.rule_in_force(self.policies, request), request, reviewer, members)
        request = await tx.requests.mark_reviewed(request, reviewer=reviewer, at=self._clock())
        await self._record(
            tx, request, action="request.reviewed", actor=reviewer, before=request.status, reason=notes
        )
        return request

    # ------------------------------------------------------------------------- execute

    async def start_execution(
        self, tx: RequestTx, request_ref: str, *, actor: str = SYSTEM_ACTOR
    ) -> ChangeRequest:
        """Move an approved request to executing exactly once, even across processes.

        Re-checks quorum for the current parameters and the change window (break-glass skips
        both), then a compare-and-set UPDATE decides the single winner.
        """
        request = await self._locked(tx, request_ref)
        await self._expire_if_due(tx, request, f"{request_ref} expired before it started; nothing ran.")
        rules.require_status(request, RequestStatus.APPROVED, verb="start")
        if not request.emergency:
            rules.require_quorum_and_window(
                request, rules.rule_in_force(self.policies, request), self._clock()
            )
        request = await self._apply(tx, request, rules.started(at=self._clock()))
        await self._record(
            tx,
            request,
            action="execution.started",
            actor=actor,
            before=RequestStatus.APPROVED,
            evidence={"params_hash": request.params_hash},
        )
        return request

    async def succeed(
        self,
        tx: RequestTx,
        request_ref: str,
        *,
        result: Mapping[str, Any],
        evidence: Mapping[str, Any] | None = None,
        actor: str = SYSTEM_ACTOR,
    ) -> ChangeRequest:
        return await self._finish(
            tx,
            request_ref,
            RequestStatus.SUCCEEDED,
            actor=actor,
            result=result,
            evidence=evidence,
            failure=None,
        )

    async def fail(
        self,
        tx: RequestTx,
        request_ref: str,
        *,
        reason: str,
        evidence: Mapping[str, Any] | None = None,
        actor: str = SYSTEM_ACTOR,
    ) -> ChangeRequest:
        return await self._finish(
            tx, request_ref, RequestStatus.FAILED, actor=actor, result=None, evidence=evidence, failure=reason
        )

    async def retry_failed(self, tx: RequestTx, request_ref: str, *, actor: str) -> ChangeRequest:
        """Put a failed request back to approved so its execution resumes from the failed step.

        The retry is authorised now: the actor must be an approver under the current policy, the
        approvals must still cover the parameters, the target lock is taken again, and the request
        gets a fresh deadline to start in.
        """
        members = await self._ask()
        request = await self._locked(tx, request_ref)
        rules.require_status(request, RequestStatus.FAILED, verb="retry")
        rule = rules.rule_in_force(self.policies, request)
        rules.require_may_retry(request, rule, actor, members)
        now = self._clock()
        request = await self._apply(tx, request, rules.retried(rule, at=now))
        key = rules.lock_key_of(request)
        if not await tx.requests.acquire_lock(key, request, at=now):
            holder = await tx.requests.lock_holder(key)
            raise rules.target_locked(
                ChangeSpec(request.action, request.target, request.environment), holder or "another request"
            )
        await self._record(tx, request, action="request.retried", actor=actor, before=RequestStatus.FAILED)
        return request

    # ---------------------------------------------------------------------------- read

    async def get(self, tx: ReadingTx, request_ref: str) -> ChangeRequest:
        return rules.found(await tx.requests.find(request_ref), request_ref)

    async def list_requests(
        self,
        tx: ReadingTx,
        *,
        statuses: Sequence[RequestStatus] | None = None,
        requester: str | None = None,
        limit: int = 20,
        offset: int = 0,
    ) -> list[ChangeRequest]:
        return await tx.requests.list_requests(
            statuses=statuses, requester=requester, limit=limit, offset=offset
        )

    async def awaiting(
        self, tx: ReadingTx, approver: str, *, limit: int = 20, offset: int = 0
    ) -> list[ChangeRequest]:
        """Pending requests this person could approve now and has not yet approved."""
        members = await self._ask()
        eligible, self_allowed = rules.awaitable_policies(self.policies.rules, approver, members)
        if not eligible:
            return []
        return await tx.requests.awaiting(
            approver, policies=eligible, self_approval=self_allowed, limit=limit, offset=offset
        )

    async def due_reminders(self, tx: RequestTx) -> list[ChangeRequest]:
        """Pending requests whose reminder time has come; each is pushed to its next reminder."""
        now = self._clock()
        due = await tx.requests.due_reminders(now)
        for request in due:
            await tx.requests.set_reminder(request, rules.next_reminder(request.policy, now))
        return due

    # ----------------------------------------------------------------------- internals

    async def _ask(self, governing: Iterable[PolicyRule] | None = None) -> Memberships:
        """The directory's answer for every group the rules name (all policies unless given)."""
        groups = sorted(rules.groups_named(self.policies.rules if governing is None else governing))
        answers = await asyncio.gather(*(self._directory.members(group) for group in groups))
        return Memberships(dict(zip(groups, answers, strict=True)))

    @staticmethod
    async def _locked(tx: ReadingTx, request_ref: str) -> ChangeRequest:
        return rules.found(await tx.requests.find(request_ref, lock=True), request_ref)

    async def _apply(self, tx: RequestTx, request: ChangeRequest, change: Transition) -> ChangeRequest:
        changed = await tx.requests.transition(request, change)
        if changed is None:
            raise rules.lost_race(request, change.before)
        return changed

    async def _expire_if_due(self, tx: RequestTx, request: ChangeRequest, message: str) -> None:
        """A decision on a request past its deadline expires it instead, and that expiry stands."""
        if (change := rules.expiry(request, self._clock())) is not None:
            await self._expire(tx, request, change)
            raise RequestExpired(message)

    async def _expire(self, tx: RequestTx, request: ChangeRequest, change: Transition) -> ChangeRequest:
        request = await self._apply(tx, request, change)
        await tx.requests.release_lock(request)
        await self._record(tx, request, action="request.expired", actor=SYSTEM_ACTOR, before=change.before)
        return request

    async def _finish(
        self,
        tx: RequestTx,
        request_ref: str,
        outcome: RequestStatus,
        *,
        actor: str,
        result: Mapping[str, Any] | None,
        evidence: Mapping[str, Any] | None,
        failure: str | None,
    ) -> ChangeRequest:
        request = await self._locked(tx, request_ref)
        rules.require_status(request, RequestStatus.EXECUTING, verb="finish")
        change = rules.finished(outcome, at=self._clock(), result=result, failure=failure)
        request = await self._apply(tx, request, change)
        await tx.requests.release_lock(request)
        await self._record(
            tx,
            request,
            action=f"execution.{outcome.value}",
            actor=actor,
            before=RequestStatus.EXECUTING,
            reason=failure,
            evidence={**(evidence or {}), **({"result": dict(result)} if result else {})},
        )
        return request

    async def _record(
        self,
        tx: RequestTx,
        request: ChangeRequest,
        *,
        action: str,
        actor: str,
        before: RequestStatus | None,
        reason: str | None = None,
        evidence: Mapping[str, Any] | None = None,
    ) -> None:
        # The observer's writes (outbox rows, the execute job) go first: appending locks the single
        # audit head row until commit, and every transition of every process waits for that lock.
        if self._observer is not None:
            await self._observer.on_transition(tx, request, event=action, actor=actor)
        record = rules.audit_record(
            request,
            action=action,
            actor=actor,
            before=before,
            at=self._clock(),
            reason=reason,
            evidence=evidence,
        )
        await tx.audit.append(record)
