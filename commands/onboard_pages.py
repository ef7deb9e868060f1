"""The onboarding page (Confluence storage XHTML) of a partner or media workflow; pure functions.

The page tells the partner and the people who support them what was set up and how to use it:
what opsgate created, the interface guide with the environment's settings, message standards,
testing instructions, support contacts and the credential owners. It never holds a secret:
credentials appear by name, OpenText id, owner and rotation schedule only. Every text from the
template, OpenText or people goes through `connectors.confluence_storage`, so it is escaped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

import yaml

from bot.config.onboarding import OnboardingTemplate, render
from connectors import confluence_storage as storage

__all__ = [
    "AlbumFacts",
    "ArtifactFacts",
    "CollectionFacts",
    "CredentialFacts",
    "OnboardingFacts",
    "Outcome",
    "build_onboarding_page",
    "credential_config_yaml",
    "onboarding_page_title",
]

Outcome = Literal["created", "existed"]


def onboarding_page_title(name: str, environment: str) -> str:
    """The onboarding page's title (one page per name and environment)."""
    return f"Onboarding: {name} ({environment})"


@dataclass(frozen=True)
class ArtifactFacts:
    artifact_id: str
    kind: str
    source: str
    source_version: str
    outcome: Outcome


@dataclass(frozen=True)
class CredentialFacts:
    """A credential the partner needs; never its secret."""

    name: str
    environment: str
    credential_id: str
    owner: str
    schedule: str
    grace_period: str
    store: str
    owner_channel: str | None = None
    description: str = ""
    in_opentext: bool = False  # OpenText already has the credential
    configured: bool = False  # opsgate's credentials: section already has the entry


@dataclass(frozen=True)
class CollectionFacts:
    collection_id: str
    title: str
    storage: str
    outcome: Outcome


@dataclass(frozen=True)
class AlbumFacts:
    album_id: str
    path: str
    outcome: Outcome


@dataclass(frozen=True)
class OnboardingFacts:
    """What the onboarding did, as the page shows it."""

    template: OnboardingTemplate
    name: str
    environment: str
    request_ref: str
    requester: str
    approvers: tuple[str, ...]
    onboarded_at: datetime
    settings: Mapping[str, str] = field(default_factory=dict)
    artifacts: tuple[ArtifactFacts, ...] = ()
    credentials: tuple[CredentialFacts, ...] = ()
    collection: CollectionFacts | None = None
    album: AlbumFacts | None = None


def credential_config_yaml(credentials: Sequence[CredentialFacts]) -> str:
    """The `credentials:` entries to add to opsgate's config for these credentials (no secrets)."""
    entries = []
    for credential in credentials:
        entry: dict[str, str] = {
            "name": credential.name,
            "environment": credential.environment,
            "credential_id": credential.credential_id,
            "owner": credential.owner,
        }
        if credential.owner_channel:
            entry["owner_channel"] = credential.owner_channel
        if credential.description:
            entry["description"] = credential.description
        entry.update(
            schedule=credential.schedule, grace_period=credential.grace_period, store=credential.store
        )
        entries.append(entry)
    return yaml.safe_dump({"credentials": entries}, sort_keys=False, allow_unicode=True)


def _when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _outcome(outcome: Outcome) -> storage.Fragment:
    return storage.status("Created", "Green") if outcome == "created" else storage.status("Existed", "Grey")


def _credential_state(credential: CredentialFacts) -> storage.Fragment:
    if credential.in_opentext and credential.configured:
        return storage.status("Rotated by opsgate", "Green")
    if credential.in_opentext:
        return storage.status("Add to opsgate config", "Yellow")
    return storage.status("Create in OpenText", "Red")


def _provisioned_rows(facts: OnboardingFacts) -> list[list[storage.Content]]:
    rows: list[list[storage.Content]] = [
        [
            f"OpenText {artifact.kind}",
            storage.inline_code(artifact.artifact_id),
            f"cloned from {artifact.source} {artifact.source_version}",
            _outcome(artifact.outcome),
        ]
        for artifact in facts.artifacts
    ]
    if facts.collection is not None:
        rows.append(
            [
                "iconik collection",
                facts.collection.title,
                f"uploads go to storage {facts.collection.storage}",
                _outcome(facts.collection.outcome),
            ]
        )
    if facts.album is not None:
        rows.append(["Canto album", facts.album.path, "", _outcome(facts.album.outcome)])
    return rows


def build_onboarding_page(facts: OnboardingFacts) -> str:
    """The onboarding page: what was set up, interface guide, standards, testing, contacts, owners."""
    template, name, env = facts.template, facts.name, facts.environment

    def fill(text: str) -> str:
        return render(text, name=name, env=env)

    approved = ", ".join(facts.approvers) or "no approver (break-glass)"
    doc = storage.Document()
    doc.paragraph(
        storage.status("Onboarded", "Green"),
        " ",
        f"{name} was onboarded in {env} from the template {template.name} at {_when(facts.onboarded_at)} "
        f"({facts.request_ref}, requested by {facts.requester}, approved by {approved}).",
    )
    if template.description:
        doc.paragraph(fill(template.description))

    doc.heading(2, "What opsgate set up")
    rows = _provisioned_rows(facts)
    if rows:
        doc.table(["What", "Name", "Details", "Outcome"], rows)
    else:
        doc.paragraph("Nothing: this template only documents credentials.")

    doc.heading(2, "Interface guide")
    if template.interface_guide:
        for paragraph in template.interface_guide.split("\n\n"):
            if paragraph.strip():
                doc.paragraph(fill(" ".join(paragraph.split())))
    else:
        doc.paragraph("The template gives no interface guide; ask the support contacts below.")
    if facts.settings:
        doc.heading(3, f"Settings in {env}")
        doc.table(
            ["Setting", "Value"],
            [[key, storage.inline_code(value)] for key, value in sorted(facts.settings.items())],
        )
    if facts.artifacts:
        doc.heading(3, "OpenText artifacts")
        doc.bullet_list([[storage.inline_code(a.artifact_id), f" ({a.kind})"] for a in facts.artifacts])

    doc.heading(2, "Message standards")
    if template.message_standards:
        doc.bullet_list([fill(standard) for standard in template.message_standards])
    else:
        doc.paragraph("None listed in the template.")

    doc.heading(2, "Testing instructions")
    if template.testing:
        doc.numbered_list([fill(step) for step in template.testing])
    else:
        doc.paragraph("None listed in the template.")

    doc.heading(2, "Support contacts")
    if template.support_contacts:
        doc.table(
            ["Role", "Contact"],
            [[fill(contact.role), fill(contact.contact)] for contact in template.support_contacts],
        )
    else:
        doc.paragraph("None listed in the template.")

    doc.heading(2, "Credential owners")
    if facts.credentials:
        doc.table(
            ["Credential", "OpenText id", "Owner", "Rotation", "Grace period", "Store", "State"],
            [
                [
                    c.name,
                    storage.inline_code(c.credential_id),
                    c.owner + (f" ({c.owner_channel})" if c.owner_channel else ""),
                    c.schedule,
                    c.grace_period,
                    c.store,
                    _credential_state(c),
                ]
                for c in facts.credentials
            ],
        )
        missing = [c for c in facts.credentials if not c.in_opentext]
        if missing:
            doc.panel(
                "warning",
                "OpenText's admin API cannot create credentials, so opsgate did not. Create these in "
                "OpenText for the owners shown: " + ", ".join(c.credential_id for c in missing) + ".",
                title="Credentials to create",
            )
        unconfigured = [c for c in facts.credentials if not c.configured]
        if unconfigured:
            doc.paragraph(
                "Add these entries to opsgate's credentials: section so they are rotated on schedule:"
            )
            doc.code(credential_config_yaml(unconfigured), language="yaml", title="Add to opsgate's config")
        doc.paragraph("Secrets are never written here; owners receive them through the rotation.")
    else:
        doc.paragraph("This template needs no credentials.")

    doc.paragraph(f"Written by opsgate ({facts.request_ref}); onboarding {name} again rewrites this page.")
    return doc.render()
