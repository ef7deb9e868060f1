"""OpenText connector: artifacts, promotions, credentials and rotations (docs/opentext-api.md).

Authentication is the real OpenText one: OT2 tenant client-credentials tokens
(`POST {token_base_url}/tenants/{tenant_id}/oauth2/token`) or an OTDS ticket
(`POST {otds}/otdsws/rest/authentication/credentials`, then header `OTDSTicket`). OTDS OAuth
clients (`/otdsws/rest/oauthclients/{id}`) are read and updated for direct secret changes. The
artifact side follows the contract we defined; its base URL and path prefix are configurable.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from enum import StrEnum
from types import TracebackType
from typing import Any, Literal, Self
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from connectors.auth import AuthStrategy, Token, TokenProvider
from connectors.errors import AuthError, ConnectorError, NotFound, Unavailable
from connectors.http import HttpOptions, VendorClient, default_error_detail

__all__ = [
    "Artifact",
    "ArtifactKind",
    "ArtifactSummary",
    "ArtifactVersion",
    "Credential",
    "CredentialStatus",
    "Deployment",
    "Environment",
    "Health",
    "Job",
    "JobError",
    "JobState",
    "OpenTextConnector",
    "OpenTextSettings",
    "OtdsOAuthClient",
    "OtdsSettings",
    "PendingRotation",
    "Rotation",
    "RotationState",
    "RotationTest",
    "opentext_error_detail",
]

VENDOR = "opentext"
DEFAULT_PATH_PREFIX = "/im-admin/api/v1"
OTDS_TICKET_HEADER = "OTDSTicket"


# --- settings -----------------------------------------------------------------------------------


class OtdsSettings(BaseModel):
    """OTDS (OpenText Directory Services) login for tickets and OAuth-client administration."""

    model_config = ConfigDict(extra="forbid")

    base_url: str
    user_name: str
    password: SecretStr
    # (unconfirmed) OTDS does not return the ticket lifetime; its default session is 30 min.
    ticket_lifetime_seconds: float = Field(1800.0, gt=0)
    # Public clients send "userName"; our reference notes "user_name". The emulator accepts both.
    user_name_field: Literal["userName", "user_name"] = "userName"


class OpenTextSettings(BaseModel):
    """One OpenText environment's connection: admin API location plus OT2 or OTDS credentials."""

    model_config = ConfigDict(extra="forbid")

    base_url: str
    path_prefix: str = DEFAULT_PATH_PREFIX
    auth: Literal["ot2", "otds"] = "ot2"
    token_base_url: str | None = None  # OT2 region host, e.g. https://na-1.api.opentext.com
    tenant_id: str | None = None
    client_id: str | None = None
    client_secret: SecretStr | None = None
    scope: str | None = None
    otds: OtdsSettings | None = None
    token_refresh_ahead: float = Field(60.0, ge=0)
    page_size: int = Field(50, ge=1, le=100)
    job_poll_interval: float = Field(2.0, gt=0)
    job_timeout: float = Field(900.0, gt=0)
    http: HttpOptions = HttpOptions()

    @model_validator(mode="after")
    def _credentials_for_auth_mode(self) -> Self:
        if self.auth == "ot2" and not (self.tenant_id and self.client_id and self.client_secret):
            raise ValueError("auth 'ot2' needs tenant_id, client_id and client_secret")
        if self.auth == "otds" and self.otds is None:
            raise ValueError("auth 'otds' needs the otds settings")
        return self

    @property
    def api_base_url(self) -> str:
        """Base URL of the admin API: base_url + path_prefix."""
        return self.base_url.rstrip("/") + "/" + self.path_prefix.strip("/")


# --- payloads -----------------------------------------------------------------------------------


class _Payload(BaseModel):
    model_config = ConfigDict(extra="ignore")


class ArtifactKind(StrEnum):
    API = "api"
    MAP = "map"
    MESSAGING_CONFIG = "messaging_config"


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class CredentialStatus(StrEnum):
    ACTIVE = "active"
    EXPIRING = "expiring"
    EXPIRED = "expired"
    REVOKED = "revoked"


class RotationState(StrEnum):
    PENDING = "pending"
    TESTED = "tested"
    ACTIVE = "active"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


class Health(_Payload):
    status: str
    version: str | None = None
    time: datetime | None = None


class Environment(_Payload):
    name: str
    display_name: str | None = None
    tier: str | None = None


class ArtifactVersion(_Payload):
    version: str
    created_at: datetime
    author: str
    checksum: str
    summary: str = ""


class ArtifactSummary(_Payload):
    id: str
    solution: str
    kind: ArtifactKind
    name: str
    latest_version: str | None = None
    updated_at: datetime | None = None


class Artifact(ArtifactSummary):
    description: str = ""
    versions: list[ArtifactVersion] = Field(default_factory=list)

    def version(self, number: str) -> ArtifactVersion | None:
        """The version with this number, if the artifact has it."""
        return next((v for v in self.versions if v.version == number), None)


class Deployment(_Payload):
    environment: str
    artifact_id: str
    version: str
    deployed_at: datetime | None = None
    deployed_by: str | None = None
    job_id: str | None = None


class JobError(_Payload):
    code: str
    message: str


class Job(_Payload):
    job_id: str
    kind: str
    state: JobState
    progress: int = 0
    created_at: datetime | None = None
    updated_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    request: dict[str, Any] = Field(default_factory=dict)
    result: dict[str, Any] | None = None
    error: JobError | None = None

    @property
    def finished(self) -> bool:
        """Whether the job reached a terminal state (succeeded or failed)."""
        return self.state in (JobState.SUCCEEDED, JobState.FAILED)


class Rotation(_Payload):
    rotation_id: str
    credential_id: str
    environment: str
    state: RotationState
    requested_by: str | None = None
    created_at: datetime | None = None
    tested_at: datetime | None = None
    activated_at: datetime | None = None
    completed_at: datetime | None = None
    new_expires_at: datetime | None = None
    previous_valid_until: datetime | None = None


class PendingRotation(Rotation):
    """A just-created rotation: the only response that ever carries the new secret."""

    secret: SecretStr


class RotationTest(Rotation):
    authenticated: bool


class Credential(_Payload):
    id: str
    environment: str
    name: str
    kind: str
    client_id: str | None = None
    owner: str
    created_at: datetime | None = None
    expires_at: datetime
    last_rotated_at: datetime | None = None
    status: CredentialStatus
    rotation: Rotation | None = None


class OtdsOAuthClient(_Payload):
    id: str
    description: str | None = None
    secret: SecretStr | None = None
    confidential: bool | None = None
    permissible_scopes: list[str] = Field(default_factory=list, alias="permissibleScopes")
    access_token_lifetime: int | None = Field(None, alias="accessTokenLifeTime")


class _ItemPage(_Payload):
    items: list[dict[str, Any]]
    next_cursor: str | None = None


class _OT2Token(_Payload):
    access_token: SecretStr
    expires_in: float = 3600.0


class _OtdsTicket(_Payload):
    ticket: SecretStr


def opentext_error_detail(response: httpx.Response) -> str:
    """Vendor message from Apigee faults, our contract's errors or OTDS bodies, with its code."""
    try:
        body = response.json()
    except ValueError:
        return default_error_detail(response)
    if isinstance(body, dict):
        fault = body.get("fault")
        if isinstance(fault, dict) and fault.get("faultstring"):
            detail = fault.get("detail")
            code = detail.get("errorcode") if isinstance(detail, dict) else None
            return f"{fault['faultstring']} ({code})" if code else str(fault["faultstring"])
        error = body.get("error")
        if isinstance(error, dict) and error.get("message"):
            return f"{error['message']} ({error['code']})" if error.get("code") else str(error["message"])
        if body.get("failureReason"):
            return str(body["failureReason"])
    return default_error_detail(response)


# --- connector ----------------------------------------------------------------------------------


class OpenTextConnector:
    """Typed access to one OpenText environment; one instance per configured environment."""

    def __init__(
        self,
        settings: OpenTextSettings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self._sleep = sleep
        self._monotonic = monotonic
        common: dict[str, Any] = {
            "options": settings.http,
            "transport": transport,
            "sleep": sleep,
            "monotonic": monotonic,
            "error_parser": opentext_error_detail,
        }
        self._otds: VendorClient | None = None
        self.otds_tickets: TokenProvider | None = None
        if settings.otds is not None:
            self._otds = VendorClient(vendor=VENDOR, base_url=settings.otds.base_url, **common)
            self.otds_tickets = TokenProvider(
                self._fetch_otds_ticket,
                refresh_ahead=min(settings.token_refresh_ahead, settings.otds.ticket_lifetime_seconds / 2),
                monotonic=monotonic,
                header=OTDS_TICKET_HEADER,
                scheme="",
            )
            self._otds.auth = self.otds_tickets
        self._api = VendorClient(vendor=VENDOR, base_url=settings.api_base_url, **common)
        self.tokens: TokenProvider | None = None
        auth: AuthStrategy | None
        if settings.auth == "ot2":
            self.tokens = TokenProvider(
                self._fetch_ot2_token, refresh_ahead=settings.token_refresh_ahead, monotonic=monotonic
            )
            auth = self.tokens
        else:
            auth = self.otds_tickets
        self._api.auth = auth

    @property
    def last_request_id(self) -> str | None:
        """Request id of the latest admin-API call (for the audit trail)."""
        return self._api.last_request_id

    async def aclose(self) -> None:
        """Close the HTTP clients."""
        await self._api.aclose()
        if self._otds is not None:
            await self._otds.aclose()

    async def __aenter__(self) -> OpenTextConnector:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    # --- authentication ---------------------------------------------------------------------

    def _token_url(self) -> str:
        base = (self.settings.token_base_url or self.settings.base_url).rstrip("/")
        return f"{base}/tenants/{self.settings.tenant_id}/oauth2/token"

    async def _request_ot2_token(self, client_id: str, secret: SecretStr) -> Token:
        form = {
            "grant_type": "client_credentials",
            "client_id": client_id,
            "client_secret": secret.get_secret_value(),
        }
        if self.settings.scope:
            form["scope"] = self.settings.scope
        # A token request changes nothing server-side, so it is safe to retry.
        answer = await self._api.send_model(
            "POST", self._token_url(), _OT2Token, data=form, authenticate=False, idempotent=True
        )
        return Token.expiring_in(answer.access_token, answer.expires_in, monotonic=self._monotonic)

    async def _fetch_ot2_token(self) -> Token:
        assert self.settings.client_id is not None and self.settings.client_secret is not None
        return await self._request_ot2_token(self.settings.client_id, self.settings.client_secret)

    async def _fetch_otds_ticket(self) -> Token:
        otds = self._require_otds_settings()
        assert self._otds is not None
        body = {otds.user_name_field: otds.user_name, "password": otds.password.get_secret_value()}
        answer = await self._otds.send_model(
            "POST", "/otdsws/rest/authentication/credentials", _OtdsTicket, json=body,
            authenticate=False, idempotent=True,
        )  # fmt: skip
        return Token.expiring_in(answer.ticket, otds.ticket_lifetime_seconds, monotonic=self._monotonic)

    def _require_otds_settings(self) -> OtdsSettings:
        if self.settings.otds is None:
            raise ConnectorError("OTDS is not configured for this environment", vendor=VENDOR)
        return self.settings.otds

    async def authenticate_client(self, client_id: str, secret: SecretStr) -> bool:
        """Whether `client_id` can obtain an OT2 tenant token with `secret` (e.g. a pending secret)."""
        if not self.settings.tenant_id:
            raise ConnectorError("tenant_id is required to authenticate clients", vendor=VENDOR)
        try:
            await self._request_ot2_token(client_id, secret)
        except AuthError:
            return False
        return True

    # --- health, environments, artifacts ------------------------------------------------------

    async def health(self) -> Health:
        """The admin API's health (no credentials needed)."""
        return await self._api.get_model("/health", Health, authenticate=False)

    async def list_environments(self) -> list[Environment]:
        """Every environment the tenant has (dev, test, prod ...)."""
        return [Environment.model_validate(item) for item in await self._all_items("/environments")]

    async def list_artifacts(
        self, *, solution: str | None = None, kind: ArtifactKind | str | None = None, name: str | None = None
    ) -> list[ArtifactSummary]:
        """All artifacts matching the filters, following pagination cursors."""
        params = {k: str(v) for k, v in {"solution": solution, "kind": kind, "name": name}.items() if v}
        items = await self._all_items("/artifacts", params=params)
        return [ArtifactSummary.model_validate(item) for item in items]

    async def get_artifact(self, artifact_id: str) -> Artifact:
        """The artifact with its version history (newest first); NotFound if unknown."""
        return await self._api.get_model(f"/artifacts/{_segment(artifact_id)}", Artifact)

    async def get_artifact_version(self, artifact_id: str, version: str) -> ArtifactVersion:
        """One version of an artifact; NotFound if the artifact or version is unknown."""
        return await self._api.get_model(
            f"/artifacts/{_segment(artifact_id)}/versions/{_segment(version)}", ArtifactVersion
        )

    async def list_deployments(self, environment: str, *, solution: str | None = None) -> list[Deployment]:
        """What is deployed in `environment` (optionally for one solution)."""
        params = {"solution": solution} if solution else None
        items = await self._all_items(f"/environments/{_segment(environment)}/deployments", params=params)
        return [Deployment.model_validate(item) for item in items]

    async def get_deployment(self, environment: str, artifact_id: str) -> Deployment | None:
        """The version of `artifact_id` deployed in `environment`, or None if it is not deployed."""
        path = f"/environments/{_segment(environment)}/deployments/{_segment(artifact_id)}"
        try:
            return await self._api.get_model(path, Deployment)
        except NotFound as exc:
            # Unknown environment or artifact stay errors; only "not deployed here" means None.
            if exc.detail.endswith("(not_deployed)"):
                return None
            raise

    # --- jobs: promotion and clone --------------------------------------------------------------

    async def start_promotion(
        self,
        artifact_id: str,
        version: str,
        *,
        source_environment: str,
        target_environment: str,
        requested_by: str,
        reason: str | None = None,
        change_ref: str | None = None,
        idempotency_key: str | None = None,
    ) -> Job:
        """Ask for `version` (deployed in source) to be deployed in target; returns the queued job.

        With an `idempotency_key` the call is retried safely and a repeat returns the same job.
        """
        body = {
            "artifact_id": artifact_id,
            "version": version,
            "source_environment": source_environment,
            "target_environment": target_environment,
            "requested_by": requested_by,
            "reason": reason,
            "change_ref": change_ref,
        }
        return await self._start_job("/promotions", body, idempotency_key)

    async def clone_artifact(
        self,
        artifact_id: str,
        *,
        new_name: str,
        requested_by: str,
        solution: str | None = None,
        version: str | None = None,
        idempotency_key: str | None = None,
    ) -> Job:
        """Copy an artifact version into a new artifact (onboarding); returns the queued job."""
        body = {
            "new_name": new_name,
            "requested_by": requested_by,
            "solution": solution,
            "version": version,
        }
        return await self._start_job(f"/artifacts/{_segment(artifact_id)}/clone", body, idempotency_key)

    async def _start_job(self, path: str, body: dict[str, Any], idempotency_key: str | None) -> Job:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        response = await self._api.request(
            "POST",
            path,
            json={k: v for k, v in body.items() if v is not None},
            headers=headers,
            idempotent=idempotency_key is not None,
        )
        accepted = self._api.parse_model(response, _JobAccepted)
        return Job(job_id=accepted.job_id, kind=accepted.kind, state=accepted.state)

    async def get_job(self, job_id: str) -> Job:
        """The job's current state, progress, result or error."""
        return await self._api.get_model(f"/jobs/{_segment(job_id)}", Job)

    async def wait_for_job(
        self, job_id: str, *, poll_interval: float | None = None, max_wait: float | None = None
    ) -> Job:
        """Poll until the job succeeds or fails and return it; Unavailable if it outlasts `max_wait`.

        Waiting runs on the injected sleep and monotonic clock (not asyncio.timeout) so tests
        can drive it without real time passing.
        """
        interval = poll_interval or self.settings.job_poll_interval
        max_wait = max_wait or self.settings.job_timeout
        deadline = self._monotonic() + max_wait
        while True:
            job = await self.get_job(job_id)
            if job.finished:
                return job
            if self._monotonic() >= deadline:
                raise Unavailable(
                    f"job {job_id} still {job.state} after {max_wait:g}s",
                    vendor=VENDOR,
                    request_id=self.last_request_id,
                )
            await self._sleep(interval)

    # --- credentials and rotation --------------------------------------------------------------

    async def list_credentials(
        self, environment: str, *, status: CredentialStatus | str | None = None
    ) -> list[Credential]:
        """Credentials of an environment with owner, expiry and status (optionally one status)."""
        params = {"status": str(status)} if status else None
        items = await self._all_items(f"/environments/{_segment(environment)}/credentials", params=params)
        return [Credential.model_validate(item) for item in items]

    async def get_credential(self, environment: str, credential_id: str) -> Credential:
        """One credential; NotFound if unknown."""
        return await self._api.get_model(self._credential_path(environment, credential_id), Credential)

    async def start_rotation(
        self, environment: str, credential_id: str, *, requested_by: str, validity_days: int | None = None
    ) -> PendingRotation:
        """Create a pending secret; the returned secret is shown once and never again."""
        body: dict[str, Any] = {"requested_by": requested_by}
        if validity_days is not None:
            body["validity_days"] = validity_days
        path = f"{self._credential_path(environment, credential_id)}/rotations"
        return await self._api.send_model("POST", path, PendingRotation, json=body)

    async def get_rotation(self, environment: str, credential_id: str, rotation_id: str) -> Rotation:
        """A rotation's state (never its secret)."""
        return await self._api.get_model(
            self._rotation_path(environment, credential_id, rotation_id), Rotation
        )

    async def test_rotation(self, environment: str, credential_id: str, rotation_id: str) -> RotationTest:
        """Have the platform authenticate with the pending secret; state becomes tested on success."""
        path = f"{self._rotation_path(environment, credential_id, rotation_id)}/test"
        return await self._api.send_model("POST", path, RotationTest, idempotent=True)

    async def activate_rotation(
        self, environment: str, credential_id: str, rotation_id: str, *, grace_seconds: int = 3600
    ) -> Rotation:
        """Make the tested secret current; the previous one stays valid for `grace_seconds`."""
        path = f"{self._rotation_path(environment, credential_id, rotation_id)}/activate"
        return await self._api.send_model("POST", path, Rotation, json={"grace_seconds": grace_seconds})

    async def revoke_previous_secret(
        self, environment: str, credential_id: str, rotation_id: str
    ) -> Rotation:
        """End the grace period: the previous secret stops working now."""
        path = f"{self._rotation_path(environment, credential_id, rotation_id)}/revoke-previous"
        return await self._api.send_model("POST", path, Rotation)

    async def cancel_rotation(self, environment: str, credential_id: str, rotation_id: str) -> Rotation:
        """Abandon a pending or tested rotation; the current secret is untouched."""
        path = f"{self._rotation_path(environment, credential_id, rotation_id)}/cancel"
        return await self._api.send_model("POST", path, Rotation)

    # --- OTDS OAuth clients ---------------------------------------------------------------------

    async def get_otds_oauth_client(self, client_id: str) -> OtdsOAuthClient:
        """The OTDS OAuth client resource, including its current secret."""
        self._require_otds_settings()
        assert self._otds is not None
        return await self._otds.get_model(f"/otdsws/rest/oauthclients/{_segment(client_id)}", OtdsOAuthClient)

    async def set_otds_oauth_client_secret(self, client_id: str, secret: SecretStr) -> OtdsOAuthClient:
        """Replace the client's secret in OTDS (takes effect at once, no grace period)."""
        self._require_otds_settings()
        assert self._otds is not None
        path = f"/otdsws/rest/oauthclients/{_segment(client_id)}"
        current = self._otds.json_of(await self._otds.request("GET", path))
        if not isinstance(current, dict):
            raise ConnectorError("OTDS OAuth client is not a JSON object", vendor=VENDOR)
        # OTDS updates the whole resource, so send back what we read with the new secret.
        updated = {**current, "secret": secret.get_secret_value()}
        return await self._otds.send_model("PUT", path, OtdsOAuthClient, json=updated)

    # --- plumbing ---------------------------------------------------------------------------------

    @staticmethod
    def _credential_path(environment: str, credential_id: str) -> str:
        return f"/environments/{_segment(environment)}/credentials/{_segment(credential_id)}"

    def _rotation_path(self, environment: str, credential_id: str, rotation_id: str) -> str:
        return f"{self._credential_path(environment, credential_id)}/rotations/{_segment(rotation_id)}"

    async def _all_items(self, path: str, *, params: dict[str, str] | None = None) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        query = {**(params or {}), "limit": str(self.settings.page_size)}
        while True:
            page = await self._api.get_model(path, _ItemPage, params=query)
            items.extend(page.items)
            if not page.next_cursor:
                return items
            query["cursor"] = page.next_cursor


class _JobAccepted(_Payload):
    job_id: str
    kind: str
    state: JobState = JobState.QUEUED


def _segment(value: str) -> str:
    """Quote a value for use as one URL path segment (ids never split paths)."""
    return quote(value, safe="")
