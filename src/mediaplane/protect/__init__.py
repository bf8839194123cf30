"""Content protection: the key store, its KMS, and the audit log of key releases.

Content keys (128-bit, with a 128-bit KID, from the CSPRNG) belong to an asset, one per
track type (``sd``/``hd``/``audio``) or one for the whole asset (``all``,
:func:`track_type_for`). They are stored only encrypted under a key-encryption key, and the
KEK only wrapped by a :class:`Kms` — envelope encryption (:mod:`._kms`, :mod:`._keys`):

    content key ──AES-256-GCM(KEK, aad=KID)──▶ content_keys.wrapped
    KEK ──Kms.wrap (LocalKms: master key file or MEDIAPLANE_MASTER_KEY; AwsKms)──▶
        key_encryption_keys.wrapped

:class:`KeyStore` makes (:meth:`~KeyStore.ensure_keys`), rotates (retired keys are kept),
imports (:meth:`~KeyStore.put`, for CPIX/SPEKE) and looks up keys, and rewraps them all
under a new KEK. :func:`record_release` logs who was given (or refused) which KID and why.

Errors::

    ProtectError          every error here; ``code`` is stable for clients
    ├── KmsError          no usable master key / KMS (the message says what to set)
    ├── KeyNotFound       no key with that KID
    └── InvalidKey        a malformed KID or key, a track type we do not know, a wrapped
                          key that does not decrypt
"""

from __future__ import annotations

from ._audit import record_release, releases
from ._errors import InvalidKey, KeyNotFound, KmsError, ProtectError
from ._keys import (
    HD_MIN_HEIGHT,
    TRACK_TYPES,
    ContentKey,
    KeyStore,
    b64url,
    parse_kid,
    track_type_for,
)
from ._kms import AwsKms, Kms, LocalKms, open_kms
from ._models import ContentKeyRow, KeyEncryptionKey, KeyRelease

__all__ = [
    "HD_MIN_HEIGHT",
    "TRACK_TYPES",
    "AwsKms",
    "ContentKey",
    "ContentKeyRow",
    "InvalidKey",
    "KeyEncryptionKey",
    "KeyNotFound",
    "KeyRelease",
    "KeyStore",
    "Kms",
    "KmsError",
    "LocalKms",
    "ProtectError",
    "b64url",
    "open_kms",
    "parse_kid",
    "record_release",
    "releases",
    "track_type_for",
]
