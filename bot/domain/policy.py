"""Approval policies: which rule governs a change, who may request and approve it, and when.

A rule matches an action, an environment and optionally a target pattern. The most specific
matching rule wins; when none matches the change is denied (fail closed). Rules are plain pydantic
models so the YAML config validates them and a request can keep a JSON snapshot of its rule.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Literal, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from bot.domain.durations import Duration, format_duration
from bot.domain.errors import ChangeWindowClosed, PolicyDenied

__all__ = [
    "Action",
    "ApproverSet",
    "BreakGlassRule",
    "ChangeWindow",
    "Directory",
    "PolicyRule",
    "PolicySet",
    "StaticDirectory",
    "WindowDecision",
    "describe_rule",
]


class Action(StrEnum):
    PROMOTION = "promotion"
    ROTATION = "rotation"
    RELEASE = "release"
    ARCHIVE = "archive"
    ONBOARDING = "onboarding"


class Directory(Protocol):
    """Resolves Slack user groups to members; asked at the moment a decision is made."""

    async def members(self, group: str) -> frozenset[str]: ...


@dataclass(frozen=True)
class StaticDirectory:
    """Group membership declared in config (and the fallback when Slack cannot be asked)."""

    groups: dict[str, frozenset[str]]

    async def members(self, group: str) -> frozenset[str]:
        return self.groups.get(group, frozenset())


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ApproverSet(_Strict):
    """Slack user IDs and user-group handles; a person qualifies through either."""

    users: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()

    async def contains(self, user: str, directory: Directory) -> bool:
        if user in self.users:
            return True
        for group in self.groups:
            if user in await directory.members(group):
                return True
        return False

    def describe(self) -> str:
        names = [f"@{g}" for g in self.groups] + [f"<@{u}>" for u in self.users]
        return ", ".join(names) if names else "nobody"


class ChangeWindow(_Strict):
    """A recurring window: opens at each cron time (in `timezone`) and lasts `duration`."""

    kind: Literal["allow", "deny"]
    cron: str
    duration: Duration
    timezone: str = "UTC"
    name: str = ""

    @field_validator("cron")
    @classmethod
    def _cron_is_valid(cls, value: str) -> str:
        if not croniter.is_valid(value):
            raise ValueError(f"{value!r} is not a valid cron expression (5 fields: m h dom mon dow)")
        return value

    @field_validator("timezone")
    @classmethod
    def _timezone_exists(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @field_validator("duration")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("must be longer than 0s")
        return value

    def label(self) -> str:
        return self.name or f"{self.kind} {self.cron} for {format_duration(self.duration)} ({self.timezone})"

    def open_interval(self, now: datetime) -> tuple[datetime, datetime] | None:
        """The occurrence containing `now`, if any: the latest start <= now gives the latest end."""
        local_now = now.astimezone(ZoneInfo(self.timezone))
        # +1 s so an occurrence starting exactly now counts as started.
        start: datetime = croniter(self.cron, local_now + timedelta(seconds=1)).get_prev(datetime)
        end = start + self.duration
        if start <= local_now < end:
            return start, end
        return None

    def next_start(self, now: datetime) -> datetime:
        local_now = now.astimezone(ZoneInfo(self.timezone))
        nxt: datetime = croniter(self.cron, local_now).get_next(datetime)
        return nxt


@dataclass(frozen=True)
class WindowDecision:
    allowed: bool
    reason: str


class BreakGlassRule(_Strict):
    """Who may bypass approvals and windows in an emergency, and how soon it must be reviewed."""

    users: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    review_within: Duration = timedelta(hours=48)

    def as_approver_set(self) -> ApproverSet:
        return ApproverSet(users=self.users, groups=self.groups)


class PolicyRule(_Strict):
    """One governance rule; see the README's policy section for every key."""

    name: str = Field(min_length=1)
    action: str = Field(description='promotion, rotation, release, archive, onboarding or "*"')
    environment: str = Field(min_length=1, description='environment name or "*"')
    target: str | None = Field(default=None, description="glob over the target, e.g. orders-*")
    approvers: ApproverSet
    min_approvals: int = Field(default=1, ge=1)
    allow_self_approval: bool = False
    requesters: ApproverSet | None = None
    expires_after: Duration = timedelta(hours=24)
    remind_every: Duration | None = timedelta(hours=4)
    windows: tuple[ChangeWindow, ...] = ()
    break_glass: BreakGlassRule | None = None
    approval_channel: str | None = None

    @field_validator("action")
    @classmethod
    def _known_action(cls, value: str) -> str:
        allowed = ["*", *(a.value for a in Action)]
        if value not in allowed:
            raise ValueError(f"must be one of {', '.join(allowed)}")
        return value

    @model_validator(mode="after")
    def _quorum_reachable(self) -> PolicyRule:
        if not self.approvers.groups and len(self.approvers.users) < self.min_approvals:
            raise ValueError(
                f"min_approvals is {self.min_approvals} but only {len(self.approvers.users)} approver "
                "user(s) and no groups are listed: the quorum could never be reached"
            )
        return self

    def matches(self, action: Action, environment: str, target: str) -> bool:
        return (
            self.action in ("*", action.value)
            and self.environment in ("*", environment)
            and (self.target is None or fnmatch.fnmatchcase(target, self.target))
        )

    def specificity(self) -> tuple[int, int, int, int]:
        """Higher is more specific: exact action, exact environment, target pattern, literal length."""
        literal = len(self.target.replace("*", "").replace("?", "")) if self.target else 0
        return (
            int(self.target is not None),
            literal,
            int(self.environment != "*"),
            int(self.action != "*"),
        )

    def fingerprint(self) -> str:
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    def window_decision(self, now: datetime) -> WindowDecision:
        """Deny beats allow; any allow window makes the rule allow-only."""
        for window in self.windows:
            if window.kind == "deny" and (interval := window.open_interval(now)):
                return WindowDecision(
                    False, f"inside deny window '{window.label()}' until {_utc(interval[1])}"
                )
        allow_windows = [w for w in self.windows if w.kind == "allow"]
        if not allow_windows:
            return WindowDecision(True, "no change window restricts this rule")
        for window in allow_windows:
            if interval := window.open_interval(now):
                return WindowDecision(
                    True, f"inside allow window '{window.label()}' until {_utc(interval[1])}"
                )
        upcoming = min(w.next_start(now) for w in allow_windows)
        return WindowDecision(False, f"outside every allow window; the next opens {_utc(upcoming)}")

    def require_window_open(self, now: datetime) -> None:
        decision = self.window_decision(now)
        if not decision.allowed:
            raise ChangeWindowClosed(
                f"Changes under policy '{self.name}' are not allowed now: {decision.reason}."
            )


def _utc(moment: datetime) -> str:
    return moment.astimezone(ZoneInfo("UTC")).strftime("%Y-%m-%d %H:%M UTC")


def describe_rule(rule: PolicyRule, *, expires_at: datetime | None = None) -> str:
    """The policy in words, as shown on the approval message."""
    parts = [f"{rule.min_approvals} of {rule.approvers.describe()}"]
    parts.append("self-approval on" if rule.allow_self_approval else "self-approval off")
    if expires_at is not None:
        parts.append(f"expires {_utc(expires_at)}")
    else:
        parts.append(f"expires after {format_duration(rule.expires_after)}")
    if rule.windows:
        parts.append("windows: " + ", ".join(w.label() for w in rule.windows))
    return "; ".join(parts)


class PolicySet:
    """All configured rules; resolves the one that governs a change."""

    def __init__(self, rules: Sequence[PolicyRule]) -> None:
        self._rules = tuple(rules)

    @property
    def rules(self) -> tuple[PolicyRule, ...]:
        return self._rules

    def candidates(self, action: Action, environment: str, target: str) -> list[PolicyRule]:
        return [r for r in self._rules if r.matches(action, environment, target)]

    def resolve(self, action: Action, environment: str, target: str) -> PolicyRule:
        """Most specific matching rule (first declared wins a tie); none matching denies."""
        matching = self.candidates(action, environment, target)
        if not matching:
            raise PolicyDenied(
                f"No policy allows {action.value} of '{target}' in '{environment}': "
                "changes without a matching rule are denied. Ask an admin to add a policy."
            )
        best = max(r.specificity() for r in matching)
        return next(r for r in matching if r.specificity() == best)

    def by_name(self, name: str) -> PolicyRule | None:
        return next((r for r in self._rules if r.name == name), None)

    @staticmethod
    def duplicates(rules: Iterable[PolicyRule]) -> list[str]:
        seen: set[str] = set()
        dupes = []
        for rule in rules:
            if rule.name in seen:
                dupes.append(rule.name)
            seen.add(rule.name)
        return dupes
