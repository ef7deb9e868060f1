"""Capabilities the use cases depend on, as Protocols; vendor connectors implement them.

`commands/` codes against these, so a fake (or another vendor) can stand in for a connector.
The payload models are the OpenText ones: today it is the only integration platform we run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from pydantic import SecretStr

    from connectors.opentext import (
        Artifact,
        ArtifactKind,
        ArtifactSummary,
        Credential,
        CredentialStatus,
        Deployment,
        Environment,
        Health,
        Job,
        PendingRotation,
        Rotation,
        RotationTest,
    )

__all__ = ["ArtifactRepository", "CredentialAuthority", "HealthCheck"]


class HealthCheck(Protocol):
    """Something whose vendor side can report health."""

    async def health(self) -> Health:
        """The vendor's health status; raises Unavailable when it cannot be reached."""
        ...


class ArtifactRepository(Protocol):
    """Integration artifacts, their versions, where they are deployed, and moving them."""

    async def list_environments(self) -> list[Environment]:
        """Every environment (dev, test, prod ...)."""
        ...

    async def list_artifacts(
        self, *, solution: str | None = None, kind: ArtifactKind | str | None = None, name: str | None = None
    ) -> list[ArtifactSummary]:
        """Artifacts matching the filters."""
        ...

    async def get_artifact(self, artifact_id: str) -> Artifact:
        """One artifact with its version history; NotFound if unknown."""
        ...

    async def get_deployment(self, environment: str, artifact_id: str) -> Deployment | None:
        """The deployed version in an environment, or None if not deployed there."""
        ...

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
        """Start deploying `version` from source to target; returns the queued job."""
        ...

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
        """Start copying an artifact version into a new artifact; returns the queued job."""
        ...

    async def get_job(self, job_id: str) -> Job:
        """A job's current state."""
        ...

    async def wait_for_job(
        self, job_id: str, *, poll_interval: float | None = None, max_wait: float | None = None
    ) -> Job:
        """Poll until the job is finished (succeeded or failed)."""
        ...


class CredentialAuthority(Protocol):
    """Credentials per environment and their stepwise secret rotation."""

    async def list_credentials(
        self, environment: str, *, status: CredentialStatus | str | None = None
    ) -> list[Credential]:
        """Credentials with owner, expiry and status."""
        ...

    async def get_credential(self, environment: str, credential_id: str) -> Credential:
        """One credential; NotFound if unknown."""
        ...

    async def start_rotation(
        self, environment: str, credential_id: str, *, requested_by: str, validity_days: int | None = None
    ) -> PendingRotation:
        """Create a pending secret (returned once)."""
        ...

    async def get_rotation(self, environment: str, credential_id: str, rotation_id: str) -> Rotation:
        """A rotation's state."""
        ...

    async def test_rotation(self, environment: str, credential_id: str, rotation_id: str) -> RotationTest:
        """Authenticate with the pending secret."""
        ...

    async def activate_rotation(
        self, environment: str, credential_id: str, rotation_id: str, *, grace_seconds: int = 3600
    ) -> Rotation:
        """Pending becomes current; previous stays valid for the grace period."""
        ...

    async def revoke_previous_secret(
        self, environment: str, credential_id: str, rotation_id: str
    ) -> Rotation:
        """The previous secret stops working."""
        ...

    async def cancel_rotation(self, environment: str, credential_id: str, rotation_id: str) -> Rotation:
        """Abandon a rotation before activation."""
        ...

    async def authenticate_client(self, client_id: str, secret: SecretStr) -> bool:
        """Whether the client can obtain a token with this secret."""
        ...


# -- asset release: Canto (source of approved originals) and iconik (distribution) ------------------

if TYPE_CHECKING:
    from collections.abc import AsyncIterable, AsyncIterator, Mapping, Sequence
    from contextlib import AbstractAsyncContextManager

    from connectors.canto import CantoApproval, CantoAsset, CantoAssetRef
    from connectors.iconik import (
        IconikApproval,
        IconikApprovalStatus,
        IconikAppToken,
        IconikAsset,
        IconikAssetUpdate,
        IconikJob,
        IconikMetadataValues,
        IconikStorage,
        IconikTokenInfo,
        IconikUpload,
        IconikWebhook,
        MetadataMode,
    )
    from connectors.transfer import Download

__all__ += ["AppTokenIssuer", "AssetSource", "MediaLibrary"]


class AssetSource(Protocol):
    """The DAM holding approved originals (Canto): find assets, judge approval and expiry."""

    def search(
        self, keyword: str = "", *, scheme: str | Sequence[str] | None = None, approval: str | None = None
    ) -> AsyncIterator[CantoAsset]:
        """Every matching asset, page by page."""
        ...

    async def get_asset(self, scheme: str, asset_id: str) -> CantoAsset:
        """One asset's details; NotFound if unknown."""
        ...

    async def get_approval(self, scheme: str, asset_id: str) -> CantoApproval:
        """Approval status and expiry; an Approved asset past its expiry counts as Expired."""
        ...

    async def download_url(self, scheme: str, asset_id: str) -> str:
        """Where the original can be fetched."""
        ...

    def open_original(
        self, scheme: str, asset_id: str, *, chunk_size: int = ...
    ) -> AbstractAsyncContextManager[Download]:
        """Stream the original: `async with` it, then iterate `download.chunks` once."""
        ...

    async def update_custom_fields(self, refs: Sequence[CantoAssetRef], fields: Mapping[str, str]) -> None:
        """Record release facts on the assets (custom fields)."""
        ...

    async def assign_to_album(self, album_path: str, refs: Sequence[CantoAssetRef]) -> None:
        """File the assets into an album, creating it if needed."""
        ...


class MediaLibrary(Protocol):
    """The MAM that distributes assets to partners (iconik): metadata, transfers, approvals."""

    async def get_asset(self, asset_id: str) -> IconikAsset:
        """One asset; NotFound if unknown."""
        ...

    async def update_asset(self, asset_id: str, changes: IconikAssetUpdate) -> IconikAsset:
        """Change some fields of an asset."""
        ...

    async def put_asset_metadata(
        self, asset_id: str, view_id: str, values: Mapping[str, Sequence[object]], *, mode: MetadataMode = ...
    ) -> IconikMetadataValues:
        """Write field values in one metadata view."""
        ...

    def list_storages(
        self, *, purpose: str | None = None, status: str | None = None
    ) -> AsyncIterator[IconikStorage]:
        """Storages, e.g. the EXPORTS storage of each partner destination."""
        ...

    async def copy_to_storage(self, storage_id: str, object_ids: Sequence[str]) -> str:
        """Start a NEW copy job of the assets' originals to a storage; returns its id.

        A retry calls this again (a failed job never comes back to life by polling it).
        """
        ...

    async def get_job(self, job_id: str) -> IconikJob:
        """A job's current state."""
        ...

    async def upload_original(
        self,
        chunks: AsyncIterable[bytes],
        *,
        size: int,
        original_name: str,
        title: str,
        content_type: str = ...,
        asset_id: str | None = None,
        external_id: str | None = None,
        storage_id: str | None = None,
        format_name: str = ...,
        poll_interval: float = ...,
        timeout: float = ...,
    ) -> IconikUpload:
        """Put a file into the library (asset, format, file set, file, streamed upload, close, ready).

        Raises IconikUploadFailed naming the failed step and what the earlier steps created.
        """
        ...

    async def delete_file_set(self, asset_id: str, file_set_id: str, *, immediately: bool = False) -> None:
        """Undo an upload: the file set, its files and stored bytes go."""
        ...

    async def delete_format(self, asset_id: str, format_id: str, *, immediately: bool = False) -> None:
        """Undo a format an upload created."""
        ...

    async def delete_asset(self, asset_id: str) -> None:
        """Undo an asset an upload created."""
        ...

    async def wait_for_job(
        self,
        job_id: str,
        *,
        poll_interval: float = ...,
        timeout: float = ...,
    ) -> IconikJob:
        """Poll the job to a terminal state (FINISHED..., SKIPPED, FAILED, ABORTED)."""
        ...

    async def get_approvals(self, object_id: str) -> list[IconikApproval]:
        """Every user's approval of the asset."""
        ...

    async def set_approval(self, object_id: str, status: IconikApprovalStatus) -> IconikApproval:
        """Record our approval status for the asset."""
        ...

    async def add_to_collection(self, collection_id: str, object_id: str) -> None:
        """Add the asset to a collection."""
        ...

    async def register_webhook(
        self, url: str, *, event_type: str, headers: Mapping[str, str], realm: str | None = None
    ) -> IconikWebhook:
        """Ask to be notified; `headers` carry our secret back on every delivery."""
        ...


class AppTokenIssuer(Protocol):
    """A vendor whose API tokens rotate through its own token API (iconik): create, test, revoke."""

    async def create_app_token(self, app_id: str | None = None) -> IconikAppToken:
        """A new token (its value shown once); the current one keeps working until revoked."""
        ...

    async def list_app_tokens(self) -> list[IconikTokenInfo]:
        """The tokens the vendor holds for us, by id (never their values)."""
        ...

    async def token_is_valid(self, token: SecretStr | None = None) -> bool:
        """Whether a call authenticated with `token` (default: the one in use) succeeds."""
        ...

    def use_token(self, token: SecretStr) -> None:
        """Switch: authenticate every later call with `token`."""
        ...

    async def revoke_token(self, token: SecretStr) -> None:
        """Revoke a token we hold the value of; it then gets 401."""
        ...

    async def revoke_app_token(self, token_id: str) -> None:
        """Revoke a token by id."""
        ...


# -- partner destinations: S3 buckets, SFTP drops, portals ---------------------------------------

if TYPE_CHECKING:
    from connectors.transfer import DeliveryItem, DeliveryReceipt, DestinationKind

__all__ += ["PartnerDrop"]


class PartnerDrop(Protocol):
    """Where a release is delivered to a partner; each delivery can be checked and undone.

    File drops (`accepts_bytes`) store the streamed bytes; a portal takes the item's
    `download_url` instead and ignores `chunks`.
    """

    @property
    def kind(self) -> DestinationKind:
        """s3, sftp or portal_webhook."""
        ...

    @property
    def name(self) -> str:
        """The destination's configured name."""
        ...

    @property
    def accepts_bytes(self) -> bool:
        """Whether `deliver` reads `chunks` (file drops) or only the item's link (portals)."""
        ...

    async def deliver(
        self, item: DeliveryItem, chunks: AsyncIterable[bytes] | None = None
    ) -> DeliveryReceipt:
        """Publish the item; a stream whose length differs from `item.size` publishes nothing."""
        ...

    async def revoke(self, receipt: DeliveryReceipt) -> None:
        """Undo a delivery (delete, remove, unpublish); revoking twice is harmless."""
        ...

    async def exists(self, receipt: DeliveryReceipt) -> bool:
        """Whether the delivery is still there for the partner."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...


# -- documentation: Confluence ---------------------------------------------------------------------

if TYPE_CHECKING:
    from collections.abc import Iterable

    from connectors.confluence import Attachment, Label, Page, PageSummary, PageWrite, SearchHit

__all__ += ["DocumentStore"]


class DocumentStore(Protocol):
    """Where changes are documented (Confluence): pages kept in sync, labelled, files attached."""

    async def find_page(self, space_key: str, title: str) -> Page | None:
        """The page with exactly this title in the space (body + version), or None."""
        ...

    async def get_page(self, page_id: str) -> Page:
        """One page with its storage body and version; NotFound if absent or not visible."""
        ...

    async def upsert_page(
        self,
        space_key: str,
        title: str,
        body: str,
        *,
        parent_id: str | None = None,
        message: str | None = None,
    ) -> PageWrite:
        """Create the page (under parent_id, default the home page), update it, or leave it if identical."""
        ...

    async def add_labels(self, page_id: str, labels: Iterable[str]) -> list[Label]:
        """Add labels; returns all labels the page now has."""
        ...

    async def attach_file(
        self,
        page_id: str,
        filename: str,
        content: bytes,
        *,
        media_type: str = ...,
        comment: str | None = None,
        minor_edit: bool = True,
    ) -> Attachment:
        """Upload a file to the page; the same name again becomes a new version."""
        ...

    def search(
        self, cql: str, *, page_size: int = ..., max_results: int | None = None
    ) -> AsyncIterator[SearchHit]:
        """CQL search results, page by page."""
        ...

    def iter_child_pages(self, page_id: str, *, page_size: int = ...) -> AsyncIterator[PageSummary]:
        """The direct children of a page."""
        ...
