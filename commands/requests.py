"""Opening change requests from what people typed: validate, pre-check, then ask the engine.

Slack-free: the Slack layer parses nothing itself and renders whatever this returns or raises.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bot.domain.approvals import ApprovalEngine
from bot.domain.policy import Action
from bot.domain.requests import ChangeRequest, ChangeSpec
from bot.settings import OpsgateConfig
from commands.workflow import PrecheckFailed, Workflow

__all__ = ["RequestService", "promotion_spec", "release_spec", "rotation_spec"]


def _require_environment(config: OpsgateConfig, name: str, *, role: str) -> None:
    if name not in config.environments:
        raise PrecheckFailed(
            f"Unknown {role} environment '{name}'. Configured environments: {', '.join(sorted(config.environments))}."
        )


def _solution_of(config: OpsgateConfig, artifact: str) -> str | None:
    return next((s.name for s in config.solutions if artifact in s.artifacts), None)


def promotion_spec(
    config: OpsgateConfig, *, artifact: str, version: str, from_env: str, to_env: str
) -> ChangeSpec:
    _require_environment(config, from_env, role="source")
    _require_environment(config, to_env, role="target")
    if from_env == to_env:
        raise PrecheckFailed(
            f"Source and target are both '{to_env}': a promotion moves between environments."
        )
    parameters: dict[str, Any] = {
        "artifact": artifact,
        "version": version,
        "from_env": from_env,
        "to_env": to_env,
    }
    if solution := _solution_of(config, artifact):
        parameters["solution"] = solution
    return ChangeSpec(Action.PROMOTION, artifact, to_env, parameters)


def rotation_spec(config: OpsgateConfig, *, credential: str, environment: str) -> ChangeSpec:
    _require_environment(config, environment, role="")
    return ChangeSpec(
        Action.ROTATION, credential, environment, {"credential": credential, "environment": environment}
    )


def release_spec(config: OpsgateConfig, *, asset: str, destination: str) -> ChangeSpec:
    destinations = {d.name: d for d in getattr(config, "destinations", [])}
    if destinations and destination not in destinations:
        raise PrecheckFailed(
            f"Unknown destination '{destination}'. Configured: {', '.join(sorted(destinations))}."
        )
    environment = destinations[destination].environment if destination in destinations else "prod"
    if environment not in config.environments:
        environment = next(iter(config.environments))
    return ChangeSpec(
        Action.RELEASE,
        asset,
        environment,
        {"asset": asset, "destination": destination},
        lock_key=f"release:{asset}->{destination}",
    )


@dataclass
class RequestService:
    engine: ApprovalEngine
    config: OpsgateConfig
    workflows: Mapping[Action, Workflow]

    async def open(
        self,
        spec: ChangeSpec,
        *,
        requester: str,
        reason: str,
        emergency_reason: str | None = None,
        idempotency_key: str | None = None,
        rollback_of: str | None = None,
    ) -> ChangeRequest:
        """Pre-check with the workflow (if one is configured), then open the request."""
        preview: dict[str, Any] | None = None
        workflow = self.workflows.get(spec.action)
        if workflow is not None:
            checked = await workflow.precheck(spec, requester=requester)
            preview = {"summary": checked.summary, **dict(checked.details)}
        return await self.engine.create(
            spec,
            requester=requester,
            reason=reason,
            emergency_reason=emergency_reason,
            idempotency_key=idempotency_key,
            preview=preview,
            rollback_of=rollback_of,
        )
