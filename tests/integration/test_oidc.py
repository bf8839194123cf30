"""OpenID Connect sign-in end to end: a real `mediaplane up` and a real provider (Authlib's
server side, tests/oidc_provider.py) on loopback; the browser's redirects followed by hand."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import httpx
import jwt
import pytest
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from mediaplane.accounts import Identity, TokenPolicy, User, verify_access_token
from tests.oidc_provider import Provider, run_provider
from tests.support import Server, embedded_backend, free_port, start_server

FLOW_COOKIE = "mp_oidc_flow"
TIMEOUT = 3.0


@pytest.fixture(scope="module")
def provider() -> Iterator[Provider]:
    with run_provider() as p:
        yield p


@pytest.fixture(scope="module")
def silent() -> Iterator[int]:
    """A port that accepts connections and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield sock.getsockname()[1]


@pytest.fixture(scope="module")
def srv(
    tmp_path_factory: pytest.TempPathFactory, provider: Provider, silent: int
) -> Iterator[Server]:
    def nowhere(name: str, port: int) -> dict[str, Any]:
        return provider.settings(
            name, discovery_url=f"http://127.0.0.1:{port}/.well-known/openid-configuration"
        )

    providers = [
        provider.settings("test", title="Test provider"),
        provider.settings("trusting", trust_email=True),
        nowhere("down", free_port()),
        nowhere("silent", silent),
    ]
    server = start_server(
        tmp_path_factory.mktemp("oidc"),
        embedded_backend(),
        oidc_providers=json.dumps(providers),
        oidc_timeout_seconds=str(TIMEOUT),
    )
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(autouse=True)
def _honest(provider: Provider) -> Iterator[None]:
    yield
    provider.id_token_overrides.clear()


def _db(srv: Server) -> Session:
    return Session(create_engine(f"sqlite:///{srv.data_dir / 'mediaplane.sqlite'}"))


def _app(srv: Server) -> httpx.Client:
    return httpx.Client(base_url=srv.url, timeout=30, follow_redirects=False)


def _error(r: httpx.Response, status: int, code: str) -> None:
    assert r.status_code == status, r.text
    assert r.json()["error"]["code"] == code, r.text
    assert r.json()["error"]["message"]


def _to_callback(app: httpx.Client, sub: str, provider: str = "test", **query: str) -> str:
    """Start a sign-in and log in at the provider as ``sub``: the callback URL it sends."""
    start = app.get(f"/auth/oidc/{provider}/start", params=query)
    assert start.status_code == 303, start.text
    login = start.headers["location"]
    assert httpx.get(login, timeout=10).text.count('name="sub"') == 1  # the login form
    answer = httpx.post(login, data={"sub": sub}, timeout=10)
    assert answer.status_code == 302, answer.text
    callback: str = answer.headers["location"]
    assert callback.startswith(f"{app.base_url}/auth/oidc/{provider}/callback?")
    return callback


def _sign_in(srv: Server, sub: str, provider: str = "test", **query: str) -> httpx.Response:
    with _app(srv) as app:
        return app.get(_to_callback(app, sub, provider, **query))


def _user_of(r: httpx.Response) -> dict[str, Any]:
    assert r.status_code == 200, r.text
    data: dict[str, Any] = r.json()["data"]
    assert data["token_type"] == "Bearer" and data["refresh_token"].startswith("mprt_")
    return data


def _create_local(srv: Server, email: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "mediaplane", "admin", "create-user", email, "--password-stdin"],
        input="a-local-password\n",
        env=srv.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert done.returncode == 0, done.stderr
    with _db(srv) as s:
        return s.scalars(select(User.id).where(User.email == email)).one()


def _identities(srv: Server, sub: str) -> list[Identity]:
    with _db(srv) as s:
        return list(s.scalars(select(Identity).where(Identity.sub == sub)))


def test_the_providers_are_listed(srv: Server) -> None:
    with _app(srv) as app:
        r = app.get("/auth/oidc")
    assert r.status_code == 200
    names = {p["name"]: p for p in r.json()["data"]}
    assert names["test"] == {
        "name": "test",
        "title": "Test provider",
        "start_url": "/auth/oidc/test/start",
    }
    assert "client_secret" not in r.text and "provider-secret" not in r.text


def test_start_sends_state_nonce_and_an_s256_challenge(srv: Server, provider: Provider) -> None:
    with _app(srv) as app:
        r = app.get("/auth/oidc/test/start")
    assert r.status_code == 303
    location = urlsplit(r.headers["location"])
    assert f"{location.scheme}://{location.netloc}" == provider.issuer
    q = {k: v[0] for k, v in parse_qs(location.query).items()}
    assert q["response_type"] == "code" and q["client_id"] == provider.client_id
    assert q["redirect_uri"] == f"{srv.url}/auth/oidc/test/callback"
    assert q["scope"].split() == ["openid", "email", "profile"]
    assert q["code_challenge_method"] == "S256"
    assert len(q["state"]) >= 32 and len(q["nonce"]) >= 32
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "samesite=lax" in cookie.lower()
    assert "Path=/auth/oidc" in cookie
    flow = jwt.decode(r.cookies[FLOW_COOKIE], options={"verify_signature": False})
    assert flow["s"] == q["state"] and flow["n"] == q["nonce"]
    assert create_s256_code_challenge(flow["v"]) == q["code_challenge"]


def test_first_sign_in_creates_the_user_and_the_second_reuses_it(
    srv: Server, provider: Provider
) -> None:
    provider.users["alice-sub"] = {"email": "Alice@Example.com", "email_verified": True}
    first = _user_of(_sign_in(srv, "alice-sub"))
    assert first["user"]["email"] == "alice@example.com"
    assert first["user"]["role"] == "viewer"
    secret = (srv.data_dir / "secret-key").read_text().strip()
    claims = verify_access_token(TokenPolicy(secret), first["access_token"])
    assert claims.user_id == first["user"]["id"]
    [identity] = _identities(srv, "alice-sub")
    assert identity.iss == provider.issuer and identity.user_id == first["user"]["id"]
    with _db(srv) as s:
        user = s.get(User, first["user"]["id"])
        assert user is not None and user.email_verified and user.password_hash is None

    # The address changed at the provider: iss + sub still find the same account.
    provider.users["alice-sub"] = {"email": "alice.new@example.com", "email_verified": True}
    second = _user_of(_sign_in(srv, "alice-sub"))
    assert second["user"]["id"] == first["user"]["id"]
    assert len(_identities(srv, "alice-sub")) == 1


def test_a_verified_email_links_to_the_existing_account(srv: Server, provider: Provider) -> None:
    local = _create_local(srv, "bob@example.com")
    provider.users["bob-sub"] = {"email": "BOB@example.com", "email_verified": True}
    assert _user_of(_sign_in(srv, "bob-sub"))["user"]["id"] == local
    assert [i.user_id for i in _identities(srv, "bob-sub")] == [local]


def test_an_unverified_email_never_links_to_an_existing_account(
    srv: Server, provider: Provider
) -> None:
    local = _create_local(srv, "carol@example.com")
    for claims in ({"email_verified": False}, {}, {"email_verified": "true"}):
        provider.users["mallory-sub"] = {"email": "carol@example.com", **claims}
        _error(_sign_in(srv, "mallory-sub"), 403, "oidc_email_unverified")
    assert _identities(srv, "mallory-sub") == []
    with _db(srv) as s:
        assert s.scalars(select(User.id).where(User.email == "carol@example.com")).all() == [local]


def test_an_unverified_new_address_makes_no_account(srv: Server, provider: Provider) -> None:
    provider.users["dave-sub"] = {"email": "dave@example.com", "email_verified": False}
    _error(_sign_in(srv, "dave-sub"), 403, "oidc_email_unverified")
    with _db(srv) as s:
        assert s.scalars(select(User).where(User.email == "dave@example.com")).all() == []
    assert _identities(srv, "dave-sub") == []


def test_a_trusted_provider_links_by_email_without_the_claim(
    srv: Server, provider: Provider
) -> None:
    local = _create_local(srv, "erin@example.com")
    provider.users["erin-sub"] = {"email": "erin@example.com"}
    assert _user_of(_sign_in(srv, "erin-sub", "trusting"))["user"]["id"] == local


def test_no_email_is_a_clear_error(srv: Server, provider: Provider) -> None:
    provider.users["ghost-sub"] = {}
    _error(_sign_in(srv, "ghost-sub"), 400, "oidc_no_email")


def test_next_redirects_after_sign_in_and_an_open_redirect_is_refused(
    srv: Server, provider: Provider
) -> None:
    provider.users["frank-sub"] = {"email": "frank@example.com", "email_verified": True}
    r = _sign_in(srv, "frank-sub", next="/me?tab=history")
    assert r.status_code == 303 and r.headers["location"] == "/me?tab=history"
    # a browser sign-in opens a web session, like a local one (HttpOnly, SameSite=Lax)
    cookie = r.headers["set-cookie"]
    assert "mp_session=" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie
    assert len(_identities(srv, "frank-sub")) == 1
    with _app(srv) as app:
        for bad in ("https://evil.example/", "//evil.example", "/\\evil.example", "me"):
            _error(app.get("/auth/oidc/test/start", params={"next": bad}), 400, "invalid_next")


def _tamper(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    q = {k: v[0] for k, v in parse_qs(parts.query).items()} | changes
    return urlunsplit(parts._replace(query=urlencode(q)))


def test_a_tampered_state_is_refused(srv: Server, provider: Provider) -> None:
    provider.users["henry-sub"] = {"email": "henry@example.com", "email_verified": True}
    with _app(srv) as app:
        callback = _to_callback(app, "henry-sub")
        _error(app.get(_tamper(callback, state="forged")), 400, "oidc_state_mismatch")
        _error(app.get(_tamper(callback, state="")), 400, "oidc_state_mismatch")
    with _app(srv) as stranger:  # the callback without the browser's flow cookie
        _error(stranger.get(callback), 400, "oidc_state_missing")
    with _app(srv) as forger:
        forger.cookies.set(FLOW_COOKIE, "eyJhbGciOiJub25lIn0.e30.", path="/auth/oidc")
        _error(forger.get(callback), 400, "oidc_state_missing")
    assert _identities(srv, "henry-sub") == []


def test_a_replayed_code_is_refused(srv: Server, provider: Provider) -> None:
    provider.users["ivy-sub"] = {"email": "ivy@example.com", "email_verified": True}
    with _app(srv) as app:
        callback = _to_callback(app, "ivy-sub")
        cookie = app.cookies[FLOW_COOKIE]
        _user_of(app.get(callback))
        assert FLOW_COOKIE not in app.cookies  # spent: the response deleted it
    with _app(srv) as replay:
        replay.cookies.set(FLOW_COOKIE, cookie, path="/auth/oidc")
        _error(replay.get(callback), 400, "oidc_code_rejected")


def test_a_denied_sign_in_says_so(srv: Server) -> None:
    with _app(srv) as app:
        start = app.get("/auth/oidc/test/start")
        state = parse_qs(urlsplit(start.headers["location"]).query)["state"][0]
        r = app.get("/auth/oidc/test/callback", params={"error": "access_denied", "state": state})
    _error(r, 400, "oidc_denied")


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"nonce": "not-the-nonce-we-sent"}, "oidc_nonce_mismatch"),
        ({"aud": "another-client"}, "oidc_wrong_audience"),
        ({"iss": "http://127.0.0.1:1"}, "oidc_wrong_issuer"),
        ({"exp": int(time.time()) - 3600, "iat": int(time.time()) - 7200}, "oidc_token_expired"),
    ],
)
def test_a_bad_id_token_is_refused(
    srv: Server, provider: Provider, overrides: dict[str, Any], code: str
) -> None:
    provider.users["judy-sub"] = {"email": "judy@example.com", "email_verified": True}
    provider.id_token_overrides.update(overrides)
    _error(_sign_in(srv, "judy-sub"), 401, code)
    assert _identities(srv, "judy-sub") == []


def test_unknown_provider_is_404(srv: Server) -> None:
    with _app(srv) as app:
        _error(app.get("/auth/oidc/nope/start"), 404, "not_found")
        _error(app.get("/auth/oidc/nope/callback?code=x&state=y"), 404, "not_found")


@pytest.mark.parametrize("name", ["down", "silent"])
def test_a_provider_that_does_not_answer_is_a_bounded_502(srv: Server, name: str) -> None:
    with _app(srv) as app:
        began = time.monotonic()
        r = app.get(f"/auth/oidc/{name}/start")
        took = time.monotonic() - began
    _error(r, 502, "oidc_provider_unavailable")
    assert took < TIMEOUT + 2
