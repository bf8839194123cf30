"""Live streams on a migrated database of each backend: the resource (create, read, list,
reset the key, disable, enable, delete) with the asset's authorization, the publish side
(stream keys, sessions and the reconnect window, recording assets), the events each change
writes to the outbox, and the origin's playback resolver."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from mediaplane import live
from mediaplane.accounts import (
    INSTALL,
    Channel,
    ChannelMember,
    ChannelRole,
    Principal,
    Role,
    Scope,
    User,
)
from mediaplane.catalog import Asset, AssetStatus, PlaybackPolicy
from mediaplane.config import SourceType
from mediaplane.errors import Forbidden
from mediaplane.events import Event, OutboxRow
from mediaplane.jobs import Job
from mediaplane.runtime import Runtime
from tests.support import migrated_runtime


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def rt(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Runtime]:
    with migrated_runtime(request.param, tmp_path_factory.mktemp("live")) as runtime:
        yield runtime


@dataclass
class World:
    owner: Principal  # owner of channel A
    reader: Principal  # viewer in channel A
    stranger: Principal  # owner of channel B
    channel: str


_count = iter(range(10_000))


def _user(s: Session, role: Role = Role.CREATOR) -> Principal:
    user = User(email=f"live{next(_count)}@example.org", role=role)  # no password: fast
    s.add(user)
    s.flush()
    return Principal(user.id, role, Scope.WRITE, "session")


@pytest.fixture
def w(rt: Runtime) -> World:
    with rt.db.session() as s:
        owner, reader, stranger = _user(s), _user(s, Role.VIEWER), _user(s)
        a, b = Channel(name="A"), Channel(name="B")
        s.add_all([a, b])
        s.flush()
        for who, channel, role in (
            (owner, a, ChannelRole.OWNER),
            (reader, a, ChannelRole.VIEWER),
            (stranger, b, ChannelRole.OWNER),
        ):
            s.add(ChannelMember(channel_id=channel.id, user_id=who.user_id, role=role))
        return World(owner, reader, stranger, a.id)


def _events(rt: Runtime, stream_id: str) -> list[Event]:
    with rt.db.session() as s:
        rows = s.scalars(
            select(OutboxRow).where(OutboxRow.object_id == stream_id).order_by(OutboxRow.id)
        )
        return [Event.of(r) for r in rows]


def _types(rt: Runtime, stream_id: str) -> list[str]:
    return [e.type.removeprefix("video.live_stream.") for e in _events(rt, stream_id)]


def _create(rt: Runtime, w: World, **kw: Any) -> dict[str, Any]:
    return live.create_live_stream(rt, w.owner, channel_id=w.channel, **kw)


def _away_since(rt: Runtime, session_id: str, seconds: float) -> None:
    """The session's publisher left ``seconds`` ago (instead of waiting that long)."""
    with rt.db.session() as s:
        row = s.get(live.LiveSessionRow, session_id)
        assert row is not None and row.disconnected_at is not None
        row.disconnected_at -= timedelta(seconds=seconds)


def test_create_read_list_with_channel_authorization(rt: Runtime, w: World) -> None:
    data = _create(rt, w, latency_mode=live.LatencyMode.LOW, dvr_window_seconds=120)
    assert data["status"] == "idle" and data["latency_mode"] == "low"
    assert data["dvr_window_seconds"] == 120 and data["reconnect_window_seconds"] == 60
    assert len(data["stream_key"]) >= 32 and data["channel_id"] == w.channel
    assert [p["policy"] for p in data["playback_ids"]] == ["public"]
    assert data["active_asset_id"] is None and data["recent_asset_ids"] == []
    sid = data["id"]
    assert live.live_stream_view(rt, w.owner, sid)["stream_key"] == data["stream_key"]
    # a channel viewer reads the stream but not its publishing credential
    assert live.live_stream_view(rt, w.reader, sid)["stream_key"] is None
    with pytest.raises(live.LiveStreamNotFound):
        live.live_stream_view(rt, w.stranger, sid)
    for change in (live.disable_live_stream, live.reset_stream_key, live.delete_live_stream):
        with pytest.raises(live.LiveStreamNotFound):
            change(rt, w.stranger, sid)
        with pytest.raises(Forbidden):
            change(rt, w.reader, sid)
    rows, total = live.live_stream_views(rt, w.owner, limit=100, page=1)
    assert sid in [r["id"] for r in rows] and total == len(rows)
    assert sid not in [
        r["id"] for r in live.live_stream_views(rt, w.stranger, limit=100, page=1)[0]
    ]
    assert sid in [r["id"] for r in live.live_stream_views(rt, INSTALL, limit=100, page=1)[0]]
    assert _types(rt, sid) == ["created"]
    assert "stream_key" not in _events(rt, sid)[0].data
    assert _events(rt, sid)[0].data["playback_ids"] == data["playback_ids"]
    assert _events(rt, sid)[0].to_json()["object"] == {"type": "live_stream", "id": sid}


def test_keys_authenticate_until_reset_disabled_or_deleted(rt: Runtime, w: World) -> None:
    data = _create(rt, w, record=True)
    sid, key = data["id"], data["stream_key"]
    target = live.authenticate_publisher(rt, key)
    assert target == live.PublishTarget(sid, "standard", True, 600, 60)
    assert live.authenticate_publisher(rt, key[:-1]) is None
    assert live.authenticate_publisher(rt, "") is None
    assert live.authenticate_publisher(rt, "k" * 10_000) is None

    new_key = live.reset_stream_key(rt, w.owner, sid)["stream_key"]
    assert new_key != key
    assert live.authenticate_publisher(rt, key) is None
    assert live.authenticate_publisher(rt, new_key) == target

    assert live.disable_live_stream(rt, w.owner, sid)["status"] == "disabled"
    assert live.authenticate_publisher(rt, new_key) is None
    with pytest.raises(live.PublishRefused) as refused:
        live.publisher_connected(rt, sid, protocol="rtmp")
    assert refused.value.code == "disabled"
    assert live.enable_live_stream(rt, w.owner, sid)["status"] == "idle"
    assert live.authenticate_publisher(rt, new_key) == target

    live.delete_live_stream(rt, w.owner, sid)
    assert live.authenticate_publisher(rt, new_key) is None
    with pytest.raises(live.LiveStreamNotFound):
        live.live_stream_view(rt, w.owner, sid)
    assert _types(rt, sid) == ["created", "updated", "disabled", "enabled", "deleted"]
    assert all("stream_key" not in e.data for e in _events(rt, sid))


def test_reconnect_window_continues_the_session_then_a_new_one_starts(
    rt: Runtime, w: World
) -> None:
    data = _create(rt, w, reconnect_window_seconds=30)
    sid = data["id"]
    first = live.publisher_connected(rt, sid, protocol="rtmp")
    assert first.live_stream_id == sid and first.asset_id is None
    assert live.live_stream_view(rt, w.owner, sid)["status"] == "active"
    assert live.is_publish_allowed(rt, sid, first.id)
    with pytest.raises(live.PublishRefused) as refused:  # a second publisher meanwhile
        live.publisher_connected(rt, sid, protocol="srt")
    assert refused.value.code == "already_publishing"

    live.publisher_disconnected(rt, sid, first.id)
    live.session_idle(rt, sid, first.id)  # a timer that fires early: the window is open
    assert live.live_stream_view(rt, w.owner, sid)["status"] == "active"
    _away_since(rt, first.id, 29)
    again = live.publisher_connected(rt, sid, protocol="rtmp")
    assert again.id == first.id and again.started_at == first.started_at

    live.publisher_disconnected(rt, sid, first.id)
    _away_since(rt, first.id, 31)  # past the window, and no timer ended it
    later = live.publisher_connected(rt, sid, protocol="rtmp")
    assert later.id != first.id
    assert not live.is_publish_allowed(rt, sid, first.id)
    assert live.is_publish_allowed(rt, sid, later.id)

    live.publisher_disconnected(rt, sid, later.id)
    _away_since(rt, later.id, 31)
    live.session_idle(rt, sid, later.id)
    live.session_idle(rt, sid, later.id)  # twice: nothing more
    assert live.live_stream_view(rt, w.owner, sid)["status"] == "idle"
    assert _types(rt, sid) == [
        "created",
        "connected",
        "active",
        "disconnected",
        "connected",  # the same session again
        "disconnected",
        "idle",  # the first session's window ran out
        "connected",
        "active",
        "disconnected",
        "idle",
    ]
    statuses = [e.data["status"] for e in _events(rt, sid)]
    assert statuses == ["idle", *["active"] * 5, "idle", *["active"] * 3, "idle"]


def test_a_recorded_session_makes_an_asset_that_becomes_recent(rt: Runtime, w: World) -> None:
    sid = _create(rt, w, record=True, reconnect_window_seconds=0)["id"]
    session = live.publisher_connected(rt, sid, protocol="rtmp")
    assert session.asset_id is not None
    view = live.live_stream_view(rt, w.owner, sid)
    assert view["active_asset_id"] == session.asset_id and view["recent_asset_ids"] == []
    with rt.db.session() as s:
        asset = s.get(Asset, session.asset_id)
        assert asset is not None and asset.status is AssetStatus.PREPARING
        assert asset.source_type is SourceType.LIVE_RECORDING and asset.channel_id == w.channel
    live.publisher_disconnected(rt, sid, session.id)  # no reconnect window: idle at once
    view = live.live_stream_view(rt, w.owner, sid)
    assert view["status"] == "idle" and view["active_asset_id"] is None
    assert view["recent_asset_ids"] == [session.asset_id]
    assert live.recording_finished(rt, session.id) == session.asset_id
    assert _types(rt, sid)[-2:] == ["disconnected", "idle"]

    # disabling ends a session in progress: its publisher learns it, its recording is kept
    second = live.publisher_connected(rt, sid, protocol="srt")
    assert second.asset_id not in (None, session.asset_id)
    view = live.disable_live_stream(rt, w.owner, sid)
    assert view["recent_asset_ids"] == [session.asset_id, second.asset_id]
    assert not live.is_publish_allowed(rt, sid, second.id)
    live.publisher_disconnected(rt, sid, second.id)  # the ingest dropped it: nothing more
    assert _types(rt, sid)[-4:] == ["idle", "connected", "active", "disabled"]

    # deleting the stream with a recording in progress still finishes that recording
    live.enable_live_stream(rt, w.owner, sid)
    third = live.publisher_connected(rt, sid, protocol="rtmp")
    live.delete_live_stream(rt, w.owner, sid)
    with rt.db.session() as s:  # a finishing job for each recording
        subjects = s.scalars(select(Job.subject_id).where(Job.type == "live.finish_recording"))
        finishing = [
            a for a in subjects if a in (session.asset_id, second.asset_id, third.asset_id)
        ]
    assert set(finishing) == {session.asset_id, second.asset_id, third.asset_id}


def test_playback_ids_and_the_origins_resolver(rt: Runtime, w: World) -> None:
    data = _create(rt, w, latency_mode=live.LatencyMode.LOW, dvr_window_seconds=0)
    sid, public = data["id"], data["playback_ids"][0]["id"]
    played = live.resolve_live_playback(rt, public)
    assert played == live.LivePlayback(sid, "public", "idle", None, "low", 0)
    signed = live.add_live_playback_id(rt, w.owner, sid, PlaybackPolicy.SIGNED)
    session = live.publisher_connected(rt, sid, protocol="whip")
    with rt.db.session() as s:  # in the caller's session too
        got = live.resolve_live_playback(s, signed["id"])
    assert got == live.LivePlayback(sid, "signed", "active", session.id, "low", 0)
    with pytest.raises(live.LiveStreamNotFound):
        live.remove_live_playback_id(rt, w.owner, sid, "nope")
    live.remove_live_playback_id(rt, w.owner, sid, public)
    assert live.resolve_live_playback(rt, public) is None
    assert live.resolve_live_playback(rt, "x" * 500) is None
    assert [p["id"] for p in live.live_stream_view(rt, w.owner, sid)["playback_ids"]] == [
        signed["id"]
    ]
    live.delete_live_stream(rt, w.owner, sid)
    assert live.resolve_live_playback(rt, signed["id"]) is None
    assert not live.is_publish_allowed(rt, sid, session.id)


def test_the_watchdog_pass_ends_sessions_nobody_timed(rt: Runtime, w: World) -> None:
    sid = _create(rt, w, reconnect_window_seconds=10)["id"]
    session = live.publisher_connected(rt, sid, protocol="rtmp")
    live.publisher_disconnected(rt, sid, session.id)
    live.idle_expired_sessions(rt)  # inside the window: kept
    assert live.live_stream_view(rt, w.owner, sid)["status"] == "active"
    _away_since(rt, session.id, 11)
    assert live.idle_expired_sessions(rt) >= 1
    assert live.live_stream_view(rt, w.owner, sid)["status"] == "idle"
