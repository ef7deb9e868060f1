"""The App Home tab: what waits for the viewer's approval, their open requests, recent changes, alerts.

Each section is capped so the view stays within Slack's 100 blocks however much data there is;
what does not fit is counted ("…and 12 more").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ContextBlock,
    DividerBlock,
    HeaderBlock,
    MarkdownTextObject,
    PlainTextObject,
    SectionBlock,
)
from slack_sdk.models.views import View

from bot.blocks.requests import build_request_line, decision_buttons
from bot.blocks.text import (
    MAX_VIEW_BLOCKS,
    as_utc,
    cap_blocks,
    escaped,
    format_age,
    format_utc,
    person,
)
from bot.domain.requests import ChangeRequest
from bot.ids import ActionId
from bot.payloads import HomePage

__all__ = ["MAX_AWAITING_SHOWN", "MAX_LISTED", "AlertSummary", "build_home"]

MAX_AWAITING_SHOWN = 15  # two blocks each: the request and its buttons
MAX_LISTED = 25  # lines per list (open requests, recent changes, alerts)
_SECTION_TEXT = 3000

_SEVERITY_EMOJI = {
    "critical": ":red_circle:",
    "page": ":red_circle:",
    "error": ":large_orange_circle:",
    "major": ":large_orange_circle:",
    "warning": ":large_yellow_circle:",
    "info": ":large_blue_circle:",
}


@dataclass(frozen=True)
class AlertSummary:
    """One open alert group as the Home tab lists it."""

    id: str
    title: str
    severity: str
    status: str
    count: int
    last_seen: datetime


def _context(text: str) -> ContextBlock:
    return ContextBlock(elements=[MarkdownTextObject(text=text)])


def _header(text: str) -> HeaderBlock:
    return HeaderBlock(text=PlainTextObject(text=text))


def _more(count: int, what: str) -> ContextBlock:
    return _context(f"_…and {count} more {what}._")


def _awaiting_blocks(awaiting: Sequence[ChangeRequest], now: datetime) -> list[Block]:
    if not awaiting:
        return [_context("_Nothing is waiting for your approval._")]
    blocks: list[Block] = []
    for request in awaiting[:MAX_AWAITING_SHOWN]:
        needed = max(request.policy.min_approvals - len(request.valid_approvals), 0)
        text = build_request_line(request, now=now)
        if request.reason.strip():
            text += f"\n> {escaped(' '.join(request.reason.split()), 300)}"
        text += (
            f"\nRequested by {person(request.requester)} · needs {needed} more approval(s) · "
            f"expires {format_utc(request.expires_at)}"
        )
        blocks.append(SectionBlock(text=MarkdownTextObject(text=text)))
        blocks.append(decision_buttons(request))
    if len(awaiting) > MAX_AWAITING_SHOWN:
        blocks.append(_more(len(awaiting) - MAX_AWAITING_SHOWN, "waiting for you"))
    return blocks


def _list_blocks(lines: Sequence[str], *, total: int, empty: str, what: str) -> list[Block]:
    """The first MAX_LISTED of `total` lines, packed into sections of at most 3,000 characters."""
    if not lines:
        return [_context(empty)]
    blocks: list[Block] = []
    chunk: list[str] = []
    size = 0
    for line in lines[:MAX_LISTED]:
        if chunk and size + 1 + len(line) > _SECTION_TEXT:
            blocks.append(SectionBlock(text=MarkdownTextObject(text="\n".join(chunk))))
            chunk, size = [], 0
        size += len(line) + (1 if chunk else 0)
        chunk.append(line)
    blocks.append(SectionBlock(text=MarkdownTextObject(text="\n".join(chunk))))
    if total > min(len(lines), MAX_LISTED):
        blocks.append(_more(total - min(len(lines), MAX_LISTED), what))
    return blocks


def _alert_line(alert: AlertSummary, now: datetime) -> str:
    emoji = _SEVERITY_EMOJI.get(alert.severity.lower(), ":white_circle:")
    count = f" · {alert.count} times" if alert.count > 1 else ""
    # A clock slightly ahead of ours must not read as "in the future".
    seen = format_age(max(as_utc(now) - as_utc(alert.last_seen), timedelta(0)))
    seen_text = seen if seen == "just now" else f"{seen} ago"
    return (
        f"{emoji} *{escaped(' '.join(alert.title.split()), 150)}* · {escaped(alert.severity, 20)} · "
        f"{escaped(alert.status, 20)}{count} · last seen {seen_text} · `{escaped(alert.id, 40)}`"
    )


def _pagination(page: int, has_more: bool) -> list[Block]:
    buttons = []
    if page > 0:
        buttons.append(
            ButtonElement(
                text="← Newer",
                action_id=ActionId.HOME_PAGE_BACK,
                value=HomePage(page=page - 1).model_dump_json(),
            )
        )
    if has_more:
        buttons.append(
            ButtonElement(
                text="Older →", action_id=ActionId.HOME_PAGE, value=HomePage(page=page + 1).model_dump_json()
            )
        )
    if not buttons:
        return []
    return [_context(f"Page {page + 1}"), ActionsBlock(elements=buttons)]


def build_home(
    *,
    viewer: str,
    awaiting: Sequence[ChangeRequest],
    mine: Sequence[ChangeRequest],
    recent: Sequence[ChangeRequest],
    alerts: Sequence[AlertSummary],
    page: int,
    has_more: bool,
    now: datetime,
) -> View:
    """The Home tab for `viewer`; never more than 100 blocks whatever the sizes of the inputs."""
    blocks: list[Block] = [
        _header("opsgate"),
        _context(f"Hello {person(viewer)} · updated {format_utc(now)}"),
        _header(f"Waiting for your approval ({len(awaiting)})"),
        *_awaiting_blocks(awaiting, now),
        DividerBlock(),
        _header("Your open requests"),
        *_list_blocks(
            [build_request_line(r, now=now) for r in mine[:MAX_LISTED]],
            total=len(mine),
            empty="_You have no open requests._",
            what="open requests",
        ),
        DividerBlock(),
        _header("Recent changes"),
        *_list_blocks(
            [build_request_line(r, now=now) for r in recent[:MAX_LISTED]],
            total=len(recent),
            empty="_No changes yet._" if page == 0 else "_No older changes._",
            what="changes on this page",
        ),
        *_pagination(page, has_more),
        DividerBlock(),
        _header(f"Open alerts ({len(alerts)})"),
        *_list_blocks(
            [_alert_line(a, now) for a in alerts[:MAX_LISTED]],
            total=len(alerts),
            empty="_No open alerts._",
            what="alerts",
        ),
    ]
    return View(type="home", blocks=cap_blocks(blocks, MAX_VIEW_BLOCKS))
