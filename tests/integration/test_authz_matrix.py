"""The authorization matrix: every /api/v1 route of the OpenAPI document × every kind of
caller, on one real `mediaplane up`.

Each cell names what the caller gets on things that belong to channel A (owned by
``creator``; ``channel_editor`` and ``channel_viewer`` are members):

- ``ALLOW``: authorization passed. The answer is below 500 and is not an authorization
  refusal: not 401, not 404 ``not_found``, not 403 with one of :data:`AUTHZ_CODES`. A
  validation error after authorization (400 for a refused URL, 409 for a wrong tus offset,
  405 for an unknown method override) counts as allowed: the request got past the gate.
- ``401``: no (good) credentials; ``403``: the caller sees the thing but lacks the role or
  scope (the code is one of :data:`AUTHZ_CODES`); ``404``: the thing does not exist for
  the caller — another creator's asset, channel or upload is a 404, never a 403.

Every cell gets fresh targets (a channel with its members, an asset in it, an upload,
keys), made as rows or with tiny requests: no media is processed.

A new route fails :func:`test_every_route_has_a_row` until it gets a row in
:data:`MATRIX`: add ``(METHOD, "/api/v1/path/{param}"): (request builder, row(...))``
with one expectation per role, in the order of :data:`ROLES`.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from mediaplane.accounts import Channel, ChannelMember, ChannelRole, create_user, set_disabled
from mediaplane.catalog import Asset, ModerationStatus
from mediaplane.catalog._models import PlaybackId
from mediaplane.config import Settings, SourceType
from mediaplane.db import Database
from mediaplane.library import Playlist
from mediaplane.live import LivePlaybackId, LiveStream, new_stream_key, stream_key_hash
from mediaplane.webhooks import WebhookDelivery, WebhookEndpoint
from tests.support import Server, embedded_backend, start_server

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

ALLOW = "allow"
AUTHZ_CODES = {
    "insufficient_scope",
    "insufficient_role",
    "insufficient_channel_role",
    "no_channel",
    "not_a_user",  # the install's own credentials have no personal library
}
ROLES = (
    "anonymous",
    "viewer",  # role viewer, in no channel
    "creator",  # role creator, owner of channel A
    "other_creator",  # role creator, owner of channel B (a user API key, scope write)
    "channel_editor",  # role viewer, editor in channel A
    "channel_viewer",  # role viewer, viewer in channel A
    "moderator",
    "admin",  # a user with the admin role (JWT)
    "admin_token",  # the install's admin token
    "creator_read_key",  # creator's API key with scope read
)
PASSWORD = "correct horse battery"


def row(*expected: object) -> dict[str, object]:
    assert len(expected) == len(ROLES)
    return dict(zip(ROLES, expected, strict=True))


@dataclass
class Ctx:
    server: Server
    db: Database
    users: dict[str, str]  # role → user id
    creds: dict[str, str]  # role → bearer credential
    other_channel: str

    def admin(self) -> httpx.Client:
        return self.server.client()


@dataclass
class World:
    """Fresh targets of one cell."""

    channel: str
    asset: str
    playback: str = ""
    upload: str = ""
    api_key: str = ""
    signing_key: str = ""
    plan: str = ""
    grant: str = ""
    playlist: str = ""
    webhook: str = ""
    delivery: str = ""
    live_stream: str = ""
    live_playback: str = ""


def _fresh(ctx: Ctx, paths: list[str]) -> list[World]:
    """Fresh targets for each of ``paths``: the rows in one transaction (a commit per
    cell cost most of this module's time), then what only the API makes."""
    with ctx.db.session() as s:
        worlds = [_rows(ctx, s, path) for path in paths]
    with ctx.admin() as c:
        for world, path in zip(worlds, paths, strict=True):
            _by_api(ctx, c, world, path)
    return worlds


def _rows(ctx: Ctx, s: Session, path: str) -> World:
    channel = Channel(name="A", created_by=ctx.users["creator"])
    s.add(channel)
    s.flush()
    for who, role in (
        ("creator", ChannelRole.OWNER),
        ("channel_editor", ChannelRole.EDITOR),
        ("channel_viewer", ChannelRole.VIEWER),
        ("bystander", ChannelRole.VIEWER),
    ):
        s.add(ChannelMember(channel_id=channel.id, user_id=ctx.users[who], role=role))
    asset = Asset(
        title="a",
        channel_id=channel.id,
        source_type=SourceType.UGC,
        moderation=ModerationStatus.PENDING,  # held: the moderator sees it
    )
    asset.playback_ids.append(PlaybackId())
    s.add(asset)
    s.flush()
    world = World(channel.id, asset.id, asset.playback_ids[0].id)
    if "{playlist_id}" in path:
        playlist = Playlist(user_id=ctx.users["creator"], name="creator's")
        s.add(playlist)
        s.flush()
        world.playlist = playlist.id
    if "{live_stream_id}" in path:
        key = new_stream_key()
        stream = LiveStream(
            channel_id=world.channel,
            stream_key=key,
            stream_key_hash=stream_key_hash(key),
            dvr_window_seconds=60,
            reconnect_window_seconds=60,
        )
        stream.playback_ids.append(LivePlaybackId())
        s.add(stream)
        s.flush()
        world.live_stream, world.live_playback = stream.id, stream.playback_ids[0].id
    if "{webhook_id}" in path:
        # A row: the API would refuse this loopback URL, and the sender refuses it too (no
        # webhook_allow here), so nothing is ever sent. It subscribes to an event no cell
        # causes (no media is processed): with "*" every later event fanned out to every
        # endpoint made so far, deliveries growing with the square of the cells (most of
        # this module's time).
        endpoint = WebhookEndpoint(url="http://127.0.0.1:9/hook", events=["video.asset.ready"])
        s.add(endpoint)
        s.flush()
        delivery = WebhookDelivery(
            endpoint_id=endpoint.id,
            event_id="e",
            event_type="video.asset.ready",
            object_id="a1",
            seq=1,
            body="{}",
        )
        s.add(delivery)
        s.flush()
        world.webhook, world.delivery = endpoint.id, delivery.id
    return world


def _by_api(ctx: Ctx, c: httpx.Client, world: World, path: str) -> None:
    if "{upload_id}" in path:
        meta = "channel_id " + base64.b64encode(world.channel.encode()).decode()
        r = c.post(
            "/api/v1/uploads",
            headers={
                "Authorization": f"Bearer {ctx.creds['creator']}",
                "Tus-Resumable": "1.0.0",
                "Upload-Length": "10",
                "Upload-Metadata": meta,
            },
        )
        assert r.status_code == 201, r.text
        world.upload = r.headers["Location"].rsplit("/", 1)[-1]
    if "/api-keys/{key_id}" in path:
        world.api_key = c.post("/api/v1/api-keys", json={"scope": "read"}).json()["data"]["id"]
    if "/signing-keys/{key_id}" in path:
        world.signing_key = c.post("/api/v1/signing-keys").json()["data"]["id"]
    if "{plan_id}" in path:
        body = {"name": "p", "channel_ids": [world.channel]}
        world.plan = c.post("/api/v1/plans", json=body).json()["data"]["id"]
    if "{grant_id}" in path:
        body = {"user_id": ctx.users["bystander"], "kind": "purchase", "asset_id": world.asset}
        world.grant = c.post("/api/v1/grants", json=body).json()["data"]["id"]


Build = Callable[[Ctx, World], dict[str, Any]]
TUS = {"Tus-Resumable": "1.0.0"}


def _req(method: str, url: str, **kw: Any) -> Build:
    return lambda ctx, w: {"method": method, "url": url.format(**vars(w)), **kw}


def _create_asset(ctx: Ctx, w: World) -> dict[str, Any]:
    # A loopback URL is refused (400 url_refused) after authorization: nothing is fetched.
    body = {"input": {"url": "http://127.0.0.1:9/x.mp4"}, "channel_id": w.channel}
    return {"method": "POST", "url": "/api/v1/assets", "json": body}


def _tus_create(ctx: Ctx, w: World) -> dict[str, Any]:
    meta = "channel_id " + base64.b64encode(w.channel.encode()).decode()
    headers = {**TUS, "Upload-Length": "10", "Upload-Metadata": meta}
    return {"method": "POST", "url": "/api/v1/uploads", "headers": headers}


def _create_grant(ctx: Ctx, w: World) -> dict[str, Any]:
    body = {"user_id": ctx.users["bystander"], "kind": "rental", "asset_id": w.asset}
    return {"method": "POST", "url": "/api/v1/grants", "json": body}


def _add_member(ctx: Ctx, w: World) -> dict[str, Any]:
    body = {"user_id": ctx.users["newcomer"], "role": "viewer"}
    return {"method": "POST", "url": f"/api/v1/channels/{w.channel}/members", "json": body}


def _remove_member(ctx: Ctx, w: World) -> dict[str, Any]:
    body = {"user_id": ctx.users["bystander"]}
    return {"method": "DELETE", "url": f"/api/v1/channels/{w.channel}/members", "json": body}


A = ALLOW
#                 anon viewer creator other editor chview  mod  admin token c_read
EVERYONE = row(A, A, A, A, A, A, A, A, A, A)
SIGNED_IN_READ = row(401, A, A, A, A, A, A, A, A, A)
ADMIN_ONLY = row(401, 403, 403, 403, 403, 403, 403, A, A, 403)
ASSET_READ = row(401, 404, A, 404, A, A, A, A, A, A)
ASSET_EDIT = row(401, 404, A, 404, A, 403, 403, A, A, 403)
ASSET_MODERATE = row(401, 404, 403, 404, 403, 403, A, A, A, 403)
CHANNEL_READ = row(401, 404, A, 404, A, A, 404, A, A, A)
CHANNEL_OWN = row(401, 404, A, 404, 403, 403, 404, A, A, 403)
UPLOAD_READ = row(401, 404, A, 404, 404, 404, 404, A, A, A)
UPLOAD_WRITE = row(401, 404, A, 404, 404, 404, 404, A, A, 403)
# the caller's own library: any user credential (read scope too); the install has none
MINE = row(401, A, A, A, A, A, A, A, 403, A)
MINE_ASSET = row(401, 404, A, 404, A, A, A, A, 403, A)  # of an asset they may see
LIVE_READ = row(401, 404, A, 404, A, A, 404, A, A, A)  # the channel's members
LIVE_EDIT = row(401, 404, A, 404, A, 403, 404, A, A, 403)  # its editors and owners
CREATORS_PLAYLIST = row(401, 404, A, 404, 404, 404, 404, 404, 403, A)  # private, even to admins

MATRIX: dict[tuple[str, str], tuple[Build, dict[str, object]]] = {
    # assets
    ("GET", "/api/v1/assets"): (_req("GET", "/api/v1/assets"), SIGNED_IN_READ),
    ("POST", "/api/v1/assets"): (
        _create_asset,
        # viewer and moderator have no channel to upload into (403 no_channel); another
        # creator names channel A, which does not exist for them (404)
        row(401, 403, A, 404, A, 403, 403, A, A, 403),
    ),
    ("GET", "/api/v1/assets/{asset_id}"): (
        _req("GET", "/api/v1/assets/{asset}"),
        ASSET_READ,
    ),
    ("PATCH", "/api/v1/assets/{asset_id}"): (
        _req("PATCH", "/api/v1/assets/{asset}", json={"title": "renamed"}),
        ASSET_EDIT,
    ),
    ("DELETE", "/api/v1/assets/{asset_id}"): (
        _req("DELETE", "/api/v1/assets/{asset}"),
        ASSET_EDIT,
    ),
    ("POST", "/api/v1/assets/{asset_id}/playback-ids"): (
        _req("POST", "/api/v1/assets/{asset}/playback-ids", json={"policy": "signed"}),
        ASSET_EDIT,
    ),
    ("DELETE", "/api/v1/assets/{asset_id}/playback-ids/{playback_id}"): (
        _req("DELETE", "/api/v1/assets/{asset}/playback-ids/{playback}"),
        ASSET_EDIT,
    ),
    ("POST", "/api/v1/assets/{asset_id}/moderation"): (
        _req("POST", "/api/v1/assets/{asset}/moderation", json={"decision": "approve"}),
        ASSET_MODERATE,
    ),
    # the caller's own decision: a public asset's plays by link for anyone signed in (a
    # private one is a 404 for non-members: tests/integration/test_access_rules.py)
    ("GET", "/api/v1/assets/{asset_id}/entitlement"): (
        _req("GET", "/api/v1/assets/{asset}/entitlement"),
        SIGNED_IN_READ,
    ),
    # live streams (a channel's, like its assets)
    ("POST", "/api/v1/live-streams"): (
        lambda ctx, w: {
            "method": "POST",
            "url": "/api/v1/live-streams",
            "json": {"channel_id": w.channel},
        },
        LIVE_EDIT,
    ),
    ("GET", "/api/v1/live-streams"): (_req("GET", "/api/v1/live-streams"), SIGNED_IN_READ),
    ("GET", "/api/v1/live-streams/{live_stream_id}"): (
        _req("GET", "/api/v1/live-streams/{live_stream}"),
        LIVE_READ,
    ),
    ("PATCH", "/api/v1/live-streams/{live_stream_id}"): (
        _req("PATCH", "/api/v1/live-streams/{live_stream}", json={"protection": "none"}),
        LIVE_EDIT,
    ),
    ("DELETE", "/api/v1/live-streams/{live_stream_id}"): (
        _req("DELETE", "/api/v1/live-streams/{live_stream}"),
        LIVE_EDIT,
    ),
    ("POST", "/api/v1/live-streams/{live_stream_id}/reset-stream-key"): (
        _req("POST", "/api/v1/live-streams/{live_stream}/reset-stream-key"),
        LIVE_EDIT,
    ),
    ("POST", "/api/v1/live-streams/{live_stream_id}/disable"): (
        _req("POST", "/api/v1/live-streams/{live_stream}/disable"),
        LIVE_EDIT,
    ),
    ("POST", "/api/v1/live-streams/{live_stream_id}/enable"): (
        _req("POST", "/api/v1/live-streams/{live_stream}/enable"),
        LIVE_EDIT,
    ),
    ("POST", "/api/v1/live-streams/{live_stream_id}/playback-ids"): (
        _req("POST", "/api/v1/live-streams/{live_stream}/playback-ids", json={"policy": "signed"}),
        LIVE_EDIT,
    ),
    ("DELETE", "/api/v1/live-streams/{live_stream_id}/playback-ids/{playback_id}"): (
        _req("DELETE", "/api/v1/live-streams/{live_stream}/playback-ids/{live_playback}"),
        LIVE_EDIT,
    ),
    # channels
    ("POST", "/api/v1/channels"): (
        _req("POST", "/api/v1/channels", json={"name": "new"}),
        row(401, 403, A, A, 403, 403, 403, A, A, 403),
    ),
    ("GET", "/api/v1/channels"): (_req("GET", "/api/v1/channels"), SIGNED_IN_READ),
    ("GET", "/api/v1/channels/{channel_id}"): (
        _req("GET", "/api/v1/channels/{channel}"),
        CHANNEL_READ,
    ),
    ("PATCH", "/api/v1/channels/{channel_id}"): (
        _req("PATCH", "/api/v1/channels/{channel}", json={"name": "renamed"}),
        CHANNEL_OWN,
    ),
    ("DELETE", "/api/v1/channels/{channel_id}"): (
        _req("DELETE", "/api/v1/channels/{channel}"),
        CHANNEL_OWN,
    ),
    ("POST", "/api/v1/channels/{channel_id}/members"): (_add_member, CHANNEL_OWN),
    ("DELETE", "/api/v1/channels/{channel_id}/members"): (_remove_member, CHANNEL_OWN),
    # tus uploads (only their creator and admins see one)
    ("OPTIONS", "/api/v1/uploads"): (_req("OPTIONS", "/api/v1/uploads"), EVERYONE),
    ("OPTIONS", "/api/v1/uploads/{upload_id}"): (
        _req("OPTIONS", "/api/v1/uploads/{upload}"),
        EVERYONE,
    ),
    ("POST", "/api/v1/uploads"): (
        _tus_create,
        row(401, 404, A, 404, A, 403, 404, A, A, 403),
    ),
    ("HEAD", "/api/v1/uploads/{upload_id}"): (
        _req("HEAD", "/api/v1/uploads/{upload}", headers=TUS),
        UPLOAD_READ,
    ),
    ("GET", "/api/v1/uploads/{upload_id}"): (
        _req("GET", "/api/v1/uploads/{upload}"),
        UPLOAD_READ,
    ),
    ("PATCH", "/api/v1/uploads/{upload_id}"): (
        _req(  # a wrong offset: 409 once past authorization
            "PATCH",
            "/api/v1/uploads/{upload}",
            headers={
                **TUS,
                "Upload-Offset": "5",
                "Content-Type": "application/offset+octet-stream",
            },
            content=b"x",
        ),
        UPLOAD_WRITE,
    ),
    ("DELETE", "/api/v1/uploads/{upload_id}"): (
        _req("DELETE", "/api/v1/uploads/{upload}", headers=TUS),
        UPLOAD_WRITE,
    ),
    ("POST", "/api/v1/uploads/{upload_id}"): (
        _req(  # an unknown override: 405 once past authorization
            "POST", "/api/v1/uploads/{upload}", headers={**TUS, "X-HTTP-Method-Override": "PUT"}
        ),
        UPLOAD_WRITE,
    ),
    # keys (admin)
    ("POST", "/api/v1/api-keys"): (
        _req("POST", "/api/v1/api-keys", json={"scope": "read"}),
        ADMIN_ONLY,
    ),
    ("GET", "/api/v1/api-keys"): (_req("GET", "/api/v1/api-keys"), ADMIN_ONLY),
    ("DELETE", "/api/v1/api-keys/{key_id}"): (
        _req("DELETE", "/api/v1/api-keys/{api_key}"),
        ADMIN_ONLY,
    ),
    ("POST", "/api/v1/signing-keys"): (_req("POST", "/api/v1/signing-keys"), ADMIN_ONLY),
    ("GET", "/api/v1/signing-keys"): (_req("GET", "/api/v1/signing-keys"), ADMIN_ONLY),
    ("DELETE", "/api/v1/signing-keys/{key_id}"): (
        _req("DELETE", "/api/v1/signing-keys/{signing_key}"),
        ADMIN_ONLY,
    ),
    # plans and grants (admin: the operator's billing system)
    ("POST", "/api/v1/plans"): (_req("POST", "/api/v1/plans", json={"name": "p"}), ADMIN_ONLY),
    ("GET", "/api/v1/plans"): (_req("GET", "/api/v1/plans"), ADMIN_ONLY),
    ("GET", "/api/v1/plans/{plan_id}"): (_req("GET", "/api/v1/plans/{plan}"), ADMIN_ONLY),
    ("PATCH", "/api/v1/plans/{plan_id}"): (
        _req("PATCH", "/api/v1/plans/{plan}", json={"max_streams": 2}),
        ADMIN_ONLY,
    ),
    ("DELETE", "/api/v1/plans/{plan_id}"): (_req("DELETE", "/api/v1/plans/{plan}"), ADMIN_ONLY),
    ("POST", "/api/v1/grants"): (_create_grant, ADMIN_ONLY),
    ("GET", "/api/v1/grants"): (_req("GET", "/api/v1/grants"), ADMIN_ONLY),
    ("GET", "/api/v1/grants/{grant_id}"): (_req("GET", "/api/v1/grants/{grant}"), ADMIN_ONLY),
    ("DELETE", "/api/v1/grants/{grant_id}"): (
        _req("DELETE", "/api/v1/grants/{grant}"),
        ADMIN_ONLY,
    ),
    # an asset's content keys as CPIX (admin: they open every protected rendition); the
    # world's asset has no keys (409 no_keys) and the bodies are refused (400) past the gate
    ("GET", "/api/v1/assets/{asset_id}/cpix"): (
        _req("GET", "/api/v1/assets/{asset}/cpix"),
        ADMIN_ONLY,
    ),
    ("POST", "/api/v1/assets/{asset_id}/cpix/export"): (
        _req("POST", "/api/v1/assets/{asset}/cpix/export", json={"certificate": "junk"}),
        ADMIN_ONLY,
    ),
    ("PUT", "/api/v1/assets/{asset_id}/cpix"): (
        _req("PUT", "/api/v1/assets/{asset}/cpix", content=b"<junk/>"),
        ADMIN_ONLY,
    ),
    # analytics: players post beacons without credentials (untrusted input, rate-limited);
    # an asset's views are for whoever may read the asset
    ("POST", "/api/v1/beacons"): (
        lambda ctx, w: {
            "method": "POST",
            "url": "/api/v1/beacons",
            "json": {
                "view_id": "authz",
                "playback_id": w.playback,
                "player": {"name": "test"},
                "events": [{"id": "1", "type": "view_start", "ts": 1}],
            },
        },
        EVERYONE,
    ),
    ("GET", "/api/v1/data/views"): (
        _req("GET", "/api/v1/data/views?asset_id={asset}"),
        ASSET_READ,
    ),
    # concurrent viewers now: the asset's readers (a live stream's: its channel's members,
    # checked in tests/integration/test_realtime_viewers.py)
    ("GET", "/api/v1/data/realtime"): (
        _req("GET", "/api/v1/data/realtime?asset_id={asset}"),
        ASSET_READ,
    ),
    # a metric's breakdown of one asset: whoever may read it (without asset_id: the assets
    # the caller may read, none for some)
    ("GET", "/api/v1/data/metrics/{metric}"): (
        _req("GET", "/api/v1/data/metrics/views?asset_id={asset}&group_by=player"),
        ASSET_READ,
    ),
    # webhooks (admin: endpoints receive every channel's events); a loopback URL is
    # refused (400 url_refused) after authorization
    ("POST", "/api/v1/webhooks"): (
        _req("POST", "/api/v1/webhooks", json={"url": "http://127.0.0.1:9/", "events": ["*"]}),
        ADMIN_ONLY,
    ),
    ("GET", "/api/v1/webhooks"): (_req("GET", "/api/v1/webhooks"), ADMIN_ONLY),
    ("GET", "/api/v1/webhooks/{webhook_id}"): (
        _req("GET", "/api/v1/webhooks/{webhook}"),
        ADMIN_ONLY,
    ),
    ("PATCH", "/api/v1/webhooks/{webhook_id}"): (
        _req("PATCH", "/api/v1/webhooks/{webhook}", json={"enabled": False}),
        ADMIN_ONLY,
    ),
    ("DELETE", "/api/v1/webhooks/{webhook_id}"): (
        _req("DELETE", "/api/v1/webhooks/{webhook}"),
        ADMIN_ONLY,
    ),
    ("POST", "/api/v1/webhooks/{webhook_id}/rotate-secret"): (
        _req("POST", "/api/v1/webhooks/{webhook}/rotate-secret"),
        ADMIN_ONLY,
    ),
    ("GET", "/api/v1/webhooks/{webhook_id}/deliveries"): (
        _req("GET", "/api/v1/webhooks/{webhook}/deliveries"),
        ADMIN_ONLY,
    ),
    ("POST", "/api/v1/webhooks/{webhook_id}/deliveries/{delivery_id}/replay"): (
        _req("POST", "/api/v1/webhooks/{webhook}/deliveries/{delivery}/replay"),
        ADMIN_ONLY,
    ),
    ("POST", "/api/v1/webhooks/{webhook_id}/replay"): (
        _req(
            "POST",
            "/api/v1/webhooks/{webhook}/replay",
            json={"since": "2026-01-01T00:00:00Z", "until": "2027-01-01T00:00:00Z"},
        ),
        ADMIN_ONLY,
    ),
    # the viewer's library (history, favourites, playlists)
    ("PUT", "/api/v1/me/history/{asset_id}"): (
        _req("PUT", "/api/v1/me/history/{asset}", json={"position_seconds": 1.5}),
        MINE_ASSET,
    ),
    ("GET", "/api/v1/me/history"): (_req("GET", "/api/v1/me/history"), MINE),
    ("DELETE", "/api/v1/me/history/{asset_id}"): (
        _req("DELETE", "/api/v1/me/history/{asset}"),
        MINE_ASSET,
    ),
    ("DELETE", "/api/v1/me/history"): (_req("DELETE", "/api/v1/me/history"), MINE),
    ("GET", "/api/v1/me/library/{asset_id}"): (
        _req("GET", "/api/v1/me/library/{asset}"),
        MINE_ASSET,
    ),
    ("PUT", "/api/v1/me/favourites/{asset_id}"): (
        _req("PUT", "/api/v1/me/favourites/{asset}"),
        MINE_ASSET,
    ),
    ("DELETE", "/api/v1/me/favourites/{asset_id}"): (
        _req("DELETE", "/api/v1/me/favourites/{asset}"),
        MINE_ASSET,
    ),
    ("GET", "/api/v1/me/favourites"): (_req("GET", "/api/v1/me/favourites"), MINE),
    ("POST", "/api/v1/playlists"): (_req("POST", "/api/v1/playlists", json={"name": "p"}), MINE),
    ("GET", "/api/v1/playlists"): (_req("GET", "/api/v1/playlists"), MINE),
    ("GET", "/api/v1/playlists/{playlist_id}"): (
        _req("GET", "/api/v1/playlists/{playlist}"),
        CREATORS_PLAYLIST,
    ),
    ("PATCH", "/api/v1/playlists/{playlist_id}"): (
        _req("PATCH", "/api/v1/playlists/{playlist}", json={"name": "renamed"}),
        CREATORS_PLAYLIST,
    ),
    ("DELETE", "/api/v1/playlists/{playlist_id}"): (
        _req("DELETE", "/api/v1/playlists/{playlist}"),
        CREATORS_PLAYLIST,
    ),
    ("POST", "/api/v1/playlists/{playlist_id}/items"): (
        lambda ctx, w: {
            "method": "POST",
            "url": f"/api/v1/playlists/{w.playlist}/items",
            "json": {"asset_id": w.asset},
        },
        CREATORS_PLAYLIST,
    ),
    ("DELETE", "/api/v1/playlists/{playlist_id}/items/{asset_id}"): (
        _req("DELETE", "/api/v1/playlists/{playlist}/items/{asset}"),
        CREATORS_PLAYLIST,
    ),
    # tokens for apps: open to all (an empty body is a 400 after the gate)
    ("POST", "/api/v1/auth/token"): (_req("POST", "/api/v1/auth/token", json={}), EVERYONE),
    ("POST", "/api/v1/auth/refresh"): (_req("POST", "/api/v1/auth/refresh", json={}), EVERYONE),
}


def _user(db: Database, email: str, role: str) -> str:
    with db.session() as s:
        return create_user(s, email, PASSWORD, role).id


def _jwt(server: Server, email: str) -> str:
    r = httpx.post(server.url + "/api/v1/auth/token", json={"email": email, "password": PASSWORD})
    assert r.status_code == 200, r.text
    token: str = r.json()["data"]["access_token"]
    return token


def _key(server: Server, user_id: str, scope: str) -> str:
    with server.client() as c:
        r = c.post("/api/v1/api-keys", json={"scope": scope, "user_id": user_id})
    assert r.status_code == 201, r.text
    key: str = r.json()["data"]["key"]
    return key


@pytest.fixture(scope="module")
def ctx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ctx]:
    server = start_server(tmp_path_factory.mktemp("authz"), embedded_backend())
    db = Database(Settings(data_dir=server.data_dir).effective_database_url)
    try:
        users = {
            who: _user(db, f"{who}@example.org", role)
            for who, role in (
                ("viewer", "viewer"),
                ("creator", "creator"),
                ("other_creator", "creator"),
                ("channel_editor", "viewer"),
                ("channel_viewer", "viewer"),
                ("moderator", "moderator"),
                ("admin", "admin"),
                ("bystander", "viewer"),  # a member of every channel A, removed by some cells
                ("newcomer", "viewer"),  # added to channels A by some cells
            )
        }
        creds = {
            who: _jwt(server, f"{who}@example.org")
            for who in ("viewer", "creator", "channel_editor", "channel_viewer", "moderator")
        }
        creds["admin"] = _jwt(server, "admin@example.org")
        creds["admin_token"] = server.token
        creds["other_creator"] = _key(server, users["other_creator"], "write")
        creds["creator_read_key"] = _key(server, users["creator"], "read")
        with db.session() as s:
            other = Channel(name="B", created_by=users["other_creator"])
            s.add(other)
            s.flush()
            s.add(
                ChannelMember(
                    channel_id=other.id, user_id=users["other_creator"], role=ChannelRole.OWNER
                )
            )
            other_id = other.id
        yield Ctx(server, db, users, creds, other_id)
    finally:
        db.dispose()
        server.stop()


def _api_operations(server: Server) -> set[tuple[str, str]]:
    spec = httpx.get(server.url + "/openapi.json").json()
    return {
        (method.upper(), path)
        for path, item in spec["paths"].items()
        if path.startswith("/api/")
        for method in item
        if method in {"get", "post", "put", "patch", "delete", "head", "options"}
    }


def test_every_route_has_a_row(ctx: Ctx) -> None:
    operations = _api_operations(ctx.server)
    missing = sorted(operations - MATRIX.keys())
    assert not missing, f"routes without an authorization row (add them to MATRIX): {missing}"
    stale = sorted(MATRIX.keys() - operations)
    assert not stale, f"rows for routes that no longer exist: {stale}"


def _verdict(r: httpx.Response) -> object:
    """What the answer means for authorization: 401, 403, 404 or ALLOW."""
    assert r.status_code < 500, r.text
    code = r.json()["error"]["code"] if r.content and r.status_code >= 400 else None
    if r.status_code == 401:
        return 401
    if r.status_code == 403 and code in AUTHZ_CODES:
        return 403
    if r.status_code == 404 and (code == "not_found" or r.request.method == "HEAD"):
        return 404
    return ALLOW


SAFE = {"GET", "HEAD", "OPTIONS"}


@pytest.mark.parametrize("role", ROLES)
def test_matrix(ctx: Ctx, role: str) -> None:
    wrong = []
    cells = sorted(MATRIX.items())
    # what safe methods read; the rest get their own
    shared, *own = _fresh(
        ctx,
        [
            "/{upload_id}/{plan_id}/{grant_id}/{playlist_id}/{webhook_id}/{live_stream_id}",
            *(path for (method, path), _ in cells if method not in SAFE),
        ],
    )
    worlds = iter(own)
    auth = {} if role == "anonymous" else {"Authorization": f"Bearer {ctx.creds[role]}"}
    with httpx.Client(base_url=ctx.server.url, timeout=30) as c:
        for (method, path), (build, expected) in cells:
            request = build(ctx, shared if method in SAFE else next(worlds))
            headers = {**request.pop("headers", {}), **auth}
            r = c.request(headers=headers, **request)
            got = _verdict(r)
            if got != expected[role]:
                wrong.append(
                    f"{method} {path}: expected {expected[role]}, got {r.status_code} {r.text}"
                )
    assert not wrong, f"{role}:\n" + "\n".join(wrong)


def test_lists_show_only_what_the_caller_may_see(ctx: Ctx) -> None:
    (mine,) = _fresh(ctx, [""])
    with ctx.db.session() as s:
        theirs = Asset(title="b", channel_id=ctx.other_channel)
        s.add(theirs)
        s.flush()
        theirs_id = theirs.id

    def ids(role: str) -> set[str]:
        r = httpx.get(
            ctx.server.url + "/api/v1/assets",
            params={"limit": 100},
            headers={"Authorization": f"Bearer {ctx.creds[role]}"},
        )
        assert r.status_code == 200, r.text
        return {a["id"] for a in r.json()["data"]}

    assert mine.asset in ids("creator") and theirs_id not in ids("creator")
    assert theirs_id in ids("other_creator") and mine.asset not in ids("other_creator")
    assert ids("viewer") == set()
    assert {mine.asset, theirs_id} <= ids("admin_token")
    assert mine.asset in ids("moderator") and theirs_id not in ids("moderator")  # not held
    r = httpx.get(
        ctx.server.url + "/api/v1/channels",
        headers={"Authorization": f"Bearer {ctx.creds['other_creator']}"},
    )
    listed = r.json()["data"]  # B, and those the matrix had them create
    assert ctx.other_channel in [c["id"] for c in listed] and mine.channel not in str(listed)
    assert all(ctx.users["other_creator"] in [m["user_id"] for m in c["members"]] for c in listed)


def test_upload_goes_into_the_callers_first_channel(ctx: Ctx) -> None:
    """Without ``channel_id`` an asset lands in the caller's first channel (none for the
    admin token): a tiny multipart upload (the job that processes it is irrelevant here)."""
    files = {"file": ("x.mp4", b"not really a video")}
    auth = {"Authorization": f"Bearer {ctx.creds['other_creator']}"}
    r = httpx.post(ctx.server.url + "/api/v1/assets", files=files, headers=auth)
    assert r.status_code == 201, r.text
    assert r.json()["data"]["channel_id"] == ctx.other_channel
    with ctx.admin() as c:
        r = c.post("/api/v1/assets", files=files)
    assert r.status_code == 201, r.text
    assert r.json()["data"]["channel_id"] is None


def test_a_disabled_users_tokens_and_keys_stop_at_once(ctx: Ctx) -> None:
    user_id = _user(ctx.db, "soon-gone@example.org", "creator")
    token = _jwt(ctx.server, "soon-gone@example.org")
    key = _key(ctx.server, user_id, "write")
    for cred in (token, key):
        r = httpx.get(
            ctx.server.url + "/api/v1/assets", headers={"Authorization": f"Bearer {cred}"}
        )
        assert r.status_code == 200, r.text
    with ctx.db.session() as s:
        set_disabled(s, user_id)
    for cred in (token, key):
        r = httpx.get(
            ctx.server.url + "/api/v1/assets", headers={"Authorization": f"Bearer {cred}"}
        )
        assert r.status_code == 401, r.text
        assert r.json()["error"]["code"] == "unauthorized"
