from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._probe import MediaInfo

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


def plan_ladder(
    width: int,
    height: int,
    fps: Fraction,
    segment_seconds: int = 2,
    *,
    aspect: Fraction | None = None,
) -> list[Rung]:
    """Choose renditions for a ``width``×``height`` source: never upscaled, at most MAX_RUNGS.

    ``width``×``height`` is the display shape in square pixels (a 720×576 16:9 PAL frame
    is 1024×576) and so is every rung: renditions have square pixels. ``aspect``, the exact
    display aspect (width / height) where known, keeps rounding from bending the shape.
    Rungs are chosen by the short side, so portrait video gets the same ladder as landscape.
    A source smaller than the lowest standard rung gets one rung at its own size.
    """
    if width <= 0 or height <= 0:
        raise ValueError("source has no frame size")
    out_fps = output_fps(fps)
    gop = max(1, round(out_fps * segment_seconds))
    short, long_ = min(width, height), max(width, height)
    shape = Fraction(long_, short)  # long side / short side of every rung
    if aspect is not None and aspect > 0:
        shape = aspect if aspect >= 1 else 1 / aspect
    chosen = [(side, rate) for side, rate in STANDARD_RUNGS if side <= short][:MAX_RUNGS]
    if not chosen:
        # Tiny source: one rung at its own size, bitrate scaled by pixel count from 240p.
        ratio = (short * long_) / (240 * 426)
        chosen = [(short, max(100_000, int(350_000 * ratio)))]
    high_fps = out_fps > 30
    rungs = []
    for side, rate in chosen:
        scaled_long = _even(float(side * shape))
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


def source_fps(info: MediaInfo, *, field_rate: bool = False) -> Fraction:
    """Frames per second the source gives the ladder: twice its frame rate when it is
    interlaced and deinterlaced to one frame per field (``field_rate``)."""
    return info.fps * 2 if field_rate and info.picture.interlaced else info.fps


def plan_source_ladder(
    info: MediaInfo, segment_seconds: int = 2, *, field_rate: bool = False
) -> list[Rung]:
    """:func:`plan_ladder` for a probed source: its display shape and deinterlaced rate."""
    return plan_ladder(
        info.width,
        info.height,
        source_fps(info, field_rate=field_rate),
        segment_seconds,
        aspect=info.picture.display_aspect or None,
    )


@dataclass(frozen=True)
class Chunk:
    """A span of output frames of one rung, encoded on its own and concatenated later.

    Every chunk but the last holds a whole number of GOPs, so each starts on a keyframe
    of the global grid and the stitched rung has the same segment boundaries as a one-pass
    encode.
    """

    index: int
    start_frame: int
    frames: int | None  # None: to the end of the source

    def start_seconds(self, fps: Fraction) -> Fraction:
        return self.start_frame / fps


def plan_chunks(duration: float, fps: Fraction, gop: int, chunk_seconds: float) -> list[Chunk]:
    """Split ``duration`` seconds of output at ``fps`` into chunks of about ``chunk_seconds``,
    each a whole number of ``gop``-frame GOPs; the last chunk runs to the end."""
    if gop <= 0 or fps <= 0:
        raise ValueError("gop and fps must be positive")
    gops_per_chunk = max(1, round(chunk_seconds * fps / gop))
    frames_per_chunk = gops_per_chunk * gop
    total = max(1, int(duration * fps))  # frames the source spans (the last chunk takes the rest)
    count = max(1, -(-total // frames_per_chunk))
    # A last chunk of less than half a chunk is folded into the one before it.
    if count > 1 and total - (count - 1) * frames_per_chunk < frames_per_chunk / 2:
        count -= 1
    return [
        Chunk(i, i * frames_per_chunk, None if i == count - 1 else frames_per_chunk)
        for i in range(count)
    ]
