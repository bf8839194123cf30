"""The key store: 128-bit content keys with their KIDs, stored only wrapped (see :mod:`._kms`).

Keys belong to an asset, one per track type (``sd``, ``hd``, ``audio``: a licence server may
then release the HD key to fewer devices) or one for the whole asset (``all``). Rotation
retires the current keys and makes new ones; retired keys stay, for what was packaged with
them. Unwrapped KEKs are kept for the process's life; content keys are unwrapped per call
and cached nowhere.
"""

from __future__ import annotations

import base64
import secrets
import threading
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Literal

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import select, update

from mediaplane.db import utcnow

from ._cpix import DrmSignal
from ._errors import InvalidKey, KeyNotFound
from ._models import ContentKeyRow, DrmSignalRow, KeyEncryptionKey

if TYPE_CHECKING:
    from collections.abc import Iterable

    from sqlalchemy.orm import Session

    from mediaplane.db import Database

    from ._kms import Kms

__all__ = [
    "TRACK_TYPES",
    "ContentKey",
    "KeyStore",
    "signals_for",
    "store_signals",
    "track_type_for",
]

TrackType = Literal["all", "sd", "hd", "audio"]
TRACK_TYPES: frozenset[str] = frozenset({"all", "sd", "hd", "audio"})
#: Video this tall or taller is HD (the usual SD/HD split of DRM key policies).
HD_MIN_HEIGHT = 720


def track_type_for(kind: str, height: int | None, per_track: bool) -> str:
    """The track type whose key covers a track: ``all`` unless keys are per track type."""
    if not per_track:
        return "all"
    if kind == "audio":
        return "audio"
    return "hd" if (height or 0) >= HD_MIN_HEIGHT else "sd"


@dataclass(frozen=True)
class ContentKey:
    """A content key in the clear: only ever in memory, never in a repr or a log."""

    kid: bytes
    key: bytes = field(repr=False)
    asset_id: str
    track_type: str
    origin: str
    created_at: datetime
    retired_at: datetime | None

    @property
    def kid_hex(self) -> str:
        return self.kid.hex()

    @property
    def kid_uuid(self) -> str:
        """The KID as a UUID string (``cenc:default_KID``, CPIX ``kid``)."""
        return str(uuid.UUID(bytes=self.kid))

    @property
    def kid_b64url(self) -> str:
        """The KID as the W3C ClearKey licence exchange writes it (base64url, no padding)."""
        return b64url(self.kid)


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def parse_kid(text: str) -> bytes:
    """A KID from 32 hex digits, a UUID, or base64url of 16 bytes; :class:`InvalidKey` else."""
    text = text.strip()
    if len(text) <= 36:
        try:
            return uuid.UUID(text).bytes
        except ValueError:
            pass
        if len(text) == 22:
            try:
                raw = base64.urlsafe_b64decode(text + "==")
            except ValueError:
                raw = b""
            if len(raw) == 16:
                return raw
    raise InvalidKey("a KID is 16 bytes: 32 hex digits, a UUID, or 22 characters of base64url")


class KeyStore:
    """Content keys for assets, wrapped under KEKs that ``kms`` wraps."""

    def __init__(self, db: Database, kms: Kms) -> None:
        self.db = db
        self.kms = kms
        self._keks: dict[int, AESGCM] = {}
        self._lock = threading.Lock()

    # -- KEKs ---------------------------------------------------------------------------

    def _kek(self, s: Session, kek_id: int) -> AESGCM:
        with self._lock:
            found = self._keks.get(kek_id)
        if found is not None:
            return found
        row = s.get(KeyEncryptionKey, kek_id)
        if row is None:
            raise InvalidKey(f"key-encryption key {kek_id} is missing")
        aead = AESGCM(self.kms.unwrap(row.wrapped))
        with self._lock:
            self._keks[kek_id] = aead
        return aead

    def _active_kek(self, s: Session) -> tuple[int, AESGCM]:
        row = s.scalars(
            select(KeyEncryptionKey)
            .where(KeyEncryptionKey.retired_at.is_(None), KeyEncryptionKey.kms == self.kms.name)
            .order_by(KeyEncryptionKey.id.desc())
            .limit(1)
        ).first()
        if row is None:
            return self._new_kek(s)
        return row.id, self._kek(s, row.id)

    def _new_kek(self, s: Session) -> tuple[int, AESGCM]:
        plain = AESGCM.generate_key(bit_length=256)
        row = KeyEncryptionKey(kms=self.kms.name, wrapped=self.kms.wrap(plain))
        s.add(row)
        s.flush()
        aead = AESGCM(plain)
        with self._lock:
            self._keks[row.id] = aead
        return row.id, aead

    def rewrap(self) -> int:
        """KEK rotation: a new KEK wraps every content key under this KMS's older KEKs, and
        those are retired. Returns how many content keys were rewrapped."""
        with self.db.session() as s:
            old = select(KeyEncryptionKey.id).where(KeyEncryptionKey.kms == self.kms.name)
            new_id, new = self._new_kek(s)
            rows = list(
                s.scalars(
                    select(ContentKeyRow).where(
                        ContentKeyRow.kek_id.in_(old), ContentKeyRow.kek_id != new_id
                    )
                )
            )
            for row in rows:
                key = self._unwrap(s, row)
                row.wrapped, row.kek_id = _seal(new, row.kid, key), new_id
            s.execute(
                update(KeyEncryptionKey)
                .where(
                    KeyEncryptionKey.kms == self.kms.name,
                    KeyEncryptionKey.id != new_id,
                    KeyEncryptionKey.retired_at.is_(None),
                )
                .values(retired_at=utcnow())
            )
            return len(rows)

    # -- content keys -------------------------------------------------------------------

    def _unwrap(self, s: Session, row: ContentKeyRow) -> bytes:
        blob = row.wrapped
        try:
            return self._kek(s, row.kek_id).decrypt(blob[:12], blob[12:], bytes.fromhex(row.kid))
        except (InvalidTag, ValueError):
            raise InvalidKey(f"content key {row.kid} does not decrypt under its KEK") from None

    def _key(self, s: Session, row: ContentKeyRow) -> ContentKey:
        return ContentKey(
            kid=bytes.fromhex(row.kid),
            key=self._unwrap(s, row),
            asset_id=row.asset_id,
            track_type=row.track_type,
            origin=row.origin,
            created_at=row.created_at,
            retired_at=row.retired_at,
        )

    def _add(
        self, s: Session, asset_id: str, track_type: str, kid: bytes, key: bytes, origin: str
    ) -> ContentKey:
        if track_type not in TRACK_TYPES:
            raise InvalidKey(f"track type {track_type!r} is not one of {sorted(TRACK_TYPES)}")
        if len(kid) != 16 or len(key) != 16:
            raise InvalidKey("a content key and its KID are 16 bytes each")
        if s.get(ContentKeyRow, kid.hex()) is not None:
            raise InvalidKey(f"KID {kid.hex()} is in use already")
        kek_id, kek = self._active_kek(s)
        row = ContentKeyRow(
            kid=kid.hex(),
            asset_id=asset_id,
            track_type=track_type,
            kek_id=kek_id,
            wrapped=_seal(kek, kid.hex(), key),
            origin=origin,
            created_at=utcnow(),
        )
        s.add(row)
        s.flush()
        return self._key(s, row)

    def _current_rows(self, s: Session, asset_id: str) -> list[ContentKeyRow]:
        return list(
            s.scalars(
                select(ContentKeyRow)
                .where(ContentKeyRow.asset_id == asset_id, ContentKeyRow.retired_at.is_(None))
                .order_by(ContentKeyRow.created_at)
            )
        )

    def current_keys(self, asset_id: str) -> dict[str, ContentKey]:
        """The asset's keys in force, by track type (empty: none made yet)."""
        with self.db.session() as s:
            return {r.track_type: self._key(s, r) for r in self._current_rows(s, asset_id)}

    def ensure_keys(self, asset_id: str, track_types: Iterable[str]) -> dict[str, ContentKey]:
        """The asset's keys in force for each of ``track_types``, made (CSPRNG) where missing."""
        with self.db.session() as s:
            have = {r.track_type: self._key(s, r) for r in self._current_rows(s, asset_id)}
            for t in sorted(set(track_types) - set(have)):
                have[t] = self._add(
                    s, asset_id, t, secrets.token_bytes(16), secrets.token_bytes(16), "generated"
                )
            return have

    def rotate(self, asset_id: str, track_types: Iterable[str]) -> dict[str, ContentKey]:
        """Retire the asset's keys in force and make new ones for ``track_types``."""
        with self.db.session() as s:
            self._retire(s, asset_id, None)
            return {
                t: self._add(
                    s, asset_id, t, secrets.token_bytes(16), secrets.token_bytes(16), "generated"
                )
                for t in sorted(set(track_types))
            }

    def put(
        self, asset_id: str, track_type: str, kid: bytes, key: bytes, origin: str
    ) -> ContentKey:
        """Store a key a key provider chose (CPIX import, SPEKE); it replaces the asset's key
        in force for ``track_type``."""
        with self.db.session() as s:
            self._retire(s, asset_id, track_type)
            return self._add(s, asset_id, track_type, kid, key, origin)

    def _retire(self, s: Session, asset_id: str, track_type: str | None) -> None:
        q = update(ContentKeyRow).where(
            ContentKeyRow.asset_id == asset_id, ContentKeyRow.retired_at.is_(None)
        )
        if track_type is not None:
            q = q.where(ContentKeyRow.track_type == track_type)
        s.execute(q.values(retired_at=utcnow()))

    def get(self, kid: bytes) -> ContentKey:
        """The key with ``kid`` (retired or not); :class:`KeyNotFound` if there is none."""
        with self.db.session() as s:
            row = s.get(ContentKeyRow, kid.hex())
            if row is None:
                raise KeyNotFound(f"no content key has KID {kid.hex()}")
            return self._key(s, row)

    def asset_kids(self, asset_id: str) -> list[tuple[str, str, datetime | None]]:
        """Every KID the asset ever had: (kid hex, track type, retired at), oldest first;
        no key is unwrapped."""
        with self.db.session() as s:
            rows = s.execute(
                select(ContentKeyRow.kid, ContentKeyRow.track_type, ContentKeyRow.retired_at)
                .where(ContentKeyRow.asset_id == asset_id)
                .order_by(ContentKeyRow.created_at)
            )
            return [(k, t, r) for k, t, r in rows]


def _seal(kek: AESGCM, kid_hex: str, key: bytes) -> bytes:
    nonce = secrets.token_bytes(12)
    return nonce + kek.encrypt(nonce, key, bytes.fromhex(kid_hex))


def store_signals(db: Database, signals: Iterable[DrmSignal]) -> None:
    """Keep (replace) the DRM systems' signalling a key provider gave for its KIDs."""
    with db.session() as s:
        for sig in signals:
            row = s.get(DrmSignalRow, (sig.kid.hex(), sig.system_id))
            if row is None:
                row = DrmSignalRow(kid=sig.kid.hex(), system_id=sig.system_id)
                s.add(row)
            row.pssh = sig.pssh
            row.content_protection_data = sig.content_protection_data
            row.hls_media = sig.hls_signaling.get("media")
            row.hls_master = sig.hls_signaling.get("multiVariant") or sig.hls_signaling.get(
                "master"
            )


def signals_for(db: Database, kids: Iterable[bytes]) -> list[DrmSignal]:
    """The stored signalling for ``kids``, by KID then system id."""
    wanted = sorted({k.hex() for k in kids})
    if not wanted:
        return []
    with db.session() as s:
        rows = s.scalars(
            select(DrmSignalRow)
            .where(DrmSignalRow.kid.in_(wanted))
            .order_by(DrmSignalRow.kid, DrmSignalRow.system_id)
        )
        out = []
        for r in rows:
            hls = {}
            if r.hls_media is not None:
                hls["media"] = r.hls_media
            if r.hls_master is not None:
                hls["multiVariant"] = r.hls_master
            out.append(
                DrmSignal(
                    system_id=r.system_id,
                    kid=bytes.fromhex(r.kid),
                    pssh=r.pssh,
                    content_protection_data=r.content_protection_data,
                    hls_signaling=hls,
                )
            )
        return out
