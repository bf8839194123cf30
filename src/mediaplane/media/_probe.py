from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import ffmpeg
from ._errors import InvalidMedia, ProcessFailed, ProcessTimeout, classify
from ._picture import Picture, detect_interlace, picture_from_stream
from ._process import ManagedProcess

if TYPE_CHECKING:
    from mediaplane.config import Settings

IMAGE_FORMATS = {"image2", "png_pipe", "jpeg_pipe", "bmp_pipe", "webp_pipe", "gif", "tiff_pipe"}
#: Demuxers of texts that name other files or URLs to read (never allowed on an upload).
MANIFEST_FORMATS = {
    "hls", "dash", "concat", "imf", "webm_dash_manifest", "ffmetadata", "sdp", "rtp", "rtsp",
}  # fmt: skip
UNREADABLE = (
    "This file is not a video we can read. Upload a video file such as MP4, MOV, MKV or WebM."
)
DAMAGED = (
    "This file is not a video we can read (it may be truncated or damaged). Upload the "
    "complete original file, or export it again as MP4 (H.264), MOV, MKV or WebM."
)
MANIFEST = (
    "This file is a playlist/manifest (such as HLS .m3u8 or DASH .mpd), not a video file. "
    "Upload the video file itself, such as MP4, MOV, MKV or WebM."
)
#: libavformat's refusal of a demuxer that is not on ``-format_whitelist``. ffprobe exits 1
#: (AVERROR(EINVAL)) for that as for any unreadable file, so this line on stderr is the only
#: place that says which demuxer it was; the text is fixed in libavformat (demux.c).
_NOT_WHITELISTED = re.compile(r"\[([\w,]+) @ 0x[0-9a-fA-F]+\] Format not on whitelist")


def _refusal(format_name: str) -> str:
    """Words for the creator when their file is detected as a demuxer uploads may not use."""
    names = set(format_name.split(","))
    if names & MANIFEST_FORMATS:
        return MANIFEST
    if names & IMAGE_FORMATS or any(n.endswith("_pipe") for n in names):
        return "The file is a still image, not a video."
    return UNREADABLE


def _demuxer(format_name: str) -> str | None:
    """The first name of ffprobe's ``format_name`` that uploads may be read with."""
    return next((n for n in format_name.split(",") if n in ffmpeg.UPLOAD_DEMUXERS), None)


@dataclass(frozen=True)
class AudioStream:
    """One audio stream of a source, as ffprobe lists it."""

    index: int  # ffprobe's stream index in the file (``-map 0:<index>``)
    codec: str
    channels: int
    channel_layout: str | None  # ffmpeg's layout name ("5.1(side)"), None when unknown
    sample_rate: int | None
    language: str | None  # the tag as written (ISO 639-2 usually: "eng", "fre"); no "und"
    title: str | None
    default: bool  # disposition flags
    comment: bool
    visual_impaired: bool


@dataclass(frozen=True)
class MediaInfo:
    """What the transcoder needs to know about a source, from ffprobe.

    An audio-only source (podcast, music) has ``width == height == 0``, ``video_codec``
    None and ``has_video`` False.
    """

    container: str
    #: The allow-listed demuxer every later command opens the source with (``-f``).
    demuxer: str
    duration: float  # seconds
    width: int  # display width: square pixels (sample aspect ratio applied), after rotation
    height: int
    fps: Fraction
    video_codec: str | None
    #: Every decodable audio stream, the one to play by default first (see ``_audio_streams``).
    audio: tuple[AudioStream, ...]
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

    @property
    def has_video(self) -> bool:
        return self.video_codec is not None

    @property
    def has_audio(self) -> bool:
        return bool(self.audio)

    @property
    def audio_codec(self) -> str | None:
        return self.audio[0].codec if self.audio else None

    @property
    def audio_channels(self) -> int | None:
        return self.audio[0].channels if self.audio else None


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


#: At most this many audio streams become renditions (each is one more AAC encode).
MAX_AUDIO_STREAMS = 8


def _flag(stream: dict[str, Any], name: str) -> bool:
    return bool((stream.get("disposition") or {}).get(name))


def _audio_streams(streams: list[dict[str, Any]]) -> tuple[AudioStream, ...]:
    """The decodable audio streams, the default one first, then in file order.

    The default is the first stream flagged ``default`` (else the first stream); exactly
    one stream of the result has ``default`` set.
    """
    found: list[AudioStream] = []
    for position, s in enumerate(streams):
        if s.get("codec_type") != "audio" or not s.get("codec_name"):
            continue
        try:
            channels = int(s.get("channels") or 0)
            index = int(s.get("index", position))  # ffprobe lists streams in index order
            rate = int(s["sample_rate"]) if s.get("sample_rate") else None
        except (TypeError, ValueError):
            continue
        if channels <= 0:
            continue
        tags = {str(k).lower(): str(v) for k, v in (s.get("tags") or {}).items()}
        language = tags.get("language", "").strip().lower() or None
        layout = str(s.get("channel_layout") or "") or None
        found.append(
            AudioStream(
                index=index,
                codec=str(s["codec_name"]),
                channels=channels,
                channel_layout=layout,
                sample_rate=rate,
                language=None if language in (None, "und", "zxx", "mis") else language,
                title=tags.get("title", "").strip()[:200] or None,
                default=_flag(s, "default"),
                comment=_flag(s, "comment"),
                visual_impaired=_flag(s, "visual_impaired"),
            )
        )
    if not found:
        return ()
    found = found[:MAX_AUDIO_STREAMS]
    main = next((a for a in found if a.default), found[0])
    rest = [replace(a, default=False) for a in found if a is not main]
    return (replace(main, default=True), *rest)


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
    audio = _audio_streams(streams)
    container = str(fmt.get("format_name", ""))
    demuxer = _demuxer(container)
    if demuxer is None:
        raise InvalidMedia(_refusal(container))
    if video is None:
        if not audio:
            raise InvalidMedia(
                "The file has no video or audio track we can read. Upload a video or an audio "
                "file (such as MP4, MOV, MKV, WebM, M4A, MP3, WAV or FLAC)."
            )
        return _audio_only(fmt, container, demuxer, audio, settings)
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
    duration = _duration(fmt, video, settings)
    fps = _fraction(video.get("avg_frame_rate"))
    if fps <= 0 or fps > 240:
        fps = _fraction(video.get("r_frame_rate"))
    if fps <= 0 or fps > 240:
        fps = Fraction(30)
    return MediaInfo(
        container=container,
        demuxer=demuxer,
        duration=duration,
        width=width,
        height=height,
        fps=fps,
        video_codec=str(video.get("codec_name", "unknown")),
        audio=audio,
        bit_rate=_bit_rate(fmt),
        picture=picture,
    )


def _bit_rate(fmt: dict[str, Any]) -> int | None:
    try:
        return int(fmt["bit_rate"]) if fmt.get("bit_rate") else None
    except ValueError:
        return None


def _duration(fmt: dict[str, Any], stream: dict[str, Any], settings: Settings) -> float:
    """The source's duration in seconds, refusing none and too long."""
    try:
        duration = float(fmt.get("duration") or stream.get("duration") or 0)
    except ValueError:
        duration = 0.0
    if duration <= 0:
        raise InvalidMedia("The file has no duration; it may be truncated or damaged.")
    if duration > settings.max_input_seconds:
        raise InvalidMedia(
            f"The file is {duration / 3600:.1f} hours long; the maximum is "
            f"{settings.max_input_seconds / 3600:.0f} hours."
        )
    return duration


def _audio_only(
    fmt: dict[str, Any],
    container: str,
    demuxer: str,
    audio: tuple[AudioStream, ...],
    settings: Settings,
) -> MediaInfo:
    """An audio-only source (podcast, music): no picture, every audio stream kept."""
    return MediaInfo(
        container=container,
        demuxer=demuxer,
        duration=_duration(fmt, {}, settings),
        width=0,
        height=0,
        fps=Fraction(0),
        video_codec=None,
        audio=audio,
        bit_rate=_bit_rate(fmt),
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
        refused = _NOT_WHITELISTED.search(exc.stderr_tail)
        if refused is not None:
            raise InvalidMedia(_refusal(refused.group(1))) from exc
        raise classify(exc, DAMAGED) from exc
    except ProcessTimeout as exc:
        raise InvalidMedia("Reading the file took too long; it may be damaged.") from exc
    try:
        data = json.loads(done.stdout or b"{}")
    except json.JSONDecodeError as exc:
        raise InvalidMedia(UNREADABLE) from exc
    info = parse_probe(data, settings)
    picture = detect_interlace(tools, ffmpeg.Source(source, info.demuxer), settings, info.picture)
    return info if picture is info.picture else replace(info, picture=picture)
