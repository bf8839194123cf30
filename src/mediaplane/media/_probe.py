from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import structlog

from . import ffmpeg
from ._errors import InvalidMedia, ProcessFailed, ProcessTimeout
from ._process import ManagedProcess

if TYPE_CHECKING:
    from mediaplane.config import Settings

log = structlog.get_logger("mediaplane.media")

IMAGE_FORMATS = {"image2", "png_pipe", "jpeg_pipe", "bmp_pipe", "webp_pipe", "gif", "tiff_pipe"}
UNREADABLE = (
    "This file is not a video we can read. Upload a video file such as MP4, MOV, MKV or WebM."
)


#: ffprobe ``field_order`` values of interlaced streams (``progressive``: not interlaced).
INTERLACED_FIELD_ORDERS = frozenset({"tt", "bb", "tb", "bt"})
#: ffprobe ``color_transfer`` names of the HDR transfer functions.
HDR_TRANSFERS: dict[str, Literal["hlg", "pq"]] = {"arib-std-b67": "hlg", "smpte2084": "pq"}
#: Frames the ``idet`` pass reads when the stream does not say whether it is interlaced.
IDET_FRAMES = 60
_UNSTATED = {None, "", "unknown", "unspecified", "reserved"}


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


@dataclass(frozen=True)
class MediaInfo:
    """What the transcoder needs to know about a source, from ffprobe."""

    container: str
    duration: float  # seconds
    width: int  # display width: square pixels (sample aspect ratio applied), after rotation
    height: int
    fps: Fraction
    video_codec: str
    has_audio: bool
    audio_codec: str | None
    audio_channels: int | None
    bit_rate: int | None
    picture: Picture = field(default_factory=Picture)

    def video_facts(self) -> dict[str, Any]:
        """The source's video facts kept on the asset: display shape, codec, rate, picture."""
        return {
            "codec": self.video_codec,
            "width": self.width,
            "height": self.height,
            "frame_rate": f"{self.fps.numerator}/{self.fps.denominator}",
            **self.picture.to_json(),
        }


def _fraction(value: Any) -> Fraction:
    """``30000/1001`` (a rate) or ``64:45`` (an aspect ratio); 0 when not a number."""
    try:
        num, _, den = str(value).replace(":", "/").partition("/")
        f = Fraction(int(num), int(den or 1))
    except (ValueError, ZeroDivisionError):
        return Fraction(0)
    return f


def _rotation(stream: dict[str, Any]) -> int:
    for side in stream.get("side_data_list", []) or []:
        if "rotation" in side:
            try:
                return int(float(side["rotation"]))
            except (TypeError, ValueError):
                return 0
    try:
        return int(stream.get("tags", {}).get("rotate", 0))
    except (TypeError, ValueError):
        return 0


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


def _picture(video: dict[str, Any], width: int, height: int, rotation: int) -> Picture:
    sar = _fraction(video.get("sample_aspect_ratio"))
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


def parse_probe(data: dict[str, Any], settings: Settings) -> MediaInfo:
    """Turn ffprobe JSON into MediaInfo, refusing what we cannot or will not transcode."""
    fmt = data.get("format") or {}
    streams = data.get("streams") or []
    if not fmt or not streams:
        raise InvalidMedia(UNREADABLE)
    video = next(
        (
            s
            for s in streams
            if s.get("codec_type") == "video"
            and not (s.get("disposition") or {}).get("attached_pic")
        ),
        None,
    )
    if video is None:
        raise InvalidMedia(
            "The file has no video track. Upload a video; audio-only files are not supported yet."
        )
    container = str(fmt.get("format_name", ""))
    if container in IMAGE_FORMATS or container.endswith("_pipe"):
        raise InvalidMedia("The file is a still image, not a video.")
    width, height = int(video.get("width") or 0), int(video.get("height") or 0)
    limit = settings.max_input_side
    if width <= 0 or height <= 0:
        # ffmpeg reports 0×0 for frame sizes it refuses outright (e.g. 20000×20000).
        raise InvalidMedia(
            "The video frame size could not be read: the file is damaged or its frames are "
            f"larger than the maximum of {limit}×{limit}."
        )
    if width > limit or height > limit or width * height > settings.max_input_pixels:
        raise InvalidMedia(
            f"The video frame size {width}×{height} is larger than the maximum of "
            f"{limit}×{limit}. Scale it down and upload again."
        )
    rotation = _rotation(video)
    picture = _picture(video, width, height, rotation)
    # Plan in square pixels at the display shape: a 720×576 16:9 source is 1024×576.
    width = max(2, round(width * picture.sample_aspect))
    if abs(rotation) % 180 == 90:
        width, height = height, width
    try:
        duration = float(fmt.get("duration") or video.get("duration") or 0)
    except ValueError:
        duration = 0.0
    if duration <= 0:
        raise InvalidMedia("The video has no duration; the file may be truncated or damaged.")
    if duration > settings.max_input_seconds:
        raise InvalidMedia(
            f"The video is {duration / 3600:.1f} hours long; the maximum is "
            f"{settings.max_input_seconds / 3600:.0f} hours."
        )
    fps = _fraction(video.get("avg_frame_rate"))
    if fps <= 0 or fps > 240:
        fps = _fraction(video.get("r_frame_rate"))
    if fps <= 0 or fps > 240:
        fps = Fraction(30)
    audio = next((s for s in streams if s.get("codec_type") == "audio"), None)
    try:
        bit_rate = int(fmt["bit_rate"]) if fmt.get("bit_rate") else None
    except ValueError:
        bit_rate = None
    return MediaInfo(
        container=container,
        duration=duration,
        width=width,
        height=height,
        fps=fps,
        video_codec=str(video.get("codec_name", "unknown")),
        has_audio=audio is not None,
        audio_codec=str(audio.get("codec_name")) if audio else None,
        audio_channels=int(audio.get("channels") or 0) if audio else None,
        bit_rate=bit_rate,
        picture=picture,
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
    tools: ffmpeg.Toolchain, source: Path, settings: Settings, picture: Picture
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


def probe(tools: ffmpeg.Toolchain, source: Path, settings: Settings) -> MediaInfo:
    """Run ffprobe on a local file (bounded in time and memory) and validate the result."""
    if source.stat().st_size == 0:
        raise InvalidMedia("The file is empty.")
    proc = ManagedProcess(
        ffmpeg.probe_argv(tools, source),
        timeout=settings.probe_timeout_seconds,
        memory_bytes=min(settings.subprocess_memory_bytes, 2 * 1024**3),
        name="ffprobe",
    )
    try:
        done = proc.run()
    except ProcessFailed as exc:
        raise InvalidMedia(UNREADABLE + " (it may be truncated or damaged)") from exc
    except ProcessTimeout as exc:
        raise InvalidMedia("Reading the file took too long; it may be damaged.") from exc
    try:
        data = json.loads(done.stdout or b"{}")
    except json.JSONDecodeError as exc:
        raise InvalidMedia(UNREADABLE) from exc
    info = parse_probe(data, settings)
    picture = detect_interlace(tools, source, settings, info.picture)
    return info if picture is info.picture else replace(info, picture=picture)
