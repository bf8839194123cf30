"""The only place that builds ffmpeg, ffprobe and Shaka Packager command lines, and where
the three programs are found and checked (:meth:`Toolchain.discover`).

Every builder returns ``list[str]`` (never a shell string). Inputs are read only through the
``file`` and ``pipe`` protocols, and an upload only by a container demuxer from
:data:`UPLOAD_DEMUXERS`: the probe detects it under ``-format_whitelist``, and every later
command that reads the upload gets its arguments from :func:`source_input`, which forces the
demuxer the probe named (``-f``) — so ffmpeg never follows a URL or path named inside an upload.
"""

from __future__ import annotations

import math
import os
import platform
import re
import shutil
import subprocess
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from ._errors import MediaError, ToolMissing
from ._protection import common_pssh

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from mediaplane.config import Settings

    from ._ladder import Chunk, Rung
    from ._package import PackagerInput
    from ._picture import Picture
    from ._probe import AudioStream
    from ._protection import Encryption, TrackKey

#: The demuxers an upload may be read with, by the names ``ffmpeg -demuxers`` lists (5.1).
#: Each reads only the bytes it is given. Left out on purpose: every demuxer that opens the
#: files or URLs a text inside the upload names — hls, dash, concat, imf,
#: webm_dash_manifest, ffmetadata, sdp, rtp, image2 (file patterns) — which, with ``file:``
#: allowed, publishes any file the worker can read; and raw/virtual ones (data, tty, lavfi,
#: image pipes) that are not video containers. The mov demuxer follows external data
#: references only with ``enable_drefs``, which is off by default.
UPLOAD_DEMUXERS: tuple[str, ...] = (
    *("mov", "mp4", "m4a", "3gp", "3g2", "mj2"),  # one demuxer: "mov,mp4,m4a,3gp,3g2,mj2"
    *("matroska", "webm"),  # one demuxer: "matroska,webm"
    *("mpegts", "mpeg", "avi", "flv", "ogg", "mxf", "asf", "dv"),
    *("mp3", "aac", "flac", "wav", "w64", "aiff", "caf"),  # audio containers
)
FORMAT_WHITELIST = ",".join(UPLOAD_DEMUXERS)

AUDIO_BITRATE = 128_000
AUDIO_RATE = 48_000
REQUIRED_ENCODERS = ("libx264", "aac")
MIN_VERSION = (5, 1)
#: Shaka Packager: the pinned npm package ships 3.4; 3.0 is the first with the options used.
MIN_PACKAGER_VERSION = (3, 0)


@dataclass(frozen=True)
class Toolchain:
    """Resolved paths of ffmpeg, ffprobe and the packager, checked once at startup."""

    ffmpeg: str
    ffprobe: str
    packager: str
    ffmpeg_version: str
    packager_version: str = ""

    @classmethod
    def discover(cls, settings: Settings) -> Toolchain:
        """Find the three programs and check their versions (and ffmpeg's encoders);
        :class:`ToolMissing` says what to install or set when one is missing or too old."""
        ffmpeg = shutil.which(settings.ffmpeg_path)
        ffprobe = shutil.which(settings.ffprobe_path)
        if not ffmpeg or not ffprobe:
            raise ToolMissing(
                "ffmpeg/ffprobe not found: install them (Debian/Ubuntu: `apt-get install ffmpeg`)"
                " or set MEDIAPLANE_FFMPEG_PATH / MEDIAPLANE_FFPROBE_PATH"
            )
        out = subprocess.run(
            [ffmpeg, "-hide_banner", "-version"], capture_output=True, text=True, timeout=20
        ).stdout
        m = re.search(r"ffmpeg version (?:n)?(\d+)\.(\d+)", out)
        version = m.group(0).split()[-1] if m else "unknown"
        if m and (int(m.group(1)), int(m.group(2))) < MIN_VERSION:
            raise ToolMissing(f"ffmpeg {version} is too old: Mediaplane needs 5.1 or newer")
        encoders = subprocess.run(
            [ffmpeg, "-hide_banner", "-encoders"], capture_output=True, text=True, timeout=20
        ).stdout
        missing = [e for e in REQUIRED_ENCODERS if not re.search(rf"\s{e}\s", encoders)]
        if missing:
            raise ToolMissing(f"ffmpeg at {ffmpeg} lacks encoders: {', '.join(missing)}")
        packager = find_packager(settings)
        return cls(ffmpeg, ffprobe, packager, version, check_packager(packager))


def find_packager(settings: Settings) -> str:
    """Path of the Shaka Packager binary: the setting, or the one inside the npm package."""
    if settings.packager_path:
        found = shutil.which(settings.packager_path)
        if not found:
            raise ToolMissing(f"MEDIAPLANE_PACKAGER_PATH={settings.packager_path} is not a program")
        return found
    system = {"Linux": "linux", "Darwin": "osx"}.get(platform.system(), "")
    arch = {"x86_64": "x64", "amd64": "x64", "aarch64": "arm64", "arm64": "arm64"}.get(
        platform.machine().lower(), ""
    )
    binary = (
        settings.effective_node_modules / "shaka-packager" / "bin" / f"packager-{system}-{arch}"
    )
    if not binary.is_file():
        raise ToolMissing(
            f"Shaka Packager not found at {binary}: run `npm ci` in the checkout "
            "(it ships in the pinned shaka-packager npm package) or set MEDIAPLANE_PACKAGER_PATH"
        )
    if not os.access(binary, os.X_OK):
        binary.chmod(0o755)
    return str(binary)


def packager_version_argv(packager: str) -> list[str]:
    return [packager, "--version"]


def parse_packager_version(output: str) -> tuple[int, int, int] | None:
    """``packager version v3.4.2-c819dea-release`` → (3, 4, 2); None if it says no version."""
    m = re.search(r"packager(?:\.exe)? version v?(\d+)\.(\d+)(?:\.(\d+))?", output)
    if m is None:
        return None
    return int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)


def check_packager(packager: str) -> str:
    """The version of the packager at ``packager`` (``3.4.2``); :class:`ToolMissing` when it
    cannot run, prints no version, or is older than :data:`MIN_PACKAGER_VERSION`."""
    hint = "run `npm ci` in the checkout or set MEDIAPLANE_PACKAGER_PATH"
    try:
        done = subprocess.run(
            packager_version_argv(packager), capture_output=True, text=True, timeout=20
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise ToolMissing(f"Shaka Packager at {packager} does not run ({exc}): {hint}") from exc
    found = parse_packager_version(done.stdout + done.stderr)
    if found is None:
        raise ToolMissing(f"{packager} reports no Shaka Packager version: {hint}")
    version = ".".join(map(str, found))
    if found[:2] < MIN_PACKAGER_VERSION:
        need = ".".join(map(str, MIN_PACKAGER_VERSION))
        raise ToolMissing(
            f"Shaka Packager {version} at {packager} is too old: Mediaplane needs {need} or "
            f"newer ({hint})"
        )
    return version


def packager_argv(
    packager: str,
    inputs: Sequence[PackagerInput],
    out_dir: Path,
    *,
    segment_seconds: int,
    mpd_output: Path,
    encryption: Encryption | None = None,
    key_file: Path | None = None,
) -> list[str]:
    """Package encoded MP4 tracks into CMAF: ``out_dir/<rendition>/init.mp4`` and
    ``out_dir/<rendition>/<n>.m4s`` (n from 1), plus an MPD at ``mpd_output`` that describes
    them (read back into a Presentation, never served).

    One stream descriptor per input (``in=…,stream=…,…``): the packager splits descriptors
    on ``,`` and ``=``, so a path holding either is refused rather than misread.

    ``encryption`` (cenc or cbcs) makes it encrypt with raw keys: each stream names its
    key's DRM label (``drm_label=``), every label's KID and key go in ``--keys``, the
    W3C Common PSSH is written into the init segments, and nothing is left in the clear
    (``--clear_lead 0``). HLS AES-128 is packaged clear here and encrypted afterwards.
    The keys never enter the argv (which is logged, and readable in /proc): they are in
    ``key_file`` (``--flagfile``), whose text :func:`packager_key_flags` makes.
    """
    cenc = encryption is not None and encryption.scheme != "aes-128"
    argv = [packager]
    for inp in inputs:
        if "," in str(inp.path) or "=" in str(inp.path):
            raise MediaError(f"packager input path may not contain ',' or '=': {inp.path}")
        d = out_dir / inp.rendition_id
        desc = [
            f"in={inp.path}",
            f"stream={inp.kind}",
            f"init_segment={d / 'init.mp4'}",
            f"segment_template={d / '$Number$.m4s'}",
        ]
        if inp.language:
            desc.append(f"language={inp.language}")
        if cenc:
            assert encryption is not None
            desc.append(f"drm_label={encryption.key_for(inp.rendition_id).label}")
        argv.append(",".join(desc))
    if cenc:
        assert encryption is not None
        if key_file is None:
            raise MediaError("an encrypted packaging needs a key file (--flagfile)")
        systems = ["--protection_systems", "CommonSystem"]
        if encryption.systems:  # the key provider's boxes beside the Common PSSH
            kids = sorted({k.kid for k in encryption.keys.values()})
            boxes = common_pssh(kids) + b"".join(b.pssh for b in encryption.systems)
            systems = ["--pssh", boxes.hex()]
        argv += [
            "--enable_raw_key_encryption",
            f"--flagfile={key_file}",
            "--protection_scheme", encryption.scheme,
            *systems,
            "--clear_lead", "0",
        ]  # fmt: skip
    argv += [
        "--segment_duration", str(segment_seconds),
        "--mpd_output", str(mpd_output),
        "--quiet",
    ]  # fmt: skip
    return argv


def packager_key_flags(keys: Iterable[TrackKey], *, labelled: bool = True) -> str:
    """The text of a packager ``--flagfile`` holding raw keys: ``--keys=label=L:key_id=…:
    key=…`` (comma-separated; the label empty with ``labelled=False``, for decryption)."""
    each = (
        f"label={k.label if labelled else ''}:key_id={k.kid.hex()}:key={k.key.hex()}" for k in keys
    )
    return "--keys=" + ",".join(each) + "\n"


def packager_decrypt_argv(
    packager: str, source: Path, kind: str, output: Path, key_file: Path
) -> list[str]:
    """Decrypt one cenc/cbcs track (fragmented MP4, as our CMAF segments concatenate to)
    into a clear MP4 at ``output``, with the raw key in ``key_file``
    (:func:`packager_key_flags` with ``labelled=False``)."""
    for path in (source, output):
        if "," in str(path) or "=" in str(path):
            raise MediaError(f"packager path may not contain ',' or '=': {path}")
    return [
        packager,
        f"in={source},stream={kind},output={output}",
        "--enable_raw_key_decryption",
        f"--flagfile={key_file}",
        "--quiet",
    ]  # fmt: skip


@dataclass(frozen=True)
class Source:
    """An upload on local disk and the allow-listed demuxer its probe named
    (:attr:`MediaInfo.demuxer`); the only way a builder is given an upload to read."""

    path: Path
    demuxer: str

    def __post_init__(self) -> None:
        if self.demuxer not in UPLOAD_DEMUXERS:
            raise ValueError(f"{self.demuxer!r} is not a demuxer uploads may be read with")


def source_input(source: Source) -> list[str]:
    """The input arguments of every command that reads an upload: local file only, the
    probe's demuxer forced (nothing is detected again), and the allow-list once more, which
    nested inputs inherit. Input options (``-ss``) may come before it."""
    return [
        "-protocol_whitelist", "file",
        "-format_whitelist", FORMAT_WHITELIST,
        "-f", source.demuxer,
        "-i", "file:" + str(source.path),
    ]  # fmt: skip


def probe_argv(tools: Toolchain, source: Path) -> list[str]:
    """ffprobe of an upload: the demuxer is detected, but only allow-listed ones may open it
    (a refused one fails with ``[name @ 0x…] Format not on whitelist`` on stderr)."""
    return [
        tools.ffprobe,
        "-v", "error",
        "-protocol_whitelist", "file",
        "-format_whitelist", FORMAT_WHITELIST,
        "-print_format", "json",
        "-show_format",
        "-show_streams",
        "file:" + str(source),
    ]  # fmt: skip


def _ffmpeg(tools: Toolchain, *, progress: bool) -> list[str]:
    """The start of every encoding command: quiet, never interactive, overwrite; with
    ``progress``, ``key=value`` progress lines on stdout. (Protocol and format whitelists are
    per-input options in the ffmpeg CLI: each input brings its own, see :func:`source_input`.)"""
    argv = [
        tools.ffmpeg,
        "-hide_banner", "-nostdin", "-y",
        "-loglevel", "error",
    ]  # fmt: skip
    return [*argv, "-progress", "pipe:1", "-nostats"] if progress else argv


def idet_argv(tools: Toolchain, source: Source, *, frames: int) -> list[str]:
    """Read the first ``frames`` frames of the first video track through ``idet``; its
    counts of interlaced and progressive frames end ffmpeg's log (stderr, level info)."""
    return [
        tools.ffmpeg,
        "-hide_banner", "-nostdin", "-nostats",
        "-loglevel", "info",
        *source_input(source),
        "-map", "0:v:0",
        "-vf", "idet",
        "-frames:v", str(frames),
        "-an", "-sn", "-dn",
        "-f", "null", "-",
    ]  # fmt: skip


def _scale(rung: Rung) -> str:
    """The rung's scaler: the same in every graph, so chunks match one-pass frames. Its
    output has square pixels, so a rendition is the display shape (see ``plan_ladder``)."""
    return f"scale={rung.width}:{rung.height}:flags=bicubic,setsar=1"


#: Colour names (ffprobe's) that zscale understands as they are.
_Z_TRANSFERS = {"bt709", "smpte170m", "bt470bg", "bt470m", "linear", "bt2020-10", "bt2020-12"}
_Z_TRANSFERS |= {"smpte2084", "arib-std-b67", "iec61966-2-1", "iec61966-2-4"}
_Z_PRIMARIES = {"bt709", "bt470m", "bt470bg", "smpte170m", "smpte240m", "film", "bt2020"}
_Z_PRIMARIES |= {"smpte428", "smpte431", "smpte432", "jedec-p22", "ebu3213"}
_Z_MATRICES = {"bt709", "fcc", "bt470bg", "smpte170m", "ycgco", "bt2020nc", "bt2020c", "ictcp"}
#: ffprobe's matrix (``color_space``) names → swscale's.
_SWS_MATRICES = {
    "bt709": "bt709",
    "smpte170m": "smpte170m",
    "bt470bg": "bt470",
    "fcc": "fcc",
    "smpte240m": "smpte240m",
    "bt2020nc": "bt2020",
    "bt2020c": "bt2020",
}
_RGB_PREFIXES = ("rgb", "bgr", "gbr", "argb", "abgr", "0rgb", "0bgr", "pal8", "x2rgb", "x2bgr")


def _deinterlace(picture: Picture, field_rate: bool) -> str:
    """bwdif: one frame per frame, or one per field (``field_rate``). Frames the stream
    marks interlaced are deinterlaced in the field order they carry; where only ``idet``
    found the weave, every frame is, in the order it found."""
    mode = "send_field" if field_rate else "send_frame"
    if picture.interlaced == "idet":
        return f"bwdif=mode={mode}:parity={picture.parity or 'tff'}:deint=all"
    return f"bwdif=mode={mode}:parity=auto:deint=interlaced"


def _sd(picture: Picture) -> bool:
    """Standard definition, where an unstated matrix is BT.601 (as decoders assume)."""
    return 0 < picture.coded_height <= 576 and picture.coded_width < 1280


def _to_bt709(picture: Picture) -> list[str]:
    """Filters that make 8-bit 4:2:0 limited-range BT.709 of any source: HDR (HLG, PQ)
    tone-mapped, wide gamut mapped, full range and other matrices converted."""
    full = picture.full_range
    if picture.hdr or picture.color_primaries == "bt2020":
        tin = picture.color_transfer if picture.color_transfer in _Z_TRANSFERS else "bt709"
        pin = picture.color_primaries if picture.color_primaries in _Z_PRIMARIES else "bt2020"
        min_ = picture.color_matrix if picture.color_matrix in _Z_MATRICES else "bt2020nc"
        source = f"zscale=tin={tin}:pin={pin}:min={min_}:rin={'pc' if full else 'tv'}"
        tonemap = ["tonemap=tonemap=hable:desat=0"] if picture.hdr else []
        # Linear light in float: BT.2020 primaries to BT.709, the HDR range tone-mapped;
        # to 16-bit RGB (clipping colours outside BT.709, which would go below black),
        # then the BT.709 matrix in limited range.
        return [
            f"{source}:t=linear:npl=100",
            "format=gbrpf32le",
            "zscale=p=bt709",
            *tonemap,
            "zscale=t=bt709",
            "format=gbrp16le",
            "zscale=m=bt709:r=tv",
            "format=yuv420p",
        ]
    if picture.pix_fmt.startswith(_RGB_PREFIXES):
        return ["scale=out_range=tv:out_color_matrix=bt709", "format=yuv420p"]
    matrix = _SWS_MATRICES.get(picture.color_matrix or "", "smpte170m" if _sd(picture) else "")
    if not full and matrix in ("", "bt709"):
        return ["format=yuv420p"]
    return [
        f"scale=in_range={'pc' if full else 'tv'}:out_range=tv"
        f":in_color_matrix={matrix or 'bt709'}:out_color_matrix=bt709",
        "format=yuv420p",
    ]


def picture_chain(
    picture: Picture | None, fps: Fraction, *, field_rate: bool = False, skip_frames: int = 0
) -> str:
    """The filters every graph applies to the source before it splits or scales: the one
    place that decides which frames the renditions get, so the one-pass ladder, the
    preview rung and every chunk get the same ones.

    Deinterlace (bwdif) when ``picture`` is interlaced, lay the output frame grid of
    ``fps``, drop the first ``skip_frames`` output frames (a chunk's pre-roll), and
    convert to 8-bit 4:2:0 limited-range BT.709 (:func:`_to_bt709`).

    :param field_rate: deinterlace to one frame per field (``fps`` is then the doubled
        rate the ladder planned); one frame per frame otherwise.
    """
    filters = [_deinterlace(picture, field_rate)] if picture and picture.interlaced else []
    filters.append(f"fps={fps.numerator}/{fps.denominator}")
    if skip_frames:
        filters.append(f"trim=start_pts={skip_frames},setpts=PTS-STARTPTS")
    filters += _to_bt709(picture) if picture is not None else ["format=yuv420p"]
    return ",".join(filters)


def encode_ladder_argv(
    tools: Toolchain,
    source: Source,
    out_dir: Path,
    rungs: list[Rung],
    *,
    audio: Sequence[AudioStream] = (),
    preset: str = "veryfast",
    progress: bool = True,
    picture: Picture | None = None,
    field_rate: bool = False,
) -> list[str]:
    """Decode once, split, scale and encode every rung (plus one AAC track per audio
    stream) in one ffmpeg run; with no rungs (an audio-only source) only the audio.

    Every rung gets the same frame rate and a constant keyframe interval of ``rung.gop``
    frames with closed GOPs and no scene-cut keyframes, so segment boundaries align.
    Outputs: ``out_dir/<rung.name>.mp4`` and ``out_dir/<audio_name(i)>.mp4``.
    """
    argv = _ffmpeg(tools, progress=progress)
    argv += source_input(source)
    if rungs:
        n = len(rungs)
        labels = "".join(f"[s{i}]" for i in range(n))
        chain = picture_chain(picture, rungs[0].fps, field_rate=field_rate)
        graph = [f"[0:v:0]{chain},split={n}{labels}"]
        graph += [f"[s{i}]{_scale(r)}[v{i}]" for i, r in enumerate(rungs)]
        argv += ["-filter_complex", ";".join(graph)]
    for i, r in enumerate(rungs):
        argv += [
            "-map",
            f"[v{i}]",
            *_x264(r, preset),
            "-an",
            "-sn",
            "-dn",
            "-map_metadata",
            "-1",
            "-f",
            "mp4",
            "file:" + str(out_dir / f"{r.name}.mp4"),
        ]
    for i, stream in enumerate(audio):
        argv += ["-map", f"0:{stream.index}", *_aac()]
        mix = downmix_filter(stream.channels, stream.channel_layout)
        if mix is not None:
            argv += ["-filter:a", mix]
        argv += [
            "-vn",
            "-sn",
            "-dn",
            "-map_metadata",
            "-1",
            "-f",
            "mp4",
            "file:" + str(out_dir / f"{audio_name(i)}.mp4"),
        ]
    return argv


def chunk_argv(
    tools: Toolchain,
    source: Source,
    out: Path,
    rung: Rung,
    chunk: Chunk,
    *,
    preset: str = "veryfast",
    picture: Picture | None = None,
    field_rate: bool = False,
) -> list[str]:
    """Encode one chunk of one rung: output frames ``[start_frame, start_frame + frames)``.

    Frame-exact, so chunks concatenate into the same frames a one-pass encode picks: ffmpeg
    seeks (accurately) to a pre-roll of about one second before the chunk, the ``fps``
    filter lays the same output-frame grid as the one-pass graph, and ``trim`` drops the
    pre-roll frames by their output timestamp. The chunk starts on a keyframe. The
    deinterlacer sees the pre-roll too, so a chunk's first frames have the neighbours
    they have in one pass.
    """
    preroll = min(chunk.start_frame, math.ceil(rung.fps))
    chain = picture_chain(picture, rung.fps, field_rate=field_rate, skip_frames=preroll)
    graph = f"[0:v:0]{chain},{_scale(rung)}[v0]"
    argv = _ffmpeg(tools, progress=True)
    if chunk.start_frame:
        seek = Fraction(chunk.start_frame - preroll) / rung.fps
        argv += ["-ss", f"{float(seek):.6f}"]
    argv += [*source_input(source), "-filter_complex", graph, "-map", "[v0]"]
    if chunk.frames is not None:
        argv += ["-frames:v", str(chunk.frames)]
    argv += [*_x264(rung, preset), "-an", "-sn", "-dn", "-map_metadata", "-1"]
    return [*argv, "-f", "mp4", "file:" + str(out)]


def concat_argv(tools: Toolchain, listing: Path, out: Path) -> list[str]:
    """Join the MP4 chunks named (relative to its folder) in ``listing`` without re-encoding.

    The one use of a script demuxer, and never on an upload: ``listing`` is written by
    :func:`concat_chunks` and names only our own chunk MP4s beside it. ``-safe 1`` refuses
    absolute paths and ``..`` in it anyway, and the chunks may be opened only as local MP4s
    (concat hands its whitelists on to the files it opens).
    """
    return [
        *_ffmpeg(tools, progress=False),
        "-protocol_whitelist", "file",
        "-format_whitelist", "concat,mov",
        "-f", "concat", "-safe", "1",
        "-i", "file:" + str(listing),
        "-map", "0:v:0", "-c", "copy",
        "-map_metadata", "-1",
        "-f", "mp4", "file:" + str(out),
    ]  # fmt: skip


def _x264(rung: Rung, preset: str) -> list[str]:
    return [
        "-c:v", "libx264",
        "-preset", preset,
        "-profile:v", "high",
        "-b:v", str(rung.bitrate),
        "-maxrate", str(rung.maxrate),
        "-bufsize", str(rung.bufsize),
        "-g", str(rung.gop),
        "-keyint_min", str(rung.gop),
        "-sc_threshold", "0",
        "-flags", "+cgop",
        "-x264-params", "open-gop=0",
        # What picture_chain made: BT.709 SDR in limited range, written into every rendition.
        "-color_primaries", "bt709",
        "-color_trc", "bt709",
        "-colorspace", "bt709",
        "-color_range", "tv",
    ]  # fmt: skip


def _aac() -> list[str]:
    return ["-c:a", "aac", "-b:a", str(AUDIO_BITRATE), "-ac", "2", "-ar", str(AUDIO_RATE)]


def audio_name(position: int) -> str:
    """The rendition id (and output file stem) of the ``position``-th audio stream of
    :attr:`MediaInfo.audio`: ``audio`` for the default one, then ``audio2``, ``audio3``…"""
    return "audio" if position == 0 else f"audio{position + 1}"


#: ffmpeg's standard layouts (``ffmpeg -layouts``): decoders output channels in this order.
LAYOUTS: dict[str, tuple[str, ...]] = {
    name: tuple(spec.split("+"))
    for name, spec in {
        "mono": "FC",
        "stereo": "FL+FR",
        "2.1": "FL+FR+LFE",
        "3.0": "FL+FR+FC",
        "3.0(back)": "FL+FR+BC",
        "4.0": "FL+FR+FC+BC",
        "quad": "FL+FR+BL+BR",
        "quad(side)": "FL+FR+SL+SR",
        "3.1": "FL+FR+FC+LFE",
        "5.0": "FL+FR+FC+BL+BR",
        "5.0(side)": "FL+FR+FC+SL+SR",
        "4.1": "FL+FR+FC+LFE+BC",
        "5.1": "FL+FR+FC+LFE+BL+BR",
        "5.1(side)": "FL+FR+FC+LFE+SL+SR",
        "6.0": "FL+FR+FC+BC+SL+SR",
        "6.0(front)": "FL+FR+FLC+FRC+SL+SR",
        "hexagonal": "FL+FR+FC+BL+BR+BC",
        "6.1": "FL+FR+FC+LFE+BC+SL+SR",
        "6.1(back)": "FL+FR+FC+LFE+BL+BR+BC",
        "6.1(front)": "FL+FR+LFE+FLC+FRC+SL+SR",
        "7.0": "FL+FR+FC+BL+BR+SL+SR",
        "7.0(front)": "FL+FR+FC+FLC+FRC+SL+SR",
        "7.1": "FL+FR+FC+LFE+BL+BR+SL+SR",
        "7.1(wide)": "FL+FR+FC+LFE+BL+BR+FLC+FRC",
        "7.1(wide-side)": "FL+FR+FC+LFE+FLC+FRC+SL+SR",
        "octagonal": "FL+FR+FC+BL+BR+BC+SL+SR",
    }.items()
}
#: The layout ffmpeg assumes for a channel count when the stream names none.
DEFAULT_LAYOUTS = {
    1: "mono", 2: "stereo", 3: "2.1", 4: "4.0", 5: "5.0", 6: "5.1", 7: "6.1", 8: "7.1"
}  # fmt: skip
#: −3 dB (ITU-R BS.775): the gain of the centre and surround channels in a stereo downmix.
MINUS_3DB = 0.7071
#: (gain into left, gain into right) of each channel; LFE is dropped (BS.775 leaves it out:
#: the main channels already carry the programme, and bass summed into L/R muddies it).
_DOWNMIX_GAINS: dict[str, tuple[float, float]] = {
    "FL": (1.0, 0.0),
    "FR": (0.0, 1.0),
    "FC": (MINUS_3DB, MINUS_3DB),
    "BC": (MINUS_3DB, MINUS_3DB),
    **dict.fromkeys(("BL", "SL", "FLC", "WL", "SDL"), (MINUS_3DB, 0.0)),
    **dict.fromkeys(("BR", "SR", "FRC", "WR", "SDR"), (0.0, MINUS_3DB)),
    "LFE": (0.0, 0.0),
}


def downmix_filter(channels: int, layout: str | None) -> str | None:
    """The audio filter that makes the stereo of every AAC rendition from a source stream
    of ``channels`` channels in ``layout`` (ffmpeg's layout name); None for stereo.

    Every rendition is stereo, so switching audio tracks never changes the decoder set-up
    and a mono source sounds the same in both ears (both channels carry it at unity).
    Surround is downmixed ITU-R BS.775 style, ``L = FL + 0.707·FC + 0.707·BL``, LFE dropped,
    with the gains divided by their sum so a full-scale signal in every channel cannot clip.
    Why an explicit ``pan`` and not ``-ac 2``: the coefficients are ours, written here and
    tested, not whatever a given ffmpeg build's swresample defaults and normalisation are.
    Layouts we do not know fall back to ``-ac 2`` (swresample's own matrix, also −3 dB
    centre and surrounds, LFE dropped, normalised).
    """
    if channels == 2:
        return None
    if channels == 1:
        return "pan=stereo|c0=c0|c1=c0"
    names = LAYOUTS.get(layout or "") or LAYOUTS.get(DEFAULT_LAYOUTS.get(channels, ""))
    if names is None or len(names) != channels:
        return None
    gains = [_DOWNMIX_GAINS.get(name, (0.0, 0.0)) for name in names]
    total = max(sum(g[0] for g in gains), sum(g[1] for g in gains))
    if total <= 0:
        return None

    def side(k: int) -> str:
        terms = [f"{g[k] / total:.4f}*c{i}" for i, g in enumerate(gains) if g[k] > 0]
        return "+".join(terms)

    return f"pan=stereo|c0={side(0)}|c1={side(1)}"


PREVIEW_DIR = "preview"


def preview_argv(
    tools: Toolchain,
    source: Source,
    rung: Rung,
    *,
    audio: Sequence[AudioStream] = (),
    segment_seconds: int,
    preset: str = "veryfast",
    picture: Picture | None = None,
    field_rate: bool = False,
) -> list[str]:
    """Encode one rung (plus one AAC per audio stream) once and write it through the tee
    muxer.

    Run with the work directory as cwd (tee output names are relative, so no path needs
    escaping): ``preview/`` gets a growing HLS EVENT playlist of muxed CMAF segments (the
    rung and the default audio, ``audio[0]``) that can be played at once;
    ``<rung.name>.mp4`` and ``<audio_name(i)>.mp4`` are the same encodes for the final
    packaging step, so this rung and the audio are never encoded twice.
    """
    hls_opts = [
        "f=hls",
        f"hls_time={segment_seconds}",
        "hls_segment_type=fmp4",
        "hls_fmp4_init_filename=init.mp4",
        f"hls_segment_filename={PREVIEW_DIR}/%d.m4s",
        "hls_playlist_type=event",
        "hls_flags=independent_segments+temp_file",
    ]
    if audio:
        hls_opts.append("select=\\'v:0,a:0\\'")
    outputs = [
        f"[{':'.join(hls_opts)}]{PREVIEW_DIR}/media.m3u8",
        f"[select=\\'v:0\\':f=mp4]{rung.name}.mp4",
    ]
    outputs += [f"[select=\\'a:{i}\\':f=mp4]{audio_name(i)}.mp4" for i in range(len(audio))]
    argv = [
        *_ffmpeg(tools, progress=True),
        *source_input(source),
        "-filter_complex",
        f"[0:v:0]{picture_chain(picture, rung.fps, field_rate=field_rate)},{_scale(rung)}[v0]",
        "-map", "[v0]",
    ]  # fmt: skip
    for stream in audio:
        argv += ["-map", f"0:{stream.index}"]
    argv += _x264(rung, preset)
    if audio:
        argv += _aac()
    for i, stream in enumerate(audio):
        mix = downmix_filter(stream.channels, stream.channel_layout)
        if mix is not None:
            argv += [f"-filter:a:{i}", mix]
    argv += ["-sn", "-dn", "-map_metadata", "-1", "-f", "tee", "|".join(outputs)]
    return argv


def thumbnail_argv(tools: Toolchain, seek: float, width: int) -> list[str]:
    """Read fragmented MP4 (init + one segment) on stdin, write one JPEG frame to stdout."""
    return [
        tools.ffmpeg,
        "-hide_banner",
        "-loglevel", "error",
        "-protocol_whitelist", "pipe",
        "-f", "mp4",
        "-i", "pipe:0",
        "-ss", f"{max(0.0, seek):.3f}",
        "-frames:v", "1",
        "-vf", f"scale={width}:-2",
        "-q:v", "3",
        "-f", "image2pipe",
        "-c:v", "mjpeg",
        "pipe:1",
    ]  # fmt: skip


def storyboard_argv(
    tools: Toolchain, rendition: Path, out_dir: Path, every: int, widths: Sequence[int]
) -> list[str]:
    """Decode only the keyframes of one packaged-rung MP4 and write every ``every``-th one
    as ``out_dir/<width>_<n>.jpg`` for each width (n from 1; frame n is keyframe
    ``(n - 1) * every``). Rungs have a keyframe at every segment start and nowhere else
    (fixed GOP, no scene cuts), so frame n shows time ``(n - 1) * every * segment seconds``.
    """
    chain = f"[0:v:0]select='not(mod(n\\,{every}))',split={len(widths)}"
    chain += "".join(f"[in{w}]" for w in widths)
    chain += "".join(f";[in{w}]scale={w}:-2[out{w}]" for w in widths)
    argv = [
        tools.ffmpeg,
        "-hide_banner", "-nostdin", "-y",
        "-loglevel", "error",
        "-protocol_whitelist", "file",
        "-format_whitelist", "mov",
        "-skip_frame", "nokey",
        "-f", "mp4",
        "-i", "file:" + str(rendition),
        "-filter_complex", chain,
    ]  # fmt: skip
    for w in widths:
        argv += [
            "-map", f"[out{w}]",
            "-fps_mode", "passthrough",
            "-q:v", "3",
            "-c:v", "mjpeg",
            "-f", "image2",
            "file:" + str(out_dir / f"{w}_%d.jpg"),
        ]  # fmt: skip
    return argv


#: The poster of an audio-only asset: a waveform picture this size (16:9, like a video).
WAVEFORM_SIZE = (1280, 720)
WAVEFORM_RATE = 2000  # samples per second drawn


def waveform_argv(tools: Toolchain, source: Source, stream: int) -> list[str]:
    """Draw the waveform of audio stream ``stream`` (ffprobe index) of ``source`` as one
    JPEG on stdout: the poster frame of an audio-only asset."""
    width, height = WAVEFORM_SIZE
    # One picture of the whole stream, on black (showwavespic's transparent background).
    # showwavespic holds every sample until the end: mono at WAVEFORM_RATE keeps that to
    # ~14 MB an hour, and an envelope 1280 columns wide needs no more detail.
    graph = (
        f"[0:{stream}]aformat=channel_layouts=mono,aresample={WAVEFORM_RATE},"
        f"showwavespic=s={width}x{height}:colors=0x4da3ff,format=yuvj420p[out]"
    )
    return [
        *_ffmpeg(tools, progress=False),
        *source_input(source),
        "-filter_complex", graph,
        "-map", "[out]",
        "-frames:v", "1",
        "-q:v", "3",
        "-f", "image2pipe",
        "-c:v", "mjpeg",
        "pipe:1",
    ]  # fmt: skip


#: chromaprint's default algorithm (TEST2, the one AcoustID uses); stored fingerprints are
#: only comparable with fingerprints made by the same algorithm.
CHROMAPRINT_ALGORITHM = 1


def muxers_argv(tools: Toolchain) -> list[str]:
    """List the muxers this ffmpeg was built with (chromaprint is an optional one)."""
    return [tools.ffmpeg, "-hide_banner", "-loglevel", "error", "-muxers"]


def has_muxer(listing: str, name: str) -> bool:
    """Whether ``ffmpeg -muxers`` output (``listing``) offers the muxer ``name``."""
    return re.search(rf"^\s*D?E\s+{re.escape(name)}\s", listing, re.MULTILINE) is not None


def chromaprint_argv(tools: Toolchain, source: Source, *, seconds: float) -> list[str]:
    """Fingerprint the first ``seconds`` of the first audio track with ffmpeg's chromaprint
    muxer; stdout gets the raw fingerprint (native-endian unsigned 32-bit words).

    The audio is downmixed to mono first: the muxer refuses more than two channels, and
    chromaprint averages the channels anyway.
    """
    return [
        tools.ffmpeg,
        "-hide_banner", "-nostdin",
        "-loglevel", "error",
        *source_input(source),
        "-map", "0:a:0",
        "-vn", "-sn", "-dn",
        "-t", f"{seconds:.3f}",
        "-ac", "1",
        "-f", "chromaprint",
        "-fp_format", "raw",
        "-algorithm", str(CHROMAPRINT_ALGORITHM),
        "pipe:1",
    ]  # fmt: skip


def parse_progress_seconds(line: str) -> float | None:
    """Seconds of output written, from one ``-progress`` line (``out_time_us=…``)."""
    key, _, value = line.partition("=")
    if key in ("out_time_us", "out_time_ms"):  # both are microseconds in ffmpeg 5+
        try:
            return int(value) / 1_000_000
        except ValueError:
            return None
    return None


#: fMP4 written as it goes, for a pipe: the moov first and empty (no seeking back), one
#: ``moof`` per fragment with times relative to itself, no trailer (``mfra``) at the end,
#: and CMAF's rules (one track, negative composition offsets instead of an edit list).
LIVE_MOVFLAGS = "+empty_moov+default_base_moof+skip_trailer+cmaf"


@dataclass(frozen=True)
class LiveTranscode:
    """What the live packager encodes instead of copying: the video as H.264 (x264
    ``zerolatency`` at constant quality ``crf`` under ``video_maxrate`` bits per second, a
    keyframe every ``gop_seconds`` of media time; the picture size is the input's, not
    known before ffmpeg reads it) and/or the audio as AAC-LC stereo at 48 kHz
    (``audio_bitrate``)."""

    video: bool = False
    audio: bool = False
    gop_seconds: float = 1.0
    crf: int = 23
    video_maxrate: int = 5_000_000
    preset: str = "veryfast"
    audio_bitrate: int = AUDIO_BITRATE
    threads: int = 2


def live_package_argv(
    ffmpeg: str,
    *,
    video_fd: int | None,
    audio_fd: int | None,
    audio_fragment_seconds: float,
    input_format: Literal["flv", "mpegts"] = "flv",
    video_map: str = "0:v:0",
    audio_map: str = "0:a:0",
    transcode: LiveTranscode | None = None,
) -> list[str]:
    """Repackage a live FLV or MPEG-TS stream on stdin (H.264 and AAC, not re-encoded) into one
    fragmented-MP4 CMAF track per file descriptor: ``video_fd`` gets the first video
    stream, ``audio_fd`` the first audio stream (either may be None, not both).

    Video is written one frame per fragment (the packager groups frames into parts, so a
    part can end exactly where the next keyframe begins); audio in fragments that end once
    they reach ``audio_fragment_seconds`` (one part each: a fragment per AAC frame would
    add half again to a 64 kbit/s track). Each fragment is flushed to its pipe as soon as
    it is complete. The input may be read only as ``input_format`` from the pipe;
    ``video_map``/``audio_map`` pick the tracks (``0:i:PID`` for MPEG-TS). AAC in ADTS (as
    MPEG-TS carries it) is turned into MP4's raw AAC with its AudioSpecificConfig by
    ``aac_adtstoasc``, which the mp4 muxer inserts itself and which is named here too.

    ``transcode`` (input that is not H.264/AAC, or H.264 whose keyframes are too far apart
    to cut segments at): the tracks it names are decoded and encoded (:class:`LiveTranscode`)
    instead of copied, once per stream; the video keeps the input's timestamps
    (``-fps_mode passthrough``, a 90 kHz track) and gets a keyframe at every
    ``gop_seconds`` (``-force_key_frames``, no other: scene cuts off).
    """
    if video_fd is None and audio_fd is None:
        raise MediaError("live packaging needs a video or an audio output")
    if input_format not in ("flv", "mpegts"):
        raise MediaError(f"live packaging reads FLV or MPEG-TS, not {input_format}")
    argv = [
        ffmpeg,
        "-hide_banner", "-nostdin", "-nostats",
        "-loglevel", "error",
        # Not -fflags +nobuffer: with it ffmpeg 5.1 drops the packets it probed (the
        # stream's first 1.5 s of a 6 s test). The FLV header's track flags, set by the
        # packager, end probing as soon as each track's first tag is in.
        # Packets are copied, so no frame rate need be measured: without this ffmpeg
        # holds the first ~20 frames to estimate it, and the first part comes 0.9 s late.
        "-fpsprobesize", "0",
        # MPEG-TS: ffmpeg otherwise reads 5 s (its default analyzeduration) before the first
        # packet goes out; the packager starts it once every track's first PES is in, so
        # half a second finds the codec parameters (0.1 s did not, for AAC).
        *(["-analyzeduration", "500000"] if input_format == "mpegts" else []),
        "-protocol_whitelist", "pipe",
        "-format_whitelist", input_format,
        "-f", input_format,
        "-i", "pipe:0",
    ]  # fmt: skip
    tc = transcode or LiveTranscode()
    if video_fd is not None:
        if tc.video:
            gop = f"{tc.gop_seconds:g}"
            codec = [
                "-vf", "format=yuv420p",
                "-c:v", "libx264",
                "-preset", tc.preset,
                "-tune", "zerolatency",
                "-profile:v", "high",
                "-threads", str(tc.threads),
                "-crf", str(tc.crf),
                "-maxrate", str(tc.video_maxrate),
                "-bufsize", str(tc.video_maxrate),
                "-force_key_frames", f"expr:gte(t,n_forced*{gop})",
                "-g", "100000",
                "-sc_threshold", "0",
                "-fps_mode", "passthrough",
                "-video_track_timescale", "90000",
            ]  # fmt: skip
        else:
            codec = ["-c", "copy"]
        argv += [
            "-map", video_map,
            *codec,
            "-map_metadata", "-1",
            "-f", "mp4",
            "-movflags", LIVE_MOVFLAGS + "+frag_every_frame",
            "-flush_packets", "1",
            f"pipe:{video_fd}",
        ]  # fmt: skip
    if audio_fd is not None:
        frag_us = str(max(1, round(audio_fragment_seconds * 1_000_000)))
        if tc.audio:
            codec = ["-c:a", "aac", "-b:a", str(tc.audio_bitrate), "-ac", "2", "-ar", "48000"]
        else:
            codec = [
                "-c", "copy",
                *(["-bsf:a", "aac_adtstoasc"] if input_format == "mpegts" else []),
            ]  # fmt: skip
        adts = input_format == "mpegts" and not tc.audio
        argv += [
            "-map", audio_map,
            *codec,
            "-map_metadata", "-1",
            "-f", "mp4",
            # From ADTS the AudioSpecificConfig exists only once the filter has seen the
            # first frame: delay_moov writes the init segment then (else its esds has none).
            "-movflags", LIVE_MOVFLAGS + ("+delay_moov" if adts else ""),
            "-frag_duration", frag_us,
            "-flush_packets", "1",
            f"pipe:{audio_fd}",
        ]  # fmt: skip
    return argv


@dataclass(frozen=True)
class LiveRung:
    """One encoded rung of a live ladder: its rendition name (a folder), frame size and
    target bitrate (bits per second)."""

    name: str
    width: int
    height: int
    bitrate: int


#: A live ladder has at most this many encoded rungs below the passthrough one.
LIVE_LADDER_RUNGS = 2


def plan_live_ladder(width: int, height: int, max_rungs: int = LIVE_LADDER_RUNGS) -> list[LiveRung]:
    """The encoded rungs under a ``width``×``height`` live source: the VOD ladder's
    standard rungs (:data:`._ladder.STANDARD_RUNGS`) whose short side is below the
    source's, the largest ``max_rungs`` of them, at the source's shape (even sizes)."""
    from ._ladder import STANDARD_RUNGS

    if width <= 0 or height <= 0:
        return []
    short, long_ = min(width, height), max(width, height)
    rungs = []
    for side, rate in STANDARD_RUNGS:
        if side >= short:
            continue
        other = max(2, int(round(long_ * side / short / 2.0)) * 2)
        w, h = (other, side) if width >= height else (side, other)
        rungs.append(LiveRung(f"v{side}", w, h, rate))
    return rungs[:max_rungs]


def live_ladder_argv(
    ffmpeg: str,
    rungs: list[tuple[LiveRung, int]],
    *,
    timescale: int,
    preset: str = "veryfast",
    threads: int = 2,
) -> list[str]:
    """Encode a live stream's lower rungs from its top rung: fragmented MP4 (the
    packager's CMAF video track, from its first keyframe) on stdin, decoded once, split and
    scaled, one x264 encode per ``(rung, fd)`` written to ``pipe:fd`` one frame per fragment.

    Segments of every rung must cover the same media time, so each encode keeps the
    source's timestamps (``-fps_mode passthrough``, ``-enc_time_base -1``, the source's
    ``timescale``) and puts a keyframe exactly where the source has one
    (``-force_key_frames source``; no other: scene cuts off, a GOP longer than any sane
    one). ``zerolatency``: no lookahead, no B-frames, no frame held back."""
    if not rungs:
        raise MediaError("a live ladder needs a rung")
    split = "".join(f"[s{i}]" for i in range(len(rungs)))
    graph = [f"[0:v]split={len(rungs)}{split}" if len(rungs) > 1 else "[0:v]null[s0]"]
    graph += [
        f"[s{i}]scale={rung.width}:{rung.height}:flags=bilinear,format=yuv420p[o{i}]"
        for i, (rung, _) in enumerate(rungs)
    ]
    argv = [
        ffmpeg,
        "-hide_banner", "-nostdin", "-nostats",
        "-loglevel", "error",
        "-threads", str(threads),
        "-probesize", "4096",
        "-analyzeduration", "0",
        "-fpsprobesize", "0",
        "-protocol_whitelist", "pipe",
        "-format_whitelist", "mov,mp4,m4a,3gp,3g2,mj2",
        "-f", "mp4",
        "-i", "pipe:0",
        "-filter_complex", ";".join(graph),
        "-filter_threads", "1",
    ]  # fmt: skip
    for i, (rung, fd) in enumerate(rungs):
        argv += [
            "-map", f"[o{i}]",
            "-c:v", "libx264",
            "-preset", preset,
            "-tune", "zerolatency",
            "-profile:v", "main",
            "-threads", str(threads),
            "-b:v", str(rung.bitrate),
            "-maxrate", str(rung.bitrate * 6 // 5),
            "-bufsize", str(rung.bitrate),
            "-force_key_frames", "source",
            "-g", "100000",
            "-sc_threshold", "0",
            "-fps_mode", "passthrough",
            "-enc_time_base", "-1",
            "-video_track_timescale", str(timescale),
            "-map_metadata", "-1",
            "-f", "mp4",
            "-movflags", LIVE_MOVFLAGS + "+frag_every_frame",
            "-flush_packets", "1",
            f"pipe:{fd}",
        ]  # fmt: skip
    return argv
