"""Rotate an OpenText client secret the AWS Secrets Manager way: create, set, test, finish.

    create    OpenText creates a pending secret (returned once); it works alongside the current one
    set       the secret store keeps it as the `pending` version
    test      OpenText authenticates with it, and opsgate does too with the value read back
    activate  OpenText makes it current; the previous secret stays valid for the grace period
    promote   the store's pending version becomes current, the old current becomes previous
    (later)   `revoke_due_previous`, a scheduled job, ends each grace period: OpenText revokes the
              previous secret and the store destroys it

Every step is recorded (`ctx.record_step`) before its side effect, so a retry resumes where the
run stopped: a secret that was created and stored is never created again. A failure at any step
leaves the current secret untouched and working. The clear value exists only in memory between
create and set; progress messages, results, evidence, job state and logs carry fingerprints.

Also here, as pure functions for the scheduler: `due_rotations` (AWS window semantics: a missed
window waits for the next), `expiry_warnings` and the credential ownership matrix page.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final, Literal

from bot.config.credentials import CredentialConfig
from bot.config.opsgate import OpsgateConfig
from bot.domain.audit import Fingerprinter
from bot.domain.durations import format_duration, parse_duration
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
from connectors.confluence import PageWrite
from connectors.errors import ConnectorError, NotFound, RateLimited, Unavailable
from connectors.opentext import Credential, CredentialStatus, OpenTextConnector, Rotation, RotationState
from connectors.registry import ConnectorNotConfigured, ConnectorRegistry
from connectors.secrets import SecretNotFound, SecretStore, SecretStoreError

__all__ = [
    "OWNERSHIP_MATRIX_TITLE",
    "ROTATION_STEPS",
    "ExpiryWarning",
    "PreviousRevocation",
    "RotationParameters",
    "RotationWorkflow",
    "build_ownership_matrix_page",
    "credential_config_problems",
    "due_rotations",
    "expiry_warnings",
    "find_credential",
    "last_rotated_from",
    "next_due",
    "publish_ownership_matrix",
    "revoke_due_previous",
    "rotation_spec",
    "select_store",
]

ROTATION_STEPS: Final = ("create", "set", "test", "activate", "promote", "done")
OWNERSHIP_MATRIX_TITLE: Final = "Credential ownership matrix"
Trigger = Literal["manual", "schedule"]
SecretStores = SecretStore | Mapping[str, SecretStore]


# --- request parameters -------------------------------------------------------------------------


@dataclass(frozen=True)
class RotationParameters:
    """What a rotation request is bound to (approvals are void if any of it changes)."""

    credential: str
    credential_id: str
    grace_period: timedelta
    store: str
    trigger: str = "manual"
    validity_days: int | None = None
    window_start: str | None = None

    @classmethod
    def parse(cls, parameters: Mapping[str, Any]) -> RotationParameters:
        missing = [
            key for key in ("credential", "credential_id", "grace_period", "store") if not parameters.get(key)
        ]
        if missing:
            raise ValueError(f"a rotation needs {', '.join(missing)}")
        validity = parameters.get("validity_days")
        return cls(
            credential=str(parameters["credential"]),
            credential_id=str(parameters["credential_id"]),
            grace_period=parse_duration(parameters["grace_period"]),
            store=str(parameters["store"]),
            trigger=str(parameters.get("trigger") or "manual"),
            validity_days=int(validity) if validity else None,
            window_start=str(parameters["window_start"]) if parameters.get("window_start") else None,
        )


def rotation_spec(
    credential: CredentialConfig, *, trigger: Trigger = "manual", window_start: datetime | None = None
) -> ChangeSpec:
    """The ChangeSpec asking to rotate `credential` now (manual) or in a schedule window."""
    parameters: dict[str, Any] = {
        "credential": credential.name,
        "credential_id": credential.credential_id,
        "grace_period": format_duration(credential.grace_period),
        "store": credential.store,
        "trigger": trigger,
    }
    if credential.validity_days is not None:
        parameters["validity_days"] = credential.validity_days
    if window_start is not None:
        parameters["window_start"] = window_start.astimezone(UTC).isoformat()
    return ChangeSpec(
        action=Action.ROTATION,
        target=credential.name,
        environment=credential.environment,
        parameters=parameters,
    )


def credential_config_problems(config: OpsgateConfig) -> list[str]:
    """`key.path: problem` lines for credentials whose environment cannot rotate them (for `check`)."""
    problems = []
    for index, credential in enumerate(config.credentials):
        environment = config.environments.get(credential.environment)
        if environment is None:
            known = ", ".join(sorted(config.environments))
            problems.append(
                f"credentials[{index}].environment: {credential.environment!r} is not a declared environment ({known})"
            )
        elif environment.opentext is None:
            problems.append(
                f"credentials[{index}].environment: environments.{credential.environment}.opentext is not "
                "configured, so the credential cannot be rotated"
            )
    return problems


def find_credential(config: OpsgateConfig, name: str) -> CredentialConfig | None:
    """The configured credential called `name`."""
    return next((credential for credential in config.credentials if credential.name == name), None)


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).isoformat()


def _when(moment: datetime | str | None) -> str:
    if moment is None:
        return "never"
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _requested_by(request: ChangeRequest) -> str:
    # Recognisable later: a rotation OpenText holds under this marker but we have no record of
    # is an orphan of an interrupted run of this request.
    return f"opsgate {request.human_id} for {request.requester}"


def _failure(
    exc: ConnectorError,
    *,
    step: str,
    doing: str,
    partial: Mapping[str, Any] | None = None,
    outcome: str = "The current secret is unchanged.",
) -> WorkflowFailed:
    return WorkflowFailed(
        f"{doing} failed: {exc.detail}. {outcome}",
        step=step,
        retryable=isinstance(exc, Unavailable | RateLimited),
        evidence={"vendor": exc.vendor, "status": exc.status, "vendor_request_id": exc.request_id},
        partial=partial,
    )


def select_store(stores: SecretStores, credential: CredentialConfig) -> SecretStore:
    """The one store, or the store of the credential's kind; LookupError when it is not set up."""
    if isinstance(stores, Mapping):
        store = stores.get(credential.store)
        if store is None:
            raise LookupError(
                f"credential {credential.name} uses the {credential.store} secret store, which is not configured"
            )
        return store
    return stores


# --- the workflow ---------------------------------------------------------------------------------


class RotationWorkflow:
    """Workflow for Action.ROTATION (see the module docstring for the steps)."""

    action = Action.ROTATION

    def __init__(
        self,
        registry: ConnectorRegistry,
        config: OpsgateConfig,
        store: SecretStores,
        fingerprinter: Fingerprinter,
        *,
        clock: Clock,
    ) -> None:
        """`store` serves every credential, or maps a credential's `store` kind ("local", "vault") to one."""
        self._registry = registry
        self._config = config
        self._stores = store
        self._fingerprinter = fingerprinter
        self._clock = clock

    def store_for(self, credential: CredentialConfig) -> SecretStore:
        """The store holding `credential`; LookupError when that kind is not set up."""
        return select_store(self._stores, credential)

    def _short(self, fingerprint: str | None) -> str:
        return Fingerprinter.short(fingerprint) if fingerprint else "(none)"

    async def _current_fingerprint(self, store: SecretStore, name: str) -> str | None:
        for info in await store.versions(name):
            if info.label == "current":
                return info.fingerprint
        return None

    def _resolve(self, parameters: Mapping[str, Any]) -> tuple[RotationParameters, CredentialConfig]:
        params = RotationParameters.parse(parameters)
        credential = find_credential(self._config, params.credential)
        if credential is None:
            known = ", ".join(c.name for c in self._config.credentials) or "none"
            raise LookupError(f"no credential named {params.credential!r} is configured (known: {known})")
        if credential.credential_id != params.credential_id or credential.store != params.store:
            raise LookupError(
                f"the configuration of {credential.name} changed since the request was made "
                "(OpenText credential or store); request the rotation again"
            )
        return params, credential

    # --- precheck ------------------------------------------------------------------------------

    async def precheck(self, spec: ChangeSpec, *, requester: str) -> Preview:
        try:
            params, credential = self._resolve(spec.parameters)
            store = self.store_for(credential)
            connector = self._registry.opentext(credential.environment)
        except (ValueError, LookupError) as exc:
            raise PrecheckFailed(f"cannot rotate: {exc}") from None
        if spec.target != credential.name or spec.environment != credential.environment:
            raise PrecheckFailed(
                "the request's target and environment must be the credential's name and environment"
            )
        try:
            found = await connector.get_credential(credential.environment, credential.credential_id)
        except NotFound:
            raise PrecheckFailed(
                f"OpenText in {credential.environment} has no credential {credential.credential_id!r}"
            ) from None
        except ConnectorError as exc:
            raise PrecheckFailed(
                f"OpenText in {credential.environment} is unreachable: {exc.detail}"
            ) from None
        if found.kind != "oauth_client":
            raise PrecheckFailed(
                f"{credential.credential_id} is a {found.kind}; only OAuth client secrets rotate via the API"
            )
        now = self._clock()
        warnings: list[str] = []
        open_rotation = found.rotation
        if open_rotation is not None:
            if _grace_over(open_rotation, now):
                warnings.append(
                    f"rotation {open_rotation.rotation_id} is past its grace period and will be completed first"
                )
            else:
                raise PrecheckFailed(_open_rotation_problem(credential, open_rotation))
        if found.status in (CredentialStatus.EXPIRED, CredentialStatus.EXPIRING):
            warnings.append(f"the credential is {found.status.value} (expires {_when(found.expires_at)})")
        try:
            current = await self._current_fingerprint(store, credential.name)
        except SecretStoreError as exc:
            raise PrecheckFailed(f"the {credential.store} secret store cannot be read: {exc}") from None
        validity = f"{params.validity_days} days" if params.validity_days else "OpenText's default validity"
        return Preview(
            summary=f"Rotate the client secret of {credential.name} ({found.client_id or found.id}, {credential.environment})",
            details={
                "credential": credential.name,
                "credential_id": credential.credential_id,
                "owner": credential.owner,
                "current_version": f"secret {self._short(current)}" if current else "not held by opsgate yet",
                "requested_version": "a new secret, created when the rotation runs",
                "diff": [
                    f"expires {_when(found.expires_at)} -> renewed for {validity}",
                    f"the previous secret keeps working for {format_duration(params.grace_period)} after the switch",
                    f"the new secret is kept in the {credential.store} store (pending until tested)",
                ],
                "warnings": warnings,
            },
        )

    # --- execute -------------------------------------------------------------------------------

    async def execute(self, request: ChangeRequest, ctx: ExecutionContext) -> ExecutionResult:
        try:
            params, credential = self._resolve(request.parameters)
            store = self.store_for(credential)
            connector = self._registry.opentext(credential.environment)
        except (ValueError, LookupError) as exc:
            raise WorkflowFailed(f"cannot rotate: {exc}", step="create") from None
        run = _Run(self, request, ctx, params, credential, connector, store)
        if ctx.step in (None, "create", "set") and ctx.state.get("secret_version") is None:
            await run.create_and_set()
        if ctx.step == "test":
            await run.test()
        if ctx.step == "activate":
            await run.activate()
        if ctx.step == "promote":
            await run.promote()
        return run.result()


class _Run:
    """One execution of a rotation request: the steps, sharing what they need."""

    def __init__(
        self,
        workflow: RotationWorkflow,
        request: ChangeRequest,
        ctx: ExecutionContext,
        params: RotationParameters,
        credential: CredentialConfig,
        connector: OpenTextConnector,
        store: SecretStore,
    ) -> None:
        self.workflow = workflow
        self.request = request
        self.ctx = ctx
        self.params = params
        self.credential = credential
        self.connector = connector
        self.store = store
        self.env = credential.environment
        self.cred_id = credential.credential_id

    @property
    def state(self) -> dict[str, Any]:
        return self.ctx.state

    def short(self, fingerprint: str | None) -> str:
        return self.workflow._short(fingerprint)

    def now(self) -> datetime:
        return self.workflow._clock()

    # --- create + set ------------------------------------------------------------------------

    async def create_and_set(self) -> None:
        if self.state.get("rotation_id"):
            if await self._adopt_stored_pending():
                return
            await self._abandon(str(self.state["rotation_id"]), "its secret was never stored")
        if self.ctx.step != "create":
            await self.ctx.record_step("create", rotation_id=None, secret_fingerprint=None)
        await self._clear_open_rotation()
        try:
            pending = await self.connector.start_rotation(
                self.env,
                self.cred_id,
                requested_by=_requested_by(self.request),
                validity_days=self.params.validity_days,
            )
        except ConnectorError as exc:
            raise _failure(exc, step="create", doing="Creating the new secret at OpenText") from None
        fingerprint = self.workflow._fingerprinter.fingerprint(pending.secret)
        await self.ctx.record_step("set", rotation_id=pending.rotation_id, secret_fingerprint=fingerprint)
        await self.ctx.progress.step(
            "create",
            f"OpenText created pending secret {self.short(fingerprint)} (rotation {pending.rotation_id})",
        )
        try:
            version = await self.store.put_pending(self.credential.name, pending.secret)
        except SecretStoreError as exc:
            # The value exists nowhere else now: cancel it so no unowned secret keeps authenticating.
            cancelled = await self._cancel_quietly(pending.rotation_id)
            outcome = "cancelled" if cancelled else "left pending (cancelling failed too; a retry cancels it)"
            raise WorkflowFailed(
                f"Storing the new secret failed: {exc}. OpenText rotation {pending.rotation_id} was {outcome}; "
                "the current secret is unchanged.",
                step="set",
                retryable=True,
                evidence={"rotation_id": pending.rotation_id, "secret_fingerprint": fingerprint},
            ) from None
        await self._stored(version, fingerprint)

    async def _stored(self, version: int, fingerprint: str) -> None:
        await self.ctx.record_step("test", secret_version=version)
        await self.ctx.progress.step(
            "set",
            f"pending secret {self.short(fingerprint)} stored as version {version} ({self.credential.store} store)",
        )

    async def _adopt_stored_pending(self) -> bool:
        """After an interrupted `set`: keep going if the store holds the secret OpenText created."""
        rotation_id = str(self.state["rotation_id"])
        try:
            rotation = await self.connector.get_rotation(self.env, self.cred_id, rotation_id)
            stored = [v for v in await self.store.versions(self.credential.name) if v.label == "pending"]
        except ConnectorError as exc:
            raise _failure(exc, step="set", doing=f"Reading rotation {rotation_id}") from None
        except SecretStoreError as exc:
            raise WorkflowFailed(
                f"Reading the secret store failed: {exc}", step="set", retryable=True
            ) from None
        if rotation.state not in (RotationState.PENDING, RotationState.TESTED):
            return False
        match = next((v for v in stored if v.fingerprint == self.state.get("secret_fingerprint")), None)
        if match is None:
            return False
        await self.ctx.progress.step(
            "set", f"resuming: pending secret {self.short(match.fingerprint)} is already stored"
        )
        await self._stored(match.version, match.fingerprint)
        return True

    async def _abandon(self, rotation_id: str, why: str) -> None:
        try:
            await self._cancel(rotation_id)
            await self.store.discard_pending(self.credential.name)
        except ConnectorError as exc:
            raise _failure(exc, step="set", doing=f"Cancelling rotation {rotation_id}") from None
        except SecretStoreError as exc:
            raise WorkflowFailed(
                f"Cleaning the secret store failed: {exc}", step="set", retryable=True
            ) from None
        await self.ctx.record_step("create", rotation_id=None, secret_fingerprint=None)
        await self.ctx.progress.step(
            "create", f"rotation {rotation_id} abandoned ({why}); creating a new secret"
        )

    async def _cancel(self, rotation_id: str) -> None:
        rotation = await self.connector.get_rotation(self.env, self.cred_id, rotation_id)
        if rotation.state in (RotationState.PENDING, RotationState.TESTED):
            await self.connector.cancel_rotation(self.env, self.cred_id, rotation_id)

    async def _cancel_quietly(self, rotation_id: str) -> bool:
        try:
            await self._cancel(rotation_id)
        except ConnectorError:
            return False
        return True

    async def _clear_open_rotation(self) -> None:
        """Before creating: finish a rotation past its grace, cancel our own orphan, refuse others."""
        try:
            found = await self.connector.get_credential(self.env, self.cred_id)
        except ConnectorError as exc:
            raise _failure(exc, step="create", doing=f"Reading credential {self.cred_id}") from None
        await self.ctx.record_step("create", client_id=found.client_id)
        rotation = found.rotation
        if rotation is None:
            return
        try:
            if _grace_over(rotation, self.now()):
                await self.connector.revoke_previous_secret(self.env, self.cred_id, rotation.rotation_id)
                await self.store.revoke_previous(self.credential.name)
                await self.ctx.progress.step(
                    "create", f"completed rotation {rotation.rotation_id} (grace period over)"
                )
                return
            if rotation.state in (RotationState.PENDING, RotationState.TESTED) and (
                rotation.requested_by or ""
            ).startswith(f"opsgate {self.request.human_id} "):
                # Ours, from a run interrupted before its answer was recorded: the secret is lost.
                await self.connector.cancel_rotation(self.env, self.cred_id, rotation.rotation_id)
                await self.store.discard_pending(self.credential.name)
                await self.ctx.progress.step(
                    "create", f"cancelled rotation {rotation.rotation_id} left by an interrupted run"
                )
                return
        except ConnectorError as exc:
            raise _failure(exc, step="create", doing=f"Clearing rotation {rotation.rotation_id}") from None
        except SecretStoreError as exc:
            raise WorkflowFailed(
                f"Updating the secret store failed: {exc}", step="create", retryable=True
            ) from None
        raise WorkflowFailed(_open_rotation_problem(self.credential, rotation), step="create")

    # --- test -----------------------------------------------------------------------------------

    async def test(self) -> None:
        rotation_id = str(self.state["rotation_id"])
        try:
            pending = await self.store.get(self.credential.name, "pending")
        except SecretNotFound:
            raise WorkflowFailed(
                "The store no longer holds the pending secret; request the rotation again.",
                step="test",
                evidence={"rotation_id": rotation_id},
            ) from None
        except SecretStoreError as exc:
            raise WorkflowFailed(
                f"Reading the pending secret failed: {exc}", step="test", retryable=True
            ) from None
        if self.workflow._fingerprinter.fingerprint(pending) != self.state.get("secret_fingerprint"):
            raise WorkflowFailed(
                "The store's pending secret is not the one OpenText created; request the rotation again.",
                step="test",
                evidence={"rotation_id": rotation_id},
            )
        partial = {"rotation_id": rotation_id, "stored_version": self.state.get("secret_version")}
        try:
            tested = await self.connector.test_rotation(self.env, self.cred_id, rotation_id)
        except ConnectorError as exc:
            raise _failure(
                exc, step="test", doing="Testing the pending secret at OpenText", partial=partial
            ) from None
        if not tested.authenticated:
            raise WorkflowFailed(
                f"OpenText could not authenticate {self.cred_id} with the pending secret "
                f"{self.short(self.state.get('secret_fingerprint'))}; the current secret is unchanged.",
                step="test",
                retryable=True,
                evidence={"rotation_id": rotation_id, "platform_test": "failed"},
                partial=partial,
            )
        own_check = "skipped (no client id or tenant)"
        client_id = self.state.get("client_id")
        if client_id and self.connector.settings.tenant_id:
            try:
                accepted = await self.connector.authenticate_client(str(client_id), pending)
            except ConnectorError as exc:
                raise _failure(
                    exc, step="test", doing="Signing in with the pending secret", partial=partial
                ) from None
            if not accepted:
                raise WorkflowFailed(
                    f"OpenText's token endpoint refused {client_id} with the pending secret; the current secret is unchanged.",
                    step="test",
                    retryable=True,
                    evidence={
                        "rotation_id": rotation_id,
                        "platform_test": "passed",
                        "opsgate_test": "failed",
                    },
                    partial=partial,
                )
            own_check = "authenticated"
        tested_at = tested.tested_at or self.now()
        await self.ctx.record_step("activate", tested_at=_iso(tested_at), opsgate_test=own_check)
        await self.ctx.progress.step(
            "test",
            f"the pending secret authenticates (OpenText test passed; opsgate sign-in {own_check})",
            ok=True,
        )

    # --- finish ----------------------------------------------------------------------------------

    async def activate(self) -> None:
        rotation_id = str(self.state["rotation_id"])
        partial = {"rotation_id": rotation_id, "tested": True}
        try:
            previous = await self.workflow._current_fingerprint(self.store, self.credential.name)
        except SecretStoreError as exc:
            raise WorkflowFailed(
                f"Reading the secret store failed: {exc}", step="activate", retryable=True
            ) from None
        try:
            rotation = await self.connector.get_rotation(self.env, self.cred_id, rotation_id)
            if rotation.state is RotationState.TESTED:
                rotation = await self.connector.activate_rotation(
                    self.env,
                    self.cred_id,
                    rotation_id,
                    grace_seconds=int(self.params.grace_period.total_seconds()),
                )
            elif rotation.state is not RotationState.ACTIVE:
                raise WorkflowFailed(
                    f"OpenText rotation {rotation_id} is {rotation.state.value}, so it cannot be activated; "
                    "the current secret is unchanged. Request the rotation again.",
                    step="activate",
                    evidence={"rotation_id": rotation_id, "state": rotation.state.value},
                )
        except ConnectorError as exc:
            raise _failure(
                exc,
                step="activate",
                doing="Activating the new secret at OpenText",
                partial=partial,
                # The call may have landed before the failure: either way the old secret still works
                # (current, or previous within the grace period), and a retry reads where it stands.
                outcome="The previous secret keeps working either way; a retry finishes the switch.",
            ) from None
        await self.ctx.record_step(
            "promote",
            previous_fingerprint=previous,
            activated_at=_iso(rotation.activated_at or self.now()),
            previous_valid_until=_iso(rotation.previous_valid_until),
            new_expires_at=_iso(rotation.new_expires_at),
        )
        await self.ctx.progress.step(
            "activate",
            f"OpenText now uses {self.short(self.state.get('secret_fingerprint'))}; the previous secret keeps "
            f"working until {_when(rotation.previous_valid_until)}",
        )

    async def promote(self) -> None:
        version = int(self.state["secret_version"])
        try:
            await self.store.promote(self.credential.name, version)
        except SecretStoreError as exc:
            raise WorkflowFailed(
                f"OpenText already uses the new secret, but the {self.credential.store} store could not make it "
                f"current: {exc}. The store still serves the previous secret, valid until "
                f"{_when(self.state.get('previous_valid_until'))}; retry to finish.",
                step="promote",
                retryable=True,
                partial={"rotation_id": self.state.get("rotation_id"), "activated": True},
            ) from None
        await self.ctx.record_step("done", promoted_at=_iso(self.now()))
        await self.ctx.progress.step(
            "promote",
            f"{self.credential.name}: the store serves {self.short(self.state.get('secret_fingerprint'))} as current "
            f"(version {version}); the previous one is revoked after the grace period",
            ok=True,
        )

    def result(self) -> ExecutionResult:
        state = self.state
        result = {
            "credential": self.credential.name,
            "environment": self.env,
            "credential_id": self.cred_id,
            "rotation_id": state.get("rotation_id"),
            "secret_fingerprint": state.get("secret_fingerprint"),
            "previous_fingerprint": state.get("previous_fingerprint"),
            "store": self.credential.store,
            "store_version": state.get("secret_version"),
            "previous_valid_until": state.get("previous_valid_until"),
            "new_expires_at": state.get("new_expires_at"),
        }
        evidence = {
            "rotation_id": state.get("rotation_id"),
            "secret_fingerprint": state.get("secret_fingerprint"),
            "previous_fingerprint": state.get("previous_fingerprint"),
            "platform_test": "authenticated",
            "opsgate_test": state.get("opsgate_test"),
            "tested_at": state.get("tested_at"),
            "activated_at": state.get("activated_at"),
            "promoted_at": state.get("promoted_at"),
            "grace_period": format_duration(self.params.grace_period),
            "opentext_request_id": self.connector.last_request_id,
        }
        return ExecutionResult(result=result, evidence=evidence)


def _grace_over(rotation: Rotation, now: datetime) -> bool:
    return (
        rotation.state is RotationState.ACTIVE
        and rotation.previous_valid_until is not None
        and rotation.previous_valid_until <= now
    )


def _open_rotation_problem(credential: CredentialConfig, rotation: Rotation) -> str:
    if rotation.state is RotationState.ACTIVE:
        return (
            f"{credential.name} was rotated recently: its previous secret stays valid until "
            f"{_when(rotation.previous_valid_until)} (rotation {rotation.rotation_id}); rotate again after that"
        )
    return (
        f"{credential.name} already has an open rotation {rotation.rotation_id} ({rotation.state.value}, "
        f"started by {rotation.requested_by or 'someone'}); finish or cancel it first"
    )


# --- grace periods: revoke the previous secret ------------------------------------------------------


@dataclass(frozen=True)
class PreviousRevocation:
    """What `revoke_due_previous` did for one credential (`error` set when it failed)."""

    name: str
    environment: str
    rotation_id: str | None
    revoked_at: datetime
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


async def revoke_due_previous(
    registry: ConnectorRegistry, config: OpsgateConfig, store: SecretStores, *, now: datetime
) -> list[PreviousRevocation]:
    """Scheduled job: end every grace period that is over (OpenText first, then the store).

    Also destroys a store's previous version once OpenText has no open rotation for the
    credential (its previous secret no longer works there). One credential failing does not
    stop the others; failures come back with `error` set, for alerting.
    """
    outcomes: list[PreviousRevocation] = []
    for credential in config.credentials:
        rotation_id: str | None = None
        try:
            secret_store = select_store(store, credential)
            connector = registry.opentext(credential.environment)
            found = await connector.get_credential(credential.environment, credential.credential_id)
            rotation = found.rotation
            if rotation is not None and _grace_over(rotation, now):
                rotation_id = rotation.rotation_id
                await connector.revoke_previous_secret(
                    credential.environment, credential.credential_id, rotation_id
                )
                await secret_store.revoke_previous(credential.name)
            elif rotation is not None or not await secret_store.revoke_previous(credential.name):
                # Still in its grace period, or nothing to revoke.
                continue
        except (ConnectorError, SecretStoreError, LookupError) as exc:
            detail = exc.detail if isinstance(exc, ConnectorError) else str(exc)
            outcomes.append(
                PreviousRevocation(credential.name, credential.environment, rotation_id, now, detail)
            )
            continue
        outcomes.append(PreviousRevocation(credential.name, credential.environment, rotation_id, now))
    return outcomes


# --- schedules ---------------------------------------------------------------------------------------


def due_rotations(
    config: OpsgateConfig, last_rotated: Mapping[str, datetime | None], now: datetime
) -> list[ChangeSpec]:
    """Rotations due now: those in an open window not yet used, plus those never rotated.

    A window that closed unused (opsgate down, request rejected) is not made up for: the
    credential waits for the next window, as in AWS Secrets Manager. A credential without a
    last rotation (None or absent) is due at once, as AWS rotates when rotation is turned on.
    """
    due = []
    for credential in config.credentials:
        last = last_rotated.get(credential.name)
        if last is None:
            due.append(rotation_spec(credential, trigger="schedule"))
            continue
        window = credential.schedule.open_window(last, now, credential.rotation_window)
        if window is not None:
            due.append(rotation_spec(credential, trigger="schedule", window_start=window[0]))
    return due


def next_due(credential: CredentialConfig, last_rotated: datetime | None, now: datetime) -> datetime:
    """When the credential's next rotation window opens (now if one is open and unused)."""
    if last_rotated is None:
        return now
    window = credential.schedule.open_window(last_rotated, now, credential.rotation_window)
    if window is not None:
        return window[0]
    return credential.schedule.next_start(last_rotated, now)


def last_rotated_from(config: OpsgateConfig, credentials: Iterable[Credential]) -> dict[str, datetime | None]:
    """{configured name: OpenText's last_rotated_at} for the credentials OpenText listed."""
    by_key = {(c.environment, c.id): c for c in credentials}
    result: dict[str, datetime | None] = {}
    for credential in config.credentials:
        found = by_key.get((credential.environment, credential.credential_id))
        if found is not None:
            result[credential.name] = found.last_rotated_at
    return result


# --- expiry warnings -----------------------------------------------------------------------------------

DEFAULT_WARNING_DAYS: Final = (30, 7, 1)


@dataclass(frozen=True)
class ExpiryWarning:
    """One warning to send; add `marks` to the already-warned set once it is sent."""

    name: str
    environment: str
    credential_id: str
    owner: str
    owner_channel: str | None
    expires_at: datetime
    days_left: int
    threshold_days: int  # 0: already expired
    marks: frozenset[tuple[str, int]]
    configured: bool

    @property
    def expired(self) -> bool:
        return self.threshold_days == 0

    def message(self) -> str:
        """One line for people: which credential, when it expires, what to do."""
        when = self.expires_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
        if self.expired:
            head = f"{self.name} ({self.environment}) expired at {when}"
        else:
            head = f"{self.name} ({self.environment}) expires in {max(self.days_left, 0)} day(s), at {when}"
        action = "rotate it now" if self.configured else "it is not rotated by opsgate: renew it in OpenText"
        return f"{head}; {action}."


def expiry_warnings(
    config: OpsgateConfig,
    credentials: Iterable[Credential],
    already_warned: set[tuple[str, int]] | frozenset[tuple[str, int]],
    now: datetime,
) -> list[ExpiryWarning]:
    """Warnings due for credentials nearing expiry: one per credential, for its tightest threshold.

    Thresholds are the credential's `expiry_warnings_days` (default 30, 7, 1 days; 0 = expired).
    A threshold already in `already_warned` as (name, days) is not repeated; a credential first
    seen at 5 days left gets the 7-day warning only, and its marks cover 30 as well. Clear a
    credential's entries after rotating it (its expiry moves). Credentials OpenText lists that
    no `credentials:` entry covers are warned about too, under "env/id", to OpenText's owner.
    """
    configured = {(c.environment, c.credential_id): c for c in config.credentials}
    warnings = []
    for found in credentials:
        if found.status is CredentialStatus.REVOKED:
            continue
        entry = configured.get((found.environment, found.id))
        name = entry.name if entry else f"{found.environment}/{found.id}"
        thresholds = entry.expiry_warnings_days if entry else list(DEFAULT_WARNING_DAYS)
        left = found.expires_at - now
        crossed = [days for days in thresholds if left <= timedelta(days=days)]
        if left <= timedelta(0):
            crossed.append(0)
        if not crossed:
            continue
        tightest = min(crossed)
        if (name, tightest) in already_warned:
            continue
        warnings.append(
            ExpiryWarning(
                name=name,
                environment=found.environment,
                credential_id=found.id,
                owner=entry.owner if entry else found.owner,
                owner_channel=entry.owner_channel if entry else None,
                expires_at=found.expires_at,
                days_left=int(left // timedelta(days=1)),
                threshold_days=tightest,
                marks=frozenset((name, days) for days in crossed),
                configured=entry is not None,
            )
        )
    return warnings


# --- ownership matrix ------------------------------------------------------------------------------------


def _status_cell(found: Credential | None, now: datetime, thresholds: list[int]) -> storage.Fragment:
    if found is None:
        return storage.status("Unknown", "Grey")
    if found.status is CredentialStatus.REVOKED:
        return storage.status("Revoked", "Grey")
    left = found.expires_at - now
    if left <= timedelta(0):
        return storage.status("Expired", "Red")
    if thresholds and left <= timedelta(days=max(thresholds)):
        return storage.status(f"Expires in {int(left // timedelta(days=1))}d", "Yellow")
    return storage.status("OK", "Green")


def build_ownership_matrix_page(
    config: OpsgateConfig,
    *,
    credentials: Iterable[Credential],
    last_rotated: Mapping[str, datetime | None],
    now: datetime,
    unavailable: Iterable[str] = (),
) -> str:
    """The ownership matrix (storage XHTML): owner, schedule, last rotated, next due. No secrets."""
    listed = list(credentials)
    by_key = {(c.environment, c.id): c for c in listed}
    rows: list[list[storage.Content]] = []
    for credential in sorted(config.credentials, key=lambda c: (c.environment, c.name)):
        found = by_key.get((credential.environment, credential.credential_id))
        last = last_rotated.get(credential.name)
        rows.append(
            [
                storage.strong(credential.name),
                credential.environment,
                storage.inline_code(credential.credential_id),
                credential.owner,
                credential.owner_channel or "-",
                credential.schedule.describe(),
                format_duration(credential.grace_period),
                credential.store,
                _when(last),
                _when(next_due(credential, last, now)),
                _when(found.expires_at) if found else "unknown",
                _status_cell(found, now, credential.expiry_warnings_days),
            ]
        )
    doc = storage.Document()
    doc.paragraph(
        f"Generated by opsgate at {_when(now)}. Secret values are never shown; schedules are in UTC and a "
        "missed rotation window waits for the next one."
    )
    missing = sorted(set(unavailable))
    if missing:
        doc.panel(
            "warning",
            f"OpenText could not be read for: {', '.join(missing)}. Expiry dates there are unknown.",
        )
    doc.heading(2, "Rotated by opsgate")
    if rows:
        doc.table(
            [
                "Credential", "Environment", "OpenText id", "Owner", "Owner channel", "Schedule",
                "Grace period", "Store", "Last rotated", "Next due", "Expires", "Status",
            ],
            rows,
        )  # fmt: skip
    else:
        doc.paragraph("No credentials are configured for rotation.")
    covered = {(c.environment, c.credential_id) for c in config.credentials}
    others = sorted(
        (c for c in listed if (c.environment, c.id) not in covered), key=lambda c: (c.environment, c.id)
    )
    if others:
        doc.heading(2, "Known to OpenText, not rotated by opsgate")
        doc.table(
            ["OpenText id", "Environment", "Name", "Kind", "Owner", "Last rotated", "Expires", "Status"],
            [
                [
                    storage.inline_code(c.id),
                    c.environment,
                    c.name,
                    c.kind,
                    c.owner,
                    _when(c.last_rotated_at),
                    _when(c.expires_at),
                    _status_cell(c, now, list(DEFAULT_WARNING_DAYS)),
                ]
                for c in others
            ],
        )
    return doc.render()


async def publish_ownership_matrix(
    registry: ConnectorRegistry,
    config: OpsgateConfig,
    *,
    space_key: str,
    now: datetime,
    last_rotated: Mapping[str, datetime | None] | None = None,
    title: str = OWNERSHIP_MATRIX_TITLE,
    confluence_environment: str | None = None,
) -> PageWrite:
    """Read credentials from OpenText and upsert the ownership matrix page in `space_key`.

    `last_rotated` defaults to what OpenText reports (`last_rotated_at`). The page goes to
    `confluence_environment`'s Confluence, by default the first environment that configures one.
    """
    environments = sorted({c.environment for c in config.credentials})
    listed: list[Credential] = []
    unavailable: list[str] = []
    for environment in environments:
        try:
            listed.extend(await registry.opentext(environment).list_credentials(environment))
        except (ConnectorError, ConnectorNotConfigured):
            unavailable.append(environment)
    if last_rotated is None:
        last_rotated = last_rotated_from(config, listed)
    body = build_ownership_matrix_page(
        config, credentials=listed, last_rotated=last_rotated, now=now, unavailable=unavailable
    )
    target = confluence_environment
    if target is None:
        configured = registry.configured("confluence")
        if not configured:
            raise ConnectorNotConfigured(
                "confluence", "(any)", known_environments=list(config.environments), configured_in=[]
            )
        target = configured[0]
    return await registry.confluence(target).upsert_page(
        space_key, title, body, message="opsgate ownership matrix"
    )


if TYPE_CHECKING:
    # mypy proves the workflow fulfils the contract the executor relies on.
    def _is_a_workflow(workflow: RotationWorkflow) -> Workflow:
        return workflow
