"""HashiCorp Vault emulator: the KV v2 secrets engine, answering as Vault does.

Serves, for each mount (default `secret`):
  GET         /v1/sys/health                               unauthenticated health
  POST|PUT    /v1/{mount}/data/{path}                      write a new version ({"data", "options": {"cas"}})
  GET         /v1/{mount}/data/{path}?version=N            read a version (latest when N is 0 or absent)
  GET         /v1/{mount}/metadata/{path}                  key metadata: versions, current_version, custom_metadata
  POST|PUT    /v1/{mount}/metadata/{path}                  set max_versions, cas_required, custom_metadata (replaced)
  DELETE      /v1/{mount}/metadata/{path}                  forget the key and all versions
  POST|PUT    /v1/{mount}/destroy/{path}                   {"versions": [...]}: remove version data for good
plus the shared /_control routes of `faults.py`.

Vault behaviour kept: every path needs `X-Vault-Token` (403 `{"errors": ["permission denied"]}`
otherwise); unknown keys are 404 `{"errors": []}`; reading a destroyed version is a 404 whose body
still carries the version metadata; `cas` mismatches are 400; `max_versions` drops the oldest.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from aiohttp import web

from connectors.emulators.faults import add_fault_injection

__all__ = ["DEFAULT_TOKEN", "VaultState", "create_app", "vault_state_of"]

DEFAULT_TOKEN: Final = "emulated-vault-root-token"
DEFAULT_MAX_VERSIONS: Final = 10

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _now_text(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


@dataclass
class Version:
    number: int
    data: dict[str, Any] | None
    created_time: str
    deletion_time: str = ""
    destroyed: bool = False

    def metadata(self, custom: dict[str, str] | None) -> dict[str, Any]:
        return {
            "created_time": self.created_time,
            "custom_metadata": custom,
            "deletion_time": self.deletion_time,
            "destroyed": self.destroyed,
            "version": self.number,
        }


@dataclass
class Key:
    created_time: str
    updated_time: str
    versions: dict[int, Version] = field(default_factory=dict)
    current_version: int = 0
    max_versions: int = 0
    cas_required: bool = False
    custom_metadata: dict[str, str] | None = None

    @property
    def oldest_version(self) -> int:
        return min(self.versions) if self.versions else 0


@dataclass
class VaultState:
    """All keys per mount; `reset()` empties them."""

    clock: Callable[[], datetime]
    mounts: tuple[str, ...] = ("secret",)
    keys: dict[tuple[str, str], Key] = field(default_factory=dict)

    def reset(self) -> None:
        self.keys.clear()


_STATE = web.AppKey("vault_state", VaultState)


def vault_state_of(app: web.Application) -> VaultState:
    """The emulator state behind an app made by create_app (for in-process assertions)."""
    return app[_STATE]


def _errors(status: int, *messages: str) -> web.Response:
    return web.json_response({"errors": list(messages)}, status=status)


def _envelope(data: Any) -> dict[str, Any]:
    return {
        "request_id": str(uuid.uuid4()),
        "lease_id": "",
        "renewable": False,
        "lease_duration": 0,
        "data": data,
        "wrap_info": None,
        "warnings": None,
        "auth": None,
    }


async def _json_object(request: web.Request) -> dict[str, Any] | None:
    if not request.body_exists:
        return {}
    try:
        body = await request.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


class _Vault:
    def __init__(self, state: VaultState, token: str) -> None:
        self.state = state
        self.token = token

    @web.middleware
    async def authenticate(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith("/_control/") or request.path == "/v1/sys/health":
            return await handler(request)
        given = request.headers.get("X-Vault-Token", "")
        if not secrets.compare_digest(given.encode(), self.token.encode()):
            return _errors(403, "permission denied")
        return await handler(request)

    def _locate(self, request: web.Request) -> tuple[str, str] | web.Response:
        mount, path = request.match_info["mount"], request.match_info["path"].strip("/")
        if mount not in self.state.mounts:
            return _errors(404, f'no handler for route "{mount}/{path}". route entry not found.')
        if not path:
            return _errors(405)
        return mount, path

    async def health(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "initialized": True,
                "sealed": False,
                "standby": False,
                "performance_standby": False,
                "replication_performance_mode": "disabled",
                "replication_dr_mode": "disabled",
                "server_time_utc": int(self.state.clock().timestamp()),
                "version": "1.17.0+emulated",
                "cluster_name": "vault-emulator",
            }
        )

    async def write_data(self, request: web.Request) -> web.Response:
        located = self._locate(request)
        if isinstance(located, web.Response):
            return located
        body = await _json_object(request)
        if body is None or not isinstance(body.get("data"), dict):
            return _errors(400, "no data provided")
        options = body.get("options") or {}
        now = _now_text(self.state.clock())
        key = self.state.keys.get(located)
        cas = options.get("cas") if isinstance(options, dict) else None
        if key is not None and key.cas_required and cas is None:
            return _errors(400, "check-and-set parameter required for this call")
        if cas is not None and cas != (key.current_version if key else 0):
            return _errors(400, "check-and-set parameter did not match the current version")
        if key is None:
            key = self.state.keys[located] = Key(created_time=now, updated_time=now)
        number = key.current_version + 1
        key.versions[number] = Version(number, dict(body["data"]), now)
        key.current_version = number
        key.updated_time = now
        limit = key.max_versions or DEFAULT_MAX_VERSIONS
        while len(key.versions) > limit:
            del key.versions[min(key.versions)]
        version = key.versions[number]
        meta = version.metadata(key.custom_metadata)
        return web.json_response(_envelope(meta))

    async def read_data(self, request: web.Request) -> web.Response:
        located = self._locate(request)
        if isinstance(located, web.Response):
            return located
        key = self.state.keys.get(located)
        if key is None:
            return _errors(404)
        try:
            number = int(request.query.get("version", "0"))
        except ValueError:
            return _errors(400, "invalid version")
        number = number or key.current_version
        version = key.versions.get(number)
        if version is None:
            return _errors(404)
        body = _envelope(
            {
                "data": None if version.destroyed else version.data,
                "metadata": version.metadata(key.custom_metadata),
            }
        )
        return web.json_response(body, status=404 if version.destroyed or version.deletion_time else 200)

    async def read_metadata(self, request: web.Request) -> web.Response:
        located = self._locate(request)
        if isinstance(located, web.Response):
            return located
        key = self.state.keys.get(located)
        if key is None:
            return _errors(404)
        return web.json_response(
            _envelope(
                {
                    "cas_required": key.cas_required,
                    "created_time": key.created_time,
                    "current_version": key.current_version,
                    "custom_metadata": key.custom_metadata,
                    "delete_version_after": "0s",
                    "max_versions": key.max_versions,
                    "oldest_version": key.oldest_version,
                    "updated_time": key.updated_time,
                    "versions": {
                        str(v.number): {
                            "created_time": v.created_time,
                            "deletion_time": v.deletion_time,
                            "destroyed": v.destroyed,
                        }
                        for v in key.versions.values()
                    },
                }
            )
        )

    async def write_metadata(self, request: web.Request) -> web.Response:
        located = self._locate(request)
        if isinstance(located, web.Response):
            return located
        body = await _json_object(request)
        if body is None:
            return _errors(400, "failed to parse JSON input")
        custom = body.get("custom_metadata")
        if custom is not None and (
            not isinstance(custom, dict)
            or len(custom) > 64
            or not all(isinstance(k, str) and isinstance(v, str) and len(v) <= 512 for k, v in custom.items())
        ):
            return _errors(
                400, "custom_metadata must be a map of at most 64 string keys to strings of <= 512 bytes"
            )
        now = _now_text(self.state.clock())
        key = self.state.keys.get(located)
        if key is None:
            key = self.state.keys[located] = Key(created_time=now, updated_time=now)
        if "custom_metadata" in body:
            key.custom_metadata = dict(custom) if custom else None
        if isinstance(body.get("max_versions"), int):
            key.max_versions = body["max_versions"]
        if isinstance(body.get("cas_required"), bool):
            key.cas_required = body["cas_required"]
        key.updated_time = now
        return web.Response(status=204)

    async def delete_metadata(self, request: web.Request) -> web.Response:
        located = self._locate(request)
        if isinstance(located, web.Response):
            return located
        self.state.keys.pop(located, None)
        return web.Response(status=204)

    async def destroy(self, request: web.Request) -> web.Response:
        located = self._locate(request)
        if isinstance(located, web.Response):
            return located
        body = await _json_object(request)
        versions = None if body is None else body.get("versions")
        if not isinstance(versions, list) or not versions or not all(isinstance(v, int) for v in versions):
            return _errors(400, "no version number provided")
        key = self.state.keys.get(located)
        if key is not None:
            for number in versions:
                version = key.versions.get(number)
                if version is not None:
                    version.destroyed, version.data = True, None
        return web.Response(status=204)


def create_app(
    *,
    token: str = DEFAULT_TOKEN,
    mounts: tuple[str, ...] = ("secret",),
    clock: Callable[[], datetime] | None = None,
) -> web.Application:
    """A Vault KV v2 emulator app (serve it with `faults.start_app`); `token` is the only valid one."""
    state = VaultState(clock=clock or (lambda: datetime.now(UTC)), mounts=mounts)
    vault = _Vault(state, token)
    app = web.Application()
    app[_STATE] = state
    # Faults first (outermost), so injected failures and the request log see every call.
    add_fault_injection(
        app, reset=state.reset, error_body=lambda status: {"errors": [f"emulated fault {status}"]}
    )
    app.middlewares.append(vault.authenticate)
    router = app.router
    router.add_get("/v1/sys/health", vault.health)
    for kind, handlers in (
        ("data", {"POST": vault.write_data, "PUT": vault.write_data, "GET": vault.read_data}),
        (
            "metadata",
            {
                "GET": vault.read_metadata,
                "POST": vault.write_metadata,
                "PUT": vault.write_metadata,
                "DELETE": vault.delete_metadata,
            },
        ),
        ("destroy", {"POST": vault.destroy, "PUT": vault.destroy}),
    ):
        for method, handler in handlers.items():
            router.add_route(method, f"/v1/{{mount}}/{kind}/{{path:.+}}", handler)
    return app
