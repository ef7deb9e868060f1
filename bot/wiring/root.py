"""Production wiring: connectors, secret stores, workflows, alerts, webhooks and schedules.

`wire(service, ...)` turns a bare `OpsgateService` into the full bot. It is the one place that
knows which use case answers which Slack action, HTTP route and scheduled duty, so `serve`,
`worker`, the demo and the end-to-end tests all run the same system.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx
from slack_bolt.async_app import AsyncAck
from sqlalchemy.ext.asyncio import AsyncSession

from bot.alerts.service import AlertService
from bot.alerts.sources import rotation_failure, workflow_failure, workflow_recovered, workflow_resumed
from bot.blocks.home import AlertSummary
from bot.blocks.reply import Reply
from bot.config.opsgate import OpsgateConfig, Settings
from bot.db.transaction import Transaction
from bot.domain.errors import DomainError
from bot.domain.policy import Action
from bot.domain.requests import ChangeRequest
from bot.ids import AlertActionId
from bot.jobs.announcer import EXECUTE_JOB
from bot.jobs.audit_digests import audit_digest_duty
from bot.jobs.queue import JobContext
from bot.listeners.context import SlackContext
from bot.payloads import AlertActionValue
from bot.web.alerts import add_alert_routes
from bot.web.webhooks import WebhookDelivery, add_webhook_routes, plan_webhook_actions
from bot.wiring.deps import RequestHistoryReader
from bot.wiring.service import OpsgateService
from commands.alerts import AlertCommands
from commands.docs import DocsCommands, alert_summary
from commands.lifecycle import ArchiveWorkflow, archive_specs, sweep_expiring_assets
from commands.parsing import OpsArgs
from commands.promote import PromotionWorkflow
from commands.release import ReleaseWorkflow
from commands.rotate import (
    RotationWorkflow,
    due_rotations,
    expiry_warnings,
    last_rotated_from,
    publish_ownership_matrix,
    revoke_due_previous,
)
from commands.workflow import Workflow, WorkflowFailed
from connectors.registry import ConnectorRegistry
from connectors.secrets import LocalSecretStore, SecretStore, VaultKV2Store, VaultSettings

__all__ = ["ALERT_ACTION_JOB", "WEBHOOK_JOB", "Wiring", "wire"]

log = logging.getLogger("opsgate.wiring")

ALERT_ACTION_JOB = "alert.action"
WEBHOOK_JOB = "webhook.action"
SYSTEM_REQUESTER = "opsgate"
EXPIRY_NOTICE_DAYS = 14


@dataclass
class Wiring:
    registry: ConnectorRegistry
    stores: dict[str, SecretStore]
    alerts: AlertService
    alert_commands: AlertCommands
    docs: DocsCommands
    workflows: dict[Action, Workflow] = field(default_factory=dict)

    async def aclose(self) -> None:
        for store in self.stores.values():
            await store.aclose()
        await self.registry.aclose()


def build_stores(service: OpsgateService, *, env: dict[str, str] | None = None) -> dict[str, SecretStore]:
    deps = service.runtime.deps
    stores: dict[str, SecretStore] = {
        "local": LocalSecretStore(
            deps.sessions, keys=deps.secret_key, fingerprints=deps.fingerprinter, clock=deps.clock
        )
    }
    environment = env if env is not None else dict(os.environ)
    vault = VaultSettings.from_env(environment)
    if vault is not None:
        stores["vault"] = VaultKV2Store(vault, fingerprints=deps.fingerprinter)
    return stores


async def wire(
    service: OpsgateService,
    settings: Settings,
    config: OpsgateConfig,
    *,
    transport_overrides: dict[str, httpx.AsyncBaseTransport] | None = None,
    env: dict[str, str] | None = None,
) -> Wiring:
    """Connect everything; call before the web app starts (routes are added here)."""
    rt = service.runtime
    deps = rt.deps
    clock = deps.clock
    registry = ConnectorRegistry(config, transport_overrides=transport_overrides)
    stores = build_stores(service, env=env)
    workflows: dict[Action, Workflow] = {
        Action.PROMOTION: PromotionWorkflow(registry, config, clock=clock),
        Action.ROTATION: RotationWorkflow(registry, config, stores, deps.fingerprinter, clock=clock),
        Action.RELEASE: ReleaseWorkflow(
            registry.canto, registry.iconik, registry.confluence, config, clock=clock
        ),
    }
    if config.archive is not None:
        workflows[Action.ARCHIVE] = ArchiveWorkflow(
            registry.canto, registry.iconik, config.archive, clock=clock
        )
    rt.executor.workflows.update(workflows)
    service.context.requests.workflows = {**service.context.requests.workflows, **workflows}

    alerts = AlertService(
        deps.sessions,
        clock,
        config.alerts,
        rt.outbox,
        channel_ids=config.slack.channels,
        fingerprinter=deps.fingerprinter,
        probes=registry.probes(),
        wake=rt.kick,
    )
    docs = DocsCommands(
        config,
        registry.confluence,
        registry.opentext,
        RequestHistoryReader(deps.database, deps.approvals),
        clock,
    )
    alert_commands = AlertCommands(alerts, incident_page=docs.incident_page_for_alert)
    wiring = Wiring(registry, stores, alerts, alert_commands, docs, workflows)

    async def on_failure(request: ChangeRequest, failure: WorkflowFailed) -> None:
        if request.action is Action.ROTATION:
            event = rotation_failure(
                request_ref=request.human_id,
                credential=request.target,
                environment=request.environment,
                step=failure.step,
                error=failure.reason,
            )
        else:
            event = workflow_failure(
                request_ref=request.human_id,
                action=request.action.value,
                target=request.target,
                environment=request.environment,
                error=failure.reason,
            )
        await alerts.ingest(event)

    async def on_success(request: ChangeRequest) -> None:
        await alerts.ingest(
            workflow_recovered(
                action=request.action.value, target=request.target, environment=request.environment
            )
        )

    async def on_resume(request: ChangeRequest, step: str) -> None:
        await alerts.ingest(
            workflow_resumed(
                request_ref=request.human_id,
                action=request.action.value,
                target=request.target,
                environment=request.environment,
                step=step,
            )
        )

    rt.executor.on_failure = on_failure
    rt.executor.on_success = on_success
    rt.executor.on_resume = on_resume
    service.jobs.alert_summaries = lambda user: _open_alerts(alerts)
    _register_ops(service.context, wiring)
    _register_alert_actions(service, wiring)
    token = config.alerts.ingest_token
    add_alert_routes(service.web, alerts, token.get_secret_value() if token else None)
    add_webhook_routes(
        service.web,
        settings=config.webhooks,
        sessions=deps.sessions,
        clock=clock,
        on_delivery=lambda session, delivery: _queue_webhook_actions(service, config, session, delivery),
    )
    rt.register_job(WEBHOOK_JOB, lambda job: _run_webhook_action(service, wiring, job))
    _schedule(service, config, wiring)
    from bot.wiring.onboarding import wire_onboarding  # imports commands that import this module's types

    wire_onboarding(service, wiring, config)
    from bot.asset_requests import wire_asset_requests

    wire_asset_requests(service, wiring, config)
    return wiring


async def _open_alerts(alerts: AlertService) -> list[AlertSummary]:
    views, _ = await alerts.list_alerts(limit=10)
    return [
        AlertSummary(
            id=str(a.id),
            title=a.title,
            severity=a.severity.value,
            status=a.status.value,
            count=a.occurrences,
            last_seen=a.last_seen,
        )
        for a in views
    ]


# ----------------------------------------------------------------------- /ops extras


def _register_ops(ctx: SlackContext, wiring: Wiring) -> None:
    commands = wiring.alert_commands
    docs = wiring.docs

    def reply_of(result: Any) -> Reply:
        return Reply(str(result.text), list(getattr(result, "blocks", None) or []))

    async def alerts(args: OpsArgs, user: str) -> Reply:
        return reply_of(await commands.alerts(args.filter or ""))

    async def silence(args: OpsArgs, user: str) -> Reply:
        matchers = " ".join(f"{m.label}{m.op}{m.value}" for m in args.matchers)
        duration = f"{int(args.duration.total_seconds() // 60)}m" if args.duration else ""
        return reply_of(await commands.silence(f"{matchers} {duration} {args.reason}".strip(), user=user))

    async def silences(args: OpsArgs, user: str) -> Reply:
        return reply_of(await commands.silences())

    async def unsilence(args: OpsArgs, user: str) -> Reply:
        return reply_of(await commands.unsilence(str(args.silence_id), user=user))

    async def publish_docs(args: OpsArgs, user: str) -> Reply:
        return Reply(await docs.publish_docs(args.solution))

    async def readiness(args: OpsArgs, user: str) -> Reply:
        return Reply(await docs.readiness(str(args.page)))

    for sub, handler in {
        "alerts": alerts,
        "silence": silence,
        "silences": silences,
        "unsilence": unsilence,
        "publish-docs": publish_docs,
        "readiness": readiness,
    }.items():
        ctx.extras[f"ops.{sub}"] = handler


# ------------------------------------------------------------------ alert buttons


def _register_alert_actions(service: OpsgateService, wiring: Wiring) -> None:
    ctx = service.context

    for action_id in AlertActionId:

        @service.bolt.action(action_id.value)
        async def on_alert_action(ack: AsyncAck, body: dict[str, Any], action: dict[str, Any]) -> None:
            await ack()
            value = action.get("value") or (action.get("selected_option") or {}).get("value")
            if not value:  # a link button: Slack opened the page itself
                return
            user = str((body.get("user") or {}).get("id"))
            channel = (body.get("channel") or {}).get("id") or (body.get("container") or {}).get("channel_id")
            await ctx.enqueue(
                ALERT_ACTION_JOB,
                {
                    "value": value,
                    "user_id": user,
                    "channel_id": channel,
                    "response_url": body.get("response_url"),
                },
                dedup_key=f"alert-act:{action.get('action_ts')}:{user}:{value}",
            )

    async def run_alert_action(job: JobContext) -> None:
        payload = job.payload

        async def work() -> Reply:
            value = AlertActionValue.model_validate_json(payload["value"])
            result = await wiring.alert_commands.act(value, user=str(payload["user_id"]))
            plan = getattr(result, "plan", None)
            if plan is not None and plan.target.kind == "request":
                deps = service.runtime.deps
                async with deps.database.transaction() as tx:
                    retried = await deps.approvals.retry_failed(tx, plan.target.ref, actor=plan.requested_by)
                    await _requeue_execution(tx, retried)
                service.runtime.kick()
                return Reply(f":repeat: {retried.human_id} is running again from its failed step.")
            return Reply(str(result.text))

        await service.jobs._guarded(payload, work)

    service.runtime.register_job(ALERT_ACTION_JOB, run_alert_action)


async def _requeue_execution(tx: Transaction, request: ChangeRequest) -> None:
    """Queue the request's execution job again, keeping its recorded step and state."""
    dedup_key = f"execute:{request.human_id}"
    if not await tx.jobs.requeue(dedup_key):
        await tx.jobs.enqueue(kind=EXECUTE_JOB, payload={"ref": request.human_id}, dedup_key=dedup_key,
                              request_id=request.id)  # fmt: skip


# ----------------------------------------------------------------------- webhooks


async def _queue_webhook_actions(
    service: OpsgateService, config: OpsgateConfig, session: AsyncSession, delivery: WebhookDelivery
) -> None:
    if str(delivery.source) == "canto" and (
        handler := service.runtime.extras.get("asset_requests.on_canto_delivery")
    ):
        await handler(session, delivery)  # uploads answering an asset request
    for index, planned in enumerate(plan_webhook_actions(delivery, config.webhooks.actions)):
        await service.runtime.jobs.enqueue(
            session,
            kind=WEBHOOK_JOB,
            payload={
                "action": planned.action.model_dump(mode="json"),
                "delivery": {
                    "source": str(delivery.source),
                    "delivery_id": delivery.delivery_id,
                    "event_type": delivery.event_type,
                    "object_id": delivery.object_id,
                },
            },
            dedup_key=f"webhook:{delivery.source}:{delivery.delivery_id}:{index}",
        )
    service.runtime.kick()


async def _run_webhook_action(service: OpsgateService, wiring: Wiring, job: JobContext) -> None:
    from bot.domain.alerts import AlertEvent

    action = job.payload["action"]
    delivery = job.payload["delivery"]
    kind = action.get("kind") or action.get("type")
    subject = f"{delivery.get('source')} {delivery.get('event_type') or ''} {delivery.get('object_id') or ''}".strip()
    if kind == "notify":
        channel = str(action["channel"])
        async with service.runtime.deps.sessions() as session, session.begin():
            await service.runtime.outbox.enqueue(
                session,
                conversation=channel,
                method="chat.postMessage",
                payload={"channel": channel, "text": f":bell: {subject}"},
            )
        service.runtime.kick()
    elif kind == "alert":
        await wiring.alerts.ingest(
            AlertEvent(
                dedup_key=f"webhook:{delivery.get('source')}:{delivery.get('object_id')}"[:255],
                source="webhook",
                severity=action.get("severity", "error"),
                system=str(delivery.get("source")),
                title=f"Webhook: {subject}"[:200],
            )
        )
    elif kind == "release":
        from commands.requests import release_spec

        spec = release_spec(
            service.context.config,
            asset=str(delivery.get("object_id")),
            destination=str(action["destination"]),
        )
        try:
            async with service.runtime.deps.database.transaction() as tx:
                await service.context.requests.open(
                    tx,
                    spec,
                    requester=SYSTEM_REQUESTER,
                    reason=f"Webhook: {subject}",
                    idempotency_key=f"webhook-release:{job.job_id}",
                )
        except DomainError as exc:
            log.warning("webhook release request refused", extra={"reason": str(exc)})


# ---------------------------------------------------------------------- schedules


def _schedule(service: OpsgateService, config: OpsgateConfig, wiring: Wiring) -> None:
    rt = service.runtime
    clock = rt.deps.clock

    async def alerts_tick() -> None:
        try:
            await wiring.alerts.tick()
        except Exception:
            log.exception("alert tick failed")

    async def revoke_previous() -> None:
        try:
            await revoke_due_previous(wiring.registry, config, wiring.stores, now=clock())
        except Exception:
            log.exception("revoking previous secrets failed")

    async def end_of_life() -> None:
        if config.archive is None:
            return
        try:
            canto = wiring.registry.canto(config.archive.environment)
            now = clock()
            swept = await sweep_expiring_assets(canto, within_days=EXPIRY_NOTICE_DAYS, now=now)
            # Owners are Canto users, not Slack users: one notice per owner in the alerts channel,
            # deduplicated per owner and day through the outbox.
            channel = config.slack.alerts_channel
            expired = {a.ref for a in swept.expired}
            for owner, assets in swept.by_owner().items():
                lines = [
                    f"• {a.name} (`{a.ref}`): "
                    + ("expired" if a.ref in expired else f"expires in {a.days_left(now)} day(s)")
                    for a in assets[:20]
                ]
                text = (
                    f":hourglass: Canto assets of {owner or 'no recorded owner'} at the end of their rights:\n"
                    + "\n".join(lines)
                )
                async with rt.deps.sessions() as session, session.begin():
                    await rt.outbox.enqueue(
                        session,
                        conversation=channel,
                        method="chat.postMessage",
                        payload={"channel": channel, "text": text},
                        dedup_key=f"eol:{owner}:{now:%Y%m%d}",
                    )
            rt.kick()
            for spec in archive_specs(swept, config.archive):
                try:
                    async with rt.deps.database.transaction() as tx:
                        await service.context.requests.open(
                            tx,
                            spec,
                            requester=SYSTEM_REQUESTER,
                            reason="expired asset",
                            idempotency_key=f"archive:{spec.target}:{clock():%Y%m%d}",
                        )
                except DomainError as exc:
                    log.info("archive request not opened", extra={"target": spec.target, "reason": str(exc)})
        except Exception:
            log.exception("end-of-life sweep failed")

    async def publish_docs() -> None:
        try:
            await wiring.docs.publish_environment_pages()
        except Exception:
            log.exception("publishing documentation failed")

    async def credential_duties() -> None:
        """Open scheduled rotations, warn owners of expiring credentials, refresh the matrix page."""
        if not config.credentials:
            return
        try:
            listed = []
            for environment in sorted({c.environment for c in config.credentials}):
                listed.extend(await wiring.registry.opentext(environment).list_credentials(environment))
            now = clock()
            for spec in due_rotations(config, last_rotated_from(config, listed), now):
                window = spec.parameters.get("window_start") or "first"
                try:
                    async with rt.deps.database.transaction() as tx:
                        await service.context.requests.open(
                            tx,
                            spec,
                            requester=SYSTEM_REQUESTER,
                            reason="scheduled rotation",
                            idempotency_key=f"rotation:{spec.target}:{window}",
                        )
                except DomainError as exc:
                    log.info(
                        "scheduled rotation not opened", extra={"credential": spec.target, "reason": str(exc)}
                    )
            # The outbox's dedup key makes each threshold's warning go out once per expiry date.
            for warning in expiry_warnings(config, listed, frozenset(), now):
                channel = warning.owner_channel or warning.owner
                state = "has expired" if warning.expired else f"expires in {warning.days_left} day(s)"
                text = (
                    f":warning: Credential *{warning.name}* ({warning.environment}) {state} "
                    f"({warning.expires_at:%Y-%m-%d %H:%M} UTC). Owner: <@{warning.owner}>. "
                    f"Rotate with `/rotate {warning.name} {warning.environment}`."
                )
                async with rt.deps.sessions() as session, session.begin():
                    await rt.outbox.enqueue(
                        session,
                        conversation=channel,
                        method="chat.postMessage",
                        payload={"channel": channel, "text": text},
                        dedup_key=f"expiry:{warning.name}:{warning.threshold_days}:{warning.expires_at:%Y%m%d}",
                    )
            rt.kick()
            space = next((s.confluence_space for s in config.solutions if s.confluence_space), None)
            if space:
                await publish_ownership_matrix(wiring.registry, config, space_key=space, now=now)
        except Exception:
            log.exception("credential duties failed")

    async def weekly_summary() -> None:
        now = clock()
        if now.weekday() != 0 or now.hour != 8:  # Mondays 08:00 UTC; the job runs hourly
            return
        try:
            views, _ = await wiring.alerts.list_alerts(limit=50)
            publication = await wiring.docs.publish_weekly_summary([alert_summary(a) for a in views])
            channel = config.slack.alerts_channel
            async with rt.deps.sessions() as session, session.begin():
                await rt.outbox.enqueue(
                    session,
                    conversation=channel,
                    method="chat.postMessage",
                    payload={"channel": channel, "text": publication.text},
                    dedup_key=f"weekly:{now:%G-W%V}",
                )
            rt.kick()
        except Exception:
            log.exception("weekly summary failed")

    async def break_glass_reviews() -> None:
        """Alert while a break-glass change is past its review deadline; resolve once reviewed."""
        from bot.domain.alerts import AlertEvent

        async with rt.deps.database.reading() as tx:
            rows = await tx.requests.break_glass_reviews(clock(), reviewed_within=timedelta(days=1))
        for row in rows:
            key = f"break-glass-review:{row.human_id}"
            if row.reviewed_by is not None:
                await wiring.alerts.ingest(AlertEvent(dedup_key=key, action="resolve", source="workflow"))
                continue
            await wiring.alerts.ingest(
                AlertEvent(
                    dedup_key=key,
                    source="workflow",
                    severity="warning",
                    environment=row.environment,
                    system="break-glass",
                    title=f"Break-glass change {row.human_id} is past its review deadline",
                    summary=f"{row.action.value} of {row.target} in {row.environment} by <@{row.requester}> was due for "
                    f"review by {row.review_due_at:%Y-%m-%d %H:%M} UTC. An approver reviews it with "
                    f"`/ops review {row.human_id} <notes>`.",
                )
            )

    rt.add_scheduled(
        break_glass_reviews, seconds=timedelta(minutes=15).total_seconds(), name="break_glass_reviews"
    )
    rt.add_scheduled(alerts_tick, seconds=1, name="alerts_tick")  # digests can post at 1 msg/s
    rt.add_scheduled(
        credential_duties, seconds=timedelta(minutes=15).total_seconds(), name="credential_duties"
    )
    rt.add_scheduled(weekly_summary, seconds=timedelta(hours=1).total_seconds(), name="weekly_summary")
    rt.add_scheduled(revoke_previous, seconds=timedelta(hours=1).total_seconds(), name="revoke_previous")
    rt.add_scheduled(end_of_life, seconds=timedelta(days=1).total_seconds(), name="end_of_life")
    rt.add_scheduled(publish_docs, seconds=timedelta(days=1).total_seconds(), name="publish_docs")
    digests = audit_digest_duty(rt.deps.settings, engine=rt.deps.engine, sessions=rt.deps.sessions, outbox=rt.outbox,
                                clock=clock, alert=wiring.alerts.ingest, wake=rt.kick)  # fmt: skip
    if digests is not None:
        rt.add_scheduled(digests, seconds=digests.interval.total_seconds(), name="audit_digests")
        rt.add_shutdown_duty(digests)
