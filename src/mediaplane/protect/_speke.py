"""SPEKE v2: asking a commercial multi-DRM key provider for content keys.

The AWS Secure Packager and Encoder Key Exchange API, version 2.0: the encryptor (we) POSTs
a CPIX 2.3 document naming the KIDs it wants, their scheme and track types (the encryption
contract) and the DRM systems it needs signalling for; the key provider answers the same
document with the keys filled in (encrypted for our certificate when the request carried
one in ``DeliveryDataList``) and each system's PSSH / ``ContentProtection`` data / HLS
tags. Headers: ``X-Speke-Version: 2.0`` both ways, ``Content-Type: application/xml``.

:func:`provide_keys` is what packaging calls: the key provider's keys when
``MEDIAPLANE_SPEKE_URL`` is set, else our own key store's.
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from ._cpix import (
    PLAYREADY_SYSTEM_ID,
    WIDEVINE_SYSTEM_ID,
    CpixDocument,
    CpixError,
    CpixKey,
    DrmSignal,
)
from ._errors import ProtectError
from ._keys import ContentKey, store_signals

if TYPE_CHECKING:
    from collections.abc import Iterable

    from mediaplane.config import Settings

    from ._keys import KeyStore

__all__ = ["SYSTEM_NAMES", "SpekeClient", "SpekeError", "provide_keys"]

SPEKE_VERSION = "2.0"
MAX_RESPONSE_BYTES = 1024 * 1024
#: The DRM systems a setting may name, by their short names.
SYSTEM_NAMES = {"widevine": WIDEVINE_SYSTEM_ID, "playready": PLAYREADY_SYSTEM_ID}


class SpekeError(ProtectError):
    """The key provider refused, could not be reached, or answered what we cannot use."""

    code = "speke_error"


class SpekeClient:
    """One key provider's SPEKE v2 endpoint.

    :param certificate: ours, sent so the provider encrypts the keys for us (with
        ``private_key``, which decrypts them); none: keys come back in the clear (over TLS).
    """

    def __init__(
        self,
        url: str,
        *,
        api_key: str | None = None,
        certificate: x509.Certificate | None = None,
        private_key: rsa.RSAPrivateKey | None = None,
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if (certificate is None) != (private_key is None):
            raise SpekeError("content key encryption needs both the certificate and its key")
        self.url = url
        self.certificate = certificate
        self.private_key = private_key
        headers = {"Content-Type": "application/xml", "X-Speke-Version": SPEKE_VERSION}
        if api_key:
            headers["x-api-key"] = api_key
        self._http = httpx.Client(
            headers=headers, timeout=timeout, transport=transport, follow_redirects=False
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> SpekeClient:
        cert = key = None
        if settings.speke_cert_file is not None:
            cert = x509.load_pem_x509_certificate(settings.speke_cert_file.read_bytes())
            key_path = settings.speke_key_file or settings.speke_cert_file
            loaded = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
            if not isinstance(loaded, rsa.RSAPrivateKey):
                raise SpekeError("MEDIAPLANE_SPEKE_KEY_FILE must hold an RSA private key")
            key = loaded
        api_key = settings.speke_api_key.get_secret_value() if settings.speke_api_key else None
        return cls(settings.speke_url or "", api_key=api_key, certificate=cert, private_key=key)

    def request(
        self, content_id: str, wanted: list[CpixKey], systems: Iterable[str]
    ) -> CpixDocument:
        """Keys for ``wanted`` (KIDs, track types, scheme) and signalling for ``systems``."""
        systems = list(systems)
        doc = CpixDocument(
            content_id=content_id,
            keys=wanted,
            systems=[DrmSignal(system_id=s, kid=k.kid) for s in systems for k in wanted],
        )
        body = doc.render(self.certificate, request=True)
        try:
            with self._http.stream("POST", self.url, content=body) as resp:
                data = b""
                for chunk in resp.iter_bytes():
                    data += chunk
                    if len(data) > MAX_RESPONSE_BYTES:
                        raise SpekeError("the key provider's answer is over 1 MiB")
        except httpx.HTTPError as exc:
            raise SpekeError(f"the key provider cannot be reached: {type(exc).__name__}") from None
        if resp.status_code != 200:
            text = data[:300].decode("utf-8", "replace").strip()
            raise SpekeError(f"the key provider answered {resp.status_code}: {text}")
        if resp.headers.get("x-speke-version") != SPEKE_VERSION:
            raise SpekeError("the key provider's answer is not SPEKE 2.0 (X-Speke-Version)")
        try:
            got = CpixDocument.parse(data, self.private_key)
        except CpixError as exc:
            raise SpekeError(f"the key provider's CPIX cannot be used: {exc.message}") from None
        by_kid = {k.kid: k for k in got.keys}
        for k in wanted:
            answer = by_kid.get(k.kid)
            if answer is None or answer.key is None:
                raise SpekeError(f"the key provider gave no key for KID {k.kid.hex()}")
        return got


def provide_keys(
    store: KeyStore,
    settings: Settings,
    asset_id: str,
    track_types: Iterable[str],
    scheme: str,
    *,
    rotate: bool = False,
) -> dict[str, ContentKey]:
    """The asset's keys in force for ``track_types`` (all new ones with ``rotate``; the
    retired stay): from the SPEKE key provider when one is configured and the scheme is a
    Common Encryption one (asked once; its keys and DRM signalling are kept), else ours."""
    types = sorted(set(track_types))
    if not settings.speke_url or scheme not in ("cenc", "cbcs"):
        return store.rotate(asset_id, types) if rotate else store.ensure_keys(asset_id, types)
    have = store.current_keys(asset_id)
    if not rotate and all(t in have and have[t].origin == "speke" for t in types):
        return {t: have[t] for t in types}
    wanted = [CpixKey(kid=secrets.token_bytes(16), track_type=t, scheme=scheme) for t in types]
    systems = [SYSTEM_NAMES[name] for name in settings.speke_systems]
    got = SpekeClient.from_settings(settings).request(asset_id, wanted, systems)
    by_kid = {k.kid: k for k in got.keys}
    out = {}
    for w in wanted:
        key = by_kid[w.kid].value  # request() checked that each has one
        out[w.track_type] = store.put(asset_id, w.track_type, w.kid, key, "speke")
    store_signals(store.db, [s for s in got.systems if s.kid in by_kid])
    return out
