"""The viewer's library and devices over HTTP on one real `mediaplane up` (the shared
embedded server): progress, resume and favourites from the watch page's session, playlists
with a JWT, hostile bodies and other users' things refused with a clear 4xx, the /library
page and its forms, and the profile's sessions and app sign-ins (end one, sign out
everywhere else, everywhere)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from itertools import count

import httpx
import pytest

from mediaplane.accounts import Channel, ChannelMember, ChannelRole, Visibility, create_user
from mediaplane.catalog import Asset, AssetStatus
from mediaplane.catalog._models import PlaybackId
from mediaplane.config import Settings
from mediaplane.db import Database
from tests.support import Server

PASSWORD = "correct horse battery"
_n = count()


@dataclass
class World:
    server: Server
    db: Database
    assets: list[str]  # ready, 100 s each, in a channel the users are members of
    playback: list[str]
    hidden: str  # private, in a channel they are no member of


@pytest.fixture(scope="module")
def world(sqlite_server: Server) -> Iterator[World]:
    db = Database(Settings(data_dir=sqlite_server.data_dir).effective_database_url)
    with db.session() as s:
        mine, other = Channel(name="library A"), Channel(name="library B")
        s.add_all([mine, other])
        s.flush()
        assets = []
        for i, channel in enumerate([mine.id, mine.id, mine.id, other.id]):
            asset = Asset(
                title=f"clip {i}",
                channel_id=channel,
                duration=100.0,
                status=AssetStatus.READY,
                visibility=Visibility.PRIVATE,  # only the channel's members may watch them
            )
            asset.playback_ids.append(PlaybackId())
            s.add(asset)
            assets.append(asset)
        s.flush()
        ids = [a.id for a in assets]
        pids = [a.playback_ids[0].id for a in assets]
        channel_id = mine.id
    world = World(sqlite_server, db, ids[:3], pids[:3], ids[3])
    world.channel = channel_id  # type: ignore[attr-defined]
    try:
        yield world
    finally:
        db.dispose()


def _member(w: World) -> str:
    """A new verified viewer in the assets' channel; returns the e-mail address."""
    email = f"lib{next(_n)}@example.org"
    with w.db.session() as s:
        user = create_user(s, email, PASSWORD, "viewer", email_verified=True)
        s.add(
            ChannelMember(
                channel_id=w.channel,  # type: ignore[attr-defined]
                user_id=user.id,
                role=ChannelRole.VIEWER,
            )
        )
    return email


def _csrf(c: httpx.Client, path: str) -> str:
    r = c.get(path)
    assert r.status_code == 200, r.text
    m = re.search(r'(?:name="csrf_token" value|data-csrf)="([^"]+)"', r.text)
    assert m, r.text
    return m.group(1)


def _browser(w: World, email: str, agent: str = "LibraryBrowser/1.0") -> httpx.Client:
    c = httpx.Client(base_url=w.server.url, timeout=30, headers={"User-Agent": agent})
    r = c.post("/signin", data={"csrf_token": _csrf(c, "/signin"), "email": email,
                                "password": PASSWORD, "next": "/library"})  # fmt: skip
    assert r.status_code == 303, r.text
    return c


def _app(w: World, email: str, agent: str = "PhoneApp/3.0") -> tuple[httpx.Client, str]:
    r = httpx.post(
        w.server.url + "/api/v1/auth/token",
        json={"email": email, "password": PASSWORD},
        headers={"User-Agent": agent},
    )
    assert r.status_code == 200, r.text
    data = r.json()["data"]
    c = httpx.Client(
        base_url=w.server.url,
        timeout=30,
        headers={"Authorization": f"Bearer {data['access_token']}"},
    )
    return c, data["refresh_token"]


def _error(r: httpx.Response, status: int, code: str) -> None:
    assert r.status_code == status, r.text
    assert r.json()["error"]["code"] == code, r.text


# --- the watch page's session ---------------------------------------------------------------


def test_the_watch_page_saves_progress_offers_resume_and_favourites(world: World) -> None:
    w, asset = world, world.assets[0]
    with closing(_browser(w, _member(w))) as c:
        page = c.get(f"/watch/{w.playback[0]}")
        assert 'id="library"' in page.text and "/static/library.js" in page.text
        # the QoE snippet gets a keyed hash of the account as its viewer id, never the id
        assert re.search(r'viewerId: "[0-9a-f]{32}"', page.text), page.text[-2000:]
        assert page.headers["cache-control"] == "no-store"
        assert c.get("/static/library.js").status_code == 200
        csrf = _csrf(c, f"/watch/{w.playback[0]}")
        api = {"X-CSRF-Token": csrf}
        r = c.put(f"/api/v1/me/history/{asset}", json={"position_seconds": 42.4}, headers=api)
        assert r.status_code == 200, r.text
        assert r.json()["data"]["resume_position_seconds"] == 42.4
        # the session without its CSRF header is not enough (another site cannot ride it)
        r = c.put(f"/api/v1/me/history/{asset}", json={"position_seconds": 50})
        _error(r, 401, "unauthorized")
        assert c.put(f"/api/v1/me/favourites/{asset}", headers=api).status_code == 201
        assert c.put(f"/api/v1/me/favourites/{asset}", headers=api).status_code == 200
        state = c.get(f"/api/v1/me/library/{asset}", headers=api).json()["data"]
        assert state["favourite"] is True and state["playlist_ids"] == []
        assert state["progress"]["position_seconds"] == 42.4
        library = c.get("/library").text
        assert "Resume from 0:42" in library and f'href="/watch/{w.playback[0]}"' in library
        assert 'id="favourites"' in library
    anonymous = httpx.get(f"{w.server.url}/watch/{w.playback[0]}")
    assert 'id="library"' not in anonymous.text


def test_history_lists_most_recent_first_and_continue_watching(world: World) -> None:
    w = world
    app, _ = _app(w, _member(w))
    with app:
        a, b, c = w.assets
        for asset, at, length in ((a, 10, None), (b, 99, None), (c, 30, 60.0), (a, 20, None)):
            body = {"position_seconds": at} | ({"duration": length} if length else {})
            assert app.put(f"/api/v1/me/history/{asset}", json=body).status_code == 200
        r = app.get("/api/v1/me/history").json()
        assert [e["asset_id"] for e in r["data"]] == [a, c, b]
        assert r["pagination"]["total"] == 3
        finished = r["data"][2]
        assert finished["finished"] and finished["resume_position_seconds"] == 0
        assert r["data"][0]["asset"]["watch_url"] == f"/watch/{w.playback[0]}"
        r = app.get("/api/v1/me/history", params={"continue_watching": "true"}).json()
        assert [e["asset_id"] for e in r["data"]] == [a, c]
        assert app.delete(f"/api/v1/me/history/{a}").status_code == 204
        assert app.get("/api/v1/me/history").json()["pagination"]["total"] == 2
        assert app.delete("/api/v1/me/history").status_code == 204
        assert app.get("/api/v1/me/history").json()["data"] == []


HOSTILE_PROGRESS = [
    (b'{"position_seconds": NaN}', 400),
    (b'{"position_seconds": Infinity}', 400),
    (b'{"position_seconds": 1e309}', 400),
    (b'{"position_seconds": -1}', 400),
    (b'{"position_seconds": 1e12}', 400),
    (b'{"position_seconds": 500}', 400),  # past the asset's 100 s
    (b'{"position_seconds": "12"}', 400),
    (b'{"position_seconds": true}', 400),
    (b'{"position_seconds": 1, "duration": -3}', 400),
    (b'{"position_seconds": 1, "extra": true}', 400),
    (b'{"position_seconds": 1', 400),
    (b"[]", 400),
    (b'{"position_seconds": 1, "pad": "' + b"x" * 20_000 + b'"}', 413),
]


def test_hostile_progress_is_refused(world: World) -> None:
    app, _ = _app(world, _member(world))
    with app:
        for body, status in HOSTILE_PROGRESS:
            r = app.put(
                f"/api/v1/me/history/{world.assets[0]}",
                content=body,
                headers={"Content-Type": "application/json"},
            )
            assert r.status_code == status, (body[:60], r.text)
            assert r.json()["error"]["code"] in {"invalid_request", "payload_too_large"}
        assert app.get("/api/v1/me/history").json()["data"] == []


def test_unknown_and_unseen_assets_and_bad_queries_are_clear_4xx(world: World) -> None:
    app, _ = _app(world, _member(world))
    with app:
        for asset in (world.hidden, "no-such-asset", "x" * 300):
            _error(app.put(f"/api/v1/me/history/{asset}", json={"position_seconds": 1}),
                   404, "not_found")  # fmt: skip
            _error(app.put(f"/api/v1/me/favourites/{asset}"), 404, "not_found")
            _error(app.get(f"/api/v1/me/library/{asset}"), 404, "not_found")
        r = app.put(f"/api/v1/me/history/{world.assets[0]}", content=b"position=1")
        _error(r, 415, "unsupported_media_type")
        _error(app.get("/api/v1/me/history", params={"limit": 0}), 400, "invalid_request")
        _error(app.get("/api/v1/me/favourites", params={"page": -1}), 400, "invalid_request")
        _error(world.server.client().get("/api/v1/me/history"), 403, "not_a_user")


# --- playlists ------------------------------------------------------------------------------


def test_playlists_are_private_ordered_and_editable(world: World) -> None:
    a, b, c = world.assets
    mine, _ = _app(world, _member(world))
    theirs, _ = _app(world, _member(world))
    with mine, theirs:
        r = mine.post("/api/v1/playlists", json={"name": "Sunday", "description": "later"})
        assert r.status_code == 201, r.text
        pid = r.json()["data"]["id"]
        items = f"/api/v1/playlists/{pid}/items"
        assert mine.post(items, json={"asset_id": a}).status_code == 201
        assert mine.post(items, json={"asset_id": b}).status_code == 201
        assert mine.post(items, json={"asset_id": c, "position": 0}).status_code == 201
        r = mine.post(items, json={"asset_id": a, "position": 0})  # a move
        assert r.status_code == 200
        assert [i["asset"]["id"] for i in r.json()["data"]["items"]] == [a, c, b]
        assert mine.delete(f"{items}/{c}").status_code == 204
        r = mine.patch(f"/api/v1/playlists/{pid}", json={"name": "Monday"})
        assert r.json()["data"]["name"] == "Monday" and r.json()["data"]["item_count"] == 2
        [listed] = mine.get("/api/v1/playlists").json()["data"]
        assert (listed["id"], listed["item_count"]) == (pid, 2)
        assert mine.get(f"/api/v1/me/library/{a}").json()["data"]["playlist_ids"] == [pid]
        # another user's playlist does not exist for them, whatever they try
        assert theirs.get("/api/v1/playlists").json()["data"] == []
        _error(theirs.get(f"/api/v1/playlists/{pid}"), 404, "not_found")
        _error(theirs.patch(f"/api/v1/playlists/{pid}", json={"name": "x"}), 404, "not_found")
        _error(theirs.post(items, json={"asset_id": a}), 404, "not_found")
        _error(theirs.delete(f"{items}/{a}"), 404, "not_found")
        _error(theirs.delete(f"/api/v1/playlists/{pid}"), 404, "not_found")
        # hostile bodies
        for body in ({"name": ""}, {"name": "x" * 201}, {"name": 5}, {"name": "a", "owner": "b"}):
            _error(mine.post("/api/v1/playlists", json=body), 400, "invalid_request")
        _error(mine.post(items, json={"asset_id": a, "position": -1}), 400, "invalid_request")
        _error(mine.post(items, json={"asset_id": world.hidden}), 404, "not_found")
        assert mine.delete(f"/api/v1/playlists/{pid}").status_code == 204
        _error(mine.get(f"/api/v1/playlists/{pid}"), 404, "not_found")


def test_the_library_page_forms(world: World) -> None:
    email = _member(world)
    assert httpx.get(world.server.url + "/library").status_code == 303  # signed out
    with closing(_browser(world, email)) as c:
        csrf = _csrf(c, "/library")
        r = c.post("/library/playlists", data={"csrf_token": csrf, "name": "From the page"})
        assert r.status_code == 303 and r.headers["location"] == "/library"
        page = c.get("/library").text
        assert "From the page" in page
        pid = re.search(r'data-playlist="([^"]+)"', page)
        assert pid
        assert c.post("/library/playlists", data={"name": "no csrf"}).status_code == 403
        r = c.post("/library/playlists", data={"csrf_token": csrf, "name": " "})
        assert r.status_code == 400
        r = c.post("/library/playlists/nope/delete", data={"csrf_token": csrf})
        assert r.status_code == 404
        r = c.post(f"/library/playlists/{pid.group(1)}/delete", data={"csrf_token": csrf})
        assert r.status_code == 303
        assert "From the page" not in c.get("/library").text


# --- the profile: sessions and devices ------------------------------------------------------


def _profile(c: httpx.Client) -> str:
    r = c.get("/profile")
    assert r.status_code == 200, r.text
    return r.text


def test_the_profile_lists_and_ends_sessions_and_app_sign_ins(world: World) -> None:
    email = _member(world)
    here = _browser(world, email, "HereBrowser/1.0")
    there = _browser(world, email, "ThereBrowser/2.0")
    app, refresh = _app(world, email, "PhoneApp/3.0")
    with closing(here), closing(there), app:
        page = _profile(here)
        assert "HereBrowser/1.0 (this one)" in page and "ThereBrowser/2.0" in page
        assert "PhoneApp/3.0" in page and "127.0.0.0/24" in page
        assert "127.0.0.1" not in page  # addresses are kept truncated
        csrf = _csrf(here, "/profile")
        family = re.search(r'data-family="([^"]+)"', page)
        assert family
        r = here.post(f"/profile/apps/{family.group(1)}/end", data={"csrf_token": csrf})
        assert r.status_code == 303 and r.headers["location"] == "/profile"
        r = httpx.post(world.server.url + "/api/v1/auth/refresh", json={"refresh_token": refresh})
        assert r.status_code == 401
        assert "PhoneApp/3.0" not in _profile(here)
        r = here.post("/profile/apps/not-mine/end", data={"csrf_token": csrf})
        assert r.status_code == 404
        assert here.post("/profile/signout-others", data={"x": "1"}).status_code == 403  # no CSRF
        _, refresh = _app(world, email, "TabletApp/1.0")
        r = here.post("/profile/signout-others", data={"csrf_token": csrf})
        assert r.status_code == 303 and r.headers["location"] == "/profile"
        assert there.get("/profile").status_code == 303  # signed out
        page = _profile(here)  # this browser stays
        assert "ThereBrowser/2.0" not in page and 'id="no-apps"' in page
        r = httpx.post(world.server.url + "/api/v1/auth/refresh", json={"refresh_token": refresh})
        assert r.status_code == 401
        current = re.search(r'data-session="([^"]+)" class="current"', page)
        assert current
        r = here.post(f"/profile/sessions/{current.group(1)}/end", data={"csrf_token": csrf})
        assert r.status_code == 303 and r.headers["location"] == "/signin"
        assert here.get("/profile").status_code == 303


def test_sign_out_everywhere_ends_apps_too(world: World) -> None:
    email = _member(world)
    _, refresh = _app(world, email)
    with closing(_browser(world, email)) as c:
        r = c.post("/profile/signout-everywhere", data={"csrf_token": _csrf(c, "/profile")})
        assert r.status_code == 303 and r.headers["location"] == "/signin"
        assert c.get("/profile").status_code == 303
    r = httpx.post(world.server.url + "/api/v1/auth/refresh", json={"refresh_token": refresh})
    assert r.status_code == 401
