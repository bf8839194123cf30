"""The protect package's errors: one root, a stable ``code`` on each."""

from __future__ import annotations


class ProtectError(Exception):
    """Root of every error the protect package raises; ``code`` is stable for clients."""

    code = "protect_error"

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class KmsError(ProtectError):
    """The key-encryption key cannot be had: a missing or bad master key, a KMS that refuses
    or cannot be reached. The message says which and what to set."""

    code = "kms_error"


class KeyNotFound(ProtectError):
    """No content key with that KID (or none for that asset)."""

    code = "key_not_found"


class InvalidKey(ProtectError):
    """A KID or key that is not 16 bytes, a track type we do not know, a wrapped key that
    does not decrypt under its KEK (tampered with, or another install's)."""

    code = "invalid_key"
