"""Change requests as the rest of the code sees them: statuses, what was asked, and its hash."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from bot.domain.audit import canonical_json
from bot.domain.policy import Action, PolicyRule

__all__ = [
    "ACTION_PREFIX",
    "HOLDS_LOCK",
    "TERMINAL",
    "ApprovalView",
    "ChangeRequest",
    "ChangeSpec",
    "Clock",
    "FrozenClock",
    "RequestStatus",
    "parameters_hash",
    "system_clock",
]

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    return datetime.now(UTC)


@dataclass
class FrozenClock:
    """A clock tests move by hand; never sleep to let time pass."""

    now: datetime = field(default_factory=lambda: datetime(2026, 11, 24, 12, 0, tzinfo=UTC))

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


class RequestStatus(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    EXECUTING = "executing"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


TERMINAL = frozenset(
    {
        RequestStatus.REJECTED,
        RequestStatus.CANCELLED,
        RequestStatus.EXPIRED,
        RequestStatus.SUCCEEDED,
        RequestStatus.FAILED,
    }
)
HOLDS_LOCK = frozenset({RequestStatus.PENDING, RequestStatus.APPROVED, RequestStatus.EXECUTING})

ACTION_PREFIX: Mapping[Action, str] = {
    Action.PROMOTION: "PRM",
    Action.ROTATION: "ROT",
    Action.RELEASE: "REL",
    Action.ARCHIVE: "ARC",
    Action.ONBOARDING: "ONB",
}


def parameters_hash(action: Action, target: str, environment: str, parameters: Mapping[str, Any]) -> str:
    """What an approval is bound to: any change to these voids it (Atlantis #1508)."""
    body = {
        "action": action.value,
        "target": target,
        "environment": environment,
        "parameters": dict(parameters),
    }
    return hashlib.sha256(canonical_json(body).encode()).hexdigest()


@dataclass(frozen=True)
class ChangeSpec:
    """What a requester asks for; `lock_key` names the thing only one change may touch at once."""

    action: Action
    target: str
    environment: str
    parameters: Mapping[str, Any] = field(default_factory=dict)
    lock_key: str | None = None

    @property
    def effective_lock_key(self) -> str:
        """One in-flight change per target; a release's target is the asset *and* its destination."""
        if self.lock_key:
            return self.lock_key
        if self.action is Action.RELEASE and "destination" in self.parameters:
            return f"release:{self.target}->{self.parameters['destination']}"
        return f"{self.action.value}:{self.target}@{self.environment}"

    @property
    def hash(self) -> str:
        return parameters_hash(self.action, self.target, self.environment, self.parameters)


@dataclass(frozen=True)
class ApprovalView:
    approver: str
    approved_at: datetime
    params_hash: str


@dataclass(frozen=True)
class ChangeRequest:
    id: int
    human_id: str
    action: Action
    target: str
    environment: str
    parameters: Mapping[str, Any]
    params_hash: str
    requester: str
    reason: str
    status: RequestStatus
    policy: PolicyRule
    emergency: bool
    created_at: datetime
    expires_at: datetime
    approvals: tuple[ApprovalView, ...] = ()
    review_due_at: datetime | None = None
    reviewed_by: str | None = None
    rollback_of_id: int | None = None
    decided_by: str | None = None
    decision_reason: str | None = None
    failure_reason: str | None = None
    result: Mapping[str, Any] | None = None
    preview: Mapping[str, Any] | None = None
    slack_channel: str | None = None
    slack_ts: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None

    @property
    def valid_approvals(self) -> tuple[ApprovalView, ...]:
        """Approvals given for the parameters as they are now."""
        return tuple(a for a in self.approvals if a.params_hash == self.params_hash)

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL

    def approved_by(self, user: str) -> bool:
        return any(a.approver == user for a in self.valid_approvals)
