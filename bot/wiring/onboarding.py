"""Wire onboarding and interface-spec drift into a running bot: one call from `bot.wiring.root.wire`.

    wiring = await wire(service, settings, config)
    wire_onboarding(service, wiring, config)

- the onboarding workflow answers Action.ONBOARDING (precheck before approval, execute after);
- `/onboard <template> <name> <env> [reason...]` is parsed at once (a usage error is answered
  ephemerally), then becomes an `onboard.command` job keyed by the trigger id, which opens the
  request through the approval policy and answers with the plan's outcome;
- `/ops spec-check <page>` replies with every difference between the page and OpenText;
- every hour the pages labelled `interface-spec` are checked: an alert per page while it differs,
  resolved when it stops.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any, Final

from slack_bolt.async_app import AsyncAck

from bot.blocks.reply import Reply
from bot.blocks.text import escape
from bot.config.opsgate import OpsgateConfig
from bot.domain.policy import Action
from bot.domain.requests import RequestStatus
from bot.jobs.queue import JobContext
from bot.wiring.root import Wiring
from bot.wiring.service import OpsgateService
from commands.onboard import OnboardingWorkflow, onboarding_spec
from commands.parsing import OpsArgs, UsageError, parse_onboard
from commands.spec_check import SpecChecker, SpecDriftMonitor

__all__ = ["ONBOARD_JOB", "SPEC_DRIFT_INTERVAL", "OnboardingWiring", "wire_onboarding"]

log = logging.getLogger("opsgate.onboard")

ONBOARD_JOB: Final = "onboard.command"
SPEC_DRIFT_INTERVAL: Final = timedelta(hours=1)
MAX_DIFFERENCES_SHOWN: Final = 10


class OnboardingWiring:
    """What `wire_onboarding` built, for tests and the demo."""

    def __init__(self, workflow: OnboardingWorkflow, checker: SpecChecker, monitor: SpecDriftMonitor) -> None:
        self.workflow = workflow
        self.checker = checker
        self.monitor = monitor


def wire_onboarding(service: OpsgateService, wiring: Wiring, config: OpsgateConfig) -> OnboardingWiring:
    """Register the onboarding workflow, `/onboard`, `/ops spec-check` and the drift schedule."""
    rt = service.runtime
    workflow = OnboardingWorkflow(wiring.registry, config, clock=rt.deps.clock)
    rt.executor.workflows[Action.ONBOARDING] = workflow
    service.context.requests.workflows = {**service.context.requests.workflows, Action.ONBOARDING: workflow}
    wiring.workflows[Action.ONBOARDING] = workflow

    checker = SpecChecker(config, wiring.registry.confluence, wiring.registry.opentext)
    monitor = SpecDriftMonitor(checker, wiring.alerts)

    async def spec_check(args: OpsArgs, user: str) -> Reply:
        return Reply(await checker.spec_check(str(args.page)))

    service.context.extras["ops.spec-check"] = spec_check
    _register_command(service, config)
    rt.register_job(ONBOARD_JOB, lambda job: _run_onboard(service, config, job))

    async def spec_drift() -> None:
        try:
            for result in await monitor.check_labelled():
                if result.error:
                    log.warning(
                        "spec drift check incomplete", extra={"page": result.page_ref, "reason": result.error}
                    )
        except Exception:
            log.exception("spec drift check failed")

    rt.add_scheduled(spec_drift, seconds=SPEC_DRIFT_INTERVAL.total_seconds(), name="spec_drift")
    return OnboardingWiring(workflow, checker, monitor)


def _register_command(service: OpsgateService, config: OpsgateConfig) -> None:
    slash = config.slack.command("onboard")

    async def on_onboard(ack: AsyncAck, command: dict[str, Any]) -> None:
        text = str(command.get("text") or "")
        try:
            parse_onboard(text, command=slash)
        except UsageError as error:
            await ack(response_type="ephemeral", text=f":warning: {error.message}\nUsage: `{error.usage}`")
            return
        trigger = str(command.get("trigger_id") or "")
        await service.context.enqueue(
            ONBOARD_JOB,
            {
                "command": slash,
                "text": text,
                "user_id": command.get("user_id"),
                "channel_id": command.get("channel_id"),
                "response_url": command.get("response_url"),
                "trigger_id": trigger,
            },
            dedup_key=f"cmd:{trigger}" if trigger else None,
        )
        await ack(response_type="ephemeral", text=f":hourglass_flowing_sand: Checking `{slash} {text}`…")

    service.bolt.command(slash)(on_onboard)


async def _run_onboard(service: OpsgateService, config: OpsgateConfig, job: JobContext) -> None:
    payload = job.payload

    async def work() -> Reply:
        args = parse_onboard(str(payload.get("text") or ""), command=str(payload["command"]))
        spec = onboarding_spec(config, args.template, args.name, args.environment)
        trigger = payload.get("trigger_id")
        async with service.runtime.deps.database.transaction() as tx:
            request = await service.context.requests.open(
                tx,
                spec,
                requester=str(payload["user_id"]),
                reason=args.reason,
                emergency_reason=args.emergency_reason,
                idempotency_key=f"cmd:{trigger}" if trigger else None,
            )
        channel = service.runtime.announcer.channel_for(request)
        where = f"<#{channel}>" if not channel.startswith("#") else channel
        preview = request.preview or {}
        lines = []
        if request.status is RequestStatus.APPROVED and request.emergency:
            lines.append(f":rotating_light: {request.human_id} opened with break-glass: onboarding now.")
        else:
            lines.append(f":white_check_mark: {request.human_id} opened; approval requested in {where}.")
        differences = [str(d) for d in preview.get("differences") or []]
        if preview.get("existing"):
            lines.append(f"{args.name} already exists in {args.environment}. What differs from the template:")
            lines.extend(f"• {escape(d)}" for d in differences[:MAX_DIFFERENCES_SHOWN])
            if len(differences) > MAX_DIFFERENCES_SHOWN:
                lines.append(f"…and {len(differences) - MAX_DIFFERENCES_SHOWN} more (see the request).")
            if not differences:
                lines.append("• nothing: it matches the template")
        return Reply("\n".join(lines))

    await service.jobs._guarded(payload, work)
