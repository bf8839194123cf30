"""Publishing renditions into an asset's presentation on real SQLite and PostgreSQL: the
preview, the base and stitched rungs in any order, and concurrent writers; the events
each write adds (``video.asset.ready``, then one ``video.asset.track.ready`` per track as it
becomes ready, once)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from mediaplane.catalog import Asset, AssetStatus
from mediaplane.events import OutboxRow
from mediaplane.media import Presentation, Rendition, Segment, render_hls_master
from mediaplane.pipeline import publish_renditions, update_presentation
from mediaplane.runtime import Runtime
from tests.support import migrated_runtime


@pytest.fixture(params=["sqlite", "postgres"])
def runtime(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Runtime]:
    with migrated_runtime(request.param, tmp_path) as rt:
        yield rt


def _video(rid: str, height: int, **kw: object) -> Rendition:
    return Rendition(
        id=rid,
        kind="video",
        codecs="avc1.64001f",
        timescale=90000,
        init_size=700,
        segments=[Segment(1, 0, 180180, 1000 * height)],
        width=height * 16 // 9,
        height=height,
        frame_rate="30",
        **kw,  # type: ignore[arg-type]
    )


AUDIO = Rendition("audio", "audio", "mp4a.40.2", 48000, 600, [Segment(1, 0, 96000, 32000)])


def _asset(rt: Runtime) -> str:
    with rt.db.session() as s:
        asset = Asset(title="t", source_key="assets/x/source")
        s.add(asset)
        s.flush()
        asset_id = asset.id
    update_presentation(
        rt,
        asset_id,
        lambda _: Presentation(2.0, 2, pending=["v240", "v360", "v480", "v720"]),
    )
    return asset_id


def _state(rt: Runtime, asset_id: str) -> tuple[AssetStatus, Presentation, int]:
    with rt.db.session() as s:
        row = s.get(Asset, asset_id)
        assert row is not None and row.presentation is not None
        return row.status, Presentation.from_dict(row.presentation), row.presentation_rev


def _events(rt: Runtime, asset_id: str) -> list[tuple[str, str | None]]:
    """The asset's events in outbox order: (type, the track's type for a track event)."""
    with rt.db.session() as s:
        rows = s.scalars(
            select(OutboxRow).where(OutboxRow.object_id == asset_id).order_by(OutboxRow.id)
        ).all()
    out = []
    for r in rows:
        assert r.object_type == "asset"
        if r.type == "video.asset.track.ready":
            assert r.data["asset_id"] == asset_id
        out.append((r.type, r.data["type"] if r.type == "video.asset.track.ready" else None))
    return out


def _track_data(rt: Runtime, asset_id: str) -> list[dict[str, Any]]:
    with rt.db.session() as s:
        rows = s.scalars(
            select(OutboxRow)
            .where(OutboxRow.object_id == asset_id, OutboxRow.type == "video.asset.track.ready")
            .order_by(OutboxRow.id)
        ).all()
        return [dict(r.data) for r in rows]


def _variants(p: Presentation) -> list[str]:
    lines = render_hls_master(p).splitlines()
    return [ln.split("/")[0] for ln in lines if ln.endswith("/media.m3u8") and ln[0] != "#"]


def test_a_rung_stitched_before_the_base_waits_for_it(runtime: Runtime) -> None:
    rt = runtime
    asset_id = _asset(rt)
    preview = _video("preview", 240, muxed=True, complete=False)
    update_presentation(rt, asset_id, lambda p: p.with_renditions([preview]) if p else None)
    status, p, _ = _state(rt, asset_id)
    assert status is AssetStatus.READY and _variants(p) == ["preview"]
    ready, video = ("video.asset.ready", None), ("video.asset.track.ready", "video")
    assert _events(rt, asset_id) == [ready, video]  # the muxed preview: a video track
    (track,) = _track_data(rt, asset_id)
    assert track["max_height"] == 240 and track["renditions"][0]["id"] == "preview"
    update_presentation(rt, asset_id, lambda p: p.with_renditions([preview]) if p else None)
    assert len(_events(rt, asset_id)) == 2  # a growing preview announces nothing new

    # v480 is stitched first: kept unlisted (it has no audio group to pair with yet).
    publish_renditions(rt, asset_id, [_video("v480", 480)], base=False)
    _, p, _ = _state(rt, asset_id)
    assert _variants(p) == ["preview"] and p.rendition("v480") is not None
    assert "v480" not in p.pending

    # The base lists itself and every rung that waited; the preview is kept, unlisted.
    done_preview = _video("preview", 240, muxed=True, listed=False)
    publish_renditions(rt, asset_id, [_video("v240", 240), AUDIO, done_preview], base=True)
    _, p, _ = _state(rt, asset_id)
    assert _variants(p) == ["v240", "v480"]
    assert p.pending == ["v360", "v720"] and p.settled and not p.complete
    preview_now = p.rendition("preview")
    assert preview_now is not None and not preview_now.listed
    assert _events(rt, asset_id) == [ready, video, ("video.asset.track.ready", "audio")]
    audio = _track_data(rt, asset_id)[-1]
    with rt.db.session() as s:
        row = s.get(Asset, asset_id)
        assert row is not None and row.tracks is not None
        assert audio == {**row.tracks[1], "asset_id": asset_id}  # the track as the API has it

    # Later rungs join one by one; the last makes the presentation complete.
    publish_renditions(rt, asset_id, [_video("v360", 360)], base=False)
    assert _variants(_state(rt, asset_id)[1]) == ["v240", "v360", "v480"]
    publish_renditions(rt, asset_id, [_video("v720", 720)], base=False)
    status, p, _ = _state(rt, asset_id)
    assert _variants(p) == ["v240", "v360", "v480", "v720"] and p.complete
    assert status is AssetStatus.READY
    assert len(_events(rt, asset_id)) == 3  # more rungs: the same video track


def test_concurrent_publishers_lose_no_rendition(runtime: Runtime) -> None:
    rt = runtime
    asset_id = _asset(rt)
    publish_renditions(rt, asset_id, [_video("v240", 240), AUDIO], base=True)
    _, _, rev0 = _state(rt, asset_id)
    rungs = [_video(f"v{h}", h) for h in (360, 480, 720)]
    start = threading.Barrier(len(rungs))
    errors: list[BaseException] = []

    def publish(r: Rendition) -> None:
        try:
            start.wait()
            for _ in range(5):  # republishing the same rendition replaces it
                publish_renditions(rt, asset_id, [r], base=False)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=publish, args=(r,)) for r in rungs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    _, p, rev = _state(rt, asset_id)
    assert _variants(p) == ["v240", "v360", "v480", "v720"] and p.complete
    assert [r.id for r in p.renditions].count("v480") == 1
    assert rev == rev0 + 15  # every write landed, none overwrote another
    # the base made it ready with both tracks at once; the racing rungs announced nothing
    assert _events(rt, asset_id) == [
        ("video.asset.ready", None),
        ("video.asset.track.ready", "video"),
        ("video.asset.track.ready", "audio"),
    ]


def test_nothing_is_published_into_an_errored_or_deleted_asset(runtime: Runtime) -> None:
    rt = runtime
    asset_id = _asset(rt)
    with rt.db.session() as s:
        row = s.get(Asset, asset_id)
        assert row is not None
        row.status = AssetStatus.ERRORED
    assert publish_renditions(rt, asset_id, [_video("v360", 360)], base=False) is None
    assert publish_renditions(rt, "no-such-asset", [_video("v360", 360)], base=False) is None
