"""Onboard a trading partner or media workflow from a template, step by step, and document it.

An onboarding request is a ChangeSpec with action onboarding, target = the new name, environment
= where, and parameters {"template", "name", "template_hash"}; build it with `onboarding_spec`.
The template's fingerprint is part of the request, so a template edited after approval is not
carried out under the old approval.

precheck computes the exact plan (`commands.onboard_plan`): each artifact to clone, credential,
iconik collection, Canto album and the page, marked create / exists / differs / manual / update.
For a name onboarded before, `Preview.details["differences"]` says how what exists differs.

execute, each step recorded before its side effect so that a retry continues where the last run
stopped (`ctx.step` / `ctx.state["done"]`):

    check        resolve the clones (source versions, new ids) once; recorded for every retry
    clone        per artifact: POST /artifacts/{source}/clone with Idempotency-Key
                 <request>:<artifact>:<try>, then follow the job; an artifact that already exists
                 is left as it is; a failed job gets a new key (and job) on retry
    credentials  OpenText's admin API cannot create credentials: each is checked and, when missing,
                 listed (with its owner and schedule) to create in OpenText and add to `credentials:`
    iconik       the collection routed to the template's storage, found by its external id first
    canto        the album in the template's folder, found by its path first
    document     upsert the onboarding page (`commands.onboard_pages`); no secret is ever on it
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from bot.config.onboarding import OnboardingTemplate, render
from bot.config.opsgate import OpsgateConfig
from bot.domain.policy import Action
from bot.domain.requests import ChangeRequest, ChangeSpec, Clock
from commands.onboard_pages import (
    AlbumFacts,
    ArtifactFacts,
    CollectionFacts,
    CredentialFacts,
    OnboardingFacts,
    Outcome,
    build_onboarding_page,
    credential_config_yaml,
)
from commands.onboard_plan import (
    ArtifactTarget,
    OnboardingBlocked,
    OnboardingLookups,
    OnboardingPlan,
    plan_onboarding,
)
from commands.workflow import (
    ExecutionContext,
    ExecutionResult,
    PrecheckFailed,
    Preview,
    Workflow,
    WorkflowFailed,
)
from connectors.errors import Conflict, ConnectorError, RateLimited, Unavailable
from connectors.opentext import JobState
from connectors.registry import ConnectorRegistry

__all__ = [
    "NAME_PATTERN",
    "ONBOARDING_STEPS",
    "OnboardingParameters",
    "OnboardingWorkflow",
    "find_template",
    "onboarding_config_problems",
    "onboarding_spec",
    "template_fingerprint",
]

log = logging.getLogger("opsgate.onboard")

ONBOARDING_STEPS: Final = ("check", "clone", "credentials", "iconik", "canto", "document", "done")
NAME_PATTERN: Final = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")
_STEP_LABELS: Final = {
    "clone": "OpenText clones",
    "credentials": "credential check",
    "iconik": "iconik collection",
    "canto": "Canto album",
    "document": "onboarding page",
}


def template_fingerprint(template: OnboardingTemplate) -> str:
    """A short hash of the template as configured: approvals are for this version of it."""
    return hashlib.sha256(template.model_dump_json().encode()).hexdigest()[:16]


def find_template(config: OpsgateConfig, name: str) -> OnboardingTemplate:
    """The configured template called `name`; PrecheckFailed naming the choices if none is."""
    for template in config.onboarding_templates:
        if template.name == name:
            return template
    known = ", ".join(t.name for t in config.onboarding_templates) or "none configured"
    raise PrecheckFailed(f"Unknown onboarding template '{name}' (known: {known}).")


def onboarding_config_problems(config: OpsgateConfig) -> list[str]:
    """`key.path: problem` lines for templates that name undeclared environments or solutions (for `check`)."""
    problems: list[str] = []
    known = ", ".join(sorted(config.environments))
    solutions = {s.name for s in config.solutions}
    for index, template in enumerate(config.onboarding_templates):
        where = f"onboarding_templates[{index}]"
        for environment in template.environments:
            if environment not in config.environments:
                problems.append(
                    f"{where}.environments: {environment!r} is not a declared environment ({known})"
                )
        if template.solution is not None and template.solution not in solutions:
            problems.append(f"{where}.solution: {template.solution!r} is not a configured solution")
    return problems


@dataclass(frozen=True)
class OnboardingParameters:
    """The parameters of an onboarding request, validated."""

    template: str
    name: str
    environment: str
    template_hash: str

    @classmethod
    def parse(cls, parameters: Mapping[str, Any], *, environment: str) -> OnboardingParameters:
        """Read request parameters; ValueError naming what is missing or wrong."""
        missing = [key for key in ("template", "name", "template_hash") if not parameters.get(key)]
        if missing:
            raise ValueError(f"an onboarding needs {', '.join(missing)}")
        name = str(parameters["name"])
        if not NAME_PATTERN.fullmatch(name):
            raise ValueError(
                f"'{name}' is not a name to onboard: lower-case letters, digits and '-', at most 40"
            )
        return cls(str(parameters["template"]), name, environment, str(parameters["template_hash"]))


def onboarding_spec(config: OpsgateConfig, template: str, name: str, env: str) -> ChangeSpec:
    """The ChangeSpec asking to onboard `name` in `env` from the configured `template`."""
    found = find_template(config, template)
    if env not in config.environments:
        known = ", ".join(sorted(config.environments))
        raise PrecheckFailed(f"Unknown environment '{env}'. Configured environments: {known}.")
    if not NAME_PATTERN.fullmatch(name):
        raise PrecheckFailed(
            f"'{name}' cannot be onboarded: use lower-case letters, digits and '-' (at most 40), "
            "as it becomes part of artifact and credential names."
        )
    return ChangeSpec(
        action=Action.ONBOARDING,
        target=name,
        environment=env,
        parameters={"template": found.name, "name": name, "template_hash": template_fingerprint(found)},
    )


def _failure_of(exc: ConnectorError, *, step: str, done: Mapping[str, Any], doing: str) -> WorkflowFailed:
    # Throttling and outages pass; a refusal (400/404/409, auth) will refuse again.
    return WorkflowFailed(
        f"{doing} failed: {exc.vendor} answered {exc.detail or type(exc).__name__}.",
        step=step,
        retryable=isinstance(exc, Unavailable | RateLimited),
        evidence={"vendor": exc.vendor, "status": exc.status, "vendor_request_id": exc.request_id},
        partial=done,
    )


class OnboardingWorkflow:
    """Workflow for Action.ONBOARDING (see the module docstring for the steps)."""

    action = Action.ONBOARDING

    def __init__(
        self,
        registry: ConnectorRegistry,
        config: OpsgateConfig,
        *,
        clock: Clock,
        poll_interval: float | None = None,
        job_timeout: float | None = None,
    ) -> None:
        """`poll_interval` / `job_timeout` (seconds) default to the environment's OpenText settings.

        Waiting for clone jobs runs on the connectors' own sleep and monotonic clock (the
        registry's), so tests move time instead of waiting.
        """
        self._registry = registry
        self._config = config
        self._clock = clock
        self._poll_interval = poll_interval
        self._job_timeout = job_timeout
        self.lookups = OnboardingLookups(registry, config)

    def template(self, name: str) -> OnboardingTemplate:
        return find_template(self._config, name)

    async def plan(self, template: str, name: str, environment: str) -> OnboardingPlan:
        """The plan for onboarding `name` in `environment`; PrecheckFailed when it cannot go ahead."""
        found = self.template(template)
        try:
            return await plan_onboarding(self.lookups, found, name=name, environment=environment)
        except OnboardingBlocked as exc:
            raise PrecheckFailed(
                f"Cannot onboard {name} in {environment} from '{found.name}': {exc}."
            ) from None
        except ConnectorError as exc:
            raise PrecheckFailed(
                f"{exc.vendor} could not be asked what exists for {name} in {environment}: {exc.detail}"
            ) from exc

    # --- precheck -----------------------------------------------------------------------------

    async def precheck(self, spec: ChangeSpec, *, requester: str) -> Preview:
        try:
            params = OnboardingParameters.parse(spec.parameters, environment=spec.environment)
        except ValueError as exc:
            raise PrecheckFailed(f"Cannot onboard: {exc}.") from None
        template = self.template(params.template)
        if params.template_hash != template_fingerprint(template):
            raise PrecheckFailed(
                f"The template '{template.name}' changed since this request was prepared; ask again."
            )
        plan = await self.plan(params.template, params.name, params.environment)
        differences = plan.differences
        if plan.existing:
            summary = (
                f"{params.name} already exists in {params.environment} (template {template.name}): "
                f"{len(differences)} difference(s); only what is missing will be created"
            )
        else:
            summary = (
                f"Onboard {params.name} in {params.environment} from template {template.name}: "
                f"{plan.count('create')} thing(s) to create, {plan.count('manual')} for people to do"
            )
        return Preview(
            summary=summary,
            details={
                "template": template.name,
                "name": params.name,
                "environment": params.environment,
                "existing": plan.existing,
                "plan": plan.lines(),
                "differences": differences,
                "settings": dict(plan.settings),
                "warnings": list(plan.warnings),
                "diff": plan.lines(),
            },
        )

    # --- execute ------------------------------------------------------------------------------

    async def execute(self, request: ChangeRequest, ctx: ExecutionContext) -> ExecutionResult:
        try:
            params = OnboardingParameters.parse(request.parameters, environment=request.environment)
            template = self.template(params.template)
        except (ValueError, PrecheckFailed) as exc:
            raise WorkflowFailed(f"Cannot onboard: {exc}", step="check") from None
        if params.template_hash != template_fingerprint(template):
            raise WorkflowFailed(
                f"The template '{template.name}' changed after {request.human_id} was approved; nothing "
                "more was done. Request the onboarding again so approvers see the new plan.",
                step="check",
                partial=dict(ctx.state.get("done") or {}),
            )
        return await _OnboardingRun(self, request, ctx, params, template).run()


class _OnboardingRun:
    """One execution of one onboarding request; `done` is what succeeded, kept in the job state."""

    def __init__(
        self,
        workflow: OnboardingWorkflow,
        request: ChangeRequest,
        ctx: ExecutionContext,
        params: OnboardingParameters,
        template: OnboardingTemplate,
    ) -> None:
        self.workflow = workflow
        self.lookups = workflow.lookups
        self.request = request
        self.ctx = ctx
        self.params = params
        self.template = template
        self.done: dict[str, Any] = dict(ctx.state.get("done") or {})
        self.step = "check"

    async def _record(self, step: str, **state: Any) -> None:
        self.step = step
        await self.ctx.record_step(step, done=dict(self.done), **state)

    def _planned(self) -> list[str]:
        steps = ["clone"] if self.template.artifacts else []
        if self.template.credentials:
            steps.append("credentials")
        if self.template.iconik is not None:
            steps.append("iconik")
        if self.template.canto is not None:
            steps.append("canto")
        return [*steps, "document"]

    def _failed(
        self, reason: str, *, retryable: bool = False, evidence: Mapping[str, Any] | None = None
    ) -> WorkflowFailed:
        finished = [s for s in self._planned() if self._finished(s)]
        done = [_STEP_LABELS[s] for s in finished]
        remaining = [_STEP_LABELS[s] for s in self._planned() if s not in finished]
        summary = (
            f"{reason} Done: {', '.join(done) or 'nothing'}. Not done: {', '.join(remaining) or 'nothing'}. "
            "A retry continues from here without creating anything twice."
        )
        return WorkflowFailed(
            summary, step=self.step, retryable=retryable, evidence=dict(evidence or {}), partial=self.done
        )

    def _finished(self, step: str) -> bool:
        if step == "clone":
            targets = self.ctx.state.get("targets")
            cloned = self.done.get("artifacts") or {}
            return isinstance(targets, list) and all(t["artifact_id"] in cloned for t in targets)
        return ("page" if step == "document" else step) in self.done

    async def run(self) -> ExecutionResult:
        try:
            return await self._run()
        except OnboardingBlocked as exc:
            raise self._failed(f"Cannot go on: {exc}.") from None
        except ConnectorError as exc:
            failure = _failure_of(exc, step=self.step, done=self.done, doing=f"The {self.step} step")
            raise self._failed(
                failure.reason, retryable=failure.retryable, evidence=failure.evidence
            ) from exc

    async def _run(self) -> ExecutionResult:
        env, name = self.params.environment, self.params.name
        recorded = self.ctx.state.get("targets")
        if not isinstance(recorded, list):
            self.step = "check"
            resolved = [
                await self.lookups.artifact_target(spec, name=name, environment=env)
                for spec in self.template.artifacts
            ]
            recorded = [target.as_state() for target in resolved]
            started_at = self.workflow._clock().astimezone(UTC).isoformat()
            await self._record("clone", targets=recorded, started_at=started_at)
        for target in [ArtifactTarget.from_state(item) for item in recorded]:
            await self._clone(target)
        if self.template.credentials and "credentials" not in self.done:
            await self._credentials()
        if self.template.iconik is not None and "iconik" not in self.done:
            await self._collection()
        if self.template.canto is not None and "canto" not in self.done:
            await self._album()
        if "page" not in self.done:
            await self._document()
        await self._record("done", creating=None)
        return self._result()

    # --- clone --------------------------------------------------------------------------------

    async def _clone(self, target: ArtifactTarget) -> None:
        artifacts: dict[str, Any] = dict(self.done.get("artifacts") or {})
        if target.artifact_id in artifacts:
            return
        env = self.params.environment
        opentext = self.lookups.opentext(env)
        clones: dict[str, Any] = dict(self.ctx.state.get("clones") or {})
        entry: dict[str, Any] | None = clones.get(target.artifact_id)
        progress = self.ctx.progress
        self.step = "clone"
        if entry is None and await self.lookups.existing_artifact(env, target.artifact_id) is not None:
            artifacts[target.artifact_id] = {**target.as_state(), "outcome": "existed"}
            self.done["artifacts"] = artifacts
            await self._record("clone")
            await progress.step("clone", f"{target.artifact_id} already exists: left as it is", ok=True)
            return
        if entry is None or entry.get("failed"):
            tries = int((entry or {}).get("tries", 0)) + 1
            entry = {"key": f"{self.request.human_id}:{target.artifact_id}:{tries}", "tries": tries}
            clones[target.artifact_id] = entry
            # The key is recorded before the POST: a run that dies before the answer asks again
            # with the same key and OpenText hands back the same job instead of a second clone.
            await self._record("clone", clones=clones)
        if not entry.get("job_id"):
            job = await opentext.clone_artifact(
                target.source,
                new_name=target.name,
                requested_by=self.request.requester,
                solution=target.solution,
                version=target.version,
                idempotency_key=str(entry["key"]),
            )
            entry = {**entry, "job_id": job.job_id}
            clones[target.artifact_id] = entry
            await self._record("clone", clones=clones)
            await progress.step(
                "clone",
                f"OpenText job {job.job_id}: {target.source} {target.version} -> {target.artifact_id}",
            )
        job_id = str(entry["job_id"])
        settings = opentext.settings
        finished = await opentext.wait_for_job(
            job_id,
            poll_interval=self.workflow._poll_interval or settings.job_poll_interval,
            max_wait=self.workflow._job_timeout or settings.job_timeout,
        )
        if finished.state is JobState.FAILED:
            clones[target.artifact_id] = {**entry, "failed": True}
            await self._record("clone", clones=clones)
            error = finished.error
            why = f"{error.message} ({error.code})" if error else "no reason given"
            raise self._failed(
                f"OpenText job {job_id} cloning {target.source} into {target.artifact_id} failed: {why}. "
                "A retry starts a new clone job.",
                evidence={"job_id": job_id, "error_code": error.code if error else None},
            )
        artifacts[target.artifact_id] = {**target.as_state(), "outcome": "created", "job_id": job_id}
        self.done["artifacts"] = artifacts
        await self._record("clone")
        await progress.step("clone", f"{target.artifact_id} created (job {job_id})", ok=True)

    # --- credentials --------------------------------------------------------------------------

    async def _credentials(self) -> None:
        await self._record("credentials")
        found: list[dict[str, Any]] = []
        for spec in self.template.credentials:
            facts, differences = await self.lookups.credential(
                spec, name=self.params.name, environment=self.params.environment
            )
            found.append({**asdict(facts), "differences": list(differences)})
        self.done["credentials"] = found
        await self._record("credentials")
        to_create = [c["credential_id"] for c in found if not c["in_opentext"]]
        to_configure = [c["name"] for c in found if not c["configured"]]
        detail = f"{len(found)} credential(s)"
        if to_create:
            detail += f"; to create in OpenText (its API cannot): {', '.join(to_create)}"
        if to_configure:
            detail += f"; to add to credentials:: {', '.join(to_configure)}"
        await self.ctx.progress.step("credentials", detail, ok=None if (to_create or to_configure) else True)

    # --- iconik -------------------------------------------------------------------------------

    async def _collection(self) -> None:
        self.step = "iconik"
        lookup = await self.lookups.collection(
            self.template, name=self.params.name, environment=self.params.environment
        )
        creating = self.ctx.state.get("creating") == "iconik"
        outcome: Outcome
        if lookup.found is not None:
            # Found while the step was marked as creating: it is the one the last run made.
            outcome = "created" if creating and lookup.found.external_id == lookup.external_id else "existed"
            collection = lookup.found
        else:
            # Recorded before the create; what was created is recorded with the next step. A run
            # that dies in between finds the collection by its external id instead of making a twin.
            await self._record("iconik", creating="iconik")
            collection = await self.lookups.iconik(self.params.environment).create_collection(
                lookup.title,
                parent_id=lookup.parent_id,
                external_id=lookup.external_id,
                storage_id=lookup.storage.id,
            )
            outcome = "created"
        self.done["iconik"] = asdict(
            CollectionFacts(collection.id, collection.title, lookup.storage.name, outcome)
        )
        await self.ctx.progress.step(
            "iconik", f"collection {collection.title} {outcome}, routed to {lookup.storage.name}", ok=True
        )

    # --- Canto --------------------------------------------------------------------------------

    async def _album(self) -> None:
        self.step = "canto"
        lookup = await self.lookups.album(
            self.template, name=self.params.name, environment=self.params.environment
        )
        creating = self.ctx.state.get("creating") == "canto"
        outcome: Outcome
        if lookup.found is not None:
            album, outcome = lookup.found, "created" if creating else "existed"
        else:
            await self._record("canto", creating="canto")
            canto = self.lookups.canto(self.params.environment)
            assert self.template.canto is not None
            try:
                album = await canto.create_album(
                    lookup.name,
                    parent_folder_id=lookup.folder.id,
                    description=render(
                        self.template.canto.description, name=self.params.name, env=self.params.environment
                    ),
                )
            except Conflict:
                # Someone made it between our look and our create: use theirs, never a twin.
                again = await self.lookups.album(
                    self.template, name=self.params.name, environment=self.params.environment
                )
                if again.found is None:
                    raise
                album, outcome = again.found, "existed"
            else:
                outcome = "created"
        self.done["canto"] = asdict(AlbumFacts(album.id, lookup.path, outcome))
        await self.ctx.progress.step("canto", f"album {lookup.path} {outcome}", ok=True)

    # --- document -----------------------------------------------------------------------------

    async def _document(self) -> None:
        home = self.lookups.page_home(
            self.template, name=self.params.name, environment=self.params.environment
        )
        if home is None:
            self.done["page"] = None
            await self._record("document", creating=None)
            await self.ctx.progress.step("document", "no Confluence space for this template; no page written")
            return
        await self._record("document", creating=None)
        body = build_onboarding_page(self._facts())
        store = self.workflow._registry.confluence(home.environment)
        write = await store.upsert_page(
            home.space, home.title, body, message=f"opsgate {self.request.human_id}"
        )
        if write.outcome == "created":
            try:
                await store.add_labels(write.page.id, ["opsgate", "onboarding"])
            except ConnectorError as exc:
                # Labels only help people find pages; the page itself is written.
                log.warning("labelling the onboarding page failed", extra={"detail": exc.detail})
        self.done["page"] = {
            "id": write.page.id,
            "title": write.page.title,
            "url": write.page.web_url,
            "space": home.space,
            "outcome": write.outcome,
        }
        await self.ctx.progress.step(
            "document", f"onboarding page {write.outcome}: {write.page.web_url or home.title}", ok=True
        )

    def _facts(self) -> OnboardingFacts:
        started = self.ctx.state.get("started_at")
        onboarded_at = datetime.fromisoformat(started) if isinstance(started, str) else self.workflow._clock()
        artifacts = tuple(
            ArtifactFacts(a["artifact_id"], a["kind"], a["source"], a["version"], a["outcome"])
            for a in (self.done.get("artifacts") or {}).values()
        )
        credentials = tuple(
            CredentialFacts(**{k: v for k, v in c.items() if k != "differences"})
            for c in self.done.get("credentials") or []
        )
        collection = self.done.get("iconik")
        album = self.done.get("canto")
        return OnboardingFacts(
            template=self.template,
            name=self.params.name,
            environment=self.params.environment,
            request_ref=self.request.human_id,
            requester=self.request.requester,
            approvers=tuple(a.approver for a in self.request.valid_approvals),
            onboarded_at=onboarded_at,
            settings=self.template.settings_for(self.params.environment, name=self.params.name),
            artifacts=artifacts,
            credentials=credentials,
            collection=CollectionFacts(**collection) if collection else None,
            album=AlbumFacts(**album) if album else None,
        )

    def _result(self) -> ExecutionResult:
        facts = self._facts()
        created = [a.artifact_id for a in facts.artifacts if a.outcome == "created"]
        existed = [a.artifact_id for a in facts.artifacts if a.outcome == "existed"]
        for thing in (facts.collection, facts.album):
            if thing is not None:
                label = thing.title if isinstance(thing, CollectionFacts) else thing.path
                (created if thing.outcome == "created" else existed).append(label)
        missing = [c for c in facts.credentials if not c.in_opentext]
        unconfigured = [c for c in facts.credentials if not c.configured]
        page = self.done.get("page")
        result: dict[str, Any] = {
            "template": self.template.name,
            "name": self.params.name,
            "environment": self.params.environment,
            "created": ", ".join(created) or "nothing",
            "already_there": ", ".join(existed) or "nothing",
            "artifacts": [asdict(a) for a in facts.artifacts],
            "collection": asdict(facts.collection) if facts.collection else None,
            "album": asdict(facts.album) if facts.album else None,
            "credentials": [asdict(c) for c in facts.credentials],
            "page": page,
        }
        if missing:
            result["opentext_todo"] = (
                "create credential(s) " + ", ".join(c.credential_id for c in missing) + " (its API cannot)"
            )
        if unconfigured:
            result["config_todo"] = "add " + ", ".join(c.name for c in unconfigured) + " to credentials:"
            result["credential_config"] = credential_config_yaml(unconfigured)
        evidence: dict[str, Any] = {
            "clone_jobs": {k: v.get("job_id") for k, v in (self.done.get("artifacts") or {}).items()},
            "opentext_request_id": self.lookups.opentext(self.params.environment).last_request_id
            if self.template.artifacts or self.template.credentials
            else None,
        }
        if page:
            evidence["confluence_page"] = page
        links = {"Onboarding page": str(page["url"])} if page and page.get("url") else {}
        return ExecutionResult(result=result, evidence=evidence, links=links)


if TYPE_CHECKING:
    # mypy proves the workflow fulfils the contract the executor relies on.
    def _is_a_workflow(workflow: OnboardingWorkflow) -> Workflow:
        return workflow
