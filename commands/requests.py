"""Opening change requests from what people typed: validate, pre-check, then open the request.

Slack-free: the Slack layer parses nothing itself and renders whatever this returns or raises.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bot.config.opsgate import OpsgateConfig
from bot.domain.policy import Action
from bot.domain.requests import ChangeRequest, ChangeSpec
from commands import promote, release, rotate
from commands.approvals import Approvals
from commands.ports import RequestTx
from commands.rotate import find_credential
from commands.workflow import PrecheckFailed, Workflow

__all__ = ["RequestService", "promotion_spec", "release_spec", "rotation_spec"]


def _require_environment(config: OpsgateConfig, name: str, *, role: str) -> None:
    if name not in config.environments:
        raise PrecheckFailed(
            f"Unknown {role} environment '{name}'. Configured environments: {', '.join(sorted(config.environments))}."
        )


def promotion_spec(
    config: OpsgateConfig, *, artifact: str, version: str, from_env: str, to_env: str
) -> ChangeSpec:
    """What someone typed, checked against the config, as the promotion workflow's ChangeSpec."""
    _require_environment(config, from_env, role="source")
    _require_environment(config, to_env, role="target")
    if from_env == to_env:
        raise PrecheckFailed(
            f"Source and target are both '{to_env}': a promotion moves between environments."
        )
    solution = next((s.name for s in config.solutions if artifact in s.artifacts), None)
    return promote.promotion_spec(artifact=artifact, version=version, from_env=from_env, to_env=to_env,
                                  solution=solution)  # fmt: skip


def rotation_spec(config: OpsgateConfig, *, credential: str, environment: str) -> ChangeSpec:
    _require_environment(config, environment, role="")
    found = find_credential(config, credential)
    if found is None:
        known = ", ".join(sorted(c.name for c in config.credentials)) or "none configured"
        raise PrecheckFailed(f"Unknown credential '{credential}'. Known credentials: {known}.")
    if found.environment != environment:
        raise PrecheckFailed(f"Credential '{credential}' belongs to {found.environment}, not {environment}.")
    return rotate.rotation_spec(found, trigger="manual")


def release_spec(config: OpsgateConfig, *, asset: str, destination: str) -> ChangeSpec:
    destinations = {d.name: d for d in config.destinations}
    if destination not in destinations:
        known = ", ".join(sorted(destinations)) or "none configured"
        raise PrecheckFailed(f"Unknown destination '{destination}'. Configured destinations: {known}.")
    try:
        return release.release_spec(asset, destinations[destination])
    except ValueError as exc:
        raise PrecheckFailed(f"'{asset}' is not a Canto asset id ({exc}).") from exc


@dataclass
class RequestService:
    approvals: Approvals
    config: OpsgateConfig
    workflows: Mapping[Action, Workflow]

    async def open(
        self,
        tx: RequestTx,
        spec: ChangeSpec,
        *,
        requester: str,
        reason: str,
        emergency_reason: str | None = None,
        idempotency_key: str | None = None,
        rollback_of: str | None = None,
    ) -> ChangeRequest:
        """Pre-check with the workflow (if one is configured), then open the request in `tx`.

        The pre-check asks the vendor before the transaction's first statement: call this first
        in a fresh transaction so no lock waits on the vendor.
        """
        preview: dict[str, Any] | None = None
        workflow = self.workflows.get(spec.action)
        if workflow is not None:
            checked = await workflow.precheck(spec, requester=requester)
            preview = {"summary": checked.summary, **dict(checked.details)}
        return await self.approvals.create(
            tx,
            spec,
            requester=requester,
            reason=reason,
            emergency_reason=emergency_reason,
            idempotency_key=idempotency_key,
            preview=preview,
            rollback_of=rollback_of,
        )
