"""Change requests in Slack: the approval message, the requester's DMs, progress replies, lists.

Pure functions from a ChangeRequest (and plain values) to slack_sdk models; every user-supplied
string is escaped and truncated so any input renders within Slack's limits.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ContextBlock,
    HeaderBlock,
    MarkdownTextObject,
    PlainTextObject,
    SectionBlock,
)

from bot.blocks.text import (
    MAX_MESSAGE_BLOCKS,
    as_utc,
    cap_blocks,
    code_block,
    escaped,
    fit,
    format_age,
    format_utc,
    lines_within,
    person,
    slack_date,
)
from bot.domain.policy import Action
from bot.domain.requests import ChangeRequest, RequestStatus
from bot.ids import ActionId
from bot.payloads import RequestButton

__all__ = [
    "KIND_LABEL",
    "STATUS_EMOJI",
    "build_approval_message",
    "build_decision_dm",
    "build_progress_reply",
    "build_request_details",
    "build_request_line",
    "decision_buttons",
    "describe_change",
    "outcome_line",
    "request_title",
]

KIND_LABEL: Mapping[Action, str] = {
    Action.PROMOTION: "Promotion",
    Action.ROTATION: "Rotation",
    Action.RELEASE: "Release",
    Action.ARCHIVE: "Archive",
    Action.ONBOARDING: "Onboarding",
}

STATUS_EMOJI: Mapping[RequestStatus, str] = {
    RequestStatus.PENDING: ":hourglass_flowing_sand:",
    RequestStatus.APPROVED: ":thumbsup:",
    RequestStatus.EXECUTING: ":gear:",
    RequestStatus.SUCCEEDED: ":white_check_mark:",
    RequestStatus.FAILED: ":boom:",
    RequestStatus.REJECTED: ":x:",
    RequestStatus.CANCELLED: ":no_entry_sign:",
    RequestStatus.EXPIRED: ":hourglass:",
}

_TARGET_LABEL: Mapping[Action, str] = {
    Action.PROMOTION: "Artifact",
    Action.ROTATION: "Credential",
    Action.RELEASE: "Asset",
    Action.ARCHIVE: "Target",
    Action.ONBOARDING: "Target",
}

# Parameters already shown in the header and the fields; the rest go under "Parameters".
_SHOWN_PARAMETERS: Mapping[Action, frozenset[str]] = {
    Action.PROMOTION: frozenset({"artifact", "version", "from_env", "to_env", "environment"}),
    Action.ROTATION: frozenset({"credential", "environment"}),
    Action.RELEASE: frozenset({"asset", "destination", "environment"}),
    Action.ARCHIVE: frozenset({"environment"}),
    Action.ONBOARDING: frozenset({"environment"}),
}

_SECTION_TEXT = 3000
_FIELD_TEXT = 2000
_HEADER_TEXT = 150
_PIECE = 60  # one parameter value inside a title or a list line


def _param(request: ChangeRequest, key: str, default: str = "") -> str:
    value = request.parameters.get(key)
    return default if value is None or value == "" else str(value)


def _short(value: str) -> str:
    return fit(" ".join(value.split()), _PIECE)


def describe_change(request: ChangeRequest) -> str:
    """What changes where, in plain words: "orders-api 1.4.0 test → prod" (not escaped)."""
    target = _short(request.target)
    environment = _short(request.environment)
    match request.action:
        case Action.PROMOTION:
            version = _short(_param(request, "version"))
            from_env = _short(_param(request, "from_env"))
            route = f"{from_env} → {environment}" if from_env else environment
            return " ".join(part for part in (target, version, route) if part)
        case Action.ROTATION:
            return f"{_short(_param(request, 'credential', request.target))} in {environment}"
        case Action.RELEASE:
            asset = _short(_param(request, "asset", request.target))
            return f"asset {asset} → {_short(_param(request, 'destination', request.environment))}"
        case _:
            return f"{target} in {environment}"


def request_title(request: ChangeRequest) -> str:
    """ "Promotion PRM-42: orders-api 1.4.0 test → prod" (plain text, not escaped)."""
    return f"{KIND_LABEL[request.action]} {request.human_id}: {describe_change(request)}"


def decision_buttons(request: ChangeRequest) -> ActionsBlock:
    """Approve and Reject, each carrying which request and which parameters the clicker saw."""
    value = RequestButton.for_request(request).model_dump_json()
    return ActionsBlock(
        elements=[
            ButtonElement(text="Approve", action_id=ActionId.APPROVE, value=value, style="primary"),
            ButtonElement(text="Reject", action_id=ActionId.REJECT, value=value, style="danger"),
        ]
    )


def _needed(request: ChangeRequest) -> int:
    return max(request.policy.min_approvals - len(request.valid_approvals), 0)


def _scalar_lines(values: Mapping[str, Any], *, skip: frozenset[str] = frozenset()) -> list[str]:
    lines = []
    for key, value in values.items():
        if key in skip or isinstance(value, Mapping | list | tuple):
            continue
        lines.append(f"{escaped(str(key), 60)}: {escaped(str(value), 200)}")
    return lines


def outcome_line(
    request: ChangeRequest, *, names: Mapping[str, str] | None = None, now: datetime | None = None
) -> str:
    """Where the request stands, as one mrkdwn paragraph (reasons escaped and truncated)."""
    emoji = STATUS_EMOJI[request.status]
    decided_by = person(request.decided_by, names) if request.decided_by else None
    match request.status:
        case RequestStatus.PENDING:
            expires = f"expires {format_utc(request.expires_at)}"
            if now is not None:
                left = as_utc(request.expires_at) - as_utc(now)
                expires += f" (in {format_age(left)})" if left.total_seconds() > 0 else " (overdue)"
            needed = _needed(request)
            return f"{emoji} *Waiting for {needed} more approval{'s' if needed != 1 else ''}* · {expires}"
        case RequestStatus.APPROVED:
            if request.emergency:
                return (
                    f"{emoji} *Approved by break-glass* ({decided_by or 'the requester'}); starting shortly."
                )
            by = f" by {decided_by}" if decided_by else ""
            return f"{emoji} *Approved*{by}; starting shortly."
        case RequestStatus.REJECTED:
            reason = escaped(request.decision_reason or "no reason given", 1500)
            return f"{emoji} *Rejected* by {decided_by or 'an approver'}: {reason}"
        case RequestStatus.CANCELLED:
            text = f"{emoji} *Cancelled* by {decided_by or 'the requester'}"
            if request.decision_reason:
                text += f": {escaped(request.decision_reason, 1500)}"
            return text + "; nothing ran."
        case RequestStatus.EXPIRED:
            expired_at = request.finished_at or request.expires_at
            return f"{emoji} *Expired* at {format_utc(expired_at)} without enough approvals; nothing ran."
        case RequestStatus.EXECUTING:
            since = f" since {format_utc(request.started_at)}" if request.started_at else ""
            return f"{emoji} *Executing*{since}…"
        case RequestStatus.SUCCEEDED:
            at = f" at {format_utc(request.finished_at)}" if request.finished_at else ""
            text = f"{emoji} *Succeeded*{at}."
            details = _scalar_lines(request.result or {})
            if details:
                text += "\n" + lines_within(details, 1500)
            return text
        case RequestStatus.FAILED:
            at = f" at {format_utc(request.finished_at)}" if request.finished_at else ""
            reason = escaped(request.failure_reason or "no reason recorded", 1500)
            return f"{emoji} *Failed*{at}: {reason}"


def _fallback_phrase(request: ChangeRequest) -> str:
    if request.status is RequestStatus.PENDING:
        got, of = len(request.valid_approvals), request.policy.min_approvals
        return f"waiting for approval ({got} of {of})"
    return request.status.value


def _fields(request: ChangeRequest, names: Mapping[str, str] | None) -> list[MarkdownTextObject]:
    fields = [f"*{_TARGET_LABEL[request.action]}*\n{escaped(request.target, 1000)}"]
    environment = escaped(request.environment, 500)
    match request.action:
        case Action.PROMOTION:
            from_env = _param(request, "from_env")
            where = f"{escaped(from_env, 500)} → {environment}" if from_env else environment
            fields.append(f"*Environments*\n{where}")
            fields.append(f"*Version*\n{escaped(_param(request, 'version', '—'), 500)}")
        case Action.RELEASE:
            destination = escaped(_param(request, "destination", request.environment), 500)
            fields.append(f"*Destination*\n{destination}")
            if _param(request, "destination") and request.environment != _param(request, "destination"):
                fields.append(f"*Environment*\n{environment}")
        case _:
            fields.append(f"*Environment*\n{environment}")
    fields.append(f"*Requested by*\n{person(request.requester, names)}")
    fields.append(f"*Reason*\n{escaped(request.reason.strip(), 1900) or '_none given_'}")
    others = _scalar_lines(request.parameters, skip=_SHOWN_PARAMETERS[request.action])
    nested = [k for k, v in request.parameters.items() if isinstance(v, Mapping | list | tuple)]
    others += [f"{escaped(str(k), 60)}: …" for k in nested]
    if others:
        fields.append("*Parameters*\n" + lines_within(others, _FIELD_TEXT - 20))
    return [MarkdownTextObject(text=text) for text in fields]


def _break_glass(request: ChangeRequest, names: Mapping[str, str] | None) -> SectionBlock:
    text = (
        ":rotating_light: *Break-glass change*: approvals and change windows were bypassed "
        f"by {person(request.requester, names)}."
    )
    emergency_reason = request.decision_reason if request.decided_by == request.requester else None
    if emergency_reason:
        text += f"\n*Emergency reason:* {escaped(emergency_reason, 1500)}"
    if request.reviewed_by:
        text += f"\nReviewed after the fact by {person(request.reviewed_by, names)}."
    elif request.review_due_at:
        text += f"\n*Review due* by {format_utc(request.review_due_at)}."
    return SectionBlock(text=MarkdownTextObject(text=text))


def _preview(preview: Mapping[str, Any]) -> SectionBlock | None:
    lines: list[str] = []
    if summary := str(preview.get("summary") or "").strip():
        lines.append(escaped(summary, 500))
    current, requested = preview.get("current_version"), preview.get("requested_version")
    if current is not None or requested is not None:
        now_text = escaped(str(current), 100) if current is not None else "none"
        line = f"*Current version:* {now_text}"
        if requested is not None:
            line += f" → *requested:* {escaped(str(requested), 100)}"
        lines.append(line)
    warnings = preview.get("warnings")
    if isinstance(warnings, list | tuple) and warnings:
        lines.append(lines_within([f":warning: {escaped(str(w), 300)}" for w in warnings], 1000))
    known = frozenset({"summary", "current_version", "requested_version", "warnings", "diff"})
    extra = _scalar_lines(preview, skip=known)
    if extra:
        lines.append(lines_within(extra, 500))
    text = "\n".join(lines)
    diff = preview.get("diff")
    if isinstance(diff, str):
        diff = diff.splitlines()
    budget = _SECTION_TEXT - len(text) - len("*Preview*\n") - 2
    if isinstance(diff, list | tuple) and diff and budget >= 100:
        text += ("\n" if text else "") + code_block([str(line) for line in diff], budget)
    if not text:
        return None
    return SectionBlock(text=MarkdownTextObject(text=f"*Preview*\n{text}"))


def _approvals(request: ChangeRequest, names: Mapping[str, str] | None) -> SectionBlock | None:
    valid = request.valid_approvals
    stale = len(request.approvals) - len(valid)
    if not valid and not stale and request.status is not RequestStatus.PENDING:
        return None
    header = f"*Approvals ({len(valid)} of {request.policy.min_approvals})*"
    lines = [f"• {person(a.approver, names)} · {format_utc(a.approved_at)}" for a in valid]
    body = lines_within(lines, _SECTION_TEXT - len(header) - 200) if lines else "_None yet._"
    text = f"{header}\n{body}"
    if stale:
        text += (
            f"\n_{stale} earlier approval{'s' if stale != 1 else ''} for different parameters "
            "no longer count._"
        )
    return SectionBlock(text=MarkdownTextObject(text=text))


def _request_blocks(
    request: ChangeRequest,
    *,
    policy_text: str,
    names: Mapping[str, str] | None,
    now: datetime | None,
) -> list[Block]:
    blocks: list[Block] = [
        HeaderBlock(text=PlainTextObject(text=fit(request_title(request), _HEADER_TEXT), emoji=True))
    ]
    if request.emergency:
        blocks.append(_break_glass(request, names))
    blocks.append(SectionBlock(fields=_fields(request, names)))
    if policy_text.strip():
        blocks.append(
            ContextBlock(
                elements=[MarkdownTextObject(text=f"*Policy:* {escaped(policy_text.strip(), 1900)}")]
            )
        )
    if request.preview and (preview := _preview(request.preview)):
        blocks.append(preview)
    if approvals := _approvals(request, names):
        blocks.append(approvals)
    blocks.append(SectionBlock(text=MarkdownTextObject(text=outcome_line(request, names=names, now=now))))
    return blocks


def _fallback(request: ChangeRequest, names: Mapping[str, str] | None) -> str:
    # Short by construction (title <= 500, the rest a few dozen): no cut can split an entity.
    title = escaped(request_title(request), 500)
    return f"{title} — {_fallback_phrase(request)} (requested by {person(request.requester, names)})"


def build_approval_message(
    request: ChangeRequest,
    *,
    policy_text: str,
    approver_names: Mapping[str, str] | None = None,
    now: datetime,
) -> tuple[str, list[Block]]:
    """(fallback text, blocks) of the approval message; Approve/Reject only while it is pending."""
    blocks = _request_blocks(request, policy_text=policy_text, names=approver_names, now=now)
    if request.status is RequestStatus.PENDING:
        blocks.append(decision_buttons(request))
    return _fallback(request, approver_names), cap_blocks(blocks, MAX_MESSAGE_BLOCKS)


def build_request_details(
    request: ChangeRequest,
    *,
    policy_text: str,
    approver_names: Mapping[str, str] | None = None,
    now: datetime | None = None,
) -> list[Block]:
    """Everything about one request for `/ops show`: the approval message without buttons, plus times."""
    blocks = _request_blocks(request, policy_text=policy_text, names=approver_names, now=now)
    times = [f"Created {format_utc(request.created_at)}", f"expires {format_utc(request.expires_at)}"]
    if request.started_at:
        times.append(f"started {format_utc(request.started_at)}")
    if request.finished_at:
        times.append(f"finished {format_utc(request.finished_at)}")
    times.append(f"parameters `{escaped(request.params_hash[:12], 60)}`")
    blocks.append(ContextBlock(elements=[MarkdownTextObject(text=" · ".join(times))]))
    return cap_blocks(blocks, MAX_MESSAGE_BLOCKS)


def _dm_line(request: ChangeRequest, event: str, who: str) -> str:
    ref = escaped(request.human_id, 40)
    match event:
        case "request.created":
            return f":memo: Your request *{ref}* is waiting for {request.policy.min_approvals} approval(s)."
        case "request.break_glass":
            return (
                f":rotating_light: Break-glass *{ref}* is approved without waiting; approvers were told "
                "and a review is due afterwards."
            )
        case "approval.recorded":
            got, of = len(request.valid_approvals), request.policy.min_approvals
            return f":thumbsup: {who} approved *{ref}* ({got} of {of})."
        case "request.approved":
            return f":white_check_mark: *{ref}* is approved (last approval by {who}); it starts shortly."
        case "request.rejected":
            reason = escaped(request.decision_reason or "no reason given", 2000)
            return f":x: {who} rejected *{ref}*: {reason}"
        case "request.expired":
            return f":hourglass: *{ref}* expired without enough approvals; nothing ran."
        case "request.cancelled":
            return f":no_entry_sign: *{ref}* was cancelled by {who}; nothing ran."
        case "request.parameters_changed":
            return f":pencil2: *{ref}* changed; approvals given before the change no longer count."
        case "request.reviewed":
            return f":mag: {who} reviewed break-glass *{ref}*."
        case "execution.started":
            return f":gear: *{ref}* started."
        case "execution.succeeded":
            return f":white_check_mark: *{ref}* succeeded."
        case "execution.failed":
            reason = escaped(request.failure_reason or "no reason recorded", 2000)
            return f":boom: *{ref}* failed: {reason}"
        case _:
            return f"{STATUS_EMOJI[request.status]} *{ref}* is now {request.status.value}."


def build_decision_dm(request: ChangeRequest, *, event: str, actor: str | None) -> tuple[str, list[Block]]:
    """(fallback, blocks) telling the requester what just happened; `event` is the audit action name.

    Known events: request.created, request.break_glass, approval.recorded, request.approved,
    request.rejected, request.expired, request.cancelled, request.parameters_changed,
    request.reviewed, execution.started, execution.succeeded, execution.failed; any other event
    renders the current status.
    """
    who = person(actor) if actor else "opsgate"
    line = _dm_line(request, event, who)
    title = escaped(request_title(request), 1000)
    blocks: list[Block] = [
        SectionBlock(text=MarkdownTextObject(text=line)),
        ContextBlock(elements=[MarkdownTextObject(text=title)]),
    ]
    return line, blocks


def build_progress_reply(
    request: ChangeRequest, *, step: str, detail: str = "", ok: bool | None = None
) -> tuple[str, list[Block]]:
    """(fallback, blocks) for a thread reply during execution; ok None means "in progress"."""
    emoji = {None: ":arrows_counterclockwise:", True: ":white_check_mark:", False: ":x:"}[ok]
    step_text = escaped(step.strip() or "step", 200)
    text = f"{emoji} *{step_text}*"
    if detail.strip():
        text += "\n" + escaped(detail.strip(), _SECTION_TEXT - len(text) - 1)
    state = {None: "", True: " — done", False: " — failed"}[ok]
    fallback = f"{escaped(request.human_id, 40)}: {step_text}{state}"
    return fallback, [SectionBlock(text=MarkdownTextObject(text=text))]


def build_request_line(request: ChangeRequest, *, now: datetime | None = None) -> str:
    """One mrkdwn line: status emoji, ID, kind, what and where, status, age (Slack-local date without now)."""
    age = (
        f"{format_age(as_utc(now) - as_utc(request.created_at))} ago"
        if now
        else slack_date(request.created_at)
    )
    badge = " :rotating_light:" if request.emergency else ""
    return (
        f"{STATUS_EMOJI[request.status]} `{escaped(request.human_id, 40)}`{badge} "
        f"{KIND_LABEL[request.action].lower()} · {escaped(describe_change(request), 200)} · "
        f"{request.status.value} · {age}"
    )
