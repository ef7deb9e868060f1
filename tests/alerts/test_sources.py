"""Alert events from workflows, rotations, iconik webhooks and near-expiry checks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.alerts.sources import (
    credential_renewed,
    iconik_job_failure,
    near_expiry,
    rotation_failure,
    rotation_recovered,
    workflow_failure,
    workflow_recovered,
)
from bot.domain.alerts import Severity

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
ICONIK_FAILED = {
    "system_domain_id": "d1", "object_id": "job-9", "user_id": "u1", "realm": "entity", "operation": "update",
    "request_id": "r1", "event_type": "jobs",
    "data": {"id": "job-9", "status": "FAILED", "type": "TRANSCODE", "title": "Transcode clip.mov",
             "error_message": "codec not supported", "object_type": "assets", "object_id": "a-1",
             "unknown_vendor_field": True},
}  # fmt: skip


def test_workflow_failures_of_one_target_share_a_key_and_retry_their_request():
    first = workflow_failure(request_ref="PRM-41", action="promotion", target="orders-flow", environment="prod",
                             error="OTDS answered 500", system="opentext")  # fmt: skip
    second = workflow_failure(request_ref="PRM-42", action="promotion", target="orders-flow", environment="prod",
                              error="timeout", system="opentext")  # fmt: skip
    assert first.dedup_key == second.dedup_key == "workflow:promotion:orders-flow@prod"
    assert second.retry is not None and second.retry.ref == "PRM-42" and second.system == "opentext"
    resolved = workflow_recovered(action="promotion", target="orders-flow", environment="prod")
    assert resolved.action == "resolve" and resolved.dedup_key == first.dedup_key


def test_rotation_failures_say_the_current_secret_still_works():
    event = rotation_failure(request_ref="ROT-3", credential="iconik/app-token", environment="prod", step="test",
                             error="401 with the pending token")  # fmt: skip
    assert "untouched" in event.summary and event.system == "iconik" and "at test" in event.title
    assert rotation_recovered(credential="iconik/app-token", environment="prod").dedup_key == event.dedup_key


def test_failed_iconik_jobs_become_alerts_grouped_by_job_type():
    event = iconik_job_failure(ICONIK_FAILED, environment="prod")
    assert event is not None
    assert event.dedup_key == "iconik-job:prod:transcode" and "codec not supported" in event.summary
    assert event.retry is not None and (event.retry.kind, event.retry.ref) == ("iconik_job", "job-9")


def test_other_iconik_events_raise_nothing():
    finished = {**ICONIK_FAILED, "data": {**ICONIK_FAILED["data"], "status": "FINISHED"}}
    assert iconik_job_failure(finished, environment="prod") is None
    assert iconik_job_failure({**ICONIK_FAILED, "event_type": "assets"}, environment="prod") is None
    assert iconik_job_failure({"garbage": True}, environment="prod") is None


def test_near_expiry_grows_more_severe_as_the_date_nears():
    def at(days: float):
        return near_expiry(
            credential="canto/api", environment="prod", expires_at=NOW + timedelta(days=days), now=NOW
        )

    assert at(45) is None
    assert at(20).severity is Severity.WARNING and "expires in 20d" in at(20).title
    assert at(3).severity is Severity.ERROR
    assert at(-1).severity is Severity.CRITICAL and "expired 1d ago" in at(-1).title
    assert (
        at(20).dedup_key
        == at(3).dedup_key
        == credential_renewed(credential="canto/api", environment="prod").dedup_key
    )
