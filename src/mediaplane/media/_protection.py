"""Protection as data for the packager and the manifest renderers: no key store here.

* :class:`Encryption` — the scheme (``cenc``, ``cbcs``, ``aes-128``) and, per rendition, the
  :class:`TrackKey` (label, KID, key) the packager is given (Shaka Packager raw keys for
  cenc/cbcs; our own AES-128-CBC for HLS full-segment encryption);
* :class:`DrmUrls` — the absolute licence and key URLs the origin's manifests name;
* :func:`common_pssh` — the W3C Common PSSH box (``1077efec-…``) listing KIDs, which Chromium's
  ClearKey reads from the init segment or the MPD;
* :func:`encrypt_segment` / :func:`decrypt_segment` — HLS AES-128: AES-128-CBC with PKCS7
  padding over a whole segment, the IV of segment *n* being *n* as a 128-bit big-endian
  number (written explicitly in the playlist as ``IV=0x…``).
"""

from __future__ import annotations

import base64
import struct
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from ._errors import MediaError

if TYPE_CHECKING:
    from pathlib import Path

__all__ = [
    "CLEARKEY_SYSTEM_ID",
    "COMMON_SYSTEM_ID",
    "SCHEMES",
    "DrmBox",
    "DrmUrls",
    "Encryption",
    "Scheme",
    "TrackKey",
    "common_pssh",
    "decrypt_segment",
    "encrypt_segment",
    "encrypt_segments",
    "segment_iv",
]

Scheme = Literal["cenc", "cbcs", "aes-128"]
SCHEMES: frozenset[str] = frozenset({"cenc", "cbcs", "aes-128"})
#: The W3C Common PSSH system (https://w3c.github.io/encrypted-media/format-registry/initdata/cenc.html).
COMMON_SYSTEM_ID = uuid.UUID("1077efec-c0b2-4d02-ace3-3c1e52e2fb4b")
#: DASH-IF's ClearKey ContentProtection scheme.
CLEARKEY_SYSTEM_ID = uuid.UUID("e2719d58-a985-b3c9-781a-b030af78d30e")


@dataclass(frozen=True)
class TrackKey:
    """The key a rendition is encrypted with: ``label`` is the packager's DRM label
    (``SD``, ``HD``, ``AUDIO``, ``ALL``); ``kid`` and ``key`` 16 bytes each."""

    label: str
    kid: bytes
    key: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if len(self.kid) != 16 or len(self.key) != 16:
            raise MediaError("a content key and its KID are 16 bytes each")
        if not self.label.isalnum():
            raise MediaError(f"a DRM label is letters and digits: {self.label!r}")


@dataclass(frozen=True)
class DrmBox:
    """A commercial DRM system's ``pssh`` box for one KID (Widevine, PlayReady, …: the
    operator's key provider made it, through CPIX or SPEKE)."""

    system_id: str  # UUID string
    kid: bytes
    pssh: bytes


@dataclass(frozen=True)
class Encryption:
    """How to encrypt a packaging run: ``keys`` maps each rendition id to its key;
    ``systems``: the key provider's PSSH boxes, written beside the Common PSSH."""

    scheme: Scheme
    keys: dict[str, TrackKey]
    systems: tuple[DrmBox, ...] = ()

    def __post_init__(self) -> None:
        if self.scheme not in SCHEMES:
            raise MediaError(f"unknown protection scheme {self.scheme!r}")

    def key_for(self, rendition_id: str) -> TrackKey:
        found = self.keys.get(rendition_id)
        if found is None:
            raise MediaError(f"no content key was given for rendition {rendition_id!r}")
        return found

    @property
    def labels(self) -> dict[str, TrackKey]:
        """One key per DRM label (renditions of one track type share it)."""
        return {k.label: k for k in self.keys.values()}


@dataclass(frozen=True)
class DrmUrls:
    """The absolute URLs a protected presentation's manifests name: the ClearKey licence
    server and, for HLS AES-128, the key of a KID (``key_url`` with ``{kid}`` in it)."""

    licence_url: str
    key_url: str

    def key(self, kid_hex: str) -> str:
        return self.key_url.replace("{kid}", kid_hex)


def common_pssh(kids: list[bytes]) -> bytes:
    """A version-1 ``pssh`` box of the W3C Common system listing ``kids`` (no data)."""
    body = struct.pack(">B3s", 1, b"\0\0\0") + COMMON_SYSTEM_ID.bytes
    body += struct.pack(">I", len(kids)) + b"".join(kids) + struct.pack(">I", 0)
    return struct.pack(">I", 8 + len(body)) + b"pssh" + body


def pssh_b64(kids: list[bytes]) -> str:
    return base64.b64encode(common_pssh(kids)).decode()


def segment_iv(number: int) -> bytes:
    """The AES-128 IV of media segment ``number`` (HLS's default: the sequence number)."""
    return number.to_bytes(16, "big")


def encrypt_segment(data: bytes, key: bytes, iv: bytes) -> bytes:
    """AES-128-CBC with PKCS7 padding (HLS ``METHOD=AES-128``)."""
    padder = padding.PKCS7(128).padder()
    padded = padder.update(data) + padder.finalize()
    enc = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    return enc.update(padded) + enc.finalize()


def decrypt_segment(data: bytes, key: bytes, iv: bytes) -> bytes:
    """The inverse of :func:`encrypt_segment`; :class:`MediaError` when it does not decrypt."""
    if not data or len(data) % 16:
        raise MediaError("an AES-128 segment is a whole number of 16-byte blocks")
    dec = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
    padded = dec.update(data) + dec.finalize()
    unpadder = padding.PKCS7(128).unpadder()
    try:
        return unpadder.update(padded) + unpadder.finalize()
    except ValueError:
        raise MediaError("an AES-128 segment does not decrypt with its key") from None


def encrypt_segments(folder: Path, key: bytes, numbers: list[int]) -> None:
    """Encrypt ``folder/<n>.m4s`` in place for each ``n`` (the init segment stays clear:
    the playlists name it before their first EXT-X-KEY)."""
    for n in numbers:
        path = folder / f"{n}.m4s"
        path.write_bytes(encrypt_segment(path.read_bytes(), key, segment_iv(n)))
