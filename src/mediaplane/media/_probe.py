from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import ffmpeg
from ._errors import InvalidMedia, ProcessFailed, ProcessTimeout
from ._picture import Picture, detect_interlace, picture_from_stream
from ._process import ManagedProcess

if TYPE_CHECKING:
    from mediaplane.config import Settings

IMAGE_FORMATS = {"image2", "png_pipe", "jpeg_pipe", "bmp_pipe", "webp_pipe", "gif", "tiff_pipe"}
UNREADABLE = (
    "This file is not a video we can read. Upload a video file such as MP4, MOV, MKV or WebM."
)


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
    try:
        num, _, den = str(value).partition("/")
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
    picture = picture_from_stream(video, width, height, rotation)
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
