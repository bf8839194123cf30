"""Key-encryption keys: who wraps the key store's KEK.

Content keys are never stored in the clear. Each is encrypted (AES-256-GCM) under a
key-encryption key (KEK); the KEK itself is stored only wrapped by a :class:`Kms`, and
unwrapped once per process. That is envelope encryption: the KMS sees one small request per
process and KEK, never a content key, and moving to another KMS rewraps one row.

* :class:`LocalKms` — a 256-bit master key from ``MEDIAPLANE_MASTER_KEY`` (base64) or the file
  ``<data-dir>/master-key`` (created mode 0600 on first start, like the admin token).
* :class:`AwsKms` — AWS KMS ``Encrypt``/``Decrypt`` (``aws-kms://<key-id>?region=…``; an
  ``endpoint=`` for a KMS-compatible server), through boto3.

:func:`open_kms` chooses by ``MEDIAPLANE_KMS_URL`` (none: local).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import secrets
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import parse_qs, unquote, urlsplit

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ._errors import KmsError

if TYPE_CHECKING:
    from pathlib import Path

    from mediaplane.config import Settings

__all__ = ["AwsKms", "Kms", "LocalKms", "open_kms"]

_LOCAL_FORMAT = b"\x01"
_AAD = b"mediaplane-kek"


class Kms(Protocol):
    """Wraps and unwraps the key store's KEKs (32 bytes each)."""

    #: Names the key that wraps, stored beside each wrapped KEK (never a secret).
    name: str

    def wrap(self, plaintext: bytes) -> bytes: ...

    def unwrap(self, blob: bytes) -> bytes: ...


class LocalKms:
    """A master key held by this host: AES-256-GCM, a fresh 96-bit nonce per wrap."""

    def __init__(self, master_key: bytes) -> None:
        if len(master_key) != 32:
            raise KmsError("the master key must be 32 bytes (base64 of 32 random bytes)")
        self._aead = AESGCM(master_key)
        # which master key: a fingerprint, so a row wrapped under another one is named
        self.name = "local:" + hashlib.sha256(b"mediaplane-master" + master_key).hexdigest()[:16]

    @classmethod
    def from_settings(cls, settings: Settings) -> LocalKms:
        """``MEDIAPLANE_MASTER_KEY`` if set, else ``<data-dir>/master-key`` (made 0600)."""
        if settings.master_key is not None:
            return cls(
                _decode_master(settings.master_key.get_secret_value(), "MEDIAPLANE_MASTER_KEY")
            )
        path = settings.data_path / "master-key"
        return cls(_decode_master(_master_file(path), str(path)))

    def wrap(self, plaintext: bytes) -> bytes:
        nonce = secrets.token_bytes(12)
        return _LOCAL_FORMAT + nonce + self._aead.encrypt(nonce, plaintext, _AAD)

    def unwrap(self, blob: bytes) -> bytes:
        if len(blob) < 1 + 12 + 16 or blob[:1] != _LOCAL_FORMAT:
            raise KmsError("a wrapped key-encryption key is not in the local format")
        try:
            return self._aead.decrypt(blob[1:13], blob[13:], _AAD)
        except InvalidTag:
            raise KmsError(
                "a key-encryption key does not unwrap under this master key: the master key "
                "changed (set MEDIAPLANE_MASTER_KEY to the one the keys were made with)"
            ) from None


def _decode_master(text: str, where: str) -> bytes:
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise KmsError(f"the master key in {where} is not base64") from None
    if len(raw) != 32:
        raise KmsError(f"the master key in {where} is {len(raw)} bytes; it must be 32")
    return raw


def _master_file(path: Path) -> str:
    """The master key file's text, created (mode 0600, O_EXCL) on first use."""
    try:
        return path.read_text()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    value = base64.b64encode(secrets.token_bytes(32)).decode() + "\n"
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(value)
        f.flush()
        os.fsync(f.fileno())
    try:
        os.link(tmp, path)  # atomic and exclusive: two processes starting together agree
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
    return path.read_text()


class AwsKms:
    """AWS KMS (or a server speaking its API): ``Encrypt``/``Decrypt`` with one key id."""

    def __init__(self, key_id: str, *, region: str | None = None, endpoint: str | None = None):
        try:
            import boto3  # noqa: PLC0415 - optional: only a fleet on AWS KMS needs it
        except ImportError:
            raise KmsError("MEDIAPLANE_KMS_URL names AWS KMS: install boto3") from None
        self.key_id = key_id
        self.name = f"aws-kms:{key_id}"
        self._client: Any = boto3.client("kms", region_name=region, endpoint_url=endpoint)

    def wrap(self, plaintext: bytes) -> bytes:
        return bytes(
            self._call("encrypt", KeyId=self.key_id, Plaintext=plaintext)["CiphertextBlob"]
        )

    def unwrap(self, blob: bytes) -> bytes:
        return bytes(self._call("decrypt", KeyId=self.key_id, CiphertextBlob=blob)["Plaintext"])

    def _call(self, op: str, **kw: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

        try:
            return getattr(self._client, op)(EncryptionContext={"app": "mediaplane"}, **kw)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "error")
            raise KmsError(f"AWS KMS refused {op} with key {self.key_id!r}: {code}") from None
        except BotoCoreError as exc:
            raise KmsError(f"AWS KMS cannot be reached for {op}: {type(exc).__name__}") from None


def open_kms(settings: Settings) -> Kms:
    """The KMS ``MEDIAPLANE_KMS_URL`` names: ``aws-kms://KEY-ID?region=R&endpoint=URL``, or
    none for the local master key."""
    url = settings.kms_url
    if not url:
        return LocalKms.from_settings(settings)
    parts = urlsplit(url)
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    if parts.scheme == "aws-kms":
        key_id = unquote(parts.netloc + parts.path)
        if not key_id:
            raise KmsError("MEDIAPLANE_KMS_URL aws-kms://KEY-ID needs the key id or ARN")
        return AwsKms(key_id, region=query.get("region"), endpoint=query.get("endpoint"))
    raise KmsError(
        f"MEDIAPLANE_KMS_URL has scheme {parts.scheme!r}; use aws-kms://KEY-ID, or unset it "
        "for the local master key"
    )
