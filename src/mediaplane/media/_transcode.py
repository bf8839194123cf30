from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from . import ffmpeg
from ._errors import HostCause, HostFailure, InvalidMedia, ProcessFailed, classify, host_cause
from ._hls import MediaPlaylist
from ._process import ManagedProcess

if TYPE_CHECKING:
    from mediaplane.config import Settings

    from ._ladder import Chunk, Rung
    from ._probe import MediaInfo


#: Below this share of the declared duration decoded, the source counts as truncated.
TRUNCATED_FRACTION = 0.9
#: Seconds any run gets on top of its share of the work (start-up, a busy host).
TIMEOUT_BASE_SECONDS = 120.0
UNDECODABLE = (
    "The video could not be decoded; the file may be truncated or damaged. Upload the "
    "complete original file, or export it again (MP4 with H.264 plays everywhere)."
)


UNDECODABLE_AUDIO = (
    "The audio could not be decoded; the file may be truncated or damaged. Upload the "
    "complete original file, or export it again (M4A with AAC, or MP3, plays everywhere)."
)


def encode_timeout(duration: float, settings: Settings) -> float:
    """Seconds an encode of ``duration`` seconds of source may take: grows with the work
    (``encode_timeout_factor`` seconds per source second), never past
    ``encode_timeout_max_seconds`` — a stuck encode of a 12-hour source is killed after a
    day (the default ceiling), not after the 240 h its length alone would give it."""
    grown = TIMEOUT_BASE_SECONDS + duration * settings.encode_timeout_factor
    return min(grown, settings.encode_timeout_max_seconds)


def _host_error_on_success(name: str, argv: list[str], stderr_tail: str) -> HostFailure | None:
    """ffmpeg 5.1 exits 0 when only writing the trailer or closing an output fails (with
    ENOSPC, say): the output is then incomplete, so a disk error it printed still fails the
    run. (Only disk errors: nothing else it may print on success makes the output bad.)"""
    if not stderr_tail:
        return None
    failed = ProcessFailed(name, 0, stderr_tail, argv)
    cause = host_cause(failed)
    if cause is None or cause[0] is not HostCause.DISK:
        return None
    return HostFailure(cause[0], cause[1], failed)


def _encode(
    argv: list[str],
    settings: Settings,
    info: MediaInfo,
    *,
    name: str,
    on_progress: Callable[[float], None] | None,
    cwd: Path | None = None,
    nice: int = 0,
    process: list[ManagedProcess] | None = None,
) -> None:
    """Run one encode, report the fraction of the source done, refuse truncated sources."""
    encoded = 0.0

    def on_line(line: str) -> None:
        nonlocal encoded
        seconds = ffmpeg.parse_progress_seconds(line)
        if seconds is None:
            return
        encoded = max(encoded, seconds)
        if on_progress is not None and info.duration > 0:
            on_progress(min(1.0, seconds / info.duration))

    proc = ManagedProcess(
        argv,
        timeout=encode_timeout(info.duration, settings),
        memory_bytes=settings.subprocess_memory_bytes,
        on_line=on_line,
        name=name,
        cwd=cwd,
        nice=nice,
    )
    if process is not None:
        process.append(proc)
    try:
        done = proc.run()
    except ProcessFailed as exc:
        raise classify(exc, UNDECODABLE if info.has_video else UNDECODABLE_AUDIO) from exc
    host = _host_error_on_success(name, argv, done.stderr_tail)
    if host is not None:
        raise host
    if encoded < info.duration * TRUNCATED_FRACTION - 0.5:
        raise InvalidMedia(
            f"The file appears truncated: only {encoded:.1f} s of its {info.duration:.1f} s "
            "could be decoded. Upload the complete file."
        )


def _check_outputs(outputs: dict[str, Path]) -> dict[str, Path]:
    for rid, path in outputs.items():
        if not path.is_file() or path.stat().st_size == 0:
            raise InvalidMedia(f"The video could not be decoded (no {rid} output was produced).")
    return outputs


def encode_ladder(
    tools: ffmpeg.Toolchain,
    settings: Settings,
    source: Path,
    info: MediaInfo,
    rungs: list[Rung],
    out_dir: Path,
    on_progress: Callable[[float], None] | None = None,
    *,
    nice: int = 0,
    process: list[ManagedProcess] | None = None,
) -> dict[str, Path]:
    """Encode every rung (and each audio stream of ``info.audio``) in one ffmpeg run;
    returns rendition id → MP4 path. No rungs: only the audio (an audio-only source).

    :param on_progress: called with a fraction 0..1 of the source duration encoded.
    :param process: receives the ManagedProcess, so another thread can cancel it.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    argv = ffmpeg.encode_ladder_argv(
        tools,
        ffmpeg.Source(source, info.demuxer),
        out_dir,
        rungs,
        audio=info.audio,
        preset=settings.x264_preset,
        picture=info.picture,
        field_rate=settings.deinterlace == "field",
    )
    _encode(
        argv,
        settings,
        info,
        name="ffmpeg-encode",
        on_progress=on_progress,
        nice=nice,
        process=process,
    )
    outputs = {r.name: out_dir / f"{r.name}.mp4" for r in rungs}
    outputs.update(_audio_outputs(info, out_dir))
    return _check_outputs(outputs)


def _audio_outputs(info: MediaInfo, out_dir: Path) -> dict[str, Path]:
    names = (ffmpeg.audio_name(i) for i in range(len(info.audio)))
    return {name: out_dir / f"{name}.mp4" for name in names}


def encode_chunk(
    tools: ffmpeg.Toolchain,
    settings: Settings,
    source: Path,
    info: MediaInfo,
    rung: Rung,
    chunk: Chunk,
    out: Path,
    on_progress: Callable[[float], None] | None = None,
) -> Path:
    """Encode one chunk of one rung (video only) into the MP4 ``out``; see
    :func:`ffmpeg.chunk_argv`. A source that ends early inside the chunk is truncated."""
    start = float(chunk.start_seconds(rung.fps))
    end = info.duration if chunk.frames is None else start + chunk.frames / float(rung.fps)
    if start >= info.duration:
        raise InvalidMedia(f"chunk {chunk.index} starts past the end of the source")
    span = replace(info, duration=min(end, info.duration) - start, audio=())
    out.parent.mkdir(parents=True, exist_ok=True)
    argv = ffmpeg.chunk_argv(
        tools,
        ffmpeg.Source(source, info.demuxer),
        out,
        rung,
        chunk,
        preset=settings.x264_preset,
        picture=info.picture,
        field_rate=settings.deinterlace == "field",
    )
    _encode(argv, settings, span, name="ffmpeg-chunk", on_progress=on_progress)
    _check_outputs({f"{rung.name} chunk {chunk.index}": out})
    return out


def concat_chunks(
    tools: ffmpeg.Toolchain, settings: Settings, chunks: list[Path], out: Path, duration: float
) -> Path:
    """Join chunk MP4s (all in one folder, in order) into ``out`` without re-encoding."""
    folder = chunks[0].parent
    if any(c.parent != folder for c in chunks):
        raise ValueError("chunks must share one folder")
    listing = folder / "chunks.txt"
    listing.write_text("".join(f"file '{c.name}'\n" for c in chunks))
    try:
        ManagedProcess(
            ffmpeg.concat_argv(tools, listing, out),
            timeout=min(60 + duration, settings.encode_timeout_max_seconds),
            memory_bytes=settings.subprocess_memory_bytes,
            name="ffmpeg-concat",
        ).run()
    except ProcessFailed as exc:  # it reads only chunks we encoded: never the creator's doing
        raise classify(exc, None) from exc
    _check_outputs({f"stitched {out.stem}": out})
    return out


@dataclass(frozen=True)
class PlaylistEntry:
    uri: str
    duration: float  # seconds


def read_playlist(path: Path) -> tuple[list[PlaylistEntry], bool]:
    """Segments (and whether it has ENDLIST) of a media playlist ffmpeg is writing: the file
    read here, its text parsed by :class:`MediaPlaylist` (ManifestError if malformed)."""
    try:
        text = path.read_bytes()
    except FileNotFoundError:
        return [], False
    playlist = MediaPlaylist.parse(text)
    entries = [
        PlaylistEntry(s.uri, s.duration)
        for s in playlist.segments
        if s.uri is not None and s.duration is not None
    ]
    return entries, playlist.endlist


def encode_preview(
    tools: ffmpeg.Toolchain,
    settings: Settings,
    source: Path,
    info: MediaInfo,
    rung: Rung,
    work_dir: Path,
    on_progress: Callable[[float], None] | None = None,
    on_segments: Callable[[list[PlaylistEntry]], None] | None = None,
) -> dict[str, Path]:
    """Encode the lowest rung once into playable segments as it goes (``work_dir/preview``,
    with the default audio) and into MP4s for final packaging, with every audio stream;
    returns rendition id → MP4 path.

    :param on_segments: called (from the progress thread) with the whole list of finished
        preview segments each time it grows, and once more at the end.
    """
    preview = work_dir / ffmpeg.PREVIEW_DIR
    preview.mkdir(parents=True, exist_ok=True)
    playlist = preview / "media.m3u8"
    seen = 0

    def progress(fraction: float) -> None:
        nonlocal seen
        if on_progress is not None:
            on_progress(fraction)
        if on_segments is not None:
            entries, _ = read_playlist(playlist)
            if len(entries) > seen:
                seen = len(entries)
                on_segments(entries)

    argv = ffmpeg.preview_argv(
        tools,
        ffmpeg.Source(source, info.demuxer),
        rung,
        audio=info.audio,
        segment_seconds=settings.segment_seconds,
        preset=settings.x264_preset,
        picture=info.picture,
        field_rate=settings.deinterlace == "field",
    )
    _encode(argv, settings, info, name="ffmpeg-preview", on_progress=progress, cwd=work_dir)
    if on_segments is not None:
        on_segments(read_playlist(playlist)[0])
    outputs = {rung.name: work_dir / f"{rung.name}.mp4"}
    outputs.update(_audio_outputs(info, work_dir))
    return _check_outputs(outputs)


def waveform_image(
    tools: ffmpeg.Toolchain, settings: Settings, source: Path, info: MediaInfo
) -> bytes:
    """A JPEG of the default audio stream's waveform: the poster of an audio-only asset."""
    if not info.audio:
        raise InvalidMedia("the source has no audio to draw")
    argv = ffmpeg.waveform_argv(tools, ffmpeg.Source(source, info.demuxer), info.audio[0].index)
    try:
        done = ManagedProcess(
            argv,
            timeout=encode_timeout(info.duration, settings),
            memory_bytes=min(settings.subprocess_memory_bytes, 2 * 1024**3),
            name="ffmpeg-waveform",
        ).run()
    except ProcessFailed as exc:
        raise classify(exc, UNDECODABLE_AUDIO) from exc
    if not done.stdout:
        raise InvalidMedia(UNDECODABLE_AUDIO)
    return done.stdout


def extract_thumbnail(
    tools: ffmpeg.Toolchain, settings: Settings, fmp4: bytes, seek: float, width: int
) -> bytes:
    """One JPEG frame ``seek`` seconds into a fragmented MP4 given in memory."""
    done = ManagedProcess(
        ffmpeg.thumbnail_argv(tools, seek, width),
        timeout=30,
        memory_bytes=min(settings.subprocess_memory_bytes, 2 * 1024**3),
        stdin_data=fmp4,
        name="ffmpeg-thumbnail",
    ).run()
    if not done.stdout:
        raise InvalidMedia("no frame at that time")
    return done.stdout
