"""`/ops` answers about change requests: pure functions from commands/ops.py results to a Reply."""

from __future__ import annotations

from datetime import datetime

from bot.blocks.reply import Reply
from bot.blocks.requests import build_request_line
from bot.domain.policy import describe_rule
from bot.domain.requests import ChangeRequest, RequestStatus
from commands.ops import AuditListing, RequestListing, RollbackPlan, StatusReport

__all__ = [
    "render_audit",
    "render_cancelled",
    "render_listing",
    "render_request",
    "render_reviewed",
    "render_rollback",
    "render_status",
]

IN_FLIGHT_SHOWN = 15
AUDIT_EVENTS_SHOWN = 40
_LISTING_TITLE = {"pending": "Waiting for approval", "mine": "Your requests"}


def render_status(report: StatusReport, *, now: datetime) -> Reply:
    scope = f"*{report.environment}*" if report.environment else "all environments"
    lines = [f"Status for {scope} (last {report.examined} requests):"]
    lines.append(", ".join(f"{status}: {report.counts.get(status, 0)}" for status in RequestStatus))
    if report.in_flight:
        lines.append("In flight:")
        lines.extend(f"• {build_request_line(r, now=now)}" for r in report.in_flight[:IN_FLIGHT_SHOWN])
    locks = report.locked_targets
    lines.append(f"Locked targets: {', '.join(locks) if locks else 'none'}")
    return Reply("\n".join(lines))


def render_listing(listing: RequestListing, *, now: datetime) -> Reply:
    title = _LISTING_TITLE[listing.scope]
    if not listing.requests:
        return Reply(f"{title}: none.")
    return Reply(
        "\n".join([f"*{title}*", *(f"• {build_request_line(r, now=now)}" for r in listing.requests)])
    )


def render_request(request: ChangeRequest) -> Reply:
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
        review = f"done by <@{request.reviewed_by}>" if request.reviewed_by else "due"
        lines.append(f"Break-glass change; review {review}")
    return Reply("\n".join(lines))


def render_cancelled(request: ChangeRequest) -> Reply:
    return Reply(f"{request.human_id} cancelled. Its target is free again.")


def render_reviewed(request: ChangeRequest, *, reviewer: str) -> Reply:
    return Reply(f":white_check_mark: Break-glass change {request.human_id} reviewed by <@{reviewer}>.")


def render_audit(listing: AuditListing) -> Reply:
    ref = listing.request.human_id
    lines = [f"*Audit trail of {ref}* ({len(listing.events)} events, hash-chained)"]
    for event in listing.events[:AUDIT_EVENTS_SHOWN]:
        record = event.record
        when = record.occurred_at.strftime("%Y-%m-%d %H:%M:%S UTC")
        change = f" {record.before_status or '∅'} → {record.after_status}" if record.after_status else ""
        reason = f": {record.reason}" if record.reason else ""
        lines.append(
            f"• {when} <@{record.actor}> {record.action}{change}{reason} `#{event.seq} {event.hash[:10]}`"
        )
    return Reply("\n".join(lines))


def render_rollback(plan: RollbackPlan, opened: ChangeRequest) -> Reply:
    spec = plan.spec
    return Reply(
        f"{opened.human_id} opened: promote {spec.target} {spec.parameters.get('version')} back into "
        f"{spec.environment} (rollback of {plan.original.human_id}), status {opened.status.value}."
    )
