"""The approval rules: what a change request may become, who may move it there, what it records.

Pure decisions over domain values: a ChangeRequest, the PolicyRule in force, the directory's
answer (`Memberships`, asked before the transaction) and the time, which callers pass in. Each
`require_*` raises a typed error (bot/domain/errors.py) whose message the person who acted can
read; each state change is a `Transition` that only a legal move can build. The use case
(commands/approvals.py) applies them inside the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypedDict

from bot.domain.audit import AuditRecord
from bot.domain.errors import (
    BreakGlassRefused,
    InvalidTransition,
    NotAnApprover,
    NotEligibleRequester,
    PolicyDenied,
    QuorumNotMet,
    RequestNotFound,
    SelfApprovalRefused,
    TargetLocked,
)
from bot.domain.policy import ApproverSet, PolicyRule, PolicySet
from bot.domain.requests import ChangeRequest, ChangeSpec, RequestStatus

__all__ = [
    "LEGAL_TRANSITIONS",
    "SYSTEM_ACTOR",
    "UNSTARTED",
    "Memberships",
    "NewRequest",
    "Transition",
    "TransitionFields",
    "approved",
    "audit_record",
    "awaitable_policies",
    "cancelled",
    "creation_evidence",
    "draft_request",
    "expiry",
    "finished",
    "found",
    "groups_named",
    "lock_key_of",
    "lost_race",
    "next_reminder",
    "quorum_reached",
    "rejected",
    "require_may_cancel",
    "require_may_change_parameters",
    "require_may_decide",
    "require_may_open",
    "require_may_reject",
    "require_may_retry",
    "require_quorum_and_window",
    "require_rejection_reason",
    "require_reviewable",
    "require_reviewer",
    "require_status",
    "retried",
    "rule_in_force",
    "started",
    "target_locked",
]

SYSTEM_ACTOR = "opsgate"

# Not started yet: such a request can still expire, be cancelled or have its parameters changed.
UNSTARTED = frozenset({RequestStatus.PENDING, RequestStatus.APPROVED})

LEGAL_TRANSITIONS: Mapping[RequestStatus, frozenset[RequestStatus]] = {
    RequestStatus.PENDING: frozenset(
        {RequestStatus.APPROVED, RequestStatus.REJECTED, RequestStatus.CANCELLED, RequestStatus.EXPIRED}
    ),
    # PENDING again when its parameters change: the earlier approvals stop counting.
    RequestStatus.APPROVED: frozenset(
        {RequestStatus.EXECUTING, RequestStatus.CANCELLED, RequestStatus.EXPIRED, RequestStatus.PENDING}
    ),
    RequestStatus.EXECUTING: frozenset({RequestStatus.SUCCEEDED, RequestStatus.FAILED}),
    RequestStatus.FAILED: frozenset({RequestStatus.APPROVED}),  # retried from the failed step
}


# ------------------------------------------------------------------ the directory's answer


@dataclass(frozen=True)
class Memberships:
    """Who is in each group the policies name: the directory asked once, before the transaction."""

    groups: Mapping[str, frozenset[str]]

    def includes(self, people: ApproverSet, user: str) -> bool:
        return user in people.users or any(user in self.groups.get(g, frozenset()) for g in people.groups)


def groups_named(rules: Iterable[PolicyRule]) -> frozenset[str]:
    """Every group a decision under `rules` may need the directory for."""
    named: set[str] = set()
    for rule in rules:
        named.update(rule.approvers.groups)
        if rule.requesters is not None:
            named.update(rule.requesters.groups)
        if rule.break_glass is not None:
            named.update(rule.break_glass.groups)
    return frozenset(named)


# --------------------------------------------------------------------------- transitions


class TransitionFields(TypedDict, total=False):
    """What a transition writes besides the status (the names of the request's fields)."""

    decided_by: str | None
    decided_at: datetime | None
    decision_reason: str | None
    started_at: datetime | None
    finished_at: datetime | None
    remind_at: datetime | None
    expires_at: datetime
    result: dict[str, Any] | None
    failure_reason: str | None


@dataclass(frozen=True)
class Transition:
    """A legal status change, applied by compare-and-set: only while the request is still `before`."""

    before: RequestStatus
    after: RequestStatus
    at: datetime
    fields: TransitionFields = field(default_factory=lambda: TransitionFields())

    def __post_init__(self) -> None:
        if self.after not in LEGAL_TRANSITIONS.get(self.before, frozenset()):
            raise ValueError(f"{self.before.value} -> {self.after.value} is not a legal transition")


def lost_race(request: ChangeRequest, before: RequestStatus) -> InvalidTransition:
    """The compare-and-set found the request moved on: someone else's decision came first."""
    return InvalidTransition(f"{request.human_id} is no longer {before.value}; someone acted first.")


def approved(*, by: str, at: datetime) -> Transition:
    return Transition(
        RequestStatus.PENDING,
        RequestStatus.APPROVED,
        at,
        TransitionFields(decided_by=by, decided_at=at, remind_at=None),
    )


def rejected(*, by: str, reason: str, at: datetime) -> Transition:
    fields = TransitionFields(decided_by=by, decided_at=at, decision_reason=reason, finished_at=at)
    return Transition(RequestStatus.PENDING, RequestStatus.REJECTED, at, fields)


def cancelled(request: ChangeRequest, *, by: str, reason: str, at: datetime) -> Transition:
    fields = TransitionFields(decided_by=by, decision_reason=reason or None, finished_at=at)
    return Transition(request.status, RequestStatus.CANCELLED, at, fields)


def expiry(request: ChangeRequest, now: datetime) -> Transition | None:
    """The expiry a request not started by its deadline is due, or None."""
    if request.status not in UNSTARTED or request.expires_at > now:
        return None
    return Transition(
        request.status, RequestStatus.EXPIRED, now, TransitionFields(finished_at=now, remind_at=None)
    )


def started(*, at: datetime) -> Transition:
    return Transition(RequestStatus.APPROVED, RequestStatus.EXECUTING, at, TransitionFields(started_at=at))


def finished(
    outcome: RequestStatus, *, at: datetime, result: Mapping[str, Any] | None, failure: str | None
) -> Transition:
    fields = TransitionFields(finished_at=at, result=dict(result) if result else None, failure_reason=failure)
    return Transition(RequestStatus.EXECUTING, outcome, at, fields)


def retried(rule: PolicyRule, *, at: datetime) -> Transition:
    """Back to approved with a fresh deadline to start in."""
    fields = TransitionFields(expires_at=at + rule.expires_after, finished_at=None, failure_reason=None)
    return Transition(RequestStatus.FAILED, RequestStatus.APPROVED, at, fields)


def next_reminder(rule: PolicyRule, now: datetime) -> datetime | None:
    return now + rule.remind_every if rule.remind_every else None


# ------------------------------------------------------------------------------- opening


@dataclass(frozen=True)
class NewRequest:
    """A request about to be opened: everything but the row id and human ID the store assigns."""

    spec: ChangeSpec
    rule: PolicyRule
    requester: str
    reason: str
    status: RequestStatus
    emergency: bool
    created_at: datetime
    expires_at: datetime
    remind_at: datetime | None
    review_due_at: datetime | None
    decided_by: str | None
    decision_reason: str | None
    decided_at: datetime | None
    rollback_of_id: int | None
    idempotency_key: str | None
    preview: Mapping[str, Any] | None

    @property
    def lock_key(self) -> str:
        return self.spec.effective_lock_key


def require_may_open(
    rule: PolicyRule,
    requester: str,
    members: Memberships,
    *,
    now: datetime,
    emergency_reason: str | None,
) -> None:
    """The requester may request; then break-glass rights, or else the change window."""
    if rule.requesters is not None and not members.includes(rule.requesters, requester):
        raise NotEligibleRequester(
            f"<@{requester}> may not request this change under policy '{rule.name}' "
            f"(requesters: {rule.requesters.describe()})."
        )
    if emergency_reason is None:
        rule.require_window_open(now)
        return
    if rule.break_glass is None:
        raise BreakGlassRefused(f"Policy '{rule.name}' has no break-glass path; request a normal approval.")
    if not emergency_reason.strip():
        raise BreakGlassRefused('Break-glass needs a reason: --emergency "what is broken and why now".')
    allowed = rule.break_glass.as_approver_set()
    if not members.includes(allowed, requester):
        raise BreakGlassRefused(
            f"<@{requester}> may not use break-glass under policy '{rule.name}' (allowed: {allowed.describe()})."
        )


def draft_request(
    spec: ChangeSpec,
    rule: PolicyRule,
    *,
    requester: str,
    reason: str,
    now: datetime,
    emergency_reason: str | None = None,
    preview: Mapping[str, Any] | None = None,
    rollback_of: ChangeRequest | None = None,
    idempotency_key: str | None = None,
) -> NewRequest:
    """Pending under `rule`, or approved at once by break-glass (then due for review)."""
    emergency = emergency_reason is not None
    return NewRequest(
        spec=spec,
        rule=rule,
        requester=requester,
        reason=reason,
        status=RequestStatus.APPROVED if emergency else RequestStatus.PENDING,
        emergency=emergency,
        created_at=now,
        expires_at=now + rule.expires_after,
        remind_at=(now + rule.remind_every) if rule.remind_every and not emergency else None,
        review_due_at=(now + rule.break_glass.review_within) if emergency and rule.break_glass else None,
        decided_by=requester if emergency else None,
        decision_reason=emergency_reason if emergency else None,
        decided_at=now if emergency else None,
        rollback_of_id=rollback_of.id if rollback_of else None,
        idempotency_key=idempotency_key,
        preview=dict(preview) if preview else None,
    )


def creation_evidence(draft: NewRequest, rollback_of: ChangeRequest | None) -> dict[str, Any]:
    """What the audit trail keeps of an opened request: the parameters and the rule it fell under."""
    return {
        "parameters": dict(draft.spec.parameters),
        "params_hash": draft.spec.hash,
        "policy": draft.rule.name,
        "policy_fingerprint": draft.rule.fingerprint(),
        "lock": draft.lock_key,
        **({"rollback_of": rollback_of.human_id} if rollback_of else {}),
    }


def target_locked(spec: ChangeSpec, holder: str) -> TargetLocked:
    return TargetLocked(
        f"{spec.target} in {spec.environment} is locked by {holder}: one change per target at a time. "
        f"Wait for {holder} to finish or cancel it.",
        holder=holder,
    )


def lock_key_of(request: ChangeRequest) -> str:
    return ChangeSpec(
        request.action, request.target, request.environment, request.parameters
    ).effective_lock_key


# ------------------------------------------------------------------------------ deciding


def found(request: ChangeRequest | None, ref: str) -> ChangeRequest:
    if request is None:
        raise RequestNotFound(f"There is no request {ref}. `/ops pending` lists open ones.")
    return request


def rule_in_force(policies: PolicySet, request: ChangeRequest) -> PolicyRule:
    """Decisions use the policy in force now (fail closed if none governs the change any more)."""
    return policies.resolve(request.action, request.environment, request.target)


def require_status(request: ChangeRequest, expected: RequestStatus, *, verb: str) -> None:
    if request.status is RequestStatus.PENDING and expected is not RequestStatus.PENDING:
        raise InvalidTransition(f"{request.human_id} is still waiting for approval; it cannot {verb} yet.")
    if request.status is not expected:
        decided = request.decided_by and request.status in (RequestStatus.APPROVED, RequestStatus.REJECTED)
        by = f" by <@{request.decided_by}>" if decided else ""
        raise InvalidTransition(
            f"{request.human_id} is already {request.status.value}{by}; it cannot {verb} now."
        )


def require_may_decide(
    rule: PolicyRule, request: ChangeRequest, user: str, members: Memberships, *, verb: str
) -> None:
    if user == request.requester and not rule.allow_self_approval:
        raise SelfApprovalRefused(
            f"You requested {request.human_id}; policy '{rule.name}' does not allow self-approval."
        )
    if not members.includes(rule.approvers, user):
        raise NotAnApprover(
            f"You are not an approver for {request.human_id} (policy '{rule.name}': {rule.approvers.describe()})."
        )
    # Eligibility is checked again now: someone removed from the requesters since asking
    # must not get their change through (sso-elevator semantics). Rejecting stays possible.
    if verb == "approve" and rule.requesters is not None:
        if not members.includes(rule.requesters, request.requester):
            raise NotEligibleRequester(
                f"<@{request.requester}> is no longer allowed to request this change, so {request.human_id} "
                "cannot be approved. It can still be rejected or cancelled."
            )


def quorum_reached(request: ChangeRequest, rule: PolicyRule) -> bool:
    """Enough distinct approvals of the parameters as they are now."""
    return len(request.valid_approvals) >= rule.min_approvals


def require_rejection_reason(reason: str) -> None:
    if not reason.strip():
        raise InvalidTransition("A rejection needs a reason, so the requester knows what to change.")


def require_may_reject(rule: PolicyRule, request: ChangeRequest, approver: str, members: Memberships) -> None:
    if approver == request.requester:
        raise SelfApprovalRefused(
            f"You cannot reject your own request; use `/ops cancel {request.human_id}` to withdraw it."
        )
    require_may_decide(rule, request, approver, members, verb="reject")


def require_may_cancel(request: ChangeRequest, user: str) -> None:
    """Only the requester withdraws a request, and only before it starts."""
    if request.requester != user:
        raise PolicyDenied(f"Only <@{request.requester}> can cancel {request.human_id}.")
    if request.status not in UNSTARTED:
        raise InvalidTransition(
            f"{request.human_id} is {request.status.value} and can no longer be cancelled."
        )


def require_may_change_parameters(request: ChangeRequest, user: str) -> None:
    if request.requester != user:
        raise PolicyDenied(f"Only <@{request.requester}> can change {request.human_id}.")
    if request.status not in UNSTARTED or request.emergency:
        raise InvalidTransition(
            f"{request.human_id} is {request.status.value}; its parameters can no longer change."
        )


def require_reviewable(request: ChangeRequest, reviewer: str) -> None:
    """The after-the-fact review break-glass changes owe, once, by someone other than the requester."""
    if not request.emergency:
        raise InvalidTransition(
            f"{request.human_id} was not a break-glass change; there is nothing to review."
        )
    if request.reviewed_by:
        raise InvalidTransition(f"{request.human_id} was already reviewed by <@{request.reviewed_by}>.")
    if reviewer == request.requester:
        raise SelfApprovalRefused("The person who used break-glass cannot review their own change.")


def require_reviewer(rule: PolicyRule, request: ChangeRequest, reviewer: str, members: Memberships) -> None:
    """Reviewers are the approvers under the policy in force now."""
    if not members.includes(rule.approvers, reviewer):
        raise NotAnApprover(f"Only approvers under policy '{rule.name}' can review {request.human_id}.")


def require_quorum_and_window(request: ChangeRequest, rule: PolicyRule, now: datetime) -> None:
    """What starting a normal (not break-glass) change re-checks: quorum now, and the window."""
    valid = len(request.valid_approvals)
    if valid < rule.min_approvals:
        raise QuorumNotMet(
            f"{request.human_id} has {valid} valid approval(s) of {rule.min_approvals} required."
        )
    rule.require_window_open(now)


def require_may_retry(request: ChangeRequest, rule: PolicyRule, actor: str, members: Memberships) -> None:
    """The requester or a current approver; the approvals must still cover the parameters."""
    if actor != request.requester and not members.includes(rule.approvers, actor):
        raise NotAnApprover(
            f"Only <@{request.requester}> or an approver under '{rule.name}' can retry {request.human_id}."
        )
    if not request.emergency and not quorum_reached(request, rule):
        raise QuorumNotMet(f"{request.human_id} no longer has enough approvals; open a new request.")


def awaitable_policies(
    rules: Iterable[PolicyRule], approver: str, members: Memberships
) -> tuple[list[str], list[str]]:
    """(policies `approver` approves under, those of them that allow approving one's own request).

    Decided once per policy rather than per request, so listing stays one query however long
    the history.
    """
    eligible: list[str] = []
    self_allowed: list[str] = []
    for rule in rules:
        if members.includes(rule.approvers, approver):
            eligible.append(rule.name)
            if rule.allow_self_approval:
                self_allowed.append(rule.name)
    return eligible, self_allowed


# ---------------------------------------------------------------------------------- audit


def audit_record(
    request: ChangeRequest,
    *,
    action: str,
    actor: str,
    before: RequestStatus | None,
    at: datetime,
    reason: str | None = None,
    evidence: Mapping[str, Any] | None = None,
) -> AuditRecord:
    """The event a decision appends to the chain, describing the request as it now is."""
    return AuditRecord(
        occurred_at=at,
        actor=actor,
        action=action,
        request_ref=request.human_id,
        subject=f"{request.action.value}:{request.target}@{request.environment}",
        before_status=before.value if before else None,
        after_status=request.status.value,
        reason=reason or None,
        evidence=evidence or {},
    )
