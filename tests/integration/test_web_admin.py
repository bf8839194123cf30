"""The studio, the upload page with a session, the admin pages (users, API keys, signing
keys) and the watch page of a signed playback id, over HTTP on one real `mediaplane up`;
CSRF refused on every admin form; a disabled user's session, refresh token, access token
and API key stop at once."""

from __future__ import annotations

import base64
import re
import time
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass

import httpx
import jwt
import pytest

from mediaplane.accounts import ApiKey, KeySource, create_user, find_user
from mediaplane.config import Settings
from mediaplane.db import Database
from tests.support import Server, embedded_backend, make_clip, start_server

PASSWORD = "correct horse battery"
ADMIN = "boss@example.org"
CREATOR = "maker@example.org"
VIEWER = "watcher@example.org"


@dataclass
class Site:
    srv: Server
    db: Database

    def user_id(self, email: str) -> str:
        with self.db.session() as s:
            user = find_user(s, email)
            assert user is not None
            return user.id


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    server = start_server(tmp_path_factory.mktemp("web-admin"), embedded_backend())
    db = Database(Settings(data_dir=server.data_dir).effective_database_url)
    with db.session() as s:
        for email, role in ((ADMIN, "admin"), (CREATOR, "creator"), (VIEWER, "viewer")):
            create_user(s, email, PASSWORD, role, email_verified=True)
    try:
        yield Site(server, db)
    finally:
        db.dispose()
        server.stop()


def _csrf(c: httpx.Client, path: str) -> str:
    r = c.get(path)
    assert r.status_code == 200, r.text
    m = re.search(r'name="csrf_token" value="([^"]+)"', r.text)
    assert m, r.text
    return m.group(1)


def _sign_in(site: Site, email: str, password: str = PASSWORD) -> httpx.Client:
    c = httpx.Client(base_url=site.srv.url, timeout=60)
    data = {"email": email, "password": password, "csrf_token": _csrf(c, "/signin")}
    r = c.post("/signin", data=data)
    assert r.status_code == 303, r.text
    return c


def _post(c: httpx.Client, path: str, form_page: str, **fields: str) -> httpx.Response:
    return c.post(path, data={**fields, "csrf_token": _csrf(c, form_page)})


@pytest.fixture(scope="module")
def admin(site: Site) -> Iterator[httpx.Client]:
    with closing(_sign_in(site, ADMIN)) as c:
        yield c


@pytest.fixture(scope="module")
def creator(site: Site) -> Iterator[httpx.Client]:
    with closing(_sign_in(site, CREATOR)) as c:
        yield c


# --- who gets the admin pages -------------------------------------------------------------

PAGES = ["/admin", "/admin/users", "/admin/api-keys", "/admin/signing-keys"]


def _forms(site: Site) -> list[str]:
    """Every admin form's action (ids that exist: the viewer, a key to revoke)."""
    viewer = site.user_id(VIEWER)
    with site.srv.client() as c:
        key = c.post("/api/v1/api-keys", json={"scope": "read", "name": "victim"}).json()
        signing = c.post("/api/v1/signing-keys").json()
    return [
        f"/admin/users/{viewer}/role",
        f"/admin/users/{viewer}/disable",
        f"/admin/users/{viewer}/enable",
        "/admin/api-keys",
        f"/admin/api-keys/{key['data']['id']}/revoke",
        "/admin/signing-keys",
        f"/admin/signing-keys/{signing['data']['id']}/revoke",
    ]


def test_admin_pages_answer_admins_only(
    site: Site, admin: httpx.Client, creator: httpx.Client
) -> None:
    with httpx.Client(base_url=site.srv.url, timeout=60) as anonymous:
        for path in PAGES:
            r = anonymous.get(path)
            assert r.status_code == 303 and r.headers["location"].startswith("/signin?next="), path
    for path in PAGES:
        assert creator.get(path).status_code == 404, path
        r = admin.get(path, follow_redirects=True)
        assert r.status_code == 200 and 'id="admin-nav"' in r.text, path
        assert r.headers["cache-control"] == "no-store"
    csrf = _csrf(creator, "/profile")  # a good token of the creator's own session
    with httpx.Client(base_url=site.srv.url, timeout=60) as anonymous:
        for action in _forms(site):
            assert (
                creator.post(action, data={"csrf_token": csrf, "role": "admin"}).status_code == 404
            )
            assert anonymous.post(action, data={"role": "admin"}).status_code == 404
    with site.db.session() as s:
        viewer = find_user(s, VIEWER)
        assert viewer is not None and viewer.role == "viewer" and not viewer.disabled


def test_every_admin_form_refuses_a_missing_or_foreign_csrf_token(
    site: Site, admin: httpx.Client, creator: httpx.Client
) -> None:
    foreign = _csrf(creator, "/profile")  # another session's token
    actions = _forms(site)
    with site.db.session() as s:
        keys_before = s.query(ApiKey).count()
    for action in actions:
        for token in (None, foreign, "x" * 64):
            data = {"role": "admin", "scope": "admin"} | ({"csrf_token": token} if token else {})
            r = admin.post(action, data=data)
            assert r.status_code == 403 and "expired" in r.text, (action, token, r.text)
        r = admin.post(action, json={"csrf_token": _csrf(admin, "/admin/users")})
        assert r.status_code == 415, action  # not a form
    with site.db.session() as s:
        viewer = find_user(s, VIEWER)
        assert viewer is not None and viewer.role == "viewer" and not viewer.disabled
        assert s.query(ApiKey).count() == keys_before
        assert s.query(ApiKey).filter(ApiKey.revoked_at.is_not(None)).count() == 0


# --- users --------------------------------------------------------------------------------


def test_admin_searches_users_changes_a_role_and_disables_and_enables(
    site: Site, admin: httpx.Client
) -> None:
    page = admin.get("/admin/users", params={"q": "WATCH"}).text
    assert VIEWER in page and CREATOR not in page and ADMIN not in page
    assert VIEWER not in admin.get("/admin/users", params={"q": "_atcher"}).text  # no wildcard
    viewer = site.user_id(VIEWER)
    r = _post(admin, f"/admin/users/{viewer}/role", "/admin/users", role="moderator", q="watch")
    assert r.status_code == 303 and r.headers["location"] == "/admin/users?q=watch"
    assert f'data-user-id="{viewer}" data-role="moderator"' in admin.get("/admin/users").text
    r = _post(admin, f"/admin/users/{viewer}/role", "/admin/users", role="emperor")
    assert r.status_code == 400 and "Unknown role" in r.text
    r = _post(admin, "/admin/users/nobody/disable", "/admin/users")
    assert r.status_code == 404
    me = site.user_id(ADMIN)
    r = _post(admin, f"/admin/users/{me}/disable", "/admin/users")
    assert r.status_code == 400 and "your own" in r.text
    r = _post(admin, f"/admin/users/{me}/role", "/admin/users", role="viewer")
    assert r.status_code == 400
    with closing(_sign_in(site, VIEWER)) as v:
        assert v.get("/profile").status_code == 200
        assert _post(admin, f"/admin/users/{viewer}/disable", "/admin/users").status_code == 303
        assert v.get("/profile").status_code == 303  # signed out at once
        assert 'data-disabled="true"' in admin.get("/admin/users", params={"q": "watcher"}).text
        assert _post(admin, f"/admin/users/{viewer}/enable", "/admin/users").status_code == 303
        assert v.get("/profile").status_code == 303  # the old session stays ended
    with closing(_sign_in(site, VIEWER)) as v:
        assert v.get("/profile").status_code == 200
    _post(admin, f"/admin/users/{viewer}/role", "/admin/users", role="viewer")


def test_a_disabled_users_session_refresh_token_access_token_and_api_key_stop_at_once(
    site: Site, admin: httpx.Client
) -> None:
    email = "soon-gone@example.org"
    with site.db.session() as s:
        create_user(s, email, PASSWORD, "creator", email_verified=True)
    uid = site.user_id(email)
    browser = _sign_in(site, email)
    csrf = _csrf(browser, "/profile")
    with site.srv.client() as c:
        key = c.post("/api/v1/api-keys", json={"scope": "write", "user_id": uid}).json()["data"]
        pairs = [
            c.post("/api/v1/auth/token", json={"email": email, "password": PASSWORD}).json()
            for _ in range(2)  # two apps: one tries while disabled, one only afterwards
        ]
    access, refresh = pairs[0]["data"]["access_token"], pairs[0]["data"]["refresh_token"]
    other_app = pairs[1]["data"]["refresh_token"]
    api = httpx.Client(base_url=site.srv.url, timeout=60)

    def bearer(token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    assert browser.get("/api/v1/assets", headers={"X-CSRF-Token": csrf}).status_code == 200
    assert api.get("/api/v1/assets", headers=bearer(key["key"])).status_code == 200
    assert api.get("/api/v1/assets", headers=bearer(access)).status_code == 200

    r = _post(admin, f"/admin/users/{uid}/disable", "/admin/users")
    assert r.status_code == 303

    assert browser.get("/api/v1/assets", headers={"X-CSRF-Token": csrf}).status_code == 401
    assert browser.get("/profile").status_code == 303
    assert api.get("/api/v1/assets", headers=bearer(key["key"])).status_code == 401
    assert api.get("/api/v1/assets", headers=bearer(access)).status_code == 401
    r = api.post("/api/v1/auth/refresh", json={"refresh_token": refresh})
    assert r.status_code == 401
    r = api.post("/api/v1/auth/token", json={"email": email, "password": PASSWORD})
    assert r.status_code == 401
    # Enabled again: the API key works again (an admin manages it on its page); the session
    # and the app's refresh token stay ended, so a thief's copy does not come back with it.
    assert _post(admin, f"/admin/users/{uid}/enable", "/admin/users").status_code == 303
    assert api.get("/api/v1/assets", headers=bearer(key["key"])).status_code == 200
    assert browser.get("/api/v1/assets", headers={"X-CSRF-Token": csrf}).status_code == 401
    r = api.post("/api/v1/auth/refresh", json={"refresh_token": other_app})
    assert r.status_code == 401
    browser.close()
    api.close()


# --- API keys and signing keys ------------------------------------------------------------


def test_admin_creates_lists_and_revokes_api_keys(site: Site, admin: httpx.Client) -> None:
    r = _post(admin, "/admin/api-keys", "/admin/api-keys", name="ci", scope="write", owner=CREATOR)
    assert r.status_code == 200, r.text
    key = re.search(r'value="(mpk_[^"]+)" id="new-key-value"', r.text)
    assert key, r.text
    secret = key.group(1)
    listing = admin.get("/admin/api-keys").text
    assert secret not in listing and secret[:12] in listing  # by prefix, never the key
    with httpx.Client(base_url=site.srv.url, timeout=60) as c:
        auth = {"Authorization": f"Bearer {secret}"}
        assert c.get("/api/v1/assets", headers=auth).status_code == 200
        with site.db.session() as s:
            row = s.query(ApiKey).filter(ApiKey.prefix == secret[:12]).one()
            assert row.scope == "write" and row.user_id == site.user_id(CREATOR)
            token_row = s.query(ApiKey).filter(ApiKey.source == KeySource.ADMIN_TOKEN).one()
        r = _post(admin, f"/admin/api-keys/{row.id}/revoke", "/admin/api-keys")
        assert r.status_code == 303
        assert c.get("/api/v1/assets", headers=auth).status_code == 401
    r = _post(admin, f"/admin/api-keys/{token_row.id}/revoke", "/admin/api-keys")
    assert r.status_code == 400 and "MEDIAPLANE_ADMIN_TOKEN" in r.text
    with site.srv.client() as c:
        assert c.get("/api/v1/assets").status_code == 200  # the admin token still works
    hostile = (
        {"scope": "root"},
        {"scope": "read", "owner": "nobody@example.org"},
        {"scope": "read", "name": "x" * 201},
        {"scope": "read", "owner": "<script>@x"},
    )
    for bad in hostile:
        r = _post(admin, "/admin/api-keys", "/admin/api-keys", **bad)
        assert r.status_code == 400 and 'id="new-key"' not in r.text, bad
    assert _post(admin, "/admin/api-keys/nope/revoke", "/admin/api-keys").status_code == 404
    r = admin.post(
        "/admin/api-keys",
        content=b"csrf_token=" + b"x" * 20000,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 413


def test_admin_creates_lists_and_revokes_signing_keys(site: Site, admin: httpx.Client) -> None:
    r = _post(admin, "/admin/signing-keys", "/admin/signing-keys")
    assert r.status_code == 200
    kid = re.search(r'id="new-signing-key-id">([a-z0-9]+)<', r.text)
    private = re.search(r'id="new-private-key">([A-Za-z0-9+/=]+)<', r.text)
    assert kid and private, r.text
    listing = admin.get("/admin/signing-keys").text
    assert f'data-key-id="{kid.group(1)}"' in listing and private.group(1) not in listing
    r = _post(admin, f"/admin/signing-keys/{kid.group(1)}/revoke", "/admin/signing-keys")
    assert r.status_code == 303
    assert f'data-key-id="{kid.group(1)}"' not in admin.get("/admin/signing-keys").text
    with site.srv.client() as c:
        ids = [k["id"] for k in c.get("/api/v1/signing-keys").json()["data"]]
    assert kid.group(1) not in ids


# --- studio, public list, upload page, watch page -----------------------------------------


@pytest.fixture(scope="module")
def channel_asset(site: Site, creator: httpx.Client) -> tuple[str, str]:
    """(asset id, channel id): the creator's upload into a channel made in the studio."""
    for bad in ("", "   ", "x" * 201):
        assert _post(creator, "/studio/channels", "/studio", name=bad).status_code == 400
    r = _post(creator, "/studio/channels", "/studio", name="Maker's channel")
    assert r.status_code == 303, r.text
    channel = re.search(r'data-channel-id="([a-z0-9]+)"', creator.get("/studio").text)
    assert channel
    clip = make_clip("web-admin-1s.mp4", seconds=1, size="320x180")
    csrf = _csrf(creator, "/studio")
    with clip.open("rb") as f:
        r = creator.post(
            "/api/v1/assets",
            headers={"X-CSRF-Token": csrf},
            files={"file": ("mine.mp4", f)},
            data={"title": "Maker's first", "channel_id": channel.group(1)},
        )
    assert r.status_code == 201, r.text
    return r.json()["data"]["id"], channel.group(1)


def test_the_studio_lists_the_creators_own_videos_and_the_index_only_public_ones(
    site: Site, creator: httpx.Client, channel_asset: tuple[str, str]
) -> None:
    asset_id, channel_id = channel_asset
    install = site.srv.upload(make_clip("web-admin-1s.mp4", seconds=1, size="320x180"), "Ops")
    with httpx.Client(base_url=site.srv.url, timeout=60) as anonymous:
        index = anonymous.get("/").text
    assert f'data-asset-id="{asset_id}"' in index and f'data-asset-id="{install["id"]}"' in index
    studio = creator.get("/studio").text
    assert f'data-asset-id="{asset_id}"' in studio and "Maker's channel" in studio.replace(
        "&#39;", "'"
    )
    assert f'data-asset-id="{install["id"]}"' not in studio  # the install's, not the maker's
    assert "moderation" not in studio.split(f'data-asset-id="{asset_id}"')[1].split("</tr>")[0]
    with site.srv.client() as c:  # hold the install's asset for moderation, sign the maker's
        db_asset = c.get(f"/api/v1/assets/{asset_id}").json()["data"]
        public_pid = db_asset["playback_ids"][0]["id"]
        assert (
            c.post(f"/api/v1/assets/{asset_id}/playback-ids", json={"policy": "signed"}).status_code
            == 201
        )
        assert c.delete(f"/api/v1/assets/{asset_id}/playback-ids/{public_pid}").status_code == 204
    with httpx.Client(base_url=site.srv.url, timeout=60) as anonymous:
        index = anonymous.get("/").text
        partial = anonymous.get("/_partials/assets").text
    assert f'data-asset-id="{asset_id}"' not in index + partial  # signed only: not listed
    studio = creator.get("/studio").text
    row = studio.split(f'data-asset-id="{asset_id}"')[1].split("</tr>")[0]
    assert 'data-policy="signed"' in row and "public · signed playback only" in row
    assert creator.get("/_partials/studio").status_code == 200
    with httpx.Client(base_url=site.srv.url, timeout=60) as anonymous:
        r = anonymous.get("/studio")
        assert r.status_code == 303 and r.headers["location"] == "/signin?next=/studio"
    assert channel_id in studio


def test_the_upload_page_offers_the_users_channels_instead_of_a_token(
    site: Site, creator: httpx.Client, channel_asset: tuple[str, str]
) -> None:
    _, channel_id = channel_asset
    page = creator.get("/upload").text
    assert f'<option value="{channel_id}">' in page and 'id="token"' not in page
    assert 'id="signed-in" data-csrf="' in page
    with closing(_sign_in(site, VIEWER)) as v:
        page = v.get("/upload").text
        assert 'id="no-channel"' in page and 'id="start" type="button" disabled' in page
        assert 'id="new-channel"' not in v.get("/studio").text  # viewers make no channels
        assert _post(v, "/studio/channels", "/profile", name="Mine now").status_code == 403
    with httpx.Client(base_url=site.srv.url, timeout=60) as anonymous:
        assert 'id="token"' in anonymous.get("/upload").text  # an operator's pasted key


def test_the_watch_page_of_a_signed_playback_id(
    site: Site, admin: httpx.Client, creator: httpx.Client, channel_asset: tuple[str, str]
) -> None:
    asset_id, _ = channel_asset
    done = site.srv.wait(asset_id, playable=True)
    assert done["status"] == "ready", done
    with site.srv.client() as c:
        r = c.post(f"/api/v1/assets/{asset_id}/playback-ids", json={"policy": "signed"})
        assert r.status_code == 201, r.text
    signed = r.json()["data"]["id"]
    with site.srv.client() as c:
        key = c.post("/api/v1/signing-keys").json()["data"]
    pem = base64.b64decode(key["private_key"])

    def token_for(sub: str, aud: str = "v", ttl: int = 600) -> str:
        claims = {"sub": sub, "aud": aud, "exp": int(time.time()) + ttl}
        return jwt.encode(claims, pem, algorithm="RS256", headers={"kid": key["id"]})

    given = token_for(signed)
    with httpx.Client(base_url=site.srv.url, timeout=60) as anonymous:
        r = anonymous.get(f"/watch/{signed}")
        assert r.status_code == 403 and "playback token" in r.text
        r = anonymous.get(f"/watch/{signed}", params={"token": given})
        assert r.status_code == 200 and f"manifest.mpd?token={given}" in r.text
        assert r.headers["cache-control"] == "no-store"
        assert r.headers["referrer-policy"] == "no-referrer"
        assert "poster=" not in r.text  # the token is for the video, not the thumbnail
        bad = {
            "token_expired": token_for(signed, ttl=-60),
            "another video": token_for("someotherplaybackid"),
            "another use": token_for(signed, aud="t"),
            "not a JWT": "given.by.someone",
        }
        for why, token in bad.items():
            r = anonymous.get(f"/watch/{signed}", params={"token": token})
            assert r.status_code == 403 and 'id="refusal"' in r.text, why
            assert "manifest.mpd" not in r.text, why
    with closing(_sign_in(site, VIEWER)) as v:  # signed in, but no member of the channel
        assert v.get(f"/watch/{signed}").status_code == 403
    r = creator.get(f"/watch/{signed}")
    assert r.status_code == 200, r.text
    token = re.search(r"manifest\.mpd\?token=([\w.-]+)", r.text)
    poster = re.search(r"thumbnail\.jpg\?width=1280&amp;token=([\w.-]+)", r.text)
    assert token and poster, r.text
    with httpx.Client(base_url=site.srv.url, timeout=60) as anonymous:
        assert anonymous.get(f"/play/{signed}/master.m3u8").status_code == 403
        master = anonymous.get(f"/play/{signed}/master.m3u8", params={"token": token.group(1)})
        assert master.status_code == 200 and "st=" in master.text
        thumb = anonymous.get(
            f"/play/{signed}/thumbnail.jpg", params={"width": 320, "token": poster.group(1)}
        )
        assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
    assert "(this server's own, for the watch page)" in admin.get("/admin/signing-keys").text
