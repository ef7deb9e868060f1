"""Change requests, their approvals and target locks: every query the approval use case runs.

Bound to one session and never commits; the edge that opened the transaction does. State
changes are compare-and-set (`UPDATE ... WHERE status = :expected`, checked by rowcount) and the
invariants live in the tables (one approval per approver and parameter hash, one lock per
target), so two processes deciding at once cannot both win.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import Approval, AuditEvent, ChangeRequestRow, TargetLock
from bot.db.models import Sequence as SequenceRow
from bot.db.upsert import insert_into
from bot.domain.approvals import NewRequest, Transition
from bot.domain.audit import AuditRecord, ChainedRecord, canonical_json
from bot.domain.policy import Action, PolicyRule
from bot.domain.requests import ACTION_PREFIX, ApprovalView, ChangeRequest, RequestStatus

__all__ = ["RequestRepository"]


class RequestRepository:
    """Reads and writes change requests inside one transaction; never commits."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    # ------------------------------------------------------------------------- one request

    async def find(self, ref: str, *, lock: bool = False) -> ChangeRequest | None:
        """The request called `ref` (any case), or None; `lock` holds its row until commit."""
        query = select(ChangeRequestRow).where(ChangeRequestRow.human_id == ref.strip().upper())
        if lock:
            query = query.with_for_update()
        # An earlier read in this transaction must not hide what the locked read sees now.
        row = await self._session.scalar(query.execution_options(populate_existing=True))
        return await self._view(row) if row else None

    async def by_idempotency_key(self, key: str) -> ChangeRequest | None:
        row = await self._session.scalar(
            select(ChangeRequestRow).where(ChangeRequestRow.idempotency_key == key)
        )
        return await self._view(row) if row else None

    async def insert(self, draft: NewRequest) -> ChangeRequest | None:
        """Number the request, add it and take its target lock: all of it or none of it.

        None when the idempotency key or the target lock is taken already. Only this step is
        undone (a savepoint), with its number, so the transaction can still ask who holds them.
        """
        try:
            async with self._session.begin_nested():
                row = ChangeRequestRow(
                    human_id=await self._next_human_id(draft.spec.action),
                    kind=draft.spec.action.value,
                    target=draft.spec.target,
                    environment=draft.spec.environment,
                    parameters=dict(draft.spec.parameters),
                    params_hash=draft.spec.hash,
                    requester=draft.requester,
                    reason=draft.reason,
                    status=draft.status.value,
                    policy_name=draft.rule.name,
                    policy_snapshot=draft.rule.model_dump(mode="json"),
                    emergency=draft.emergency,
                    review_due_at=draft.review_due_at,
                    rollback_of_id=draft.rollback_of_id,
                    idempotency_key=draft.idempotency_key,
                    decided_by=draft.decided_by,
                    decision_reason=draft.decision_reason,
                    decided_at=draft.decided_at,
                    preview=dict(draft.preview) if draft.preview else None,
                    created_at=draft.created_at,
                    updated_at=draft.created_at,
                    expires_at=draft.expires_at,
                    remind_at=draft.remind_at,
                )
                self._session.add(row)
                await self._session.flush()
                self._session.add(
                    TargetLock(target_key=draft.lock_key, request_id=row.id, acquired_at=draft.created_at)
                )
                await self._session.flush()
        except IntegrityError:
            return None
        return await self._view(row)

    async def transition(self, request: ChangeRequest, change: Transition) -> ChangeRequest | None:
        """Apply `change` if the request is still `change.before`; None when someone moved it first."""
        result = await self._session.execute(
            update(ChangeRequestRow)
            .where(ChangeRequestRow.id == request.id, ChangeRequestRow.status == change.before.value)
            .values(status=change.after.value, updated_at=change.at, **change.fields)
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            return None
        return await self._reload(request.id)

    async def change_parameters(
        self, request: ChangeRequest, *, parameters: dict[str, Any], params_hash: str, at: datetime
    ) -> ChangeRequest | None:
        """New parameters, back to pending and undecided; None if the request changed meanwhile."""
        result = await self._session.execute(
            update(ChangeRequestRow)
            .where(
                ChangeRequestRow.id == request.id,
                ChangeRequestRow.status == request.status.value,
                ChangeRequestRow.params_hash == request.params_hash,
            )
            .values(
                parameters=parameters,
                params_hash=params_hash,
                status=RequestStatus.PENDING.value,
                decided_by=None,
                decided_at=None,
                updated_at=at,
            )
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            return None
        return await self._reload(request.id)

    async def mark_reviewed(self, request: ChangeRequest, *, reviewer: str, at: datetime) -> ChangeRequest:
        await self._session.execute(
            update(ChangeRequestRow)
            .where(ChangeRequestRow.id == request.id)
            .values(reviewed_by=reviewer, reviewed_at=at, updated_at=at)
        )
        return await self._reload(request.id)

    async def set_reminder(self, request: ChangeRequest, at: datetime | None) -> None:
        await self._session.execute(
            update(ChangeRequestRow).where(ChangeRequestRow.id == request.id).values(remind_at=at)
        )

    async def record_slack_message(self, ref: str, *, channel: str | None, ts: str | None) -> None:
        """Remember where the approval message lives so later decisions update it in place."""
        await self._session.execute(
            update(ChangeRequestRow)
            .where(ChangeRequestRow.human_id == ref)
            .values(slack_channel=channel, slack_ts=ts)
        )

    # ---------------------------------------------------------------------------- approvals

    async def add_approval(self, request: ChangeRequest, *, approver: str, at: datetime) -> ChangeRequest:
        """Record `approver`'s approval of the current parameters (unique per approver and hash)."""
        self._session.add(
            Approval(
                request_id=request.id, approver=approver, params_hash=request.params_hash, approved_at=at
            )
        )
        await self._session.flush()
        return await self._reload(request.id)

    # -------------------------------------------------------------------------------- locks

    async def acquire_lock(self, key: str, request: ChangeRequest, *, at: datetime) -> bool:
        """Take the lock on `key` for `request`; False if another request holds it."""
        taken = await self._session.scalar(
            insert_into(self._session, TargetLock)
            .values(target_key=key, request_id=request.id, acquired_at=at)
            .on_conflict_do_nothing(index_elements=["target_key"])
            .returning(TargetLock.target_key)
        )
        return taken is not None

    async def release_lock(self, request: ChangeRequest) -> None:
        await self._session.execute(delete(TargetLock).where(TargetLock.request_id == request.id))

    async def lock_holder(self, key: str) -> str | None:
        """The human ID of the request holding `key`."""
        return await self._session.scalar(
            select(ChangeRequestRow.human_id)
            .join(TargetLock, TargetLock.request_id == ChangeRequestRow.id)
            .where(TargetLock.target_key == key)
        )

    async def locked_targets(self) -> list[str]:
        return list(await self._session.scalars(select(TargetLock.target_key)))

    # ----------------------------------------------------------------------------- listings

    async def list_requests(
        self,
        *,
        statuses: Sequence[RequestStatus] | None = None,
        requester: str | None = None,
        limit: int = 20,
        offset: int = 0,
    ) -> list[ChangeRequest]:
        """Newest first."""
        query = select(ChangeRequestRow).order_by(
            ChangeRequestRow.created_at.desc(), ChangeRequestRow.id.desc()
        )
        if statuses:
            query = query.where(ChangeRequestRow.status.in_([s.value for s in statuses]))
        if requester:
            query = query.where(ChangeRequestRow.requester == requester)
        return await self._views(list(await self._session.scalars(query.limit(limit).offset(offset))))

    async def awaiting(
        self,
        approver: str,
        *,
        policies: Collection[str],
        self_approval: Collection[str],
        limit: int = 20,
        offset: int = 0,
    ) -> list[ChangeRequest]:
        """Pending requests under `policies` that `approver` has not approved yet, newest first.

        `approver`'s own requests only under the `self_approval` policies.
        """
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
                ChangeRequestRow.policy_name.in_(list(policies)),
                ~already,
                (ChangeRequestRow.requester != approver)
                | ChangeRequestRow.policy_name.in_(list(self_approval) or [""]),
            )
            .order_by(ChangeRequestRow.created_at.desc(), ChangeRequestRow.id.desc())
            .limit(limit)
            .offset(offset)
        )
        return await self._views(list(await self._session.scalars(query)))

    async def due_for_expiry(self, now: datetime) -> list[str]:
        """Human IDs of requests not started by their deadline."""
        unstarted = [RequestStatus.PENDING.value, RequestStatus.APPROVED.value]
        return list(
            await self._session.scalars(
                select(ChangeRequestRow.human_id)
                .where(ChangeRequestRow.status.in_(unstarted), ChangeRequestRow.expires_at <= now)
                .order_by(ChangeRequestRow.id)
            )
        )

    async def due_reminders(self, now: datetime) -> list[ChangeRequest]:
        """Pending requests whose reminder time has come, before their deadline."""
        rows = await self._session.scalars(
            select(ChangeRequestRow).where(
                ChangeRequestRow.status == RequestStatus.PENDING.value,
                ChangeRequestRow.remind_at.is_not(None),
                ChangeRequestRow.remind_at <= now,
                ChangeRequestRow.expires_at > now,
            )
        )
        return await self._views(list(rows))

    async def break_glass_reviews(self, now: datetime, *, reviewed_within: timedelta) -> list[ChangeRequest]:
        """Break-glass changes past their review deadline and unreviewed, or reviewed lately."""
        rows = await self._session.scalars(
            select(ChangeRequestRow).where(
                ChangeRequestRow.emergency.is_(True),
                ChangeRequestRow.review_due_at.is_not(None),
                (ChangeRequestRow.reviewed_at.is_(None) & (ChangeRequestRow.review_due_at <= now))
                | (ChangeRequestRow.reviewed_at >= now - reviewed_within),
            )
        )
        return await self._views(list(rows))

    async def audit_events(self, ref: str) -> list[ChainedRecord]:
        """The audit trail of one request, oldest first."""
        events = await self._session.scalars(
            select(AuditEvent).where(AuditEvent.request_ref == ref).order_by(AuditEvent.seq)
        )
        return [
            ChainedRecord(
                seq=event.seq,
                hash=event.hash,
                record=AuditRecord(
                    occurred_at=event.occurred_at,
                    actor=event.actor,
                    action=event.action,
                    request_ref=event.request_ref,
                    subject=event.subject,
                    before_status=event.before_status,
                    after_status=event.after_status,
                    reason=event.reason,
                    evidence=event.evidence,
                ),
            )
            for event in events
        ]

    # ---------------------------------------------------------------------------- internals

    async def _next_human_id(self, action: Action) -> str:
        prefix = ACTION_PREFIX[action]
        value = await self._session.scalar(
            update(SequenceRow)
            .where(SequenceRow.name == prefix)
            .values(value=SequenceRow.value + 1)
            .returning(SequenceRow.value)
        )
        if value is None:
            raise RuntimeError(f"sequence {prefix} missing: run `opsgate db upgrade`")
        return f"{prefix}-{value}"

    async def _reload(self, request_id: int) -> ChangeRequest:
        row = await self._session.get(ChangeRequestRow, request_id, populate_existing=True)
        assert row is not None, "a request row is never deleted"
        return await self._view(row)

    async def _view(self, row: ChangeRequestRow) -> ChangeRequest:
        return (await self._views([row]))[0]

    async def _views(self, rows: list[ChangeRequestRow]) -> list[ChangeRequest]:
        """Read models for many rows with one approvals query (no N+1)."""
        if not rows:
            return []
        found = await self._session.scalars(
            select(Approval).where(Approval.request_id.in_([r.id for r in rows])).order_by(Approval.id)
        )
        by_request: dict[int, list[Approval]] = {}
        for approval in found:
            by_request.setdefault(approval.request_id, []).append(approval)
        rules: dict[str, PolicyRule] = {}
        views = []
        for row in rows:
            key = f"{row.policy_name}:{canonical_json(row.policy_snapshot)}"
            if key not in rules:
                rules[key] = PolicyRule.model_validate(row.policy_snapshot)
            views.append(_to_view(row, by_request.get(row.id, []), rules[key]))
        return views


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
