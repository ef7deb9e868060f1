"""The `credentials:` section of the YAML file: what opsgate rotates, when, and who owns it.

Kept apart from `commands/rotate.py` so that `bot/config/opsgate.py` can use these models without
importing the rotation workflow (which itself reads the settings). Example::

    credentials:
      - name: orders-edi-prod
        environment: prod
        credential_id: orders-edi-prod-client     # the OpenText credential
        owner: U024BE7LH                          # Slack user answerable for it
        owner_channel: C0ORDERS                   # where warnings go
        schedule: "0 3 * * 1"                     # cron (UTC) or an interval such as 90d
        rotation_window: 4h                       # optional; AWS-style defaults otherwise
        grace_period: 24h                         # previous secret stays valid this long
        store: local                              # local (encrypted DB rows) or vault
        expiry_warnings_days: [30, 7, 1]

Schedules follow AWS Secrets Manager: every occurrence opens a rotation window (UTC); a
credential is due while a window is open and it has not been rotated since the window opened.
A window that passes unused (opsgate down, request rejected) is not made up for: the rotation
waits for the next window.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from croniter import croniter
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    field_validator,
)

from bot.domain.durations import Duration, format_duration, parse_duration

__all__ = [
    "MAX_GRACE_PERIOD",
    "CredentialConfig",
    "Credentials",
    "RotationSchedule",
    "Schedule",
    "StoreKind",
]

StoreKind = Literal["local", "vault"]

# OpenText accepts grace_seconds up to 30 days (docs/opentext-api.md).
MAX_GRACE_PERIOD = timedelta(days=30)
MIN_INTERVAL = timedelta(hours=1)
ONE_DAY = timedelta(days=1)
SUB_DAILY_DEFAULT_WINDOW = timedelta(hours=1)


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("rotation schedules need timezone-aware datetimes")
    return moment.astimezone(UTC)


def _next_midnight(moment: datetime) -> datetime:
    return datetime(moment.year, moment.month, moment.day, tzinfo=UTC) + ONE_DAY


def _midnight(moment: datetime) -> datetime:
    return datetime(moment.year, moment.month, moment.day, tzinfo=UTC)


@dataclass(frozen=True)
class RotationSchedule:
    """A cron expression (5 fields, UTC) or a fixed interval counted from the last rotation.

    Each occurrence opens a window. Default window length, as in AWS Secrets Manager: one hour
    for schedules that fire more than once a day, otherwise until the end of that UTC day. A
    window never reaches into the next one.
    """

    cron: str | None = None
    interval: timedelta | None = None

    @classmethod
    def parse(cls, value: Any) -> RotationSchedule:
        """Accept a schedule, a cron string, a duration string ("90d") or seconds."""
        if isinstance(value, RotationSchedule):
            return value
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("@") or len(text.split()) == 5:
                if not croniter.is_valid(text):
                    raise ValueError(f"{value!r} is not a valid cron expression (5 fields, UTC)")
                return cls(cron=text)
        try:
            interval = parse_duration(value)
        except ValueError:
            raise ValueError(
                f"{value!r} is neither a cron expression (5 fields: m h dom mon dow, UTC) "
                "nor an interval such as 90d or 12h"
            ) from None
        if interval < MIN_INTERVAL:
            raise ValueError(
                f"rotating more often than every {format_duration(MIN_INTERVAL)} is not supported"
            )
        return cls(interval=interval)

    def __str__(self) -> str:
        if self.cron is not None:
            return self.cron
        assert self.interval is not None
        return format_duration(self.interval)

    def describe(self) -> str:
        """For people: "cron 0 3 * * 1 (UTC)" or "every 90d"."""
        if self.cron is not None:
            return f"cron {self.cron} (UTC)"
        return f"every {self}"

    # --- windows -------------------------------------------------------------------------------

    def _sub_daily(self, around: datetime) -> bool:
        if self.interval is not None:
            return self.interval < ONE_DAY
        assert self.cron is not None
        first: datetime = croniter(self.cron, around).get_next(datetime)
        second: datetime = croniter(self.cron, first).get_next(datetime)
        return second - first < ONE_DAY

    def _following_start(self, start: datetime) -> datetime:
        if self.interval is not None:
            return self._anchor(start + self.interval) if self.interval >= ONE_DAY else start + self.interval
        assert self.cron is not None
        nxt: datetime = croniter(self.cron, start).get_next(datetime)
        return nxt

    def _anchor(self, due: datetime) -> datetime:
        # AWS rate() windows in days start at midnight UTC of the day the rotation falls due.
        assert self.interval is not None
        return _midnight(due) if self.interval >= ONE_DAY else due

    def window_end(self, start: datetime, length: timedelta | None = None) -> datetime:
        """When the window opened at `start` closes (configured length or the AWS default)."""
        start = _utc(start)
        if length is None:
            end = start + SUB_DAILY_DEFAULT_WINDOW if self._sub_daily(start) else _next_midnight(start)
        else:
            end = start + length
        return min(end, self._following_start(start))

    def _interval_start(self, last_rotated: datetime, k: int) -> datetime:
        assert self.interval is not None
        return self._anchor(last_rotated + k * self.interval)

    def latest_start(self, last_rotated: datetime | None, now: datetime) -> datetime | None:
        """The most recent window start at or before `now` (None: no window has opened yet)."""
        now = _utc(now)
        if self.cron is not None:
            # +1 µs so a window opening exactly now counts as opened.
            start: datetime = croniter(self.cron, now + timedelta(microseconds=1)).get_prev(datetime)
            return _utc(start)
        if last_rotated is None:
            return None
        assert self.interval is not None
        last = _utc(last_rotated)
        k = max(1, int((now - last) // self.interval))
        best: datetime | None = None
        for candidate in (k - 1, k, k + 1):
            if candidate >= 1 and self._interval_start(last, candidate) <= now:
                best = self._interval_start(last, candidate)
        return best

    def open_window(
        self, last_rotated: datetime | None, now: datetime, length: timedelta | None = None
    ) -> tuple[datetime, datetime] | None:
        """The window that is open now and in which no rotation happened yet, if any."""
        now = _utc(now)
        start = self.latest_start(last_rotated, now)
        if start is None:
            return None
        end = self.window_end(start, length)
        if not start <= now < end:
            return None
        if last_rotated is not None and _utc(last_rotated) >= start:
            return None
        return start, end

    def next_start(self, last_rotated: datetime | None, now: datetime) -> datetime:
        """The next window start strictly after `now`."""
        now = _utc(now)
        if self.cron is not None:
            nxt: datetime = croniter(self.cron, now).get_next(datetime)
            return _utc(nxt)
        if last_rotated is None:
            return now
        latest = self.latest_start(last_rotated, now)
        return (
            self._following_start(latest)
            if latest is not None
            else self._interval_start(_utc(last_rotated), 1)
        )


Schedule = Annotated[
    RotationSchedule,
    PlainValidator(RotationSchedule.parse),
    PlainSerializer(str, return_type=str),
]


class CredentialConfig(BaseModel):
    """One credential opsgate rotates: where it lives, who owns it, when and how it rotates."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(
        min_length=1,
        max_length=100,
        pattern=r"^[a-z0-9][a-z0-9._-]*$",
        description="opsgate's name for it; also the secret's name in the store",
    )
    environment: str = Field(min_length=1, description="environment whose OpenText holds the credential")
    credential_id: str = Field(min_length=1, description="the OpenText credential id")
    owner: str = Field(min_length=1, description="Slack user ID answerable for the credential")
    owner_channel: str | None = Field(default=None, description="Slack channel for warnings")
    description: str = ""
    schedule: Schedule
    rotation_window: Duration | None = Field(
        default=None, description="window length; default 1h for sub-daily schedules, else end of UTC day"
    )
    grace_period: Duration = timedelta(hours=24)
    validity_days: int | None = Field(default=None, ge=1, le=730, description="OpenText default: 365")
    store: StoreKind = "local"
    expiry_warnings_days: list[int] = Field(default_factory=lambda: [30, 7, 1])

    @field_validator("grace_period")
    @classmethod
    def _grace_in_range(cls, value: timedelta) -> timedelta:
        if not timedelta(0) <= value <= MAX_GRACE_PERIOD:
            raise ValueError(f"must be between 0s and {format_duration(MAX_GRACE_PERIOD)} (OpenText's limit)")
        return value

    @field_validator("rotation_window")
    @classmethod
    def _window_positive(cls, value: timedelta | None) -> timedelta | None:
        if value is not None and value <= timedelta(0):
            raise ValueError("must be longer than 0s")
        return value

    @field_validator("expiry_warnings_days")
    @classmethod
    def _warning_days(cls, value: list[int]) -> list[int]:
        if any(day < 1 for day in value):
            raise ValueError("warning days must be 1 or more")
        return sorted(set(value), reverse=True)


def _names_unique(credentials: list[CredentialConfig]) -> list[CredentialConfig]:
    seen: dict[str, int] = {}
    for index, credential in enumerate(credentials):
        if credential.name in seen:
            raise ValueError(
                f"the name {credential.name!r} is used by items {seen[credential.name]} and {index}; names must be unique"
            )
        seen[credential.name] = index
    return credentials


Credentials = Annotated[list[CredentialConfig], AfterValidator(_names_unique)]
