"""Promote an OpenText artifact version from one environment to another, verify it, document it.

A promotion request is a ChangeSpec with target = artifact id, environment = the target
environment and parameters {"artifact", "version", "from_env", "to_env"} (+ "solution",
"rollback_of"); build it with `promotion_spec`.

precheck: the target's OpenText answers its health check; the artifact and version exist; the
version is the one running in the source environment (OpenText only promotes that); the target
does not already run it. The preview shows the target's current version, the requested one and
the version history between them with the checksum change.

execute, each step recorded before its side effect so that a resumed run continues instead of
repeating (`ctx.step` / `ctx.state`):

    inspect   read what the target runs now (kept for the rollback)
    start     POST /promotions, Idempotency-Key = request.human_id: a repeat returns the same job
    poll      follow the job to succeeded / failed (progress replies), bounded by job_timeout
    verify    the target's deployment now shows the requested version
    document  upsert the change-summary page in the solution's Confluence space
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

from bot.config.opsgate import OpsgateConfig, SolutionConfig
from bot.domain.durations import format_duration
from bot.domain.policy import Action
from bot.domain.requests import ChangeRequest, ChangeSpec, Clock
from commands.workflow import (
    ExecutionContext,
    ExecutionResult,
    PrecheckFailed,
    Preview,
    Workflow,
    WorkflowFailed,
)
from connectors import confluence_storage as storage
from connectors.errors import ConnectorError, NotFound, RateLimited, Unavailable
from connectors.opentext import Artifact, ArtifactVersion, Deployment, Job, JobState, OpenTextConnector
from connectors.registry import ConnectorNotConfigured, ConnectorRegistry

__all__ = [
    "PROMOTION_STEPS",
    "PromotionParameters",
    "PromotionWorkflow",
    "build_change_summary",
    "change_summary_title",
    "promotion_spec",
    "rollback_spec",
    "version_diff",
]

PROMOTION_STEPS: Final = ("inspect", "start", "poll", "verify", "document", "done")
CHECKSUM_SHOWN: Final = 12


@dataclass(frozen=True)
class PromotionParameters:
    """The parameters of a promotion request, validated."""

    artifact: str
    version: str
    from_env: str
    to_env: str
    solution: str | None = None
    rollback_of: str | None = None

    @classmethod
    def parse(cls, parameters: Mapping[str, Any]) -> PromotionParameters:
        """Read request parameters; ValueError naming what is missing or wrong."""
        missing = [key for key in ("artifact", "version", "from_env", "to_env") if not parameters.get(key)]
        if missing:
            raise ValueError(f"a promotion needs {', '.join(missing)}")
        values = {key: str(parameters[key]).strip() for key in ("artifact", "version", "from_env", "to_env")}
        if values["from_env"] == values["to_env"]:
            raise ValueError("the source and target environment must differ")
        solution = parameters.get("solution")
        rollback_of = parameters.get("rollback_of")
        return cls(
            **values,
            solution=str(solution) if solution else None,
            rollback_of=str(rollback_of) if rollback_of else None,
        )

    def as_parameters(self) -> dict[str, Any]:
        params: dict[str, Any] = {
            "artifact": self.artifact,
            "version": self.version,
            "from_env": self.from_env,
            "to_env": self.to_env,
        }
        if self.solution:
            params["solution"] = self.solution
        if self.rollback_of:
            params["rollback_of"] = self.rollback_of
        return params


def promotion_spec(
    *,
    artifact: str,
    version: str,
    from_env: str,
    to_env: str,
    solution: str | None = None,
    rollback_of: str | None = None,
) -> ChangeSpec:
    """The ChangeSpec asking to promote `artifact` `version` from `from_env` to `to_env`."""
    params = PromotionParameters(artifact, version, from_env, to_env, solution, rollback_of)
    return ChangeSpec(
        action=Action.PROMOTION, target=artifact, environment=to_env, parameters=params.as_parameters()
    )


def rollback_spec(request: ChangeRequest, *, from_env: str | None = None) -> ChangeSpec:
    """The promotion that puts back what the target ran before `request` (a finished promotion).

    The previous version comes from the request's result (what execution saw) or else its
    preview. OpenText promotes only what runs in the source environment, so pass `from_env`
    when the original source no longer runs the previous version; the precheck names the
    environments that do.
    """
    if request.action is not Action.PROMOTION:
        raise PrecheckFailed(
            f"{request.human_id} is a {request.action.value}, not a promotion: nothing to roll back"
        )
    result = request.result or {}
    preview = request.preview or {}
    previous = (
        result.get("previous_version") if "previous_version" in result else preview.get("current_version")
    )
    params = PromotionParameters.parse(request.parameters)
    if not previous:
        raise PrecheckFailed(
            f"{params.to_env} ran no version of {params.artifact} before {request.human_id}; "
            "there is nothing to roll back to (undeploy it in OpenText instead)"
        )
    return promotion_spec(
        artifact=str(result.get("artifact") or params.artifact),
        version=str(previous),
        from_env=from_env or params.from_env,
        to_env=params.to_env,
        solution=params.solution,
        rollback_of=request.human_id,
    )


def change_summary_title(request_ref: str, artifact: str, version: str, to_env: str) -> str:
    """The Confluence page title of a promotion's change summary (unique per request)."""
    return f"{request_ref}: {artifact} {version} to {to_env}"


def _short(checksum: str) -> str:
    algorithm, _, digest = checksum.partition(":")
    return f"{algorithm}:{digest[:CHECKSUM_SHOWN]}" if digest else checksum[:CHECKSUM_SHOWN]


def _history_line(sign: str, version: ArtifactVersion) -> str:
    summary = f": {version.summary}" if version.summary else ""
    return f"{sign} {version.version} ({version.created_at.date().isoformat()}, {version.author}){summary}"


def version_diff(artifact: Artifact, current: str | None, requested: str) -> list[str]:
    """Lines for approvers: versions gained (+) or lost (-) between current and requested, and checksums."""
    numbers = [v.version for v in artifact.versions]  # newest first
    wanted = numbers.index(requested)
    now = numbers.index(current) if current in numbers else None
    lines: list[str] = []
    if current is None:
        lines.extend(_history_line("+", v) for v in artifact.versions[wanted:])
    elif now is None:
        lines.append(f"! the running version {current} is not in the artifact's history")
        lines.append(_history_line("+", artifact.versions[wanted]))
    elif wanted < now:
        lines.extend(_history_line("+", v) for v in artifact.versions[wanted:now])
    else:
        lines.extend(_history_line("-", v) for v in artifact.versions[now:wanted])
    target = artifact.versions[wanted]
    before = artifact.version(current) if current else None
    if before is None:
        lines.append(f"checksum: (none) -> {_short(target.checksum)}")
    elif before.checksum == target.checksum:
        lines.append(f"checksum unchanged: {_short(target.checksum)}")
    else:
        lines.append(f"checksum: {_short(before.checksum)} -> {_short(target.checksum)}")
    return lines


def _failure(
    exc: ConnectorError, *, step: str, doing: str, partial: Mapping[str, Any] | None = None
) -> WorkflowFailed:
    # Throttling and outages pass; a refusal (400/404/409, auth) will refuse again.
    return WorkflowFailed(
        f"{doing} failed: {exc.detail}",
        step=step,
        retryable=isinstance(exc, Unavailable | RateLimited),
        evidence={"vendor": exc.vendor, "status": exc.status, "vendor_request_id": exc.request_id},
        partial=partial,
    )


class PromotionWorkflow:
    """Workflow for Action.PROMOTION (see the module docstring for the steps)."""

    action = Action.PROMOTION

    def __init__(
        self,
        registry: ConnectorRegistry,
        config: OpsgateConfig,
        *,
        clock: Clock,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        poll_interval: float | None = None,
        job_timeout: float | None = None,
    ) -> None:
        """`poll_interval` / `job_timeout` default to the target's OpenText settings (seconds)."""
        self._registry = registry
        self._config = config
        self._clock = clock
        self._sleep = sleep
        self._poll_interval = poll_interval
        self._job_timeout = job_timeout

    # --- shared lookups ------------------------------------------------------------------------

    def _connectors(self, params: PromotionParameters) -> tuple[OpenTextConnector, OpenTextConnector]:
        return self._registry.opentext(params.from_env), self._registry.opentext(params.to_env)

    def solution_for(self, params: PromotionParameters, artifact: Artifact | None) -> SolutionConfig | None:
        """The configured solution: named in the request, else owning the artifact (by solution or list)."""
        wanted = params.solution or (artifact.solution if artifact else None)
        for solution in self._config.solutions:
            if solution.name == wanted:
                return solution
        for solution in self._config.solutions:
            if params.artifact in solution.artifacts or (artifact and artifact.name in solution.artifacts):
                return solution
        return None

    def docs_environment(self, to_env: str) -> str | None:
        """Where change summaries go: the target's Confluence, else the first environment that has one."""
        if self._registry.is_configured("confluence", to_env):
            return to_env
        configured = self._registry.configured("confluence")
        return configured[0] if configured else None

    async def _environments_running(
        self, source: OpenTextConnector, artifact_id: str, version: str
    ) -> list[str]:
        running = []
        for environment in self._config.environments:
            try:
                deployment = await source.get_deployment(environment, artifact_id)
            except ConnectorError:
                continue  # an environment OpenText does not know is simply not a candidate
            if deployment is not None and deployment.version == version:
                running.append(environment)
        return running

    async def _unknown_artifact(self, source: OpenTextConnector, wanted: str) -> str:
        name = wanted.rpartition(".")[2]
        try:
            similar = [a.id for a in await source.list_artifacts(name=name)]
        except ConnectorError:
            similar = []
        hint = f"; did you mean {' or '.join(similar)}?" if similar else " (use the full id solution.name)"
        return f"OpenText has no artifact {wanted!r}{hint}"

    # --- precheck ------------------------------------------------------------------------------

    async def precheck(self, spec: ChangeSpec, *, requester: str) -> Preview:
        try:
            params = PromotionParameters.parse(spec.parameters)
        except ValueError as exc:
            raise PrecheckFailed(str(exc)) from None
        if spec.environment != params.to_env or spec.target != params.artifact:
            raise PrecheckFailed("the request's target and environment must be the artifact and to_env")
        try:
            source, target = self._connectors(params)
        except ConnectorNotConfigured as exc:
            raise PrecheckFailed(f"cannot promote: {exc}") from None
        warnings: list[str] = []
        try:
            health = await target.health()
        except ConnectorError as exc:
            raise PrecheckFailed(f"OpenText in {params.to_env} is unreachable: {exc.detail}") from None
        if health.status != "ok":
            warnings.append(f"OpenText in {params.to_env} reports {health.status!r}")
        try:
            artifact = await source.get_artifact(params.artifact)
        except NotFound:
            raise PrecheckFailed(await self._unknown_artifact(source, params.artifact)) from None
        except ConnectorError as exc:
            raise PrecheckFailed(
                f"OpenText could not be asked about {params.artifact}: {exc.detail}"
            ) from None
        wanted = artifact.version(params.version)
        if wanted is None:
            known = ", ".join(v.version for v in artifact.versions) or "none"
            raise PrecheckFailed(f"{artifact.id} has no version {params.version} (known versions: {known})")
        try:
            in_source = await source.get_deployment(params.from_env, artifact.id)
            in_target = await target.get_deployment(params.to_env, artifact.id)
        except ConnectorError as exc:
            raise PrecheckFailed(
                f"OpenText could not list deployments of {artifact.id}: {exc.detail}"
            ) from None
        if in_source is None or in_source.version != params.version:
            runs = "does not run it" if in_source is None else f"runs {in_source.version}"
            candidates = await self._environments_running(source, artifact.id, params.version)
            hint = (
                f"; environments running {params.version}: {', '.join(candidates)}"
                if candidates
                else f"; deploy {params.version} to {params.from_env} first"
            )
            raise PrecheckFailed(
                f"OpenText promotes only the version running in the source: {params.from_env} {runs}{hint}"
            )
        current = in_target.version if in_target else None
        if current == params.version:
            raise PrecheckFailed(f"{params.to_env} already runs {artifact.id} {params.version}")
        numbers = [v.version for v in artifact.versions]
        if (
            current in numbers
            and numbers.index(params.version) > numbers.index(current)
            and not params.rollback_of
        ):
            warnings.append(f"this goes back from {current} to the older {params.version}")
        solution = self.solution_for(params, artifact)
        if params.solution and artifact.solution != params.solution:
            raise PrecheckFailed(
                f"{artifact.id} belongs to solution {artifact.solution}, not {params.solution}"
            )
        if solution is None:
            warnings.append(
                f"solution {artifact.solution} is not configured: no change-summary page will be written"
            )
        elif not solution.confluence_space:
            warnings.append(
                f"solution {solution.name} has no confluence_space: no change-summary page will be written"
            )
        elif self.docs_environment(params.to_env) is None:
            warnings.append("no environment configures Confluence: no change-summary page will be written")
        summary = (
            f"{'Roll back' if params.rollback_of else 'Promote'} {artifact.id} "
            f"{current or '(not deployed)'} -> {params.version} in {params.to_env} (from {params.from_env})"
        )
        return Preview(
            summary=summary,
            details={
                "artifact_id": artifact.id,
                "kind": artifact.kind.value,
                "solution": artifact.solution,
                "from_env": params.from_env,
                "to_env": params.to_env,
                "current_version": current,
                "requested_version": params.version,
                "diff": version_diff(artifact, current, params.version),
                "warnings": warnings,
                "downstream_systems": list(solution.downstream_systems) if solution else [],
                "rollback_of": params.rollback_of,
            },
        )

    # --- execute -------------------------------------------------------------------------------

    async def execute(self, request: ChangeRequest, ctx: ExecutionContext) -> ExecutionResult:
        try:
            params = PromotionParameters.parse(request.parameters)
            source, target = self._connectors(params)
        except (ValueError, ConnectorNotConfigured) as exc:
            raise WorkflowFailed(f"cannot promote: {exc}", step="inspect") from None
        state = ctx.state
        reached = PROMOTION_STEPS.index(ctx.step) if ctx.step in PROMOTION_STEPS else -1

        if "job_id" not in state:
            job = await self._start(request, params, target, ctx)
        else:
            await ctx.progress.step("start", f"resuming OpenText job {state['job_id']} (not started again)")
            job = None
        job_id = str(state["job_id"])
        partial: dict[str, Any] = {"job_id": job_id}

        if reached <= PROMOTION_STEPS.index("poll"):
            finished = await self._poll(job_id, params, target, ctx, started=job)
            await ctx.record_step(
                "verify",
                job_finished_at=(finished.finished_at or self._clock()).astimezone(UTC).isoformat(),
            )
        if ctx.step == "verify":
            deployment = await self._verify(params, target, partial)
            await ctx.record_step(
                "document",
                verified_at=self._clock().astimezone(UTC).isoformat(),
                deployment=_deployment_evidence(deployment),
            )
        partial["promoted"] = True
        page: dict[str, Any] | None = state.get("page")
        if ctx.step == "document":
            page = await self._document(request, params, source, ctx, partial)
            await ctx.record_step("done", page=page)

        result: dict[str, Any] = {
            "artifact": params.artifact,
            "version": params.version,
            "from_env": params.from_env,
            "to_env": params.to_env,
            "previous_version": state.get("previous_version"),
            "job_id": job_id,
            "change_summary": page,
        }
        evidence: dict[str, Any] = {
            "job_id": job_id,
            "job_state": JobState.SUCCEEDED.value,
            "job_finished_at": state.get("job_finished_at"),
            "verified_at": state.get("verified_at"),
            "deployment": state.get("deployment"),
            "idempotency_key": request.human_id,
            "opentext_request_id": target.last_request_id,
        }
        if page:
            evidence["confluence_page"] = page
        links = {"Change summary": str(page["url"])} if page and page.get("url") else {}
        return ExecutionResult(result=result, evidence=evidence, links=links)

    async def _start(
        self,
        request: ChangeRequest,
        params: PromotionParameters,
        target: OpenTextConnector,
        ctx: ExecutionContext,
    ) -> Job:
        if "previous_version" not in ctx.state:
            await ctx.record_step("inspect")
            try:
                running = await target.get_deployment(params.to_env, params.artifact)
            except ConnectorError as exc:
                raise _failure(exc, step="inspect", doing=f"Reading what {params.to_env} runs") from None
            previous = running.version if running else None
            await ctx.progress.step(
                "inspect", f"{params.to_env} runs {previous or 'no version'} of {params.artifact}"
            )
            await ctx.record_step("start", previous_version=previous)
        elif ctx.step != "start":
            await ctx.record_step("start")
        try:
            # The request id as idempotency key: a resumed or retried start gets the same job back.
            job = await target.start_promotion(
                params.artifact,
                params.version,
                source_environment=params.from_env,
                target_environment=params.to_env,
                requested_by=request.requester,
                reason=request.reason or None,
                change_ref=request.human_id,
                idempotency_key=request.human_id,
            )
        except ConnectorError as exc:
            raise _failure(exc, step="start", doing="Starting the OpenText promotion") from None
        await ctx.record_step("poll", job_id=job.job_id)
        await ctx.progress.step(
            "start",
            f"OpenText job {job.job_id} started: {params.artifact} {params.version} {params.from_env} -> {params.to_env}",
        )
        return job

    async def _poll(
        self,
        job_id: str,
        params: PromotionParameters,
        target: OpenTextConnector,
        ctx: ExecutionContext,
        *,
        started: Job | None,
    ) -> Job:
        interval = self._poll_interval or target.settings.job_poll_interval
        timeout = timedelta(seconds=self._job_timeout or target.settings.job_timeout)
        deadline = self._clock() + timeout
        seen: tuple[JobState, int] | None = (started.state, started.progress) if started else None
        while True:
            try:
                job = await target.get_job(job_id)
            except ConnectorError as exc:
                raise _failure(
                    exc, step="poll", doing=f"Following OpenText job {job_id}", partial={"job_id": job_id}
                ) from None
            if (job.state, job.progress) != seen:
                seen = (job.state, job.progress)
                ok = (
                    True
                    if job.state is JobState.SUCCEEDED
                    else False
                    if job.state is JobState.FAILED
                    else None
                )
                await ctx.progress.step("poll", f"job {job_id} {job.state.value} ({job.progress}%)", ok=ok)
            if job.state is JobState.FAILED:
                error = job.error
                reason = f"{error.message} ({error.code})" if error else "no reason given"
                raise WorkflowFailed(
                    f"OpenText job {job_id} failed: {reason}. {params.to_env} still runs "
                    f"{ctx.state.get('previous_version') or 'no version'} of {params.artifact}.",
                    step="poll",
                    evidence={"job_id": job_id, "error_code": error.code if error else None},
                )
            if job.state is JobState.SUCCEEDED:
                return job
            if self._clock() >= deadline:
                raise WorkflowFailed(
                    f"OpenText job {job_id} is still {job.state.value} ({job.progress}%) after "
                    f"{format_duration(timeout)}; it was not cancelled and will be followed again on retry",
                    step="poll",
                    retryable=True,
                    evidence={"job_id": job_id, "job_state": job.state.value},
                    partial={"job_id": job_id},
                )
            await self._sleep(interval)

    async def _verify(
        self, params: PromotionParameters, target: OpenTextConnector, partial: Mapping[str, Any]
    ) -> Deployment:
        try:
            deployment = await target.get_deployment(params.to_env, params.artifact)
        except ConnectorError as exc:
            raise _failure(
                exc, step="verify", doing=f"Checking what {params.to_env} runs", partial=partial
            ) from None
        if deployment is None or deployment.version != params.version:
            runs = "nothing" if deployment is None else deployment.version
            raise WorkflowFailed(
                f"OpenText reported the promotion done, but {params.to_env} runs {runs}, not {params.version}",
                step="verify",
                evidence={"deployment": _deployment_evidence(deployment)},
                partial=partial,
            )
        return deployment

    async def _document(
        self,
        request: ChangeRequest,
        params: PromotionParameters,
        source: OpenTextConnector,
        ctx: ExecutionContext,
        partial: Mapping[str, Any],
    ) -> dict[str, Any] | None:
        try:
            artifact = await source.get_artifact(params.artifact)
        except ConnectorError as exc:
            raise _failure(
                exc, step="document", doing="Reading the artifact for the change summary", partial=partial
            ) from None
        solution = self.solution_for(params, artifact)
        docs_env = self.docs_environment(params.to_env)
        if solution is None or not solution.confluence_space or docs_env is None:
            await ctx.progress.step(
                "document", "no Confluence space configured for this solution; no page written"
            )
            return None
        body = build_change_summary(
            request,
            params,
            artifact,
            solution,
            previous=ctx.state.get("previous_version"),
            job_id=str(ctx.state["job_id"]),
            verified_at=ctx.state.get("verified_at"),
        )
        title = change_summary_title(request.human_id, artifact.id, params.version, params.to_env)
        try:
            write = await self._registry.confluence(docs_env).upsert_page(
                solution.confluence_space, title, body, message=f"opsgate {request.human_id}"
            )
        except ConnectorError as exc:
            raise WorkflowFailed(
                f"{params.to_env} now runs {params.artifact} {params.version}, but the change summary could "
                f"not be written to Confluence: {exc.detail}",
                step="document",
                retryable=isinstance(exc, Unavailable | RateLimited),
                evidence={"vendor": exc.vendor, "status": exc.status, "vendor_request_id": exc.request_id},
                partial=partial,
            ) from None
        page = {
            "id": write.page.id,
            "title": write.page.title,
            "url": write.page.web_url,
            "space": solution.confluence_space,
        }
        await ctx.progress.step(
            "document", f"change summary {write.outcome}: {write.page.web_url or title}", ok=True
        )
        return page


def _deployment_evidence(deployment: Deployment | None) -> dict[str, Any] | None:
    return None if deployment is None else deployment.model_dump(mode="json")


def _when(moment: datetime | str | None) -> str:
    if moment is None:
        return "unknown"
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _rollback_steps(
    params: PromotionParameters, artifact: Artifact, previous: str | None, ref: str
) -> list[str]:
    if previous is None:
        return [
            f"{params.to_env} ran no version of {artifact.id} before {ref}.",
            "The OpenText admin API cannot remove a deployment: undeploy it in the OpenText console.",
            "Record the undeployment on this page.",
        ]
    return [
        f"Ask opsgate for the rollback of {ref}: it prepares a promotion of {artifact.id} {previous} to {params.to_env}, "
        "approved like any promotion.",
        f"OpenText promotes only a version running in the source environment: pick one that still runs {previous}, "
        f"or deploy {previous} there first.",
        f"Check that {params.to_env} runs {previous} and that the downstream systems listed above work again.",
    ]


def build_change_summary(
    request: ChangeRequest,
    params: PromotionParameters,
    artifact: Artifact,
    solution: SolutionConfig,
    *,
    previous: str | None,
    job_id: str,
    verified_at: str | None,
) -> str:
    """The change-summary page (storage XHTML): what changed, why, who, affected systems, rollback."""
    wanted = artifact.version(params.version)
    checksum = _short(wanted.checksum) if wanted else "unknown"
    approvals: Sequence[storage.Content] = [
        f"{approval.approver} approved at {_when(approval.approved_at)}"
        for approval in request.valid_approvals
    ] or ["No approvals recorded (break-glass or emergency path)."]
    doc = storage.Document()
    doc.paragraph(
        storage.status("Rolled back" if params.rollback_of else "Promoted", "Green"),
        " ",
        f"{artifact.id} {params.version} runs in {params.to_env} since {_when(verified_at)} (verified by opsgate).",
    )
    doc.table(
        ["Field", "Value"],
        [
            ["Request", request.human_id],
            ["Artifact", storage.inline_code(artifact.id)],
            ["Kind", artifact.kind.value],
            ["Solution", solution.name],
            ["From environment", params.from_env],
            ["To environment", params.to_env],
            ["Previous version", previous or "(not deployed)"],
            ["New version", params.version],
            ["Checksum", storage.inline_code(checksum)],
            ["OpenText job", job_id],
        ],
    )
    if request.emergency:
        due = f" by {_when(request.review_due_at)}" if request.review_due_at else ""
        doc.panel("warning", f"Emergency change: a review after the fact is due{due}.", title="Emergency")
    doc.heading(2, "What changed")
    doc.bullet_list(version_diff(artifact, previous, params.version))
    doc.heading(2, "Why")
    doc.paragraph(request.reason or "No reason was given.")
    if params.rollback_of:
        doc.paragraph(f"This rolls back {params.rollback_of}.")
    doc.heading(2, "Requested and approved by")
    doc.bullet_list([f"{request.requester} requested it at {_when(request.created_at)}", *approvals])
    doc.heading(2, "Affected downstream systems")
    if solution.downstream_systems:
        doc.bullet_list(solution.downstream_systems)
    else:
        doc.paragraph(f"None recorded for solution {solution.name}.")
    doc.heading(2, "Rollback")
    doc.numbered_list(_rollback_steps(params, artifact, previous, request.human_id))
    doc.paragraph("Written by opsgate; re-running the change rewrites this page.")
    return doc.render()


if TYPE_CHECKING:
    # mypy proves the workflow fulfils the contract the executor relies on.
    def _is_a_workflow(workflow: PromotionWorkflow) -> Workflow:
        return workflow
