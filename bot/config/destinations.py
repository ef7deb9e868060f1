"""`destinations:`: where released assets go and what a release must carry."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["DestinationConfig", "ReleaseLogPage"]


class ReleaseLogPage(BaseModel):
    """The Confluence page that lists every release to a destination."""

    model_config = ConfigDict(extra="forbid")

    space: str = Field(min_length=1)
    title: str = Field(min_length=1)


class DestinationConfig(BaseModel):
    """A partner destination: where released files go in iconik and what a release must carry.

    `field_mapping` maps a Canto field (a custom field name, a metadata name, or one of id, name,
    scheme, approvalStatus, expirationDate, owner) to a field of the iconik `metadata_view`;
    `release_values` are fixed iconik values written with every release (e.g. release_status).
    """

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, pattern=r"^[a-z0-9][a-z0-9_-]*$")
    environment: str = Field(min_length=1)
    iconik_storage: str = Field(min_length=1, description="storage name or id")
    partner: str = ""
    required_metadata: list[str] = Field(
        default_factory=list, description="Canto fields that must be set, e.g. Campaign, Region, Rights"
    )
    require_expiry: bool = Field(False, description="the asset must carry an expiration date")
    metadata_view: str | None = Field(None, description="iconik metadata view name or id")
    field_mapping: dict[str, str] = Field(default_factory=dict)
    release_values: dict[str, list[str]] = Field(default_factory=dict)
    canto_release_field: str | None = Field(None, description="Canto custom field the release is written to")
    release_log_page: ReleaseLogPage | None = None
    format_name: str = "ORIGINAL"
