"""What an alert is, independent of storage and Slack: severities, statuses, events, matchers.

Semantics follow PagerDuty and Prometheus Alertmanager:
- an event carries a dedup key (<= 255 characters); a trigger for a key that has an open alert
  is added to it (its occurrence count grows), a resolve closes it, and after resolution the
  same key opens a new alert;
- the labels of an alert are its free labels plus the reserved ones `source`, `severity`,
  `environment` (alias `env`) and `system`; routes and silences match on that set.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from functools import lru_cache
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from bot.domain.alert_errors import InvalidMatcher

__all__ = [
    "MAX_DEDUP_KEY",
    "OPEN_STATUSES",
    "RESERVED_LABELS",
    "AlertEvent",
    "AlertSource",
    "AlertStatus",
    "AlertView",
    "DigestView",
    "Matcher",
    "RetryTarget",
    "Severity",
    "SilenceView",
    "label_set",
    "matches_all",
]

MAX_DEDUP_KEY = 255
RESERVED_LABELS = frozenset({"source", "severity", "environment", "env", "system"})
_LABEL_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")


class Severity(StrEnum):
    """info < warning < error < critical."""

    INFO = "info"
    WARNING = "warning"
    ERROR = "error"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return _RANK[self]

    def at_least(self, other: Severity) -> bool:
        return self.rank >= other.rank


_RANK = {Severity.INFO: 0, Severity.WARNING: 1, Severity.ERROR: 2, Severity.CRITICAL: 3}


class AlertStatus(StrEnum):
    FIRING = "firing"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"
    SILENCED = "silenced"


OPEN_STATUSES = frozenset({AlertStatus.FIRING, AlertStatus.ACKNOWLEDGED, AlertStatus.SILENCED})


class AlertSource(StrEnum):
    """Where an event came from; `POST /alerts` callers may name their own source."""

    WORKFLOW = "workflow"
    ROTATION = "rotation"
    ICONIK = "iconik"
    EXPIRY = "expiry"
    HEALTH = "health"
    API = "api"


class RetryTarget(BaseModel):
    """What the Retry button re-runs: a failed change request or an iconik job."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["request", "iconik_job"]
    ref: str = Field(min_length=1, max_length=128)
    environment: str | None = None


class AlertEvent(BaseModel):
    """One trigger or resolve, from a workflow, a webhook, a health check or `POST /alerts`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dedup_key: str = Field(min_length=1, max_length=MAX_DEDUP_KEY)
    action: Literal["trigger", "resolve"] = "trigger"
    source: str = Field(default=AlertSource.API.value, pattern=r"^[a-z][a-z0-9_-]{0,31}$")
    severity: Severity = Severity.ERROR
    environment: str = Field(default="-", min_length=1, max_length=64)
    system: str = Field(default="-", min_length=1, max_length=128)
    title: str = Field(default="", max_length=200)
    summary: str = Field(default="", max_length=2800)
    labels: dict[str, str] = Field(default_factory=dict, max_length=20)
    retry: RetryTarget | None = None

    @field_validator("labels")
    @classmethod
    def _label_names(cls, value: dict[str, str]) -> dict[str, str]:
        for name, label in value.items():
            if name in RESERVED_LABELS:
                raise ValueError(f"{name!r} is reserved: use the {name} field instead")
            if not _LABEL_NAME.match(name):
                raise ValueError(f"{name!r} is not a label name (letters, digits, _ . -; at most 64)")
            if len(label) > 255:
                raise ValueError(f"the value of {name!r} is longer than 255 characters")
        return value

    @property
    def display_title(self) -> str:
        return self.title or self.dedup_key[:200]


def label_set(
    *, source: str, severity: str, environment: str, system: str, labels: Mapping[str, str]
) -> dict[str, str]:
    """The labels routes and silences see: free labels plus the reserved ones."""
    return {
        **labels,
        "source": source,
        "severity": severity,
        "environment": environment,
        "env": environment,
        "system": system,
    }


@lru_cache(maxsize=512)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


@dataclass(frozen=True)
class Matcher:
    """One Alertmanager-style matcher: `name=value`, `name!=value`, `name=~regex`, `name!~regex`."""

    name: str
    op: Literal["=", "!=", "=~", "!~"]
    value: str

    _SYNTAX = re.compile(r"^([A-Za-z_][A-Za-z0-9_.-]*)(=~|!~|!=|=)(.*)$")

    @classmethod
    def looks_like(cls, text: str) -> bool:
        """Is `text` written as a matcher (label, operator, value)?"""
        return cls._SYNTAX.match(text.strip()) is not None

    @classmethod
    def parse(cls, text: str) -> Matcher:
        """Parse `env=prod`, `system!=canto`, `title=~"Disk.*"`; raise InvalidMatcher otherwise."""
        found = cls._SYNTAX.match(text.strip())
        if not found:
            raise InvalidMatcher(
                f"`{text}` is not a matcher: write label=value, label!=value, label=~regex or label!~regex"
            )
        name, op, value = found.groups()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        matcher = cls(name, op, value)  # type: ignore[arg-type]
        if op in ("=~", "!~"):
            try:
                _compiled(value)
            except re.error as exc:
                raise InvalidMatcher(f"`{text}`: the regular expression is invalid ({exc})") from None
        return matcher

    def matches(self, labels: Mapping[str, str]) -> bool:
        actual = labels.get(self.name, "")
        if self.op == "=":
            return actual == self.value
        if self.op == "!=":
            return actual != self.value
        hit = _compiled(self.value).fullmatch(actual) is not None
        return hit if self.op == "=~" else not hit

    def to_json(self) -> dict[str, str]:
        return {"name": self.name, "op": self.op, "value": self.value}

    @classmethod
    def from_json(cls, data: Mapping[str, str]) -> Matcher:
        return cls(data["name"], data["op"], data["value"])  # type: ignore[arg-type]

    def __str__(self) -> str:
        return f"{self.name}{self.op}{self.value}"


def matches_all(matchers: tuple[Matcher, ...] | list[Matcher], labels: Mapping[str, str]) -> bool:
    """True when every matcher holds (an empty list matches nothing: silences must be explicit)."""
    return bool(matchers) and all(m.matches(labels) for m in matchers)


@dataclass(frozen=True)
class SilenceView:
    id: int
    matchers: tuple[Matcher, ...]
    starts_at: datetime
    ends_at: datetime
    created_by: str
    reason: str
    ended_at: datetime | None = None
    ended_by: str | None = None

    @property
    def ref(self) -> str:
        return f"SIL-{self.id}"

    def active(self, now: datetime) -> bool:
        return self.ended_at is None and self.starts_at <= now < self.ends_at


@dataclass(frozen=True)
class AlertView:
    """Everything a message about one alert shows."""

    id: int
    dedup_key: str
    source: str
    severity: Severity
    environment: str
    system: str
    title: str
    summary: str
    labels: Mapping[str, str]
    status: AlertStatus
    occurrences: int
    first_seen: datetime
    last_seen: datetime
    channel: str
    mention: str | None = None
    acknowledged_by: str | None = None
    acknowledged_at: datetime | None = None
    resolved_by: str | None = None
    resolved_at: datetime | None = None
    silence: SilenceView | None = None
    escalated_to: str | None = None
    escalated_at: datetime | None = None
    incident_url: str | None = None
    retry: RetryTarget | None = None
    retry_requested_by: str | None = None
    in_digest: bool = False

    @property
    def ref(self) -> str:
        return f"ALR-{self.id}"

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    def label_set(self) -> dict[str, str]:
        return label_set(
            source=self.source,
            severity=self.severity.value,
            environment=self.environment,
            system=self.system,
            labels=self.labels,
        )


@dataclass(frozen=True)
class DigestView:
    """A storm digest: alerts folded into one message per channel, updated in place."""

    id: int
    channel: str
    opened_at: datetime
    alerts: tuple[AlertView, ...] = field(default_factory=tuple)  # the first ones, open first
    total: int = 0
    open_count: int = 0
