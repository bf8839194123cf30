from __future__ import annotations

from pathlib import Path

import pytest

from mediaplane.clips import Clip, picture
from mediaplane.config import Settings
from mediaplane.media import (
    MAX_FRAMES,
    THUMBNAIL_WIDTHS,
    Toolchain,
    make_storyboard,
    snap_thumbnail,
    thumbnail_name,
)
from mediaplane.media import ffmpeg as ff
from mediaplane.media._storyboard import storyboard_interval
from tests.support import MEDIA_CACHE, ffprobe_json

TOOLS = Toolchain(
    ffmpeg="/usr/bin/ffmpeg", ffprobe="/usr/bin/ffprobe", packager="/p", ffmpeg_version="5.1"
)


def test_interval_is_whole_segments_and_bounds_the_grid() -> None:
    assert storyboard_interval(12.0, 2) == 2
    assert storyboard_interval(200.0, 2) == 2  # 100 segments: every one
    assert storyboard_interval(201.0, 2) == 4
    assert storyboard_interval(7200.0, 2) == 72
    for duration in (0.5, 9.9, 599.0, 3600.0, 12 * 3600.0):
        interval = storyboard_interval(duration, 2)
        assert interval % 2 == 0
        assert duration / interval <= MAX_FRAMES


def test_snap_time_and_width() -> None:
    assert snap_thumbnail(0.0, 640, 12.0, 2) == (0, 640)
    assert snap_thumbnail(2.9, 100, 12.0, 2) == (2, 160)
    assert snap_thumbnail(3.1, 161, 12.0, 2) == (4, 320)
    assert snap_thumbnail(11.99, 1920, 12.0, 2) == (10, 1280)  # last point before the end
    assert snap_thumbnail(1e7, 500, 12.0, 2) == (10, 640)
    assert snap_thumbnail(1.2, 320, 2.0, 2) == (0, 320)  # a one-segment clip: one point
    keys = {snap_thumbnail(t / 10, w, 7200.0, 2) for t in range(0, 72000, 7) for w in (16, 900)}
    assert len(keys) <= MAX_FRAMES * len(THUMBNAIL_WIDTHS)
    assert thumbnail_name(4, 320) == "thumbs/4000_320.jpg"


def test_storyboard_argv_decodes_keyframes_only() -> None:
    argv = ff.storyboard_argv(TOOLS, Path("/w/v240.mp4"), Path("/w/sb"), 3, [160, 320])
    assert argv[0] == "/usr/bin/ffmpeg"
    assert argv[argv.index("-skip_frame") + 1] == "nokey"
    assert argv.index("-skip_frame") < argv.index("-i")
    assert argv[argv.index("-i") - 2 : argv.index("-i") + 2] == [
        "-f",
        "mp4",
        "-i",
        "file:/w/v240.mp4",
    ]
    assert argv[argv.index("-protocol_whitelist") + 1] == "file"
    assert argv[argv.index("-format_whitelist") + 1] == "mov"
    graph = argv[argv.index("-filter_complex") + 1]
    assert graph == (
        "[0:v:0]select='not(mod(n\\,3))',split=2[in160][in320];"
        "[in160]scale=160:-2[out160];[in320]scale=320:-2[out320]"
    )
    assert [argv[i + 1] for i, a in enumerate(argv) if a == "-map"] == ["[out160]", "[out320]"]
    assert argv[-1] == "file:/w/sb/320_%d.jpg"
    assert "file:/w/sb/160_%d.jpg" in argv


@pytest.fixture(scope="module")
def rung_mp4() -> Path:
    """A lowest-rung-like MP4: 240p, 9 s, a keyframe every 2 s and nowhere else."""
    clip = Clip(
        seconds=9,
        video=picture("426x240", 30),
        audio=(),
        extra=("-g", "60", "-keyint_min", "60", "-sc_threshold", "0"),
    )
    return clip.make(MEDIA_CACHE / "storyboard-rung-240p-9s.mp4", timeout=120)


def test_make_storyboard_real_frames(rung_mp4: Path, tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    tools = Toolchain.discover(settings)
    frames = make_storyboard(tools, settings, rung_mp4, 426, 9.0, tmp_path / "sb")
    assert [(f.time_s, f.width) for f in frames] == [
        (t, w) for w in (160, 320) for t in (0, 2, 4, 6, 8)
    ]
    for f in frames:
        stream = ffprobe_json(f.path)["streams"][0]
        assert stream["codec_name"] == "mjpeg"
        assert stream["width"] == f.width
    # A rung narrower than 320 gets the smallest width only.
    narrow = make_storyboard(tools, settings, rung_mp4, 200, 9.0, tmp_path / "narrow")
    assert {f.width for f in narrow} == {160}


def test_storyboard_points_match_the_snapping() -> None:
    from mediaplane.media import storyboard_points

    assert storyboard_points(12.2, 2) == [0, 2, 4, 6, 8, 10, 12]
    assert storyboard_points(12.02, 2) == [0, 2, 4, 6, 8, 10]  # 12 is the very end
    assert storyboard_points(12.0, 2) == [0, 2, 4, 6, 8, 10]
    points = storyboard_points(7200.0, 2)
    assert len(points) <= MAX_FRAMES
    assert {snap_thumbnail(t / 3, 640, 7200.0, 2)[0] for t in range(0, 21600)} == set(points)
