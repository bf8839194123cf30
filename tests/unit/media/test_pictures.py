"""Pictures as the source meant them: pixel aspect, fields and colour, from the probe's
facts through the ladder plan to the one filter chain every graph starts with."""

from __future__ import annotations

from dataclasses import replace
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from mediaplane.config import Settings
from mediaplane.media import Chunk, MediaInfo, Toolchain, plan_ladder, plan_source_ladder
from mediaplane.media import ffmpeg as ff
from mediaplane.media._ladder import source_fps
from mediaplane.media._picture import Picture, parse_idet
from mediaplane.media._probe import parse_probe

S = Settings()
TOOLS = Toolchain(
    ffmpeg="/usr/bin/ffmpeg", ffprobe="/usr/bin/ffprobe", packager="/p", ffmpeg_version="5.1"
)


def _info(**video: Any) -> MediaInfo:
    v: dict[str, Any] = {
        "codec_type": "video",
        "codec_name": "h264",
        "width": 1920,
        "height": 1080,
        "avg_frame_rate": "25/1",
        "pix_fmt": "yuv420p",
        "field_order": "progressive",
    }
    v.update(video)
    data = {"format": {"format_name": "mpegts", "duration": "2.0"}, "streams": [v]}
    return parse_probe(data, S)


def _after(argv: list[str], flag: str) -> list[str]:
    return [argv[i + 1] for i, a in enumerate(argv) if a == flag]


# --- probe -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("coded", "sar", "display", "dar"),
    [
        ((720, 576), "64:45", (1024, 576), "16:9"),  # PAL 16:9
        ((720, 576), "16:15", (768, 576), "4:3"),  # PAL 4:3
        ((720, 480), "8:9", (640, 480), "4:3"),  # NTSC DV 4:3
        ((720, 480), "32:27", (853, 480), "16:9"),  # NTSC DV 16:9
        ((1440, 1080), "4:3", (1920, 1080), "16:9"),  # HDV
        ((1920, 1080), "1:1", (1920, 1080), "16:9"),
        ((1920, 1080), "0:1", (1920, 1080), "16:9"),  # unknown: square
        ((640, 360), None, (640, 360), "16:9"),
    ],
)
def test_display_shape_applies_the_sample_aspect_ratio(
    coded: tuple[int, int], sar: str | None, display: tuple[int, int], dar: str
) -> None:
    info = _info(width=coded[0], height=coded[1], sample_aspect_ratio=sar)
    assert (info.width, info.height) == display
    assert (info.picture.coded_width, info.picture.coded_height) == coded
    assert info.video_facts()["display_aspect_ratio"] == dar


def test_rotation_and_sample_aspect_together() -> None:
    # An anamorphic portrait recording: 1440×1080 coded, 4:3 pixels, rotated a quarter turn.
    info = _info(
        width=1440, height=1080, sample_aspect_ratio="4:3", side_data_list=[{"rotation": 90}]
    )
    assert (info.width, info.height) == (1080, 1920)
    assert info.picture.display_aspect == Fraction(9, 16)
    rungs = plan_source_ladder(info)
    assert [(r.width, r.height) for r in rungs][:2] == [(1080, 1920), (720, 1280)]


@pytest.mark.parametrize(
    ("order", "interlaced"),
    [("tt", "stream"), ("bb", "stream"), ("tb", "stream"), ("bt", "stream"),
     ("progressive", None), ("unknown", None), (None, None)],
)  # fmt: skip
def test_field_order_from_the_stream(order: str | None, interlaced: str | None) -> None:
    picture = _info(field_order=order).picture
    assert picture.interlaced == interlaced
    # Only a stated order skips the idet pass; "unknown" is not stated.
    assert picture.field_order == (None if order in (None, "unknown") else order)


def test_hdr_facts() -> None:
    hlg = _info(
        codec_name="hevc",
        pix_fmt="yuv420p10le",
        color_range="tv",
        color_space="bt2020nc",
        color_transfer="arib-std-b67",
        color_primaries="bt2020",
    )
    facts = hlg.video_facts()
    assert facts["hdr"] == "hlg" and facts["bit_depth"] == 10
    assert (facts["color_primaries"], facts["color_transfer"], facts["color_matrix"]) == (
        "bt2020",
        "arib-std-b67",
        "bt2020nc",
    )
    assert _info(color_transfer="smpte2084", pix_fmt="p010le").video_facts()["hdr"] == "pq"
    assert _info(pix_fmt="p010le").picture.bit_depth == 10
    assert _info(pix_fmt="yuv422p12le").picture.bit_depth == 12
    sdr = _info(color_transfer="bt709", bits_per_raw_sample="8").video_facts()
    assert sdr["hdr"] is None and sdr["bit_depth"] == 8
    assert _info(pix_fmt="yuvj420p").picture.full_range
    assert _info(color_range="pc").picture.full_range
    assert not _info(color_range="unknown").picture.full_range


def test_parse_idet() -> None:
    log = (
        "[Parsed_idet_0 @ 0x1] Repeated Fields: Neither:    59 Top:     0 Bottom:     0\n"
        "[Parsed_idet_0 @ 0x1] Single frame detection: TFF:    3 BFF:     0 Progressive:  50\n"
        "[Parsed_idet_0 @ 0x1] Multi frame detection: TFF:    58 BFF:     0 Progressive:     "
        "1 Undetermined:     1\n"
    )
    assert parse_idet(log, 60) == "tff"
    assert parse_idet(log.replace("TFF:    58 BFF:     0", "TFF:     0 BFF:    58"), 60) == "bff"
    progressive = "Multi frame detection: TFF:     2 BFF:     0 Progressive:    57 Undetermined: 1"
    assert parse_idet(progressive, 60) is None
    # Too little evidence (a still picture): undetermined frames are not interlaced ones.
    assert (
        parse_idet("Multi frame detection: TFF: 3 BFF: 0 Progressive: 0 Undetermined: 57") is None
    )
    assert parse_idet("no idet here") is None


def test_idet_argv_is_bounded_and_local() -> None:
    argv = ff.idet_argv(TOOLS, ff.Source(Path("/s/in put.ts"), "mpegts"), frames=60)
    assert _after(argv, "-protocol_whitelist") == ["file"]
    assert _after(argv, "-format_whitelist") == [ff.FORMAT_WHITELIST]
    assert _after(argv, "-f")[0] == "mpegts"
    assert _after(argv, "-i") == ["file:/s/in put.ts"]
    assert _after(argv, "-vf") == ["idet"] and _after(argv, "-frames:v") == ["60"]
    assert _after(argv, "-loglevel") == ["info"]  # idet's counts are logged at info
    assert argv[-3:] == ["-f", "null", "-"]


# --- ladder ------------------------------------------------------------------------------


def test_pal_anamorphic_ladder_is_square_pixels_at_16_9() -> None:
    info = _info(width=720, height=576, sample_aspect_ratio="64:45")
    rungs = plan_source_ladder(info)
    assert [(r.name, r.width, r.height) for r in rungs] == [
        ("v480", 854, 480),
        ("v360", 640, 360),
        ("v240", 426, 240),
    ]


def test_exact_display_aspect_keeps_ntsc_16_9_from_bending() -> None:
    # 720×480 at 32:27 is 853.33×480: the rung follows the exact 16:9, not the rounded 853.
    info = _info(width=720, height=480, sample_aspect_ratio="32:27")
    assert [(r.width, r.height) for r in plan_source_ladder(info)] == [
        (854, 480),
        (640, 360),
        (426, 240),
    ]
    assert plan_ladder(853, 480, Fraction(25), aspect=Fraction(16, 9))[0].width == 854


def test_hdv_ladder() -> None:
    info = _info(width=1440, height=1080, sample_aspect_ratio="4:3", field_order="tt")
    assert [(r.width, r.height) for r in plan_source_ladder(info)] == [
        (1920, 1080),
        (1280, 720),
        (854, 480),
        (640, 360),
    ]


@pytest.mark.parametrize(
    ("rate", "field_rate", "out"),
    [
        ("25/1", False, Fraction(25)),
        ("25/1", True, Fraction(50)),
        ("30000/1001", True, Fraction(60000, 1001)),
        ("50/1", True, Fraction(50)),  # 100 fields a second: capped at the ladder's 60
    ],
)
def test_field_rate_doubles_an_interlaced_source_within_the_cap(
    rate: str, field_rate: bool, out: Fraction
) -> None:
    info = _info(avg_frame_rate=rate, field_order="tt")
    assert plan_source_ladder(info, field_rate=field_rate)[0].fps == out
    # A progressive source is never doubled.
    progressive = _info(avg_frame_rate=rate)
    assert source_fps(progressive, field_rate=field_rate) == progressive.fps


# --- the one picture chain ---------------------------------------------------------------


def test_plain_hd_source_chain_is_grid_and_format_only() -> None:
    assert ff.picture_chain(_info(color_space="bt709").picture, Fraction(25)) == (
        "fps=25/1,format=yuv420p"
    )


def test_interlaced_chain_deinterlaces_before_the_grid() -> None:
    stream = _info(field_order="tt").picture
    assert ff.picture_chain(stream, Fraction(25)).startswith(
        "bwdif=mode=send_frame:parity=auto:deint=interlaced,fps=25/1,"
    )
    assert ff.picture_chain(stream, Fraction(50), field_rate=True).startswith(
        "bwdif=mode=send_field:parity=auto:deint=interlaced,fps=50/1,"
    )
    found = replace(_info(field_order=None).picture, interlaced="idet", parity="bff")
    assert ff.picture_chain(found, Fraction(25)).startswith(
        "bwdif=mode=send_frame:parity=bff:deint=all,fps=25/1,"
    )
    # A chunk's pre-roll is trimmed on the output grid, after the deinterlacer saw it.
    assert ff.picture_chain(stream, Fraction(25), skip_frames=25).startswith(
        "bwdif=mode=send_frame:parity=auto:deint=interlaced,fps=25/1,"
        "trim=start_pts=25,setpts=PTS-STARTPTS,"
    )


@pytest.mark.parametrize("transfer", ["arib-std-b67", "smpte2084"])
def test_hdr_chain_tone_maps_to_bt709(transfer: str) -> None:
    picture = _info(
        pix_fmt="yuv420p10le",
        color_space="bt2020nc",
        color_transfer=transfer,
        color_primaries="bt2020",
        color_range="tv",
    ).picture
    assert ff.picture_chain(picture, Fraction(25)) == (
        f"fps=25/1,zscale=tin={transfer}:pin=bt2020:min=bt2020nc:rin=tv:t=linear:npl=100,"
        "format=gbrpf32le,zscale=p=bt709,tonemap=tonemap=hable:desat=0,"
        "zscale=t=bt709,format=gbrp16le,zscale=m=bt709:r=tv,format=yuv420p"
    )


def test_wide_gamut_sdr_is_mapped_without_tone_mapping() -> None:
    picture = _info(color_primaries="bt2020", color_transfer="bt2020-10").picture
    chain = ff.picture_chain(picture, Fraction(25))
    assert "zscale=p=bt709" in chain and "tonemap" not in chain


def test_full_range_and_sd_matrix_become_limited_bt709() -> None:
    full = _info(width=320, height=180, pix_fmt="yuvj420p").picture
    assert ff.picture_chain(full, Fraction(25)) == (
        "fps=25/1,scale=in_range=pc:out_range=tv:in_color_matrix=smpte170m"
        ":out_color_matrix=bt709,format=yuv420p"
    )
    hd_full = _info(pix_fmt="yuv420p", color_range="pc", color_space="bt709").picture
    assert "in_range=pc:out_range=tv:in_color_matrix=bt709" in ff.picture_chain(
        hd_full, Fraction(25)
    )
    # 10-bit SDR: to 8 bits (swscale dithers) with its matrix converted.
    ten = _info(width=720, height=576, pix_fmt="yuv420p10le", color_space="bt470bg").picture
    assert ff.picture_chain(ten, Fraction(25)).endswith(
        "in_color_matrix=bt470:out_color_matrix=bt709,format=yuv420p"
    )


def test_every_graph_starts_with_the_same_chain_and_tags_bt709() -> None:
    info = _info(
        width=720,
        height=576,
        sample_aspect_ratio="64:45",
        field_order="tt",
        pix_fmt="yuv420p10le",
        color_transfer="arib-std-b67",
        color_primaries="bt2020",
        color_space="bt2020nc",
    )
    rungs = plan_source_ladder(info)
    chain = ff.picture_chain(info.picture, rungs[0].fps)
    src = ff.Source(Path("/s.ts"), "mpegts")
    ladder = ff.encode_ladder_argv(TOOLS, src, Path("/o"), rungs, picture=info.picture)
    preview = ff.preview_argv(TOOLS, src, rungs[-1], segment_seconds=2, picture=info.picture)
    chunk = ff.chunk_argv(
        TOOLS, src, Path("/c.mp4"), rungs[0], Chunk(1, 50, 50), picture=info.picture
    )
    assert _after(ladder, "-filter_complex")[0].startswith(f"[0:v:0]{chain},split=3")
    assert _after(preview, "-filter_complex")[0] == (
        f"[0:v:0]{chain},scale=426:240:flags=bicubic,setsar=1[v0]"
    )
    chunk_chain = ff.picture_chain(info.picture, rungs[0].fps, skip_frames=25)
    assert _after(chunk, "-filter_complex")[0] == (
        f"[0:v:0]{chunk_chain},scale=854:480:flags=bicubic,setsar=1[v0]"
    )
    for argv, outputs in ((ladder, 3), (preview, 1), (chunk, 1)):
        assert _after(argv, "-color_primaries") == ["bt709"] * outputs
        assert _after(argv, "-color_trc") == ["bt709"] * outputs
        assert _after(argv, "-colorspace") == ["bt709"] * outputs
        assert _after(argv, "-color_range") == ["tv"] * outputs


def test_picture_defaults_are_square_progressive_sdr() -> None:
    p = Picture()
    assert p.sample_aspect == 1 and p.interlaced is None and p.hdr is None
    assert not p.full_range and p.bit_depth == 8
