"""Access rules on a real `mediaplane up` (the shared embedded server): an asset's
visibility and access rule through the API, plans and grants (admins), the entitlement
route, the origin deciding with the viewer's session (plan-gated, a rental's window,
private), the carry token naming the viewer, the web index listing, and the admin pages.

One small asset serves every test: each test sets the rule it needs and adds a playback
id of its own (the origin keeps a playback id's lookup a few seconds), and uses accounts
of its own (their grants are kept as long). No sleeping: a rental's start is moved back
in the database.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from mediaplane.accounts import (
    CSRF_FIELD,
    SESSION_COOKIE,
    Channel,
    ChannelMember,
    ChannelRole,
    Grant,
    Role,
    User,
    create_session,
    csrf_for,
)
from mediaplane.config import Settings
from mediaplane.db import Database
from tests.support import Server, make_clip


@dataclass
class World:
    server: Server
    db: Database
    channel: str
    asset: str
    title: str

    def admin(self) -> httpx.Client:
        return self.server.client()

    def person(self, role: str = "viewer", member: ChannelRole | None = None) -> Person:
        """A new account (a member of the asset's channel with ``member``) and a session."""
        email = f"{secrets.token_hex(6)}@example.org"
        with self.db.session() as s:
            user = User(email=email, email_verified=True, role=Role(role))  # no password
            s.add(user)
            s.flush()
            if member is not None:
                s.add(ChannelMember(channel_id=self.channel, user_id=user.id, role=member))
            cookie = create_session(s, user, "test", 3600).token
            user_id = user.id
        return Person(user_id, email, cookie)

    def rule(self, **fields: Any) -> str:
        """Set the asset's rule (PATCH) and return a new public playback id for it."""
        with self.admin() as c:
            r = c.patch(f"/api/v1/assets/{self.asset}", json=fields)
            assert r.status_code == 200, r.text
            for k, v in fields.items():
                assert r.json()["data"][k] == v
            r = c.post(f"/api/v1/assets/{self.asset}/playback-ids", json={"policy": "public"})
            assert r.status_code == 201, r.text
            pid: str = r.json()["data"]["id"]
        return pid

    def grant(self, **body: Any) -> dict[str, Any]:
        with self.admin() as c:
            r = c.post("/api/v1/grants", json=body)
        assert r.status_code == 201, r.text
        data: dict[str, Any] = r.json()["data"]
        return data


@dataclass
class Person:
    user_id: str
    email: str
    cookie: str

    def client(self, server: Server) -> httpx.Client:
        return httpx.Client(base_url=server.url, cookies={SESSION_COOKIE: self.cookie}, timeout=30)


@pytest.fixture(scope="module")
def world(sqlite_server: Server) -> Iterator[World]:
    db = Database(Settings(data_dir=sqlite_server.data_dir).effective_database_url)
    with db.session() as s:
        channel = Channel(name="Access A")
        s.add(channel)
        s.flush()
        channel_id = channel.id
    title = "access-" + secrets.token_hex(4)
    clip = make_clip("access-1s.mp4", seconds=1, size="320x180")
    with sqlite_server.client() as c, clip.open("rb") as f:
        r = c.post(
            "/api/v1/assets",
            files={"file": ("a.mp4", f)},
            data={"title": title, "channel_id": channel_id, "visibility": "unlisted"},
        )
    assert r.status_code == 201, r.text
    created = r.json()["data"]
    assert (created["visibility"], created["access"], created["rental_hours"]) == (
        "unlisted",
        "free",
        None,
    )
    done = sqlite_server.wait(created["id"])
    assert done["status"] == "ready", done
    try:
        yield World(sqlite_server, db, channel_id, created["id"], title)
    finally:
        db.dispose()


def _code(r: httpx.Response) -> str:
    code: str = r.json()["error"]["code"]
    return code


def _master(world: World, pid: str, who: Person | None = None) -> httpx.Response:
    url = f"/play/{pid}/master.m3u8"
    if who is None:
        return httpx.get(world.server.url + url, timeout=30)
    with who.client(world.server) as c:
        return c.get(url)


def _first_uri(playlist: str) -> str:
    return next(line for line in playlist.splitlines() if line and not line.startswith("#"))


def test_rule_fields_are_checked(world: World) -> None:
    url = f"/api/v1/assets/{world.asset}"
    with world.admin() as c:
        for body, code in (
            ({"visibility": "secret"}, "invalid_visibility"),
            ({"access": "pay"}, "invalid_access"),
            ({"access": "free", "rental_hours": 5}, "invalid_rental_hours"),
            ({"access": "rental", "rental_hours": 0}, "invalid_rental_hours"),
            ({"access": "rental", "rental_hours": "x"}, "invalid_rental_hours"),
        ):
            r = c.patch(url, json=body)
            assert r.status_code == 400 and _code(r) == code, (body, r.text)
        r = c.post(  # checked before the URL is
            "/api/v1/assets",
            json={"input": {"url": "http://127.0.0.1:9/x.mp4"}, "visibility": 3},
        )
        assert r.status_code == 400 and _code(r) == "invalid_visibility", r.text
        assert c.get(url).json()["data"]["visibility"] == "unlisted"  # nothing changed


def test_plans_and_grants_api_refuses_bad_input(world: World) -> None:
    with world.admin() as c:
        r = c.post("/api/v1/plans", json={"name": "x", "channel_ids": ["nope"]})
        assert r.status_code == 400 and _code(r) == "invalid_channel", r.text
        r = c.post("/api/v1/plans", json={"name": "x", "max_streams": -1})
        assert r.status_code == 400 and _code(r) == "invalid_max_streams", r.text
        r = c.post("/api/v1/grants", json={"user_id": "nobody", "kind": "purchase"})
        assert r.status_code == 400, r.text
        r = c.post("/api/v1/grants", json={"user_id": "x", "kind": "gift", "asset_id": "a"})
        assert r.status_code == 400, r.text
        assert c.patch("/api/v1/plans/nope", json={"name": "y"}).status_code == 404
        assert c.delete("/api/v1/grants/nope").status_code == 404


def test_a_plan_gated_asset_plays_for_subscribers_only(world: World) -> None:
    pid = world.rule(visibility="public", access="plan")
    r = _master(world, pid)
    assert (r.status_code, _code(r)) == (403, "sign_in_required"), r.text
    stranger = world.person()
    r = _master(world, pid, stranger)
    assert (r.status_code, _code(r)) == (403, "needs_subscription"), r.text
    with world.admin() as c:
        r = c.post(
            "/api/v1/plans",
            json={"name": "Gold", "channel_ids": [world.channel], "max_streams": 2},
        )
        assert r.status_code == 201, r.text
        plan = r.json()["data"]
        assert plan["channel_ids"] == [world.channel] and plan["max_streams"] == 2
        r = c.patch(f"/api/v1/plans/{plan['id']}", json={"name": "Gold+"})
        assert r.json()["data"]["name"] == "Gold+" and r.json()["data"]["max_streams"] == 2
        assert plan["id"] in [p["id"] for p in c.get("/api/v1/plans").json()["data"]]
    fan = world.person()
    grant = world.grant(user_id=fan.user_id, kind="subscription", plan_id=plan["id"])
    assert grant["kind"] == "subscription" and grant["expires_at"] is None
    r = _master(world, pid, fan)
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"].startswith("private")
    media_url = _first_uri(r.text)
    st = media_url.split("st=")[1]
    assert st.split(".")[2] == fan.user_id  # the carry token names the viewer
    media = httpx.get(f"{world.server.url}/play/{pid}/{media_url}", timeout=30)
    assert media.status_code == 200, media.text
    segment = _first_uri(media.text)
    assert "st=" in segment
    seg_url = f"{world.server.url}/play/{pid}/{media_url.split('/')[0]}/{segment}"
    assert httpx.get(seg_url, timeout=30).status_code == 200
    bare = httpx.get(seg_url.split("?")[0], timeout=30)
    assert (bare.status_code, _code(bare)) == (403, "token_missing")
    # the API says the same, with the plan's stream limit
    with fan.client(world.server) as c:
        r = c.get(
            f"/api/v1/assets/{world.asset}/entitlement",
            headers={"X-CSRF-Token": csrf_for(fan.cookie)},
        )
    assert r.status_code == 200, r.text
    assert r.json()["data"] | {"message": ""} == {
        "asset_id": world.asset,
        "allowed": True,
        "reason": None,
        "message": "",
        "max_streams": 2,
        "visibility": "public",
        "access": "plan",
    }
    with stranger.client(world.server) as c:
        r = c.get(
            f"/api/v1/assets/{world.asset}/entitlement",
            headers={"X-CSRF-Token": csrf_for(stranger.cookie)},
        )
    assert r.json()["data"]["reason"] == "needs_subscription", r.text
    # thumbnails stay the shop window
    thumb = httpx.get(f"{world.server.url}/play/{pid}/thumbnail.jpg", timeout=30)
    assert thumb.status_code == 200, thumb.text


def test_a_rental_window_starts_at_first_play_and_expires(world: World) -> None:
    pid = world.rule(visibility="public", access="rental", rental_hours=2)
    renter = world.person()
    r = _master(world, pid, renter)
    assert (r.status_code, _code(r)) == (403, "needs_rental"), r.text
    renter = world.person()  # a fresh account: the origin keeps what it read a few seconds
    grant = world.grant(user_id=renter.user_id, kind="rental", asset_id=world.asset)
    assert grant["started_at"] is None and grant["window_hours"] is None
    before = datetime.now(UTC)
    assert _master(world, pid, renter).status_code == 200
    with world.admin() as c:
        started = c.get(f"/api/v1/grants/{grant['id']}").json()["data"]["started_at"]
    assert started is not None
    assert datetime.fromisoformat(started) >= before - timedelta(seconds=1)
    # the asset's window (2 h) has passed: moved back in the database, no sleeping
    with world.db.session() as s:
        row = s.get(Grant, grant["id"])
        assert row is not None
        row.started_at = datetime.now(UTC) - timedelta(hours=2, seconds=1)
    # the first play dropped the origin's copy of the grants: this reads the new start
    r = _master(world, pid, renter)
    assert (r.status_code, _code(r)) == (403, "rental_expired"), r.text


def test_private_plays_for_channel_members_only_and_is_not_listed(world: World) -> None:
    pid = world.rule(visibility="private", access="free")
    r = _master(world, pid)
    assert (r.status_code, _code(r)) == (404, "private"), r.text
    outsider = world.person()
    r = _master(world, pid, outsider)
    assert (r.status_code, _code(r)) == (404, "private"), r.text
    member = world.person(member=ChannelRole.VIEWER)
    assert _master(world, pid, member).status_code == 200
    assert world.title not in httpx.get(world.server.url + "/", timeout=30).text
    with outsider.client(world.server) as c:
        assert world.title not in c.get("/").text
        assert c.get(f"/watch/{pid}").status_code == 404
        r = c.get(
            f"/api/v1/assets/{world.asset}/entitlement",
            headers={"X-CSRF-Token": csrf_for(outsider.cookie)},
        )
        assert r.status_code == 404, r.text
    with member.client(world.server) as c:
        assert world.title not in c.get("/").text  # the public list; a member's is the studio
        assert world.title in c.get("/studio").text
        assert c.get(f"/watch/{pid}").status_code == 200


def _form(who: Person, **fields: str) -> dict[str, str]:
    return {CSRF_FIELD: csrf_for(who.cookie), **fields}


def test_admin_pages_manage_plans_and_grants(world: World) -> None:
    admin = world.person("admin")
    viewer = world.person()
    srv = world.server
    r = httpx.get(srv.url + "/admin/plans", timeout=30)
    assert r.status_code == 303 and r.headers["location"].startswith("/signin")
    with viewer.client(srv) as c:
        assert c.get("/admin/plans").status_code == 403
        r = c.post("/admin/plans", data=_form(viewer, name="Sneaky"))
        assert r.status_code == 403
    name = "Plan " + secrets.token_hex(3)
    with admin.client(srv) as c:
        assert c.get("/admin/plans").status_code == 200
        r = c.post("/admin/plans", data={"name": name})  # no CSRF token
        assert r.status_code == 403 and name not in c.get("/admin/plans").text
        fields = _form(admin, name=name, channel_ids=world.channel, max_streams="3")
        r = c.post("/admin/plans", data=fields)
        assert r.status_code == 303, r.text
        page = c.get("/admin/plans").text
        assert name in page and world.channel in page
        r = c.post("/admin/plans", data=_form(admin, name="x", max_streams="many"))
        assert r.status_code == 400
        with world.admin() as api:
            plan = next(p for p in api.get("/api/v1/plans").json()["data"] if p["name"] == name)
        grant_fields = _form(admin, user=viewer.email, kind="subscription", plan_id=plan["id"])
        r = c.post("/admin/grants", data=grant_fields)
        assert r.status_code == 303, r.text
        with world.admin() as api:
            r = api.get("/api/v1/grants", params={"user_id": viewer.user_id})
            grants = r.json()["data"]
        assert [(g["kind"], g["plan_id"]) for g in grants] == [("subscription", plan["id"])]
        assert grants[0]["id"] in c.get("/admin/grants").text
        r = c.post("/admin/grants", data=_form(admin, user="nobody@example.org", kind="rental"))
        assert r.status_code == 400
        r = c.post(f"/admin/grants/{grants[0]['id']}/revoke", data=_form(admin))
        assert r.status_code == 303
        with world.admin() as api:
            assert (
                api.get("/api/v1/grants", params={"user_id": viewer.user_id}).json()["data"] == []
            )
        r = c.post(f"/admin/plans/{plan['id']}/delete", data=_form(admin))
        assert r.status_code == 303 and name not in c.get("/admin/plans").text
