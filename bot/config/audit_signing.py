"""The audit signing key: read from OPSGATE_AUDIT_SIGNING_KEY or the file it names, never the database."""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bot.config.env import Settings
from bot.domain.audit_digest import DigestKeyError, load_private_key

__all__ = ["resolve_audit_signing_key"]


def resolve_audit_signing_key(settings: Settings) -> Ed25519PrivateKey:
    """The key from the environment variable, else from the key file; DigestKeyError names
    the variable or file at fault (and never shows the key)."""
    if settings.opsgate_audit_signing_key is not None:
        try:
            return load_private_key(settings.opsgate_audit_signing_key.get_secret_value())
        except DigestKeyError as exc:
            raise DigestKeyError(f"OPSGATE_AUDIT_SIGNING_KEY: {exc}") from None
    path = settings.opsgate_audit_signing_key_file
    if path is None:
        raise DigestKeyError(
            "no audit signing key: set OPSGATE_AUDIT_SIGNING_KEY or OPSGATE_AUDIT_SIGNING_KEY_FILE "
            "(opsgate keygen --audit-signing)"
        )
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DigestKeyError(f"OPSGATE_AUDIT_SIGNING_KEY_FILE {path}: {exc.strerror or exc}") from None
    try:
        return load_private_key(raw)
    except DigestKeyError as exc:
        raise DigestKeyError(f"OPSGATE_AUDIT_SIGNING_KEY_FILE {path}: {exc}") from None
