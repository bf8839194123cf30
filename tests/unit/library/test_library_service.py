"""The viewer's library services on a migrated SQLite database: progress and resume,
continue watching, favourites, playlists; what the caller may see decides what they may
record and list; hostile input is refused with a clear error."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from sqlalchemy import delete
from sqlalchemy.orm import Session

from mediaplane import library
from mediaplane.accounts import (
    INSTALL,
    Channel,
    ChannelMember,
    ChannelRole,
    Principal,
    Role,
    Scope,
    User,
    Visibility,
)
from mediaplane.catalog import Asset, AssetNotFound, ModerationStatus
from mediaplane.catalog._models import PlaybackId
from mediaplane.errors import Forbidden
from mediaplane.runtime import Runtime
from tests.support import migrated_runtime


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def rt(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Runtime]:
    with migrated_runtime(request.param, tmp_path_factory.mktemp("library")) as runtime:
        yield runtime


@dataclass
class World:
    me: Principal
    other: Principal
    seen: list[str]  # assets in my channel (60 s each)
    hidden: str  # an asset in a channel I am no member of
    channel: str


_count = iter(range(10_000))


def _viewer(s: Session) -> Principal:
    user = User(email=f"v{next(_count)}@example.org", role=Role.VIEWER)  # no password: fast
    s.add(user)
    s.flush()
    return Principal(user.id, Role.VIEWER, Scope.READ, "session")


def _asset(
    s: Session, channel: str, title: str, visibility: Visibility = Visibility.PRIVATE
) -> str:
    asset = Asset(title=title, channel_id=channel, duration=60.0, visibility=visibility)
    asset.playback_ids.append(PlaybackId())
    s.add(asset)
    s.flush()
    return asset.id


@pytest.fixture
def w(rt: Runtime) -> World:
    with rt.db.session() as s:
        me, other = _viewer(s), _viewer(s)
        mine, theirs = Channel(name="mine", created_by=me.user_id), Channel(name="theirs")
        s.add_all([mine, theirs])
        s.flush()
        for who in (me, other):
            s.add(ChannelMember(channel_id=mine.id, user_id=who.user_id, role=ChannelRole.VIEWER))
        seen = [_asset(s, mine.id, f"seen {i}") for i in range(3)]
        return World(me, other, seen, _asset(s, theirs.id, "hidden"), mine.id)


@pytest.fixture
def s(rt: Runtime) -> Iterator[Session]:
    with rt.db.session() as session:
        yield session


# --- progress and history -----------------------------------------------------------------


def test_progress_is_recorded_updated_and_resumed(s: Session, w: World) -> None:
    entry = library.record_progress(s, w.me, w.seen[0], 12.5)
    assert (entry.position_seconds, entry.duration_seconds, entry.finished) == (12.5, 60.0, False)
    assert library.resume_position(entry) == 12.5
    again = library.record_progress(s, w.me, w.seen[0], 30.0, duration=61.0)
    assert again is entry and entry.position_seconds == 30.0 and entry.duration_seconds == 61.0


def test_watching_to_95_percent_finishes_and_resumes_from_the_start(s: Session, w: World) -> None:
    entry = library.record_progress(s, w.me, w.seen[0], 57.0)  # 95 % of 60 s
    assert entry.finished and library.resume_position(entry) == 0.0
    entry = library.record_progress(s, w.me, w.seen[0], 56.9)
    assert not entry.finished


def test_a_position_a_little_past_the_end_is_clamped(s: Session, w: World) -> None:
    entry = library.record_progress(s, w.me, w.seen[0], 63.0)
    assert entry.position_seconds == 60.0 and entry.finished


@pytest.mark.parametrize(
    ("position", "duration"),
    [
        (-1.0, None),
        (math.nan, None),
        (math.inf, None),
        (1e12, None),
        (200.0, None),  # past the asset's 60 s
        (10.0, -5.0),
        (10.0, math.nan),
        (10.0, 1e300),
    ],
)
def test_hostile_positions_are_refused(
    s: Session, w: World, position: float, duration: float | None
) -> None:
    with pytest.raises(library.InvalidLibraryInput):
        library.record_progress(s, w.me, w.seen[0], position, duration)


def test_assets_the_caller_cannot_see_do_not_exist_for_them(s: Session, w: World) -> None:
    for asset_id in (w.hidden, "no-such-asset", "x" * 5000):
        with pytest.raises(AssetNotFound):
            library.record_progress(s, w.me, asset_id, 1.0)
        with pytest.raises(AssetNotFound):
            library.add_favourite(s, w.me, asset_id)
        with pytest.raises(AssetNotFound):
            library.forget(s, w.me, asset_id)


def test_public_and_unlisted_assets_of_other_channels_can_be_kept(s: Session, w: World) -> None:
    theirs = s.get(Asset, w.hidden)
    assert theirs is not None and theirs.channel_id is not None
    for visibility in (Visibility.PUBLIC, Visibility.UNLISTED):
        asset_id = _asset(s, theirs.channel_id, visibility.value, visibility)
        library.record_progress(s, w.me, asset_id, 5.0)
        library.add_favourite(s, w.me, asset_id)
    rows, total = library.history(s, w.me)
    assert total == 2 and {e.asset_id for e, _ in rows} != {w.hidden}
    held = _asset(s, theirs.channel_id, "held", Visibility.PUBLIC)
    s.get(Asset, held).moderation = ModerationStatus.PENDING  # type: ignore[union-attr]
    with pytest.raises(AssetNotFound):
        library.record_progress(s, w.me, held, 1.0)


def test_the_install_has_no_library(s: Session, w: World) -> None:
    with pytest.raises(Forbidden) as caught:
        library.record_progress(s, INSTALL, w.seen[0], 1.0)
    assert caught.value.code == "not_a_user"
    with pytest.raises(Forbidden):
        library.list_playlists(s, INSTALL)


def test_history_is_most_recent_first_and_continue_watching_leaves_out_finished(
    s: Session, w: World
) -> None:
    a, b, c = w.seen
    library.record_progress(s, w.me, a, 10.0)
    library.record_progress(s, w.me, b, 59.0)  # finished
    library.record_progress(s, w.me, c, 0.0)  # opened, never started
    library.record_progress(s, w.me, a, 20.0)  # a again: now the most recent
    rows, total = library.history(s, w.me)
    assert total == 3 and [e.asset_id for e, _ in rows] == [a, c, b]
    rows, total = library.history(s, w.me, continue_watching=True)
    assert total == 1 and [(e.asset_id, e.position_seconds) for e, _ in rows] == [(a, 20.0)]
    rows, total = library.history(s, w.me, limit=1, page=2)
    assert total == 3 and [e.asset_id for e, _ in rows] == [c]
    assert library.history(s, w.other) == ([], 0)  # each user has their own


def test_history_leaves_out_assets_the_caller_can_no_longer_see(s: Session, w: World) -> None:
    library.record_progress(s, w.me, w.seen[0], 10.0)
    s.execute(delete(ChannelMember).where(ChannelMember.user_id == w.me.user_id))
    assert library.history(s, w.me) == ([], 0)
    library.forget(s, w.me, w.seen[0])  # one's own entry can still be removed


def test_forget_one_and_all(s: Session, w: World) -> None:
    for asset_id in w.seen:
        library.record_progress(s, w.me, asset_id, 5.0)
    library.record_progress(s, w.other, w.seen[0], 5.0)
    library.forget(s, w.me, w.seen[0])
    library.forget(s, w.me, w.seen[0])  # again: nothing to do
    assert library.history(s, w.me)[1] == 2
    assert library.forget_all(s, w.me) == 2
    assert library.history(s, w.me)[1] == 0 and library.history(s, w.other)[1] == 1


# --- favourites -----------------------------------------------------------------------------


def test_favourites_are_idempotent_newest_first_and_private(s: Session, w: World) -> None:
    assert library.add_favourite(s, w.me, w.seen[0]) is True
    assert library.add_favourite(s, w.me, w.seen[0]) is False
    library.add_favourite(s, w.me, w.seen[1])
    rows, total = library.favourites(s, w.me)
    assert total == 2 and {a.id for _, a in rows} == {w.seen[0], w.seen[1]}
    assert library.is_favourite(s, w.me, w.seen[0])
    assert not library.is_favourite(s, w.other, w.seen[0])
    library.remove_favourite(s, w.me, w.seen[0])
    library.remove_favourite(s, w.me, w.seen[0])
    assert [a.id for _, a in library.favourites(s, w.me)[0]] == [w.seen[1]]


# --- playlists ------------------------------------------------------------------------------


def _order(s: Session, who: Principal, playlist: library.Playlist) -> list[str]:
    return [a.id for _, a in library.playlist_items(s, who, playlist)]


def test_playlist_items_are_added_moved_and_removed_in_order(s: Session, w: World) -> None:
    a, b, c = w.seen
    playlist = library.create_playlist(s, w.me, "  Weekend  ", "for later")
    assert playlist.name == "Weekend"
    assert library.add_item(s, w.me, playlist.id, a)[1] is True
    library.add_item(s, w.me, playlist.id, b)
    library.add_item(s, w.me, playlist.id, c, position=0)
    assert _order(s, w.me, playlist) == [c, a, b]
    item, created = library.add_item(s, w.me, playlist.id, b, position=1)  # a move
    assert not created and item.position == 1
    assert _order(s, w.me, playlist) == [c, b, a]
    library.add_item(s, w.me, playlist.id, c, position=99)  # past the end: last
    assert _order(s, w.me, playlist) == [b, a, c]
    library.remove_item(s, w.me, playlist.id, a)
    library.remove_item(s, w.me, playlist.id, a)
    items = library.playlist_items(s, w.me, playlist)
    assert [(i.position, x.id) for i, x in items] == [(0, b), (1, c)]
    [summary] = library.list_playlists(s, w.me)
    assert summary.item_count == 2


def test_another_users_playlist_does_not_exist_for_them(s: Session, w: World) -> None:
    playlist = library.create_playlist(s, w.me, "mine")
    for call in (
        lambda: library.get_playlist(s, w.other, playlist.id),
        lambda: library.add_item(s, w.other, playlist.id, w.seen[0]),
        lambda: library.remove_item(s, w.other, playlist.id, w.seen[0]),
        lambda: library.update_playlist(s, w.other, playlist.id, name="taken"),
        lambda: library.delete_playlist(s, w.other, playlist.id),
        lambda: library.get_playlist(s, w.me, "x" * 1000),
    ):
        with pytest.raises(library.PlaylistNotFound):
            call()
    assert library.list_playlists(s, w.other) == []
    assert library.get_playlist(s, w.me, playlist.id).name == "mine"


def test_playlists_refuse_what_they_cannot_hold(
    s: Session, w: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    playlist = library.create_playlist(s, w.me, "p")
    with pytest.raises(AssetNotFound):
        library.add_item(s, w.me, playlist.id, w.hidden)
    with pytest.raises(library.InvalidLibraryInput):
        library.add_item(s, w.me, playlist.id, w.seen[0], position=-1)
    for name in ("", "   ", "x" * 201, "bell\x07"):
        with pytest.raises(library.InvalidLibraryInput):
            library.create_playlist(s, w.me, name)
    monkeypatch.setattr("mediaplane.library._service.MAX_PLAYLIST_ITEMS", 2)
    library.add_item(s, w.me, playlist.id, w.seen[0])
    library.add_item(s, w.me, playlist.id, w.seen[1])
    library.add_item(s, w.me, playlist.id, w.seen[1], position=0)  # a move still works
    with pytest.raises(library.LibraryFull):
        library.add_item(s, w.me, playlist.id, w.seen[2])
    monkeypatch.setattr("mediaplane.library._service.MAX_PLAYLISTS", 1)
    with pytest.raises(library.LibraryFull):
        library.create_playlist(s, w.me, "second")


def test_renaming_and_deleting_a_playlist(s: Session, w: World) -> None:
    playlist = library.create_playlist(s, w.me, "old")
    library.add_item(s, w.me, playlist.id, w.seen[0])
    library.update_playlist(s, w.me, playlist.id, name="new", description="d")
    assert (playlist.name, playlist.description) == ("new", "d")
    library.delete_playlist(s, w.me, playlist.id)
    assert library.list_playlists(s, w.me) == []


def test_deleting_an_asset_takes_it_out_of_every_library(rt: Runtime, w: World) -> None:
    with rt.db.session() as s:
        library.record_progress(s, w.me, w.seen[0], 5.0)
        library.add_favourite(s, w.me, w.seen[0])
        library.add_item(s, w.me, library.create_playlist(s, w.me, "p").id, w.seen[0])
    with rt.db.session() as s:
        s.delete(s.get(Asset, w.seen[0]))
    with rt.db.session() as s:
        assert library.history(s, w.me)[1] == 0
        assert library.favourites(s, w.me)[1] == 0
        assert library.list_playlists(s, w.me)[0].item_count == 0
