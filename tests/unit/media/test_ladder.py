from __future__ import annotations

from fractions import Fraction

import pytest

from mediaplane.media import plan_ladder
from mediaplane.media._ladder import MAX_RUNGS, output_fps


def test_1080p_ladder() -> None:
    rungs = plan_ladder(1920, 1080, Fraction(30))
    assert [(r.width, r.height) for r in rungs] == [
        (1920, 1080),
        (1280, 720),
        (854, 480),
        (640, 360),
    ]
    assert all(r.gop == 60 and r.fps == 30 for r in rungs)
    assert [r.bitrate for r in rungs] == sorted((r.bitrate for r in rungs), reverse=True)
    assert all(r.maxrate > r.bitrate and r.bufsize >= r.maxrate for r in rungs)


def test_never_upscales() -> None:
    rungs = plan_ladder(854, 480, Fraction(25))
    assert max(r.height for r in rungs) == 480
    assert rungs[0].gop == 50


def test_portrait_uses_short_side() -> None:
    rungs = plan_ladder(1080, 1920, Fraction(30))
    assert (rungs[0].width, rungs[0].height) == (1080, 1920)
    assert all(r.height > r.width for r in rungs)


def test_tiny_source_gets_one_rung_at_its_size() -> None:
    rungs = plan_ladder(160, 120, Fraction(15))
    assert len(rungs) == 1
    assert (rungs[0].width, rungs[0].height) == (160, 120)


def test_dimensions_are_even() -> None:
    for w, h in [(1918, 1078), (1001, 563), (720, 576), (3840, 1600)]:
        for r in plan_ladder(w, h, Fraction(24)):
            assert r.width % 2 == 0 and r.height % 2 == 0
            assert abs(r.width / r.height - w / h) < 0.02


def test_at_most_max_rungs() -> None:
    assert len(plan_ladder(3840, 2160, Fraction(30))) == MAX_RUNGS


@pytest.mark.parametrize(
    ("src", "out"),
    [
        (Fraction(30), 30),
        (Fraction(30000, 1001), Fraction(30000, 1001)),
        (Fraction(120), 60),
        (Fraction(240), 60),
        (Fraction(0), 30),
    ],
)
def test_output_fps(src: Fraction, out: Fraction) -> None:
    assert output_fps(src) == out


def test_ntsc_gop_is_whole_frames() -> None:
    r = plan_ladder(1280, 720, Fraction(30000, 1001))[0]
    assert r.gop == 60  # ≈2.002 s at 29.97 fps: constant in frames, aligned across rungs


def test_rejects_no_size() -> None:
    with pytest.raises(ValueError, match="frame size"):
        plan_ladder(0, 0, Fraction(30))
