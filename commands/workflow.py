"""The contract every change workflow (promotion, rotation, release, archive) fulfils.

A workflow checks a change before anyone is asked to approve it (`precheck`), then carries it out
once approved (`execute`). Execution runs inside a persisted job: a workflow records each step
with `ctx.record_step(...)` *before* the step's side effect, and on a resume (after a crash or a
retry) reads `ctx.step` / `ctx.state` to continue where it stopped without repeating work.
Nothing here knows about Slack: progress goes through `ProgressReporter`, which the Slack layer
turns into thread replies.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from bot.domain.errors import DomainError
from bot.domain.policy import Action
from bot.domain.requests import ChangeRequest, ChangeSpec

__all__ = [
    "ExecutionContext",
    "ExecutionResult",
    "PrecheckFailed",
    "Preview",
    "ProgressReporter",
    "Workflow",
    "WorkflowFailed",
]


class PrecheckFailed(DomainError):
    """The change cannot be requested as asked; the message tells the requester why."""


@dataclass(frozen=True)
class Preview:
    """What approvers see before deciding: a one-line summary and structured details.

    `details` is stored on the request and rendered on the approval message; keys understood by
    the renderer: current_version, requested_version, diff (list of lines), warnings (list).
    """

    summary: str
    details: Mapping[str, Any] = field(default_factory=dict)


class WorkflowFailed(Exception):
    """Execution failed; `reason` is shown to people, `step` is where, `evidence` goes to audit."""

    def __init__(
        self,
        reason: str,
        *,
        step: str,
        evidence: Mapping[str, Any] | None = None,
        retryable: bool = False,
        partial: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.step = step
        self.evidence = dict(evidence or {})
        self.retryable = retryable
        self.partial = dict(partial or {})  # what succeeded before the failure


@dataclass(frozen=True)
class ExecutionResult:
    result: Mapping[str, Any]  # stored on the request (no secrets)
    evidence: Mapping[str, Any] = field(default_factory=dict)  # audit evidence (secrets fingerprinted)
    links: Mapping[str, str] = field(default_factory=dict)  # e.g. {"Change summary": "https://..."}


class ProgressReporter(Protocol):
    async def step(self, name: str, detail: str = "", *, ok: bool | None = None) -> None:
        """Tell the people watching what is happening (a thread reply under the approval)."""


class ExecutionContext(Protocol):
    @property
    def step(self) -> str | None:
        """The last recorded step, or None on a first run."""

    @property
    def state(self) -> dict[str, Any]:
        """Data recorded with earlier steps (e.g. the vendor's job id), for resuming."""

    @property
    def attempt(self) -> int: ...

    @property
    def progress(self) -> ProgressReporter: ...

    async def record_step(self, step: str, **state: Any) -> None:
        """Persist that `step` is starting, with any data a resume needs, before doing it."""


class Workflow(Protocol):
    action: Action

    async def precheck(self, spec: ChangeSpec, *, requester: str) -> Preview:
        """Verify the change can be made as asked; raise PrecheckFailed with the reason if not."""

    async def execute(self, request: ChangeRequest, ctx: ExecutionContext) -> ExecutionResult:
        """Carry out an approved change; raise WorkflowFailed with what went wrong."""
