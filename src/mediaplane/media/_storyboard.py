"""Thumbnails on a small grid: snapped times and widths, and the storyboard made with the ladder.

Thumbnail requests name any time and width; an origin that extracted each pair would run an
ffmpeg per request and store without bound. Instead every request is snapped:

* **width** to :data:`THUMBNAIL_WIDTHS` (160, 320, 640, 1280): the smallest one at least as
  wide as asked, 1280 for anything wider — list thumbnails, seek previews, the player poster
  and a full-width poster;
* **time** to the storyboard grid: every ``interval`` seconds from 0, where the interval is a
  whole number of segments chosen so an asset has at most :data:`MAX_FRAMES` grid points
  (a 10 s clip with 2 s segments: every 2 s; a two-hour film: every 72 s). Grid points fall
  on segment starts, which are keyframes: extraction decodes one frame.

So an asset has at most ``MAX_FRAMES × len(THUMBNAIL_WIDTHS)`` thumbnails. The storyboard —
the grid at the two small widths — is made once by the asset job from the lowest rung
(:func:`make_storyboard`, decoding only keyframes), so seek previews never start an ffmpeg
in the web process.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from . import ffmpeg
from ._errors import InvalidMedia
from ._process import ManagedProcess

if TYPE_CHECKING:
    from pathlib import Path

    from mediaplane.config import Settings

__all__ = [
    "MAX_FRAMES",
    "STORYBOARD_WIDTHS",
    "THUMBNAIL_WIDTHS",
    "StoryboardFrame",
    "make_storyboard",
    "snap_thumbnail",
    "snap_width",
    "storyboard_interval",
    "storyboard_points",
    "thumbnail_name",
]

THUMBNAIL_WIDTHS = (160, 320, 640, 1280)
#: The widths the asset job makes for every grid point (seek previews, list thumbnails).
STORYBOARD_WIDTHS = (160, 320)
MAX_FRAMES = 100


def storyboard_interval(duration: float, segment_seconds: int) -> int:
    """Seconds between grid points: whole segments, at most :data:`MAX_FRAMES` points."""
    segments = max(1, math.ceil(duration / segment_seconds))
    return segment_seconds * max(1, math.ceil(segments / MAX_FRAMES))


def _last_point(duration: float, interval: int) -> int:
    return max(0, math.floor(max(0.0, duration - 0.05) / interval))


def snap_width(width: int) -> int:
    """The smallest of :data:`THUMBNAIL_WIDTHS` at least ``width`` wide (the largest for a
    wider request)."""
    return next((w for w in THUMBNAIL_WIDTHS if w >= width), THUMBNAIL_WIDTHS[-1])


def snap_thumbnail(
    time_s: float, width: int, duration: float, segment_seconds: int
) -> tuple[int, int]:
    """(grid time in whole seconds, snapped width) for a request at ``time_s``, ``width``."""
    interval = storyboard_interval(duration, segment_seconds)
    point = min(round(max(0.0, time_s) / interval), _last_point(duration, interval))
    return point * interval, snap_width(width)


def storyboard_points(duration: float, segment_seconds: int) -> list[int]:
    """Every grid time (whole seconds) of an asset, from 0."""
    interval = storyboard_interval(duration, segment_seconds)
    return [n * interval for n in range(_last_point(duration, interval) + 1)]


def thumbnail_name(time_s: int, width: int) -> str:
    """The object name (under the asset's prefix) of the thumbnail at a grid point."""
    return f"thumbs/{time_s * 1000}_{width}.jpg"


@dataclass(frozen=True)
class StoryboardFrame:
    time_s: int  # grid time in seconds
    width: int
    path: Path


def make_storyboard(
    tools: ffmpeg.Toolchain,
    settings: Settings,
    rendition: Path,
    rendition_width: int,
    duration: float,
    out_dir: Path,
) -> list[StoryboardFrame]:
    """JPEGs at every grid point, at each of :data:`STORYBOARD_WIDTHS` no wider than the
    rendition (the smallest at least), from one packaged-rung MP4 (``rendition``)."""
    segment_seconds = settings.segment_seconds
    interval = storyboard_interval(duration, segment_seconds)
    widths = [w for w in STORYBOARD_WIDTHS if w <= rendition_width] or [STORYBOARD_WIDTHS[0]]
    out_dir.mkdir(parents=True, exist_ok=True)
    ManagedProcess(
        ffmpeg.storyboard_argv(tools, rendition, out_dir, interval // segment_seconds, widths),
        timeout=60 + duration / 10,
        memory_bytes=min(settings.subprocess_memory_bytes, 2 * 1024**3),
        name="ffmpeg-storyboard",
    ).run()
    last = _last_point(duration, interval)
    frames = [
        StoryboardFrame(n * interval, w, out_dir / f"{w}_{n + 1}.jpg")
        for w in widths
        for n in range(last + 1)
    ]
    frames = [f for f in frames if f.path.is_file() and f.path.stat().st_size > 0]
    if not frames:
        raise InvalidMedia("no storyboard frame could be decoded")
    return frames
