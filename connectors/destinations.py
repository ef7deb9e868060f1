"""Partner destinations chosen per destination in configuration: S3 bucket, SFTP drop or portal.

`PartnerDestinationSettings` is a union discriminated on `kind`, so a YAML entry

    kind: sftp
    name: Social Agency
    host: sftp.agency.example
    username: acme
    password: ${AGENCY_SFTP_PASSWORD}
    host_key: ssh-ed25519 AAAA...

validates as `SftpDropSettings`, and an unknown kind is refused naming the allowed ones.
`open_destination(settings)` builds the matching PartnerDrop.
"""

from __future__ import annotations

from typing import Annotated, TypeAlias

from pydantic import Field, TypeAdapter

from connectors.base import PartnerDrop
from connectors.portal import PortalWebhook, PortalWebhookSettings
from connectors.s3 import S3Drop, S3DropSettings
from connectors.sftp import SftpDrop, SftpDropSettings

__all__ = ["PartnerDestinationSettings", "open_destination", "parse_destination"]

PartnerDestinationSettings: TypeAlias = Annotated[
    S3DropSettings | SftpDropSettings | PortalWebhookSettings, Field(discriminator="kind")
]

_ADAPTER: TypeAdapter[PartnerDestinationSettings] = TypeAdapter(PartnerDestinationSettings)


def parse_destination(data: object) -> S3DropSettings | SftpDropSettings | PortalWebhookSettings:
    """Validate one destination entry (a mapping with `kind`); ValidationError names what is wrong."""
    return _ADAPTER.validate_python(data)


def open_destination(settings: S3DropSettings | SftpDropSettings | PortalWebhookSettings) -> PartnerDrop:
    """The connector for a destination's settings (close it with `aclose`)."""
    if isinstance(settings, S3DropSettings):
        return S3Drop(settings)
    if isinstance(settings, SftpDropSettings):
        return SftpDrop(settings)
    return PortalWebhook(settings)
