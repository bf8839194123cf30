"""LiveOutput's parts and segments on synthetic CMAF chunks (the timing is what matters
here; the bytes are placeholders, real fMP4 is in test_live_packager.py)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from mediaplane.live import LiveOutput
from mediaplane.live._output import PublishFeed
from mediaplane.media import (
    MPD,
    Fragment,
    InitSegment,
    InvalidMedia,
    MediaPlaylist,
    Track,
)

SCALE = 90_000
FRAME = SCALE // 30  # 30 fps
START = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def _output(tmp_path: Path, **kw: object) -> LiveOutput:
    args: dict[str, object] = {
        "renditions": ["video"],
        "low_latency": True,
        "part_target": 0.5,
        "segment_target": 2.0,
        "dvr_window_seconds": 60,
        "clock": lambda: START,
    }
    args.update(kw)
    out = LiveOutput(tmp_path, **args)  # type: ignore[arg-type]
    track = Track(1, "video", SCALE, "avc1.64001f", 1280, 720)
    out.add_init("video", InitSegment(b"init", (track,)))
    return out


def _frames(out: LiveOutput | PublishFeed, count: int, *, gop: int, first: int = 0) -> None:
    """``count`` one-frame chunks from frame ``first``, a keyframe every ``gop`` frames."""
    for n in range(first, first + count):
        data = n.to_bytes(4, "big")
        out.add_fragment("video", Fragment(data, n + 1, 1, n * FRAME, FRAME, 1, n % gop == 0))


def _playlist(tmp_path: Path) -> MediaPlaylist:
    return MediaPlaylist.parse((tmp_path / "video" / "index.m3u8").read_bytes())


def test_parts_follow_the_target_and_segments_the_keyframes(tmp_path: Path) -> None:
    out = _output(tmp_path)
    _frames(out, 150, gop=60)  # 5 s, a keyframe every 2 s
    pl = _playlist(tmp_path)
    assert [s.uri for s in pl.complete_segments] == ["0.m4s", "1.m4s"]
    assert [s.duration for s in pl.complete_segments] == [2.0, 2.0]
    for seg in pl.complete_segments:
        assert [p.duration for p in seg.parts] == [0.5] * 4
        assert [p.independent for p in seg.parts] == [True, False, False, False]
    # The open segment: 1 s of parts; the hint names its next part.
    assert pl.segments[-1].uri is None
    assert [p.uri for p in pl.segments[-1].parts] == ["2.0.m4s", "2.1.m4s"]
    assert pl.preload_hints[0].uri == "2.2.m4s"
    # Without started_at: the first chunk's arrival less its duration (to the millisecond).
    first, second = pl.segments[0].program_date_time, pl.segments[1].program_date_time
    assert first is not None
    assert second is not None
    assert abs(first - (START - timedelta(seconds=1 / 30))) < timedelta(milliseconds=1)
    assert abs(second - first - timedelta(seconds=2)) < timedelta(milliseconds=1)
    state = json.loads((tmp_path / "video" / "state.json").read_text())
    assert state == {"msn": 2, "part": 1, "ended": False}
    # A segment is the bytes of its parts, which are the bytes of their frames.
    seg0 = (tmp_path / "video" / "0.m4s").read_bytes()
    assert seg0 == b"".join(n.to_bytes(4, "big") for n in range(60))


def test_a_keyframe_always_starts_a_part(tmp_path: Path) -> None:
    out = _output(tmp_path)
    _frames(out, 100, gop=25)  # keyframes every 25 frames: 15 + 10 frame parts
    pl = _playlist(tmp_path)
    durations = [round(p.duration, 3) for s in pl.segments for p in s.parts]
    assert durations[:4] == [0.5, 0.333, 0.5, 0.333]
    seg = pl.complete_segments[0]
    assert seg.duration == pytest.approx(2.5)  # 2 s reached mid-GOP: closed at the next


def test_leading_frames_before_a_keyframe_are_dropped(tmp_path: Path) -> None:
    out = _output(tmp_path)
    _frames(out, 10, gop=1000, first=20)  # no keyframe among them
    assert out.state("video") is None
    _frames(out, 15, gop=15, first=30)  # a keyframe, then one part's worth
    assert out.state("video") == (0, 0)


def test_no_keyframe_for_too_long_fails(tmp_path: Path) -> None:
    out = _output(tmp_path)
    with pytest.raises(InvalidMedia, match="keyframe"):
        _frames(out, 30 * 12, gop=10_000)


def test_finish_completes_the_open_segment(tmp_path: Path) -> None:
    out = _output(tmp_path)
    _frames(out, 70, gop=30)
    out.finish()
    pl = _playlist(tmp_path)
    assert pl.endlist
    assert not pl.preload_hints
    assert [s.duration for s in pl.segments] == [2.0, pytest.approx(70 / 30 - 2, abs=1e-5)]
    state = json.loads((tmp_path / "video" / "state.json").read_text())
    assert state == {"msn": 1, "part": 0, "ended": True}


def test_started_at_anchors_the_program_date_time(tmp_path: Path) -> None:
    out = _output(tmp_path, started_at=START)
    _frames(out, 15, gop=15)
    assert _playlist(tmp_path).segments[0].program_date_time == START


def test_standard_latency_writes_no_parts(tmp_path: Path) -> None:
    out = _output(tmp_path, low_latency=False, segment_target=4.0)
    _frames(out, 300, gop=60)
    pl = _playlist(tmp_path)
    assert [s.duration for s in pl.segments] == [4.0, 4.0]
    assert pl.part_target is None
    assert pl.server_control is None
    assert not list((tmp_path / "video").glob("*.*.m4s"))
    state = json.loads((tmp_path / "video" / "state.json").read_text())
    assert state == {"msn": 1, "part": None, "ended": False}


# -- a session's later publishes (reconnect, slate, backup) ----------------------------------


def test_a_reconnect_continues_the_numbering_after_a_discontinuity(tmp_path: Path) -> None:
    out = _output(tmp_path, started_at=START)
    first = PublishFeed(out, out.current_publish)
    _frames(first, 130, gop=60)  # segments 0 and 1, 10 frames of 2 open
    before = (tmp_path / "video" / "index.m3u8").read_bytes()
    back = START + timedelta(seconds=10)
    feed = out.begin_publish(["video"], started_at=back)
    # The open segment was completed; the playlist is left as it was until the next
    # publish's first part (hls.js mistakes a live LL playlist ending in a complete segment).
    assert (tmp_path / "video" / "index.m3u8").read_bytes() == before
    assert (tmp_path / "video" / "2.m4s").is_file()
    pl = _playlist(tmp_path)
    assert not pl.endlist
    new = Track(1, "video", SCALE, "avc1.640028", 1920, 1080)
    feed.add_init("video", InitSegment(b"init2", (new,)))
    _frames(feed, 90, gop=60)  # the new publisher's clock starts at 0 again
    _frames(first, 30, gop=30, first=130)  # the old publish, late: dropped
    pl = _playlist(tmp_path)
    assert [s.uri for s in pl.segments] == ["0.m4s", "1.m4s", "2.m4s", "3.m4s", None]
    assert [s.discontinuity for s in pl.segments] == [False, False, False, True, False]
    assert [s.map.uri if s.map else None for s in pl.segments] == [
        "init.mp4",
        None,
        None,
        "init-1.mp4",
        None,
    ]
    assert pl.segments[3].program_date_time == back
    assert pl.discontinuity_sequence is None
    assert (tmp_path / "video" / "init-1.mp4").read_bytes() == b"init2"
    assert (tmp_path / "video" / "init.mp4").read_bytes() == b"init"
    state = json.loads((tmp_path / "video" / "state.json").read_text())
    assert state == {"msn": 4, "part": 1, "ended": False}
    # The DASH MPD: a Period per publish, the second on the wall clock of its start.
    mpd = MPD.parse((tmp_path / "manifest.mpd").read_bytes())
    assert mpd.type == "dynamic"
    assert [p.id for p in mpd.periods] == ["0", "1"]
    assert mpd.periods[1].start == "PT10.000S"
    t0 = mpd.periods[0].adaptation_sets[0].segment_template
    t1 = mpd.periods[1].adaptation_sets[0].segment_template
    assert t0 is not None
    assert t1 is not None
    assert (t0.initialization, t0.start_number) == ("video/init.mp4", 0)
    assert (t1.initialization, t1.start_number) == ("video/init-1.mp4", 3)
    assert t1.presentation_time_offset == 0
    assert t1.timeline is not None
    # Low-latency DASH: the segment being written is listed too (as long as the last one),
    # in its own publish's Period only.
    assert [(e.t, e.d) for e in t1.timeline] == [(0, 60 * FRAME), (60 * FRAME, 60 * FRAME)]
    assert t0.timeline is not None
    assert len(t0.timeline) == 3
    assert ("availabilityTimeComplete", "false") in t0.extra
    assert mpd.periods[1].adaptation_sets[0].representations[0].codecs == "avc1.640028"
    publishes = json.loads((tmp_path / "publishes.json").read_text())
    assert [(p["init"], p["first_msn"], p["last_msn"]) for p in publishes] == [
        ("init.mp4", {"video": 0}, {"video": 2}),
        ("init-1.mp4", {"video": 3}, {"video": 3}),
    ]
    out.finish()
    pl = _playlist(tmp_path)
    assert pl.endlist
    assert [s.uri for s in pl.segments][-1] == "4.m4s"
    assert MPD.parse((tmp_path / "manifest.mpd").read_bytes()).type == "static"
    publishes = json.loads((tmp_path / "publishes.json").read_text())
    assert publishes[1]["last_msn"] == {"video": 4}


def test_a_publish_never_starts_before_the_previous_one_ended(tmp_path: Path) -> None:
    out = _output(tmp_path, started_at=START)
    _frames(out, 60, gop=60)
    feed = out.begin_publish(["video"], started_at=START)  # a clock that lies
    feed.add_init("video", InitSegment(b"init2", (Track(1, "video", SCALE, "avc1", 640, 360),)))
    _frames(feed, 30, gop=30)
    pl = _playlist(tmp_path)
    assert pl.segments[1].program_date_time == START + timedelta(seconds=2)


def test_discontinuity_sequence_counts_the_tags_that_left(tmp_path: Path) -> None:
    out = _output(tmp_path, dvr_window_seconds=4)  # the window: 3 targets, 6 s
    _frames(out, 60, gop=60)
    for _ in range(2):
        feed = out.begin_publish(["video"])
        feed.add_init("video", InitSegment(b"i", (Track(1, "video", SCALE, "avc1", 640, 360),)))
        _frames(feed, 60, gop=60)
    _frames(feed, 300, gop=60, first=60)  # 5 more segments of the third publish
    pl = _playlist(tmp_path)
    assert pl.discontinuity_sequence == 2
    assert not any(s.discontinuity for s in pl.segments)
    assert pl.segments[0].map is not None
    assert pl.segments[0].map.uri == "init-2.mp4"
    assert pl.media_sequence == 3


def test_a_publish_with_other_tracks_is_refused(tmp_path: Path) -> None:
    out = _output(tmp_path)
    _frames(out, 60, gop=60)
    with pytest.raises(InvalidMedia, match="same tracks"):
        out.begin_publish(["video", "audio"])
    assert out.current_publish == 0


def test_a_standby_feed_waits_then_takes_over_from_its_next_keyframe(tmp_path: Path) -> None:
    out = _output(tmp_path)
    _frames(out, 70, gop=60)
    standby = out.standby_feed(["video"])
    standby.add_init("video", InitSegment(b"backup", (Track(1, "video", SCALE, "avc1", 640, 360),)))
    _frames(standby, 50, gop=60, first=1000)  # dropped while it waits
    assert out.state("video") == (0, 3)
    assert not (tmp_path / "video" / "init-1.mp4").exists()
    standby.activate()  # its init is written under the new publish's name
    assert (tmp_path / "video" / "init-1.mp4").read_bytes() == b"backup"
    _frames(standby, 70, gop=60, first=1050)  # from its next keyframe (frame 1080) on
    pl = _playlist(tmp_path)
    assert [s.discontinuity for s in pl.segments] == [False, False, True]
    assert pl.segments[2].map is not None
    assert pl.segments[2].map.uri == "init-1.mp4"
    seg = tmp_path / "video" / "2.m4s"
    assert not seg.exists()  # still open: its first part is frame 1080's
    assert pl.segments[2].parts[0].independent
    standby.deactivate()  # on standby again: the publish it fed is completed
    assert (tmp_path / "video" / "2.m4s").read_bytes()[:4] == (1080).to_bytes(4, "big")
    _frames(standby, 30, gop=30, first=1200)
    assert out.state("video") == (2, 2)  # what came on standby was dropped
    with pytest.raises(InvalidMedia, match="same tracks"):
        out.standby_feed(["audio"])
