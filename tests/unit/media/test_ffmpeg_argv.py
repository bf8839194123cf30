from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest

from mediaplane.media import AudioStream, Chunk, Toolchain, plan_ladder
from mediaplane.media import ffmpeg as ff

TOOLS = Toolchain(
    ffmpeg="/usr/bin/ffmpeg", ffprobe="/usr/bin/ffprobe", packager="/p", ffmpeg_version="5.1"
)
MP4 = ff.Source(Path("/in.mp4"), "mov")


def _after(argv: list[str], flag: str) -> list[str]:
    return [argv[i + 1] for i, a in enumerate(argv) if a == flag]


def _stream(index: int, channels: int = 2, layout: str | None = "stereo") -> AudioStream:
    return AudioStream(
        index=index,
        codec="aac",
        channels=channels,
        channel_layout=layout,
        sample_rate=48000,
        language=None,
        title=None,
        default=index == 1,
        comment=False,
        visual_impaired=False,
    )


STEREO = (_stream(1),)


def _reads_only(argv: list[str], source: ff.Source) -> None:
    """The upload is the one input, read from a local file with the probe's demuxer forced."""
    assert _after(argv, "-i") == ["file:" + str(source.path)]
    i = argv.index("-i")
    assert argv[i - 2 : i] == ["-f", source.demuxer]  # forced: never detected again
    assert _after(argv[:i], "-protocol_whitelist") == ["file"]
    assert _after(argv[:i], "-format_whitelist") == [ff.FORMAT_WHITELIST]


#: Demuxers that open files or URLs named inside what they read, or are no container.
FORBIDDEN = [
    "hls", "dash", "concat", "imf", "webm_dash_manifest", "ffmetadata", "image2",
    "image2pipe", "png_pipe", "sdp", "rtp", "rtsp", "data", "tty", "lavfi", "gif", "srt",
]  # fmt: skip


@pytest.mark.parametrize("name", FORBIDDEN)
def test_no_manifest_script_or_image_demuxer_is_allowed(name: str) -> None:
    assert name not in ff.FORMAT_WHITELIST.split(",")
    with pytest.raises(ValueError, match="not a demuxer uploads may be read with"):
        ff.Source(Path("/in.mp4"), name)


def test_whitelist_names_demuxers_of_this_ffmpeg() -> None:
    import shutil
    import subprocess

    if shutil.which("ffmpeg") is None:
        pytest.skip("no ffmpeg")
    listing = subprocess.run(
        ["ffmpeg", "-hide_banner", "-demuxers"], capture_output=True, text=True, check=True
    ).stdout
    names = {n for line in listing.splitlines()[4:] for n in line.split()[1].split(",")}
    assert set(ff.UPLOAD_DEMUXERS) <= names  # a typo would silently refuse a format
    for container in ("mov", "matroska", "mpegts", "avi", "flv", "ogg", "mxf", "asf"):
        assert container in ff.UPLOAD_DEMUXERS


def test_probe_argv_whitelists_protocols_and_demuxers() -> None:
    argv = ff.probe_argv(TOOLS, Path("/data/src file.mp4"))
    assert argv[0] == "/usr/bin/ffprobe"
    assert _after(argv, "-protocol_whitelist") == ["file"]
    assert _after(argv, "-format_whitelist") == [ff.FORMAT_WHITELIST]
    assert "-f" not in argv  # the probe detects, among allow-listed demuxers only
    assert argv[-1] == "file:/data/src file.mp4"  # one argv item: spaces never split
    assert "-show_streams" in argv and "-show_format" in argv


def test_ladder_argv_one_pass() -> None:
    rungs = plan_ladder(1920, 1080, Fraction(30))
    src = ff.Source(Path("/in.mov"), "mov")
    argv = ff.encode_ladder_argv(TOOLS, src, Path("/out"), rungs, audio=STEREO)
    assert argv.count("-i") == 1  # decode once
    _reads_only(argv, src)
    graph = _after(argv, "-filter_complex")[0]
    assert graph.startswith("[0:v:0]fps=30/1,format=yuv420p,split=4[s0][s1][s2][s3]")
    assert "[s0]scale=1920:1080:flags=bicubic,setsar=1[v0]" in graph
    assert _after(argv, "-map") == ["[v0]", "[v1]", "[v2]", "[v3]", "0:1"]
    assert "-filter:a" not in argv  # stereo is encoded as it is
    assert _after(argv, "-c:v") == ["libx264"] * 4
    assert _after(argv, "-g") == ["60"] * 4
    assert _after(argv, "-keyint_min") == ["60"] * 4
    assert _after(argv, "-sc_threshold") == ["0"] * 4
    assert _after(argv, "-flags") == ["+cgop"] * 4
    assert _after(argv, "-b:v") == [str(r.bitrate) for r in rungs]
    assert _after(argv, "-c:a") == ["aac"]
    assert _after(argv, "-ar") == ["48000"] and _after(argv, "-ac") == ["2"]
    outs = [a for a in argv if a.startswith("file:/out/")]
    assert outs == [
        "file:/out/v1080.mp4",
        "file:/out/v720.mp4",
        "file:/out/v480.mp4",
        "file:/out/v360.mp4",
        "file:/out/audio.mp4",
    ]
    assert _after(argv, "-progress") == ["pipe:1"]


def test_ladder_argv_without_audio_or_progress() -> None:
    rungs = plan_ladder(640, 360, Fraction(25))
    argv = ff.encode_ladder_argv(TOOLS, MP4, Path("/o"), rungs, preset="medium", progress=False)
    assert "-c:a" not in argv and "0:a:0" not in argv
    assert "-progress" not in argv
    assert set(_after(argv, "-preset")) == {"medium"}


def test_thumbnail_argv_reads_only_stdin() -> None:
    argv = ff.thumbnail_argv(TOOLS, 1.25, 320)
    assert _after(argv, "-protocol_whitelist") == ["pipe"]
    assert _after(argv, "-i") == ["pipe:0"]
    assert _after(argv, "-ss") == ["1.250"]
    assert _after(argv, "-vf") == ["scale=320:-2"]
    assert argv[-1] == "pipe:1"


def test_parse_progress() -> None:
    assert ff.parse_progress_seconds("out_time_us=1500000") == 1.5
    assert ff.parse_progress_seconds("out_time_ms=2000000") == 2.0
    assert ff.parse_progress_seconds("out_time_us=N/A") is None
    assert ff.parse_progress_seconds("progress=continue") is None


def test_chromaprint_argv_audio_only_bounded_raw() -> None:
    src = ff.Source(Path("/data/src file.mkv"), "matroska")
    argv = ff.chromaprint_argv(TOOLS, src, seconds=120)
    assert argv[0] == "/usr/bin/ffmpeg"
    _reads_only(argv, src)
    assert _after(argv, "-map") == ["0:a:0"]  # the first audio track only
    assert {"-vn", "-sn", "-dn"} <= set(argv)  # no video is decoded
    assert _after(argv, "-t") == ["120.000"]  # bounded: the first two minutes
    assert _after(argv, "-ac") == ["1"]  # the muxer refuses more than two channels
    assert _after(argv, "-f") == ["matroska", "chromaprint"]  # input, output
    assert _after(argv, "-fp_format") == ["raw"]
    assert _after(argv, "-algorithm") == [str(ff.CHROMAPRINT_ALGORITHM)]
    assert argv[-1] == "pipe:1"


def test_has_muxer() -> None:
    listing = (
        "File formats:\n D. = Demuxing supported\n .E = Muxing supported\n --\n"
        "  E chromaprint     Chromaprint\n DE matroska,webm   Matroska / WebM\n"
        "  E chromaprintx    not real\n"
    )
    assert ff.has_muxer(listing, "chromaprint")
    assert ff.has_muxer(listing, "matroska,webm")
    assert not ff.has_muxer(
        listing.replace("  E chromaprint     ", "  E other     "), "chromaprint"
    )
    assert _after(ff.muxers_argv(TOOLS), "-loglevel") == ["error"]


def test_chunk_argv_first_chunk_needs_no_seek() -> None:
    rung = plan_ladder(1280, 720, Fraction(30))[0]
    argv = ff.chunk_argv(TOOLS, MP4, Path("/c.mp4"), rung, Chunk(0, 0, 600))
    _reads_only(argv, MP4)
    assert "-ss" not in argv
    assert _after(argv, "-frames:v") == ["600"]
    graph = _after(argv, "-filter_complex")[0]
    assert graph.startswith("[0:v:0]fps=30/1,format=yuv420p,scale=1280:720")
    assert "trim" not in graph
    assert _after(argv, "-an") == ["-sn"] and "-map" in argv  # video only
    assert _after(argv, "-g") == ["60"] and _after(argv, "-sc_threshold") == ["0"]
    assert argv[-1] == "file:/c.mp4"


def test_chunk_argv_seeks_to_a_preroll_and_trims_it_by_output_timestamp() -> None:
    rung = plan_ladder(1280, 720, Fraction(30000, 1001))[0]
    chunk = Chunk(2, 1200, None)  # the last chunk: to the end
    argv = ff.chunk_argv(TOOLS, MP4, Path("/c.mp4"), rung, chunk)
    # One second (30 frames) of pre-roll before frame 1200 of the 29.97 fps grid.
    assert _after(argv, "-ss") == [f"{1170 * 1001 / 30000:.6f}"]
    assert argv.index("-ss") < argv.index("-i")  # input seeking (accurate, decodes less)
    graph = _after(argv, "-filter_complex")[0]
    assert graph.startswith("[0:v:0]fps=30000/1001,trim=start_pts=30,setpts=PTS-STARTPTS,")
    assert "-frames:v" not in argv
    _reads_only(argv, MP4)


def test_concat_argv_copies_without_reencoding() -> None:
    argv = ff.concat_argv(TOOLS, Path("/w/chunks.txt"), Path("/w/v720.mp4"))
    assert _after(argv, "-f")[0] == "concat" and _after(argv, "-safe") == ["1"]
    assert _after(argv, "-c") == ["copy"]
    assert _after(argv, "-protocol_whitelist") == ["file"]
    # Our own listing of our own MP4 chunks: concat itself, and MP4 for what it opens.
    assert _after(argv, "-format_whitelist") == ["concat,mov"]
    assert _after(argv, "-i") == ["file:/w/chunks.txt"]


def test_preview_argv_reads_the_source_with_its_demuxer() -> None:
    rung = plan_ladder(640, 360, Fraction(25))[-1]
    src = ff.Source(Path("/up/clip"), "mpegts")
    argv = ff.preview_argv(TOOLS, src, rung, audio=STEREO, segment_seconds=2)
    assert argv.count("-i") == 1
    _reads_only(argv, src)


def test_every_input_of_an_upload_goes_through_source_input() -> None:
    """No builder emits ``-i`` for an upload without the forced demuxer and allow-list."""
    rung = plan_ladder(640, 360, Fraction(25))[-1]
    built = [
        ff.encode_ladder_argv(TOOLS, MP4, Path("/o"), [rung], audio=STEREO),
        ff.chunk_argv(TOOLS, MP4, Path("/c.mp4"), rung, Chunk(1, 250, 250)),
        ff.preview_argv(TOOLS, MP4, rung, segment_seconds=2),
        ff.waveform_argv(TOOLS, MP4, 1),
        ff.chromaprint_argv(TOOLS, MP4, seconds=10),
    ]
    for argv in built:
        i = argv.index("-i")
        assert argv[i - 6 : i + 2] == ff.source_input(MP4), argv


MKV = ff.Source(Path("/in.mkv"), "matroska")
MP3 = ff.Source(Path("/in.mp3"), "mp3")


def test_ladder_argv_one_aac_per_audio_stream_in_the_same_run() -> None:
    rungs = plan_ladder(640, 360, Fraction(25))
    audio = (_stream(2, 6, "5.1(side)"), _stream(1), _stream(3, 1, "mono"))
    argv = ff.encode_ladder_argv(TOOLS, MKV, Path("/o"), rungs, audio=audio)
    assert argv.count("-i") == 1
    assert _after(argv, "-map")[len(rungs) :] == ["0:2", "0:1", "0:3"]  # ffprobe indexes
    assert _after(argv, "-c:a") == ["aac"] * 3 and _after(argv, "-ac") == ["2"] * 3
    assert _after(argv, "-filter:a") == [
        ff.downmix_filter(6, "5.1(side)"),
        "pan=stereo|c0=c0|c1=c0",
    ]
    outs = [a for a in argv if a.startswith("file:/o/audio")]
    assert outs == ["file:/o/audio.mp4", "file:/o/audio2.mp4", "file:/o/audio3.mp4"]
    # Each audio output carries only its own stream: no video, subtitles or data.
    last = argv[argv.index("0:3") :]
    assert {"-vn", "-sn", "-dn"} <= set(last)


def test_audio_only_encode_has_no_video_graph() -> None:
    argv = ff.encode_ladder_argv(TOOLS, MP3, Path("/o"), [], audio=STEREO)
    assert "-filter_complex" not in argv and "-c:v" not in argv
    assert _after(argv, "-map") == ["0:1"]
    assert argv[-1] == "file:/o/audio.mp4"


def _gains(pan: str) -> list[dict[int, float]]:
    """pan=stereo|c0=0.4142*c0+…|c1=… → per output channel {input channel: gain}."""
    layout, *outs = pan.removeprefix("pan=").split("|")
    assert layout == "stereo"
    rows = []
    for n, out in enumerate(outs):
        name, expr = out.split("=")
        assert name == f"c{n}"
        row = {}
        for term in expr.split("+"):
            gain, _, ch = term.partition("*")
            row[int(ch.removeprefix("c"))] = float(gain)
        rows.append(row)
    return rows


def test_downmix_5_1_is_bs775_lfe_dropped_normalised() -> None:
    for layout in ("5.1", "5.1(side)", None):  # None: a 6-channel stream without a layout
        pan = ff.downmix_filter(6, layout)
        assert pan is not None
        left, right = _gains(pan)
        total = 1 + 2 * 0.7071
        assert left == pytest.approx({0: 1 / total, 2: 0.7071 / total, 4: 0.7071 / total}, abs=1e-4)
        assert right == pytest.approx(
            {1: 1 / total, 2: 0.7071 / total, 5: 0.7071 / total}, abs=1e-4
        )
        assert 3 not in left and 3 not in right  # LFE
        assert sum(left.values()) <= 1.0001 and sum(right.values()) <= 1.0001  # cannot clip


def test_downmix_7_1_surrounds_and_backs_at_minus_3db() -> None:
    pan = ff.downmix_filter(8, "7.1")
    assert pan is not None
    left, right = _gains(pan)
    total = 1 + 3 * 0.7071
    # FL FR FC LFE BL BR SL SR
    assert left == pytest.approx(
        {0: 1 / total, 2: 0.7071 / total, 4: 0.7071 / total, 6: 0.7071 / total}, abs=1e-4
    )
    assert right == pytest.approx(
        {1: 1 / total, 2: 0.7071 / total, 5: 0.7071 / total, 7: 0.7071 / total}, abs=1e-4
    )


def test_downmix_mono_stereo_and_unknown() -> None:
    assert ff.downmix_filter(1, "mono") == "pan=stereo|c0=c0|c1=c0"  # both ears, unity
    assert ff.downmix_filter(2, "stereo") is None
    assert ff.downmix_filter(2, None) is None
    # More channels than any layout we know: swresample's matrix through -ac 2.
    assert ff.downmix_filter(12, None) is None
    assert ff.downmix_filter(6, "7.1") is None  # a layout that disagrees with the count


def test_preview_argv_muxes_default_audio_and_writes_every_stream() -> None:
    rung = plan_ladder(640, 360, Fraction(30))[-1]
    audio = (_stream(3, 6, "5.1"), _stream(1))
    argv = ff.preview_argv(TOOLS, MKV, rung, audio=audio, segment_seconds=2)
    assert _after(argv, "-map") == ["[v0]", "0:3", "0:1"]
    assert _after(argv, "-filter:a:0") == [ff.downmix_filter(6, "5.1")]
    assert "-filter:a:1" not in argv
    tee = _after(argv, "-f")[-1]
    assert tee == "tee"
    outputs = argv[-1].split("|")
    assert "select=\\'v:0,a:0\\'" in outputs[0]  # the preview carries the default audio only
    assert outputs[2:] == [
        "[select=\\'a:0\\':f=mp4]audio.mp4",
        "[select=\\'a:1\\':f=mp4]audio2.mp4",
    ]


def test_preview_argv_without_audio() -> None:
    rung = plan_ladder(640, 360, Fraction(30))[-1]
    argv = ff.preview_argv(TOOLS, MP4, rung, segment_seconds=2)
    assert _after(argv, "-map") == ["[v0]"] and "-c:a" not in argv
    assert "select=\\'v:0,a:0\\'" not in argv[-1]


def test_waveform_argv_one_jpeg_of_one_stream() -> None:
    argv = ff.waveform_argv(TOOLS, MP3, 2)
    _reads_only(argv, MP3)
    graph = _after(argv, "-filter_complex")[0]
    assert graph.startswith("[0:2]aformat=channel_layouts=mono,aresample=2000,showwavespic=")
    assert "s=1280x720" in graph
    assert _after(argv, "-frames:v") == ["1"] and _after(argv, "-c:v") == ["mjpeg"]
    assert argv[-1] == "pipe:1"
