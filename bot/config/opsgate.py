"""Process settings (environment variables) and the validated YAML configuration.

Environment variables say where things are and hold secrets; the YAML file (OPSGATE_CONFIG)
describes environments, solutions, channels and policies and may only *reference* secrets as
`${ENV_VAR}`. A bad file is reported as `file: key.path[2].name: problem`, never a traceback.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from cryptography.fernet import Fernet
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from bot.config.alerts import AlertsConfig
from bot.config.archive import ArchiveSettings
from bot.config.asset_requests import AssetRequestSettings
from bot.config.credentials import Credentials
from bot.config.destinations import DestinationConfig
from bot.config.env import Settings
from bot.config.onboarding import OnboardingTemplates
from bot.config.webhooks import WebhookSettings
from bot.domain.policy import PolicyRule, PolicySet, StaticDirectory
from connectors.canto import CantoSettings
from connectors.confluence import ConfluenceSettings
from connectors.iconik import IconikSettings
from connectors.opentext import OpenTextSettings

__all__ = [
    "ConfigError",
    "EnvironmentConfig",
    "OpsgateConfig",
    "Settings",
    "SlackConfig",
    "SolutionConfig",
    "load_config",
    "resolve_secret_key",
]


def resolve_secret_key(settings: Settings) -> bytes:
    """The Fernet key for the local secret store and the audit fingerprint key's root.

    Production sets OPSGATE_SECRET_KEY. For a single-machine SQLite install a key file is
    created once (mode 0600) so that fingerprints stay stable across restarts.
    """
    if settings.opsgate_secret_key is not None:
        raw = settings.opsgate_secret_key.get_secret_value().encode()
    else:
        path = settings.opsgate_secret_key_file
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(Fernet.generate_key())
        raw = path.read_bytes().strip()
    try:
        Fernet(raw)
    except (ValueError, TypeError) as exc:
        raise ConfigError(
            "OPSGATE_SECRET_KEY", ["must be a Fernet key: 32 url-safe base64-encoded bytes (opsgate keygen)"]
        ) from exc
    return raw


def fingerprint_key(secret_key: bytes) -> bytes:
    """A separate key for audit fingerprints, derived so the Fernet key itself is never an HMAC key."""
    return hashlib.sha256(b"opsgate-audit-fingerprint:" + base64.urlsafe_b64decode(secret_key)).digest()


# --------------------------------------------------------------------------- YAML model


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EnvironmentConfig(_Strict):
    """One environment (dev, test, prod...): its vendor endpoints and credential references."""

    description: str = ""
    production: bool = False
    opentext: OpenTextSettings | None = None
    canto: CantoSettings | None = None
    iconik: IconikSettings | None = None
    confluence: ConfluenceSettings | None = None


class SolutionConfig(_Strict):
    """A team's integration solution: its artifacts, channel and Confluence space."""

    name: str = Field(min_length=1, pattern=r"^[a-z0-9][a-z0-9_-]*$")
    description: str = ""
    team: str = ""
    channel: str | None = None
    confluence_space: str | None = None
    artifacts: list[str] = Field(default_factory=list)
    downstream_systems: list[str] = Field(default_factory=list)


class SlackConfig(_Strict):
    approvals_channel: str = "#approvals"
    alerts_channel: str = "#alerts"
    channels: dict[str, str] = Field(default_factory=dict, description="channel name -> Slack channel ID")
    allowed_team_ids: list[str] = Field(default_factory=list)
    commands: dict[Literal["promote", "rotate", "release", "ops", "onboard"], str] = Field(
        default_factory=dict
    )

    @field_validator("commands")
    @classmethod
    def _slash_names(cls, value: dict[str, str]) -> dict[str, str]:
        for name, command in value.items():
            if not re.fullmatch(r"/[a-z0-9_-]{1,31}", command):
                raise ValueError(
                    f"{name}: {command!r} must look like /name (lower case, at most 32 characters)"
                )
        return value

    def command(self, name: Literal["promote", "rotate", "release", "ops", "onboard"]) -> str:
        return self.commands.get(name, f"/{name}")


class OpsgateConfig(_Strict):
    environments: dict[str, EnvironmentConfig] = Field(min_length=1)
    solutions: list[SolutionConfig] = Field(default_factory=list)
    groups: dict[str, list[str]] = Field(
        default_factory=dict, description="user groups known without asking Slack: handle -> user IDs"
    )
    slack: SlackConfig = Field(default_factory=SlackConfig)
    policies: list[PolicyRule] = Field(default_factory=list)
    credentials: Credentials = Field(default_factory=list)
    alerts: AlertsConfig = Field(default_factory=AlertsConfig)
    destinations: list[DestinationConfig] = Field(default_factory=list)
    archive: ArchiveSettings | None = None
    webhooks: WebhookSettings = Field(default_factory=WebhookSettings)
    asset_requests: AssetRequestSettings | None = None
    onboarding_templates: OnboardingTemplates = Field(default_factory=list)

    @model_validator(mode="after")
    def _references_resolve(self) -> OpsgateConfig:
        problems = []
        for index, rule in enumerate(self.policies):
            if rule.environment != "*" and rule.environment not in self.environments:
                problems.append(
                    f"policies[{index}].environment: {rule.environment!r} is not a declared environment "
                    f"({', '.join(sorted(self.environments))})"
                )
        for name in PolicySet.duplicates(self.policies):
            problems.append(f"policies: the name {name!r} is used more than once")
        seen: set[str] = set()
        for index, solution in enumerate(self.solutions):
            if solution.name in seen:
                problems.append(f"solutions[{index}].name: {solution.name!r} is declared twice")
            seen.add(solution.name)
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def policy_set(self) -> PolicySet:
        return PolicySet(self.policies)

    def static_directory(self) -> StaticDirectory:
        return StaticDirectory({name: frozenset(users) for name, users in self.groups.items()})


# --------------------------------------------------------------------------- loading


class ConfigError(Exception):
    """A configuration problem; `problems` are `key.path: message` lines fit for a terminal."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__("\n".join(f"{source}: {p}" for p in problems))


_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
# A key *ending* in one of these words holds a secret (client_secret, api_token, pat...);
# token_base_url or token_lifetime do not.
_SECRET_KEY = re.compile(r"(^|_)(secret|password|passwd|token|api_key|private_key|pat)$", re.IGNORECASE)


def _path(parts: tuple[int | str, ...] | list[int | str]) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


def _expand(
    node: Any, path: list[int | str], env: Mapping[str, str], problems: list[str], allow_unset: bool
) -> Any:
    """Resolve ${VAR} (and ${VAR:-default}); secret-like keys must be references, never literals."""
    if isinstance(node, dict):
        return {k: _expand(v, [*path, str(k)], env, problems, allow_unset) for k, v in node.items()}
    if isinstance(node, list):
        return [_expand(v, [*path, i], env, problems, allow_unset) for i, v in enumerate(node)]
    if not isinstance(node, str):
        return node
    key = str(path[-1]) if path and isinstance(path[-1], str) else ""
    if key and _SECRET_KEY.search(key) and not _REFERENCE.fullmatch(node.strip()):
        problems.append(
            f"{_path(path)}: secret values must not be written in the file; "
            "reference an environment variable instead, e.g. ${MY_SECRET}"
        )
        return node

    def substitute(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in env:
            return env[name]
        if default is not None:
            return default
        if not allow_unset:
            problems.append(f"{_path(path)}: environment variable {name} is not set")
            return ""
        # Local trials: a visible stand-in, so that a required value still validates and a
        # vendor that receives it refuses it as a wrong credential, not as a missing one.
        return f"<{name} unset>"

    return _REFERENCE.sub(substitute, node)


def _message(error: Mapping[str, Any]) -> str:
    kind, ctx = error["type"], error.get("ctx") or {}
    if kind == "greater_than_equal":
        return f"must be >= {ctx['ge']}"
    if kind == "less_than_equal":
        return f"must be <= {ctx['le']}"
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        return "is not a known key (check the spelling; see the README's configuration reference)"
    if kind == "too_short":
        return f"must have at least {ctx.get('min_length', 1)} item(s)"
    if kind == "string_too_short":
        return "must not be empty"
    if kind == "value_error":
        return str(ctx.get("error", error["msg"])).removeprefix("Value error, ")
    msg = str(error["msg"])
    return msg[:1].lower() + msg[1:]


def parse_config(
    data: Any, *, source: str, env: Mapping[str, str], allow_unset: bool = False
) -> OpsgateConfig:
    if not isinstance(data, dict):
        raise ConfigError(source, ["the file must contain a mapping with at least an 'environments' key"])
    problems: list[str] = []
    expanded = _expand(data, [], env, problems, allow_unset)
    if problems:
        raise ConfigError(source, problems)
    try:
        return OpsgateConfig.model_validate(expanded)
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            loc = [p for p in error["loc"] if not (isinstance(p, str) and p.startswith("function-"))]
            if error["type"] == "value_error" and not loc:
                lines.extend(_message(error).split("; "))
            else:
                lines.append(f"{_path(loc)}: {_message(error)}")
        raise ConfigError(source, lines) from None


def load_config(
    path: Path, *, env: Mapping[str, str] | None = None, allow_unset: bool = False
) -> OpsgateConfig:
    """Read, expand and validate the YAML file, or raise ConfigError naming the file and key."""
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            source, ["file not found (set OPSGATE_CONFIG or copy opsgate.example.yaml)"]
        ) from None
    except OSError as exc:
        raise ConfigError(source, [f"cannot be read: {exc.strerror}"]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise ConfigError(source, [f"{where}not valid YAML ({getattr(exc, 'problem', exc)})"]) from None
    return parse_config(data, source=source, env=os.environ if env is None else env, allow_unset=allow_unset)
