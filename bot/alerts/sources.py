"""Alert events from opsgate's own failures: workflows, rotations, iconik jobs, near expiry.

Pure builders: callers pass what happened and `await service.ingest(event)`. Dedup keys name the
thing that fails (a target in an environment, a credential, an iconik job type), so repeated
failures add to one alert, and the matching `*_recovered` event resolves it.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from bot.domain.alerts import AlertEvent, AlertSource, RetryTarget, Severity
from bot.domain.durations import format_duration

__all__ = [
    "IconikJobWebhook",
    "credential_renewed",
    "iconik_job_failure",
    "near_expiry",
    "rotation_failure",
    "rotation_recovered",
    "workflow_failure",
    "workflow_recovered",
    "workflow_resumed",
]

NEAR_EXPIRY_WARNING = timedelta(days=30)  # Azure Key Vault's default near-expiry notice
NEAR_EXPIRY_ERROR = timedelta(days=7)


def _key(*parts: str) -> str:
    return ":".join(parts)[:255]


def workflow_failure(
    *,
    request_ref: str,
    action: str,
    target: str,
    environment: str,
    error: str,
    system: str | None = None,
    severity: Severity = Severity.ERROR,
) -> AlertEvent:
    """A change request (promotion, release, archive...) failed; Retry re-runs the request."""
    return AlertEvent(
        dedup_key=_key("workflow", action, f"{target}@{environment}"),
        source=AlertSource.WORKFLOW.value,
        severity=severity,
        environment=environment[:64],
        system=(system or action)[:128],
        title=f"{action.capitalize()} of {target} failed in {environment}"[:200],
        summary=f"{request_ref}: {error}"[:2800],
        labels={"action": action[:255], "target": target[:255]},
        retry=RetryTarget(kind="request", ref=request_ref, environment=environment),
    )


def workflow_recovered(*, action: str, target: str, environment: str) -> AlertEvent:
    """A later run of the same change succeeded: resolve the failure alert."""
    return AlertEvent(
        dedup_key=_key("workflow", action, f"{target}@{environment}"),
        action="resolve",
        source=AlertSource.WORKFLOW.value,
        environment=environment[:64],
        system=action[:128],
    )


def workflow_resumed(
    *, request_ref: str, action: str, target: str, environment: str, step: str
) -> AlertEvent:
    """A worker stopped during a request's execution and another took it over at its recorded step."""
    return AlertEvent(
        dedup_key=_key("resumed", request_ref, step),
        source=AlertSource.WORKFLOW.value,
        severity=Severity.INFO,
        environment=environment[:64],
        system=action[:128],
        title=f"{request_ref} resumed after a worker stopped during {step}"[:200],
        summary=(
            f"The worker running the {action} of {target} in {environment} stopped during step {step} "
            "(crash, kill or lost host). Another worker took the job over when its lease ran out and "
            "continued from the recorded step; earlier steps were not repeated."
        )[:2800],
        labels={"action": action[:255], "target": target[:255]},
    )


def rotation_failure(
    *,
    request_ref: str,
    credential: str,
    environment: str,
    step: str,
    error: str,
    system: str | None = None,
    severity: Severity = Severity.ERROR,
) -> AlertEvent:
    """A rotation step (create, set, test, finish) failed; CURRENT stays untouched and working."""
    return AlertEvent(
        dedup_key=_key("rotation", f"{credential}@{environment}"),
        source=AlertSource.ROTATION.value,
        severity=severity,
        environment=environment[:64],
        system=(system or credential.split("/")[0])[:128],
        title=f"Rotation of {credential} failed at {step} in {environment}"[:200],
        summary=f"{request_ref}: {error}. The current secret is untouched and still in use."[:2800],
        labels={"credential": credential[:255]},
        retry=RetryTarget(kind="request", ref=request_ref, environment=environment),
    )


def rotation_recovered(*, credential: str, environment: str) -> AlertEvent:
    return AlertEvent(
        dedup_key=_key("rotation", f"{credential}@{environment}"),
        action="resolve",
        source=AlertSource.ROTATION.value,
        environment=environment[:64],
    )


class IconikJob(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: str
    status: str = ""
    type: str = "job"
    title: str | None = None
    error_message: str | None = None
    object_type: str | None = None
    object_id: str | None = None


class IconikJobWebhook(BaseModel):
    """iconik's webhook delivery `{system_domain_id, object_id, realm, operation, data, event_type}`."""

    model_config = ConfigDict(extra="ignore")

    event_type: str
    object_id: str | None = None
    realm: str | None = None
    operation: str | None = None
    request_id: str | None = None
    data: IconikJob | None = None


def iconik_job_failure(payload: Mapping[str, Any], *, environment: str) -> AlertEvent | None:
    """A FAILED iconik job from a jobs webhook, else None (other events, other statuses).

    Failures are grouped per job type and environment; Retry re-runs the latest failed job.
    """
    try:
        hook = IconikJobWebhook.model_validate(payload)
    except ValidationError:
        return None
    job = hook.data
    if hook.event_type != "jobs" or job is None or job.status.upper() != "FAILED":
        return None
    what = job.title or job.id
    on = f" on {job.object_type} {job.object_id}" if job.object_type and job.object_id else ""
    return AlertEvent(
        dedup_key=_key("iconik-job", environment, job.type.lower()),
        source=AlertSource.ICONIK.value,
        severity=Severity.ERROR,
        environment=environment[:64],
        system="iconik",
        title=f"iconik {job.type.lower()} jobs are failing in {environment}"[:200],
        summary=f"Job {what}{on} failed: {job.error_message or 'no error message given'}"[:2800],
        labels={"job_type": job.type.lower()[:255]},
        retry=RetryTarget(kind="iconik_job", ref=job.id[:128], environment=environment),
    )


def near_expiry(
    *,
    credential: str,
    environment: str,
    expires_at: datetime,
    now: datetime,
    system: str | None = None,
    warn_before: timedelta = NEAR_EXPIRY_WARNING,
) -> AlertEvent | None:
    """A credential expiring within `warn_before` (warning), within 7 days (error), or already
    expired (critical); None while it is further out."""
    left = expires_at - now
    if left > warn_before:
        return None
    if left <= timedelta(0):
        severity, when = Severity.CRITICAL, f"expired {format_duration(-left)} ago"
    else:
        severity = Severity.ERROR if left <= NEAR_EXPIRY_ERROR else Severity.WARNING
        hours = int(left.total_seconds() // 3600)
        when = f"expires in {format_duration(timedelta(hours=hours))}" if hours else "expires within the hour"
    return AlertEvent(
        dedup_key=_key("expiry", f"{credential}@{environment}"),
        source=AlertSource.EXPIRY.value,
        severity=severity,
        environment=environment[:64],
        system=(system or credential.split("/")[0])[:128],
        title=f"{credential} {when} ({environment})"[:200],
        summary=f"Rotate it before {expires_at:%Y-%m-%d %H:%M} UTC; the rotation resolves this alert."[:2800],
        labels={"credential": credential[:255]},
    )


def credential_renewed(*, credential: str, environment: str) -> AlertEvent:
    return AlertEvent(
        dedup_key=_key("expiry", f"{credential}@{environment}"),
        action="resolve",
        source=AlertSource.EXPIRY.value,
        environment=environment[:64],
    )
