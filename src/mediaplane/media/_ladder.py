from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

#: (short side in pixels, video bitrate in bits per second) from the top down.
STANDARD_RUNGS: tuple[tuple[int, int], ...] = (
    (2160, 16_000_000),
    (1440, 9_000_000),
    (1080, 5_000_000),
    (720, 2_800_000),
    (480, 1_200_000),
    (360, 700_000),
    (240, 350_000),
)
#: The ladder never has more rungs than this (the encoder decodes once and splits).
MAX_RUNGS = 4
MAX_FPS = Fraction(60)


@dataclass(frozen=True)
class Rung:
    """One video rendition to encode."""

    name: str  # e.g. "v720"; also the rendition's folder in storage
    width: int
    height: int
    bitrate: int  # bits per second (target)
    maxrate: int
    bufsize: int
    fps: Fraction
    gop: int  # frames between keyframes (constant)


def _even(x: float) -> int:
    return max(2, int(round(x / 2.0)) * 2)


def output_fps(source_fps: Fraction) -> Fraction:
    """Frame rate of every rung: the source's, halved while above 60."""
    fps = source_fps if source_fps > 0 else Fraction(30)
    while fps > MAX_FPS:
        fps /= 2
    return fps


def plan_ladder(width: int, height: int, fps: Fraction, segment_seconds: int = 2) -> list[Rung]:
    """Choose renditions for a ``width``×``height`` source: never upscaled, at most MAX_RUNGS.

    Rungs are chosen by the short side, so portrait video gets the same ladder as landscape.
    A source smaller than the lowest standard rung gets one rung at its own size.
    """
    if width <= 0 or height <= 0:
        raise ValueError("source has no frame size")
    out_fps = output_fps(fps)
    gop = max(1, round(out_fps * segment_seconds))
    short, long_ = min(width, height), max(width, height)
    chosen = [(side, rate) for side, rate in STANDARD_RUNGS if side <= short][:MAX_RUNGS]
    if not chosen:
        # Tiny source: one rung at its own size, bitrate scaled by pixel count from 240p.
        ratio = (short * long_) / (240 * 426)
        chosen = [(short, max(100_000, int(350_000 * ratio)))]
    high_fps = out_fps > 30
    rungs = []
    for side, rate in chosen:
        scaled_long = _even(long_ * side / short)
        w, h = (scaled_long, _even(side)) if width >= height else (_even(side), scaled_long)
        rate = int(rate * 1.5) if high_fps else rate
        rungs.append(
            Rung(
                name=f"v{side}",
                width=w,
                height=h,
                bitrate=rate,
                maxrate=int(rate * 1.1),
                bufsize=int(rate * 2),
                fps=out_fps,
                gop=gop,
            )
        )
    return rungs
