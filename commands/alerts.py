"""Alert use cases behind `/ops alerts|silence|silences|unsilence` and the alert buttons.

Slack-free: each takes plain values and returns a `Reply` (text and blocks to show the person
who acted) or raises an `AlertError` whose message is fit to show them. Changes to the alert
message itself (acknowledged by, resolved, silenced until...) go through the outbox inside the
service's transaction; the listener only shows the reply.

    /ops alerts [filter]                       filter: label matchers (env=prod, system!=canto,
                                               title=~"Disk.*"), severity>=error,
                                               status=open|firing|acknowledged|silenced|resolved|all,
                                               and free words matched against title and key
    /ops silence <matchers> <duration> [reason]   e.g. env=prod system=opentext 2h deploy window
    /ops silences
    /ops unsilence <SIL-n>
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta

from slack_sdk.models.blocks import Block, MarkdownTextObject, SectionBlock

from bot.alerts.service import AlertService, RetryPlan
from bot.blocks.alerts import build_alert_list, build_silence_created, build_silence_list, escape
from bot.domain.alert_errors import IncidentPageUnavailable, InvalidMatcher, InvalidSilence, SilenceNotFound
from bot.domain.alerts import OPEN_STATUSES, AlertStatus, AlertView, Matcher, Severity
from bot.domain.durations import format_duration, parse_duration
from bot.payloads import AlertActionValue, AlertOp

__all__ = [
    "AlertCommands",
    "AlertFilter",
    "IncidentPageHook",
    "IncidentPageRequest",
    "Reply",
    "RetryReply",
    "parse_alert_filter",
    "parse_silence",
    "parse_silence_ref",
]

SILENCE_USAGE = (
    "Usage: `/ops silence <matchers> <duration> [reason]`, "
    "e.g. `/ops silence env=prod system=opentext 2h deploy window`"
)
_STATUS_WORDS = {
    "open": tuple(OPEN_STATUSES),
    "all": tuple(AlertStatus),
    **{status.value: (status,) for status in AlertStatus},
}
_SEVERITY_AT_LEAST = re.compile(r"^(?:severity|sev)>=(\w+)$", re.IGNORECASE)


@dataclass(frozen=True)
class Reply:
    """What to show the person who acted (ephemeral unless the listener decides otherwise)."""

    text: str
    blocks: list[Block] = field(default_factory=list)


@dataclass(frozen=True)
class RetryReply(Reply):
    """The caller re-runs `plan.target` (a request ref or an iconik job) with `plan.idempotency_key`."""

    plan: RetryPlan | None = None


@dataclass(frozen=True)
class IncidentPageRequest:
    alert: AlertView
    requested_by: str


IncidentPageHook = Callable[[IncidentPageRequest], Awaitable[str]]
"""Creates the incident page (Confluence) for an alert and returns its URL."""


@dataclass(frozen=True)
class AlertFilter:
    matchers: tuple[Matcher, ...] = ()
    statuses: tuple[AlertStatus, ...] = tuple(OPEN_STATUSES)
    text: str = ""


def _tokens(text: str) -> list[str]:
    try:
        return shlex.split(text)
    except ValueError as exc:
        raise InvalidMatcher(f"Could not read `{text}`: {exc} (check the quotes).") from None


def parse_alert_filter(text: str) -> AlertFilter:
    """`env=prod severity>=error status=all disk` -> matchers, statuses and free text."""
    matchers: list[Matcher] = []
    statuses: tuple[AlertStatus, ...] = tuple(OPEN_STATUSES)
    words: list[str] = []
    for token in _tokens(text):
        lowered = token.lower()
        if lowered.startswith("status="):
            chosen: list[AlertStatus] = []
            for word in lowered.removeprefix("status=").split(","):
                if word not in _STATUS_WORDS:
                    raise InvalidMatcher(f"`{token}`: status is one of {', '.join(sorted(_STATUS_WORDS))}.")
                chosen.extend(_STATUS_WORDS[word])
            statuses = tuple(dict.fromkeys(chosen))
        elif found := _SEVERITY_AT_LEAST.match(token):
            try:
                floor = Severity(found.group(1).lower())
            except ValueError:
                raise InvalidMatcher(
                    f"`{token}`: severity is one of {', '.join(s.value for s in Severity)}."
                ) from None
            allowed = "|".join(s.value for s in Severity if s.at_least(floor))
            matchers.append(Matcher("severity", "=~", allowed))
        elif Matcher.looks_like(token):
            matchers.append(Matcher.parse(token))
        else:
            words.append(token)
    return AlertFilter(tuple(matchers), statuses, " ".join(words))


def parse_silence(text: str) -> tuple[tuple[Matcher, ...], timedelta, str]:
    """`env=prod system=opentext 2h deploy window` -> (matchers, 2 h, "deploy window")."""
    tokens = _tokens(text)
    matchers: list[Matcher] = []
    while tokens and Matcher.looks_like(tokens[0]):
        matchers.append(Matcher.parse(tokens.pop(0)))
    if not matchers:
        raise InvalidSilence(f"Name at least one matcher first. {SILENCE_USAGE}")
    if not tokens:
        raise InvalidSilence(f"Say how long the silence lasts. {SILENCE_USAGE}")
    try:
        duration = parse_duration(tokens[0])
    except ValueError:
        raise InvalidSilence(
            f"`{tokens[0]}` is not a duration (use e.g. 30m, 4h, 2d). {SILENCE_USAGE}"
        ) from None
    return tuple(matchers), duration, " ".join(tokens[1:])


def parse_silence_ref(text: str) -> int:
    """`SIL-3`, `sil-3`, `#3` or `3` -> 3."""
    found = re.fullmatch(r"\s*(?:sil-|#)?(\d+)\s*", text, re.IGNORECASE)
    if not found:
        raise SilenceNotFound(
            f"`{text.strip()}` is not a silence id; write it as SIL-3 (see `/ops silences`)."
        )
    return int(found.group(1))


def _say(text: str) -> Reply:
    return Reply(text, [SectionBlock(text=MarkdownTextObject(text=text))])


def _name(alert: AlertView) -> str:
    return f"*{alert.ref}* {escape(alert.title)}"


class AlertCommands:
    """The alert use cases; `incident_page` is wired to Confluence by the caller."""

    def __init__(self, service: AlertService, *, incident_page: IncidentPageHook | None = None) -> None:
        self._service = service
        self._incident_page = incident_page

    # ------------------------------------------------------------- commands

    async def alerts(self, text: str = "") -> Reply:
        """`/ops alerts [filter]`."""
        wanted = parse_alert_filter(text)
        alerts, total = await self._service.list_alerts(
            matchers=wanted.matchers, statuses=wanted.statuses, text=wanted.text
        )
        shown = text.strip()
        label = f"Alerts matching {shown}" if shown else "Open alerts"
        return Reply(f"{label}: {total}", build_alert_list(alerts, total=total, filter_text=shown))

    async def silence(self, text: str, *, user: str) -> Reply:
        """`/ops silence <matchers> <duration> [reason]`."""
        matchers, duration, reason = parse_silence(text)
        outcome = await self._service.create_silence(matchers, duration=duration, user=user, reason=reason)
        return Reply(
            f"{outcome.silence.ref} silences {' '.join(map(str, matchers))} for {format_duration(duration)}",
            build_silence_created(outcome.silence, silenced_alerts=outcome.alerts),
        )

    async def silences(self) -> Reply:
        """`/ops silences`."""
        active = await self._service.silences()
        return Reply(f"Active silences: {len(active)}", build_silence_list(active, now=self._service.clock()))

    async def unsilence(self, text: str, *, user: str) -> Reply:
        """`/ops unsilence <ID>`."""
        outcome = await self._service.unsilence(parse_silence_ref(text), user=user)
        firing = f" {outcome.alerts} alert(s) fire again." if outcome.alerts else ""
        return _say(f":bell: {outcome.silence.ref} lifted.{firing}")

    # -------------------------------------------------------------- buttons

    async def act(self, value: AlertActionValue, *, user: str) -> Reply:
        """Dispatch a button or overflow value to its use case."""
        if value.op is AlertOp.ACKNOWLEDGE:
            return await self.acknowledge(value.alert_id, user=user)
        if value.op is AlertOp.RESOLVE:
            return await self.resolve(value.alert_id, user=user)
        if value.op is AlertOp.SILENCE:
            return await self.silence_alert(value.alert_id, hours=value.hours or 1, user=user)
        if value.op is AlertOp.RETRY:
            return await self.retry(value.alert_id, user=user)
        return await self.create_incident_page(value.alert_id, user=user)

    async def acknowledge(self, alert_id: int, *, user: str) -> Reply:
        change = await self._service.acknowledge(alert_id, user=user)
        if not change.changed:
            return _say(
                f"{_name(change.alert)} was already acknowledged by <@{change.alert.acknowledged_by}>."
            )
        return _say(f":eyes: You acknowledged {_name(change.alert)}: no more repeats or escalation.")

    async def resolve(self, alert_id: int, *, user: str) -> Reply:
        change = await self._service.resolve(alert_id, user=user)
        if not change.changed:
            by = f" by <@{change.alert.resolved_by}>" if change.alert.resolved_by else ""
            return _say(f"{_name(change.alert)} was already resolved{by}.")
        return _say(f":white_check_mark: You resolved {_name(change.alert)}.")

    async def silence_alert(self, alert_id: int, *, hours: int, user: str) -> Reply:
        outcome = await self._service.silence_alert(alert_id, hours=hours, user=user)
        return Reply(
            f"{outcome.silence.ref} silences alerts like ALR-{alert_id} for {hours} h",
            build_silence_created(outcome.silence, silenced_alerts=outcome.alerts),
        )

    async def retry(self, alert_id: int, *, user: str) -> RetryReply:
        """Record the request and return what to re-run; the caller starts the re-run."""
        plan = await self._service.request_retry(alert_id, user=user)
        what = (
            f"request {plan.target.ref}" if plan.target.kind == "request" else f"iconik job {plan.target.ref}"
        )
        text = f":repeat: Re-running {escape(what)} for ALR-{alert_id}."
        return RetryReply(text, [SectionBlock(text=MarkdownTextObject(text=text))], plan=plan)

    async def create_incident_page(self, alert_id: int, *, user: str) -> Reply:
        """One page per alert: a second click links the existing page."""
        if self._incident_page is None:
            raise IncidentPageUnavailable(
                "Incident pages are not set up here (Confluence is not configured)."
            )
        alert = await self._service.claim_incident_page(alert_id, user=user)
        if alert.incident_url:
            return _say(f"{_name(alert)} already has an incident page: <{alert.incident_url}|open it>.")
        try:
            url = await self._incident_page(IncidentPageRequest(alert, user))
        except Exception as exc:
            await self._service.release_incident_claim(alert_id)
            raise IncidentPageUnavailable(
                f"The incident page for {alert.ref} could not be created ({type(exc).__name__}: {exc}); try again."
            ) from exc
        await self._service.record_incident_page(alert_id, url=url, user=user)
        return _say(f":page_facing_up: Incident page for {_name(alert)}: <{url}|open it>.")
