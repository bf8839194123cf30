"""The server's own signing key, for the watch page: signed playback for the people who may
see an asset anyway (its channel's members, admins) without handing them a token.

Signing keys created through the API give their private half away once and the server
keeps only the public one, so the server cannot sign with them. This key is made the
same way (a row in ``signing_keys``: it is listed, and revoking it stops what it signed),
but its private half stays in ``<data-dir>/page-signing-key`` (mode 0600, like the
secret key). A revoked or lost one is replaced by a new one on next use. Each host with
its own data directory makes its own key; every origin verifies them all.
"""

from __future__ import annotations

import base64
import os
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from ._models import SigningKey
from ._signing import create_signing_key

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from mediaplane.config import Settings

PAGE_KEY_FILE = "page-signing-key"
#: How long a token the watch page signs is good for: the player fetches the master
#: playlist (and posters) with it at once; the carry token covers the rest of the stream.
PAGE_TOKEN_SECONDS = 600


def _path(settings: Settings) -> Path:
    return settings.data_path / PAGE_KEY_FILE


def page_key_id(settings: Settings) -> str | None:
    """The id of this server's page-signing key (None: none made yet)."""
    found = _read(_path(settings))
    return found[0] if found else None


def _read(path: Path) -> tuple[str, str] | None:
    try:
        kid, _, pem_b64 = path.read_text().strip().partition("\n")
    except FileNotFoundError:
        return None
    return (kid.strip(), pem_b64.strip()) if kid.strip() and pem_b64.strip() else None


def _write(path: Path, kid: str, pem_b64: str) -> None:
    """Replace the key file atomically (mode 0600 from the start)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{PAGE_KEY_FILE}.")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(f"{kid}\n{pem_b64}\n")
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _live_key(s: Session, settings: Settings) -> tuple[str, rsa.RSAPrivateKey]:
    path = _path(settings)
    found = _read(path)
    if found is not None:
        row = s.get(SigningKey, found[0])
        if row is not None and row.revoked_at is None:
            key = serialization.load_pem_private_key(base64.b64decode(found[1]), None)
            assert isinstance(key, rsa.RSAPrivateKey)
            return found[0], key
    new = create_signing_key(s)
    s.commit()  # the row must exist before a token it signs reaches the origin
    _write(path, new.row.id, new.private_key)
    key = serialization.load_pem_private_key(base64.b64decode(new.private_key), None)
    assert isinstance(key, rsa.RSAPrivateKey)
    return new.row.id, key


def sign_page_tokens(
    s: Session, settings: Settings, playback_id: str, viewer_id: str | None
) -> dict[str, str]:
    """Short-lived playback tokens for ``playback_id``, by ``aud``: ``v`` (the video) and
    ``t`` (its thumbnails), signed with this server's page key (made on first use).

    The caller decides who gets them (the watch page: those who may read the asset)."""
    kid, key = _live_key(s, settings)
    now = int(time.time())
    claims: dict[str, object] = {"sub": playback_id, "exp": now + PAGE_TOKEN_SECONDS}
    if viewer_id is not None:
        claims["viewer_id"] = viewer_id
    return {
        aud: jwt.encode({**claims, "aud": aud}, key, algorithm="RS256", headers={"kid": kid})
        for aud in ("v", "t")
    }
