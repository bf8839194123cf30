"""The source's picture: pixel shape, fields and colour, from ffprobe and an ``idet`` pass.

Every graph that encodes a source starts with :func:`ffmpeg.picture_chain` built from these
facts, so the one-pass ladder, the preview rung and every chunk get the same frames.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import TYPE_CHECKING, Any, Literal

import structlog

from . import ffmpeg
from ._errors import ProcessFailed, ProcessTimeout
from ._process import ManagedProcess

if TYPE_CHECKING:
    from mediaplane.config import Settings

log = structlog.get_logger("mediaplane.media")

#: ffprobe ``field_order`` values of interlaced streams (``progressive``: not interlaced).
INTERLACED_FIELD_ORDERS = frozenset({"tt", "bb", "tb", "bt"})
#: ffprobe ``color_transfer`` names of the HDR transfer functions.
HDR_TRANSFERS: dict[str, Literal["hlg", "pq"]] = {"arib-std-b67": "hlg", "smpte2084": "pq"}
#: Frames the ``idet`` pass reads when the stream does not say whether it is interlaced.
IDET_FRAMES = 60
_UNSTATED = {None, "", "unknown", "unspecified", "reserved"}


def fraction(value: Any) -> Fraction:
    """``64:45`` (as ffprobe writes aspect ratios) or ``64/45``; 0 when not a number."""
    try:
        num, _, den = str(value).replace(":", "/").partition("/")
        return Fraction(int(num), int(den or 1))
    except (ValueError, ZeroDivisionError):
        return Fraction(0)


def _ratio(value: Fraction) -> str:
    return f"{value.numerator}:{value.denominator}"


@dataclass(frozen=True)
class Picture:
    """How the source's frames are meant to be seen: pixel shape, fields and colour.

    Every graph that encodes the source builds its first filters from this
    (:func:`ffmpeg.picture_chain`), so every rendition and chunk gets the same frames.
    """

    coded_width: int = 0
    coded_height: int = 0
    #: Sample (pixel) aspect ratio; 1 for square pixels.
    sample_aspect: Fraction = Fraction(1)
    #: Width / height as displayed: after the sample aspect ratio and the rotation.
    display_aspect: Fraction = Fraction(0)
    rotation: int = 0
    #: ffprobe's field order (``progressive``, ``tt``, ``bb``, ``tb``, ``bt``); None: not stated.
    field_order: str | None = None
    #: ``stream`` when the stream says it is interlaced, ``idet`` when frame analysis found
    #: it, None when progressive.
    interlaced: Literal["stream", "idet"] | None = None
    #: Which field comes first when ``idet`` found it interlaced (the stream's frames say so
    #: otherwise).
    parity: Literal["tff", "bff"] | None = None
    pix_fmt: str = "yuv420p"
    bit_depth: int = 8
    #: ``tv`` (limited) or ``pc`` (full); None: not stated.
    color_range: str | None = None
    color_primaries: str | None = None
    color_transfer: str | None = None
    color_matrix: str | None = None  # ffprobe's ``color_space``

    @property
    def hdr(self) -> Literal["hlg", "pq"] | None:
        """The HDR transfer of the source: ``hlg``, ``pq`` or None (SDR)."""
        return HDR_TRANSFERS.get(self.color_transfer or "")

    @property
    def full_range(self) -> bool:
        return self.color_range == "pc" or self.pix_fmt.startswith("yuvj")

    def to_json(self) -> dict[str, Any]:
        """The facts kept on the asset (for the API and later HDR renditions)."""
        return {
            "coded_width": self.coded_width,
            "coded_height": self.coded_height,
            "sample_aspect_ratio": _ratio(self.sample_aspect),
            "display_aspect_ratio": _ratio(self.display_aspect) if self.display_aspect else None,
            "rotation": self.rotation,
            "field_order": self.field_order,
            "interlaced": self.interlaced is not None,
            "interlace_detected_by": self.interlaced,
            "pix_fmt": self.pix_fmt,
            "bit_depth": self.bit_depth,
            "color_range": self.color_range,
            "color_primaries": self.color_primaries,
            "color_transfer": self.color_transfer,
            "color_matrix": self.color_matrix,
            "hdr": self.hdr,
        }


def _stated(value: Any) -> str | None:
    text = str(value).strip().lower() if value is not None else None
    return None if text in _UNSTATED else text


def _bit_depth(stream: dict[str, Any], pix_fmt: str) -> int:
    try:
        raw = int(stream.get("bits_per_raw_sample") or 0)
    except (TypeError, ValueError):
        raw = 0
    if 8 <= raw <= 16:
        return raw
    # yuv420p10le, p010le, gray12le, yuv444p16be …; 8 bits when the name says nothing.
    m = re.search(r"(?:p|gray|^p0)(\d{1,2})(?:le|be)$", pix_fmt)
    return int(m.group(1)) if m and 8 <= int(m.group(1)) <= 16 else 8


def picture_from_stream(video: dict[str, Any], width: int, height: int, rotation: int) -> Picture:
    sar = fraction(video.get("sample_aspect_ratio"))
    if sar <= 0 or sar > 8 or sar < Fraction(1, 8):
        sar = Fraction(1)
    aspect = Fraction(width) * sar / height
    if abs(rotation) % 180 == 90:
        aspect = 1 / aspect
    order = _stated(video.get("field_order"))
    pix_fmt = str(video.get("pix_fmt") or "yuv420p")
    return Picture(
        coded_width=width,
        coded_height=height,
        sample_aspect=sar,
        display_aspect=aspect,
        rotation=rotation,
        field_order=order,
        interlaced="stream" if order in INTERLACED_FIELD_ORDERS else None,
        pix_fmt=pix_fmt,
        bit_depth=_bit_depth(video, pix_fmt),
        color_range=_stated(video.get("color_range")),
        color_primaries=_stated(video.get("color_primaries")),
        color_transfer=_stated(video.get("color_transfer")),
        color_matrix=_stated(video.get("color_space")),
    )


def parse_idet(stderr: str, frames: int = IDET_FRAMES) -> Literal["tff", "bff"] | None:
    """The field order ``idet`` found (its multi-frame counts in ffmpeg's log), or None
    when most frames look progressive or undetermined."""
    found = re.findall(
        r"Multi frame detection:\s*TFF:\s*(\d+)\s*BFF:\s*(\d+)\s*Progressive:\s*(\d+)", stderr
    )
    if not found:
        return None
    tff, bff, progressive = (int(g) for g in found[-1])
    # Interlaced only on clear evidence: twice as many woven frames as progressive ones,
    # and at least a quarter of the frames read.
    if tff + bff < max(2 * progressive, frames // 4, 1):
        return None
    return "tff" if tff >= bff else "bff"


def detect_interlace(
    tools: ffmpeg.Toolchain, source: ffmpeg.Source, settings: Settings, picture: Picture
) -> Picture:
    """Run ``idet`` over the first frames when the stream does not say whether it is
    interlaced; the picture facts with what it found."""
    if picture.field_order is not None:
        return picture
    proc = ManagedProcess(
        ffmpeg.idet_argv(tools, source, frames=IDET_FRAMES),
        timeout=settings.probe_timeout_seconds,
        memory_bytes=min(settings.subprocess_memory_bytes, 2 * 1024**3),
        name="ffmpeg-idet",
    )
    try:
        done = proc.run()
    except (ProcessFailed, ProcessTimeout) as exc:
        # The encode reads the same frames and reports a damaged file in words; here the
        # source is only treated as progressive.
        log.warning("probe.idet_failed", error=str(exc))
        return picture
    parity = parse_idet(done.stderr_tail)
    return replace(picture, interlaced="idet", parity=parity) if parity else picture
