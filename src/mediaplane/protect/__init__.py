"""Content protection: the key store, its KMS, and the audit log of key releases.

Content keys (128-bit, with a 128-bit KID, from the CSPRNG) belong to an asset, one per
track type (``sd``/``hd``/``audio``) or one for the whole asset (``all``,
:func:`track_type_for`), or to a protected live stream (its id where an asset's goes: one
``all`` key per key epoch, :meth:`KeyStore.rotate` every N segments, the retired ones kept
for the segments still in players' hands). They are stored only encrypted under a
key-encryption key, and the KEK only wrapped by a :class:`Kms` — envelope encryption
(:mod:`._kms`, :mod:`._keys`):

    content key ──AES-256-GCM(KEK, aad=KID)──▶ content_keys.wrapped
    KEK ──Kms.wrap (LocalKms: master key file or MEDIAPLANE_MASTER_KEY; AwsKms)──▶
        key_encryption_keys.wrapped

:class:`KeyStore` makes (:meth:`~KeyStore.ensure_keys`), rotates (retired keys are kept),
imports (:meth:`~KeyStore.put`, for CPIX/SPEKE) and looks up keys, and rewraps them all
under a new KEK. :func:`record_release` logs who was given (or refused) which KID and why.

Commercial DRM: :class:`CpixDocument` renders and parses CPIX 2.3 (keys in the clear or
encrypted for a recipient's certificate; DRM systems' PSSH and signalling, kept per KID by
:func:`store_signals`); :class:`SpekeClient` asks a SPEKE v2 key provider for keys, and
:func:`provide_keys` — what packaging calls — uses it when ``MEDIAPLANE_SPEKE_URL`` is set.

Errors::

    ProtectError          every error here; ``code`` is stable for clients
    ├── KmsError          no usable master key / KMS (the message says what to set)
    ├── KeyNotFound       no key with that KID
    ├── InvalidKey        a malformed KID or key, a track type we do not know, a wrapped
    │                     key that does not decrypt
    ├── CpixError         a CPIX document we cannot read or trust (``invalid_cpix``)
    └── SpekeError        the key provider refused, is unreachable, or answered nonsense
"""

from __future__ import annotations

from ._audit import record_release, releases
from ._cpix import (
    COMMON_SYSTEM_ID,
    MAX_CPIX_BYTES,
    PLAYREADY_SYSTEM_ID,
    WIDEVINE_SYSTEM_ID,
    CpixDocument,
    CpixError,
    CpixKey,
    DrmSignal,
)
from ._errors import InvalidKey, KeyNotFound, KmsError, ProtectError
from ._keys import (
    HD_MIN_HEIGHT,
    TRACK_TYPES,
    ContentKey,
    KeyStore,
    b64url,
    parse_kid,
    signals_for,
    store_signals,
    track_type_for,
)
from ._kms import AwsKms, Kms, LocalKms, open_kms
from ._models import ContentKeyRow, DrmSignalRow, KeyEncryptionKey, KeyRelease
from ._speke import SYSTEM_NAMES, SpekeClient, SpekeError, provide_keys

__all__ = [
    "COMMON_SYSTEM_ID",
    "HD_MIN_HEIGHT",
    "MAX_CPIX_BYTES",
    "PLAYREADY_SYSTEM_ID",
    "SYSTEM_NAMES",
    "TRACK_TYPES",
    "WIDEVINE_SYSTEM_ID",
    "AwsKms",
    "ContentKey",
    "ContentKeyRow",
    "CpixDocument",
    "CpixError",
    "CpixKey",
    "DrmSignal",
    "DrmSignalRow",
    "InvalidKey",
    "KeyEncryptionKey",
    "KeyNotFound",
    "KeyRelease",
    "KeyStore",
    "Kms",
    "KmsError",
    "LocalKms",
    "ProtectError",
    "SpekeClient",
    "SpekeError",
    "b64url",
    "open_kms",
    "parse_kid",
    "provide_keys",
    "record_release",
    "releases",
    "signals_for",
    "store_signals",
    "track_type_for",
]
