"""`archive:`: how expired assets are taken out of circulation."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["ArchiveSettings"]


class ArchiveSettings(BaseModel):
    """How expired assets are taken out of circulation in one environment."""

    model_config = ConfigDict(extra="forbid")

    environment: str = Field(min_length=1)
    method: Literal["archive_storage", "archive_status"] = Field(
        "archive_storage",
        description="move the original to an ARCHIVE storage, or only mark the asset archived",
    )
    iconik_archive_storage: str | None = Field(
        None, description="storage name or id; default: the first storage whose purpose is ARCHIVE"
    )
    metadata_view: str | None = Field(None, description="iconik metadata view name or id")
    archive_values: dict[str, list[str]] = Field(default_factory=dict)
    canto_archive_field: str | None = Field(None, description="Canto custom field the archive is written to")
    format_name: str = "ORIGINAL"
