"""The `alerts:` section of the YAML configuration.

Example:

    alerts:
      default_channel: "#integration-alerts"
      routes:
        - match: {env: prod, system: opentext}
          channel: "#opentext-oncall"
          mention: S0123ONCALL          # a user group id (S...) pings; a handle is shown as @handle
          min_severity: error
        - match_re: {system: "canto|iconik"}
          channel: "#dam-alerts"
      group_wait: 30s
      group_interval: 5m
      repeat_interval: 4h
      escalation: {after: 15m, group: S0456LEADS}
      ingest_token: ${OPSGATE_ALERTS_TOKEN}
      health_check: {interval: 1m, failures_before_down: 3}
      per_channel_rate: 1.0
"""

from __future__ import annotations

import re
from datetime import timedelta

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from bot.domain.alerts import Severity
from bot.domain.durations import Duration

__all__ = ["AlertRoute", "AlertsConfig", "EscalationConfig", "HealthCheckConfig", "StormConfig"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AlertRoute(_Strict):
    """Alerts whose labels match (all of `match` exactly, all of `match_re` as full regexes) and
    whose severity is at least `min_severity` go to `channel`, mentioning `mention`."""

    match: dict[str, str] = Field(default_factory=dict)
    match_re: dict[str, str] = Field(default_factory=dict)
    channel: str = Field(min_length=1, max_length=64)
    mention: str | None = Field(default=None, max_length=64)
    min_severity: Severity = Severity.INFO

    @field_validator("match_re")
    @classmethod
    def _regexes_compile(cls, value: dict[str, str]) -> dict[str, str]:
        for name, pattern in value.items():
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"{name}: {pattern!r} is not a regular expression ({exc})") from None
        return value


class EscalationConfig(_Strict):
    """A critical alert nobody acknowledged within `after` re-notifies and mentions `group`."""

    after: Duration = timedelta(minutes=15)
    group: str = Field(min_length=1, max_length=64)

    @field_validator("after")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("must be longer than 0s")
        return value


class HealthCheckConfig(_Strict):
    """Connector probes per vendor and environment; down after N failures in a row."""

    interval: Duration = timedelta(minutes=1)
    failures_before_down: int = Field(default=3, ge=1, le=100)
    timeout: Duration = timedelta(seconds=10)
    severity: Severity = Severity.ERROR


class StormConfig(_Strict):
    """Beyond `per_channel_rate`, new alerts fold into one digest message per channel."""

    window: Duration = Field(
        default=timedelta(minutes=5), description="a digest stays open this long after its last fold"
    )
    digest_update_interval: Duration = timedelta(seconds=10)
    max_listed: int = Field(default=20, ge=1, le=45)


class AlertsConfig(_Strict):
    default_channel: str = Field(default="#alerts", min_length=1, max_length=64)
    default_mention: str | None = Field(default=None, max_length=64)
    routes: list[AlertRoute] = Field(default_factory=list)
    group_wait: Duration = timedelta(seconds=30)
    group_interval: Duration = timedelta(minutes=5)
    repeat_interval: Duration = timedelta(hours=4)
    escalation: EscalationConfig | None = None
    ingest_token: SecretStr | None = None
    health_check: HealthCheckConfig = Field(default_factory=HealthCheckConfig)
    per_channel_rate: float = Field(default=1.0, gt=0, le=10)
    storm: StormConfig = Field(default_factory=StormConfig)
    max_silence: Duration = timedelta(days=30)

    @model_validator(mode="after")
    def _intervals(self) -> AlertsConfig:
        problems = []
        if self.group_wait < timedelta(0):
            problems.append("group_wait: must not be negative")
        for name in ("group_interval", "repeat_interval", "max_silence"):
            if getattr(self, name) <= timedelta(0):
                problems.append(f"{name}: must be longer than 0s")
        if problems:
            raise ValueError("; ".join(problems))
        return self
