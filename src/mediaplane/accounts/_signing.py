"""Signed playback in Mux's scheme: RSA signing keys and the playback-token check.

A key is created on the server, its private half handed out once (base64 of the PEM) and
only the public half kept. A playback token is an RS256 JWT whose header ``kid`` is the
key id, with ``sub`` = the playback id, ``aud`` = ``v`` (video), ``t`` (thumbnail) or ``s``
(storyboard) and ``exp``; optional claims carry a viewer id and a maximum resolution.
"""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import select
from sqlalchemy.orm import Session

from mediaplane.db import Database, utcnow

from ._errors import NotFound, PlaybackTokenRejected
from ._models import SigningKey

#: What each ``aud`` letter grants: the video, its thumbnails, its storyboard.
AUDIENCES = frozenset({"v", "t", "s"})
#: Every reason :func:`verify_playback_token` gives, as :attr:`PlaybackTokenRejected.code`.
REJECTION_REASONS = frozenset(
    {
        "token_malformed",
        "token_algorithm",
        "token_unknown_key",
        "token_key_revoked",
        "token_signature",
        "token_expired",
        "token_not_yet_valid",
        "token_missing_claim",
        "token_wrong_audience",
        "token_wrong_playback_id",
    }
)
_MAX_TOKEN = 4096
_RSA_BITS = 2048


@dataclass(frozen=True)
class NewSigningKey:
    """A key just created: ``private_key`` (base64 of the PEM) is shown this once."""

    row: SigningKey
    private_key: str


@dataclass(frozen=True)
class PublicKey:
    """What verification needs of a signing key."""

    id: str
    key: rsa.RSAPublicKey
    revoked: bool


@dataclass(frozen=True)
class PlaybackGrant:
    """What a valid playback token allows."""

    playback_id: str
    aud: str
    key_id: str
    expires_at: int  # Unix seconds
    viewer_id: str | None
    max_resolution: str | None


#: Looks a signing key up by id (None: no such key). The origin passes a cached one.
KeyLookup = Callable[[str], PublicKey | None]


def create_signing_key(s: Session) -> NewSigningKey:
    private = rsa.generate_private_key(public_exponent=65537, key_size=_RSA_BITS)
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    public = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    row = SigningKey(public_key=public.decode())
    s.add(row)
    s.flush()
    return NewSigningKey(row, base64.b64encode(pem).decode())


def list_signing_keys(s: Session) -> list[SigningKey]:
    """The keys not revoked, oldest first."""
    q = select(SigningKey).where(SigningKey.revoked_at.is_(None))
    return list(s.scalars(q.order_by(SigningKey.created_at, SigningKey.id)))


def revoke_signing_key(s: Session, key_id: str) -> SigningKey:
    """Revoke a key: tokens it signed stop playing (revoking twice is fine)."""
    row = s.get(SigningKey, key_id)
    if row is None:
        raise NotFound(f"No signing key with id {key_id!r}.")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
    return row


def _public(row: SigningKey) -> PublicKey:
    key = serialization.load_pem_public_key(row.public_key.encode())
    assert isinstance(key, rsa.RSAPublicKey)
    return PublicKey(row.id, key, row.revoked_at is not None)


def session_lookup(s: Session) -> KeyLookup:
    """A lookup reading ``s`` each time (the API, tests)."""

    def lookup(key_id: str) -> PublicKey | None:
        row = s.get(SigningKey, key_id)
        return _public(row) if row is not None else None

    return lookup


class CachedKeys:
    """A key lookup for the origin: one query per key per ``ttl`` seconds, not per request.
    A revocation takes effect within ``ttl`` (like the origin's playback lookups)."""

    def __init__(self, db: Database, ttl: float = 5.0) -> None:
        self._db = db
        self._ttl = ttl
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[float, PublicKey | None]] = {}

    def __call__(self, key_id: str) -> PublicKey | None:
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(key_id)
        if hit is not None and now - hit[0] < self._ttl:
            return hit[1]
        with self._db.session() as s:
            found = session_lookup(s)(key_id)
        with self._lock:
            if len(self._cache) > 10_000:  # made-up kids must not grow it without end
                self._cache.clear()
            self._cache[key_id] = (now, found)
        return found


def _reject(reason: str, message: str) -> PlaybackTokenRejected:
    return PlaybackTokenRejected(message, reason)


def _header(token: str) -> dict[str, Any]:
    if not token or len(token) > _MAX_TOKEN:
        raise _reject("token_malformed", "The playback token is not a JWT.")
    try:
        return jwt.get_unverified_header(token)
    except jwt.InvalidTokenError:
        raise _reject("token_malformed", "The playback token is not a JWT.") from None


def _key_for(header: dict[str, Any], keys: KeyLookup) -> PublicKey:
    # Pinned before anything is verified: "none", HS256 keyed with the public key, etc.
    if header.get("alg") != "RS256":
        raise _reject("token_algorithm", "A playback token must be signed with RS256.")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid or len(kid) > 64:
        raise _reject("token_unknown_key", "The playback token names no signing key (kid).")
    found = keys(kid)
    if found is None:
        raise _reject("token_unknown_key", "The playback token's signing key is not known.")
    if found.revoked:
        raise _reject("token_key_revoked", "The playback token's signing key was revoked.")
    return found


_DECODE_ERRORS: tuple[tuple[type[Exception], str, str], ...] = (
    (jwt.ExpiredSignatureError, "token_expired", "The playback token has expired."),
    (jwt.ImmatureSignatureError, "token_not_yet_valid", "The playback token is not valid yet."),
    (jwt.InvalidAudienceError, "token_wrong_audience", "The playback token is for another use."),
    (jwt.MissingRequiredClaimError, "token_missing_claim", "The playback token lacks a claim."),
    (jwt.InvalidSignatureError, "token_signature", "The playback token's signature is wrong."),
    (jwt.InvalidAlgorithmError, "token_algorithm", "A playback token must be signed with RS256."),
)


def _claims(token: str, key: PublicKey, aud: str, leeway: float) -> dict[str, Any]:
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key.key,
            algorithms=["RS256"],
            audience=aud,
            leeway=leeway,
            options={"require": ["exp", "sub", "aud"]},
        )
        return claims
    except jwt.InvalidTokenError as exc:
        for kind, reason, message in _DECODE_ERRORS:
            if isinstance(exc, kind):
                raise _reject(reason, message) from None
        raise _reject("token_malformed", "The playback token is not valid.") from None


def verify_playback_token(
    token: str, playback_id: str, aud: str, keys: KeyLookup, *, leeway: float = 0.0
) -> PlaybackGrant:
    """Check a signed-playback token for ``playback_id`` and use ``aud`` (``v``, ``t``, ``s``).

    :param keys: a signing-key lookup (:func:`session_lookup`, or :class:`CachedKeys`).
    :param leeway: seconds of clock skew tolerated on ``exp`` (and ``nbf``).
    :raises PlaybackTokenRejected: with ``code`` one of :data:`REJECTION_REASONS`.
    """
    if aud not in AUDIENCES:
        raise ValueError(f"aud must be one of {sorted(AUDIENCES)}, not {aud!r}")
    key = _key_for(_header(token), keys)
    claims = _claims(token, key, aud, leeway)
    if claims.get("sub") != playback_id:
        raise _reject("token_wrong_playback_id", "The playback token is for another video.")
    viewer = claims.get("viewer_id")
    resolution = claims.get("max_resolution")
    return PlaybackGrant(
        playback_id=playback_id,
        aud=aud,
        key_id=key.id,
        expires_at=int(claims["exp"]),
        viewer_id=viewer if isinstance(viewer, str) else None,
        max_resolution=resolution if isinstance(resolution, str) else None,
    )
