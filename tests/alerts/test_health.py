"""Connector health checks: down after N failures in a row, resolved on recovery, one run per interval."""

from __future__ import annotations

import asyncio

from bot.alerts.health import run_health_checks


class FlakyProbe:
    """A probe that fails while `down` is set; counts its calls."""

    def __init__(self) -> None:
        self.down = False
        self.calls = 0

    async def __call__(self) -> None:
        self.calls += 1
        if self.down:
            raise ConnectionError("iconik answered 503 Service Unavailable")


async def test_a_connector_is_down_after_n_failures_and_auto_resolved_on_recovery(harness):
    probe = FlakyProbe()
    harness.probes["iconik:prod"] = probe
    harness.reconfigure(health_check={"interval": "1m", "failures_before_down": 3}, group_wait="0s")
    probe.down = True
    await harness.run_for(120, step=60)  # two failures: not down yet
    assert harness.slack.posts("C_ALERTS") == [] and await harness.alerts() == []
    await harness.step(60)
    [alert] = await harness.alerts()
    assert (alert.dedup_key, alert.system, alert.environment, alert.source) == (
        "health:iconik:prod", "iconik", "prod", "health",
    )  # fmt: skip
    await harness.step(1)
    [post] = harness.slack.posts("C_ALERTS")
    assert "iconik is not answering in prod" in post.text
    assert "3 health checks in a row failed" in harness.slack.shown(post)
    assert "503 Service Unavailable" in harness.slack.shown(post)
    await harness.step(59)  # still failing: counted on the same alert
    assert (await harness.alert(alert.id)).occurrences == 2
    probe.down = False
    await harness.step(60)
    assert (await harness.alert(alert.id)).status == "resolved"
    assert "Resolved" in harness.slack.shown(harness.slack.posts("C_ALERTS")[0])


async def test_a_single_failure_between_successes_raises_nothing(harness):
    probe = FlakyProbe()
    harness.probes["canto:test"] = probe
    harness.reconfigure(health_check={"interval": "1m", "failures_before_down": 2})
    for down in (True, False, True, False, True, False):
        probe.down = down
        await harness.step(60)
    assert await harness.alerts() == []


async def test_checks_run_once_per_interval_however_often_the_worker_ticks(harness):
    probe = FlakyProbe()
    harness.probes["opentext:prod"] = probe
    harness.reconfigure(health_check={"interval": "5m"})
    await harness.run_for(600, step=20)  # 30 ticks over 10 minutes
    assert probe.calls == 2
    other = harness.service
    results = await run_health_checks(other, {"opentext:prod": probe}, force=True)
    assert [r.ok for r in results] == [True] and probe.calls == 3


async def test_a_probe_that_hangs_counts_as_a_failure(harness):
    async def hangs() -> None:
        await asyncio.Event().wait()

    harness.reconfigure(health_check={"timeout": "0s", "failures_before_down": 1})
    [result] = await run_health_checks(harness.service, {"confluence:prod": hangs})
    assert not result.ok and result.down and "no answer within" in (result.error or "")
