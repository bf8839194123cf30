"""The live ladder's pieces without a publisher: the rung plan, the tfdt shift, the output's
master playlist and MPD with added (and dropped) rungs, and the health meter's figures."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime
from pathlib import Path

from mediaplane.clips import H264, Clip, picture
from mediaplane.live import LiveOutput
from mediaplane.live._health import HealthMeter, failed_health
from mediaplane.live._ladder import shift_decode_time
from mediaplane.live._output import PublishFeed
from mediaplane.media import (
    MPD,
    Fmp4Reader,
    Fragment,
    InitSegment,
    MasterPlaylist,
    MediaPlaylist,
    Track,
    plan_live_ladder,
)

SCALE = 90_000
FRAME = SCALE // 30
START = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def test_rungs_are_the_standard_ones_below_the_source() -> None:
    assert [(r.name, r.width, r.height) for r in plan_live_ladder(1920, 1080)] == [
        ("v720", 1280, 720),
        ("v480", 854, 480),
    ]
    assert [(r.width, r.height) for r in plan_live_ladder(640, 360)] == [(426, 240)]
    assert [(r.width, r.height) for r in plan_live_ladder(720, 1280)] == [(480, 854), (360, 640)]
    assert plan_live_ladder(320, 180) == []  # nothing below the lowest rung
    assert plan_live_ladder(0, 0) == []


def test_shift_moves_the_tfdt(tmp_path: Path) -> None:
    clip = Clip(
        seconds=0.2,
        video=picture("64x36", 30),
        codecs=H264,
        extra=("-movflags", "+frag_every_frame+empty_moov+default_base_moof", "-f", "mp4"),
    )
    path = tmp_path / "v.mp4"
    subprocess.run(clip.argv(path), check=True, capture_output=True, timeout=60)
    reader = Fmp4Reader()
    frags = [f for f in reader.feed(path.read_bytes()) if isinstance(f, Fragment)]
    moved = shift_decode_time(frags[1], 90_000)
    assert moved.decode_time == frags[1].decode_time + 90_000
    again = Fmp4Reader()
    assert reader.init is not None
    parsed = [f for f in again.feed(reader.init.data + moved.data) if isinstance(f, Fragment)]
    assert parsed[0].decode_time == moved.decode_time and parsed[0].duration == frags[1].duration


def _feed(out: LiveOutput | PublishFeed, name: str, count: int, gop: int = 30) -> None:
    for n in range(count):
        out.add_fragment(name, Fragment(b"x" * 100, n + 1, 1, n * FRAME, FRAME, 1, n % gop == 0))


def _ladder_output(tmp_path: Path) -> LiveOutput:
    out = LiveOutput(
        tmp_path,
        renditions=["video"],
        low_latency=False,
        part_target=0.5,
        segment_target=2.0,
        dvr_window_seconds=60,
        clock=lambda: START,
    )
    out.add_init("video", InitSegment(b"i", (Track(1, "video", SCALE, "avc1.64001f", 640, 360),)))
    out.add_rendition("v240")
    out.add_init("v240", InitSegment(b"i", (Track(1, "video", SCALE, "avc1.4d4015", 426, 240),)))
    return out


def test_master_and_mpd_list_every_rung(tmp_path: Path) -> None:
    out = _ladder_output(tmp_path)
    _feed(out, "video", 200)
    _feed(out, "v240", 200)
    out.finish()
    master = MasterPlaylist.parse((tmp_path / "master.m3u8").read_bytes())
    assert [v.uri for v in master.variants] == ["video/index.m3u8", "v240/index.m3u8"]
    assert [v.resolution for v in master.variants] == [(640, 360), (426, 240)]
    (video,) = MPD.parse((tmp_path / "manifest.mpd").read_bytes()).periods[0].adaptation_sets
    assert [r.id for r in video.representations] == ["video", "v240"]
    assert video.segment_template is not None
    assert video.segment_template.media == "$RepresentationID$/$Number$.m4s"


def test_a_rung_without_segments_holds_nothing_up(tmp_path: Path) -> None:
    out = _ladder_output(tmp_path)
    _feed(out, "video", 200)  # the encoder never delivers
    master = MasterPlaylist.parse((tmp_path / "master.m3u8").read_bytes())
    assert [v.uri for v in master.variants] == ["video/index.m3u8"]


def test_a_dropped_rung_leaves_the_master(tmp_path: Path) -> None:
    out = _ladder_output(tmp_path)
    _feed(out, "video", 130)
    _feed(out, "v240", 130)
    assert len(MasterPlaylist.parse((tmp_path / "master.m3u8").read_bytes()).variants) == 2
    out.end_rendition("v240")
    assert b"#EXT-X-ENDLIST" in (tmp_path / "v240" / "index.m3u8").read_bytes()
    master = MasterPlaylist.parse((tmp_path / "master.m3u8").read_bytes())
    assert [v.uri for v in master.variants] == ["video/index.m3u8"]


def _init(width: int, height: int) -> InitSegment:
    return InitSegment(b"i2", (Track(1, "video", SCALE, "avc1.4d4015", width, height),))


def test_the_ladder_goes_on_across_a_reconnect(tmp_path: Path) -> None:
    out = _ladder_output(tmp_path)
    _feed(out, "video", 130)
    _feed(out, "v240", 130)
    feed = out.begin_publish(["video"])  # the rungs are not the input's tracks
    feed.add_init("video", _init(640, 360))
    feed.add_rendition("v240")  # the new publish's ladder: the same rung goes on
    feed.add_init("v240", _init(426, 240))
    assert feed.renditions == ("video", "v240")
    _feed(feed, "video", 130)
    _feed(feed, "v240", 130)
    out.finish()
    assert (tmp_path / "v240" / "init-1.mp4").read_bytes() == b"i2"
    rung = MediaPlaylist.parse((tmp_path / "v240" / "index.m3u8").read_bytes())
    assert [s.uri for s in rung.segments] == [f"{n}.m4s" for n in range(6)]
    assert [s.discontinuity for s in rung.segments] == [False] * 3 + [True, False, False]
    assert rung.segments[3].map is not None and rung.segments[3].map.uri == "init-1.mp4"
    master = MasterPlaylist.parse((tmp_path / "master.m3u8").read_bytes())
    assert [v.uri for v in master.variants] == ["video/index.m3u8", "v240/index.m3u8"]
    periods = MPD.parse((tmp_path / "manifest.mpd").read_bytes()).periods
    assert len(periods) == 2
    for period, init in zip(periods, ("init.mp4", "init-1.mp4"), strict=True):
        (video,) = period.adaptation_sets
        assert [r.id for r in video.representations] == ["video", "v240"]
        assert video.segment_template is not None
        assert video.segment_template.initialization == f"$RepresentationID$/{init}"


def test_a_rung_the_next_publish_does_not_feed_leaves_the_master(tmp_path: Path) -> None:
    out = _ladder_output(tmp_path)
    _feed(out, "video", 130)
    _feed(out, "v240", 130)
    feed = out.begin_publish(["video"])
    feed.add_init("video", _init(320, 180))  # smaller now: no v240, but a new rung
    feed.add_rendition("v144")
    feed.add_init("v144", _init(256, 144))
    feed.end_rendition("v240")  # a feed's end_rendition reaches the session while current
    old = PublishFeed(out, 0)
    old.end_rendition("v144")  # an older publish's ladder ends nothing of the new one
    _feed(feed, "video", 130)
    _feed(feed, "v144", 130)
    master = MasterPlaylist.parse((tmp_path / "master.m3u8").read_bytes())
    assert [v.uri for v in master.variants] == ["video/index.m3u8", "v144/index.m3u8"]
    # The new rung is numbered from the publish's first segment, as the source is.
    rung = MediaPlaylist.parse((tmp_path / "v144" / "index.m3u8").read_bytes())
    source = MediaPlaylist.parse((tmp_path / "video" / "index.m3u8").read_bytes())
    assert rung.media_sequence == 3
    assert rung.discontinuity_sequence == 1  # the source's at segment 3: variants line up
    assert source.segments[3].uri == "3.m4s" and source.segments[3].discontinuity
    assert rung.segments[0].map is not None and rung.segments[0].map.uri == "init-1.mp4"


def test_health_figures() -> None:
    now = [0.0]
    meter = HealthMeter(segment_target=2.0, clock=lambda: now[0])
    assert meter.snapshot()["status"] == "starting"
    meter.track("video", {"codec": "avc1.64001f", "width": 640, "height": 360})
    meter.fragment("video", 0.0, 1 / 30, sync=False, source=True)  # before a keyframe
    for n in range(1, 121):  # 4 s at 30 fps, a keyframe every second, at real time
        now[0] = n / 30
        meter.input(5_000)
        meter.fragment("video", n / 30, 1 / 30, sync=n % 30 == 1, source=True)
    h = meter.snapshot()
    assert h["status"] == "healthy" and h["dropped_frames"] == 1
    assert abs(h["frame_rate"] - 30) < 0.01 and h["keyframe_interval"] == 1.0
    assert abs(h["input_bitrate"] - 8 * 5_000 * 30) < 8 * 5_000 * 2
    assert abs(h["encoder_speed"] - 1.0) < 0.05 and h["audio"] is False
    for n in range(121, 400):  # keyframes 4 s apart, longer than the 2 s segments
        now[0] = n / 30
        meter.fragment("video", n / 30, 1 / 30, sync=n % 120 == 0, source=True)
    slow = meter.snapshot()
    assert slow["status"] == "degraded" and "keyframe interval" in slow["warning"]
    failed = failed_health("the video is not H.264", slow)
    assert failed["status"] == "failed" and failed["frame_rate"] == slow["frame_rate"]
