"""Accounts in the browser, over HTTP on a real `mediaplane up`: sign-up with the link from
the log, verification, sign-in, sessions, sign-out (everywhere), reset, CSRF on every form,
hostile bodies, the sign-in brake, open redirects, and the API called with a session."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest

from mediaplane.accounts import find_user, set_disabled
from mediaplane.config import Settings
from mediaplane.db import Database
from tests.support import Server, embedded_backend, start_server

PASSWORD = "correct horse battery"
FORMS = [
    "/signup",
    "/signin",
    "/signout",
    "/reset",
    "/reset/confirm",
    "/profile/signout-everywhere",
]


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_server(
        tmp_path_factory.mktemp("web-accounts"),
        embedded_backend(),
        signin_failures_per_account="3",
        signin_failures_per_address="1000",
        signin_lockout_seconds="30",
    )
    try:
        yield server
    finally:
        server.stop()


def _browser(server: Server, agent: str = "TestBrowser/1.0") -> httpx.Client:
    return httpx.Client(base_url=server.url, timeout=30, headers={"User-Agent": agent})


def _csrf(c: httpx.Client, path: str = "/signin") -> str:
    r = c.get(path)
    assert r.status_code == 200, r.text
    m = re.search(r'name="csrf_token" value="([^"]+)"', r.text)
    assert m, r.text
    return m.group(1)


def _post(c: httpx.Client, path: str, csrf: str | None, **fields: str) -> httpx.Response:
    data = dict(fields) | ({"csrf_token": csrf} if csrf is not None else {})
    return c.post(path, data=data)


def _last_link(server: Server, kind: str) -> str:
    links = re.findall(rf'"link": "(http://[^"]+/{kind}\?token=[^"]+)"', server.log())
    assert links, server.log()
    return links[-1]


def _sign_up_verified(server: Server, email: str) -> None:
    with _browser(server) as c:
        r = _post(c, "/signup", _csrf(c, "/signup"), email=email, password=PASSWORD)
        assert r.status_code == 200, r.text
        link = _last_link(server, "verify")
        assert c.get(link.removeprefix(server.url)).status_code == 200


def _sign_in(server: Server, email: str, agent: str = "TestBrowser/1.0") -> httpx.Client:
    c = _browser(server, agent)
    r = _post(c, "/signin", _csrf(c), email=email, password=PASSWORD, next="/profile")
    assert r.status_code == 303, r.text
    return c


def _db(server: Server) -> Database:
    return Database(Settings(data_dir=server.data_dir).effective_database_url)


def _create_admin(server: Server, email: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "mediaplane", "admin", "create-user", email]
        + ["--role", "admin", "--password-stdin"],
        input=PASSWORD + "\n",
        env=server.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )


def test_sign_up_verify_sign_in_profile_and_sign_out(srv: Server) -> None:
    email = "walk@example.org"
    with _browser(srv) as c:
        r = _post(c, "/signup", _csrf(c, "/signup"), email=email, password=PASSWORD)
        assert r.status_code == 200 and "Check your e-mail" in r.text
        assert r.headers["cache-control"] == "no-store"
        link = _last_link(srv, "verify")
        assert email not in srv.log() and PASSWORD not in srv.log()
        # unverified: refused, with a way forward
        r = _post(c, "/signin", _csrf(c), email=email, password=PASSWORD)
        assert r.status_code == 403 and "Confirm your e-mail" in r.text
        assert c.get(link.removeprefix(srv.url)).status_code == 200
        assert c.get(link.removeprefix(srv.url)).status_code == 400  # used once
        r = _post(c, "/signin", _csrf(c), email=email, password=PASSWORD, next="/profile")
        assert r.status_code == 303 and r.headers["location"] == "/profile"
        cookie = r.headers["set-cookie"]
        assert cookie.startswith("mp_session=") and "HttpOnly" in cookie
        assert "SameSite=lax" in cookie and "Path=/" in cookie and "Secure" not in cookie
        session_value = c.cookies["mp_session"]
        r = c.get("/profile")
        assert r.status_code == 200 and email in r.text and "TestBrowser/1.0" in r.text
        # signing in again from the same browser replaces its session, it does not add one
        r = _post(c, "/signin", _csrf(c), email=email, password=PASSWORD)
        assert r.status_code == 303 and c.cookies["mp_session"] != session_value
        assert c.get("/profile").text.count("TestBrowser/1.0") == 1
        session_value = c.cookies["mp_session"]
        r = _post(c, "/signout", _csrf(c, "/profile"))
        assert r.status_code == 303 and r.headers["location"] == "/signin"
        assert c.get("/profile").status_code == 303
    # the old cookie value is dead on the server, not only forgotten by the browser
    with _browser(srv) as c:
        c.cookies.set("mp_session", session_value)
        assert c.get("/profile").status_code == 303


def test_the_session_cookie_is_secure_behind_an_https_proxy(srv: Server) -> None:
    _sign_up_verified(srv, "secure@example.org")
    with _browser(srv) as c:
        csrf = _csrf(c)
        r = c.post(
            "/signin",
            data={"csrf_token": csrf, "email": "secure@example.org", "password": PASSWORD},
            headers={"X-Forwarded-Proto": "https"},
        )
        assert r.status_code == 303 and "Secure" in r.headers["set-cookie"]


@pytest.mark.parametrize("path", FORMS)
def test_every_form_refuses_a_missing_wrong_or_foreign_csrf_token(srv: Server, path: str) -> None:
    with _browser(srv) as c, _browser(srv) as other:
        mine, theirs = _csrf(c), _csrf(other)
        fields = {"email": "x@example.org", "password": PASSWORD, "token": "t"}
        for token in (None, "", "0" * 64, theirs, mine + "0", "x" * 5000):
            r = _post(c, path, token, **fields)
            assert r.status_code in (403, 400), (token, r.status_code, r.text)
            assert "mp_session" not in r.headers.get("set-cookie", "")
        # a cookie-less request (another site's form, cookies withheld) is refused too
        with _browser(srv) as bare:
            assert _post(bare, path, mine, **fields).status_code == 403


@pytest.mark.parametrize("path", FORMS)
def test_hostile_form_bodies_are_refused(srv: Server, path: str) -> None:
    with _browser(srv) as c:
        csrf = _csrf(c)
        url = "application/x-www-form-urlencoded"
        bodies: list[tuple[str, bytes, int]] = [
            ("multipart/form-data; boundary=x", b"--x--", 415),
            ("application/json", b'{"email": "x"}', 415),
            (url, b"a=" + b"x" * 100_000, 413),
            (url, "&".join(f"f{i}=1" for i in range(50)).encode(), 400),
            (url, b"csrf_token=" + csrf.encode() + b"&email=\xff\xfe", 400),
            (url, f"csrf_token={csrf}&email=a%00@example.org".encode(), 400),
            (url, f"csrf_token={csrf}&password={'p' * 5000}".encode(), 400),
        ]
        for kind, body, status in bodies:
            r = c.post(path, content=body, headers={"Content-Type": kind})
            assert r.status_code == status, (path, kind, body[:40], r.text)
            assert "internal_error" not in r.text


@pytest.mark.parametrize(
    ("email", "password"),
    [
        ("a" * 300 + "@example.org", PASSWORD),
        ("not-an-address", PASSWORD),
        ("<script>alert(1)</script>", PASSWORD),
        ("ok@example.org", "short"),
        ("ok@example.org", ""),
        ("", ""),
    ],
)
def test_sign_up_refuses_bad_fields_and_escapes_them(
    srv: Server, email: str, password: str
) -> None:
    with _browser(srv) as c:
        r = _post(c, "/signup", _csrf(c, "/signup"), email=email, password=password)
        assert r.status_code == 400, r.text
        assert "<script>" not in r.text


def test_sign_in_with_garbage_fails_like_a_wrong_password(srv: Server) -> None:
    with _browser(srv) as c:
        csrf = _csrf(c)
        for email, password in (("", ""), ("\u202e@x.org", "x"), ("' OR 1=1 --", "x" * 1024)):
            r = _post(c, "/signin", csrf, email=email, password=password)
            assert r.status_code == 401 and "is not right" in r.text, r.text


@pytest.mark.parametrize(
    "target",
    [
        "//evil.example",
        "https://evil.example/",
        "/\\evil.example",
        "/%2F%2Fevil.example",
        "%2F%2Fevil.example",
        "/%5Cevil.example",
        "/\t/evil.example",
        "javascript:alert(1)",
    ],
)
def test_sign_in_never_redirects_off_the_site(srv: Server, target: str) -> None:
    _sign_up_verified(srv, f"redirect{abs(hash(target))}@example.org")
    with _browser(srv) as c:
        assert "evil" not in c.get("/signin", params={"next": target}).text
        r = _post(
            c,
            "/signin",
            _csrf(c),
            email=f"redirect{abs(hash(target))}@example.org",
            password=PASSWORD,
            next=target,
        )
        assert r.status_code == 303 and r.headers["location"] == "/profile"


def test_sign_in_keeps_a_local_next(srv: Server) -> None:
    _sign_up_verified(srv, "local-next@example.org")
    with _browser(srv) as c:
        r = _post(
            c, "/signin", _csrf(c), email="local-next@example.org", password=PASSWORD,
            next="/upload?x=1",
        )  # fmt: skip
        assert r.status_code == 303 and r.headers["location"] == "/upload?x=1"


def test_repeated_failures_lock_the_account_out(srv: Server) -> None:
    _sign_up_verified(srv, "brute@example.org")
    with _browser(srv) as c:
        csrf = _csrf(c)
        for _ in range(3):
            r = _post(c, "/signin", csrf, email="brute@example.org", password="wrong password")
            assert r.status_code == 401
        r = _post(c, "/signin", csrf, email="BRUTE@example.org", password=PASSWORD)
        assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
        assert "Too many failed sign-ins" in r.text
    # another account is not locked by it
    _sign_up_verified(srv, "bystander@example.org")
    _sign_in(srv, "bystander@example.org").close()


def test_password_reset_works_once_and_ends_old_sessions(srv: Server) -> None:
    email = "forgot@example.org"
    _sign_up_verified(srv, email)
    old = _sign_in(srv, email)
    with _browser(srv) as c:
        known = _post(c, "/reset", _csrf(c, "/reset"), email=email)
        link = _last_link(srv, "reset/confirm")
        unknown = _post(c, "/reset", _csrf(c, "/reset"), email="nobody@example.org")
        assert known.status_code == unknown.status_code == 200
        assert known.text == unknown.text  # says nothing about who has an account
        assert _last_link(srv, "reset/confirm") == link  # no mail for nobody
        path = link.removeprefix(srv.url)
        page = c.get(path)
        assert page.status_code == 200 and page.headers["referrer-policy"] == "no-referrer"
        token = path.split("token=", 1)[1]
        csrf = _csrf(c, path)
        r = _post(c, "/reset/confirm", csrf, token=token, password="short")
        assert r.status_code == 400  # the link survives a refused password
        r = _post(c, "/reset/confirm", csrf, token=token, password="my new password")
        assert r.status_code == 303
        assert c.get(path).status_code == 400
        r = _post(c, "/reset/confirm", csrf, token=token, password="another password")
        assert r.status_code == 400  # replayed
        for bad in ("", "nonsense", "x" * 4000):
            assert _post(c, "/reset/confirm", csrf, token=bad, password=PASSWORD).status_code == 400
        r = _post(c, "/signin", _csrf(c), email=email, password=PASSWORD)
        assert r.status_code == 401
        r = _post(c, "/signin", _csrf(c), email=email, password="my new password")
        assert r.status_code == 303
    assert old.get("/profile").status_code == 303  # the reset signed it out
    old.close()


def test_sign_out_everywhere(srv: Server) -> None:
    email = "everywhere@example.org"
    _sign_up_verified(srv, email)
    a, b = _sign_in(srv, email, "Laptop/1"), _sign_in(srv, email, "Phone/2")
    page = a.get("/profile").text
    assert "Laptop/1" in page and "Phone/2" in page
    r = _post(a, "/profile/signout-everywhere", _csrf(a, "/profile"))
    assert r.status_code == 303
    assert a.get("/profile").status_code == 303 and b.get("/profile").status_code == 303
    a.close()
    b.close()


def test_a_disabled_users_session_stops_at_once(srv: Server) -> None:
    email = "to-disable@example.org"
    _sign_up_verified(srv, email)
    c = _sign_in(srv, email)
    assert c.get("/profile").status_code == 200
    db = _db(srv)
    try:
        with db.session() as s:
            user = find_user(s, email)
            assert user is not None
            set_disabled(s, user.id)
    finally:
        db.dispose()
    assert c.get("/profile").status_code == 303
    with _browser(srv) as fresh:  # and it cannot sign in again
        r = _post(fresh, "/signin", _csrf(fresh), email=email, password=PASSWORD)
        assert r.status_code == 401
    c.close()


def test_the_browser_calls_the_api_with_its_session_and_csrf_header(srv: Server) -> None:
    _create_admin(srv, "admin-web@example.org")
    c = _sign_in(srv, "admin-web@example.org")
    page = c.get("/upload").text
    csrf = re.search(r'data-csrf="([^"]+)"', page)
    assert csrf and 'id="token"' not in page  # no pasted token when signed in
    assert c.get("/api/v1/assets").status_code == 401  # the cookie alone is not enough
    bad = c.get("/api/v1/assets", headers={"X-CSRF-Token": "0" * 64})
    assert bad.status_code == 401
    headers = {"X-CSRF-Token": csrf.group(1)}
    assert c.get("/api/v1/assets", headers=headers).status_code == 200
    r = c.post(
        "/api/v1/uploads",
        headers=headers | {"Tus-Resumable": "1.0.0", "Upload-Length": "10"},
    )
    assert r.status_code == 201, r.text
    # a viewer's session may not use admin routes
    _sign_up_verified(srv, "viewer-web@example.org")
    v = _sign_in(srv, "viewer-web@example.org")
    vcsrf = re.search(r'data-csrf="([^"]+)"', v.get("/upload").text)
    assert vcsrf
    vheaders = {"X-CSRF-Token": vcsrf.group(1)}
    r = v.get("/api/v1/assets", headers=vheaders)  # a viewer sees only what they may watch
    assert r.status_code == 200 and r.json()["pagination"]["total"] == 0
    r = v.get("/api/v1/api-keys", headers=vheaders)
    assert r.status_code == 403 and r.json()["error"]["code"] == "insufficient_scope"
    # signed out, the same header is worth nothing
    _post(c, "/signout", _csrf(c, "/profile"))
    c.cookies.set("mp_session", "gone")
    assert c.get("/api/v1/assets", headers=headers).status_code == 401
    c.close()
    v.close()
