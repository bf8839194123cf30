"""Signed playback in Mux's scheme: every way a hostile token is refused, with its reason."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from sqlalchemy.orm import Session

from mediaplane.accounts import (
    REJECTION_REASONS,
    CachedKeys,
    NewSigningKey,
    NotFound,
    PlaybackTokenRejected,
    create_signing_key,
    list_signing_keys,
    revoke_signing_key,
    session_lookup,
    verify_playback_token,
)
from mediaplane.runtime import Runtime

PLAYBACK = "pb0123456789abcdefghijkl"


@pytest.fixture
def key(session: Session) -> NewSigningKey:
    return create_signing_key(session)


def _private(new: NewSigningKey) -> bytes:
    return base64.b64decode(new.private_key)


def _sign(new: NewSigningKey, **claims: Any) -> str:
    """A token as Mux's signing code makes it: RS256, kid header, sub/aud/exp claims."""
    body = {"sub": PLAYBACK, "aud": "v", "exp": int(time.time()) + 600, **claims}
    body = {k: v for k, v in body.items() if v is not None}
    return jwt.encode(body, _private(new), algorithm="RS256", headers={"kid": new.row.id})


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _raw(header: dict[str, Any], claims: dict[str, Any], signature: bytes = b"") -> str:
    parts = (json.dumps(header).encode(), json.dumps(claims).encode())
    return ".".join([*(_b64(p) for p in parts), _b64(signature)])


def _reason(session: Session, token: str, playback: str = PLAYBACK, aud: str = "v") -> str:
    with pytest.raises(PlaybackTokenRejected) as err:
        verify_playback_token(token, playback, aud, session_lookup(session))
    assert err.value.code in REJECTION_REASONS
    return err.value.code


def test_the_private_key_is_a_base64_pem_and_only_the_public_half_is_kept(
    session: Session, key: NewSigningKey
) -> None:
    pem = _private(key)
    assert pem.startswith(b"-----BEGIN RSA PRIVATE KEY-----")
    private = serialization.load_pem_private_key(pem, password=None)
    assert isinstance(private, rsa.RSAPrivateKey) and private.key_size == 2048
    assert "PRIVATE" not in key.row.public_key
    assert key.row.id in {k.id for k in list_signing_keys(session)}


def test_a_valid_token_grants_playback(session: Session, key: NewSigningKey) -> None:
    token = _sign(key, viewer_id="viewer-7", max_resolution="720p")
    grant = verify_playback_token(token, PLAYBACK, "v", session_lookup(session))
    assert (grant.playback_id, grant.aud, grant.key_id) == (PLAYBACK, "v", key.row.id)
    assert grant.viewer_id == "viewer-7" and grant.max_resolution == "720p"
    for aud in ("t", "s"):
        assert verify_playback_token(_sign(key, aud=aud), PLAYBACK, aud, session_lookup(session))


def test_alg_none_is_refused(session: Session, key: NewSigningKey) -> None:
    claims = {"sub": PLAYBACK, "aud": "v", "exp": int(time.time()) + 600}
    assert _reason(session, _raw({"alg": "none", "kid": key.row.id}, claims)) == "token_algorithm"
    assert _reason(session, _raw({"alg": "None", "kid": key.row.id}, claims)) == "token_algorithm"


def test_hs256_keyed_with_the_public_key_is_refused(session: Session, key: NewSigningKey) -> None:
    """The classic confusion: an HMAC over the token with the (public) PEM as the secret."""
    claims = {"sub": PLAYBACK, "aud": "v", "exp": int(time.time()) + 600}
    header = {"alg": "HS256", "typ": "JWT", "kid": key.row.id}
    signing_input = ".".join(_b64(json.dumps(p).encode()) for p in (header, claims))
    mac = hmac.new(key.row.public_key.encode(), signing_input.encode(), hashlib.sha256).digest()
    token = f"{signing_input}.{_b64(mac)}"
    assert _reason(session, token) == "token_algorithm"
    # the same with RS256 claimed in the header: the signature cannot verify
    header["alg"] = "RS256"
    signing_input = ".".join(_b64(json.dumps(p).encode()) for p in (header, claims))
    mac = hmac.new(key.row.public_key.encode(), signing_input.encode(), hashlib.sha256).digest()
    assert _reason(session, f"{signing_input}.{_b64(mac)}") == "token_signature"


def test_another_key_s_signature_is_refused(session: Session, key: NewSigningKey) -> None:
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    body = {"sub": PLAYBACK, "aud": "v", "exp": int(time.time()) + 600}
    token = jwt.encode(body, stranger, algorithm="RS256", headers={"kid": key.row.id})
    assert _reason(session, token) == "token_signature"
    # a tampered claim under a real signature
    head, claims, sig = _sign(key).split(".")
    forged = _b64(json.dumps({"sub": "another", "aud": "v", "exp": 2**40}).encode())
    assert _reason(session, f"{head}.{forged}.{sig}", "another") == "token_signature"


def test_other_asymmetric_algorithms_are_refused(session: Session, key: NewSigningKey) -> None:
    ec_key = ec.generate_private_key(ec.SECP256R1())
    body = {"sub": PLAYBACK, "aud": "v", "exp": int(time.time()) + 600}
    for alg, private in (
        ("ES256", ec_key),
        ("PS256", serialization.load_pem_private_key(_private(key), None)),
    ):
        token = jwt.encode(body, private, algorithm=alg, headers={"kid": key.row.id})
        assert _reason(session, token) == "token_algorithm"


def test_wrong_audience(session: Session, key: NewSigningKey) -> None:
    assert _reason(session, _sign(key, aud="t")) == "token_wrong_audience"
    assert _reason(session, _sign(key, aud="v"), aud="s") == "token_wrong_audience"
    assert _reason(session, _sign(key, aud="x")) == "token_wrong_audience"


def test_expired(session: Session, key: NewSigningKey) -> None:
    assert _reason(session, _sign(key, exp=int(time.time()) - 5)) == "token_expired"
    # a little clock skew may be allowed explicitly
    token = _sign(key, exp=int(time.time()) - 5)
    assert verify_playback_token(token, PLAYBACK, "v", session_lookup(session), leeway=30)


def test_exp_sub_and_aud_are_required(session: Session, key: NewSigningKey) -> None:
    for missing in ("exp", "sub", "aud"):
        assert _reason(session, _sign(key, **{missing: None})) == "token_missing_claim"


def test_not_yet_valid(session: Session, key: NewSigningKey) -> None:
    assert _reason(session, _sign(key, nbf=int(time.time()) + 600)) == "token_not_yet_valid"


def test_another_playback_id(session: Session, key: NewSigningKey) -> None:
    assert _reason(session, _sign(key), playback="pb-someone-else") == "token_wrong_playback_id"


def test_revoked_key(session: Session, key: NewSigningKey) -> None:
    token = _sign(key)
    revoke_signing_key(session, key.row.id)
    revoke_signing_key(session, key.row.id)  # twice is fine
    assert _reason(session, token) == "token_key_revoked"
    assert key.row.id not in {k.id for k in list_signing_keys(session)}
    with pytest.raises(NotFound):
        revoke_signing_key(session, "no-such-key")


def _rs256(header: dict[str, Any], claims: dict[str, Any], new: NewSigningKey) -> str:
    """A real RS256 signature over any header (PyJWT refuses to write some of these)."""
    private = serialization.load_pem_private_key(_private(new), None)
    assert isinstance(private, rsa.RSAPrivateKey)
    signing_input = ".".join(_b64(json.dumps(p).encode()) for p in (header, claims))
    signature = private.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{_b64(signature)}"


def test_unknown_or_missing_kid(session: Session, key: NewSigningKey) -> None:
    body = {"sub": PLAYBACK, "aud": "v", "exp": int(time.time()) + 600}
    for kid in ("unknownkid", None, "k" * 500, ""):
        header = {"alg": "RS256", "typ": "JWT"} | ({"kid": kid} if kid is not None else {})
        assert _reason(session, _rs256(header, body, key)) == "token_unknown_key"
    token = _rs256({"alg": "RS256", "kid": 7}, body, key)
    assert _reason(session, token) in {"token_unknown_key", "token_malformed"}
    # the right key under a real signature, for contrast
    assert verify_playback_token(
        _rs256({"alg": "RS256", "kid": key.row.id}, body, key),
        PLAYBACK,
        "v",
        session_lookup(session),
    )


@pytest.mark.parametrize(
    "token", ["", "abc", "a.b.c", "e30.e30.", "x" * 5000, "\u00e9.\u00e9.\u00e9", "..", "a.b"]
)
def test_garbage_is_malformed(session: Session, token: str) -> None:
    assert _reason(session, token) in {"token_malformed", "token_algorithm"}


def test_an_unknown_use_is_a_programming_error(session: Session, key: NewSigningKey) -> None:
    with pytest.raises(ValueError, match="aud"):
        verify_playback_token(_sign(key), PLAYBACK, "g", session_lookup(session))


def test_the_cached_lookup_sees_a_revocation_after_its_ttl(rt: Runtime) -> None:
    with rt.db.session() as s:
        new = create_signing_key(s)
    keys = CachedKeys(rt.db, ttl=0.2)
    token = _sign(new)
    assert verify_playback_token(token, PLAYBACK, "v", keys)
    with rt.db.session() as s:
        revoke_signing_key(s, new.row.id)
    time.sleep(0.3)
    with pytest.raises(PlaybackTokenRejected) as err:
        verify_playback_token(token, PLAYBACK, "v", keys)
    assert err.value.code == "token_key_revoked"
