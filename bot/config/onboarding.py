"""The `onboarding_templates:` section of the YAML file: what a new partner or media workflow needs.

Kept apart from `commands/onboard.py` so that `bot/config/opsgate.py` can use these models without
importing the workflow (which itself reads the settings). `{name}` and `{env}` in any text are
replaced by the onboarded name and environment. Example::

    onboarding_templates:
      - name: edi-partner
        description: EDIFACT trading partner sending ORDERS over AS2
        solution: orders-edi                        # its Confluence space gets the page
        artifacts:                                  # cloned in OpenText from a reference
          - source: orders-edi.orders-inbound-api
            name: "{name}-orders-api"
          - source: orders-edi.orders-d96a-to-xml
            name: "{name}-d96a-to-xml"
            version: 2.4.1                          # default: the source's latest version
        credentials:                                # OpenText cannot create them: listed to add
          - name: "{name}-{env}-client"
            credential_id: "{name}-{env}-client"
            owner: U024BE7LH
            schedule: 90d
        environments:                               # settings published on the page
          prod: {as2_url: "https://b2b.acme.example/as2/{name}", as2_id: "ACME01"}
        iconik: {storage: "Export - Retailer A", collection: "Partner {name}", parent_collection: Releases}
        canto: {folder: "Partner Releases", album: "{name}"}
        interface_guide: "Partners post ORDERS to the AS2 endpoint below ..."
        message_standards: ["EDIFACT ORDERS D96A"]
        testing: ["Send a test ORDERS to the test endpoint", "Check the XML in the monitoring UI"]
        support_contacts: [{role: EDI support, contact: "#edi-support"}]
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Final

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from bot.config.credentials import MAX_GRACE_PERIOD, Schedule, StoreKind
from bot.domain.durations import Duration, format_duration

__all__ = [
    "PLACEHOLDERS",
    "ArtifactFromTemplate",
    "CantoAlbumFromTemplate",
    "CredentialFromTemplate",
    "IconikRouteFromTemplate",
    "OnboardingTemplate",
    "OnboardingTemplates",
    "SupportContact",
    "render",
]

PLACEHOLDERS: Final = ("{name}", "{env}")
# What a rendered identifier (artifact name, credential name or id) must look like.
IDENTIFIER: Final = re.compile(r"^[a-z0-9][a-z0-9._-]{0,99}$")
_SLUG: Final = r"^[a-z0-9][a-z0-9_-]{0,63}$"
_ARTIFACT_ID: Final = r"^[a-z0-9][a-z0-9_-]*\.[A-Za-z0-9][A-Za-z0-9._-]*$"
# Settings are published on the onboarding page: a key that names a secret does not belong there.
_SECRET_KEY: Final = re.compile(
    r"(^|_)(secret|password|passwd|token|api_key|private_key|pat)$", re.IGNORECASE
)
_SAMPLE: Final = {"name": "partner", "env": "dev"}


def render(text: str, *, name: str, env: str) -> str:
    """`text` with `{name}` and `{env}` replaced; other braces stay (free text may hold JSON)."""
    return text.replace("{name}", name).replace("{env}", env)


def _identifier_pattern(value: str) -> str:
    rendered = render(value, **_SAMPLE)
    if not IDENTIFIER.fullmatch(rendered):
        raise ValueError(
            f"{value!r} must give a lower-case name of letters, digits, '.', '_' or '-' once "
            "{name} and {env} are filled in (those are the only placeholders)"
        )
    return value


IdentifierPattern = Annotated[str, AfterValidator(_identifier_pattern)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ArtifactFromTemplate(_Strict):
    """An OpenText artifact cloned from a reference artifact into `<solution>.<name>`."""

    source: str = Field(pattern=_ARTIFACT_ID, description="the reference artifact id, <solution>.<name>")
    name: IdentifierPattern = Field(description="the new artifact's name, e.g. {name}-orders-api")
    solution: str | None = Field(None, pattern=_SLUG, description="default: the source's solution")
    version: str | None = Field(None, min_length=1, description="default: the source's latest version")


class CredentialFromTemplate(_Strict):
    """A credential the new partner needs, with its owner and rotation schedule."""

    name: IdentifierPattern = Field(description="opsgate's name for it (the credentials: entry)")
    credential_id: IdentifierPattern = Field(description="the OpenText credential id")
    owner: str = Field(min_length=1, description="Slack user ID answerable for it")
    owner_channel: str | None = None
    description: str = ""
    schedule: Schedule
    grace_period: Duration = timedelta(hours=24)
    store: StoreKind = "local"

    @field_validator("grace_period")
    @classmethod
    def _grace_in_range(cls, value: timedelta) -> timedelta:
        if not timedelta(0) <= value <= MAX_GRACE_PERIOD:
            raise ValueError(f"must be between 0s and {format_duration(MAX_GRACE_PERIOD)} (OpenText's limit)")
        return value


class IconikRouteFromTemplate(_Strict):
    """An iconik collection whose uploads land on an existing storage (the partner's route)."""

    storage: str = Field(min_length=1, description="an existing storage, by name or id")
    collection: str = Field("{name}", min_length=1, description="the collection's title")
    parent_collection: str | None = Field(None, min_length=1, description="title or id of its parent")


class CantoAlbumFromTemplate(_Strict):
    """A Canto album inside an existing folder."""

    folder: str = Field(min_length=1, description="the folder's path, e.g. Partner Releases")
    album: str = Field("{name}", min_length=1)
    description: str = ""

    @field_validator("album")
    @classmethod
    def _one_level(cls, value: str) -> str:
        if "/" in value:
            raise ValueError("an album name cannot contain '/'; put the path in folder")
        return value


class SupportContact(_Strict):
    role: str = Field(min_length=1)
    contact: str = Field(min_length=1)


class OnboardingTemplate(_Strict):
    """Everything `/onboard <template> <name> <env>` creates, and what its page tells the partner."""

    name: str = Field(pattern=_SLUG)
    description: str = ""
    solution: str | None = Field(None, pattern=_SLUG, description="whose Confluence space gets the page")
    confluence_space: str | None = Field(None, min_length=1, description="overrides the solution's space")
    artifacts: list[ArtifactFromTemplate] = Field(default_factory=list)
    credentials: list[CredentialFromTemplate] = Field(default_factory=list)
    environments: dict[str, dict[str, str]] = Field(
        default_factory=dict, description="environment -> settings published on the page"
    )
    iconik: IconikRouteFromTemplate | None = None
    canto: CantoAlbumFromTemplate | None = None
    interface_guide: str = ""
    message_standards: list[str] = Field(default_factory=list)
    testing: list[str] = Field(default_factory=list)
    support_contacts: list[SupportContact] = Field(default_factory=list)

    @field_validator("environments")
    @classmethod
    def _no_secrets_in_settings(cls, value: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
        for environment, settings in value.items():
            for key in settings:
                if _SECRET_KEY.search(key):
                    raise ValueError(
                        f"{environment}.{key}: settings are published on the onboarding page, so they "
                        "must not hold secrets; list the credential under credentials: instead"
                    )
        return value

    @model_validator(mode="after")
    def _creates_something_once(self) -> OnboardingTemplate:
        if not (self.artifacts or self.credentials or self.iconik or self.canto):
            raise ValueError("a template needs at least one of artifacts, credentials, iconik or canto")
        for what, names in (
            ("artifact name", [a.name for a in self.artifacts]),
            ("credential name", [c.name for c in self.credentials]),
            ("credential_id", [c.credential_id for c in self.credentials]),
        ):
            repeated = sorted({n for n in names if names.count(n) > 1})
            if repeated:
                raise ValueError(f"the {what} {repeated[0]!r} is used twice")
        return self

    def settings_for(self, environment: str, *, name: str) -> dict[str, str]:
        """The environment's settings with placeholders filled in (empty when it has none)."""
        return {
            key: render(value, name=name, env=environment)
            for key, value in self.environments.get(environment, {}).items()
        }


def _names_unique(templates: list[OnboardingTemplate]) -> list[OnboardingTemplate]:
    seen: dict[str, int] = {}
    for index, template in enumerate(templates):
        if template.name in seen:
            raise ValueError(
                f"the template name {template.name!r} is used by items {seen[template.name]} and {index}"
            )
        seen[template.name] = index
    return templates


OnboardingTemplates = Annotated[list[OnboardingTemplate], AfterValidator(_names_unique)]
