"""What an onboarding will create and what already exists: the reads shared by precheck and execute.

`OnboardingLookups` asks OpenText, iconik, Canto and Confluence about each thing a template
describes, without changing anything. `plan_onboarding` turns the answers into an
`OnboardingPlan`: one `PlannedItem` per thing, marked

    + create     it does not exist yet; the onboarding creates it
    = exists     it exists as the template describes; left as it is
    ~ differs    it exists but not as the template describes (the differences say how); left as it is
    ! manual     a person must act: OpenText's admin API cannot create credentials
    > update     the onboarding page exists and is rewritten

Things opsgate creates carry a mark so a later run finds them again: cloned artifacts have
their deterministic id, the iconik collection has the external id `opsgate-onboarding:<name>@<env>`,
the Canto album sits at its path and the page has its title.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Final, Literal

from bot.config.onboarding import (
    IDENTIFIER,
    ArtifactFromTemplate,
    CredentialFromTemplate,
    OnboardingTemplate,
    render,
)
from bot.config.opsgate import OpsgateConfig
from bot.domain.durations import format_duration
from commands.onboard_pages import CredentialFacts, onboarding_page_title
from commands.release import resolve_storage
from connectors.canto import CantoConnector, CantoTreeNode
from connectors.errors import NotFound
from connectors.iconik import IconikCollection, IconikConnector, IconikStorage
from connectors.opentext import Artifact, OpenTextConnector
from connectors.registry import ConnectorNotConfigured, ConnectorRegistry

__all__ = [
    "AlbumLookup",
    "ArtifactTarget",
    "CollectionLookup",
    "OnboardingBlocked",
    "OnboardingLookups",
    "OnboardingPlan",
    "PageHome",
    "PlannedItem",
    "collection_external_id",
    "plan_onboarding",
]

PlanStatus = Literal["create", "exists", "differs", "manual", "update"]
ItemKind = Literal["artifact", "credential", "iconik_collection", "canto_album", "confluence_page"]

EXTERNAL_ID_PREFIX: Final = "opsgate-onboarding"
_SYMBOL: Final[Mapping[PlanStatus, str]] = {
    "create": "+",
    "exists": "=",
    "differs": "~",
    "manual": "!",
    "update": ">",
}
_LABEL: Final[Mapping[ItemKind, str]] = {
    "artifact": "OpenText artifact",
    "credential": "credential",
    "iconik_collection": "iconik collection",
    "canto_album": "Canto album",
    "confluence_page": "Confluence page",
}


class OnboardingBlocked(Exception):
    """The onboarding cannot go ahead as configured; the message says what to fix."""


def collection_external_id(name: str, environment: str) -> str:
    """The external id that marks the iconik collection of one onboarding."""
    return f"{EXTERNAL_ID_PREFIX}:{name}@{environment}"


@dataclass(frozen=True)
class PlannedItem:
    """One thing the template describes and what the onboarding will do about it."""

    kind: ItemKind
    name: str
    status: PlanStatus
    detail: str = ""
    differences: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        return f"{_LABEL[self.kind]} {self.name}"

    def line(self) -> str:
        """`+ OpenText artifact orders-edi.globex-orders-api: clone of ...` (what approvers read)."""
        text = f"{_SYMBOL[self.status]} {self.label}"
        return f"{text}: {self.detail}" if self.detail else text


@dataclass(frozen=True)
class OnboardingPlan:
    template: OnboardingTemplate
    name: str
    environment: str
    items: tuple[PlannedItem, ...]
    settings: Mapping[str, str] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()

    @property
    def existing(self) -> bool:
        """Whether this name was onboarded (in part) before: something it would create exists."""
        return any(item.status in ("exists", "differs", "update") for item in self.items)

    def count(self, status: PlanStatus) -> int:
        return sum(1 for item in self.items if item.status == status)

    @property
    def differences(self) -> list[str]:
        """For an existing name: how what exists differs from the template (empty for a new name)."""
        if not self.existing:
            return []
        lines: list[str] = []
        for item in self.items:
            if item.status == "differs":
                lines.extend(f"{item.label}: {difference}" for difference in item.differences)
            elif item.status == "create":
                lines.append(f"{item.label} is missing (will be created)")
            elif item.status == "manual":
                lines.append(f"{item.label}: {item.detail}")
                lines.extend(f"{item.label}: {difference}" for difference in item.differences)
        return lines

    def lines(self) -> list[str]:
        return [item.line() for item in self.items]


@dataclass(frozen=True)
class ArtifactTarget:
    """A clone to make: the source artifact and version, and the new artifact's id."""

    artifact_id: str
    name: str
    solution: str
    source: str
    version: str
    kind: str
    checksum: str

    def as_state(self) -> dict[str, str]:
        return {
            "artifact_id": self.artifact_id,
            "name": self.name,
            "solution": self.solution,
            "source": self.source,
            "version": self.version,
            "kind": self.kind,
            "checksum": self.checksum,
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> ArtifactTarget:
        return cls(**{key: str(state[key]) for key in cls.__dataclass_fields__})


@dataclass(frozen=True)
class CollectionLookup:
    title: str
    storage: IconikStorage
    parent_id: str | None
    external_id: str
    found: IconikCollection | None


@dataclass(frozen=True)
class AlbumLookup:
    folder: CantoTreeNode
    name: str
    path: str
    found: CantoTreeNode | None


@dataclass(frozen=True)
class PageHome:
    """Where the onboarding page goes: which environment's Confluence, which space, which title."""

    environment: str
    space: str
    title: str


def _identifier(value: str, what: str) -> str:
    if not IDENTIFIER.fullmatch(value):
        raise OnboardingBlocked(
            f"the {what} would be {value!r}, which is not a valid name "
            "(lower-case letters, digits, '.', '_' or '-')"
        )
    return value


class OnboardingLookups:
    """The read-only questions an onboarding asks each vendor, for one configuration."""

    def __init__(self, registry: ConnectorRegistry, config: OpsgateConfig) -> None:
        self.registry = registry
        self.config = config

    # --- connectors ---------------------------------------------------------------------------

    def opentext(self, environment: str) -> OpenTextConnector:
        try:
            return self.registry.opentext(environment)
        except ConnectorNotConfigured as exc:
            raise OnboardingBlocked(f"the template needs OpenText: {exc}") from None

    def iconik(self, environment: str) -> IconikConnector:
        try:
            return self.registry.iconik(environment)
        except ConnectorNotConfigured as exc:
            raise OnboardingBlocked(f"the template needs iconik: {exc}") from None

    def canto(self, environment: str) -> CantoConnector:
        try:
            return self.registry.canto(environment)
        except ConnectorNotConfigured as exc:
            raise OnboardingBlocked(f"the template needs Canto: {exc}") from None

    def check_environment(self, template: OnboardingTemplate, environment: str) -> None:
        """The environment is declared, has the vendors the template uses and settings if it has any."""
        if environment not in self.config.environments:
            known = ", ".join(sorted(self.config.environments))
            raise OnboardingBlocked(f"unknown environment {environment!r} (configured: {known})")
        if template.environments and environment not in template.environments:
            has = ", ".join(sorted(template.environments))
            raise OnboardingBlocked(
                f"the template {template.name!r} has no settings for {environment} (it has: {has})"
            )
        if template.artifacts or template.credentials:
            self.opentext(environment)
        if template.iconik is not None:
            self.iconik(environment)
        if template.canto is not None:
            self.canto(environment)

    # --- OpenText artifacts -------------------------------------------------------------------

    async def artifact_target(
        self, spec: ArtifactFromTemplate, *, name: str, environment: str
    ) -> ArtifactTarget:
        """The clone `spec` asks for: the source must exist, and the version if one is named."""
        opentext = self.opentext(environment)
        try:
            source = await opentext.get_artifact(spec.source)
        except NotFound:
            raise OnboardingBlocked(
                f"the reference artifact {spec.source} does not exist in OpenText"
            ) from None
        if spec.version is not None:
            version = source.version(spec.version)
            if version is None:
                known = ", ".join(v.version for v in source.versions) or "none"
                raise OnboardingBlocked(f"{spec.source} has no version {spec.version} (it has: {known})")
        elif source.versions:
            version = source.versions[0]
        else:
            raise OnboardingBlocked(f"the reference artifact {spec.source} has no version to clone")
        new_name = _identifier(render(spec.name, name=name, env=environment), "artifact name")
        solution = spec.solution or source.solution
        return ArtifactTarget(
            artifact_id=f"{solution}.{new_name}",
            name=new_name,
            solution=solution,
            source=source.id,
            version=version.version,
            kind=source.kind.value,
            checksum=version.checksum,
        )

    async def existing_artifact(self, environment: str, artifact_id: str) -> Artifact | None:
        try:
            return await self.opentext(environment).get_artifact(artifact_id)
        except NotFound:
            return None

    # --- credentials --------------------------------------------------------------------------

    async def credential(
        self, spec: CredentialFromTemplate, *, name: str, environment: str
    ) -> tuple[CredentialFacts, tuple[str, ...]]:
        """The credential as the template wants it, whether OpenText and opsgate's config have it,
        and how the config entry differs from the template."""
        credential_name = _identifier(render(spec.name, name=name, env=environment), "credential name")
        credential_id = _identifier(
            render(spec.credential_id, name=name, env=environment), "OpenText credential id"
        )
        try:
            await self.opentext(environment).get_credential(environment, credential_id)
            in_opentext = True
        except NotFound:
            in_opentext = False
        configured = next((c for c in self.config.credentials if c.name == credential_name), None)
        facts = CredentialFacts(
            name=credential_name,
            environment=environment,
            credential_id=credential_id,
            owner=spec.owner,
            schedule=str(spec.schedule),
            grace_period=format_duration(spec.grace_period),
            store=spec.store,
            owner_channel=spec.owner_channel,
            description=render(spec.description, name=name, env=environment),
            in_opentext=in_opentext,
            configured=configured is not None,
        )
        differences: list[str] = []
        if configured is not None:
            wanted: list[tuple[str, object, object]] = [
                ("environment", configured.environment, environment),
                ("credential_id", configured.credential_id, credential_id),
                ("owner", configured.owner, spec.owner),
                ("schedule", str(configured.schedule), str(spec.schedule)),
                ("grace_period", configured.grace_period, spec.grace_period),
                ("store", configured.store, spec.store),
            ]
            differences = [
                f"the config says {key} {_shown(have)}, the template {_shown(want)}"
                for key, have, want in wanted
                if have != want
            ]
        return facts, tuple(differences)

    # --- iconik -------------------------------------------------------------------------------

    async def collection(
        self, template: OnboardingTemplate, *, name: str, environment: str
    ) -> CollectionLookup:
        """The route's storage (it must exist), the parent collection, and the collection if it exists."""
        route = template.iconik
        assert route is not None
        iconik = self.iconik(environment)
        try:
            storage = await resolve_storage(iconik, route.storage)
        except LookupError as exc:
            raise OnboardingBlocked(str(exc)) from None
        collections = [c async for c in iconik.list_collections()]
        parent_id: str | None = None
        if route.parent_collection is not None:
            parent = next((c for c in collections if route.parent_collection in (c.id, c.title)), None)
            if parent is None:
                raise OnboardingBlocked(f"iconik has no collection {route.parent_collection!r} to put it in")
            parent_id = parent.id
        title = render(route.collection, name=name, env=environment)
        external_id = collection_external_id(name, environment)
        # Ours first (marked by the external id, wherever it was moved); else one of the same
        # title in the same place, made by hand, which must not get a twin.
        found = next((c for c in collections if c.external_id == external_id), None) or next(
            (c for c in collections if c.title == title and c.parent_id == parent_id), None
        )
        return CollectionLookup(title, storage, parent_id, external_id, found)

    # --- Canto --------------------------------------------------------------------------------

    async def album(self, template: OnboardingTemplate, *, name: str, environment: str) -> AlbumLookup:
        """The folder (it must exist) and the album if it exists."""
        spec = template.canto
        assert spec is not None
        nodes = [node for root in await self.canto(environment).get_tree() for node in root.walk()]
        wanted_folder = spec.folder.strip("/")
        folder = next((n for n in nodes if not n.is_album and n.name_path.strip("/") == wanted_folder), None)
        if folder is None:
            raise OnboardingBlocked(f"Canto has no folder {spec.folder!r} to hold the album")
        album_name = render(spec.album, name=name, env=environment).strip()
        path = f"{wanted_folder}/{album_name}"
        found = next((n for n in nodes if n.name_path.strip("/") == path), None)
        if found is not None and not found.is_album:
            raise OnboardingBlocked(f"Canto's {path!r} is a folder, not an album")
        return AlbumLookup(folder, album_name, path, found)

    # --- Confluence ---------------------------------------------------------------------------

    def page_home(self, template: OnboardingTemplate, *, name: str, environment: str) -> PageHome | None:
        """The template's space (or its solution's, or the first artifact's solution's); None if none."""
        space = template.confluence_space
        solutions = {s.name: s for s in self.config.solutions}
        candidates = [
            template.solution,
            *(a.solution or a.source.partition(".")[0] for a in template.artifacts),
        ]
        for candidate in candidates:
            if space is None and candidate is not None and candidate in solutions:
                space = solutions[candidate].confluence_space
        if space is None:
            return None
        if self.registry.is_configured("confluence", environment):
            docs = environment
        else:
            configured = self.registry.configured("confluence")
            if not configured:
                return None
            docs = configured[0]
        return PageHome(docs, space, onboarding_page_title(name, environment))


def _shown(value: object) -> str:
    return format_duration(value) if isinstance(value, timedelta) else repr(str(value))


async def plan_onboarding(
    lookups: OnboardingLookups, template: OnboardingTemplate, *, name: str, environment: str
) -> OnboardingPlan:
    """Everything the template describes, each marked create / exists / differs / manual / update.

    Raises OnboardingBlocked when something the onboarding builds on is missing (a reference
    artifact, the iconik storage, the Canto folder) and connector errors when a vendor cannot be asked.
    """
    lookups.check_environment(template, environment)
    items: list[PlannedItem] = []
    warnings: list[str] = []
    for spec in template.artifacts:
        target = await lookups.artifact_target(spec, name=name, environment=environment)
        items.append(await _artifact_item(lookups, target, environment))
    for credential in template.credentials:
        facts, differences = await lookups.credential(credential, name=name, environment=environment)
        items.append(_credential_item(facts, differences))
    if template.iconik is not None:
        lookup = await lookups.collection(template, name=name, environment=environment)
        if lookup.storage.status and lookup.storage.status != "ACTIVE":
            warnings.append(f"iconik storage {lookup.storage.name!r} is {lookup.storage.status}")
        items.append(_collection_item(lookup))
    if template.canto is not None:
        album = await lookups.album(template, name=name, environment=environment)
        status: PlanStatus = "exists" if album.found is not None else "create"
        items.append(PlannedItem("canto_album", album.path, status, "" if album.found else "new album"))
    home = lookups.page_home(template, name=name, environment=environment)
    if home is None:
        warnings.append("no Confluence space for this template: no onboarding page will be written")
    else:
        page = await lookups.registry.confluence(home.environment).find_page(home.space, home.title)
        items.append(
            PlannedItem(
                "confluence_page",
                home.title,
                "update" if page is not None else "create",
                f"in space {home.space}",
            )
        )
    return OnboardingPlan(
        template,
        name,
        environment,
        tuple(items),
        template.settings_for(environment, name=name),
        tuple(warnings),
    )


async def _artifact_item(lookups: OnboardingLookups, target: ArtifactTarget, environment: str) -> PlannedItem:
    detail = f"clone of {target.source} {target.version} ({target.kind})"
    existing = await lookups.existing_artifact(environment, target.artifact_id)
    if existing is None:
        return PlannedItem("artifact", target.artifact_id, "create", detail)
    differences: list[str] = []
    if existing.kind.value != target.kind:
        differences.append(f"it is a {existing.kind.value}, the template clones a {target.kind}")
    first = existing.versions[-1] if existing.versions else None
    if first is not None and first.checksum != target.checksum:
        differences.append(
            f"its first version {first.version} is not a copy of {target.source} {target.version} "
            "(checksums differ)"
        )
    if differences:
        return PlannedItem(
            "artifact", target.artifact_id, "differs", "; ".join(differences), tuple(differences)
        )
    latest = existing.versions[0].version if existing.versions else "no version"
    return PlannedItem("artifact", target.artifact_id, "exists", f"exists at {latest}")


def _credential_item(facts: CredentialFacts, differences: Sequence[str]) -> PlannedItem:
    todo: list[str] = []
    if not facts.in_opentext:
        todo.append("create it in OpenText (its API cannot)")
    if not facts.configured:
        todo.append("add it to credentials:")
    if todo:
        detail = f"{' and '.join(todo)}; owner {facts.owner}, rotated {facts.schedule}"
        return PlannedItem("credential", facts.name, "manual", detail, tuple(differences))
    if differences:
        return PlannedItem("credential", facts.name, "differs", "; ".join(differences), tuple(differences))
    return PlannedItem("credential", facts.name, "exists", f"rotated {facts.schedule}, owner {facts.owner}")


def _collection_item(lookup: CollectionLookup) -> PlannedItem:
    found = lookup.found
    if found is None:
        return PlannedItem(
            "iconik_collection", lookup.title, "create", f"uploads routed to storage {lookup.storage.name}"
        )
    differences: list[str] = []
    if found.title != lookup.title:
        differences.append(f"it is titled {found.title!r}, the template says {lookup.title!r}")
    if found.storage_id != lookup.storage.id:
        differences.append(
            f"it routes to storage {found.storage_id or 'none'}, the template to {lookup.storage.name} "
            f"({lookup.storage.id})"
        )
    if found.parent_id != lookup.parent_id:
        differences.append("it sits in another parent collection than the template says")
    if found.external_id != lookup.external_id:
        differences.append("it was made by hand (no opsgate external id)")
    if differences:
        return PlannedItem(
            "iconik_collection", lookup.title, "differs", "; ".join(differences), tuple(differences)
        )
    return PlannedItem("iconik_collection", lookup.title, "exists", f"routes to {lookup.storage.name}")
