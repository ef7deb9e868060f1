"""OpenText emulator: OT2 tenant tokens, OTDS tickets and OAuth clients, and our admin API contract.

Serves, on one port:
  POST {tenants}/{tenant_id}/oauth2/token              OT2 client-credentials tokens (Apigee errors)
  POST /otdsws/rest/authentication/credentials         OTDS ticket login
  GET|PUT /otdsws/rest/oauthclients/{client_id}        OTDS OAuth client (secret readable/updatable)
  {path_prefix}/...                                    the admin API of docs/opentext-api.md
plus the shared /_control routes (faults.py), `POST /_control/opentext/fail-next-job` and
`POST /_control/opentext/seed-artifacts {"count": N}` (N more promotable artifacts, for load tests).
State is seeded with realistic solutions, version histories, deployments and credentials.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import itertools
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from connectors.emulators.faults import add_fault_injection, add_rate_limit

__all__ = [
    "DEFAULT_PATH_PREFIX",
    "OpenTextState",
    "create_app",
    "opentext_state_of",
    "seed_generated_artifacts",
]

DEFAULT_PATH_PREFIX = "/im-admin/api/v1"
DEFAULT_TENANT = "acme-integration"
EXPIRING_WITHIN = timedelta(days=30)
PAGE_LIMIT_MAX = 100
SCOPES_ALL = frozenset({"read", "deploy", "credentials", "clone"})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def fault_body(faultstring: str, errorcode: str) -> dict[str, Any]:
    """An Apigee-style gateway error body, as OT2 returns for auth and throttling."""
    return {"fault": {"faultstring": faultstring, "detail": {"errorcode": errorcode}}}


def api_error(status: int, code: str, message: str, **details: Any) -> web.Response:
    """An admin-API error response in the contract's shape."""
    return web.json_response({"error": {"code": code, "message": message, "details": details}}, status=status)


@dataclass
class Client:
    """An OAuth client: service accounts and the credentials opsgate rotates share this registry."""

    client_id: str
    secret: str
    scopes: frozenset[str]
    description: str = ""
    pending_secret: str | None = None
    previous_secret: str | None = None
    previous_valid_until: datetime | None = None

    def accepts(self, secret: str, now: datetime) -> bool:
        if secrets.compare_digest(secret, self.secret):
            return True
        if self.pending_secret is not None and secrets.compare_digest(secret, self.pending_secret):
            return True
        return (
            self.previous_secret is not None
            and self.previous_valid_until is not None
            and now < self.previous_valid_until
            and secrets.compare_digest(secret, self.previous_secret)
        )


@dataclass
class Version:
    version: str
    created_at: datetime
    author: str
    checksum: str
    summary: str


@dataclass
class Artifact:
    id: str
    solution: str
    kind: str
    name: str
    description: str
    versions: list[Version]  # newest first

    def version(self, number: str) -> Version | None:
        return next((v for v in self.versions if v.version == number), None)


@dataclass
class Deployment:
    environment: str
    artifact_id: str
    version: str
    deployed_at: datetime
    deployed_by: str
    job_id: str | None = None


@dataclass
class Job:
    job_id: str
    kind: str
    request: dict[str, Any]
    created_at: datetime
    polls: int = 0
    fail_with: dict[str, str] | None = None
    state: str = "queued"
    progress: int = 0
    started_at: datetime | None = None
    finished_at: datetime | None = None
    updated_at: datetime | None = None
    result: dict[str, Any] | None = None
    error: dict[str, str] | None = None


@dataclass
class Rotation:
    rotation_id: str
    credential_id: str
    environment: str
    requested_by: str
    created_at: datetime
    new_expires_at: datetime
    state: str = "pending"
    tested_at: datetime | None = None
    activated_at: datetime | None = None
    completed_at: datetime | None = None
    previous_valid_until: datetime | None = None


@dataclass
class Credential:
    id: str
    environment: str
    name: str
    kind: str
    client_id: str
    owner: str
    created_at: datetime
    expires_at: datetime
    last_rotated_at: datetime | None = None
    revoked: bool = False
    rotations: list[Rotation] = field(default_factory=list)

    def open_rotation(self) -> Rotation | None:
        return next((r for r in self.rotations if r.state in ("pending", "tested", "active")), None)


@dataclass
class OpenTextState:
    """Everything the emulator knows; `reset()` restores the seed."""

    clock: Callable[[], datetime]
    seed: bool = True
    tenant_id: str = DEFAULT_TENANT
    token_lifetime: int = 3600
    ticket_lifetime: int = 1800
    job_polls_to_finish: int = 3
    job_seconds_per_step: float | None = 2.0
    environments: dict[str, dict[str, str]] = field(default_factory=dict)
    clients: dict[str, Client] = field(default_factory=dict)
    otds_users: dict[str, tuple[str, frozenset[str]]] = field(default_factory=dict)
    tokens: dict[str, tuple[str, datetime, frozenset[str]]] = field(default_factory=dict)
    tickets: dict[str, tuple[str, datetime, frozenset[str]]] = field(default_factory=dict)
    artifacts: dict[str, Artifact] = field(default_factory=dict)
    deployments: dict[tuple[str, str], Deployment] = field(default_factory=dict)
    jobs: dict[str, Job] = field(default_factory=dict)
    credentials: dict[tuple[str, str], Credential] = field(default_factory=dict)
    idempotency: dict[str, str] = field(default_factory=dict)
    fail_next_job: dict[str, str] | None = None
    _serial: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def next_id(self, prefix: str) -> str:
        return f"{prefix}-{next(self._serial):06d}"

    def reset(self) -> None:
        """Forget everything and re-seed (if seeding is on)."""
        for store in (
            self.environments, self.clients, self.otds_users, self.tokens, self.tickets,
            self.artifacts, self.deployments, self.jobs, self.credentials, self.idempotency,
        ):  # fmt: skip
            store.clear()
        self.fail_next_job = None
        self._serial = itertools.count(1)
        if self.seed:
            seed_state(self)

    def expire_tokens(self) -> None:
        """Invalidate every issued token and ticket (fault `expire_tokens`)."""
        self.tokens.clear()
        self.tickets.clear()

    def advance_job(self, job: Job) -> None:
        """Move a job along: one step per poll, plus one per `job_seconds_per_step` of clock time."""
        if job.state in ("succeeded", "failed"):
            return
        now = self.clock()
        job.polls += 1
        steps = job.polls
        if self.job_seconds_per_step:
            steps += int((now - job.created_at).total_seconds() // self.job_seconds_per_step)
        total = max(1, self.job_polls_to_finish)
        if steps <= 0:
            return
        job.updated_at = now
        if job.started_at is None:
            job.started_at = now
        if steps < total:
            job.state = "running"
            job.progress = int(100 * steps / total)
            return
        job.finished_at = now
        if job.fail_with is not None:
            job.state, job.error = "failed", job.fail_with
            return
        job.state, job.progress = "succeeded", 100
        self.complete_job(job, now)

    def complete_job(self, job: Job, now: datetime) -> None:
        request = job.request
        if job.kind == "promotion":
            key = (request["target_environment"], request["artifact_id"])
            self.deployments[key] = Deployment(
                environment=request["target_environment"],
                artifact_id=request["artifact_id"],
                version=request["version"],
                deployed_at=now,
                deployed_by=request["requested_by"],
                job_id=job.job_id,
            )
            job.result = {"environment": key[0], "artifact_id": key[1], "version": request["version"]}
        elif job.kind == "clone":
            source = self.artifacts[request["artifact_id"]]
            solution = request.get("solution") or source.solution
            new_id = f"{solution}.{request['new_name']}"
            version = source.version(request["version"])
            assert version is not None
            self.artifacts[new_id] = Artifact(
                id=new_id,
                solution=solution,
                kind=source.kind,
                name=request["new_name"],
                description=f"Cloned from {source.id}@{version.version}",
                versions=[
                    Version(
                        version="1.0.0",
                        created_at=now,
                        author=request["requested_by"],
                        checksum=version.checksum,
                        summary=f"Cloned from {source.id}@{version.version}",
                    )
                ],
            )
            job.result = {"artifact_id": new_id, "version": "1.0.0"}


def _checksum(artifact_id: str, version: str) -> str:
    return "sha256:" + hashlib.sha256(f"{artifact_id}@{version}".encode()).hexdigest()


def seed_state(state: OpenTextState) -> None:
    """Seed three solutions, their version histories, deployments per environment and credentials."""
    now = state.clock()
    state.environments.update(
        {
            "dev": {"name": "dev", "display_name": "Development", "tier": "non_production"},
            "test": {"name": "test", "display_name": "Test", "tier": "non_production"},
            "prod": {"name": "prod", "display_name": "Production", "tier": "production"},
        }
    )
    state.clients.update(
        {
            "opsgate-svc": Client("opsgate-svc", "opsgate-svc-secret", SCOPES_ALL, "opsgate service"),
            "opsgate-readonly": Client(
                "opsgate-readonly", "opsgate-readonly-secret", frozenset({"read"}), "dashboards"
            ),
        }
    )
    state.otds_users.update(
        {
            "svc-opsgate": ("otds-svc-password", SCOPES_ALL),
            "auditor": ("otds-auditor-password", frozenset({"read"})),
        }
    )
    catalogue: list[tuple[str, str, str, str, list[tuple[str, int, str, str]], dict[str, str]]] = [
        ("orders-edi", "api", "orders-inbound-api", "Partner order intake (REST)",
         [("1.2.0", 20, "maria.keller@acme.example", "Accept ORDERS with multiple ship-to parties"),
          ("1.1.0", 95, "li.wang@acme.example", "Rate-limit partners per API key"),
          ("1.0.0", 240, "li.wang@acme.example", "Initial release")],
         {"dev": "1.2.0", "test": "1.2.0", "prod": "1.1.0"}),
        ("orders-edi", "map", "orders-d96a-to-xml", "EDIFACT ORDERS D96A to canonical order XML",
         [("2.4.1", 6, "maria.keller@acme.example", "Fix NAD+DP qualifier mapping"),
          ("2.4.0", 34, "maria.keller@acme.example", "Map FTX+DEL free text to delivery notes"),
          ("2.3.0", 120, "tom.berg@acme.example", "Support UNOC character set")],
         {"dev": "2.4.1", "test": "2.4.0", "prod": "2.3.0"}),
        ("orders-edi", "messaging_config", "orders-as2-partners", "AS2 partner profiles for order intake",
         [("1.1.0", 50, "tom.berg@acme.example", "Add partner GLOBEX (AS2 id GLOBEX01)"),
          ("1.0.0", 300, "tom.berg@acme.example", "Initial partner set")],
         {"dev": "1.1.0", "test": "1.1.0", "prod": "1.1.0"}),
        ("invoices", "api", "invoice-outbound-api", "Invoice status API for customers",
         [("3.1.0", 12, "sara.lind@acme.example", "Expose payment due date"),
          ("3.0.0", 80, "sara.lind@acme.example", "v3: paginated invoice list")],
         {"dev": "3.1.0", "test": "3.0.0", "prod": "3.0.0"}),
        ("invoices", "map", "invoice-xml-to-ubl", "Canonical invoice XML to UBL 2.1 / Peppol BIS 3",
         [("1.2.0", 9, "jonas.meyer@acme.example", "Peppol BIS 3.0.15 rules"),
          ("1.1.0", 60, "jonas.meyer@acme.example", "Credit notes"),
          ("1.0.0", 200, "sara.lind@acme.example", "Initial release")],
         {"dev": "1.2.0", "test": "1.2.0", "prod": "1.1.0"}),
        ("invoices", "messaging_config", "invoice-sftp-delivery", "SFTP delivery of invoices to archive",
         [("1.0.0", 15, "jonas.meyer@acme.example", "Initial SFTP delivery profile")],
         {"dev": "1.0.0", "test": "1.0.0"}),
        ("shipping-notices", "map", "asn-856-to-desadv", "X12 856 ASN to EDIFACT DESADV",
         [("1.0.0", 3, "li.wang@acme.example", "First complete mapping"),
          ("0.9.0", 25, "li.wang@acme.example", "Draft mapping for pilot partner")],
         {"dev": "1.0.0"}),
    ]  # fmt: skip
    for solution, kind, name, description, versions, deployed in catalogue:
        artifact_id = f"{solution}.{name}"
        state.artifacts[artifact_id] = Artifact(
            id=artifact_id,
            solution=solution,
            kind=kind,
            name=name,
            description=description,
            versions=[
                Version(number, now - timedelta(days=age), author, _checksum(artifact_id, number), summary)
                for number, age, author, summary in versions
            ],
        )
        for environment, number in deployed.items():
            version = state.artifacts[artifact_id].version(number)
            assert version is not None
            state.deployments[(environment, artifact_id)] = Deployment(
                environment=environment,
                artifact_id=artifact_id,
                version=number,
                deployed_at=version.created_at
                + timedelta(days={"dev": 0, "test": 2, "prod": 5}[environment]),
                deployed_by="release-bot@acme.example",
            )
    credentials = [
        ("dev", "orders-edi-dev-client", "Orders EDI partner gateway (dev)", "oauth_client", "orders-edi-dev",
         "team-orders@acme.example", 150),
        ("dev", "invoices-dev-client", "Invoice API consumer (dev)", "oauth_client", "invoices-dev",
         "team-invoices@acme.example", 22),
        ("test", "orders-edi-test-client", "Orders EDI partner gateway (test)", "oauth_client",
         "orders-edi-test", "team-orders@acme.example", 9),
        ("test", "invoices-test-client", "Invoice API consumer (test)", "oauth_client", "invoices-test",
         "team-invoices@acme.example", 300),
        ("prod", "orders-edi-prod-client", "Orders EDI partner gateway (prod)", "oauth_client",
         "orders-edi-prod", "team-orders@acme.example", 6),
        ("prod", "invoices-prod-client", "Invoice API consumer (prod)", "oauth_client", "invoices-prod",
         "team-invoices@acme.example", 180),
        ("prod", "legacy-ftp-bridge", "Legacy FTP bridge API key", "api_key", "legacy-ftp-bridge",
         "ops-oncall@acme.example", -3),
    ]  # fmt: skip
    for environment, cred_id, name, kind, client_id, owner, days_left in credentials:
        state.credentials[(environment, cred_id)] = Credential(
            id=cred_id,
            environment=environment,
            name=name,
            kind=kind,
            client_id=client_id,
            owner=owner,
            created_at=now - timedelta(days=365 - days_left),
            expires_at=now + timedelta(days=days_left),
        )
        state.clients[client_id] = Client(client_id, f"{client_id}-secret-v1", frozenset({"read"}), name)


GENERATED_MAX = 10_000


def seed_generated_artifacts(
    state: OpenTextState, count: int, *, solution: str = "generated", prefix: str = "artifact"
) -> list[str]:
    """Add `count` artifacts `<solution>.<prefix>-NNNNN`, each promotable once from test to prod.

    Every one has versions 1.0.0 (running in prod) and 1.1.0 (running in dev and test), so load
    tests can run many promotions at once without two of them sharing a target. Returns the ids.
    """
    now = state.clock()
    start = sum(1 for a in state.artifacts.values() if a.solution == solution and a.name.startswith(prefix))
    created = []
    for number in range(start + 1, start + count + 1):
        name = f"{prefix}-{number:05d}"
        artifact_id = f"{solution}.{name}"
        versions = [
            Version("1.1.0", now - timedelta(days=2), "load@acme.example", _checksum(artifact_id, "1.1.0"), "Next"),
            Version("1.0.0", now - timedelta(days=30), "load@acme.example", _checksum(artifact_id, "1.0.0"), "First"),
        ]  # fmt: skip
        state.artifacts[artifact_id] = Artifact(
            id=artifact_id,
            solution=solution,
            kind="map",
            name=name,
            description="generated",
            versions=versions,
        )
        for environment, version in (("dev", versions[0]), ("test", versions[0]), ("prod", versions[1])):
            state.deployments[(environment, artifact_id)] = Deployment(
                environment=environment,
                artifact_id=artifact_id,
                version=version.version,
                deployed_at=version.created_at,
                deployed_by="release-bot@acme.example",
            )
        created.append(artifact_id)
    return created


_STATE = web.AppKey("opentext_state", OpenTextState)


def opentext_state_of(app: web.Application) -> OpenTextState:
    """The emulator state behind an app made by create_app (for in-process assertions)."""
    return app[_STATE]


# --- serialisation ------------------------------------------------------------------------------


def _version_json(version: Version) -> dict[str, Any]:
    return {
        "version": version.version,
        "created_at": _iso(version.created_at),
        "author": version.author,
        "checksum": version.checksum,
        "summary": version.summary,
    }


def _artifact_summary_json(artifact: Artifact) -> dict[str, Any]:
    return {
        "id": artifact.id,
        "solution": artifact.solution,
        "kind": artifact.kind,
        "name": artifact.name,
        "latest_version": artifact.versions[0].version,
        "updated_at": _iso(artifact.versions[0].created_at),
    }


def _artifact_json(artifact: Artifact) -> dict[str, Any]:
    return {
        **_artifact_summary_json(artifact),
        "description": artifact.description,
        "versions": [_version_json(v) for v in artifact.versions],
    }


def _deployment_json(deployment: Deployment) -> dict[str, Any]:
    return {
        "environment": deployment.environment,
        "artifact_id": deployment.artifact_id,
        "version": deployment.version,
        "deployed_at": _iso(deployment.deployed_at),
        "deployed_by": deployment.deployed_by,
        "job_id": deployment.job_id,
    }


def _job_json(job: Job) -> dict[str, Any]:
    return {
        "job_id": job.job_id,
        "kind": job.kind,
        "state": job.state,
        "progress": job.progress,
        "created_at": _iso(job.created_at),
        "updated_at": _iso(job.updated_at or job.created_at),
        "started_at": _iso(job.started_at),
        "finished_at": _iso(job.finished_at),
        "request": job.request,
        "result": job.result,
        "error": job.error,
    }


def _rotation_json(rotation: Rotation) -> dict[str, Any]:
    return {
        "rotation_id": rotation.rotation_id,
        "credential_id": rotation.credential_id,
        "environment": rotation.environment,
        "state": rotation.state,
        "requested_by": rotation.requested_by,
        "created_at": _iso(rotation.created_at),
        "tested_at": _iso(rotation.tested_at),
        "activated_at": _iso(rotation.activated_at),
        "completed_at": _iso(rotation.completed_at),
        "new_expires_at": _iso(rotation.new_expires_at),
        "previous_valid_until": _iso(rotation.previous_valid_until),
    }


def _credential_json(credential: Credential, now: datetime) -> dict[str, Any]:
    if credential.revoked:
        status = "revoked"
    elif credential.expires_at <= now:
        status = "expired"
    elif credential.expires_at - now <= EXPIRING_WITHIN:
        status = "expiring"
    else:
        status = "active"
    open_rotation = credential.open_rotation()
    return {
        "id": credential.id,
        "environment": credential.environment,
        "name": credential.name,
        "kind": credential.kind,
        "client_id": credential.client_id,
        "owner": credential.owner,
        "created_at": _iso(credential.created_at),
        "expires_at": _iso(credential.expires_at),
        "last_rotated_at": _iso(credential.last_rotated_at),
        "status": status,
        "rotation": None if open_rotation is None else _rotation_json(open_rotation),
    }


# --- the app ------------------------------------------------------------------------------------


def create_app(
    *,
    seed: bool = True,
    path_prefix: str = DEFAULT_PATH_PREFIX,
    tenant_id: str = DEFAULT_TENANT,
    clock: Callable[[], datetime] | None = None,
    token_lifetime: int = 3600,
    ticket_lifetime: int = 1800,
    job_polls_to_finish: int = 3,
    job_seconds_per_step: float | None = 2.0,
    rate_per_second: float | None = 50.0,
    rate_burst: int = 100,
) -> web.Application:
    """Build the OpenText emulator app (state seeded unless seed=False)."""
    state = OpenTextState(
        clock=clock or (lambda: datetime.now(UTC)),
        seed=seed,
        tenant_id=tenant_id,
        token_lifetime=token_lifetime,
        ticket_lifetime=ticket_lifetime,
        job_polls_to_finish=job_polls_to_finish,
        job_seconds_per_step=job_seconds_per_step,
    )
    state.reset()
    app = web.Application()
    app[_STATE] = state
    prefix = "/" + path_prefix.strip("/")
    add_fault_injection(
        app,
        reset=state.reset,
        expire_tokens=state.expire_tokens,
        error_body=lambda status: (
            fault_body("Internal Server Error", "messaging.runtime.UnknownError")
            if status >= 500
            else {"error": {"code": "injected", "message": f"injected {status}", "details": {}}}
        ),
    )
    if rate_per_second is not None:
        add_rate_limit(
            app,
            per_second=rate_per_second,
            burst=rate_burst,
            response=lambda retry_after: web.json_response(
                fault_body(
                    f"Spike arrest violation. Allowed rate : {rate_per_second:g}ps",
                    "policies.ratelimit.SpikeArrestViolation",
                ),
                status=429,
                headers={"Retry-After": str(max(1, round(retry_after + 0.5)))},
            ),
            exempt=lambda request: request.path == f"{prefix}/health",
        )
    app.middlewares.append(_request_id_middleware)
    routes = _Routes(state, prefix)
    routes.register(app.router)
    return app


@web.middleware
async def _request_id_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    # Like the real gateway, echo the caller's id (or mint one) so both sides can correlate.
    request_id = request.headers.get("X-Request-Id") or secrets.token_hex(8)
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        exc.headers["X-Request-Id"] = request_id
        raise
    response.headers["X-Request-Id"] = request_id
    return response


@dataclass
class _Caller:
    principal: str
    scopes: frozenset[str]


class _Routes:
    """Request handlers; each checks auth, validates input and answers in the contract's shapes."""

    def __init__(self, state: OpenTextState, prefix: str) -> None:
        self.state = state
        self.prefix = prefix

    def register(self, router: web.UrlDispatcher) -> None:
        p = self.prefix
        router.add_post("/tenants/{tenant_id}/oauth2/token", self.issue_token)
        router.add_post("/otdsws/rest/authentication/credentials", self.otds_login)
        router.add_get("/otdsws/rest/oauthclients/{client_id}", self.otds_get_client)
        router.add_put("/otdsws/rest/oauthclients/{client_id}", self.otds_put_client)
        router.add_post("/_control/opentext/fail-next-job", self.control_fail_next_job)
        router.add_post("/_control/opentext/seed-artifacts", self.control_seed_artifacts)
        router.add_get(f"{p}/health", self.health)
        router.add_get(f"{p}/environments", self.list_environments)
        router.add_get(f"{p}/artifacts", self.list_artifacts)
        router.add_get(f"{p}/artifacts/{{artifact_id}}", self.get_artifact)
        router.add_get(f"{p}/artifacts/{{artifact_id}}/versions/{{version}}", self.get_version)
        router.add_post(f"{p}/artifacts/{{artifact_id}}/clone", self.clone_artifact)
        router.add_get(f"{p}/environments/{{env}}/deployments", self.list_deployments)
        router.add_get(f"{p}/environments/{{env}}/deployments/{{artifact_id}}", self.get_deployment)
        router.add_post(f"{p}/promotions", self.start_promotion)
        router.add_get(f"{p}/jobs/{{job_id}}", self.get_job)
        router.add_get(f"{p}/environments/{{env}}/credentials", self.list_credentials)
        creds = f"{p}/environments/{{env}}/credentials/{{credential_id}}"
        router.add_get(creds, self.get_credential)
        router.add_post(f"{creds}/rotations", self.start_rotation)
        router.add_get(f"{creds}/rotations/{{rotation_id}}", self.get_rotation)
        router.add_post(f"{creds}/rotations/{{rotation_id}}/test", self.test_rotation)
        router.add_post(f"{creds}/rotations/{{rotation_id}}/activate", self.activate_rotation)
        router.add_post(f"{creds}/rotations/{{rotation_id}}/revoke-previous", self.revoke_previous)
        router.add_post(f"{creds}/rotations/{{rotation_id}}/cancel", self.cancel_rotation)

    # --- authentication -----------------------------------------------------------------------

    async def issue_token(self, request: web.Request) -> web.Response:
        form = await request.post()
        client_id, secret = str(form.get("client_id", "")), str(form.get("client_secret", ""))
        basic = request.headers.get("Authorization", "")
        if basic.startswith("Basic ") and not client_id:
            try:
                client_id, _, secret = base64.b64decode(basic[6:]).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                client_id = ""
        if form.get("grant_type") != "client_credentials":
            return web.json_response(
                fault_body("Unsupported grant type : " + str(form.get("grant_type")),
                           "oauth.v2.UnsupportedGrantType"),
                status=400,
            )  # fmt: skip
        client = self.state.clients.get(client_id)
        if request.match_info["tenant_id"] != self.state.tenant_id or client is None:
            return web.json_response(
                fault_body("Invalid client identifier", "oauth.v2.InvalidClientIdentifier"), status=401
            )
        if not client.accepts(secret, self.state.clock()):
            return web.json_response(
                fault_body("Invalid client credentials", "oauth.v2.InvalidClientCredentials"), status=401
            )
        token = secrets.token_urlsafe(24)
        expires = self.state.clock() + timedelta(seconds=self.state.token_lifetime)
        self.state.tokens[token] = (client_id, expires, client.scopes)
        return web.json_response(
            {
                "access_token": token,
                "token_type": "Bearer",
                "expires_in": self.state.token_lifetime,
                "scope": " ".join(sorted(client.scopes)),
            }
        )

    async def otds_login(self, request: web.Request) -> web.Response:
        body = await _json_object(request)
        user = str(body.get("userName") or body.get("user_name") or "")
        password = str(body.get("password") or "")
        known = self.state.otds_users.get(user)
        if known is None or not secrets.compare_digest(password, known[0]):
            return web.json_response(
                {"token": None, "userId": None, "ticket": None, "failureReason": "Authentication failed"},
                status=401,
            )
        ticket = "*OTDSSSO*" + secrets.token_urlsafe(32)
        expires = self.state.clock() + timedelta(seconds=self.state.ticket_lifetime)
        self.state.tickets[ticket] = (user, expires, known[1])
        return web.json_response(
            {"token": ticket, "userId": f"{user}@otds.admin", "ticket": ticket, "failureReason": None}
        )

    def _caller(self, request: web.Request) -> _Caller | web.Response:
        now = self.state.clock()
        ticket = request.headers.get("OTDSTicket")
        if ticket:
            seen = self.state.tickets.get(ticket)
            if seen is None or seen[1] <= now:
                return web.json_response(
                    fault_body("Invalid or expired OTDS ticket", "otds.InvalidTicket"), status=401
                )
            return _Caller(seen[0], seen[2])
        header = request.headers.get("Authorization", "")
        if not header.startswith("Bearer "):
            return web.json_response(
                fault_body("Invalid access token", "oauth.v2.InvalidAccessToken"), status=401
            )
        issued = self.state.tokens.get(header.removeprefix("Bearer "))
        if issued is None:
            return web.json_response(
                fault_body("Invalid access token", "oauth.v2.InvalidAccessToken"), status=401
            )
        if issued[1] <= now:
            return web.json_response(
                fault_body("Access Token expired", "keymanagement.service.access_token_expired"), status=401
            )
        return _Caller(issued[0], issued[2])

    def _authorize(self, request: web.Request, scope: str) -> _Caller | web.Response:
        caller = self._caller(request)
        if isinstance(caller, _Caller) and scope not in caller.scopes:
            return web.json_response(
                fault_body(f"Insufficient scope: {scope} required", "steps.oauth.v2.InsufficientScope"),
                status=403,
            )
        return caller

    def _otds_caller(self, request: web.Request) -> _Caller | web.Response:
        ticket = request.headers.get("OTDSTicket", "")
        seen = self.state.tickets.get(ticket)
        if seen is None or seen[1] <= self.state.clock():
            return web.json_response({"error": "Invalid or expired ticket"}, status=401)
        if "credentials" not in seen[2]:
            return web.json_response({"error": "User is not an OAuth client administrator"}, status=403)
        return _Caller(seen[0], seen[2])

    # --- OTDS OAuth clients -------------------------------------------------------------------

    def _otds_client_json(self, client: Client) -> dict[str, Any]:
        return {
            "id": client.client_id,
            "displayName": client.client_id,
            "description": client.description,
            "confidential": True,
            "secret": client.secret,
            "accessTokenLifeTime": self.state.token_lifetime,
            "permissibleScopes": sorted(client.scopes),
            "redirectURLs": [],
            "location": f"oa={client.client_id},ou=OAuthClients,ou=Root,ou=System,dc=identity,dc=opentext,dc=net",
        }

    async def otds_get_client(self, request: web.Request) -> web.Response:
        caller = self._otds_caller(request)
        if isinstance(caller, web.Response):
            return caller
        client = self.state.clients.get(request.match_info["client_id"])
        if client is None:
            return web.json_response({"error": "OAuth client not found"}, status=404)
        return web.json_response(self._otds_client_json(client))

    async def otds_put_client(self, request: web.Request) -> web.Response:
        caller = self._otds_caller(request)
        if isinstance(caller, web.Response):
            return caller
        client = self.state.clients.get(request.match_info["client_id"])
        if client is None:
            return web.json_response({"error": "OAuth client not found"}, status=404)
        body = await _json_object(request)
        secret = body.get("secret")
        if secret is not None:
            if not isinstance(secret, str) or len(secret) < 16:
                return web.json_response({"error": "Secret must be at least 16 characters"}, status=400)
            client.secret = secret  # OTDS replaces the secret at once: no grace period
        if isinstance(body.get("description"), str):
            client.description = body["description"]
        return web.json_response(self._otds_client_json(client))

    # --- control ------------------------------------------------------------------------------

    async def control_fail_next_job(self, request: web.Request) -> web.Response:
        body = await _json_object(request)
        self.state.fail_next_job = {
            "code": str(body.get("code", "deployment_failed")),
            "message": str(body.get("message", "Target runtime rejected the artifact")),
        }
        return web.json_response({"armed": True})

    async def control_seed_artifacts(self, request: web.Request) -> web.Response:
        body = await _json_object(request)
        count = body.get("count")
        if not isinstance(count, int) or not 1 <= count <= GENERATED_MAX:
            return api_error(400, "invalid_request", f"count must be 1..{GENERATED_MAX}")
        solution, prefix = str(body.get("solution") or "generated"), str(body.get("prefix") or "artifact")
        created = seed_generated_artifacts(self.state, count, solution=solution, prefix=prefix)
        return web.json_response({"artifacts": created})

    # --- admin API ------------------------------------------------------------------------------

    async def health(self, request: web.Request) -> web.Response:
        return web.json_response(
            {"status": "ok", "version": "emulator-1.0", "time": _iso(self.state.clock())}
        )

    async def list_environments(self, request: web.Request) -> web.Response:
        caller = self._authorize(request, "read")
        if isinstance(caller, web.Response):
            return caller
        return web.json_response({"items": list(self.state.environments.values())})

    async def list_artifacts(self, request: web.Request) -> web.Response:
        caller = self._authorize(request, "read")
        if isinstance(caller, web.Response):
            return caller
        query = request.query
        try:
            limit = int(query.get("limit", "50"))
            start = int(query.get("cursor", "0") or "0")
        except ValueError:
            return api_error(400, "invalid_request", "limit and cursor must be integers")
        if not 1 <= limit <= PAGE_LIMIT_MAX or start < 0:
            return api_error(400, "invalid_request", f"limit must be 1..{PAGE_LIMIT_MAX}")
        kind = query.get("kind")
        if kind is not None and kind not in ("api", "map", "messaging_config"):
            return api_error(400, "invalid_request", "kind must be api, map or messaging_config", kind=kind)
        matches = [
            a
            for a in sorted(self.state.artifacts.values(), key=lambda a: a.id)
            if (kind is None or a.kind == kind)
            and ("solution" not in query or a.solution == query["solution"])
            and ("name" not in query or a.name == query["name"])
        ]
        page = matches[start : start + limit]
        next_cursor = str(start + limit) if start + limit < len(matches) else None
        return web.json_response(
            {"items": [_artifact_summary_json(a) for a in page], "next_cursor": next_cursor}
        )

    def _artifact(self, artifact_id: str) -> Artifact | web.Response:
        artifact = self.state.artifacts.get(artifact_id)
        if artifact is None:
            return api_error(404, "artifact_not_found", f"No artifact {artifact_id}", artifact_id=artifact_id)
        return artifact

    def _environment(self, name: str) -> web.Response | None:
        if name not in self.state.environments:
            return api_error(404, "environment_not_found", f"No environment {name}", environment=name)
        return None

    async def get_artifact(self, request: web.Request) -> web.Response:
        caller = self._authorize(request, "read")
        if isinstance(caller, web.Response):
            return caller
        artifact = self._artifact(request.match_info["artifact_id"])
        if isinstance(artifact, web.Response):
            return artifact
        return web.json_response(_artifact_json(artifact))

    async def get_version(self, request: web.Request) -> web.Response:
        caller = self._authorize(request, "read")
        if isinstance(caller, web.Response):
            return caller
        artifact = self._artifact(request.match_info["artifact_id"])
        if isinstance(artifact, web.Response):
            return artifact
        version = artifact.version(request.match_info["version"])
        if version is None:
            return api_error(404, "version_not_found", f"No version {request.match_info['version']}")
        return web.json_response(_version_json(version))

    async def list_deployments(self, request: web.Request) -> web.Response:
        caller = self._authorize(request, "read")
        if isinstance(caller, web.Response):
            return caller
        env = request.match_info["env"]
        missing = self._environment(env)
        if missing is not None:
            return missing
        items = [
            _deployment_json(d)
            for (e, _), d in sorted(self.state.deployments.items())
            if e == env
            and (
                "solution" not in request.query
                or self.state.artifacts[d.artifact_id].solution == request.query["solution"]
            )
        ]
        return web.json_response({"items": items})

    async def get_deployment(self, request: web.Request) -> web.Response:
        caller = self._authorize(request, "read")
        if isinstance(caller, web.Response):
            return caller
        env, artifact_id = request.match_info["env"], request.match_info["artifact_id"]
        missing = self._environment(env)
        if missing is not None:
            return missing
        artifact = self._artifact(artifact_id)
        if isinstance(artifact, web.Response):
            return artifact
        deployment = self.state.deployments.get((env, artifact_id))
        if deployment is None:
            return api_error(404, "not_deployed", f"{artifact_id} is not deployed in {env}")
        return web.json_response(_deployment_json(deployment))

    def _new_job(self, kind: str, job_request: dict[str, Any]) -> Job:
        job = Job(
            job_id=self.state.next_id("job"),
            kind=kind,
            request=job_request,
            created_at=self.state.clock(),
            fail_with=self.state.fail_next_job,
        )
        self.state.fail_next_job = None
        self.state.jobs[job.job_id] = job
        return job

    def _accepted(self, job: Job) -> web.Response:
        return web.json_response(
            {"job_id": job.job_id, "kind": job.kind, "state": job.state},
            status=202,
            headers={"Location": f"{self.prefix}/jobs/{job.job_id}"},
        )

    def _replayed(self, request: web.Request, scope: str) -> web.Response | None:
        key = request.headers.get("Idempotency-Key")
        if key and f"{scope}:{key}" in self.state.idempotency:
            return self._accepted(self.state.jobs[self.state.idempotency[f"{scope}:{key}"]])
        return None

    def _remember(self, request: web.Request, scope: str, job: Job) -> None:
        key = request.headers.get("Idempotency-Key")
        if key:
            self.state.idempotency[f"{scope}:{key}"] = job.job_id

    async def start_promotion(self, request: web.Request) -> web.Response:
        caller = self._authorize(request, "deploy")
        if isinstance(caller, web.Response):
            return caller
        replay = self._replayed(request, "promotion")
        if replay is not None:
            return replay
        body = await _json_object(request)
        required = ("artifact_id", "version", "source_environment", "target_environment", "requested_by")
        missing_fields = [name for name in required if not isinstance(body.get(name), str) or not body[name]]
        if missing_fields:
            return api_error(400, "invalid_request", "Missing required fields", fields=missing_fields)
        source, target = body["source_environment"], body["target_environment"]
        if source == target:
            return api_error(400, "invalid_request", "Source and target environment must differ")
        for env in (source, target):
            missing = self._environment(env)
            if missing is not None:
                return missing
        artifact = self._artifact(body["artifact_id"])
        if isinstance(artifact, web.Response):
            return artifact
        if artifact.version(body["version"]) is None:
            return api_error(
                404, "version_not_found", f"{artifact.id} has no version {body['version']}",
                artifact_id=artifact.id, version=body["version"],
            )  # fmt: skip
        in_source = self.state.deployments.get((source, artifact.id))
        if in_source is None or in_source.version != body["version"]:
            return api_error(
                409, "version_not_in_source",
                f"{artifact.id} {body['version']} is not the version deployed in {source}",
                deployed_version=None if in_source is None else in_source.version,
            )  # fmt: skip
        for job in self.state.jobs.values():
            if (
                job.kind == "promotion"
                and job.state in ("queued", "running")
                and job.request["artifact_id"] == artifact.id
                and job.request["target_environment"] == target
            ):
                return api_error(
                    409, "promotion_in_progress", f"{artifact.id} is already being promoted to {target}",
                    job_id=job.job_id,
                )  # fmt: skip
        job_request = {
            "artifact_id": artifact.id,
            "version": body["version"],
            "source_environment": source,
            "target_environment": target,
            "requested_by": body["requested_by"],
            "reason": body.get("reason"),
            "change_ref": body.get("change_ref"),
        }
        job = self._new_job("promotion", job_request)
        self._remember(request, "promotion", job)
        return self._accepted(job)

    async def clone_artifact(self, request: web.Request) -> web.Response:
        caller = self._authorize(request, "clone")
        if isinstance(caller, web.Response):
            return caller
        replay = self._replayed(request, "clone")
        if replay is not None:
            return replay
        artifact = self._artifact(request.match_info["artifact_id"])
        if isinstance(artifact, web.Response):
            return artifact
        body = await _json_object(request)
        new_name, requested_by = body.get("new_name"), body.get("requested_by")
        if not isinstance(new_name, str) or not new_name or not isinstance(requested_by, str):
            return api_error(400, "invalid_request", "new_name and requested_by are required")
        solution = body.get("solution") or artifact.solution
        version = body.get("version") or artifact.versions[0].version
        if artifact.version(version) is None:
            return api_error(404, "version_not_found", f"{artifact.id} has no version {version}")
        if f"{solution}.{new_name}" in self.state.artifacts:
            return api_error(409, "artifact_exists", f"{solution}.{new_name} already exists")
        job_request = {
            "artifact_id": artifact.id,
            "version": version,
            "new_name": new_name,
            "solution": solution,
            "requested_by": requested_by,
        }
        job = self._new_job("clone", job_request)
        self._remember(request, "clone", job)
        return self._accepted(job)

    async def get_job(self, request: web.Request) -> web.Response:
        caller = self._authorize(request, "read")
        if isinstance(caller, web.Response):
            return caller
        job = self.state.jobs.get(request.match_info["job_id"])
        if job is None:
            return api_error(404, "job_not_found", f"No job {request.match_info['job_id']}")
        self.state.advance_job(job)
        return web.json_response(_job_json(job))

    # --- credentials and rotation ---------------------------------------------------------------

    async def list_credentials(self, request: web.Request) -> web.Response:
        caller = self._authorize(request, "read")
        if isinstance(caller, web.Response):
            return caller
        env = request.match_info["env"]
        missing = self._environment(env)
        if missing is not None:
            return missing
        now = self.state.clock()
        items = [_credential_json(c, now) for (e, _), c in sorted(self.state.credentials.items()) if e == env]
        if "status" in request.query:
            items = [c for c in items if c["status"] == request.query["status"]]
        return web.json_response({"items": items})

    def _credential(self, request: web.Request) -> Credential | web.Response:
        env, cred_id = request.match_info["env"], request.match_info["credential_id"]
        missing = self._environment(env)
        if missing is not None:
            return missing
        credential = self.state.credentials.get((env, cred_id))
        if credential is None:
            return api_error(404, "credential_not_found", f"No credential {cred_id} in {env}")
        return credential

    async def get_credential(self, request: web.Request) -> web.Response:
        caller = self._authorize(request, "read")
        if isinstance(caller, web.Response):
            return caller
        credential = self._credential(request)
        if isinstance(credential, web.Response):
            return credential
        return web.json_response(_credential_json(credential, self.state.clock()))

    async def start_rotation(self, request: web.Request) -> web.Response:
        caller = self._authorize(request, "credentials")
        if isinstance(caller, web.Response):
            return caller
        credential = self._credential(request)
        if isinstance(credential, web.Response):
            return credential
        if credential.kind != "oauth_client":
            return api_error(400, "not_rotatable", f"{credential.kind} credentials are rotated manually")
        body = await _json_object(request)
        requested_by = body.get("requested_by")
        validity_days = body.get("validity_days", 365)
        if not isinstance(requested_by, str) or not requested_by:
            return api_error(400, "invalid_request", "requested_by is required")
        if not isinstance(validity_days, int) or not 1 <= validity_days <= 730:
            return api_error(400, "invalid_request", "validity_days must be 1..730")
        existing = credential.open_rotation()
        if existing is not None:
            return api_error(
                409, "rotation_in_progress", f"Rotation {existing.rotation_id} is {existing.state}",
                rotation_id=existing.rotation_id,
            )  # fmt: skip
        now = self.state.clock()
        rotation = Rotation(
            rotation_id=self.state.next_id("rot"),
            credential_id=credential.id,
            environment=credential.environment,
            requested_by=requested_by,
            created_at=now,
            new_expires_at=now + timedelta(days=validity_days),
        )
        credential.rotations.append(rotation)
        secret = secrets.token_urlsafe(32)
        self.state.clients[credential.client_id].pending_secret = secret
        return web.json_response({**_rotation_json(rotation), "secret": secret}, status=201)

    def _rotation(self, request: web.Request) -> tuple[Credential, Rotation] | web.Response:
        credential = self._credential(request)
        if isinstance(credential, web.Response):
            return credential
        rotation_id = request.match_info["rotation_id"]
        rotation = next((r for r in credential.rotations if r.rotation_id == rotation_id), None)
        if rotation is None:
            return api_error(404, "rotation_not_found", f"No rotation {rotation_id}")
        return credential, rotation

    def _rotation_step(
        self, request: web.Request, scope: str, allowed: tuple[str, ...]
    ) -> tuple[Credential, Rotation, Client] | web.Response:
        caller = self._authorize(request, scope)
        if isinstance(caller, web.Response):
            return caller
        found = self._rotation(request)
        if isinstance(found, web.Response):
            return found
        credential, rotation = found
        if rotation.state not in allowed:
            return api_error(
                409, "invalid_rotation_state",
                f"Rotation {rotation.rotation_id} is {rotation.state}; expected {' or '.join(allowed)}",
                state=rotation.state,
            )  # fmt: skip
        return credential, rotation, self.state.clients[credential.client_id]

    async def get_rotation(self, request: web.Request) -> web.Response:
        caller = self._authorize(request, "read")
        if isinstance(caller, web.Response):
            return caller
        found = self._rotation(request)
        if isinstance(found, web.Response):
            return found
        return web.json_response(_rotation_json(found[1]))

    async def test_rotation(self, request: web.Request) -> web.Response:
        step = self._rotation_step(request, "credentials", ("pending", "tested"))
        if isinstance(step, web.Response):
            return step
        _, rotation, client = step
        now = self.state.clock()
        # The platform authenticates the client with the pending secret, as a partner would.
        authenticated = client.pending_secret is not None and client.accepts(client.pending_secret, now)
        if authenticated:
            rotation.state, rotation.tested_at = "tested", now
        return web.json_response(
            {**_rotation_json(rotation), "authenticated": authenticated, "tested_at": _iso(now)}
        )

    async def activate_rotation(self, request: web.Request) -> web.Response:
        step = self._rotation_step(request, "credentials", ("tested",))
        if isinstance(step, web.Response):
            return step
        credential, rotation, client = step
        body = await _json_object(request)
        grace = body.get("grace_seconds", 3600)
        if not isinstance(grace, int) or not 0 <= grace <= 30 * 86400:
            return api_error(400, "invalid_request", "grace_seconds must be 0..2592000")
        now = self.state.clock()
        assert client.pending_secret is not None
        client.previous_secret, client.secret, client.pending_secret = (
            client.secret,
            client.pending_secret,
            None,
        )
        client.previous_valid_until = now + timedelta(seconds=grace)
        rotation.state, rotation.activated_at = "active", now
        rotation.previous_valid_until = client.previous_valid_until
        credential.expires_at, credential.last_rotated_at = rotation.new_expires_at, now
        return web.json_response(_rotation_json(rotation))

    async def revoke_previous(self, request: web.Request) -> web.Response:
        step = self._rotation_step(request, "credentials", ("active",))
        if isinstance(step, web.Response):
            return step
        _, rotation, client = step
        now = self.state.clock()
        client.previous_secret, client.previous_valid_until = None, None
        rotation.state, rotation.completed_at, rotation.previous_valid_until = "completed", now, now
        return web.json_response(_rotation_json(rotation))

    async def cancel_rotation(self, request: web.Request) -> web.Response:
        step = self._rotation_step(request, "credentials", ("pending", "tested"))
        if isinstance(step, web.Response):
            return step
        _, rotation, client = step
        client.pending_secret = None
        rotation.state, rotation.completed_at = "cancelled", self.state.clock()
        return web.json_response(_rotation_json(rotation))


async def _json_object(request: web.Request) -> dict[str, Any]:
    """The request's JSON object body, or {} when absent or not an object."""
    if not request.body_exists:
        return {}
    try:
        body = await request.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
