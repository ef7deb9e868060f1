"""Keeping Block Kit within Slack's limits: mrkdwn escaping, truncation, block counts; mentions, times.

Every builder passes user-supplied text through `escaped` (mrkdwn) or `fit` (plain_text) so that
hostile or very long input can neither inject mentions/links nor exceed a limit Slack enforces,
and ends with `cap_blocks`, because slack_sdk checks lengths but never counts blocks.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta

from slack_sdk.models.blocks import Block, ContextBlock, MarkdownTextObject

__all__ = [
    "ELLIPSIS",
    "MAX_MESSAGE_BLOCKS",
    "MAX_VIEW_BLOCKS",
    "as_utc",
    "cap_blocks",
    "code_block",
    "escape",
    "escaped",
    "fit",
    "format_age",
    "format_utc",
    "lines_within",
    "person",
    "slack_date",
]

ELLIPSIS = "…"
MAX_MESSAGE_BLOCKS = 50
MAX_VIEW_BLOCKS = 100

_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
_SLACK_USER_ID = re.compile(r"[UW][A-Z0-9_]{2,30}")  # "_" for the emulator's readable ids
# Three backticks in user text would close our code block early.
_FENCE = "```"


def escape(text: str) -> str:
    """Escape the three characters Slack's mrkdwn parser treats as control characters."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def fit(text: str, limit: int) -> str:
    """`text` cut to at most `limit` characters, ending in an ellipsis when cut (for plain_text)."""
    if len(text) <= limit:
        return text
    return text[: max(limit - 1, 0)].rstrip() + ELLIPSIS


def escaped(text: str, limit: int) -> str:
    """`text` escaped for mrkdwn and cut to `limit` characters without splitting an entity."""
    full = escape(text)
    if len(full) <= limit:
        return full
    out: list[str] = []
    used = 0
    for char in text:
        piece = _ENTITIES.get(char, char)
        if used + len(piece) > limit - 1:
            break
        out.append(piece)
        used += len(piece)
    return "".join(out).rstrip() + ELLIPSIS


def person(user: str, names: Mapping[str, str] | None = None) -> str:
    """A user as mrkdwn: their known display name, a <@U...> mention, or the escaped text."""
    if names and names.get(user, "").strip():
        return f"*{escaped(names[user].strip(), 80)}*"
    if _SLACK_USER_ID.fullmatch(user):
        return f"<@{user}>"
    return escaped(user, 80)


def as_utc(moment: datetime) -> datetime:
    """Aware UTC datetime; naive values (as SQLite returns them) are taken to be UTC already."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def format_utc(moment: datetime) -> str:
    return as_utc(moment).strftime("%Y-%m-%d %H:%M UTC")


def format_age(delta: timedelta) -> str:
    """Coarse human duration: "just now", "5m", "3h", "2d"."""
    seconds = abs(int(delta.total_seconds()))
    if seconds < 60:
        return "just now" if delta >= timedelta(0) else "now"
    if seconds < 3600:
        return f"{seconds // 60}m"
    if seconds < 86400:
        hours, minutes = divmod(seconds // 60, 60)
        return f"{hours}h{minutes:02d}m" if hours < 10 and minutes else f"{hours}h"
    return f"{seconds // 86400}d"


def slack_date(moment: datetime) -> str:
    """A date Slack shows in each viewer's own time zone, falling back to UTC text."""
    epoch = int(as_utc(moment).timestamp())
    return f"<!date^{epoch}^{{date_short_pretty}} {{time}}|{format_utc(moment)}>"


def lines_within(lines: Sequence[str], limit: int, *, more: str = "…and {n} more") -> str:
    """Whole lines joined up to `limit` characters, ending with a "…and N more" line when cut.

    Lines should be short (a few hundred characters): a cut never splits a line.
    """
    kept: list[str] = []
    used = 0
    for index, line in enumerate(lines):
        left_after = len(lines) - index - 1
        cost = len(line) + (1 if kept else 0)
        reserve = len(more.format(n=left_after)) + 1 if left_after else 0
        if used + cost + reserve > limit:
            kept.append(more.format(n=len(lines) - index))
            break
        kept.append(line)
        used += cost
    return "\n".join(kept)


def code_block(lines: Sequence[str], limit: int) -> str:
    """Lines as an escaped ``` block of at most `limit` characters, noting lines left out."""
    body_limit = limit - 2 * len(_FENCE) - 2
    safe = [escaped(line.replace(_FENCE, "'''"), 300) or " " for line in lines]
    body = lines_within(safe, body_limit, more="… {n} more line(s)")
    return f"{_FENCE}\n{body}\n{_FENCE}"


def cap_blocks(blocks: Sequence[Block], limit: int) -> list[Block]:
    """`blocks` if they fit `limit`, else the first limit-1 and a note saying how many were left out."""
    if len(blocks) <= limit:
        return list(blocks)
    left_out = len(blocks) - (limit - 1)
    note = ContextBlock(elements=[MarkdownTextObject(text=f"_{left_out} more block(s) left out._")])
    return [*blocks[: limit - 1], note]
