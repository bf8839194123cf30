from __future__ import annotations

from fractions import Fraction

import pytest

from mediaplane.media import Chunk, plan_chunks, plan_ladder
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


def test_chunks_hold_whole_gops_and_cover_the_source() -> None:
    fps, gop = Fraction(30000, 1001), 60
    chunks = plan_chunks(65.0, fps, gop, 20.0)
    # 20 s ≈ 10 GOPs of 2.002 s: 600 frames per chunk; 65 s = 1948 frames.
    assert [c.start_frame for c in chunks] == [0, 600, 1200]
    assert [c.frames for c in chunks] == [600, 600, None]  # the last runs to the end
    assert all(c.start_frame % gop == 0 for c in chunks)
    assert [c.index for c in chunks] == [0, 1, 2]
    assert chunks[1].start_seconds(fps) == Fraction(600 * 1001, 30000)


def test_a_short_tail_joins_the_chunk_before_it() -> None:
    chunks = plan_chunks(41.0, Fraction(30), 60, 20.0)  # 1230 frames: the tail is 30
    assert [(c.start_frame, c.frames) for c in chunks] == [(0, 600), (600, None)]


def test_short_sources_are_one_chunk_and_chunks_are_at_least_one_gop() -> None:
    assert plan_chunks(3.0, Fraction(25), 50, 20.0) == [Chunk(0, 0, None)]
    chunks = plan_chunks(10.0, Fraction(30), 60, 0.5)  # asked for less than a GOP
    assert [c.frames for c in chunks[:-1]] == [60] * (len(chunks) - 1)
    assert len(chunks) == 5
    with pytest.raises(ValueError, match="positive"):
        plan_chunks(10.0, Fraction(30), 0, 2.0)
