"""Block Kit for alerts: the alert message, storm digests, reminders, `/ops alerts` and silences.

Pure functions of view objects; no I/O. Texts are cut to Slack's limits here (header 150,
section 3,000, button 75, overflow option value 150) so `to_dict()` never refuses a message.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Literal

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ContextBlock,
    DividerBlock,
    HeaderBlock,
    MarkdownTextObject,
    Option,
    OverflowMenuElement,
    PlainTextObject,
    SectionBlock,
)

from bot.domain.alerts import AlertStatus, AlertView, DigestView, Severity, SilenceView
from bot.domain.durations import format_duration
from bot.ids import AlertActionId, AlertBlockId
from bot.payloads import SILENCE_HOURS, AlertActionValue, AlertOp

__all__ = [
    "SEVERITY_EMOJI",
    "alert_fallback_text",
    "build_alert_digest",
    "build_alert_list",
    "build_alert_message",
    "build_alert_reminder",
    "build_silence_created",
    "build_silence_list",
    "digest_fallback_text",
    "mention_markup",
    "slack_date",
]

SEVERITY_EMOJI = {
    Severity.INFO: ":information_source:",
    Severity.WARNING: ":warning:",
    Severity.ERROR: ":red_circle:",
    Severity.CRITICAL: ":rotating_light:",
}
STATUS_EMOJI = {
    AlertStatus.FIRING: "",
    AlertStatus.ACKNOWLEDGED: ":eyes:",
    AlertStatus.SILENCED: ":no_bell:",
    AlertStatus.RESOLVED: ":white_check_mark:",
}
MAX_LIST_LINES = 40
TIMES = "\N{MULTIPLICATION SIGN}"  # before an occurrence count
_HEADER = 150
_SECTION = 3000
_CONTEXT = 1900


def escape(text: str) -> str:
    """Slack mrkdwn control characters, so alert text cannot ping people or forge links."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


_GROUP_ID = re.compile(r"S[A-Z0-9_]{2,}")
_USER_ID = re.compile(r"[UW][A-Z0-9_]{2,}")


def mention_markup(mention: str | None) -> str:
    """A user group id (S...) pings the group, a user id (U.../W...) the user; else @handle."""
    if not mention:
        return ""
    if mention.startswith(("<!", "<@")):
        return mention
    if mention.lstrip("@") in ("here", "channel"):
        return f"<!{mention.lstrip('@')}>"
    if _GROUP_ID.fullmatch(mention):
        return f"<!subteam^{mention}>"
    if _USER_ID.fullmatch(mention):
        return f"<@{mention}>"
    return "@" + escape(mention.lstrip("@"))


def age(delta: timedelta) -> str:
    """How long, to the minute: "1h5m", "under a minute"."""
    minutes = int(delta.total_seconds() // 60)
    return format_duration(timedelta(minutes=minutes)) if minutes > 0 else "under a minute"


def slack_date(moment: datetime) -> str:
    """Rendered in each reader's time zone by Slack; the fallback is UTC."""
    fallback = moment.strftime("%Y-%m-%d %H:%M UTC")
    return f"<!date^{int(moment.timestamp())}^{{date_short_pretty}} {{time}}|{fallback}>"


def _user(user: str | None) -> str:
    if not user:
        return "someone"
    return f"<@{user}>" if _USER_ID.fullmatch(user) else escape(user)


def _status_phrase(alert: AlertView) -> str:
    if alert.status is AlertStatus.RESOLVED:
        by = f" by {_user(alert.resolved_by)}" if alert.resolved_by else ""
        when = f" {slack_date(alert.resolved_at)}" if alert.resolved_at else ""
        return f":white_check_mark: *Resolved*{by}{when}"
    if alert.status is AlertStatus.ACKNOWLEDGED:
        when = f" {slack_date(alert.acknowledged_at)}" if alert.acknowledged_at else ""
        return f":eyes: *Acknowledged* by {_user(alert.acknowledged_by)}{when}"
    if alert.status is AlertStatus.SILENCED and alert.silence is not None:
        return (
            f":no_bell: *Silenced* by {alert.silence.ref} ({_user(alert.silence.created_by)}) "
            f"until {slack_date(alert.silence.ends_at)}"
        )
    if alert.status is AlertStatus.SILENCED:
        return ":no_bell: *Silenced*"
    return "*Firing*"


def alert_fallback_text(alert: AlertView, *, mention: bool = False) -> str:
    """The notification text (what push notifications and screen readers show)."""
    prefix = f"{mention_markup(alert.mention)} " if mention and alert.mention else ""
    count = f" {TIMES}{alert.occurrences}" if alert.occurrences > 1 else ""
    return cut(
        f"{prefix}[{alert.severity.value.upper()}] {alert.title}{count} "
        f"({alert.environment}/{alert.system}): {alert.status.value}",
        3000,
    )


def _value(alert: AlertView, op: AlertOp, hours: int | None = None) -> str:
    return AlertActionValue(alert_id=alert.id, op=op, hours=hours).model_dump_json(exclude_none=True)


def _silence_options(alert: AlertView) -> list[Option]:
    return [
        Option(text=f"Silence {hours} h", value=_value(alert, AlertOp.SILENCE, hours))
        for hours in SILENCE_HOURS
    ]


def _actions(alert: AlertView) -> ActionsBlock | None:
    elements: list[ButtonElement | OverflowMenuElement] = []
    if alert.is_open:
        if alert.status is not AlertStatus.ACKNOWLEDGED:
            elements.append(
                ButtonElement(
                    text="Acknowledge",
                    action_id=AlertActionId.ACKNOWLEDGE,
                    value=_value(alert, AlertOp.ACKNOWLEDGE),
                    style="primary",
                )
            )
        elements.append(
            ButtonElement(
                text="Resolve", action_id=AlertActionId.RESOLVE, value=_value(alert, AlertOp.RESOLVE)
            )
        )
    if alert.incident_url:
        elements.append(
            ButtonElement(
                text="Incident page",
                action_id=AlertActionId.OPEN_INCIDENT_PAGE,
                url=alert.incident_url[:3000],
                value=_value(alert, AlertOp.INCIDENT_PAGE),
            )
        )
    elif alert.is_open:
        elements.append(
            ButtonElement(
                text="Create incident page",
                action_id=AlertActionId.INCIDENT_PAGE,
                value=_value(alert, AlertOp.INCIDENT_PAGE),
            )
        )
    if alert.is_open and alert.retry is not None:
        elements.append(
            ButtonElement(text="Retry", action_id=AlertActionId.RETRY, value=_value(alert, AlertOp.RETRY))
        )
    if alert.is_open:
        elements.append(OverflowMenuElement(action_id=AlertActionId.SILENCE, options=_silence_options(alert)))
    if not elements:
        return None
    return ActionsBlock(block_id=AlertBlockId.ALERT_ACTIONS.of(alert.id), elements=elements)


def build_alert_message(alert: AlertView) -> list[Block]:
    """One alert's own message: what, where, how often, its state, and what can be done."""
    emoji = (
        STATUS_EMOJI[alert.status] if alert.status is AlertStatus.RESOLVED else SEVERITY_EMOJI[alert.severity]
    )
    header = cut(f"{emoji} {alert.severity.value.upper()} · {alert.title}", _HEADER)
    summary = escape(alert.summary) if alert.summary else f"`{escape(alert.dedup_key)}`"
    if alert.mention and alert.status is not AlertStatus.RESOLVED:
        summary = f"{mention_markup(alert.mention)} {summary}"
    fields = [
        MarkdownTextObject(text=f"*Environment*\n{escape(alert.environment)}"),
        MarkdownTextObject(text=f"*System*\n{escape(alert.system)}"),
        MarkdownTextObject(text=f"*Source*\n{escape(alert.source)}"),
        MarkdownTextObject(text=f"*Occurrences*\n{alert.occurrences}"),
        MarkdownTextObject(text=f"*First seen*\n{slack_date(alert.first_seen)}"),
        MarkdownTextObject(text=f"*Last seen*\n{slack_date(alert.last_seen)}"),
    ]
    context = [MarkdownTextObject(text=_status_phrase(alert))]
    if alert.escalated_to:
        when = f" {slack_date(alert.escalated_at)}" if alert.escalated_at else ""
        context.append(
            MarkdownTextObject(
                text=f":rotating_light: Escalated to {mention_markup(alert.escalated_to)}{when}"
            )
        )
    if alert.retry_requested_by:
        context.append(
            MarkdownTextObject(text=f":repeat: Retry requested by {_user(alert.retry_requested_by)}")
        )
    labels = " ".join(f"`{escape(k)}={escape(v)}`" for k, v in sorted(alert.labels.items()))
    context.append(
        MarkdownTextObject(
            text=cut(
                f"{alert.ref} · key `{escape(alert.dedup_key)}`" + (f" · {labels}" if labels else ""),
                _CONTEXT,
            )
        )
    )
    blocks: list[Block] = [
        HeaderBlock(block_id=AlertBlockId.ALERT.of(alert.id), text=PlainTextObject(text=header)),
        SectionBlock(text=MarkdownTextObject(text=cut(summary, _SECTION)), fields=fields),
        ContextBlock(elements=context),
    ]
    actions = _actions(alert)
    if actions is not None:
        blocks.append(actions)
    return blocks


def build_alert_reminder(
    alerts: Sequence[AlertView], *, kind: Literal["repeat", "escalation"], mention: str | None, now: datetime
) -> tuple[str, list[Block]]:
    """A thread reply (also broadcast to the channel): `repeat` while alerts still fire
    unacknowledged, or `escalation` when critical ones were not acknowledged in time."""
    who = mention_markup(mention)
    lines = [
        f"{SEVERITY_EMOJI[a.severity]} *{escape(cut(a.title, 150))}* ({escape(a.environment)}/{escape(a.system)})"
        f" {TIMES}{a.occurrences} · firing for {age(now - a.first_seen)} · {a.ref}"
        for a in alerts[:20]
    ]
    if len(alerts) > 20:
        lines.append(f"…and {len(alerts) - 20} more")
    if kind == "escalation":
        lead = f"{who} :rotating_light: *Escalation*: not acknowledged in time"
    else:
        lead = f"{who + ' ' if who else ''}:repeat: *Still firing*, not acknowledged"
    text = cut(lead + "\n" + "\n".join(lines), _SECTION)
    return text, [SectionBlock(text=MarkdownTextObject(text=text))]


def _menu(alert: AlertView) -> OverflowMenuElement | None:
    if not alert.is_open:
        return None
    options = []
    if alert.status is not AlertStatus.ACKNOWLEDGED:
        options.append(Option(text="Acknowledge", value=_value(alert, AlertOp.ACKNOWLEDGE)))
    options.append(Option(text="Resolve", value=_value(alert, AlertOp.RESOLVE)))
    options.extend(_silence_options(alert)[: 5 - len(options)])
    return OverflowMenuElement(action_id=AlertActionId.MENU, options=options)


def alert_line(alert: AlertView) -> SectionBlock:
    """One alert as a line of a digest or a list, with its actions in an overflow menu."""
    emoji = STATUS_EMOJI[alert.status] or SEVERITY_EMOJI[alert.severity]
    count = f" {TIMES}{alert.occurrences}" if alert.occurrences > 1 else ""
    text = (
        f"{emoji} *{escape(cut(alert.title, 200))}*{count}\n"
        f"`{escape(alert.environment)}` · `{escape(alert.system)}` · {alert.severity.value} · "
        f"{_status_phrase(alert)} · {alert.ref}"
    )
    if alert.escalated_to and alert.is_open:
        text += f" · :rotating_light: escalated to {mention_markup(alert.escalated_to)}"
    return SectionBlock(
        block_id=AlertBlockId.ALERT.of(alert.id),
        text=MarkdownTextObject(text=cut(text, _SECTION)),
        accessory=_menu(alert),
    )


def _ordered(alerts: Sequence[AlertView]) -> list[AlertView]:
    return sorted(alerts, key=lambda a: (not a.is_open, -a.severity.rank, a.first_seen, a.id))


def digest_fallback_text(digest: DigestView) -> str:
    return f"Alert storm: {digest.total} alerts in this channel, {digest.open_count} still open"


def build_alert_digest(digest: DigestView, *, per_channel_rate: float, max_listed: int) -> list[Block]:
    """A storm digest: alerts that came faster than the channel's message rate, in one message."""
    header = f":rotating_light: Alert storm · {digest.total} alerts"
    blocks: list[Block] = [
        HeaderBlock(block_id=AlertBlockId.DIGEST.of(digest.id), text=PlainTextObject(text=header)),
        ContextBlock(
            elements=[
                MarkdownTextObject(
                    text=(
                        f"More new alerts than {per_channel_rate:g} message/s in this channel since "
                        f"{slack_date(digest.opened_at)}: they are listed here and this message is "
                        f"updated in place. {digest.open_count} still open."
                    )
                )
            ]
        ),
    ]
    listed = _ordered(digest.alerts)[: min(max_listed, 45)]
    blocks.extend(alert_line(alert) for alert in listed)
    hidden = digest.total - len(listed)
    if hidden > 0:
        blocks.append(ContextBlock(elements=[MarkdownTextObject(text=f"…and {hidden} more: `/ops alerts`")]))
    return blocks


def build_alert_list(alerts: Sequence[AlertView], *, total: int, filter_text: str = "") -> list[Block]:
    """`/ops alerts [filter]`: the matching alerts, open ones first, with their actions."""
    what = f"Alerts matching `{escape(filter_text)}`" if filter_text else "Open alerts"
    if not alerts:
        return [SectionBlock(text=MarkdownTextObject(text=f"{what}: none."))]
    blocks: list[Block] = [
        HeaderBlock(text=PlainTextObject(text=cut(f"{what.replace('`', '')} ({total})", _HEADER)))
    ]
    listed = _ordered(alerts)[:MAX_LIST_LINES]
    blocks.extend(alert_line(alert) for alert in listed)
    if total > len(listed):
        blocks.append(
            ContextBlock(
                elements=[
                    MarkdownTextObject(
                        text=f"…and {total - len(listed)} more; narrow it down, e.g. `env=prod severity=critical`"
                    )
                ]
            )
        )
    return blocks


def _matchers(silence: SilenceView) -> str:
    return " ".join(f"`{escape(str(m))}`" for m in silence.matchers)


def build_silence_list(silences: Sequence[SilenceView], *, now: datetime) -> list[Block]:
    """`/ops silences`: active silences, soonest ending first."""
    if not silences:
        return [SectionBlock(text=MarkdownTextObject(text="No active silences."))]
    blocks: list[Block] = [HeaderBlock(text=PlainTextObject(text=f"Active silences ({len(silences)})"))]
    for silence in list(silences)[:MAX_LIST_LINES]:
        left = format_duration(max(silence.ends_at - now, timedelta(0)))
        reason = f" · {escape(silence.reason)}" if silence.reason else ""
        blocks.append(
            SectionBlock(
                text=MarkdownTextObject(
                    text=cut(
                        f"*{silence.ref}* {_matchers(silence)}\nuntil {slack_date(silence.ends_at)} "
                        f"({left} left) · by {_user(silence.created_by)}{reason}",
                        _SECTION,
                    )
                )
            )
        )
    blocks.append(DividerBlock())
    blocks.append(ContextBlock(elements=[MarkdownTextObject(text="Lift one with `/ops unsilence SIL-<n>`.")]))
    return blocks


def build_silence_created(silence: SilenceView, *, silenced_alerts: int) -> list[Block]:
    """The confirmation of `/ops silence` or a Silence button."""
    affected = f" {silenced_alerts} open alert(s) silenced now." if silenced_alerts else ""
    reason = f"\nReason: {escape(silence.reason)}" if silence.reason else ""
    text = (
        f":no_bell: *{silence.ref}* silences {_matchers(silence)} until {slack_date(silence.ends_at)}."
        f"{affected}{reason}\nLift it early with `/ops unsilence {silence.ref}`."
    )
    return [SectionBlock(text=MarkdownTextObject(text=cut(text, _SECTION)))]
