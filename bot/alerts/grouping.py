"""When an alert's message is posted, updated, repeated and escalated: pure timing rules.

Alertmanager semantics applied per dedup key:
- group_wait: a new alert waits this long before its first post, so that a burst of triggers
  becomes one message and an alert resolved within the wait is never posted at all;
- group_interval: after the first post, new triggers (the occurrence count) update the message
  in place at most once per group_interval; status changes (acknowledge, resolve, silence,
  escalation) update it at once;
- repeat_interval: a still-firing, unacknowledged alert is re-notified this often;
- escalation: a critical alert not acknowledged within `escalation.after` of its first
  notification mentions the escalation group, once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.config.alerts import AlertsConfig
from bot.domain.alerts import Severity

__all__ = ["GroupingRules"]


@dataclass(frozen=True)
class GroupingRules:
    group_wait: timedelta
    group_interval: timedelta
    repeat_interval: timedelta
    escalation_after: timedelta | None = None
    digest_update_interval: timedelta = timedelta(seconds=10)

    @classmethod
    def from_config(cls, config: AlertsConfig) -> GroupingRules:
        return cls(
            group_wait=config.group_wait,
            group_interval=config.group_interval,
            repeat_interval=config.repeat_interval,
            escalation_after=config.escalation.after if config.escalation else None,
            digest_update_interval=config.storm.digest_update_interval,
        )

    def first_flush(self, first_seen: datetime) -> datetime:
        """A new alert's first post is due group_wait after its first trigger."""
        return first_seen + self.group_wait

    def next_flush_after_trigger(
        self,
        *,
        now: datetime,
        scheduled: datetime | None,
        last_rendered_at: datetime | None,
        in_digest: bool,
    ) -> datetime:
        """A repeated trigger changes only the count: keep a flush already scheduled, else batch.

        A digest throttles its own updates (digest_update_interval), so its alerts are due now.
        """
        if scheduled is not None:
            return scheduled
        if in_digest or last_rendered_at is None:
            return now
        return max(now, last_rendered_at + self.group_interval)

    def repeat_at(self, notified_at: datetime) -> datetime:
        return notified_at + self.repeat_interval

    def escalate_at(self, notified_at: datetime, severity: Severity) -> datetime | None:
        if self.escalation_after is None or severity is not Severity.CRITICAL:
            return None
        return notified_at + self.escalation_after

    def digest_render_due(self, last_rendered_at: datetime | None, now: datetime) -> datetime:
        """When a digest may next be updated (at once if it never was)."""
        if last_rendered_at is None:
            return now
        return max(now, last_rendered_at + self.digest_update_interval)
