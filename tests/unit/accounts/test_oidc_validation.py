"""OpenID Connect pieces without a provider: the ID-token validator (tokens signed here with
keys we hold), ``next``, the flow cookie, discovery parsing and the settings."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from pydantic import ValidationError

from mediaplane.accounts import OidcError, safe_next, validate_id_token
from mediaplane.accounts._oidc import Flow, ProviderMetadata, decode_flow, encode_flow
from mediaplane.config import Settings

ISS = "https://login.example.com/tenant/v2.0"
CLIENT = "client-123"
NONCE = "n-0123456789abcdef"
SECRET_A = "flow-secret-a-0123456789abcdef0123456789"
SECRET_B = "flow-secret-b-0123456789abcdef0123456789"


def _rsa() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


KEY = _rsa()
OTHER = _rsa()


def _jwk(key: Any, kid: str = "k1", **extra: Any) -> dict[str, Any]:
    jwk: dict[str, Any] = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    return jwk | {"kid": kid, "use": "sig", "alg": "RS256"} | extra


JWKS = {"keys": [_jwk(KEY)]}


def _claims(**changes: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {"iss": ISS, "aud": CLIENT, "sub": "user-1", "iat": now, "exp": now + 300}
    claims |= {"nonce": NONCE, "email": "a@example.com", "email_verified": True}
    for k, v in changes.items():
        if v is None:
            claims.pop(k, None)
        else:
            claims[k] = v
    return claims


def _token(key: Any = KEY, alg: str = "RS256", kid: str | None = "k1", **changes: Any) -> str:
    headers = {"kid": kid} if kid is not None else {}
    return jwt.encode(_claims(**changes), key, algorithm=alg, headers=headers)


def _check(token: str, jwks: dict[str, Any] = JWKS, **kw: Any) -> dict[str, Any]:
    return validate_id_token(
        token, jwks, issuer=ISS, client_id=CLIENT, nonce=kw.pop("nonce", NONCE), **kw
    )


def _refused(code: str, token: str, jwks: dict[str, Any] = JWKS, **kw: Any) -> None:
    with pytest.raises(OidcError) as caught:
        _check(token, jwks, **kw)
    assert caught.value.code == code, caught.value.message
    assert caught.value.status == 401


def test_a_good_id_token_gives_its_claims() -> None:
    claims = _check(_token())
    assert claims["sub"] == "user-1" and claims["email_verified"] is True


def test_a_token_without_kid_uses_the_only_key() -> None:
    assert _check(_token(kid=None))["sub"] == "user-1"


def test_an_audience_list_needs_azp_when_it_names_others() -> None:
    assert _check(_token(aud=[CLIENT]))["sub"] == "user-1"
    assert _check(_token(aud=[CLIENT, "api"], azp=CLIENT))["sub"] == "user-1"
    _refused("oidc_wrong_audience", _token(aud=[CLIENT, "api"]))
    _refused("oidc_wrong_audience", _token(aud=[CLIENT, "api"], azp="api"))


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"nonce": "someone-elses-nonce"}, "oidc_nonce_mismatch"),
        ({"nonce": None}, "oidc_nonce_mismatch"),
        ({"nonce": 12}, "oidc_nonce_mismatch"),
        ({"iss": "https://evil.example.com"}, "oidc_wrong_issuer"),
        ({"iss": None}, "oidc_invalid_id_token"),
        ({"aud": "another-client"}, "oidc_wrong_audience"),
        ({"aud": None}, "oidc_invalid_id_token"),
        ({"exp": int(time.time()) - 120}, "oidc_token_expired"),
        ({"exp": None}, "oidc_invalid_id_token"),
        ({"sub": None}, "oidc_invalid_id_token"),
        ({"sub": ""}, "oidc_invalid_id_token"),
    ],
)
def test_a_bad_claim_is_refused(changes: dict[str, Any], code: str) -> None:
    _refused(code, _token(**changes))


def test_clock_skew_within_the_leeway_is_allowed() -> None:
    assert _check(_token(exp=int(time.time()) - 30))["sub"] == "user-1"


def test_a_signature_by_another_key_is_refused() -> None:
    _refused("oidc_bad_signature", _token(OTHER))


def test_an_unknown_kid_asks_for_the_keys_again() -> None:
    _refused("oidc_unknown_key", _token(kid="rotated"))
    assert _check(_token(kid="k2"), {"keys": [_jwk(KEY), _jwk(KEY, "k2")]})["sub"] == "user-1"


def test_alg_none_is_refused() -> None:
    header = base64.urlsafe_b64encode(b'{"alg":"none","kid":"k1"}').rstrip(b"=").decode()
    body = base64.urlsafe_b64encode(json.dumps(_claims()).encode()).rstrip(b"=").decode()
    _refused("oidc_bad_signature", f"{header}.{body}.")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_hs256_keyed_with_the_public_key_is_refused() -> None:
    # The classic confusion: an HMAC "signed" with the provider's public key as the secret
    # (made by hand: PyJWT itself refuses to sign with such a key).
    for secret in (
        KEY.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo),
        json.dumps(JWKS["keys"][0]).encode(),
    ):
        signing_input = (
            _b64(b'{"alg":"HS256","kid":"k1"}') + "." + _b64(json.dumps(_claims()).encode())
        )
        mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
        token = f"{signing_input}.{_b64(mac)}"
        _refused("oidc_bad_signature", token)
        _refused("oidc_bad_signature", token, algorithms=frozenset({"HS256", "RS256"}))


def test_an_algorithm_the_provider_does_not_use_is_refused() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
    jwks = {"keys": [jwk | {"kid": "e1", "use": "sig", "alg": "ES256"}]}
    token = _token(key, "ES256", kid="e1")
    assert _check(token, jwks)["sub"] == "user-1"
    _refused("oidc_bad_signature", token, jwks, algorithms=frozenset({"RS256"}))


def test_an_encryption_key_does_not_verify() -> None:
    _refused("oidc_unknown_key", _token(), {"keys": [_jwk(KEY, use="enc")]})


def test_garbage_is_refused() -> None:
    for token in ("", "not.a.jwt", "a.b.c", "x" * 5000):
        _refused("oidc_invalid_id_token", token)


# --- next and the flow cookie -------------------------------------------------------------


@pytest.mark.parametrize("value", ["/", "/me", "/watch/abc?t=10#x", "/a/b%2F"])
def test_a_local_path_is_a_fine_next(value: str) -> None:
    assert safe_next(value) == value


def test_no_next_is_none() -> None:
    assert safe_next(None) is None and safe_next("") is None


@pytest.mark.parametrize(
    "value",
    [
        "https://evil.example/",
        "//evil.example/",
        "/\\evil.example",
        "\\\\evil.example",
        "javascript:alert(1)",
        "me",
        "/ok\r\nSet-Cookie: x=1",
        "/tab\tx",
        "/nul\x00",
        "/" + "a" * 2001,
    ],
)
def test_an_open_redirect_is_refused(value: str) -> None:
    with pytest.raises(OidcError) as caught:
        safe_next(value)
    assert caught.value.code == "invalid_next" and caught.value.status == 400


def test_the_flow_cookie_round_trips_and_rejects_tampering() -> None:
    flow = Flow("google", "state-1", "nonce-1", "verifier-1", "/me")
    value = encode_flow(SECRET_A, flow)
    assert decode_flow(SECRET_A, value) == flow
    for bad in (None, "", "garbage", value + "x", encode_flow(SECRET_B, flow), "a" * 5000):
        with pytest.raises(OidcError) as caught:
            decode_flow(SECRET_A, bad)
        assert caught.value.code == "oidc_state_missing"
    expired = jwt.encode(
        {"aud": "mediaplane-oidc-flow", "exp": int(time.time()) - 1, "p": "g", "s": "s"},
        SECRET_A,
        algorithm="HS256",
    )
    with pytest.raises(OidcError):
        decode_flow(SECRET_A, expired)


# --- discovery and settings ---------------------------------------------------------------


def _discovery(**changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "issuer": ISS,
        "authorization_endpoint": "https://login.example.com/authorize?p=B2C_1_signin",
        "token_endpoint": "https://login.example.com/token",
        "jwks_uri": "https://login.example.com/keys",
        "id_token_signing_alg_values_supported": ["RS256", "HS256", "none"],
    }
    return doc | changes


def test_discovery_keeps_only_asymmetric_algorithms() -> None:
    meta = ProviderMetadata.parse(_discovery())
    assert meta.issuer == ISS and meta.algorithms == frozenset({"RS256"})
    assert meta.auth_methods == frozenset({"client_secret_basic"})
    assert ProviderMetadata.parse(_discovery(id_token_signing_alg_values_supported=["none"])).algorithms == frozenset({"RS256"})  # fmt: skip


@pytest.mark.parametrize(
    "changes",
    [
        {"issuer": None},
        {"issuer": ""},
        {"token_endpoint": None},
        {"jwks_uri": "file:///etc/passwd"},
        {"authorization_endpoint": 42},
    ],
)
def test_incomplete_discovery_is_refused(changes: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="discovery has no"):
        ProviderMetadata.parse(_discovery(**changes))


def _provider(**changes: Any) -> dict[str, Any]:
    return {
        "name": "entra",
        "discovery_url": "https://login.microsoftonline.com/t/v2.0/.well-known/openid-configuration",
        "client_id": "app-id",
        "client_secret": "a-client-secret",
    } | changes


def test_providers_come_from_json_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    value = json.dumps([_provider(), _provider(name="google", scopes=["openid", "email"])])
    monkeypatch.setenv("MEDIAPLANE_OIDC_PROVIDERS", value)
    settings = Settings()
    assert [p.name for p in settings.oidc_providers] == ["entra", "google"]
    entra = settings.oidc_providers[0]
    assert entra.scopes == ["openid", "email", "profile"] and not entra.trust_email
    assert entra.client_secret.get_secret_value() == "a-client-secret"
    assert "a-client-secret" not in repr(settings) and "a-client-secret" not in repr(entra)


@pytest.mark.parametrize(
    "providers",
    [
        [_provider(), _provider()],  # two called "entra"
        [_provider(name="Has Space")],
        [_provider(name="")],
        [_provider(discovery_url="ftp://x/")],
        [_provider(scopes=["email"])],
        [_provider(scopes=["openid", 'bad"scope'])],
        [_provider(client_secret=None)],
        [_provider(surprise=1)],
    ],
)
def test_bad_provider_settings_are_refused(providers: list[dict[str, Any]]) -> None:
    with pytest.raises(ValidationError):
        Settings(oidc_providers=providers)  # type: ignore[arg-type]
