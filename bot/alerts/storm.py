"""Storm control: at most `per_channel_rate` new messages per second per channel.

Each channel has a pacing row holding when its next new message may be posted. When the alerts
due in a channel exceed the free slots, they fold into one digest message per channel, which is
updated in place (chat.update is not bound by the per-channel posting rate) and stays open for
`storm.window` after its last fold. A single alert over the budget waits for the next slot
instead, so two alerts a second apart do not make a "storm" of one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

__all__ = ["PostPacer", "StormPlan", "plan_channel"]


@dataclass(frozen=True)
class PostPacer:
    """Slots one `1/rate` seconds apart; no bursts, so Slack's limit is never reached."""

    rate: float

    @property
    def spacing(self) -> timedelta:
        return timedelta(seconds=1.0 / self.rate)

    def free(self, next_post_at: datetime | None, now: datetime) -> bool:
        return next_post_at is None or next_post_at <= now

    def take(self, next_post_at: datetime | None, now: datetime) -> datetime:
        """Spend the slot at `now`; returns the next free slot."""
        if not self.free(next_post_at, now):
            raise ValueError("no free posting slot")
        return now + self.spacing


@dataclass(frozen=True)
class StormPlan:
    """For one channel in one pass: how many alerts to post, fold or defer (in due order)."""

    post: int
    fold: int
    defer: int


def plan_channel(*, due: int, slot_free: bool, digest_open: bool) -> StormPlan:
    """Post while there is a slot, fold the rest into the digest; defer a lone overflow."""
    if due <= 0:
        return StormPlan(0, 0, 0)
    if digest_open:
        return StormPlan(0, due, 0)
    post = 1 if slot_free else 0
    rest = due - post
    if rest == 1:
        return StormPlan(post, 0, 1)
    return StormPlan(post, rest, 0)
